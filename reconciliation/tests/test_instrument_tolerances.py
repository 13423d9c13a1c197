"""Instrument-aware entry and SL/TP tolerances, end to end through the sync (issue 12's examples, flipped).

Before: every symbol allowed 2 pips (entry) and 1 pip (stops) of 10 × point or the point, so gold filled
0.05 from the request read "5 pips" of 0.01 and bitcoin 5.00 from it "500 pips": both ``entry_slippage``.
Now the tolerance is max(floor, 1.5 × the rolling median spread): floors 2 / 1 pips for FX, 0.02 % / 0.01 %
of price for metals and indices, 0.1 % / 0.05 % for crypto (``guards.tolerances``).
"""

from decimal import Decimal as D

import pytest

from guards.models import InstrumentGuardSetting, SymbolSpread
from positions.models import Position
from reconciliation.tests.factories import Clock, broker_position, ingest, quote, register, sync_payload

pytestmark = pytest.mark.django_db


def _sync(user, clock, *, positions, quotes=()):
    return ingest(user, sync_payload(broker_time=clock.tick(), positions=positions, quotes=list(quotes))).summary


def _reasons(summary) -> dict[str, dict]:
    return {d["reason"]: d for d in summary["divergences"]}


@pytest.mark.parametrize(
    ("side", "mt5_type", "filled"),
    [("buy", 0, "2000.05"), ("sell", 1, "1999.95")],  # the buy filled 0.05 higher, the sell 0.05 lower
)
def test_gold_filled_inside_the_spread_is_not_slippage(user, side, mt5_type, filled):
    # gold requested 2000.00, spread ~0.30; entry tolerance = 0.02 % × 2000.00 = 0.40 (no median yet);
    # |filled − 2000.00| = 0.05 ≤ 0.40 → matched (main: 0.05 / 0.01 = 5 pips > 2 pips → entry_slippage)
    clock = Clock()
    register(user, 1, symbol="XAUUSD", side=side, volume="0.10", requested_price="2000.00")
    held = [broker_position(1, symbol="XAUUSD", type=mt5_type, volume="0.10", price_open=filled)]
    summary = _sync(user, clock, positions=held, quotes=[quote("XAUUSD", "2000.00", "2000.30")])
    assert "entry_slippage" not in _reasons(summary)
    assert Position.objects.get(user=user, ticket=1).matched is True


@pytest.mark.parametrize(("side", "mt5_type", "filled"), [("buy", 0, "60005.00"), ("sell", 1, "59995.00")])
def test_bitcoin_filled_five_dollars_away_is_not_slippage(user, side, mt5_type, filled):
    # crypto entry tolerance = 0.1 % × 60 000.00 = 60.00; |filled − 60 000.00| = 5.00 ≤ 60
    # (main: 5.00 / 0.01 = 500 pips > 2 pips → entry_slippage)
    clock = Clock()
    register(user, 1, symbol="BTCUSD", side=side, volume="0.10", requested_price="60000.00")
    held = [broker_position(1, symbol="BTCUSD", type=mt5_type, volume="0.10", price_open=filled)]
    summary = _sync(user, clock, positions=held, quotes=[quote("BTCUSD", "60000.00", "60020.00")])
    assert "entry_slippage" not in _reasons(summary)


@pytest.mark.parametrize(
    ("side", "mt5_type", "filled", "delta_pips"),
    [("buy", 0, "1.10030", "3.00"), ("sell", 1, "1.09970", "-3.00")],  # both worse for the trader
)
def test_eurusd_three_pip_slip_at_a_normal_spread_is_still_flagged(user, side, mt5_type, filled, delta_pips):
    # 20 syncs at a 0.2-pip spread (1.10000/1.10002) make the median 0.00002; tolerance = max(2 pips =
    # 0.0002, 1.5 × 0.00002 = 0.00003) = 0.0002; |filled − 1.10000| = 0.0003 = 3 pips > 2 → entry_slippage
    clock = Clock()
    for _ in range(20):
        _sync(user, clock, positions=[], quotes=[quote("EURUSD", "1.10000", "1.10002")])
    assert SymbolSpread.objects.get(account__user=user, symbol="EURUSD").median == D("0.00002")
    register(user, 1, symbol="EURUSD", side=side, volume="1.00", requested_price="1.10000")
    held = [broker_position(1, symbol="EURUSD", type=mt5_type, volume="1.00", price_open=filled)]
    summary = _sync(user, clock, positions=held, quotes=[quote("EURUSD", "1.10000", "1.10001")])
    slip = _reasons(summary)["entry_slippage"]
    assert (slip["delta_pips"], slip["tolerance_pips"], slip["tolerance"], slip["adverse"]) == (
        delta_pips, "2.00", "0.0002", True
    )  # fmt: skip


