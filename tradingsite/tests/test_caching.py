"""The two cache layers behind the hot reads: what is stored, for whom, for how
long, what a hit costs, and what happens when Redis is stopped or hung. Plus the scoping guard of the bases."""

from __future__ import annotations

import dataclasses
import threading
import time
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_cache_key
from prometheus_client import REGISTRY
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from conftest import access_token_for, redis_cache_settings
from guards.tests.read_factories import EquitySnapshotFactory, MarketAlertFactory
from positions.tests.read_factories import PositionFactory
from reconciliation.tests.factories import SYNC_URL, broker_position, quote, sync_payload
from reconciliation.tests.read_factories import ReconciliationLogFactory
from tradingsite.api import UserScopedAPIView, UserScopedViewSet
from tradingsite.cache_backend import breaker
from tradingsite.caching import bump_user_generation

pytestmark = pytest.mark.django_db

D = Decimal
HOT = {
    "positions:open": reverse("positions:open"),
    "reconciliation:status": reverse("reconciliation:status"),
    "guards:status": reverse("guards:status"),
}
# SQL per request when both cache layers are cold, for the ``book`` fixture (see the docstrings of the
# compute_* selectors): open = positions, snapshot, instruments; status = last sync, sync count,
# divergences 24 h, active reasons, thresholds, recent events + the open positions (3);
# guards = snapshot, thresholds, market alerts, guard state (a peak reset since), drawdown "since"
# (loss rules add one only on an account with an initial capital).
# Each includes one query for the user's account list (accounts.selectors.account_refs: which account
# ?account= names), itself cached in the data layer.
MISS_QUERIES = {"positions:open": 4, "reconciliation:status": 10, "guards:status": 6}
VOLATILE = {"as_of", "sync_age_seconds"}


