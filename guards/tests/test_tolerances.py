"""Instrument-aware tolerances (issue 12): pip sizes, entry/stop tolerances, spread thresholds."""

from decimal import Decimal as D

import pytest

from guards.tolerances import (
    CRYPTO,
    ENTRY,
    FX,
    INDEX,
    METAL,
    PIPS,
    STOP,
    RollingMedian,
    SpreadThreshold,
    asset_class,
    instrument_tolerances,
    pip_size,
    spread_measure,
    tolerance,
    within,
)


@pytest.mark.parametrize(
    ("symbol", "digits", "point", "klass", "pip"),
    [
        ("EURUSD", 5, "0.00001", FX, "0.0001"),  # 10 × point for 5 digits
        ("USDJPY", 3, "0.001", FX, "0.01"),
        ("XAUUSD", 2, "0.01", METAL, "0.10"),  # the issue: traders quote gold in 0.10, not 0.01
        ("XAGUSD", 3, "0.001", METAL, "0.01"),
        ("US30", 1, "0.1", INDEX, "1.0"),
        ("GER40.cash", 2, "0.01", INDEX, "1.0"),
        ("BTCUSD", 2, "0.01", CRYPTO, "0.01"),  # no market convention: the point, tolerances in % instead
    ],
)
def test_pip_size_by_class(symbol, digits, point, klass, pip):
    assert asset_class(symbol) == klass
    assert pip_size(symbol=symbol, digits=digits, point=D(point)) == D(pip)


def test_calc_mode_cfdindex_makes_any_name_an_index_and_an_override_wins():
    assert asset_class("MYINDEX", calc_mode=3) == INDEX
    assert pip_size(symbol="XAUUSD", digits=2, point=D("0.01"), override=D("0.01")) == D("0.01")


def test_issue_example_gold_2000_00_filled_2000_05_is_inside_the_entry_tolerance():
    # metal floor = 0.02 % × 2000 = 0.40; |2000.05 − 2000.00| = 0.05 ≤ 0.40 (0.5 pip of 0.10, not "5 pips")
    tol = tolerance(spec=ENTRY, klass=METAL, price=D("2000.00"), pip=D("0.10"))
    assert tol == D("0.40")
    assert within(expected=D("2000.00"), actual=D("2000.05"), tolerance=tol)
    # with a recent median spread of 0.30: max(0.40, 1.5 × 0.30 = 0.45) = 0.45
    assert tolerance(spec=ENTRY, klass=METAL, price=D("2000"), pip=D("0.10"), median_spread=D("0.30")) == D("0.45")


def test_issue_example_bitcoin_60000_filled_60005_is_inside_the_entry_tolerance():
    # crypto floor = 5 × 0.02 % = 0.1 % × 60 000 = 60; |60005 − 60000| = 5 ≤ 60
    tol = tolerance(spec=ENTRY, klass=CRYPTO, price=D("60000.00"), pip=D("0.01"))
    assert tol == D("60")
    assert within(expected=D("60000.00"), actual=D("60005.00"), tolerance=tol)
    assert not within(expected=D("60000.00"), actual=D("60060.01"), tolerance=tol)


def test_fx_entry_tolerance_is_two_pips_or_one_and_a_half_median_spreads():
    # 2 pips = 0.0002: a 3-pip fill (1.10030 for 1.10000) is outside …
    tol = tolerance(spec=ENTRY, klass=FX, price=D("1.10000"), pip=D("0.0001"))
    assert tol == D("0.0002")
    assert not within(expected=D("1.10000"), actual=D("1.10030"), tolerance=tol)
    # … unless the market's usual spread is 2.5 pips: 1.5 × 0.00025 = 0.000375 ≥ 0.0003
    wide = tolerance(spec=ENTRY, klass=FX, price=D("1.1"), pip=D("0.0001"), median_spread=D("0.00025"))
    assert wide == D("0.000375")
    assert within(expected=D("1.10000"), actual=D("1.10030"), tolerance=wide)


def test_stop_tolerance_floors():
    # FX 1 pip; index 0.01 % × 20 000 = 2 points
    assert tolerance(spec=STOP, klass=FX, price=D("1.1"), pip=D("0.0001")) == D("0.0001")
    assert tolerance(spec=STOP, klass=INDEX, price=D("20000"), pip=D("1")) == D("2")


def test_issue_example_a_20_pip_eurusd_spread_is_flagged():
    # 1.10200 − 1.10000 = 0.00200 = 20 pips; class default critical at 10 pips → critical
    # (the old rule read 0.18 % < 0.5 % as ok)
    m = spread_measure(bid=D("1.10000"), ask=D("1.10200"), pip=D("0.0001"), klass=FX)
    assert (m.level, m.unit, m.value, m.threshold, m.pips) == ("critical", "pips", D("20"), D("10"), D("20"))
    # with a rolling median of 2 pips: 20 / 2 = 10 × ≥ 6 × → critical
    m = spread_measure(bid=D("1.10000"), ask=D("1.10200"), pip=D("0.0001"), klass=FX, median_spread=D("0.0002"))
    assert (m.level, m.unit, m.value) == ("critical", "median_multiple", D("10"))


def test_normal_spreads_are_ok_and_per_symbol_thresholds_win():
    # 1 pip EURUSD → ok; 6 pips with a 2-pip median → 3 × = warning
    assert spread_measure(bid=D("1.10000"), ask=D("1.10010"), pip=D("0.0001"), klass=FX).level == "ok"
    m = spread_measure(bid=D("1.10000"), ask=D("1.10060"), pip=D("0.0001"), klass=FX, median_spread=D("0.0002"))
    assert (m.level, m.value) == ("warning", D("3"))
    # an exotic pair whose normal spread is 30 pips: thresholds 50 / 100 pips → 20 pips is ok
    exotic = SpreadThreshold(unit=PIPS, warning=D("50"), critical=D("100"))
    assert spread_measure(bid=D("1.1"), ask=D("1.102"), pip=D("0.0001"), klass=FX, threshold=exotic).level == "ok"
    # gold 2000.00/2000.30 = 0.015 % < 0.05 % → ok
    assert spread_measure(bid=D("2000.00"), ask=D("2000.30"), pip=D("0.10"), klass=METAL).level == "ok"


def test_rolling_median_ignores_one_bad_tick_and_keeps_the_last_values():
    window = RollingMedian([D("1"), D("2"), D("100")], size=3)
    assert window.median == D("2")
    window.add(D("3"))  # drops the oldest (1): [2, 100, 3] → 3
    assert window.median == D("3")
    assert RollingMedian().median is None


def test_instrument_tolerances_bundle_the_pip_and_both_tolerances():
    # XAUUSD (2 digits, point 0.01) at 2000: pip 0.10; entry 0.02 % × 2000 = 0.40; stop 0.01 % × 2000 = 0.20
    gold = instrument_tolerances(symbol="XAUUSD", digits=2, point=D("0.01"), price=D("2000"))
    assert (gold.klass, gold.pip, gold.entry, gold.stop) == (METAL, D("0.10"), D("0.40"), D("0.20"))
    # EURUSD: pip 0.0001, entry 2 pips, stop 1 pip
    eur = instrument_tolerances(symbol="EURUSD", digits=5, point=D("0.00001"), price=D("1.1"))
    assert (eur.pip, eur.entry, eur.stop) == (D("0.0001"), D("0.0002"), D("0.0001"))
