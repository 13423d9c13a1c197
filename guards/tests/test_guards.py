"""Guards: drawdown from a persistent peak, min equity, gaps, spreads, stale quotes, episodes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from accounts.tests.factories import default_account
from guards.models import DrawdownAlert, EquitySnapshot, GuardConfig, GuardState, MarketAlert
from guards.services import (
    drawdown_level,
    drawdown_pct,
    gap_level,
    gap_pct,
    guard_config_update,
    peak_equity_reset,
    spread_level,
    spread_pct,
)
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import Clock, broker_position, ingest, quote, register, sync_payload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account(user):
    """The user's account (the one the test syncs name), as after the user's first sync."""
    return default_account(user)


def defaults() -> GuardConfig:
    return GuardConfig(drawdown_warning_pct=D("15"), drawdown_critical_pct=D("20"), min_equity=D("100"))


def sync(user, clock, *, balance="10000.00", equity="10000.00", quotes=None, positions=None, currency="USD"):
    return ingest(
        user,
        sync_payload(
            broker_time=clock.tick(), positions=positions if positions is not None else [], quotes=quotes or [],
            balance=balance, equity=equity, currency=currency,
        ),
    ).summary  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Pure formulas: worked examples
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("equity", "pct", "level"),
    [
        ("9500", "5", "ok"),  # (10000 − 9500) / 10000 × 100 = 5 %
        ("8500", "15", "warning"),  # 1500 / 10000 = 15 % = warning threshold
        ("8000", "20", "critical"),  # 2000 / 10000 = 20 % = critical threshold
    ],
)
def test_drawdown_examples_against_a_10000_peak(equity, pct, level):
    value = drawdown_pct(peak=D("10000"), equity=D(equity))
    assert value == D(pct)
    assert drawdown_level(pct=value, equity=D(equity), config=defaults()) == level


def test_equity_below_min_equity_is_critical_whatever_the_drawdown():
    # 1 % drawdown but equity 99 < min_equity 100
    assert drawdown_level(pct=D("1"), equity=D("99"), config=defaults()) == "critical"


def test_gap_examples():
    config = GuardConfig()
    # |2049.50 − 1950.00| / 1950.00 × 100 = 99.5 / 19.5 = 5.1025…% → warning (5 ≤ x < 10)
    first = gap_pct(mid=D("2049.50"), previous_mid=D("1950.00"))
    assert first.quantize(D("0.01")) == D("5.10") and gap_level(pct=first, config=config) == "warning"
    # |1890 − 2000| / 2000 × 100 = 5.5 % → warning
    second = gap_pct(mid=D("1890.00"), previous_mid=D("2000.00"))
    assert second == D("5.5") and gap_level(pct=second, config=config) == "warning"
    # 200 / 1950 × 100 = 10.256…% → critical; 4.9 % → ok
    assert gap_level(pct=gap_pct(mid=D("2150"), previous_mid=D("1950")), config=config) == "critical"
    assert gap_level(pct=D("4.9"), config=config) == "ok"


def test_spread_examples():
    config = GuardConfig()
    # (1960.00 − 1950.00) / 1950.00 × 100 = 0.5128…% → warning (above 0.5)
    wide = spread_pct(bid=D("1950.00"), ask=D("1960.00"))
    assert wide.quantize(D("0.01")) == D("0.51") and spread_level(pct=wide, config=config) == "warning"
    # 19.50 / 1950.00 × 100 = 1.00 % → critical (from 1.0)
    widest = spread_pct(bid=D("1950.00"), ask=D("1969.50"))
    assert widest == D("1") and spread_level(pct=widest, config=config) == "critical"
    # exactly 0.5 % is not *above* the warning threshold
    assert spread_level(pct=D("0.5"), config=config) == "ok"


# ---------------------------------------------------------------------------------------------
# Drawdown inside syncs: persistent peak and one alert per episode
# ---------------------------------------------------------------------------------------------
def test_first_snapshot_starts_the_peak_at_max_of_balance_and_equity(user):
    summary = sync(user, Clock(), balance="10000.00", equity="9500.00")
    # peak = max(10000, 9500) = 10000; (10000 − 9500) / 10000 = 5 % → ok
    assert GuardState.objects.get(user=user).peak_equity == D("10000.00")
    assert summary["guards"]["drawdown"]["drawdown_pct"] == "5.0000"
    assert summary["guards"]["drawdown"]["level"] == "ok"


def test_drawdown_episode_opens_escalates_and_resolves_as_one_alert(user):
    clock = Clock()
    sync(user, clock, equity="10000.00")  # peak 10,000
    levels = []
    for equity in ["9500.00", "8500.00", "8400.00", "8000.00", "8000.00", "11000.00"]:
        levels.append(sync(user, clock, balance="10000.00", equity=equity)["guards"]["drawdown"])
    # 5 % ok; 15 % warning (opens); 16 % warning; 20 % critical (escalates); 20 % critical; 11,000 = new peak, 0 %
    assert [d["level"] for d in levels] == ["ok", "warning", "warning", "critical", "critical", "ok"]
    assert [d["drawdown_pct"] for d in levels] == ["5.0000", "15.0000", "16.0000", "20.0000", "20.0000", "0.0000"]
    assert levels[3]["should_close_all"] is True and levels[5]["should_close_all"] is False
    assert levels[5]["peak_equity"] == "11000.00"
    (alert,) = DrawdownAlert.objects.filter(user=user)
    assert (alert.level, alert.max_level, alert.max_value_pct) == ("critical", "critical", D("20.0000"))
    assert alert.escalated_at is not None and alert.resolved_at is not None
    transitions = [
        r.details["transition"] for r in ReconciliationLog.objects.filter(user=user, event_type="guard").order_by("id")
    ]
    assert transitions == ["opened", "escalated", "resolved"]
    # every sync wrote its snapshot with the peak and drawdown
    snapshots = list(EquitySnapshot.objects.filter(user=user).order_by("id"))
    assert len(snapshots) == 7
    assert (snapshots[4].peak_equity, snapshots[4].drawdown_pct, snapshots[4].drawdown_level) == (
        D("10000.00"), D("20.0000"), "critical"
    )  # fmt: skip


def test_peak_persists_across_syncs_and_only_rises(user):
    clock = Clock()
    sync(user, clock, balance="10000.00", equity="10500.00")  # peak 10,500
    sync(user, clock, balance="12000.00", equity="9000.00")  # the balance does not move the peak after the first
    # (10500 − 9000) / 10500 × 100 = 14.2857…% → 14.2857
    assert GuardState.objects.get(user=user).peak_equity == D("10500.00")
    assert EquitySnapshot.objects.filter(user=user).latest("id").drawdown_pct == D("14.2857")


def test_min_equity_makes_the_level_critical(user):
    summary = sync(user, Clock(), balance="100.00", equity="99.00")
    # peak max(100, 99) = 100; 1 % drawdown but 99 < min_equity 100 → critical
    assert summary["guards"]["drawdown"]["level"] == "critical"
    assert summary["guards"]["drawdown"]["below_min_equity"] is True
    assert summary["guards"]["any_positions_should_close"] is True
    assert DrawdownAlert.objects.get(user=user).below_min_equity is True


# ---------------------------------------------------------------------------------------------
# Market alerts
# ---------------------------------------------------------------------------------------------
def test_gap_against_the_previous_quote_of_the_same_user(user, other_user):
    clock = Clock()
    sync(user, clock, quotes=[quote("XAUUSD", "1950.00")])
    sync(other_user, clock, quotes=[quote("XAUUSD", "3000.00")])  # another user's quote is not a reference
    summary = sync(user, clock, quotes=[quote("XAUUSD", "2049.50")])
    (alert,) = [a for a in summary["guards"]["market_alerts"] if a["condition"] == "price_gap"]
    # 99.50 / 1950.00 × 100 = 5.10256…% → 5.1026, warning at threshold 5
    assert (alert["symbol"], alert["level"], alert["value_pct"], alert["threshold_pct"]) == (
        "XAUUSD", "warning", "5.1026", "5.000"
    )  # fmt: skip
    row = MarketAlert.objects.get(user=user, condition="price_gap")
    assert (row.reference_price, row.bid) == (D("1950.00"), D("2049.50"))
    # the next quote without a jump resolves the episode
    sync(user, clock, quotes=[quote("XAUUSD", "2050.00")])
    row.refresh_from_db()
    assert row.resolved_at is not None
    assert not MarketAlert.objects.filter(user=other_user).exists()


def test_wide_spread_episode_is_one_row_over_many_syncs(user):
    # given a held XAUUSD position and a spread that widens to critical, stays, then narrows; gold's pip is
    # 0.10 and its default thresholds 10 / 20 pips (fewer than 20 spreads known: no median yet)
    clock = Clock()
    register(user, 1, symbol="XAUUSD", volume="0.10", requested_price="1950.00")
    held = [broker_position(1, symbol="XAUUSD", volume="0.10", price_open="1950.00")]
    spreads = [("1950.00", "1951.20")] * 3 + [("1950.00", "1952.50")] * 5 + [("1950.00", "1950.30")]
    summaries = [sync(user, clock, positions=held, quotes=[quote("XAUUSD", bid, ask)]) for bid, ask in spreads]
    # then: 1.20 / 0.10 = 12 pips warning ×3, 2.50 / 0.10 = 25 pips critical ×5 (should close the held
    # symbol), 0.30 / 0.10 = 3 pips ok
    spread_alerts = [[a for a in s["guards"]["market_alerts"] if a["condition"] == "wide_spread"] for s in summaries]
    assert [a[0]["level"] if a else "ok" for a in spread_alerts] == ["warning"] * 3 + ["critical"] * 5 + ["ok"]
    # 1.20 / 1950.00 × 100 = 0.061538… % → 0.0615; the warning threshold 10 pips = 1.00 = 0.05128… % → 0.051
    first = spread_alerts[0][0]
    assert (first["value_pct"], first["value_pips"], first["threshold_pct"]) == ("0.0615", "12.00", "0.051")
    assert spread_alerts[3][0]["should_close_positions"] is True
    assert summaries[3]["guards"]["any_positions_should_close"] is True
    (row,) = MarketAlert.objects.filter(user=user, condition="wide_spread")
    # worst 2.50 / 1950.00 × 100 = 0.128205… % → 0.1282; the last (resolving) spread 3 pips
    assert (row.max_level, row.max_value_pct, row.value_pips) == ("critical", D("0.1282"), D("3.00"))
    assert row.resolved_at is not None
    transitions = [
        r.details["transition"]
        for r in ReconciliationLog.objects.filter(
            user=user, event_type="guard", details__condition="wide_spread"
        ).order_by("id")
    ]
    assert transitions == ["opened", "escalated", "resolved"]


def test_critical_market_alert_on_a_symbol_not_held_does_not_close_positions(user):
    summary = sync(user, Clock(), quotes=[quote("XAUUSD", "1950.00", "1969.50")])
    (alert,) = summary["guards"]["market_alerts"]
    assert alert["level"] == "critical" and alert["should_close_positions"] is False
    assert summary["guards"]["any_positions_should_close"] is False


def test_stale_quote_is_a_warning_after_quote_stale_seconds(user):
    # a Wednesday noon: the FX market is open (on a weekend no quote is stale, see test_sessions_sync)
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    t = clock.tick()
    # quote_stale_seconds = 60: a 60 s old quote is fine, a 61 s old one is stale
    fresh = ingest(
        user, sync_payload(broker_time=t, positions=[], quotes=[quote("EURUSD", "1.1", time=t - timedelta(seconds=60))])
    )
    stale = ingest(
        user,
        sync_payload(
            broker_time=t + timedelta(seconds=1),
            positions=[],
            quotes=[quote("GBPUSD", "1.27", time=t - timedelta(seconds=60))],
        ),
    )  # fmt: skip
    assert fresh.summary["guards"]["market_alerts"] == []
    (alert,) = stale.summary["guards"]["market_alerts"]
    assert (alert["symbol"], alert["condition"], alert["level"], alert["age_seconds"]) == (
        "GBPUSD", "stale_quote", "warning", 61
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Config and peak reset
# ---------------------------------------------------------------------------------------------
def test_guard_config_update_validates_like_the_model(user):
    with pytest.raises(ValidationError) as excinfo:
        guard_config_update(
            user_id=user.pk,
            account_id=default_account(user).pk,
            drawdown_warning_pct=D("0.15"),
            drawdown_critical_pct=D("0.20"),
        )
    assert "drawdown_warning_pct" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        guard_config_update(
            user_id=user.pk, account_id=default_account(user).pk, gap_warning_pct=D("12")
        )  # 12 ≥ critical 10
    assert "gap_warning_pct" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        guard_config_update(user_id=user.pk, account_id=default_account(user).pk, user_id_extra=1)
    config = guard_config_update(user_id=user.pk, account_id=default_account(user).pk, drawdown_warning_pct=D("10"))
    assert GuardConfig.objects.get(user=user).drawdown_warning_pct == D("10") == config.drawdown_warning_pct


def test_config_thresholds_apply_to_the_next_sync(user):
    clock = Clock()
    sync(user, clock, equity="10000.00")
    guard_config_update(
        user_id=user.pk, account_id=default_account(user).pk, drawdown_warning_pct=D("4"), drawdown_critical_pct=D("6")
    )
    # 5 % with 4/6 thresholds → warning
    assert sync(user, clock, equity="9500.00")["guards"]["drawdown"]["level"] == "warning"


def test_peak_equity_reset_resolves_the_drawdown_and_logs_who_did_it(user, django_capture_on_commit_callbacks):
    # given a 20 % critical drawdown from a 10,000 peak
    clock = Clock()
    sync(user, clock, equity="10000.00")
    sync(user, clock, equity="8000.00")
    # when an operator resets the peak
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        state = peak_equity_reset(account_id=default_account(user).pk, actor="operator")
    # then: peak = latest equity 8,000, drawdown 0 % → the alert resolves; a guard row names the actor
    assert state.peak_equity == D("8000.00") and state.peak_reset_at is not None
    assert DrawdownAlert.objects.get(user=user).resolved_at is not None
    row = ReconciliationLog.objects.filter(user=user, event_type="guard").latest("id")
    assert row.details["actor"] == "operator"
    assert (row.details["old_peak"], row.details["new_peak"]) == ("10000.00", "8000.00")
    # after commit: the cache generation bump, and the event stream's wake-up for the guard row
    assert len(callbacks) == 2
    # and the next sync measures from the new peak: (8000 − 7600) / 8000 = 5 % → ok
    assert sync(user, clock, equity="7600.00")["guards"]["drawdown"]["drawdown_pct"] == "5.0000"


def test_peak_equity_reset_keeps_a_min_equity_alert_open(user):
    clock = Clock()
    sync(user, clock, balance="1000.00", equity="1000.00")
    sync(user, clock, balance="1000.00", equity="50.00")  # 95 % and below min equity 100
    peak_equity_reset(account_id=default_account(user).pk, actor="operator")
    alert = DrawdownAlert.objects.get(user=user)
    assert alert.resolved_at is None and alert.level == "critical" and alert.value_pct == D("0")


def test_peak_equity_reset_before_any_sync_is_rejected(user):
    with pytest.raises(ValidationError):
        peak_equity_reset(account_id=default_account(user).pk, actor="operator")
