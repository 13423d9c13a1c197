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
    """Every test starts with empty caches and a closed Redis circuit breaker."""
    from django.core.cache import caches

    for alias in settings.CACHES:
        caches[alias].clear()
    if _cache_backend() == "redis":
        from tradingsite.cache_backend import breaker

        breaker.reset()
    yield


@pytest.fixture
def password() -> str:
    return "correct-horse-battery-staple"


@pytest.fixture
def user(django_user_model, password):
    return django_user_model.objects.create_user(username="alice", password=password)


@pytest.fixture
def other_user(django_user_model, password):
    return django_user_model.objects.create_user(username="bob", password=password)


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
