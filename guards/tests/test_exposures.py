"""Net exposures for the margin guard's adverse move, valued through the account's quoted rates.

The conversion API changed under this function (rates matched by currency, not by concatenated
names): these tests call it as the sync does, so a signature drift fails here, not in a sync.
"""

from decimal import Decimal as D
from types import SimpleNamespace

from guards.account_guards import exposures_of

USDJPY = SimpleNamespace(currency_base="USD", currency_profit="JPY", contract_size=D("100000"), pip_size=D("0.01"))
EURUSD = SimpleNamespace(currency_base="EUR", currency_profit="USD", contract_size=D("100000"), pip_size=D("0.0001"))


def position(symbol, side, volume, price):
    return SimpleNamespace(symbol=symbol, side=side, volume=D(volume), price_current=D(price))


def test_a_jpy_quoted_exposure_in_a_usd_account_is_converted_by_the_pair_itself():
    # given a USD account long 1.00 and short 0.40 USDJPY (net +0.60), USDJPY mid 150.00
    exposures = exposures_of(
        positions=[position("USDJPY", "buy", "1.00", "150.00"), position("USDJPY", "sell", "0.40", "150.00")],
        instruments={"USDJPY": USDJPY},
        mids={"USDJPY": D("150.00")},
        account_currency="USD",
    )
    # then one exposure of +0.60 lots whose 1 JPY is worth 1 / 150 USD (divide by the USDJPY mid)
    (exposure,) = exposures
    assert exposure.symbol == "USDJPY" and exposure.net_lots == D("0.60")
    assert exposure.rate == D(1) / D("150.00")
    assert exposure.price == D("150.00")


def test_a_usd_quoted_exposure_in_a_usd_account_needs_no_rate_and_an_unconvertible_one_is_left_out():
    # given a USD account holding EURUSD (quote USD) and USDJPY with no USDJPY quote (no way to JPY→USD)
    exposures = exposures_of(
        positions=[position("EURUSD", "sell", "2.00", "1.10000"), position("USDJPY", "buy", "1.00", "150.00")],
        instruments={"EURUSD": EURUSD, "USDJPY": USDJPY},
        mids={"EURUSD": D("1.10000")},
        account_currency="USD",
    )
    # then EURUSD is −2.00 lots at rate 1, and USDJPY is left out (its adverse move cannot be valued)
    assert [(e.symbol, e.net_lots, e.rate) for e in exposures] == [("EURUSD", D("-2.00"), D("1"))]
