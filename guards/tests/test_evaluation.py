"""Margin and loss-rule evaluation of one sync: summaries, hysteresis and the events to log."""

from datetime import UTC, datetime
from decimal import Decimal as D

from guards.evaluation import evaluate_margin, evaluate_rules, transition_between
from guards.loss_rules import PRESETS, RuleState
from guards.margin import Exposure

EURUSD_1_LOT = Exposure(symbol="EURUSD", net_lots=D("1"), contract_size=D("100000"), pip_size=D("0.0001"),
                        price=D("1.1"))  # fmt: skip


def account(equity, margin="950", **levels):
    return {"balance": D("1000"), "equity": D(equity), "margin": D(margin), **levels}


def test_issue_margin_example_in_the_summary_with_the_brokers_levels():
    # equity 960, margin 950, call 100 %, stop-out 50 %: margin level 101.05 % → warning (≤ 110);
    # stop-out equity 475, distance 485 = 50.52 % of equity; 1 lot EURUSD: 485 / 10 USD = 48.5 pips
    summary, status, level, event = evaluate_margin(
        account=account("960", margin_so_mode=0, margin_so_call=D("100"), margin_so_so=D("50")),
        previous_level=None, exposures=[EURUSD_1_LOT],
    )  # fmt: skip
    assert level == summary["level"] == "warning"
    assert summary["margin_level_pct"] == "101.0526"
    assert summary["levels_source"] == "broker"
    assert (summary["stop_out_equity"], summary["distance_to_stop_out"]) == ("475.00", "485.00")
    assert summary["distance_to_stop_out_pct"] == "50.5208"  # 485 / 960 × 100 = 50.52083…
    assert summary["adverse_move"] == {"symbol": "EURUSD", "pips": "48.5000", "price_move": "0.00485"}
    assert summary["should_close_all"] is False
    assert (event.kind, event.transition, event.level) == ("margin", "opened", "warning")


def test_without_the_brokers_levels_the_typical_ones_are_used_and_said_so():
    summary, *_ = evaluate_margin(account=account("960"), previous_level=None)
    assert (summary["margin_call_level_pct"], summary["stop_out_level_pct"]) == ("100.0000", "50.0000")
    assert summary["levels_source"] == "default"


def test_margin_critical_closes_and_hysteresis_holds_it():
    levels = {"margin_so_mode": 0, "margin_so_call": D("100"), "margin_so_so": D("50")}
    # 650 / 950 = 68.4 % ≤ 70 → critical, close signal
    summary, _, level, event = evaluate_margin(account=account("650", **levels), previous_level="warning")
    assert (level, summary["should_close_all"], event.transition) == ("critical", True, "escalated")
    # 684 / 950 = 72 %: above 70 but not beyond 70 + 5 → still critical, no event
    summary, _, level, event = evaluate_margin(account=account("684", **levels), previous_level="critical")
    assert (level, event) == ("critical", None)
    # 1140 / 950 = 120 % > 110 + 5 → ok, resolved (reported at the level it left)
    _, _, level, event = evaluate_margin(account=account("1140", **levels), previous_level="critical")
    assert (level, event.transition, event.level) == ("ok", "resolved", "critical")


def test_no_margin_in_use_reads_ok():
    summary, _, level, event = evaluate_margin(account=account("1000", margin="0"), previous_level=None)
    assert (level, summary["margin_level_pct"], event) == ("ok", None, None)


def test_rules_breach_is_one_critical_event_per_trading_day():
    # FTMO on 100 000: day start 100 000 → limit 95 000; 94 900 breaches (event), 94 800 later the same day
    # does not log again; the next day (after midnight Prague = 23:00 UTC in March) resolves the episode.
    rules = PRESETS["ftmo_2step"]
    states = [RuleState()] * len(rules)
    events_by_sync = []
    syncs = [((3, 9, 0), "100000"), ((3, 10, 0), "94900"), ((3, 11, 0), "94800"), ((3, 23, 5), "96000")]
    for (day, hour, minute), equity in syncs:
        now = datetime(2026, 3, day, hour, minute, tzinfo=UTC)
        summaries, states, events = evaluate_rules(
            rules=zip(rules, states, strict=True), now=now, balance=D("100000"), equity=D(equity),
            initial_capital=D("100000"),
        )  # fmt: skip
        events_by_sync.append([(e.kind, e.transition, e.details["name"]) for e in events])
    daily = "FTMO maximum daily loss"
    assert events_by_sync == [[], [("loss_rule", "breached", daily)], [], [("loss_rule", "resolved", daily)]]
    assert summaries[0]["limit_equity"] == "95000.00"
    assert summaries[0]["next_reset"] == "2026-03-04T23:00:00+00:00"
    assert summaries[1]["limit_equity"] == "90000.00" and summaries[1]["next_reset"] is None


def test_transitions():
    assert transition_between(None, "warning") == "opened"
    assert transition_between("warning", "critical") == "escalated"
    assert transition_between("critical", "warning") is None
    assert transition_between("warning", "ok") == "resolved"
    assert transition_between(None, "ok") is None
