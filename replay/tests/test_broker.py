"""The simulated MT5 broker (replay.broker): fills, SL/TP from high/low, P&L, swap, equity — values by hand."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from replay.bars import Bar
from replay.broker import (
    BUY,
    REASON_CLIENT,
    REASON_SL,
    REASON_TP,
    SELL,
    SPECS,
    Broker,
    rollover_nights,
)

EURUSD = SPECS["EURUSD"]
T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)  # a Tuesday
SPREAD = Decimal("0.00020")  # 20 points = 2 pips


def broker(**kwargs) -> Broker:
    return Broker(spec=EURUSD, balance=Decimal("10000.00"), **kwargs)


def bar(open_, high, low, close) -> Bar:
    return Bar(time=T0, open=Decimal(open_), high=Decimal(high), low=Decimal(low), close=Decimal(close))


def open_buy(b: Broker, *, price="1.10000", sl="1.09700", tp="1.10600", volume="1.00"):
    return b.open_position(
        side=BUY, volume=Decimal(volume), price=Decimal(price), sl=Decimal(sl), tp=Decimal(tp), time=T0, magic=1
    )


def open_sell(b: Broker, *, price="1.10000", sl="1.10300", tp="1.09500", volume="1.00"):
    return b.open_position(
        side=SELL, volume=Decimal(volume), price=Decimal(price), sl=Decimal(sl), tp=Decimal(tp), time=T0, magic=1
    )


def test_symbol_spec_pip_and_point_follow_the_digits():
    # 5 digits → point 0.00001, pip = 10 points; 2-digit gold → pip = point
    assert (EURUSD.point, EURUSD.pip) == (Decimal("0.00001"), Decimal("0.0001"))
    assert (SPECS["XAUUSD"].point, SPECS["XAUUSD"].pip) == (Decimal("0.01"), Decimal("0.01"))


def test_profit_of_a_buy_and_a_sell_in_account_currency():
    b = broker()
    # buy 1.00 lot 1.10000 → 1.10250: +0.00250 × 100,000 × 1.00 = +250.00 USD
    assert b.profit(BUY, Decimal("1.10000"), Decimal("1.10250"), Decimal("1.00")) == Decimal("250.00")
    # sell 0.30 lot 1.10000 → 1.10123: −0.00123 × 100,000 × 0.30 = −36.90 USD
    assert b.profit(SELL, Decimal("1.10000"), Decimal("1.10123"), Decimal("0.30")) == Decimal("-36.90")
    # rounding half-up to cents: buy 0.01 lot, +0.00005 → 0.05 USD; +0.000005 is below a point, 0.005 → 0.01
    assert b.profit(BUY, Decimal("1.10000"), Decimal("1.100005"), Decimal("1.00")) == Decimal("0.50")
    assert b.profit(BUY, Decimal("1.10000"), Decimal("1.100005"), Decimal("0.01")) == Decimal("0.01")


def test_tickets_and_deal_tickets_count_up_from_their_bases():
    b = broker(first_ticket=700101, first_deal=900001)
    first, second = open_buy(b), open_sell(b)
    deal = b.close_at_market(ticket=first.ticket, time=T0, reason=REASON_CLIENT)
    assert (first.ticket, second.ticket, deal.ticket, deal.position_id) == (700101, 700102, 900001, 700101)


def test_buy_is_valued_at_bid_and_sell_at_ask_and_equity_adds_floating_pnl():
    # given a buy and a sell of 1 lot at 1.10000, the market at bid 1.10100 / ask 1.10120
    b = broker()
    open_buy(b)
    open_sell(b)
    # when
    b.set_quote(bid=Decimal("1.10100"), ask=Decimal("1.10120"), time=T0)
    # then buy +0.00100 × 100,000 = +100.00; sell −0.00120 × 100,000 = −120.00; equity 10,000 − 20 = 9,980.00
    buy, sell = b.positions.values()
    assert (buy.price_current, buy.profit) == (Decimal("1.10100"), Decimal("100.00"))
    assert (sell.price_current, sell.profit) == (Decimal("1.10120"), Decimal("-120.00"))
    assert b.equity() == Decimal("9980.00")
    # margin: 2 × 1 lot × 100,000 × price / 100 → 1,101.00 + 1,101.20 = 2,202.20; free = 9,980 − 2,202.20
    info = b.account_info()
    assert (info["margin"], info["margin_free"], info["balance"], info["equity"]) == (
        "2202.20",
        "7777.80",
        "10000.00",
        "9980.00",
    )


def test_buy_stop_loss_hit_from_the_bar_low_closes_at_the_stop():
    # given a buy at 1.10000, SL 1.09700, TP 1.10600
    b = broker()
    position = open_buy(b)
    # when the bar's low 1.09650 goes through the SL (high 1.10100 stays below the TP)
    (deal,) = b.check_stops(bar("1.09950", "1.10100", "1.09650", "1.09800"), spread=SPREAD, time=T0)
    # then closed at the SL price: (1.09700 − 1.10000) × 100,000 = −300.00; balance 10,000 − 300
    assert (deal.position_id, deal.reason, deal.price, deal.profit) == (
        position.ticket,
        REASON_SL,
        Decimal("1.09700"),
        Decimal("-300.00"),
    )
    assert b.balance == Decimal("9700.00")
    assert b.positions == {}


def test_buy_take_profit_hit_from_the_bar_high():
    b = broker()
    open_buy(b)
    (deal,) = b.check_stops(bar("1.10300", "1.10610", "1.10250", "1.10500"), spread=SPREAD, time=T0)
    # (1.10600 − 1.10000) × 100,000 = +600.00
    assert (deal.reason, deal.price, deal.profit) == (REASON_TP, Decimal("1.10600"), Decimal("600.00"))


def test_sell_stop_loss_is_checked_at_the_ask_high():
    # given a sell at 1.10000 with SL 1.10300, spread 2 pips
    b = broker()
    open_sell(b)
    # when the bid high is 1.10290: the ask high is 1.10290 + 0.00020 = 1.10310 ≥ 1.10300
    (deal,) = b.check_stops(bar("1.10100", "1.10290", "1.10050", "1.10200"), spread=SPREAD, time=T0)
    # then stopped at the SL: −(1.10300 − 1.10000) × 100,000 = −300.00
    assert (deal.reason, deal.price, deal.profit) == (REASON_SL, Decimal("1.10300"), Decimal("-300.00"))


def test_sell_take_profit_needs_the_ask_low_not_the_bid_low():
    # given a sell with TP 1.09500, spread 2 pips
    b = broker()
    open_sell(b)
    # when the bid low 1.09490 is under the TP but the ask low (1.09510) is not
    assert b.check_stops(bar("1.09700", "1.09800", "1.09490", "1.09600"), spread=SPREAD, time=T0) == []
    # then a lower bar (bid low 1.09470, ask low 1.09490) takes profit at the TP: +0.00500 × 100,000 = +500.00
    (deal,) = b.check_stops(bar("1.09600", "1.09650", "1.09470", "1.09550"), spread=SPREAD, time=T0)
    assert (deal.reason, deal.price, deal.profit) == (REASON_TP, Decimal("1.09500"), Decimal("500.00"))


def test_bar_reaching_both_levels_counts_the_stop_loss_first():
    b = broker()
    open_buy(b)
    (deal,) = b.check_stops(bar("1.10000", "1.10700", "1.09600", "1.10100"), spread=SPREAD, time=T0)
    assert (deal.reason, deal.price) == (REASON_SL, Decimal("1.09700"))


def test_gap_through_the_stop_closes_at_the_open():
    # given a buy with SL 1.09700; the market opens at 1.09500 after a weekend
    b = broker()
    open_buy(b)
    (deal,) = b.check_stops(bar("1.09500", "1.09600", "1.09400", "1.09550"), spread=SPREAD, time=T0)
    # then filled at the open, worse than the stop: (1.09500 − 1.10000) × 100,000 = −500.00
    assert (deal.reason, deal.price, deal.profit) == (REASON_SL, Decimal("1.09500"), Decimal("-500.00"))


@pytest.mark.parametrize(
    ("previous", "current", "nights"),
    [
        (datetime(2024, 1, 2, 23, 0), datetime(2024, 1, 3, 0, 0), 1),  # Tue → Wed midnight: Tuesday's night
        (datetime(2024, 1, 3, 23, 0), datetime(2024, 1, 4, 0, 0), 3),  # Wednesday's night carries the weekend
        (datetime(2024, 1, 5, 21, 0), datetime(2024, 1, 7, 22, 0), 1),  # Fri → Sun: Friday's night only
        (datetime(2024, 1, 7, 22, 0), datetime(2024, 1, 8, 0, 0), 0),  # Sunday's night is free
        (datetime(2024, 1, 2, 10, 0), datetime(2024, 1, 2, 11, 0), 0),  # same day
        (datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 8, 0, 0), 7),  # a week: Mon 1 + Tue 1 + Wed 3 + Thu 1 + Fri 1
    ],
)
def test_rollover_nights(previous, current, nights):
    assert rollover_nights(previous.replace(tzinfo=UTC), current.replace(tzinfo=UTC)) == nights


def test_swap_is_charged_per_lot_and_night_and_booked_with_the_close():
    # given swap −6.5 points long, +1.8 points short; a buy of 0.50 lot and a sell of 2.00 lots
    b = broker(swap_long_points=Decimal("-6.5"), swap_short_points=Decimal("1.8"))
    buy = open_buy(b, volume="0.50")
    sell = open_sell(b, volume="2.00")
    b.set_quote(bid=Decimal("1.10000"), ask=Decimal("1.10000"), time=T0)
    # when Wednesday's rollover passes (3 nights)
    total = b.apply_rollover(
        previous=datetime(2024, 1, 3, 23, 0, tzinfo=UTC), current=datetime(2024, 1, 4, 0, 0, tzinfo=UTC)
    )
    # then buy: 0.50 × 100,000 × 0.00001 × −6.5 = −3.25 per night → −9.75;
    #      sell: 2.00 × 100,000 × 0.00001 × 1.8 = 3.60 per night → 10.80
    assert (buy.swap, sell.swap, total) == (Decimal("-9.75"), Decimal("10.80"), Decimal("1.05"))
    assert b.equity() == Decimal("10001.05")
    # when the buy closes at 1.10100: profit 0.00100 × 100,000 × 0.50 = 50.00, swap −9.75 → realized 40.25
    deal = b.close_position(ticket=buy.ticket, price=Decimal("1.10100"), time=T0, reason=REASON_CLIENT)
    assert (deal.profit, deal.swap, deal.realized) == (Decimal("50.00"), Decimal("-9.75"), Decimal("40.25"))
    assert b.balance == Decimal("10040.25")


def test_positions_and_deals_are_reported_in_mt5_shape():
    b = broker(first_ticket=10, first_deal=20)
    open_buy(b)
    sell = open_sell(b, volume="0.10")
    b.set_quote(bid=Decimal("1.09900"), ask=Decimal("1.09920"), time=T0)
    b.modify_position(ticket=sell.ticket, sl=None, tp=Decimal("1.09500"))
    deal = b.close_at_market(ticket=10, time=T0, reason=REASON_CLIENT)
    (row,) = b.positions_get()
    assert row == {
        "ticket": 11,
        "symbol": "EURUSD",
        "type": 1,
        "volume": "0.10",
        "price_open": "1.10000",
        "price_current": "1.09920",
        "sl": "0",
        "tp": "1.09500",
        "swap": "0.00",
        "commission": "0.00",
        "profit": "8.00",  # −(1.09920 − 1.10000) × 100,000 × 0.10
        "time": int(T0.timestamp()),
        "magic": 1,
    }
    assert b.deal_dict(deal) == {
        "ticket": 20,
        "order": 12,  # the closing order: orders and positions share the ticket counter (10, 11 opened)
        "position_id": 10,
        "symbol": "EURUSD",
        "type": 1,  # a sell deal closes a buy
        "entry": 1,
        "reason": 0,
        "price": "1.09900",
        "volume": "1.00",
        "profit": "-100.00",
        "swap": "0.00",
        "commission": "0.00",
        "time": int(T0.timestamp()),
        "magic": 1,
    }
    assert b.take_unreported_deals() == [deal]
    assert b.take_unreported_deals() == []


def test_account_in_another_currency_than_the_quote_is_refused():
    with pytest.raises(ValueError, match="only symbols quoted in the account currency"):
        Broker(spec=EURUSD, balance=Decimal("1"), currency="GBP")
