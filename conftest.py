"""Shared pytest fixtures and the service-marker policy.

Markers: ``postgres`` (needs DATABASE_URL → PostgreSQL) and ``redis`` (needs REDIS_URL → django-redis).
On the embedded default these tests are skipped; with ``REQUIRE_SERVICES=1`` (CI's second run) a
missing service fails the test instead, so CI can prove they ran.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings


def _database_vendor() -> str:
    return "postgresql" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "sqlite"


def _cache_backend() -> str:
    return "redis" if settings.CACHES["default"]["BACKEND"].startswith("django_redis") else "locmem"


def pytest_report_header(config):
    return f"tradingsite tests: database vendor={_database_vendor()}, cache backend={_cache_backend()}"


def pytest_runtest_setup(item):
    require = os.environ.get("REQUIRE_SERVICES") == "1"
    missing = []
    if item.get_closest_marker("postgres") and _database_vendor() != "postgresql":
        missing.append("PostgreSQL (set DATABASE_URL)")
    if item.get_closest_marker("redis") and _cache_backend() != "redis":
        missing.append("Redis (set REDIS_URL)")
    if missing:
        message = "needs " + " and ".join(missing)
        if require:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {message}")
        pytest.skip(message)


@pytest.fixture(autouse=True)
def _clear_caches():
    """Every test starts with empty caches (the throttles' per-process fallback too) and a closed Redis breaker."""
    from django.core.cache import caches

    from tradingsite.throttling import _local_cache

    for alias in settings.CACHES:
        caches[alias].clear()
    _local_cache().clear()
    if _cache_backend() == "redis":
        from tradingsite.cache_backend import breaker

        breaker.reset()
    yield


@pytest.fixture(autouse=True)
def _throttle_windows_start_with_the_test(monkeypatch):
    """The throttles count in fixed clock windows (``tradingsite.throttling.window_hit``): a test that makes
    ``limit`` attempts and expects the next one refused would pass the limit silently if a minute boundary
    fell between them (the count restarts). Shift the throttles' clock so every test starts 1 s into an
    hour-long window, hence also into a minute-long one; time still runs at its real speed."""
    import time as real_time
    from types import SimpleNamespace

    from tradingsite import throttling

    shift = (3601 - real_time.time() % 3600) % 3600
    monkeypatch.setattr(throttling, "time", SimpleNamespace(time=lambda: real_time.time() + shift))


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple"


@pytest.fixture
def user(django_user_model, password):
    """Alice, with her MT5 account (MetaQuotes-Demo, login 5021337: the one the test sync payloads name)."""
    from accounts.tests.factories import default_account

    alice = django_user_model.objects.create_user(username="alice", password=password)
    default_account(alice)
    return alice


@pytest.fixture
def other_user(django_user_model, password):
    """Bob, with his own account under the same (server, login) key as Alice's: nothing is shared."""
    from accounts.tests.factories import default_account

    bob = django_user_model.objects.create_user(username="bob", password=password)
    default_account(bob)
    return bob


@pytest.fixture
def admin_user(django_user_model, password):
    return django_user_model.objects.create_superuser(username="operator", password=password, email="ops@example.com")


def access_token_for(user) -> str:
    """Mint a real SimpleJWT access token for ``user`` (signed with JWT_SIGNING_KEY)."""
    from rest_framework_simplejwt.tokens import RefreshToken

    return str(RefreshToken.for_user(user).access_token)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth_client(user):
    """An APIClient sending ``Authorization: Bearer <real access token>`` for ``user``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


@pytest.fixture
def other_client(other_user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(other_user)}")
    return client


# --------------------------------------------------------------------------------------------
# Service-marker report: CI's second run proves the postgres/redis/browser tests really ran.
# --------------------------------------------------------------------------------------------
_SERVICE_MARKERS = ("postgres", "redis", "browser")
_service_outcomes: dict[str, dict[str, object]] = {}


def pytest_runtest_logreport(report):
    item_markers = getattr(report, "_service_markers", None)
    if item_markers is None:
        return
    entry = _service_outcomes.setdefault(report.nodeid, {"markers": item_markers, "outcome": "passed"})
    if report.skipped:
        entry["outcome"] = "skipped"
    elif report.failed:
        entry["outcome"] = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    markers = [name for name in _SERVICE_MARKERS if item.get_closest_marker(name)]
    if markers:
        outcome.get_result()._service_markers = markers


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SERVICE_MARKER_REPORT")
    if not path:
        return
    import json

    summary = {
        "database_vendor": _database_vendor(),
        "cache_backend": _cache_backend(),
        "tests": _service_outcomes,
    }
    with open(path, "w") as handle:
        json.dump(summary, handle, indent=1, sort_keys=True)


# --------------------------------------------------------------------------------------------
# Broken Redis endpoints for degradation tests
# --------------------------------------------------------------------------------------------
@pytest.fixture
def closed_redis_url():
    """A redis:// URL on a loopback port where nothing listens (Redis stopped)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def hung_redis_url():
    """A redis:// URL whose server accepts connections and never answers (Redis hung)."""
    import socket
    import threading

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    accepted = []
    stop = threading.Event()

    def accept_forever():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)  # hold it open, read nothing, answer nothing

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(timeout=1)
    for conn in accepted:
        conn.close()
    server.close()


def redis_cache_settings(url: str) -> dict:
    """CACHES pointing both aliases at ``url`` with the production client options."""
    options = {
        "CLIENT_CLASS": "tradingsite.cache_backend.CircuitBreakerClient",
        "SOCKET_CONNECT_TIMEOUT": 0.1,
        "SOCKET_TIMEOUT": 0.1,
        "IGNORE_EXCEPTIONS": True,
    }
    return {
        alias: {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url, "KEY_PREFIX": alias, "OPTIONS": options}
        for alias in ("default", "throttle")
    }
