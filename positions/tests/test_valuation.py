"""Valuation: every worked example by hand, sell sign, JPY pips, conversions, a missing rate."""

from decimal import Decimal

import pytest

from positions import valuation
from positions.valuation import render_2dp

D = Decimal


def rates(mids: dict[str, Decimal]) -> list[valuation.Rate]:
    """Conversion rates from plain six-letter pair names (EURUSD: base EUR, profit USD), for the tests."""
    return [valuation.Rate(symbol=name, base=name[:3], profit=name[3:6], mid=mid) for name, mid in mids.items()]


def test_xauusd_buy_gives_52_50_usd_and_0_27_pct():
    # given XAUUSD buy 0.10 lot (100 oz/lot) 1950.50 → 1955.75 in a USD account
    # when
    value = valuation.value_position(
        side="buy",
        volume=D("0.10"),
        price_open=D("1950.50"),
        price_current=D("1955.75"),
        pip_size=D("0.01"),
        contract_size=D("100"),
        quote_currency="USD",
        account_currency="USD",
        rates=[],
    )
    # then 5.25 × 0.10 × 100 = 52.50 USD; 5.25 / 1950.50 × 100 = 0.26916… → 0.27 %; 5.25 / 0.01 = 525 pips
    assert value.quote_pnl == D("52.5")
    assert render_2dp(value.unrealized_pnl) == D("52.50")
    assert render_2dp(value.pnl_pct) == D("0.27")
    assert value.pnl_pips == D("525")


def test_eurusd_sell_gives_plus_50_usd_and_plus_5_pips():
    # given EURUSD sell 1.00 lot (100,000 units) 1.0950 → 1.0945, pip 0.0001
    # when
    value = valuation.value_position(
        side="sell",
        volume=D("1.00"),
        price_open=D("1.0950"),
        price_current=D("1.0945"),
        pip_size=D("0.0001"),
        contract_size=D("100000"),
        quote_currency="USD",
        account_currency="USD",
        rates=[],
    )
    # then d = −1: −1 × (1.0945 − 1.0950) × 1 × 100,000 = +50.00; −1 × −0.0005 / 0.0001 = +5.0 pips
    assert render_2dp(value.unrealized_pnl) == D("50.00")
    assert value.pnl_pips == D("5")
    # −1 × −0.0005 / 1.0950 × 100 = 0.045662… → 0.05 %
    assert render_2dp(value.pnl_pct) == D("0.05")


def test_sell_loses_when_the_price_rises():
    # given a sell whose price went up 1.0950 → 1.0960
    # when
    pnl = valuation.quote_pnl(
        side="sell", price_open=D("1.0950"), price_current=D("1.0960"), volume=D("0.50"), contract_size=D("100000")
    )
    pips = valuation.pnl_pips(side="sell", price_open=D("1.0950"), price_current=D("1.0960"), pip_size=D("0.0001"))
    # then −1 × 0.0010 × 0.50 × 100,000 = −50; −1 × 0.0010 / 0.0001 = −10 pips
    assert pnl == D("-50")
    assert pips == D("-10")


def test_usdjpy_50000_jpy_is_332_23_usd_at_150_50():
    # given USDJPY buy 1.00 lot 150.00 → 150.50 (JPY pip 0.01) and a USDJPY quote whose mid is 150.50
    mids = {"USDJPY": valuation.mid(bid=D("150.49"), ask=D("150.51"))}
    # when
    value = valuation.value_position(
        side="buy",
        volume=D("1.00"),
        price_open=D("150.00"),
        price_current=D("150.50"),
        pip_size=D("0.01"),
        contract_size=D("100000"),
        quote_currency="JPY",
        account_currency="USD",
        rates=rates(mids),
    )
    # then 0.50 × 1 × 100,000 = 50,000 JPY; ACCOUNT/QUOTE = USDJPY → divide: 50,000 / 150.50 = 332.2259… → 332.23
    assert value.quote_pnl == D("50000")
    assert render_2dp(value.unrealized_pnl) == D("332.23")
    # and the JPY pip is 0.01: 0.50 / 0.01 = 50 pips
    assert value.pnl_pips == D("50")


def test_usd_pnl_in_a_gbp_account_divides_by_gbpusd():
    # given 52.50 USD of P&L, a GBP account and GBPUSD bid/ask 1.26930/1.26950 (mid 1.26940), the example
    mids = {"GBPUSD": valuation.mid(bid=D("1.26930"), ask=D("1.26950"))}
    # when
    gbp, _ = valuation.convert_to_account(
        amount=D("52.50"), quote_currency="USD", account_currency="GBP", rates=rates(mids)
    )
    # then ACCOUNT/QUOTE = GBPUSD → divide: 52.50 / 1.26940 = 41.3581… → 41.36 GBP
    assert render_2dp(gbp) == D("41.36")


def test_inverse_pair_multiplies_by_quote_account_mid():
    # given 52.50 USD of P&L (the XAUUSD example) in a CHF account; CHFUSD is not quoted, USDCHF is (mid 0.8800)
    mids = {"USDCHF": valuation.mid(bid=D("0.87990"), ask=D("0.88010"))}
    # when
    chf, _ = valuation.convert_to_account(
        amount=D("52.50"), quote_currency="USD", account_currency="CHF", rates=rates(mids)
    )
    # then QUOTE/ACCOUNT = USDCHF → multiply: 52.50 × 0.8800 = 46.20 CHF
    assert render_2dp(chf) == D("46.20")