def client_for(user) -> APIClient:
    """A client with a freshly minted access token (a new token = a new page-cache key)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


def stable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in VOLATILE}


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def book(user, other_user):
    """Each user: a USD account, one open EURUSD buy (+10 pips = +100.00 USD), one sync, one market alert."""
    for owner, price in ((user, D("1.0960")), (other_user, D("1.0940"))):
        EquitySnapshotFactory(user=owner, currency="USD", equity=D("10000.00"))
        PositionFactory(user=owner, symbol="EURUSD", price_open=D("1.0950"), price_current=price)
        ReconciliationLogFactory(user=owner, created_at=timezone.now())
        MarketAlertFactory(user=owner, symbol="EURUSD")
    return user


@pytest.fixture
def _breaker_reset():
    breaker.reset()
    yield
    breaker.reset()


# --------------------------------------------------------------------------------------------
# Scoping by construction
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get_queryset", "get_object", "get_permissions"])
def test_scoped_viewset_subclass_cannot_bypass_the_owner_filter(method):
    # when / then defining the method is refused at class creation
    with pytest.raises(TypeError, match=method):
        type("Sneaky", (UserScopedViewSet,), {method: lambda self: None})


def test_scoped_api_view_subclass_cannot_drop_authentication():
    with pytest.raises(TypeError, match="get_permissions"):
        type("Open", (UserScopedAPIView,), {"get_permissions": lambda self: []})


def test_scoped_bases_always_require_authentication():
    # given subclasses that try to open themselves up through permission_classes
    from rest_framework.permissions import AllowAny, IsAuthenticated

    viewset = type("Lax", (UserScopedViewSet,), {"permission_classes": [AllowAny]})()
    view = type("LaxView", (UserScopedAPIView,), {"permission_classes": [AllowAny]})()
    # then IsAuthenticated is still first
    assert isinstance(viewset.get_permissions()[0], IsAuthenticated)
    assert isinstance(view.get_permissions()[0], IsAuthenticated)


# --------------------------------------------------------------------------------------------
# Layer 1 (page) and layer 2 (data): costs and storage
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", list(HOT))
def test_miss_runs_the_expected_queries_and_a_warm_hit_runs_none(route, book, django_assert_num_queries):
    # given
    client = client_for(book)
    # when the first request misses both layers
    with django_assert_num_queries(MISS_QUERIES[route]):
        first = client.get(HOT[route])
    # then a warm hit runs no SQL at all, authentication included
    with django_assert_num_queries(0):
        second = client.get(HOT[route])
    assert first.status_code == second.status_code == 200
    assert "Age" not in first
    assert "Age" in second  # served by cache_page
    assert second.content == first.content


@pytest.mark.parametrize("route", list(HOT))
def test_page_miss_with_a_data_hit_runs_no_sql(route, book, django_assert_num_queries):
    # given the data layer is warm (one request), then a new access token for the same user (new page key)
    client_for(book).get(HOT[route])
    refreshed = client_for(book)
    # when / then
    with django_assert_num_queries(0):
        response = refreshed.get(HOT[route])
    assert response.status_code == 200
    assert "Age" not in response


@pytest.mark.parametrize("route", list(HOT))
def test_response_is_really_stored_in_the_page_cache(route, book):
    # given
    token = access_token_for(book)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    # when
    response = client.get(HOT[route])
    # then the Vary header is the documented one, with no Cache-Control that would disable storage
    assert response["Vary"] == "Accept, Authorization, Cookie"
    assert response["Cache-Control"] == "max-age=5"
    # and the cache holds the page under the key Django computes for an identical request
    request = RequestFactory().get(HOT[route], HTTP_AUTHORIZATION=f"Bearer {token}")
    key = get_cache_key(request, cache=caches["default"])
    assert key is not None
    stored = caches["default"].get(key)
    assert stored is not None
    assert stored.content == response.content


def test_only_200_responses_are_cached(book, django_assert_num_queries):
    # given a bad query string (400)
    client = client_for(book)
    url = f"{HOT['positions:open']}?symbol={'X' * 40}"
    first, second = client.get(url), client.get(url)
    # then neither response came from the cache
    assert first.status_code == second.status_code == 400
    assert "Age" not in second


def test_json_and_html_are_cached_separately(client, book, password):
    # given a session user (the browsable API)
    client.login(username=book.username, password=password)
    url = HOT["guards:status"]
    # when
    json_body = client.get(url, HTTP_ACCEPT="application/json")
    html_body = client.get(url, HTTP_ACCEPT="text/html")
    json_again = client.get(url, HTTP_ACCEPT="application/json")
    # then the cached JSON is never served for HTML and vice versa
    assert json_body["Content-Type"] == "application/json"
    assert html_body["Content-Type"].startswith("text/html")
    assert json_again["Content-Type"] == "application/json"
    assert json_again.content == json_body.content


@pytest.mark.parametrize("route", list(HOT))
def test_another_user_never_gets_a_cached_response(route, book, other_user):
    # given user A's response is cached in both layers
    a = client_for(book)
    a_body = a.get(HOT[route]).json()
    assert "Age" in a.get(HOT[route])
    # when user B asks for the same URL within the TTL
    b_body = client_for(other_user).get(HOT[route]).json()
    # then B gets B's own data
    assert b_body != a_body
    if route == "positions:open":
        # A is +10 pips (+100.00), B −10 pips (−100.00)
        assert (a_body["total_unrealized_pnl"], b_body["total_unrealized_pnl"]) == ("100.00", "-100.00")
        assert {p["id"] for p in a_body["positions"]}.isdisjoint({p["id"] for p in b_body["positions"]})
    elif route == "reconciliation:status":
        assert {e["id"] for e in a_body["recent_events"]}.isdisjoint({e["id"] for e in b_body["recent_events"]})
    else:
        assert a_body["market_alerts"][0]["since"] and b_body["market_alerts"][0]["since"]


# --------------------------------------------------------------------------------------------
# Freshness: a sync's 201 is visible at once in the data layer, within the TTL on every endpoint
# --------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@override_settings(API_CACHE_TTL_S=1)
def test_sync_is_visible_at_once_in_selectors_and_within_the_ttl_on_every_endpoint(user):
    from guards.selectors import guard_status
    from positions.selectors import open_positions
    from reconciliation.selectors import reconciliation_status

    # given every hot endpoint cached while the user is idle
    client = client_for(user)
    before = {route: client.get(url).json() for route, url in HOT.items()}
    assert before["reconciliation:status"]["status"] == "idle"
    assert all("Age" in client.get(url) for url in HOT.values())

    # when the worker posts a sync with one broker position (a real commit, so on_commit bumps the generation)
    payload = sync_payload(
        broker_time=timezone.now() - timezone.timedelta(seconds=1),
        positions=[broker_position(900001, "EURUSD", price_open="1.09500", price_current="1.09600", profit="100")],
        quotes=[quote("EURUSD", "1.09590", "1.09610")],
    )
    posted_at = time.monotonic()
    assert client.post(SYNC_URL, payload, format="json").status_code == 201

    # then the selector layer shows it at once
    assert reconciliation_status(user_id=user.id)["total_syncs"] == 1
    assert open_positions(user_id=user.id)["count"] == 1
    assert guard_status(user_id=user.id)["drawdown"] is not None

    # and every endpoint within API_CACHE_TTL_S (1 s here), polled every 50 ms
    fresh = {
        "reconciliation:status": lambda body: body["total_syncs"] == 1,
        "positions:open": lambda body: body["count"] == 1,
        "guards:status": lambda body: body["drawdown"] is not None,
    }
    lag = {}
    for route, url in HOT.items():
        while not fresh[route](client.get(url).json()):
            assert time.monotonic() - posted_at < 1.0 + 0.25, f"{route} still stale after the TTL"
            time.sleep(0.05)
        lag[route] = round(time.monotonic() - posted_at, 3)
    print(f"\nvisible after sync (s, TTL 1 s): {lag}")


# --------------------------------------------------------------------------------------------
# Single flight: 50 concurrent requests on a cold key compute once (real Redis)
# --------------------------------------------------------------------------------------------
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("route", "compute"),
    [
        ("positions:open", "positions.selectors.OPEN_POSITIONS"),
        ("reconciliation:status", "reconciliation.selectors.RECONCILIATION_STATUS"),
        ("guards:status", "guards.selectors.GUARD_STATUS"),
    ],
)
def test_fifty_concurrent_cold_requests_compute_once(route, compute, book, monkeypatch):
    # given a counting wrapper around the declared read's computation (tradingsite.caching.cached_read)
    module_name, name = compute.rsplit(".", 1)
    module = __import__(module_name, fromlist=[name])
    read = getattr(module, name)
    original = read.compute
    calls = []

    def counting(**kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.05)  # widen the race window
        return original(**kwargs)

    monkeypatch.setattr(module, name, dataclasses.replace(read, compute=counting))
    token = access_token_for(book)
    barrier = threading.Barrier(50)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def worker():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait()
            response = client.get(HOT[route])
            with lock:
                results.append((response.status_code, response.json()))
        finally:
            connection.close()

    # when 50 threads ask at once
    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then all got the same 200 and the computation ran once
    assert len(results) == 50
    assert {status for status, _ in results} == {200}
    assert len({repr(stable(body)) for _, body in results}) == 1
    assert len(calls) == 1


# --------------------------------------------------------------------------------------------
# Degradation: Redis stopped (closed port) or hung (accepts, never answers)
# --------------------------------------------------------------------------------------------
READ_ENDPOINTS = [
    *HOT.values(),
    reverse("reconciliation:log-list"),
    reverse("positions:position-list"),
    reverse("guards:alert-list"),
    reverse("guards:config"),
]


@pytest.mark.parametrize("outage", ["closed_redis_url", "hung_redis_url"])
def test_every_endpoint_answers_correctly_and_fast_without_redis(
    outage, request, book, password, caplog, _breaker_reset
):
    # given the correct answers, computed with a working cache
    client = client_for(book)
    expected = {url: stable(client.get(url).json()) for url in READ_ENDPOINTS}
    bad_url = request.getfixturevalue(outage)

    with override_settings(CACHES=redis_cache_settings(bad_url)), caplog.at_level("WARNING", "tradingsite.cache"):
        breaker.reset()
        timings = {}
        # when every endpoint is asked three times, plus a login
        for _ in range(3):
            for url in READ_ENDPOINTS:
                started = time.perf_counter()
                response = client.get(url)
                timings[url] = max(timings.get(url, 0.0), time.perf_counter() - started)
                # then: 200 with the same data as with a working cache
                assert response.status_code == 200, (url, response.content)
                assert stable(response.json()) == expected[url], url
        started = time.perf_counter()
        login = APIClient().post("/api/v1/auth/token/", {"username": book.username, "password": password})
        timings["auth:token"] = time.perf_counter() - started
        assert login.status_code == 200

    # and no request waits anywhere near a second (0.1 s socket timeouts + the breaker)
    print(f"\n{outage}: slowest request per endpoint (ms): " + str({k: round(v * 1000, 1) for k, v in timings.items()}))
    assert max(timings.values()) < 1.0
    # and the outage is logged once, not once per request
    opened = [r for r in caplog.records if getattr(r, "event", "") == "redis_circuit_opened"]
    assert len(opened) == 1


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def test_metrics_count_cache_layers_sql_and_latency_per_view(book, client):
    # given
    api = client_for(book)
    view = "positions:open"
    before = {
        "page_miss": sample("tradingsite_cache_events_total", layer="page", view=view, result="miss"),
        "page_hit": sample("tradingsite_cache_events_total", layer="page", view=view, result="hit"),
        "data_miss": sample("tradingsite_cache_events_total", layer="data", view=view, result="miss"),
        "data_hit": sample("tradingsite_cache_events_total", layer="data", view=view, result="hit"),
        "sql": sample("tradingsite_sql_queries_total", view=view),
        "latency": sample("tradingsite_request_duration_seconds_count", view=view, method="GET"),
    }
    # when: a miss, a page hit, then a new token (page miss, data hit)
    api.get(HOT[view])
    api.get(HOT[view])
    client_for(book).get(HOT[view])
    after = {
        "page_miss": sample("tradingsite_cache_events_total", layer="page", view=view, result="miss"),
        "page_hit": sample("tradingsite_cache_events_total", layer="page", view=view, result="hit"),
        "data_miss": sample("tradingsite_cache_events_total", layer="data", view=view, result="miss"),
        "data_hit": sample("tradingsite_cache_events_total", layer="data", view=view, result="hit"),
        "sql": sample("tradingsite_sql_queries_total", view=view),
        "latency": sample("tradingsite_request_duration_seconds_count", view=view, method="GET"),
    }
    delta = {key: after[key] - before[key] for key in before}
    # then
    assert delta == {
        "page_miss": 2,
        "page_hit": 1,
        "data_miss": 1,
        "data_hit": 1,
        "sql": MISS_QUERIES[view],
        "latency": 3,
    }
    # and /metrics exposes them in the Prometheus text format
    text = client.get("/metrics").content.decode()
    assert 'tradingsite_cache_events_total{layer="page",result="hit",view="positions:open"}' in text
    assert 'tradingsite_request_duration_seconds_bucket{le="0.005",method="GET",view="positions:open"}' in text
    assert 'tradingsite_sql_queries_total{view="positions:open"}' in text


@pytest.mark.redis
@pytest.mark.parametrize("route", list(HOT))
def test_redis_commands_per_request(route, book):
    # given
    client = client_for(book)

    def commands(**kw) -> float:
        return sample("tradingsite_redis_commands_total", view=route)

    # when a cold miss, a warm hit, and a page miss on a warm data layer (new token)
    start = commands()
    client.get(HOT[route])
    after_miss = commands()
    client.get(HOT[route])
    after_hit = commands()
    client_for(book).get(HOT[route])
    after_data_hit = commands()
    bump_user_generation(book.id)  # what a sync does: the counter exists, every data key is new
    client_for(book).get(HOT[route])
    after_warm_miss = commands()
    figures = {
        "miss_new_generation": after_miss - start,
        "hit": after_hit - after_miss,
        "page_miss_data_hit": after_data_hit - after_hit,
        "miss": after_warm_miss - after_data_hit,
    }
    print(f"\nRedis commands per request, {route}: {figures}")
    # then a page hit is exactly 1 MGET (tradingsite.page_hit: the learned header list and the page together)
    assert figures["hit"] == 1
    # and a page miss answered by the data layer is 5: that MGET (which also read the user's generation
    # counters: cache_page then skips its own 2 GETs and no data lookup reads them again), the data GET (a hit
    # does not extend the entry), the GET of the account list ?account= is resolved against
    # (accounts.selectors.account_refs, a data-layer read), 2 page SETs (header list, page). It was 7 while
    # each data lookup read the generation itself.
    assert figures["page_miss_data_hit"] == 5


def test_refresh_token_rotation_keeps_cached_reads_consistent(book):
    # given a page cached under one access token
    refresh = RefreshToken.for_user(book)
    first = APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {refresh.access_token}")
    body = first.get(HOT["positions:open"]).json()
    # when the client refreshes and uses the new access token
    second = APIClient()
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(book).access_token}")
    # then it gets the same data (from the data layer)
    assert stable(second.get(HOT["positions:open"]).json()) == stable(body)
