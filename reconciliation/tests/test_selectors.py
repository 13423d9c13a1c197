"""reconciliation selectors: the status (idle / healthy / warning / stale), counts and scoping."""

from datetime import timedelta

import pytest
from django.utils import timezone

from guards.tests.read_factories import GuardConfigFactory
from positions.models import Position
from positions.selectors import open_positions
from positions.tests.read_factories import PositionFactory
from reconciliation.models import ReconciliationLog
from reconciliation.selectors import compute_reconciliation_status, reconciliation_status
from reconciliation.tests.read_factories import ReconciliationLogFactory

pytestmark = pytest.mark.django_db

EventType = ReconciliationLog.EventType


def test_status_is_idle_before_the_first_sync(user):
    # when
    status = compute_reconciliation_status(user_id=user.id)
    # then
    assert status["status"] == "idle"
    assert status["total_syncs"] == 0
    assert status["last_sync_at"] is None
    assert status["sync_age_seconds"] is None
    assert status["open_positions_count"] == 0
    assert status["recent_events"] == []


def test_status_is_healthy_with_recent_syncs_and_no_divergence(user, other_user):
    # given 3 syncs of this user, the last 10 s ago taking 34 ms, two matched open positions
    now = timezone.now()
    first = ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=70))
    second = ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=40))
    last = ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=10), duration_ms=34)
    PositionFactory(user=user)
    PositionFactory(user=user, symbol="GBPUSD")
    # and another user's syncs and positions, which must not count
    ReconciliationLogFactory(user=other_user, created_at=now)
    PositionFactory(user=other_user)

    # when
    status = compute_reconciliation_status(user_id=user.id, now=now)

    # then
    assert status["status"] == "healthy"
    assert status["total_syncs"] == 3
    assert status["last_sync_at"] == last.created_at
    assert status["last_sync_duration_ms"] == 34
    assert status["sync_age_seconds"] == 10
    assert status["open_positions_count"] == 2
    assert status["matched_positions"] == 2
    assert status["divergences_open"] == 0
    assert [event["id"] for event in status["recent_events"]] == [last.id, second.id, first.id]


def test_status_is_warning_when_divergences_are_open(user):
    # given a recent sync, an open position with two active reasons and a pending one missing at the broker
    now = timezone.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=5))
    PositionFactory(user=user, matched=False, divergence_reasons=["partial_fill", "sl_mismatch"])
    PositionFactory(user=user, status=Position.Status.PENDING, matched=False, divergence_reasons=["missing_at_broker"])
    PositionFactory(user=user, status=Position.Status.CLOSED, divergence_reasons=["tp_mismatch"])  # closed: ignored
    # and divergence log rows: two in the last 24 h, one older
    for hours_ago in (1, 23, 25):
        ReconciliationLogFactory(
            user=user,
            event_type=EventType.DIVERGENCE,
            status=ReconciliationLog.Status.WARNING,
            created_at=now - timedelta(hours=hours_ago),
        )

    # when
    status = compute_reconciliation_status(user_id=user.id, now=now)

    # then 2 + 1 active reasons; 2 divergence rows within 24 h; 1 open position, not matched
    assert status["status"] == "warning"
    assert status["divergences_open"] == 3
    assert status["divergences_24h"] == 2
    assert status["open_positions_count"] == 1
    assert status["matched_positions"] == 0
    assert status["message"] == "3 divergences open."


def test_status_is_stale_after_sync_stale_seconds(user):
    # given the user's threshold is 30 s and the last sync was 31 s ago
    GuardConfigFactory(user=user, sync_stale_seconds=30)
    now = timezone.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=31))
    # when
    status = compute_reconciliation_status(user_id=user.id, now=now)
    # then
    assert status["status"] == "stale"
    assert status["sync_age_seconds"] == 31


def test_status_uses_the_default_60_s_threshold_without_a_config(user):
    # given no GuardConfig row; a sync 59 s ago is fresh, 61 s is stale
    now = timezone.now()
    ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=59))
    assert compute_reconciliation_status(user_id=user.id, now=now)["status"] == "healthy"
    assert compute_reconciliation_status(user_id=user.id, now=now + timedelta(seconds=2))["status"] == "stale"


def test_recent_events_are_the_five_newest_of_the_user(user, other_user):
    # given 7 rows of this user and a newer one of another user
    now = timezone.now()
    rows = [ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=10 - i)) for i in range(7)]
    ReconciliationLogFactory(user=other_user, created_at=now)
    # when
    events = compute_reconciliation_status(user_id=user.id, now=now)["recent_events"]
    # then newest first, five of them
    assert [event["id"] for event in events] == [row.id for row in reversed(rows)][:5]


def test_open_positions_count_equals_the_open_positions_count(user):
    # given open, pending and closed rows
    PositionFactory.create_batch(3, user=user)
    PositionFactory(user=user, status=Position.Status.PENDING)
    PositionFactory(user=user, status=Position.Status.CLOSED)
    # when both are read (through the data cache)
    status = reconciliation_status(user_id=user.id)
    positions = open_positions(user_id=user.id)
    # then
    assert status["open_positions_count"] == positions["count"] == 3


def test_status_hit_runs_no_sql(user, django_assert_num_queries):
    # given a first (miss) call
    ReconciliationLogFactory(user=user)
    PositionFactory(user=user)
    reconciliation_status(user_id=user.id)
    # when / then
    with django_assert_num_queries(0):
        reconciliation_status(user_id=user.id)
