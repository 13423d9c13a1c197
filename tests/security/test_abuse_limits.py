"""Abuse limits (issue 8): throttles, body size, page size caps.

* ``auth/token/`` is throttled per client IP (``THROTTLE_AUTH_IP``) and per submitted username
  (``THROTTLE_AUTH_USERNAME``); the sync endpoint per user (``THROTTLE_SYNC``). Past the limit: 429,
  ``Retry-After``, JSON body. The limits are read from the configured throttles, not restated here.
* Failure policy with Redis down (``tradingsite.throttling``): throttles fall back to a per-process
  window, so login stays available *and* limited; no 5xx.
* Bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (1 MiB) on write endpoints: 413, JSON, nothing written.
* Every paginated list caps ``page_size`` at its paginator's ``max_page_size``.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

from accounts.tests.factories import default_account
from conftest import redis_cache_settings
from guards.models import DrawdownAlert, MarketAlert
from positions.models import Position
from reconciliation.models import ReconciliationLog
from tests.security.endpoints import Operation, api_operations, send
from tradingsite import throttling
from tradingsite.throttling import AuthIpThrottle, AuthUsernameThrottle, SyncThrottle

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
SYNCS = "/api/v1/reconciliation/syncs/"


@pytest.fixture(autouse=True)
def _fresh_throttle_state():
    """Start and end with an empty per-process fallback window and a closed Redis breaker."""
    from tradingsite.cache_backend import breaker

    throttling._local_cache().clear()
    breaker.reset()
    yield
    throttling._local_cache().clear()
    breaker.reset()


def assert_throttled(response, where: str) -> None:
    assert response.status_code == 429, f"{where}: {response.status_code} {response.content[:200]!r}"
    assert response["Content-Type"].startswith("application/json")
    assert int(response["Retry-After"]) > 0
    assert "throttled" in response.json()["detail"].lower()


def login(client: APIClient, username: str, password: str = "wrong-password", ip: str | None = None):
    extra: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": ip} if ip else {}
    return client.post(TOKEN, {"username": username, "password": password}, format="json", **extra)


# --------------------------------------------------------------------------------------------
# auth/token/ per IP and per username
# --------------------------------------------------------------------------------------------
def test_token_endpoint_is_throttled_per_client_ip(api_client):
    # given the configured per-IP limit n (default 30/min), n attempts from one IP with n different usernames
    limit = AuthIpThrottle().num_requests
    for i in range(limit):
        assert login(api_client, f"user{i}", ip="203.0.113.7").status_code == 401, i
    # when the (n+1)th arrives from the same IP, then 429 with Retry-After and a JSON body
    assert_throttled(login(api_client, "someone-else", ip="203.0.113.7"), "same ip")
    # and another IP is not affected
    assert login(api_client, "someone-else", ip="198.51.100.9").status_code == 401


def test_token_endpoint_is_throttled_per_username_across_ips(api_client, user, password):
    # given the per-username limit n (default 10/min), n attempts on one account from n different IPs
    limit = AuthUsernameThrottle().num_requests
    assert limit < AuthIpThrottle().num_requests  # so the per-IP throttle is not what answers below
    for i in range(limit):
        assert login(api_client, user.username, ip=f"192.0.2.{i + 1}").status_code == 401, i
    # when the account is tried once more, from yet another IP and in other letter case, then 429 —
    # even with the right password (the throttle runs before the credentials are checked)
    assert_throttled(login(api_client, user.username.upper(), password, ip="192.0.2.200"), "same username")
    # and another account from the same IPs is not affected
    assert login(api_client, "bob", ip="192.0.2.1").status_code == 401


def test_token_endpoint_throttle_counts_successful_logins_too(api_client, user, password):
    limit = AuthUsernameThrottle().num_requests
    for i in range(limit):
        assert login(api_client, user.username, password, ip=f"192.0.2.{i + 1}").status_code == 200
    assert_throttled(login(api_client, user.username, password, ip="192.0.2.250"), "successful logins")


# --------------------------------------------------------------------------------------------
# Sync endpoint per user
# --------------------------------------------------------------------------------------------
def test_sync_endpoint_is_throttled_per_user(auth_client, other_client):
    # given the per-user sync limit n (default 120/min), n posts by one user (empty bodies → 400 each;
    # the throttle counts requests before the body is validated)
    limit = SyncThrottle().num_requests
    for i in range(limit):
        assert auth_client.post(SYNCS, {}, format="json").status_code == 400, i
    # when that user posts once more, then 429 with Retry-After and a JSON body, and nothing is written
    logs_before = ReconciliationLog.objects.count()
    body = {
        "broker_time": timezone.now().isoformat(),
        "account": {"server": "MetaQuotes-Demo", "login": 5021337, "currency": "USD", "balance": "1", "equity": "1"},
    }
    assert_throttled(auth_client.post(SYNCS, body, format="json"), "sync")
    assert ReconciliationLog.objects.count() == logs_before
    # and another user's sync worker is not affected
    assert other_client.post(SYNCS, body, format="json").status_code == 201


# --------------------------------------------------------------------------------------------
# Failure policy when Redis is down: per-process fallback window (tradingsite/throttling.py)
# --------------------------------------------------------------------------------------------
def test_token_throttle_still_limits_with_redis_stopped(api_client, closed_redis_url, user):
    # given Redis is not listening (both cache aliases point at a closed port)
    limit = AuthUsernameThrottle().num_requests
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)):
        statuses = [login(api_client, user.username, ip=f"192.0.2.{i + 1}").status_code for i in range(limit)]
        # then login still answers (no 5xx: the throttle does not fail closed) ...
        assert statuses == [401] * limit
        # ... and is still limited: the per-process window answers 429 (it does not fail open either)
        assert_throttled(login(api_client, user.username, ip="192.0.2.201"), "redis down")


def test_sync_throttle_still_limits_with_redis_stopped(auth_client, closed_redis_url):
    limit = SyncThrottle().num_requests
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)):
        statuses = {auth_client.post(SYNCS, {}, format="json").status_code for _ in range(limit)}
        assert statuses == {400}
        assert_throttled(auth_client.post(SYNCS, {}, format="json"), "sync, redis down")


# --------------------------------------------------------------------------------------------
# Body size: 413 over 1 MiB on every write endpoint, nothing written
# --------------------------------------------------------------------------------------------
def write_operations() -> list[Operation]:
    return [op for op in api_operations() if op.method in ("POST", "PUT", "PATCH")]


def _counts() -> tuple[int, ...]:
    return (
        Position.objects.count(),
        ReconciliationLog.objects.count(),
        DrawdownAlert.objects.count(),
        MarketAlert.objects.count(),
    )


def _oversized_valid_body(operation: Operation, user) -> bytes:
    """A body that would be accepted but for its size: a valid payload padded past the limit."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    payloads: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/positions/"): {
            "ticket": 424242,
            "symbol": "EURUSD",
            "side": "buy",
            "volume": "0.10",
            "requested_price": "1.10000",
        },
        ("POST", SYNCS): {
            "broker_time": (timezone.now() - timedelta(seconds=5)).isoformat(),
            "account": {
                "server": "Test-Server",
                "login": 1,
                "currency": "USD",
                "balance": "1000.00",
                "equity": "1000.00",
            },
            "positions": [],
        },
        ("POST", TOKEN): {"username": user.username, "password": "correct-horse-battery-staple"},
    }
    payload = dict(payloads.get(operation.key, {}))
    payload["padding"] = "x" * (limit + 1)
    return json.dumps(payload).encode()


