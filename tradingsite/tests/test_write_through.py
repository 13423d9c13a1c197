"""Write-through warming, the sliding data TTL, read-time derivation of time-dependent fields and the
request-level outcome counter (the hit-rate and SQL-per-read targets of the load scenario)."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from accounts.tests.factories import default_account
from conftest import access_token_for, redis_cache_settings
from guards.models import EquitySnapshot
from guards.selectors import guard_status
from guards.tests.read_factories import EquitySnapshotFactory
from positions.models import Position
from positions.selectors import open_positions
from reconciliation import selectors as reconciliation_selectors
from reconciliation.models import ReconciliationLog
from reconciliation.selectors import reconciliation_status
from reconciliation.tests.factories import SYNC_URL, broker_position, quote, sync_payload
from reconciliation.tests.read_factories import ReconciliationLogFactory
from tradingsite.cache_backend import breaker
from tradingsite.caching import bump_and_warm_user, data_cache_key, user_generation, warm_user_reads

pytestmark = pytest.mark.django_db

D = Decimal
HOT = {
    "positions:open": reverse("positions:open"),
    "reconciliation:status": reverse("reconciliation:status"),
    "guards:status": reverse("guards:status"),
}
LOCMEM = {
    alias: {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"write-through-{alias}"}
    for alias in ("default", "throttle")
}


@pytest.fixture
def account(user):
    """The user's account (the one the test syncs name)."""
    return default_account(user)


