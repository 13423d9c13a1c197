"""The issue 11/12 scenarios of the replay without a service: partial closes, netting, cash flows, server time,
the broker's stop-out and late deals, the weekend syncs, and the scoring of lifecycles, cash-flow-adjusted
drawdown and balance residues. Values worked by hand in each test."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from replay import faults as F
from replay.bars import Bar, read_bars
from replay.bot import SmaCrossBot
from replay.broker import BUY, REASON_EXPERT, REASON_STOP_OUT, SELL, SPECS, Broker, new_york_close_offset
from replay.engine import Engine, NettingScript, NullSink, SyncRecord, weekend_moments
from replay.report import equity_series, expected_balance_residues, expected_lifecycles
from replay.tests.synthetic import WEEKEND_AT, write_series

EURUSD = SPECS["EURUSD"]
T0 = datetime(2024, 1, 2, 10, 0, tzinfo=UTC)  # a Tuesday


def test_partial_close_takes_its_share_of_the_swap_to_the_cent():
    b = Broker(spec=EURUSD, balance=D("10000.00"))
    position = b.open_position(side=BUY, volume=D("1.00"), price=D("1.10000"), sl=None, tp=None, time=T0, magic=1)
    position.swap = D("-9.75")
    b.set_quote(bid=D("1.10100"), ask=D("1.10110"), time=T0)
    deal = b.close_at_market(ticket=position.ticket, time=T0, reason=REASON_EXPERT, volume=D("0.50"))
    # profit 0.00100 × 100 000 × 0.50 = 50.00; swap −9.75 × 0.50 / 1.00 = −4.875 → −4.88 (half-up)
    assert (deal.profit, deal.swap, deal.realized, deal.entry, deal.final) == (
        D("50.00"), D("-4.88"), D("45.12"), 1, False
    )  # fmt: skip
    # the rest stays open: 0.50 lot, swap −9.75 + 4.88 = −4.87; balance 10 000 + 45.12
    assert (position.volume, position.swap, b.balance) == (D("0.50"), D("-4.87"), D("10045.12"))
    assert position.ticket in b.positions


def test_netting_increase_partial_close_reversal_and_close_with_commissions():
    b = Broker(spec=EURUSD, balance=D("10000.00"), netting=True, entry_deals=True, commission_per_lot=D("-7.00"))

    def order(side, volume, price):
        return b.net_order(side=side, volume=D(volume), price=D(price), time=T0, magic=2)

    kind, position, deal = order(BUY, "0.20", "1.10000")  # IN, commission 0.20 × −7 = −1.40
    assert (kind, deal.entry, deal.commission, b.balance) == ("opened", 0, D("-1.40"), D("9998.60"))
    ticket = position.ticket
    kind, position, deal = order(BUY, "0.10", "1.10300")
    # (1.10000 × 0.20 + 1.10300 × 0.10) / 0.30 = 0.33030 / 0.30 = 1.10100; commission −0.70
    assert (kind, position.volume, position.price_open, b.balance) == (
        "increased", D("0.30"), D("1.10100000"), D("9997.90")
    )  # fmt: skip
    kind, position, deal = order(SELL, "0.10", "1.10400")
    # OUT 0.10: (1.10400 − 1.10100) × 0.10 × 100 000 = 30.00, commission −0.70 → 29.30
    assert (kind, deal.entry, deal.realized, position.volume, b.balance) == (
        "partial_close", 1, D("29.30"), D("0.20"), D("10027.20")
    )  # fmt: skip
    kind, position, deal = order(SELL, "0.40", "1.10200")
    # INOUT 0.40: closes 0.20 at (1.10200 − 1.10100) × 0.20 × 100 000 = 20.00, commission 0.40 × −7 = −2.80
    # → 17.20; the remainder 0.20 opens a sell at 1.10200 under the same ticket
    assert (kind, deal.entry, deal.realized, deal.final, b.balance) == (
        "reversed", 2, D("17.20"), True, D("10044.40")
    )  # fmt: skip
    assert (position.ticket, position.side, position.volume, position.price_open) == (
        ticket, SELL, D("0.20"), D("1.10200")
    )  # fmt: skip
    kind, position, deal = order(BUY, "0.20", "1.10000")
    # OUT: the sell gains (1.10200 − 1.10000) × 0.20 × 100 000 = 40.00, commission −1.40 → 38.60
    assert (kind, position, deal.realized, b.balance) == ("closed", None, D("38.60"), D("10083.00"))

    lifecycles = expected_lifecycles(b.deals)
    # lifecycle 0: −1.40 − 0.70 + 29.30 + 17.20 = 44.40 (the INOUT's money closes it); lifecycle 1: 38.60
    assert [(c["ticket"], c["k"], c["realized_pnl"], c["close_price"]) for c in lifecycles] == [
        (ticket, 0, D("44.40"), D("1.10200")),
        (ticket, 1, D("38.60"), D("1.10000")),
    ]
    rows = [b.deal_dict(d) for d in b.deals]
    assert [(r["entry"], r["type"]) for r in rows] == [(0, 0), (0, 0), (1, 1), (2, 1), (1, 0)]


def test_balance_operations_and_server_time():
    b = Broker(spec=EURUSD, balance=D("10000.00"), utc_offset=new_york_close_offset)
    summer = datetime(2017, 7, 3, 12, 0, tzinfo=UTC)  # New York on daylight saving time → UTC+3
    winter = datetime(2017, 12, 4, 12, 0, tzinfo=UTC)  # → UTC+2
    deposit = b.balance_operation(amount=D("2500"), time=summer)
    withdrawal = b.balance_operation(amount=D("-1500"), time=winter)
    assert b.balance == D("11000.00")  # 10 000 + 2 500 − 1 500
    row = b.deal_dict(deposit)
    assert (row["type"], row["position_id"], row["profit"], "symbol" in row) == (2, 0, "2500.00", False)
    assert row["time"] == int(summer.timestamp()) + 3 * 3600
    assert b.deal_dict(withdrawal)["time"] == int(winter.timestamp()) + 2 * 3600
    assert b.account_info(winter)["server_utc_offset"] == 120
    assert b.account_info(summer)["server_utc_offset"] == 180


def stop_out_engine(bars, *, delay_every=1):
    broker = Broker(spec=EURUSD, balance=D("1000.00"), leverage=500)
    sink = NullSink()
    engine = Engine(
        bars=bars,
        broker=broker,
        bot=SmaCrossBot(fast=3, slow=8, use_sl=False),
        faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0),
        sink=sink,
        stop_outs=True,
        delay_every=delay_every,
    )
    return engine, broker, sink


def test_stop_out_at_the_margin_level_with_the_snapshot_first_and_the_deal_late():
    bar = Bar(time=T0, open=D("1.10000"), high=D("1.10010"), low=D("1.09700"), close=D("1.09800"))
    engine, broker, sink = stop_out_engine([bar])
    position = broker.open_position(side=BUY, volume=D("4.00"), price=D("1.10000"), sl=None, tp=None, time=T0, magic=1)
    broker.set_quote(bid=D("1.10000"), ask=D("1.10010"), time=T0)
    # p = (1.1 × 400 000 − 1 000) / (400 000 × (1 − 0.5 / 500)) = 439 000 / 399 600 = 1.0985986 → 1.09859;
    # there: profit −0.00141 × 400 000 = −564.00, equity 436.00, margin 400 000 × 1.09859 / 500 = 878.87,
    # level 436 / 878.87 × 100 = 49.61 % ≤ 50 (at 1.09860: 440.00 / 878.88 = 50.06 %, above)
    assert engine._stop_out_price(position) == D("1.09859")

    engine._stop_out(0, bar, D("0.00010"))
    [snapshot] = sink.syncs
    assert snapshot["account"]["margin_level"] == "49.61"
    assert [row["ticket"] for row in snapshot["positions"]] == [position.ticket]  # still listed
    [deal] = engine.stop_out_deals
    assert (deal.reason, deal.price, deal.profit, deal.final) == (REASON_STOP_OUT, D("1.09859"), D("-564.00"), True)
    assert engine.delayed_deals == [deal]
    assert broker.take_unreported_deals() == []  # the next snapshot goes without it …
    assert broker.take_unreported_deals() == [deal]  # … and the one after carries it


def test_stop_out_gapped_through_fills_at_the_open():
    bar = Bar(time=T0, open=D("1.09500"), high=D("1.09600"), low=D("1.09400"), close=D("1.09500"))
    engine, broker, _ = stop_out_engine([bar], delay_every=2)
    broker.open_position(side=BUY, volume=D("4.00"), price=D("1.10000"), sl=None, tp=None, time=T0, magic=1)
    engine._stop_out(0, bar, D("0.00010"))
    # the open 1.09500 is already below 1.09859: the broker closes at the open; the first deal is not delayed
    assert [(d.price, d.reason) for d in engine.stop_out_deals] == [(D("1.09500"), REASON_STOP_OUT)]
    assert engine.delayed_deals == []


def test_partial_close_at_1r_then_the_declared_break_even_stop(tmp_path):
    bars = read_bars(write_series(tmp_path / "bars.csv"))
    sink = NullSink()
    engine = Engine(
        bars=bars,
        broker=Broker(spec=EURUSD, balance=D("10000.00")),
        bot=SmaCrossBot(fast=3, slow=8, lots=D("1.00"), sl_pips=20, tp_pips=50),
        faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0),
        sink=sink,
        partial_close_at_r=True,
    )
    engine.run()
    partials = [e for e in engine.events if e["kind"] == "partial_close"]
    updates = [e for e in engine.events if e["kind"] == "sl_updated"]
    assert partials and updates
    for event in partials:
        assert event["volume"] == "0.50"  # half of the bot's 1.00 lot
    # every declaration comes before the first snapshot showing the new stop (the stop of a position that
    # closes first is never shown, and no sl_updated is expected for it)
    shown_count = 0
    for ticket, body in sink.declarations:
        declared = sink.calls.index(("declare", ticket))
        shown = [
            n for n, payload in enumerate(sink.syncs)
            if any(r["ticket"] == ticket and r["sl"] == body["sl"] for r in payload["positions"])
        ]  # fmt: skip
        if shown:
            shown_count += 1
            assert sink.calls.index(("sync", shown[0])) > declared
    assert shown_count == len(updates)
    # the break-even stop is the position's own open price
    for event in updates:
        registration = next(r for r in sink.registrations if r["ticket"] == event["ticket"])
        assert event["sl"] == registration["requested_price"]


def test_weekend_syncs_keep_fridays_tick_and_fall_inside_the_gap(tmp_path):
    bars = read_bars(write_series(tmp_path / "bars.csv"))
    sink = NullSink()
    engine = Engine(
        bars=bars,
        broker=Broker(spec=EURUSD, balance=D("10000.00")),
        bot=SmaCrossBot(fast=3, slow=8),
        faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0),
        sink=sink,
        weekend_syncs=True,
    )
    engine.run()
    weekend = [r for r in engine.syncs if r.moment == "weekend"]
    friday_close = bars[WEEKEND_AT - 1].time + timedelta(hours=1) - timedelta(seconds=1)
    # Friday 20:00 bar, the market reopens Sunday 21:00: Saturday 12:00 and Sunday 12:00 UTC
    assert [r.broker_time for r in weekend] == [
        datetime(2024, 1, 6, 12, tzinfo=UTC),
        datetime(2024, 1, 7, 12, tzinfo=UTC),
    ]
    assert all(r.quote_time == friday_close for r in weekend)
    assert weekend_moments(datetime(2024, 1, 17, tzinfo=UTC), datetime(2024, 1, 18, tzinfo=UTC)) == []


def test_netting_script_cycle():
    script = NettingScript(start=0, cycle=12, lots=D("0.20"))
    broker = Broker(spec=EURUSD, balance=D("10000.00"), netting=True)
    seen = []
    for index in range(24):
        held = next(iter(broker.positions.values()), None)
        order = script.order(index, held)
        if order:
            kind, _, _ = broker.net_order(side=order[0], volume=order[1], price=D("1.10000"), time=T0, magic=2)
            seen.append((index, kind))
    assert seen == [
        (0, "opened"), (3, "increased"), (6, "partial_close"), (8, "reversed"), (11, "closed"),
        (12, "opened"), (15, "increased"), (18, "partial_close"), (20, "reversed"), (23, "closed"),
    ]  # fmt: skip


def record(n, *, balance, equity, flow="0", deal_money="0"):
    return SyncRecord(
        number=n, sync_id=f"s{n}", broker_time=T0 + timedelta(hours=n), bar=n, moment="close", bid=D("1.1"),
        ask=D("1.1"), balance=D(balance), equity=D(equity), open_positions=0, deals=0, flow=D(flow),
        deal_money=D(deal_money),
    )  # fmt: skip


def test_a_deposit_does_not_move_the_drawdown_on_the_adjusted_index():
    series = equity_series(
        [
            record(1, balance="10000", equity="10000"),
            record(2, balance="10000", equity="9000"),  # index 0.9: drawdown 10 %
            # a 2 000 deposit: (11 000 − 2 000) / 9 000 = 1 → index stays 0.9, drawdown stays 10 %
            record(3, balance="12000", equity="11000", flow="2000", deal_money="2000"),
        ]
    )
    assert [p["index"] for p in series] == [D("1.000000000000"), D("0.900000000000"), D("0.900000000000")]
    assert [p["drawdown_pct"] for p in series] == [D("0.0000"), D("10.0000"), D("10.0000")]
    # peak in today's money: 11 000 × 1 / 0.9 = 12 222.22
    assert series[-1]["peak"] == D("12222.22")


def test_balance_residues_where_a_deal_comes_one_sync_late():
    syncs = [
        record(1, balance="1000", equity="1000"),
        record(2, balance="436", equity="436"),  # −564 without its deal
        record(3, balance="436", equity="436", deal_money="-564"),  # the deal, no balance change
        record(4, balance="1436", equity="1436", deal_money="1000"),  # a deposit with its deal: explained
    ]
    assert expected_balance_residues(syncs) == {"s2", "s3"}
