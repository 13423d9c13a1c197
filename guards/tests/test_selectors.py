"""guards selectors: the stored guard state as ``guards/status/`` shows it."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from guards.models import EquitySnapshot, GuardConfig, Level, MarketAlert
from guards.selectors import compute_guard_status, guard_status, guard_thresholds
from guards.tests.read_factories import (
    DrawdownAlertFactory,
    EquitySnapshotFactory,
    GuardConfigFactory,
    MarketAlertFactory,
)
from positions.tests.read_factories import PositionFactory

pytestmark = pytest.mark.django_db

D = Decimal


def _snapshot(user, *, seconds_ago: float = 5, **fields) -> EquitySnapshot:
    snapshot = EquitySnapshotFactory.create(user=user, **fields)
    # created_at is auto_now_add: move it to the wanted age
    EquitySnapshot.objects.filter(pk=snapshot.pk).update(created_at=timezone.now() - timedelta(seconds=seconds_ago))
    snapshot.refresh_from_db()
    return snapshot


def test_guard_status_is_idle_before_the_first_sync(user):
    # when
    status = compute_guard_status(user_id=user.id)
    # then
    assert status == {
        "system_status": "idle",
        "any_positions_should_close": False,
        "drawdown": None,
        "market_alerts": [],
        "margin": None,
        "rules": [],
        "evaluated_at": None,
    }


def test_guard_status_healthy_shows_the_stored_drawdown(user):
    # given equity 9,500 against a 10,000 peak: 5 % (ok) as the sync stored it (example)
    snapshot = _snapshot(
        user, equity=D("9500.00"), balance=D("10000.00"), peak_equity=D("10000.00"), drawdown_pct=D("5.0000")
    )
    # when
    status = compute_guard_status(user_id=user.id)
    # then
    assert status["system_status"] == "healthy"
    assert status["drawdown"] == {
        "level": "ok",
        "equity": D("9500.00"),
        "balance": D("10000.00"),
        "peak_equity": D("10000.00"),
        "drawdown_pct": D("5.0000"),
        "warning_pct": D("15.000"),
        "critical_pct": D("20.000"),
        "should_close_all": False,
        "since": None,
    }
    assert status["evaluated_at"] == snapshot.created_at
    assert status["any_positions_should_close"] is False


def test_guard_status_warning_from_an_open_drawdown_episode(user):
    # given 8,500 against 10,000 = 15 % → warning, episode opened at 09:30
    _snapshot(user, equity=D("8500.00"), drawdown_pct=D("15.0000"), drawdown_level=Level.WARNING)
    alert = DrawdownAlertFactory(user=user)
    # when
    status = compute_guard_status(user_id=user.id)
    # then
    assert status["system_status"] == "warning"
    assert status["drawdown"]["level"] == "warning"
    assert status["drawdown"]["since"] == alert.opened_at
    assert status["drawdown"]["should_close_all"] is False


def test_guard_status_critical_drawdown_closes_everything(user):
    # given 8,000 against 10,000 = 20 % → critical, escalated at 09:50
    _snapshot(user, equity=D("8000.00"), drawdown_pct=D("20.0000"), drawdown_level=Level.CRITICAL)
    escalated = datetime(2026, 11, 30, 9, 50, tzinfo=UTC)
    DrawdownAlertFactory(user=user, level=Level.CRITICAL, max_level=Level.CRITICAL, escalated_at=escalated)
    # when
    status = compute_guard_status(user_id=user.id)
    # then
    assert status["system_status"] == "critical"
    assert status["drawdown"]["should_close_all"] is True
    assert status["drawdown"]["since"] == escalated
    assert status["any_positions_should_close"] is True


def test_critical_market_alert_closes_only_a_held_symbol(user, other_user):
    # given a held XAUUSD position with a critical spread (1950.00/1969.50 = 1.00 %), and a critical gap on
    # GBPUSD, which the user does not hold (the other user does)
    _snapshot(user)
    PositionFactory(user=user, symbol="XAUUSD", price_open=D("1950.00"), price_current=D("1950.00"))
    PositionFactory(user=other_user, symbol="GBPUSD")
    MarketAlertFactory(
        user=user,
        condition=MarketAlert.Condition.WIDE_SPREAD,
        level=Level.CRITICAL,
        value_pct=D("1.0000"),
        threshold_pct=D("1.0"),
        bid=D("1950.00"),
        ask=D("1969.50"),
        reference_price=None,
    )
    MarketAlertFactory(user=user, symbol="GBPUSD", level=Level.CRITICAL, value_pct=D("12"), threshold_pct=D("10"))
    # and a resolved episode and another user's alert, which must not show
    MarketAlertFactory(user=user, symbol="EURUSD", resolved_at=timezone.now())
    MarketAlertFactory(user=other_user, symbol="XAUUSD", level=Level.CRITICAL)

    # when
    status = compute_guard_status(user_id=user.id)

    # then
    alerts = {(a["symbol"], a["condition"]): a for a in status["market_alerts"]}
    assert set(alerts) == {("XAUUSD", "wide_spread"), ("GBPUSD", "price_gap")}
    assert alerts[("XAUUSD", "wide_spread")]["should_close_positions"] is True
    assert alerts[("XAUUSD", "wide_spread")]["ask"] == D("1969.50")
    assert alerts[("GBPUSD", "price_gap")]["should_close_positions"] is False
    assert status["system_status"] == "critical"
    assert status["any_positions_should_close"] is True


def test_guard_status_is_stale_when_the_last_snapshot_is_old(user):
    # given a 60 s threshold and a snapshot 61 s old with a warning market alert
    _snapshot(user, seconds_ago=61)
    MarketAlertFactory(user=user)
    # when / then stale outranks warning
    assert compute_guard_status(user_id=user.id)["system_status"] == "stale"


def test_guard_status_uses_the_users_thresholds(user):
    # given a config with 10/12 % drawdown thresholds
    GuardConfigFactory(user=user, drawdown_warning_pct=D("10"), drawdown_critical_pct=D("12"))
    _snapshot(user)
    # when
    drawdown = compute_guard_status(user_id=user.id)["drawdown"]
    # then
    assert (drawdown["warning_pct"], drawdown["critical_pct"]) == (D("10.000"), D("12.000"))


def test_thresholds_default_without_a_config_row(user):
    # when / then defaults, and no row is created by the read
    assert guard_thresholds(user_id=user.id)["sync_stale_seconds"] == 60
    assert guard_thresholds(user_id=user.id)["drawdown_warning_pct"] == D("15")
    assert not GuardConfig.objects.filter(user=user).exists()


def test_guard_status_hit_runs_no_sql(user, django_assert_num_queries):
    # given
    _snapshot(user)
    guard_status(user_id=user.id)
    # when / then
    with django_assert_num_queries(0):
        assert guard_status(user_id=user.id)["system_status"] == "healthy"