def client_for(user) -> APIClient:
    """A client with a freshly minted access token (a new token = a new page-cache key)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


def served_from(view: str, source: str) -> float:
    return REGISTRY.get_sample_value("tradingsite_read_requests_total", {"view": view, "served_from": source}) or 0.0


def open_position(user, *, ticket: int, symbol: str) -> Position:
    """An open, matched 1.00 lot buy (written directly: PositionFactory's ticket sequence is shared
    with other modules' fixed tickets, so this module leaves it untouched)."""
    return Position.objects.create(
        user=user,
        account=default_account(user),
        ticket=ticket,
        symbol=symbol,
        side=Position.Side.BUY,
        volume=D("1.00"),
        requested_price=D("1.0950"),
        price_open=D("1.0950"),
        price_current=D("1.0960"),
        status=Position.Status.OPEN,
        matched=True,
    )


class FakeClock:
    """Stands in for the ``time`` module inside Django's cache backends (expiry only)."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


@pytest.fixture
def frozen_now(monkeypatch):
    """Freeze ``django.utils.timezone.now`` (what the selectors render with); returns a setter."""
    state = {"now": timezone.now()}
    monkeypatch.setattr(timezone, "now", lambda: state["now"])

    def set_now(when):
        state["now"] = when
        return when

    set_now.now = lambda: state["now"]
    return set_now


# --------------------------------------------------------------------------------------------
# 1. Write-through: a sync's reads are data hits under the new generation
# --------------------------------------------------------------------------------------------
def test_reads_after_a_sync_run_no_sql_and_show_the_sync(
    user, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # given every hot endpoint read (and cached) while the user is idle
    for url in HOT.values():
        assert client_for(user).get(url).status_code == 200
    # when the worker posts a sync with one EURUSD buy 1.00 @ 1.09500 → 1.09600 (+10 pips × 10 USD = +100.00)
    payload = sync_payload(
        broker_time=timezone.now() - timedelta(seconds=1),
        positions=[broker_position(900001, "EURUSD", price_open="1.09500", price_current="1.09600", profit="100")],
        quotes=[quote("EURUSD", "1.09590", "1.09610")],
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(user).post(SYNC_URL, payload, format="json").status_code == 201
    # then a new dashboard session (page miss) reads all three endpoints with no SQL at all
    reader = client_for(user)
    with django_assert_num_queries(0):
        bodies = {route: reader.get(url) for route, url in HOT.items()}
    assert {route: response.status_code for route, response in bodies.items()} == dict.fromkeys(HOT, 200)
    assert all("Age" not in response for response in bodies.values())  # not page hits: data hits
    status, positions, guards = (bodies[r].json() for r in ("reconciliation:status", "positions:open", "guards:status"))
    # the ticket was never registered by the bot: one unexpected_at_broker divergence → warning
    assert (status["status"], status["total_syncs"], status["open_positions_count"]) == ("warning", 1, 1)
    assert (status["divergences_open"], status["divergences_24h"]) == (1, 1)
    assert (positions["count"], positions["total_unrealized_pnl"]) == (1, "100.00")
    assert status["open_positions_count"] == positions["count"]
    # the account is flat-equity 10,000.00: first peak = max(balance, equity) = 10,000, drawdown 0 % → ok
    assert guards["system_status"] == "healthy"
    assert (guards["drawdown"]["level"], guards["drawdown"]["peak_equity"]) == ("ok", "10000.00")


def test_config_patch_warms_the_reads_with_the_new_thresholds(
    account, user, django_capture_on_commit_callbacks, django_assert_num_queries
):
    # given a snapshot and a cached guard status at the default 15/20 thresholds
    EquitySnapshotFactory(user=user, currency="USD", equity=D("10000.00"))
    assert guard_status(user_id=user.id, account_id=account.pk)["drawdown"]["warning_pct"] == D("15")
    # when the user PATCHes the warning threshold to 12 %
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).patch(reverse("guards:config"), {"drawdown_warning_pct": "12"}, format="json")
    assert response.status_code == 200
    # then the next read is a data hit already carrying 12 %
    with django_assert_num_queries(0):
        assert guard_status(user_id=user.id, account_id=account.pk)["drawdown"]["warning_pct"] == D("12")


def test_warming_does_nothing_when_the_cache_is_down(user, closed_redis_url, django_assert_num_queries):
    # given a cache that refuses every connection
    breaker.reset()
    # when a write's after-commit step runs
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)), django_assert_num_queries(0):
        bump_and_warm_user(user.id)
        warm_user_reads(user.id)
    breaker.reset()
    # then nothing was computed (0 SQL): a result that cannot be stored is not worth computing


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_sync_answers_201_quickly_with_redis_down(user, closed_redis_url):
    # given Redis stopped
    breaker.reset()
    client = client_for(user)
    payload = sync_payload(broker_time=timezone.now() - timedelta(seconds=1), positions=[])
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)):
        # when a sync commits (a real commit: on_commit bumps and warms)
        started = time.perf_counter()
        response = client.post(SYNC_URL, payload, format="json")
        elapsed = time.perf_counter() - started
        # then it succeeds, and the reads still answer from the database
        assert response.status_code == 201
        assert client.get(HOT["reconciliation:status"]).json()["total_syncs"] == 1
    breaker.reset()
    print(f"\nsync with Redis down: {elapsed * 1000:.1f} ms")
    assert elapsed < 1.0


# --------------------------------------------------------------------------------------------
# 2. The data layer's TTL counts from computation; generations keep entries fresh
# --------------------------------------------------------------------------------------------
@override_settings(CACHES=LOCMEM, API_CACHE_TTL_S=5, API_DATA_TTL_S=10)
def test_a_data_entry_lives_its_ttl_from_computation_and_writes_renew_it(
    account, user, cache_clock, django_assert_num_queries
):
    # given a clock for the cache's expiry, and one computed open-positions entry (TTL 8–10 s)
    cache.clear()
    open_position(user, ticket=910001, symbol="EURUSD")
    assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
    # when it is read 7 s later, it is a hit
    cache_clock.now += 7
    with django_assert_num_queries(0):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
    # then reading does not extend it: 11 s after computation (> 10 s) the read computes again
    cache_clock.now += 4
    with django_assert_num_queries(3):  # positions, latest snapshot, instruments
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
    # and a write is visible at once (new generation, re-warmed), not after the TTL
    open_position(user, ticket=910002, symbol="GBPUSD")
    bump_and_warm_user(user.id)
    with django_assert_num_queries(0):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 2


@pytest.mark.redis
@override_settings(API_DATA_TTL_S=60)
def test_a_data_hit_does_not_extend_the_entry_on_redis(account, user):
    # given one cached entry (life 80–100 % of 60 s) whose remaining life we shorten to 2 s,
    # as if computed almost a minute ago (e.g. before an invalidation that was lost)
    open_positions(user_id=user.id, account_id=account.pk)
    key = data_cache_key(
        "positions:open", user_id=user.id, generation=user_generation(user.id), params={"account_id": account.pk}
    )
    assert 48 <= cache.ttl(key) <= 60
    cache.expire(key, 2)
    # when it is read
    open_positions(user_id=user.id, account_id=account.pk)
    # then its life is not extended: it expires on schedule and the next read recomputes
    assert cache.ttl(key) <= 2


# --------------------------------------------------------------------------------------------
# 3. Time-dependent fields are derived at read time, from cached facts, with no SQL
# --------------------------------------------------------------------------------------------
def test_status_turns_stale_without_a_write_and_without_sql(account, user, frozen_now, django_assert_num_queries):
    # given a sync 10 s ago (sync_stale_seconds = 60 by default) and a snapshot, both statuses cached
    now = frozen_now.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=10))
    snapshot = EquitySnapshotFactory(user=user, currency="USD", equity=D("10000.00"))
    EquitySnapshot.objects.filter(pk=snapshot.pk).update(created_at=now - timedelta(seconds=10))  # auto_now_add
    status = reconciliation_status(user_id=user.id, account_id=account.pk)
    assert (status["status"], status["sync_age_seconds"]) == ("healthy", 10)
    assert guard_status(user_id=user.id, account_id=account.pk)["system_status"] == "healthy"
    # when 51 s pass with no write (age 10 + 51 = 61 s > 60 s)
    frozen_now(now + timedelta(seconds=51))
    with django_assert_num_queries(0):
        status = reconciliation_status(user_id=user.id, account_id=account.pk)
        guards = guard_status(user_id=user.id, account_id=account.pk)
        positions = open_positions(user_id=user.id, account_id=account.pk)
    # then both turn stale, the age and message follow the clock, and as_of is the read's time
    assert status["status"] == "stale"
    assert status["sync_age_seconds"] == 61
    assert status["message"] == "Last sync 61 s ago; stale after 60 s."
    assert status["as_of"] == positions["as_of"] == now + timedelta(seconds=51)
    assert guards["system_status"] == "stale"
    assert guards["evaluated_at"] == now - timedelta(seconds=10)


def test_stale_on_the_endpoint_without_sql(user, frozen_now, django_assert_num_queries):
    # given the status endpoint read once (both layers warm) 10 s after a sync
    now = frozen_now.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=10))
    assert client_for(user).get(HOT["reconciliation:status"]).json()["status"] == "healthy"
    # when 60 s pass and a new session asks (page miss)
    frozen_now(now + timedelta(seconds=60))
    reader = client_for(user)  # minting a token writes its OutstandingToken row
    with django_assert_num_queries(0):
        body = reader.get(HOT["reconciliation:status"]).json()
    # then: 70 s > 60 s
    assert (body["status"], body["sync_age_seconds"]) == ("stale", 70)


def test_divergences_24h_ages_without_a_write(account, user, frozen_now, django_assert_num_queries):
    # given divergence rows 23 h 59 min 50 s and 1 h old, and one 25 h old (already outside the window)
    now = frozen_now.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=5))
    for age in (timedelta(hours=23, minutes=59, seconds=50), timedelta(hours=1), timedelta(hours=25)):
        ReconciliationLogFactory(user=user, event_type=ReconciliationLog.EventType.DIVERGENCE, created_at=now - age)
    assert reconciliation_status(user_id=user.id, account_id=account.pk)["divergences_24h"] == 2
    # when 20 s pass: the oldest in-window row is now 24 h 0 min 10 s old
    frozen_now(now + timedelta(seconds=20))
    # then it no longer counts, with no SQL
    with django_assert_num_queries(0):
        assert reconciliation_status(user_id=user.id, account_id=account.pk)["divergences_24h"] == 1
    # and once the 1 h old row is 24 h old too, the window is empty
    frozen_now(now + timedelta(hours=23, seconds=20))
    with django_assert_num_queries(0):
        assert reconciliation_status(user_id=user.id, account_id=account.pk)["divergences_24h"] == 0


def test_divergences_24h_recomputes_once_the_kept_times_run_out(
    account, user, frozen_now, monkeypatch, django_assert_num_queries
):
    # given only 1 divergence time kept, and 3 rows in the window (10 s, 20 s and 1 h from leaving it)
    monkeypatch.setattr(reconciliation_selectors, "DIVERGENCE_TIMES_KEPT", 1)
    now = frozen_now.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=5))
    for left in (10, 20, 3600):
        ReconciliationLogFactory(
            user=user,
            event_type=ReconciliationLog.EventType.DIVERGENCE,
            created_at=now - timedelta(hours=24) + timedelta(seconds=left),
        )
    assert reconciliation_status(user_id=user.id, account_id=account.pk)["divergences_24h"] == 3
    # when 15 s pass: the one kept time has aged out, and the facts cannot say about the next one
    frozen_now(now + timedelta(seconds=15))
    # then the status is recomputed (SQL) and exact: 3 − 1 = 2
    status = reconciliation_status(user_id=user.id, account_id=account.pk)
    assert status["divergences_24h"] == 2
    # and the recomputed facts are cached again
    with django_assert_num_queries(0):
        assert reconciliation_status(user_id=user.id, account_id=account.pk)["divergences_24h"] == 2


# --------------------------------------------------------------------------------------------
# 4. The request-level outcome counter
# --------------------------------------------------------------------------------------------
def test_read_requests_are_counted_by_where_they_were_served_from(user, django_capture_on_commit_callbacks):
    # given
    view = "positions:open"
    url = HOT[view]
    sources = ("page", "data", "compute")
    before = {source: served_from(view, source) for source in sources}
    client = client_for(user)
    # when: a cold miss (compute), the same page again (page), a new session (data), a write that
    # warms the reads then a new session (data), and a 401 (not counted)
    client.get(url)
    client.get(url)
    client_for(user).get(url)
    with django_capture_on_commit_callbacks(execute=True):
        payload = sync_payload(broker_time=timezone.now() - timedelta(seconds=1), positions=[])
        assert client.post(SYNC_URL, payload, format="json").status_code == 201
    client_for(user).get(url)
    assert APIClient().get(url).status_code == 401
    # then
    delta = {source: served_from(view, source) - before[source] for source in sources}
    assert delta == {"page": 1, "data": 2, "compute": 1}


@override_settings(API_CACHE_TTL_S=0)
def test_with_caching_off_every_read_is_a_computation(user):
    # given caching off
    before = served_from("guards:status", "compute")
    # when two identical reads
    client = client_for(user)
    client.get(HOT["guards:status"])
    client.get(HOT["guards:status"])
    # then both computed
    assert served_from("guards:status", "compute") - before == 2
