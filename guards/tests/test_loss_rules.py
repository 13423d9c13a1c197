"""Prop-firm loss rules (issue 12): the issue's examples, the firms' published worked examples, resets, episodes."""

from datetime import UTC, datetime, time
from decimal import Decimal as D

from guards.loss_rules import (
    ANCHOR_HIGHEST_EOD_BALANCE,
    MAX_LOSS,
    PRESETS,
    LossRule,
    RuleState,
    evaluate,
    next_reset,
)

FTMO_DAILY, FTMO_MAX = PRESETS["ftmo_2step"]
THE5ERS_DAILY, THE5ERS_MAX = PRESETS["the5ers_high_stakes"]
BREAKOUT_DAILY, BREAKOUT_MAX = PRESETS["breakout_1step_classic"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def run(rule, syncs, *, initial, state=None):
    """Evaluate ``rule`` over ``syncs`` = [(now, balance, equity), …]; returns every result and the last state."""
    state = state or RuleState()
    results = []
    for now, balance, equity in syncs:
        result, state = evaluate(
            rule=rule, state=state, now=now, balance=D(balance), equity=D(equity), initial_capital=D(initial)
        )
        results.append(result)
    return results, state


# ---------------------------------------------------------------------------------------------
# The issue's examples
# ---------------------------------------------------------------------------------------------
def test_issue_example_day_start_100000_equity_94900_breaches_ftmo_daily_loss():
    # FTMO daily: limit = day-start balance 100 000 − 5 % × initial 100 000 = 95 000; 94 900 < 95 000 → breach
    now = utc(2026, 3, 3, 10, 0)
    (start, breach), _ = run(FTMO_DAILY, [(now, "100000", "100000"), (now, "100000", "94900")], initial="100000")
    assert start.level == "ok"
    assert breach.limit_equity == D("95000")
    assert breach.distance_money == D("-100")
    assert breach.level == "critical"
    assert breach.breached_at == now


def test_issue_example_a_floating_peak_falling_back_is_near_no_firm_rule():
    # balance 100 000 all day; equity peaks at 106 000 (floating) and falls back to 100 600.
    # daily: limit 95 000, distance 5 600 > 20 % × 5 000 = 1 000 → ok
    # maximum: limit 100 000 − 10 000 = 90 000, distance 10 600 > 20 % × 10 000 = 2 000 → ok
    syncs = [(utc(2026, 3, 3, 9), "100000", "100000"), (utc(2026, 3, 3, 10), "100000", "106000"),
             (utc(2026, 3, 3, 11), "100000", "100600")]  # fmt: skip
    daily, _ = run(FTMO_DAILY, syncs, initial="100000")
    maximum, _ = run(FTMO_MAX, syncs, initial="100000")
    assert (daily[-1].level, daily[-1].limit_equity, daily[-1].distance_money) == ("ok", D("95000"), D("5600"))
    assert (maximum[-1].level, maximum[-1].limit_equity, maximum[-1].distance_money) == ("ok", D("90000"), D("10600"))


# ---------------------------------------------------------------------------------------------
# FTMO's published worked examples
# ---------------------------------------------------------------------------------------------
def test_ftmo_daily_loss_academy_example_200000_account():
    # https://academy.ftmo.com/lesson/maximum-daily-loss (200 000 account, 5 % = 10 000):
    # (a) a −8 000 day leaves 2 000 of permitted loss: limit 200 000 − 10 000 = 190 000, equity 192 000;
    # (b) Monday closes +4 000 (balance 204 000): permitted loss for the rest of the day 14 000, so a
    #     −13 000 floating loss (equity 191 000) is within the limit until midnight CE(S)T;
    # (c) at midnight the limit becomes 204 000 − 10 000 = 194 000: the same 191 000 equity breaches it.
    monday_morning = utc(2026, 3, 2, 8, 0)  # 09:00 CET
    (a,), _ = run(FTMO_DAILY, [(monday_morning, "200000", "192000")], initial="200000",
                  state=RuleState(day_start_at=utc(2026, 3, 1, 23), day_start_balance=D("200000")))  # fmt: skip
    assert (a.limit_equity, a.distance_money) == (D("190000"), D("2000"))
    before_midnight = utc(2026, 3, 2, 22, 59)  # Monday 23:59 CET
    after_midnight = utc(2026, 3, 2, 23, 0, 1)  # Tuesday 00:00:01 CET
    results, _ = run(
        FTMO_DAILY,
        [(monday_morning, "204000", "204000"), (before_midnight, "204000", "191000"),
         (after_midnight, "204000", "191000")],
        initial="200000", state=RuleState(day_start_at=utc(2026, 3, 1, 23), day_start_balance=D("200000")),
    )  # fmt: skip
    morning, monday_night, tuesday = results
    assert morning.distance_money == D("14000")  # 204 000 − 190 000: the "14 000 permitted loss"
    assert (monday_night.limit_equity, monday_night.breached_at) == (D("190000"), None)
    assert monday_night.level == "warning"  # 1 000 left ≤ 20 % × 10 000
    assert tuesday.trading_day_start == after_midnight.replace(second=0)  # 2026-03-02 23:00 UTC = 00:00 CET
    assert (tuesday.limit_equity, tuesday.level, tuesday.breached_at) == (D("194000"), "critical", after_midnight)


def test_ftmo_maximum_loss_academy_example():
    # https://academy.ftmo.com/?p=47: 100 000 account, equity never below 90 000; balance 92 000 with a
    # floating loss of 2 001 → equity 89 999 < 90 000 → exceeded. Equity exactly 90 000 is not below it.
    now = utc(2026, 3, 3, 10)
    (at_limit,), _ = run(FTMO_MAX, [(now, "92000", "90000")], initial="100000")
    (past,), _ = run(FTMO_MAX, [(now, "92000", "89999")], initial="100000")
    assert (at_limit.limit_equity, at_limit.level) == (D("90000"), "warning")
    assert at_limit.next_reset is None  # a static limit never moves
    assert (past.level, past.distance_money) == ("critical", D("-1"))


def test_ftmo_one_step_trailing_maximum_loss_example():
    # https://ftmo.com/au/?p=1671 (initial 100 000, amount 10 % = 10 000):
    # day 1 limit 90 000; day-1 closing balance 104 000 → day 2 limit 94 000;
    # day-2 closing balance 103 000 → day 3 limit still 104 000 − 10 000 = 94 000 (the highest one counts).
    rule = LossRule(name="FTMO 1-Step maximum loss", kind=MAX_LOSS, anchor=ANCHOR_HIGHEST_EOD_BALANCE,
                    percent=D("10"), timezone="Europe/Prague")  # fmt: skip
    results, _ = run(
        rule,
        [(utc(2026, 3, 2, 9), "100000", "100000"), (utc(2026, 3, 2, 22), "104000", "104000"),  # day 1
         (utc(2026, 3, 3, 9), "104000", "104000"), (utc(2026, 3, 3, 22), "103000", "103000"),  # day 2
         (utc(2026, 3, 4, 9), "103000", "103000")],  # day 3
        initial="100000",
    )  # fmt: skip
    assert [r.limit_equity for r in results] == [D("90000"), D("90000"), D("94000"), D("94000"), D("94000")]
    assert results[0].next_reset == utc(2026, 3, 2, 23)  # midnight CET


# ---------------------------------------------------------------------------------------------
# The5ers and Breakout
# ---------------------------------------------------------------------------------------------
def test_the5ers_daily_loss_takes_the_higher_of_balance_and_equity_at_the_new_york_close():
    # https://help.the5ers.com/…high-stakes-program: 5 % of the higher of the day's starting equity and balance.
    # At the 17:00 New York reset (21:00 UTC in EDT) balance 100 000, equity 102 000 → anchor 102 000;
    # amount 5 % × 102 000 = 5 100; limit 96 900; reaching it is a breach (inclusive).
    before = utc(2026, 6, 1, 20, 59)  # 16:59 EDT
    after = utc(2026, 6, 1, 21, 0, 5)  # 17:00:05 EDT
    results, _ = run(
        THE5ERS_DAILY, [(before, "100000", "102000"), (after, "100000", "97000"), (after, "100000", "96900")],
        initial="100000",
    )  # fmt: skip
    assert results[1].trading_day_start == utc(2026, 6, 1, 21)
    assert (results[1].limit_equity, results[1].loss_amount, results[1].level) == (D("96900"), D("5100"), "warning")
    assert (results[2].level, results[2].breached_at) == ("critical", after)


def test_breakout_daily_loss_published_example_balance_105000_at_0030_utc():
    # https://intercom.help/breakoutprop/…11647189: 1-Step, balance 105 000 at 00:30 UTC → limit 100 800
    # (105 000 − 4 % × 105 000 = 105 000 − 4 200).
    results, _ = run(
        BREAKOUT_DAILY, [(utc(2026, 3, 3, 0, 29), "105000", "105000"), (utc(2026, 3, 3, 0, 31), "105000", "104000")],
        initial="100000", state=RuleState(day_start_at=utc(2026, 3, 2, 0, 30), day_start_balance=D("100000")),
    )  # fmt: skip
    assert results[0].limit_equity == D("96000")  # previous day: 100 000 − 4 000
    assert results[1].limit_equity == D("100800")
    (static,), _ = run(BREAKOUT_MAX, [(utc(2026, 3, 3, 9), "94000", "94000")], initial="100000")
    assert (static.limit_equity, static.level) == (D("94000"), "critical")  # 6 000 static; reaching it breaches


# ---------------------------------------------------------------------------------------------
# Resets and episodes
# ---------------------------------------------------------------------------------------------
def test_next_reset_follows_daylight_saving_time_in_prague():
    # Sat 2026-03-28 12:00 UTC (CET, UTC+1) → Sun 00:00 CET = Sat 23:00 UTC.
    # Sun 2026-03-29 12:00 UTC (CEST since 02:00, UTC+2) → Mon 00:00 CEST = Sun 22:00 UTC.
    assert next_reset(now=utc(2026, 3, 28, 12), reset_time=time(0), timezone="Europe/Prague") == utc(2026, 3, 28, 23)
    assert next_reset(now=utc(2026, 3, 29, 12), reset_time=time(0), timezone="Europe/Prague") == utc(2026, 3, 29, 22)


def test_one_breach_episode_per_trading_day():
    # 10:00 breach (94 900 < 95 000), 11:00 recovered: the day stays critical with the first breach time;
    # after the reset (midnight CET = 23:00 UTC) the new day starts clean: limit 100 000 − 5 000 = 95 000.
    breach_at = utc(2026, 3, 3, 10)
    results, state = run(
        FTMO_DAILY,
        [(utc(2026, 3, 3, 9), "100000", "100000"), (breach_at, "100000", "94900"),
         (utc(2026, 3, 3, 11), "100000", "99000"), (utc(2026, 3, 3, 23, 1), "100000", "99000")],
        initial="100000",
    )  # fmt: skip
    assert [r.level for r in results] == ["ok", "critical", "critical", "ok"]
    assert [r.breached_at for r in results] == [None, breach_at, breach_at, None]
    assert state.day_start_balance == D("100000")


def test_rule_validation_errors():
    bad = LossRule(name="x", kind="weekly", anchor="yesterday", basis="margin", amount=D("100"), percent=D("5"),
                   timezone="Mars/Olympus")  # fmt: skip
    assert set(bad.errors()) == {"kind", "anchor", "basis", "amount", "timezone"}
    assert LossRule(name="x", kind=MAX_LOSS, anchor="initial_capital", percent=D("150")).errors() == {
        "percent": "Must be greater than 0 and at most 100 (percent, 0–100)."
    }
    for preset in PRESETS.values():
        for rule in preset:
            assert rule.errors() == {}
            assert rule.source.startswith("https://")


def test_time_zone_names_that_are_no_zone_are_field_errors():
    # "Europe" is a directory of the tz database, an overlong name is an OSError, "" a ValueError
    for name in ("Europe", "x" * 300, "", "../etc/passwd", "UTC "):
        rule = LossRule(name="x", kind=MAX_LOSS, anchor="initial_capital", percent=D("10"), timezone=name)
        assert set(rule.errors()) == {"timezone"}, name