def test_every_write_endpoint_refuses_bodies_over_the_limit_with_413_and_writes_nothing(user):
    # given each write endpoint and a body over DATA_UPLOAD_MAX_MEMORY_SIZE (1 MiB) that is otherwise valid
    from conftest import access_token_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    before = _counts()
    problems = []
    for operation in write_operations():
        body = _oversized_valid_body(operation, user)
        assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        response = getattr(client, operation.method.lower())(
            operation.url(), data=body, content_type="application/json"
        )
        # then 413 with a JSON body (never a 2xx, never a 5xx)
        if response.status_code != 413 or not response["Content-Type"].startswith("application/json"):
            problems.append(f"{operation}: {response.status_code} {response.content[:120]!r}")
    assert problems == []
    # and nothing was written
    assert _counts() == before


def test_sync_body_just_under_the_limit_is_accepted(auth_client):
    # The control for the 413 above: the limit is the size, not the padding field.
    payload = {
        "broker_time": (timezone.now() - timedelta(seconds=5)).isoformat(),
        "account": {
            "server": "MetaQuotes-Demo",
            "login": 5021337,
            "currency": "USD",
            "balance": "1000.00",
            "equity": "1000.00",
        },
        "positions": [],
    }
    overhead = len(json.dumps({**payload, "padding": ""}).encode())
    payload["padding"] = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE - overhead)
    body = json.dumps(payload).encode()
    assert len(body) == settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = auth_client.post(SYNCS, data=body, content_type="application/json")
    assert response.status_code == 201, response.content[:300]


def test_declared_content_length_over_the_limit_is_refused_before_reading(auth_client):
    # A client announcing more than 1 MiB is refused on the header alone.
    response = auth_client.post(
        SYNCS, data=b"{}", content_type="application/json", CONTENT_LENGTH=str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    )
    assert response.status_code == 413
    assert response.json()["detail"]


# --------------------------------------------------------------------------------------------
# Page size caps on every paginated list
# --------------------------------------------------------------------------------------------
def _make_positions(user, n: int) -> None:
    Position.objects.bulk_create(
        Position(
            user=user,
            account=default_account(user),
            ticket=100_000 + i,
            identifier=100_000 + i,
            symbol="EURUSD",
            side="buy",
            volume=Decimal("0.10"),
            requested_price=Decimal("1.10000"),
        )
        for i in range(n)
    )


