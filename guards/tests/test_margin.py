"""Margin guard (issue 12): margin level, call and stop-out levels, distance, adverse move, inferred stop-out."""

from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from guards.margin import (
    SO_MODE_MONEY,
    SO_MODE_PERCENT,
    Exposure,
    adverse_move_pips,
    is_inferred_stop_out,
    margin_level_pct,
    margin_status,
)


def q2(value: D) -> D:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def test_issue_example_equity_960_margin_950_is_a_warning_not_ok():
    # margin level = 960 / 950 × 100 = 101.0526… % → 101.05 %
    # call 100 %, stop-out 50 % (percent mode); warning at ≤ 100 + 10 = 110 %, critical at ≤ 50 + 20 = 70 %
    # 101.05 ≤ 110 → warning; 101.05 > 70 → not critical.
    # stop-out equity = 950 × 50 / 100 = 475; distance = 960 − 475 = 485 = 485 / 960 × 100 = 50.52 % of equity
    status = margin_status(equity=D("960"), margin=D("950"), so_mode=SO_MODE_PERCENT, so_call=D("100"), so_so=D("50"))
    assert q2(status.margin_level_pct) == D("101.05")
    assert status.level == "warning"
    assert (status.warning_at_pct, status.critical_at_pct) == (D("110"), D("70"))
    assert status.stop_out_equity == D("475")
    assert status.distance_money == D("485")
    assert q2(status.distance_pct) == D("50.52")
    assert status.at_or_under_stop_out is False


def test_without_a_buffer_the_warning_is_the_brokers_own_call_level():
    # buffer 0 → warning at ≤ 100 %; 101.05 % is above it → ok; 950 / 950 = 100 % → warning
    common = {"margin": D("950"), "so_mode": SO_MODE_PERCENT, "so_call": D("100"), "so_so": D("50")}
    assert margin_status(equity=D("960"), warning_buffer_pct=D("0"), **common).level == "ok"
    assert margin_status(equity=D("950"), warning_buffer_pct=D("0"), **common).level == "warning"


@pytest.mark.parametrize(
    ("equity", "level"),
    [
        ("1045", "warning"),  # 1045 / 950 = 110 % = warning threshold (inclusive)
        ("1046", "ok"),  # 110.105… % > 110
        ("665", "critical"),  # 665 / 950 = 70 % = critical threshold (inclusive)
        ("666", "warning"),  # 70.105… % > 70
        ("475", "critical"),  # 50 % = stop-out level
    ],
)
def test_level_boundaries_in_margin_level_points(equity, level):
    status = margin_status(equity=D(equity), margin=D("950"), so_mode=SO_MODE_PERCENT, so_call=D("100"), so_so=D("50"))
    assert status.level == level


def test_money_mode_levels_are_equity_amounts_converted_to_margin_levels():
    # money mode: call at equity 950, stop-out at equity 475; margin 950 → 100 % and 50 % as margin levels,
    # so the issue's example reads exactly as in percent mode.
    status = margin_status(equity=D("960"), margin=D("950"), so_mode=SO_MODE_MONEY, so_call=D("950"), so_so=D("475"))
    assert (status.call_level_pct, status.stop_out_level_pct) == (D("100"), D("50"))
    assert status.level == "warning"
    assert status.stop_out_equity == D("475")
    assert status.distance_money == D("485")


def test_no_margin_in_use_is_ok_and_measures_nothing():
    # MT5 reports margin_level 0 when margin is 0: "no exposure", not "at stop-out"
    assert margin_level_pct(equity=D("1000"), margin=D("0"), reported=D("0")) is None
    status = margin_status(equity=D("1000"), margin=D("0"), so_mode=SO_MODE_PERCENT, so_call=D("100"), so_so=D("50"))
    assert status.level == "ok"
    assert status.margin_level_pct is None
    assert status.at_or_under_stop_out is False


def test_the_brokers_reported_margin_level_wins_over_the_computed_one():
    assert margin_level_pct(equity=D("960"), margin=D("950"), reported=D("101.04")) == D("101.04")
    # absent → computed: 960 / 950 × 100
    assert q2(margin_level_pct(equity=D("960"), margin=D("950"))) == D("101.05")


def test_adverse_move_of_the_largest_net_exposure():
    # EURUSD buy 1.50 + sell 0.50 → net +1.00 lot; notional 1 × 100 000 × 1.10 = 110 000 USD;
    # one pip = 1 × 100 000 × 0.0001 = 10 USD.
    # XAUUSD net 0.10 lot: notional 0.1 × 100 × 2000 = 20 000 USD (smaller); one pip (0.10) = 1 USD.
    # distance to stop-out 485 USD (issue example) → 485 / 10 = 48.5 pips = 0.00485 in price.
    exposures = [
        Exposure(symbol="XAUUSD", net_lots=D("0.10"), contract_size=D("100"), pip_size=D("0.10"), price=D("2000")),
        Exposure(
            symbol="EURUSD", net_lots=D("1.50") - D("0.50"), contract_size=D("100000"), pip_size=D("0.0001"),
            price=D("1.10000"),
        ),
    ]  # fmt: skip
    move = adverse_move_pips(distance_money=D("485"), exposures=exposures)
    assert move.symbol == "EURUSD"
    assert move.pips == D("48.5")
    assert move.price_move == D("0.00485")


def test_adverse_move_converts_the_pip_value_to_the_account_currency():
    # USDJPY net −2.00 lots on a USD account: one pip = 2 × 100 000 × 0.01 JPY = 2000 JPY; rate JPY→USD 1/150
    # → 13.333… USD per pip; 400 USD / 13.333… = 30 pips.
    exposure = Exposure(
        symbol="USDJPY", net_lots=D("-2"), contract_size=D("100000"), pip_size=D("0.01"), price=D("150"),
        rate=D("1") / D("150"),
    )  # fmt: skip
    move = adverse_move_pips(distance_money=D("400"), exposures=[exposure])
    assert q2(move.pips) == D("30.00")


def test_no_net_exposure_has_no_adverse_move():
    flat = Exposure(symbol="EURUSD", net_lots=D("0"), contract_size=D("100000"), pip_size=D("0.0001"), price=D("1.1"))
    assert adverse_move_pips(distance_money=D("485"), exposures=[flat]) is None


def test_inferred_stop_out_needs_no_deal_and_a_last_level_at_or_under_stop_out():
    args = {"margin": D("950"), "so_mode": SO_MODE_PERCENT, "so_call": D("100"), "so_so": D("50")}
    at_stop_out = margin_status(equity=D("475"), **args)  # 50 % = stop-out level
    under = margin_status(equity=D("400"), **args)  # 42.1 %
    above = margin_status(equity=D("476"), **args)  # 50.105… % > 50
    assert (at_stop_out.at_or_under_stop_out, under.at_or_under_stop_out, above.at_or_under_stop_out) == (
        True, True, False
    )  # fmt: skip
    assert is_inferred_stop_out(closed_with_deal=False, last_at_or_under_stop_out=at_stop_out.at_or_under_stop_out)
    assert is_inferred_stop_out(closed_with_deal=False, last_at_or_under_stop_out=under.at_or_under_stop_out)
    assert not is_inferred_stop_out(closed_with_deal=False, last_at_or_under_stop_out=above.at_or_under_stop_out)
    # the deal's reason decides
    assert not is_inferred_stop_out(closed_with_deal=True, last_at_or_under_stop_out=under.at_or_under_stop_out)
    assert not is_inferred_stop_out(closed_with_deal=False, last_at_or_under_stop_out=None)  # never measured
