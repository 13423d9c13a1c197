"""positions.lifecycle: events and realized P&L of one position from its deals (pure, no database).

Every expected value is worked out by hand in the test. Deal shapes follow ``history_deals_get()``:
type 0 buy / 1 sell, entry 0 IN / 1 OUT / 2 INOUT / 3 OUT_BY.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from positions.lifecycle import Kind, Lifecycle, deal_money, replay

T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def deal(ticket, *, entry, type, volume, price, position_id=500, profit="0", swap="0", commission="0", fee="0", t=0):
    return {
        "ticket": ticket,
        "position_id": position_id,
        "type": type,
        "entry": entry,
        "volume": D(volume),
        "price": D(price),
        "profit": D(profit),
        "swap": D(swap),
        "commission": D(commission),
        "fee": D(fee),
        "reason": 3,
        "time": T0 + timedelta(minutes=t),
    }


def kinds(lifecycle):
    return [e.kind for e in lifecycle.events]


@pytest.mark.parametrize(
    ("open_type", "close_type", "price_in", "price_out_1", "price_out_2"),
    [
        # Buy 1.00 EURUSD, sell 0.40 then 0.60 back out.
        (0, 1, "1.10000", "1.10500", "1.10500"),
        # Mirror: sell 1.00, buy 0.40 then 0.60 back (profit when the price fell).
        (1, 0, "1.10000", "1.09500", "1.09500"),
    ],
)
def test_partial_close_then_close_books_every_deal(open_type, close_type, price_in, price_out_1, price_out_2):
    # Issue example: 1.00 lot, OUT 0.40 profit 200, OUT 0.60 profit 300. Entry commission −7.00, fee −1.00,
    # and swap −2.00 on the last exit. Realized = 200 + 300 − 7 − 1 − 2 = 490.00; without the costs 500.00.
    deals = [
        deal(1, entry=0, type=open_type, volume="1.00", price=price_in, commission="-7.00", fee="-1.00", t=0),
        deal(2, entry=1, type=close_type, volume="0.40", price=price_out_1, profit="200", t=5),
        deal(3, entry=1, type=close_type, volume="0.60", price=price_out_2, profit="300", swap="-2.00", t=9),
    ]
    [lc] = replay(500, deals)
    assert kinds(lc) == [Kind.OPENED, Kind.PARTIAL_CLOSE, Kind.CLOSED]
    partial = lc.events[1]
    assert (partial.volume_before, partial.volume_after) == (D("1.00"), D("0.60"))
    # After the partial close: −7 − 1 + 200 = 192.00 realized so far.
    assert partial.realized_pnl == D("192.00")
    assert lc.realized_pnl == D("490.00")
    assert lc.status == "closed" and lc.volume == 0
    assert lc.close_price == D(price_out_2)
    assert lc.closed_at == T0 + timedelta(minutes=9)
    assert lc.side == ("buy" if open_type == 0 else "sell")
    assert lc.deal_tickets == [1, 2, 3]


def test_partial_close_without_costs_is_500():
    deals = [
        deal(1, entry=0, type=0, volume="1.00", price="1.10000"),
        deal(2, entry=1, type=1, volume="0.40", price="1.10500", profit="200"),
        deal(3, entry=1, type=1, volume="0.60", price="1.10500", profit="300", t=1),
    ]
    [lc] = replay(500, deals)
    assert lc.realized_pnl == D("500.00")


@pytest.mark.parametrize(("side_type", "side"), [(0, "buy"), (1, "sell")])
def test_netting_increase_reaverages_price_open(side_type, side):
    # 1.00 at 1.10000 then 1.00 at 1.10200: (1·1.10000 + 1·1.10200) / 2 = 1.10100.
    # Then 0.50 more at 1.10400: (2·1.10100 + 0.5·1.10400) / 2.5 = (2.20200 + 0.55200) / 2.5 = 1.10160.
    deals = [
        deal(1, entry=0, type=side_type, volume="1.00", price="1.10000", commission="-3.50"),
        deal(2, entry=0, type=side_type, volume="1.00", price="1.10200", commission="-3.50", t=1),
        deal(3, entry=0, type=side_type, volume="0.50", price="1.10400", t=2),
    ]
    [lc] = replay(500, deals)
    assert kinds(lc) == [Kind.OPENED, Kind.INCREASED, Kind.INCREASED]
    assert lc.events[1].price_open == D("1.10100")
    assert lc.price_open == D("1.10160")
    assert lc.volume == D("2.50")
    assert lc.side == side
    assert lc.is_open
    # Entry commissions are realized costs already: −3.50 × 2 = −7.00.
    assert lc.realized_pnl == D("-7.00")


def test_averaged_price_rounds_to_eight_decimals():
    # (1 × 1.00000001 + 2 × 1.00000002) / 3 = 3.00000005 / 3 = 1.0000000166… → 1.00000002 (half-up at 8 dp).
    deals = [
        deal(1, entry=0, type=0, volume="1.00", price="1.00000001"),
        deal(2, entry=0, type=0, volume="2.00", price="1.00000002", t=1),
    ]
    [lc] = replay(500, deals)
    assert lc.price_open == D("1.00000002")


@pytest.mark.parametrize(("open_type", "reverse_type"), [(0, 1), (1, 0)])
def test_netting_reversal_closes_one_lifecycle_and_opens_the_other_side(open_type, reverse_type):
    # Netting: 1.00 open, INOUT of 1.50 the other way at 1.10300 with profit 300 and commission −5.25.
    # Old lifecycle: realized = −3.50 (entry commission) + 300 − 5.25 = 291.25, closed at 1.10300.
    # New lifecycle: the other side, 1.50 − 1.00 = 0.50 lot at 1.10300, realized 0 so far.
    deals = [
        deal(1, entry=0, type=open_type, volume="1.00", price="1.10000", commission="-3.50"),
        deal(2, entry=2, type=reverse_type, volume="1.50", price="1.10300", profit="300", commission="-5.25", t=3),
    ]
    old, new = replay(500, deals)
    assert kinds(old) == [Kind.OPENED, Kind.REVERSED]
    assert old.status == "closed" and old.realized_pnl == D("291.25")
    assert old.close_price == D("1.10300")
    assert kinds(new) == [Kind.OPENED]
    assert new.side == ("sell" if open_type == 0 else "buy")
    assert new.volume == D("0.50") and new.price_open == D("1.10300")
    assert new.realized_pnl == D("0") and new.is_open
    assert new.identifier == old.identifier == 500
    # Closing the new lifecycle later books only its own deals: +40 profit − 1.75 commission = 38.25.
    later = deal(3, entry=1, type=open_type, volume="0.50", price="1.10220", profit="40", commission="-1.75", t=9)
    [same] = replay(500, [later], start=new)
    assert same is new and new.realized_pnl == D("38.25") and new.status == "closed"


def test_reversal_of_exactly_the_open_volume_leaves_nothing_open():
    deals = [
        deal(1, entry=0, type=0, volume="1.00", price="1.10000"),
        deal(2, entry=2, type=1, volume="1.00", price="1.10100", profit="100", t=1),
    ]
    [lc] = replay(500, deals)
    assert lc.status == "closed" and lc.realized_pnl == D("100")


@pytest.mark.parametrize(("open_type", "close_type"), [(0, 1), (1, 0)])
def test_close_by_opposite_position(open_type, close_type):
    # OUT_BY (entry 3) closes like OUT: 0.30 of 1.00 then the remaining 0.70; profit 30 + 70 = 100.
    deals = [
        deal(1, entry=0, type=open_type, volume="1.00", price="1.10000"),
        deal(2, entry=3, type=close_type, volume="0.30", price="1.10100", profit="30", t=1),
        deal(3, entry=3, type=close_type, volume="0.70", price="1.10100", profit="70", t=2),
    ]
    [lc] = replay(500, deals)
    assert kinds(lc) == [Kind.OPENED, Kind.PARTIAL_CLOSE, Kind.CLOSED]
    assert lc.realized_pnl == D("100")


def test_incremental_application_from_ledger_state_skips_known_deals():
    # The ledger knows: buy 1.00 at 1.10000, realized −7.00 (entry commission of deal 1).
    start = Lifecycle(
        identifier=500, side="buy", volume=D("1.00"), price_open=D("1.10000"), realized_pnl=D("-7.00"), deal_tickets=[1]
    )
    deals = [
        deal(1, entry=0, type=0, volume="1.00", price="1.10000", commission="-7.00"),  # already applied
        deal(2, entry=1, type=1, volume="0.40", price="1.10500", profit="200", t=5),
        deal(9, entry=0, type=0, volume="0.10", price="1.2", position_id=777),  # another position
    ]
    [lc] = replay(500, deals, start=start)
    # −7.00 + 200 = 193.00; 1.00 − 0.40 = 0.60 open.
    assert lc.realized_pnl == D("193.00") and lc.volume == D("0.60")
    assert kinds(lc) == [Kind.PARTIAL_CLOSE]


def test_closing_deal_without_seen_entry_closes_the_opposite_side():
    # Only the OUT sell deal of 0.20 arrived: the position was a 0.20 buy; realized = 15 − 0.50 = 14.50.
    [lc] = replay(500, [deal(2, entry=1, type=1, volume="0.20", price="1.1", profit="15", swap="-0.50")])
    assert lc.side == "buy" and lc.status == "closed"
    assert lc.events[0].volume_before == D("0.20")
    assert lc.realized_pnl == D("14.50")


def test_inferred_close_uses_profit_swap_commission_and_is_flagged():
    # Deals known: entry commission −7.00. Last seen profit 120.00, swap −3.00, commission −1.00:
    # realized = −7 + 120 − 3 − 1 = 109.00.
    [lc] = replay(500, [deal(1, entry=0, type=1, volume="1.00", price="1.1", commission="-7.00")])
    event = lc.close_inferred(profit=D("120.00"), swap=D("-3.00"), commission=D("-1.00"), time=T0, price=D("1.09"))
    assert event.inferred and event.deal_ticket is None and event.kind == Kind.CLOSED
    assert lc.inferred and lc.realized_pnl == D("109.00") and lc.status == "closed"


def test_deal_money_sums_all_four_fields_and_treats_missing_as_zero():
    # 10 + (−1) + (−2) + (−0.5) = 6.50; a dict without fee/swap keys still sums.
    assert deal_money({"profit": D("10"), "swap": D("-1"), "commission": D("-2"), "fee": D("-0.5")}) == D("6.5")
    assert deal_money({"profit": D("3")}) == D("3")


def test_deals_of_another_identifier_or_type_are_refused():
    lc = Lifecycle(identifier=500)
    with pytest.raises(ValueError, match="belongs to position 501"):
        lc.apply(deal(1, entry=0, type=0, volume="1", price="1", position_id=501))
    with pytest.raises(ValueError, match="not a buy/sell deal"):
        lc.apply(deal(1, entry=0, type=2, volume="0", price="1"))