def test_a_wide_median_spread_widens_the_entry_tolerance(user):
    # 20 syncs at a 2.5-pip spread: median 0.00025; tolerance = max(0.0002, 1.5 × 0.00025 = 0.000375);
    # a 3-pip fill (0.0003) is inside it: no slippage
    clock = Clock()
    for _ in range(20):
        _sync(user, clock, positions=[], quotes=[quote("EURUSD", "1.10000", "1.10025")])
    register(user, 1, symbol="EURUSD", volume="1.00", requested_price="1.10000")
    held = [broker_position(1, symbol="EURUSD", volume="1.00", price_open="1.10030")]
    summary = _sync(user, clock, positions=held, quotes=[quote("EURUSD", "1.10000", "1.10025")])
    assert "entry_slippage" not in _reasons(summary)


def test_account_overrides_replace_the_floors_and_the_pip(user):
    # the account allows 5 pips on EURUSD entries: a 3-pip fill is no slippage; its stops allow 0.5 pip and
    # a gold pip override of 0.01 reports a gold stop 0.05 away as 5 pips
    clock = Clock()
    _sync(user, clock, positions=[])  # creates the account
    account = user.accounts.get()
    InstrumentGuardSetting.objects.create(user=user, account=account, symbol="EURUSD", entry_tolerance_pips=D("5"))
    InstrumentGuardSetting.objects.create(
        user=user, account=account, symbol="XAUUSD", pip_size=D("0.01"), stop_tolerance_pips=D("1")
    )
    register(user, 1, symbol="EURUSD", volume="1.00", requested_price="1.10000")
    register(user, 2, symbol="XAUUSD", volume="0.10", requested_price="2000.00", sl="1990.00")
    held = [
        broker_position(1, symbol="EURUSD", volume="1.00", price_open="1.10030"),
        broker_position(2, symbol="XAUUSD", volume="0.10", price_open="2000.00", sl="1990.05"),
    ]
    reasons = _reasons(_sync(user, clock, positions=held))
    assert set(reasons) == {"sl_mismatch"}
    # stop tolerance 1 pip × 0.01 = 0.01 < |1990.05 − 1990.00| = 0.05 = 5 pips of 0.01
    assert (reasons["sl_mismatch"]["delta_pips"], reasons["sl_mismatch"]["tolerance_pips"]) == ("5.00", "1.00")


def test_gold_stop_moved_by_a_tick_is_not_a_mismatch(user):
    # gold stop tolerance = 0.01 % × 1990.00 = 0.199; the broker re-rounded the stop by 0.10 → within
    # (main: 0.10 / 0.01 = 10 pips > 1 pip → sl_mismatch)
    clock = Clock()
    register(user, 1, symbol="XAUUSD", volume="0.10", requested_price="2000.00", sl="1990.00")
    held = [broker_position(1, symbol="XAUUSD", volume="0.10", price_open="2000.00", sl="1990.10")]
    assert "sl_mismatch" not in _reasons(_sync(user, clock, positions=held))


def test_gold_slippage_outside_the_tolerance_is_reported_in_gold_pips(user):
    # filled 2001.00 for 2000.00: 1.00 > 0.40 (0.02 % × 2000.00) → entry_slippage of 1.00 / 0.10 = 10 pips
    # (main: 1.00 / 0.01 = 100 pips), tolerance 0.40 / 0.10 = 4 pips
    clock = Clock()
    register(user, 1, symbol="XAUUSD", volume="0.10", requested_price="2000.00")
    held = [broker_position(1, symbol="XAUUSD", volume="0.10", price_open="2001.00")]
    slip = _reasons(_sync(user, clock, positions=held))["entry_slippage"]
    assert (slip["delta_pips"], slip["tolerance_pips"], slip["tolerance"], slip["adverse"]) == (
        "10.00",
        "4.00",
        "0.4",
        True,
    )
