"""A position that vanishes without a deal while the last margin level was at or under the stop-out level
closes as ``stop_out``, inferred (issue 12, margin bullet); the later deal of reason 6 settles it.

Every example: a 1.00-lot EURUSD position (contract 100 000) on a 1:100 account with the broker's
levels sent (call 100 %, stop-out 50 %, ``margin_so_mode`` 0), balance 1 000. Margin levels are
equity / margin × 100, worked in each test.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from positions.models import Position
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import Clock, broker_position, ingest, register, sync_payload

pytestmark = pytest.mark.django_db

LEVELS = {"margin_so_mode": 0, "margin_so_call": "100", "margin_so_so": "50"}
# side, MT5 type of the position, MT5 type of its closing deal, entry, last price, stop-out deal price
SIDES = [("buy", 0, 1, "1.09500", "1.09000", "1.08990"), ("sell", 1, 0, "1.09500", "1.10000", "1.10010")]


def snapshot(user, clock, positions, *, equity, margin, balance="1000.00", deals=None):
    payload = sync_payload(
        broker_time=clock.tick(),
        positions=positions,
        deals=deals,
        balance=balance,
        equity=equity,
        margin=margin,
        **LEVELS,
    )
    return ingest(user, payload).summary


def close_rows(user):
    return list(ReconciliationLog.objects.filter(user=user, event_type="close").order_by("id"))


@pytest.mark.parametrize(("side", "type_", "deal_type", "price_open", "last", "so_price"), SIDES)
def test_vanished_at_stop_out_level_closes_as_stop_out_then_the_deal_settles_it(
    user, side, type_, deal_type, price_open, last, so_price
):
    clock = Clock()
    register(user, 1, side=side, volume="1.00", requested_price=price_open)
    # the position 50 pips against: profit −500, swap −3, commission −2 → equity 1 000 − 505 = 495
    # margin 1.00 × 100 000 × last / 100: buy 1 090.00 (495 / 1 090 × 100 = 45.41 %), sell 1 100.00 (45.00 %),
    # both ≤ 50 %: at or under the stop-out level
    margin = "1090.00" if side == "buy" else "1100.00"
    row = broker_position(1, type=type_, price_open=price_open, price_current=last, profit="-500", swap="-3",
                          commission="-2")  # fmt: skip
    summary = snapshot(user, clock, [row], equity="495.00", margin=margin)
    assert summary["guards"]["margin"]["level"] == "critical"

    # the broker stopped it out; the snapshot no longer lists it and the deal is not in this sync
    # (balance 1 000 − 515 = 485 from the deal still to come)
    summary = snapshot(user, clock, [], balance="485.00", equity="485.00", margin="0")

    position = Position.objects.get(identifier=1)
    # inferred: profit + swap + commission of the last snapshot = −500 − 3 − 2 = −505
    assert (position.status, position.close_reason, position.realized_pnl, position.realized_pnl_inferred) == (
        "closed", "stop_out", D("-505.00"), True
    )  # fmt: skip
    assert position.close_price == D(last)
    [close] = close_rows(user)
    assert close.details["source"] == "inferred"
    assert close.details["stop_out_inferred"] is True
    assert close.details["price_based_reason"] == "closed_externally"  # no stop was near the last price
    assert summary["closed"][0]["close_reason"] == "stop_out"

    # the deal of reason 6 (DEAL_REASON_SO) arrives one sync later: profit −510 at so_price, swap −3, commission −2
    deal = {"ticket": 901, "position_id": 1, "type": deal_type, "entry": 1, "reason": 6, "symbol": "EURUSD",
            "volume": "1.00", "price": so_price, "profit": "-510", "swap": "-3", "commission": "-2"}  # fmt: skip
    snapshot(user, clock, [], balance="485.00", equity="485.00", margin="0", deals=[deal])

    position.refresh_from_db()
    # realized from the deal: −510 − 3 − 2 = −515 (the inferred −505 replaced)
    assert (position.close_reason, position.realized_pnl, position.realized_pnl_inferred) == (
        "stop_out", D("-515.00"), False
    )  # fmt: skip
    assert position.close_price == D(so_price)
    assert close_rows(user)[-1].details["settles"] == "inferred"


@pytest.mark.parametrize(("side", "type_", "deal_type", "price_open", "last", "so_price"), SIDES)
def test_vanished_above_the_stop_out_level_keeps_the_price_based_inference(
    user, side, type_, deal_type, price_open, last, so_price
):
    clock = Clock()
    register(user, 1, side=side, volume="1.00", requested_price=price_open)
    # equity 600: buy 600 / 1 090 × 100 = 55.05 %, sell 600 / 1 100 × 100 = 54.55 %: above 50 %
    margin = "1090.00" if side == "buy" else "1100.00"
    row = broker_position(1, type=type_, price_open=price_open, price_current=last, profit="-400")
    snapshot(user, clock, [row], equity="600.00", margin=margin)
    snapshot(user, clock, [], balance="600.00", equity="600.00", margin="0", deals=[])

    position = Position.objects.get(identifier=1)
    # no SL/TP near the last price: closed_externally, realized −400 (inferred)
    assert (position.close_reason, position.realized_pnl, position.realized_pnl_inferred) == (
        "closed_externally", D("-400.00"), True
    )  # fmt: skip
    assert "stop_out_inferred" not in close_rows(user)[0].details


def test_a_stop_out_deal_in_the_same_sync_closes_from_the_deal(user):
    # the deal arrives with the snapshot that no longer lists the position: no inference at all
    clock = Clock()
    register(user, 1, side="buy", volume="1.00", requested_price="1.09500")
    row = broker_position(1, type=0, price_open="1.09500", price_current="1.09000", profit="-500")
    snapshot(user, clock, [row], equity="500.00", margin="1090.00")  # 45.87 % ≤ 50 %
    deal = {"ticket": 901, "position_id": 1, "type": 1, "entry": 1, "reason": 6, "symbol": "EURUSD",
            "volume": "1.00", "price": "1.08990", "profit": "-510"}  # fmt: skip
    snapshot(user, clock, [], balance="490.00", equity="490.00", margin="0", deals=[deal])

    position = Position.objects.get(identifier=1)
    assert (position.close_reason, position.realized_pnl, position.realized_pnl_inferred) == (
        "stop_out", D("-510.00"), False
    )  # fmt: skip
    assert close_rows(user)[0].details["source"] == "deal"
