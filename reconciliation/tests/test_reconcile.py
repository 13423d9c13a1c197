"""Pure reconciliation rules: comparison of one position, inferred closes, deal reasons."""

from decimal import Decimal as D

import pytest

from positions.models import Instrument, Position
from reconciliation.reconcile import close_reason_for_deal, compare, infer_close_reason

pytestmark = pytest.mark.django_db


def ledger(symbol="EURUSD", side="buy", volume="1.00", requested="1.09500", sl=None, tp=None, **extra):
    return Position(
        ticket=1,
        symbol=symbol,
        side=side,
        volume=D(volume),
        requested_price=D(requested) if requested else None,
        sl=D(sl) if sl else None,
        tp=D(tp) if tp else None,
        **extra,
    )


def broker(side="buy", volume="1.00", price_open="1.09500", sl=None, tp=None):
    return {
        "type": side,
        "volume": D(volume),
        "price_open": D(price_open),
        "sl": D(sl) if sl else None,
        "tp": D(tp) if tp else None,
    }


def instrument(symbol="EURUSD"):
    return Instrument.objects.get(symbol=symbol)


def test_compare_exact_match_has_no_reasons():
    assert compare(ledger=ledger(sl="1.09000"), broker=broker(sl="1.09000"), instrument=instrument()) == {}


def test_compare_entry_slippage_buy_filled_higher_is_adverse():
    # EURUSD pip 0.0001: 1.09530 − 1.09500 = 0.00030 = +3.00 pips > 2 pips tolerance
    reasons = compare(ledger=ledger(), broker=broker(price_open="1.09530"), instrument=instrument())
    assert list(reasons) == ["entry_slippage"]
    assert reasons["entry_slippage"]["delta_pips"] == "3.00"
    assert reasons["entry_slippage"]["adverse"] is True


def test_compare_entry_slippage_buy_filled_lower_is_favourable():
    # 1.09470 − 1.09500 = −0.00030 = −3.00 pips: the buy got a better price
    reasons = compare(ledger=ledger(), broker=broker(price_open="1.09470"), instrument=instrument())
    assert reasons["entry_slippage"]["delta_pips"] == "-3.00"
    assert reasons["entry_slippage"]["adverse"] is False


def test_compare_entry_slippage_sell_side_signs():
    # sell filled at 1.09470: −3.00 pips, worse for a sell (sold lower than asked)
    lower = compare(
        ledger=ledger(side="sell"), broker=broker(side="sell", price_open="1.09470"), instrument=instrument()
    )
    # sell filled at 1.09530: +3.00 pips, better for a sell
    higher = compare(
        ledger=ledger(side="sell"), broker=broker(side="sell", price_open="1.09530"), instrument=instrument()
    )
    assert (lower["entry_slippage"]["delta_pips"], lower["entry_slippage"]["adverse"]) == ("-3.00", True)
    assert (higher["entry_slippage"]["delta_pips"], higher["entry_slippage"]["adverse"]) == ("3.00", False)


def test_compare_entry_within_two_pips_is_matched():
    # 1.09520 − 1.09500 = 2.0 pips: not more than the 2-pip tolerance
    assert compare(ledger=ledger(), broker=broker(price_open="1.09520"), instrument=instrument()) == {}


def test_compare_jpy_pip_size_is_one_hundredth():
    # USDJPY: 3 digits, point 0.001 → pip 0.01. 150.035 − 150.000 = 0.035 = 3.50 pips
    reasons = compare(
        ledger=ledger(symbol="USDJPY", requested="150.000"),
        broker=broker(price_open="150.035"),
        instrument=instrument("USDJPY"),
    )
    assert reasons["entry_slippage"]["delta_pips"] == "3.50"
    # and 150.015 is 1.5 pips: within tolerance (it would be 15 pips with a 0.001 pip)
    assert (
        compare(
            ledger=ledger(symbol="USDJPY", requested="150.000"),
            broker=broker(price_open="150.015"),
            instrument=instrument("USDJPY"),
        )
        == {}
    )


def test_compare_partial_fill_and_volume_mismatch_with_lot_deltas():
    # broker 0.60 of 1.00 lots: partial fill, 0.60 − 1.00 = −0.40 lots
    partial = compare(ledger=ledger(), broker=broker(volume="0.60"), instrument=instrument())
    # broker 1.20 of 1.00 lots: volume mismatch, +0.20 lots
    over = compare(ledger=ledger(), broker=broker(volume="1.20"), instrument=instrument())
    assert partial == {
        "partial_fill": {"expected": "1.00", "actual": "0.60", "delta_lots": "-0.40", "volume_step": "0.01"}
    }
    assert list(over) == ["volume_mismatch"] and over["volume_mismatch"]["delta_lots"] == "0.20"