def _make_logs(user, n: int) -> None:
    sync_id = uuid.uuid4()
    ReconciliationLog.objects.bulk_create(
        ReconciliationLog(
            user=user,
            account=default_account(user),
            sync_id=sync_id,
            event_type="match",
            ticket=200_000 + i,
            symbol="EURUSD",
        )
        for i in range(n)
    )


def _make_alerts(user, n: int) -> None:
    now = timezone.now()
    common = {"level": "warning", "max_level": "warning", "value_pct": Decimal("16"), "max_value_pct": Decimal("16")}
    DrawdownAlert.objects.bulk_create(
        DrawdownAlert(
            user=user,
            account=default_account(user),
            threshold_pct=Decimal("15"),
            opened_at=now,
            resolved_at=now,
            sync_id=uuid.uuid4(),
            equity=Decimal("8400"),
            peak_equity=Decimal("10000"),
            **common,
        )
        for _ in range(n)
    )
    MarketAlert.objects.bulk_create(
        MarketAlert(
            user=user,
            account=default_account(user),
            symbol="XAUUSD",
            condition="wide_spread",
            threshold_pct=Decimal("0.5"),
            opened_at=now,
            resolved_at=now,
            sync_id=uuid.uuid4(),
            **common,
        )
        for _ in range(n)
    )


def _make_webhooks(user, n: int) -> None:
    from notifications.models import WebhookEndpoint

    WebhookEndpoint.objects.bulk_create(WebhookEndpoint(user=user, url=f"https://example.com/{i}") for i in range(n))


# One row factory per paginated list; a new paginated list without one fails test_every_paginated_list_...
def _make_deals(user, n: int) -> None:
    from accounts.services import account_get_or_create
    from positions.models import Deal

    account = account_get_or_create(user_id=user.pk, server="MetaQuotes-Demo", login=5021337)
    now = timezone.now()
    Deal.objects.bulk_create(
        Deal(user=user, account=account, ticket=300_000 + i, type=2, profit=Decimal("1"), time=now) for i in range(n)
    )


ROW_FACTORIES = {
    "/api/v1/positions/": _make_positions,
    "/api/v1/deals/": _make_deals,
    "/api/v1/reconciliation/logs/": _make_logs,
    "/api/v1/guards/alerts/": _make_alerts,
    "/api/v1/webhooks/": _make_webhooks,
}


# Lists paginated by hand rather than through ``pagination_class`` (e.g. one stream over two tables).
HAND_PAGINATORS = {"/api/v1/guards/alerts/": "tradingsite.api.MergedCursorPagination"}


def paginator_of(operation: Operation):
    if operation.path in HAND_PAGINATORS:
        return import_string(HAND_PAGINATORS[operation.path])
    return getattr(operation.view, "pagination_class", None)


def collection_gets() -> list[Operation]:
    return [op for op in api_operations() if op.method == "GET" and not op.has_path_parameter and not op.is_public]


def test_every_paginated_list_has_a_row_factory_and_a_finite_cap(user, auth_client):
    # A list is paginated when it answers a {"results": [...]} page; each one needs a factory below.
    paginated = []
    for operation in collection_gets():
        body = send(auth_client, operation).json()
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            paginated.append(operation)
    assert paginated, "no paginated list in the URL conf"
    for operation in paginated:
        assert operation.path in ROW_FACTORIES, f"add a row factory for {operation} to test its page-size cap"
        paginator = paginator_of(operation)
        assert paginator is not None, f"{operation}: no paginator found; add it to HAND_PAGINATORS"
        assert paginator.max_page_size, f"{operation}: max_page_size is {paginator.max_page_size!r}"
        assert paginator.page_size <= paginator.max_page_size


@pytest.mark.parametrize("path", sorted(ROW_FACTORIES))
def test_page_size_is_capped_on_every_paginated_list(path, user, auth_client):
    operation = next((op for op in collection_gets() if op.path == path), None)
    assert operation is not None, f"{path} is not in the URL conf"
    paginator = paginator_of(operation)
    cap, default = paginator.max_page_size, paginator.page_size
    # given more rows than the cap
    ROW_FACTORIES[path](user, cap + 5)
    # when a client asks for page_size=100000, then it gets exactly the cap and a next page
    response = auth_client.get(path, {"page_size": 100000})
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert len(body["results"]) == cap
    assert body["next"]
    # and a page size below the cap is honoured; the default applies without one
    assert len(auth_client.get(path, {"page_size": 3}).json()["results"]) == 3
    assert len(auth_client.get(path).json()["results"]) == default
    # and nonsense never widens the page past the cap, nor errors
    for nonsense in ("-1", "0", "abc", "1e9", str(2**70)):
        response = auth_client.get(path, {"page_size": nonsense})
        assert response.status_code == 200, (nonsense, response.status_code)
        assert 1 <= len(response.json()["results"]) <= cap, nonsense