def test_direct_pair_wins_over_inverse_pair():
    # given both USDJPY (150.00) and JPYUSD (0.0070) quoted
    mids = {"USDJPY": D("150.00"), "JPYUSD": D("0.0070")}
    # when converting 1,500 JPY to USD
    usd, _ = valuation.convert_to_account(
        amount=D("1500"), quote_currency="JPY", account_currency="USD", rates=rates(mids)
    )
    # then ACCOUNT/QUOTE is used: 1,500 / 150 = 10 (the inverse would give 10.50)
    assert usd == D("10")


def test_missing_rate_gives_none_never_one():
    # given EURJPY P&L in JPY, a USD account and no USDJPY/JPYUSD quote
    # when
    value = valuation.value_position(
        side="buy",
        volume=D("1.00"),
        price_open=D("160.00"),
        price_current=D("160.10"),
        pip_size=D("0.01"),
        contract_size=D("100000"),
        quote_currency="JPY",
        account_currency="USD",
        rates=rates({"EURUSD": D("1.09")}),
    )
    # then the quote-currency P&L exists (0.10 × 100,000 = 10,000 JPY) but the account value does not
    assert value.quote_pnl == D("10000")
    assert value.unrealized_pnl is None
    # and pips/percent still compute: 0.10 / 0.01 = 10 pips
    assert value.pnl_pips == D("10")


def test_unknown_account_currency_gives_none():
    # given no equity snapshot yet, so no account currency
    # when / then
    assert valuation.convert_to_account(amount=D("5"), quote_currency="USD", account_currency=None, rates=[]) == (
        None,
        [],
    )


def test_position_without_prices_is_unvalued():
    # given a position the broker has not priced yet
    # when
    value = valuation.value_position(
        side="buy",
        volume=D("1"),
        price_open=None,
        price_current=None,
        pip_size=D("0.0001"),
        contract_size=D("100000"),
        quote_currency="USD",
        account_currency="USD",
        rates=[],
    )
    # then nothing is computed, and the reason says why
    assert value == valuation.PositionValue(None, None, None, None, reason="no_price")


def test_totals_sum_valued_positions_and_count_unvalued():
    # given +52.50, +50.00, an unvalued position and equity 10,000
    # when
    result = valuation.totals(values=[D("52.50"), D("50.00"), None], equity=D("10000"))
    # then 52.50 + 50.00 = 102.50; 102.50 / 10,000 × 100 = 1.025 % → 1.03 (half-up)
    assert result.total_unrealized_pnl == D("102.50")
    assert render_2dp(result.total_unrealized_pnl_pct) == D("1.03")
    assert result.unvalued_positions == 1


def test_totals_pct_is_none_before_the_first_snapshot():
    # given no equity / when / then
    assert valuation.totals(values=[D("1")], equity=None).total_unrealized_pnl_pct is None


def test_render_rounds_half_up():
    # 0.125 → 0.13 (banker's rounding would give 0.12); −0.125 → −0.13
    assert render_2dp(D("0.125")) == D("0.13")
    assert render_2dp(D("-0.125")) == D("-0.13")
    assert render_2dp(None) is None


def test_unknown_side_raises():
    with pytest.raises(ValueError):
        valuation.direction("long")


def _eurusd(**overrides):
    values = dict(side="buy", volume=Decimal("1"), price_open=Decimal("1.10000"), price_current=Decimal("1.10100"),
                  pip_size=Decimal("0.0001"), contract_size=Decimal("100000"), quote_currency="USD",
                  account_currency="USD")  # fmt: skip
    return valuation.value_position(**{**values, **overrides})


def test_each_unvalued_position_names_its_reason_out_of_range_included():
    # valued: (1.10100 − 1.10000) × 1 × 100000 = 100 USD, no reason
    assert (_eurusd().unrealized_pnl, _eurusd().reason) == (Decimal("100.00000"), None)
    assert _eurusd(contract_size=None).reason == "spec_missing"
    # a EUR account with no EURUSD quote cannot convert USD profit
    assert _eurusd(account_currency="EUR").reason == "no_rate"
    # 10^9 lots from 1 to 10^11: (10^11 − 1) × 10^9 × 10^5 ≈ 10^25 ≥ 10^18 → out_of_range, in the quote currency
    absurd = _eurusd(volume=Decimal("1000000000"), price_open=Decimal("1"), price_current=Decimal("100000000000"))
    assert (absurd.quote_pnl, absurd.unrealized_pnl, absurd.reason) == (None, None, "out_of_range")
    # pnl_pct (10^13 %) and pnl_pips ((10^11 − 1) / 0.0001 ≈ 10^15) are still under 10^18 and shown
    assert absurd.pnl_pips == Decimal("999999999990000")


def test_a_conversion_reaching_10_pow_18_is_out_of_range():
    # 10^12 lots × 100000 × (2 − 1) = 10^17 USD, in range; in a JPY account at USDJPY 150 that is
    # 1.5 × 10^19 JPY ≥ 10^18 → out_of_range (the quote-currency figure is kept)
    value = _eurusd(
        volume=Decimal("1000000000000"),
        price_open=Decimal("1"),
        price_current=Decimal("2"),
        account_currency="JPY",
        rates=rates({"USDJPY": Decimal("150")}),
    )
    assert (value.quote_pnl, value.unrealized_pnl, value.reason) == (Decimal("1E+17"), None, "out_of_range")