def test_compare_volume_matches_to_the_instrument_step():
    # a 0.10-lot step instrument: 1.04 and 1.00 are both 10 steps when rounded → no divergence
    gold = instrument("XAUUSD")
    gold.volume_step = D("0.10")
    assert compare(ledger=ledger(symbol="XAUUSD", requested=None), broker=broker(volume="1.04"), instrument=gold) == {}


def test_compare_side_mismatch():
    reasons = compare(ledger=ledger(side="buy"), broker=broker(side="sell"), instrument=instrument())
    assert reasons["side_mismatch"] == {"expected": "buy", "actual": "sell"}


def test_compare_sl_and_tp_tolerance_is_one_pip():
    # SL 1.09008 vs 1.09000: 0.8 pip → same; TP 1.10020 vs 1.10000: 2.00 pips → tp_mismatch
    reasons = compare(
        ledger=ledger(sl="1.09000", tp="1.10000"),
        broker=broker(sl="1.09008", tp="1.10020"),
        instrument=instrument(),
    )
    assert list(reasons) == ["tp_mismatch"]
    assert reasons["tp_mismatch"]["delta_pips"] == "2.00"


def test_compare_missing_stop_at_the_broker_is_a_mismatch_without_delta():
    reasons = compare(ledger=ledger(sl="1.09000"), broker=broker(sl=None), instrument=instrument())
    # EURUSD stop tolerance: 1 pip = 0.0001 (the FX floor; no median spread known)
    assert reasons["sl_mismatch"] == {
        "expected": "1.09000", "actual": None, "delta_pips": None, "tolerance_pips": "1.00", "tolerance": "0.0001"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "expected"),
    [(0, "closed_manually"), (1, "closed_manually"), (2, "closed_manually"), (3, "closed_by_bot"), (4, "sl_hit"),
     (5, "tp_hit"), (6, "stop_out"), (7, "closed_externally"), (99, "closed_externally")],
)  # fmt: skip
def test_close_reason_for_deal_maps_mt5_reasons(reason, expected):
    assert close_reason_for_deal(reason) == expected


@pytest.mark.parametrize(
    ("side", "price", "sl", "tp", "expected"),
    [
        # buy TP 1.10000: last bid 1.09995 ≥ 1.10000 − 0.0001 → tp_hit
        ("buy", "1.09995", "1.09000", "1.10000", "tp_hit"),
        # buy TP 1.10000: last bid 1.09980 < 1.09990 → not reached; SL 1.09 not reached → external
        ("buy", "1.09980", "1.09000", "1.10000", "closed_externally"),
        # buy SL 1.09000: last bid 1.09008 ≤ 1.09000 + 0.0001 → sl_hit
        ("buy", "1.09008", "1.09000", "1.10000", "sl_hit"),
        # sell TP 1.09000: last ask 1.09009 ≤ 1.09010 → tp_hit
        ("sell", "1.09009", "1.10000", "1.09000", "tp_hit"),
        # sell SL 1.10000: last ask 1.09992 ≥ 1.09990 → sl_hit
        ("sell", "1.09992", "1.10000", "1.09000", "sl_hit"),
        # no stops at all → external
        ("sell", "1.09500", None, None, "closed_externally"),
    ],
)
def test_infer_close_reason_from_the_last_seen_price(side, price, sl, tp, expected):
    position = ledger(side=side, sl=sl, tp=tp, price_current=D(price))
    reason, details = infer_close_reason(position=position, instrument=instrument())
    assert reason == expected
    assert details["last_price"] == price


def test_infer_close_reason_uses_the_brokers_stop_when_it_diverged():
    # ledger SL 1.09000 but the broker's SL was moved to 1.09400 (sl_mismatch); last bid 1.09405 → sl_hit
    position = ledger(
        sl="1.09000",
        price_current=D("1.09405"),
        divergence_reasons=["sl_mismatch"],
        divergence_details={"sl_mismatch": {"expected": "1.09000", "actual": "1.09400"}},
    )
    assert infer_close_reason(position=position, instrument=instrument())[0] == "sl_hit"
