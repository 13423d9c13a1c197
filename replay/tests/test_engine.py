"""The bar loop without a service (replay.engine with a recording sink): timing, registration, faults."""

from decimal import Decimal

import pytest

from replay import faults as F
from replay.bars import read_bars
from replay.bot import SmaCrossBot
from replay.broker import SPECS, Broker
from replay.engine import Engine, NullSink
from replay.tests.synthetic import WEEKEND_AT, write_series

SCHEDULE = {20: [F.MANUAL_TRADE], 30: [F.SLTP_CHANGE], 50: [F.WIDE_SPREAD], 60: [F.MANUAL_CLOSE]}
ENTRY_SCHEDULE = {2: F.ENTRY_SLIPPAGE, 5: F.PARTIAL_FILL}


def replay(tmp_path, *, faults: F.FaultInjector, mt5: bool = False):
    bars = read_bars(write_series(tmp_path / "bars.csv", mt5=mt5))
    sink = NullSink()
    engine = Engine(
        bars=bars,
        broker=Broker(spec=SPECS["EURUSD"], balance=Decimal("10000.00")),
        bot=SmaCrossBot(fast=3, slow=8, lots=Decimal("1.00"), sl_pips=20, tp_pips=50),
        faults=faults,
        sink=sink,
        spread_warning_pct=Decimal("0.05"),
    )
    engine.run()
    return engine, sink


def first_sighting(sink: NullSink, ticket: int) -> dict:
    for payload in sink.syncs:
        for row in payload["positions"]:
            if row["ticket"] == ticket:
                return row
    raise AssertionError(f"ticket {ticket} never reported")


def test_without_faults_the_broker_reports_exactly_what_the_bot_registered(tmp_path):
    # given no fault at all
    engine, sink = replay(tmp_path, faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0))
    # then the bot traded, and every registered position shows up at the broker with the requested price,
    # volume and stops (so the tool's mechanics alone cause no divergence)
    assert engine.entries == len(sink.registrations) >= 10
    for registration in sink.registrations:
        row = first_sighting(sink, registration["ticket"])
        assert (row["price_open"], row["volume"], row["sl"], row["tp"], row["type"]) == (
            registration["requested_price"],
            registration["volume"],
            registration["sl"],
            registration["tp"],
            0 if registration["side"] == "buy" else 1,
        )
    assert engine.faults.faults == []


def test_bot_registers_each_fill_before_the_first_snapshot_that_shows_it(tmp_path):
    engine, sink = replay(tmp_path, faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0))
    registered: set[int] = set()
    for call, value in sink.calls:
        if call == "register":
            registered.add(value)
            continue
        tickets = {row["ticket"] for row in sink.syncs[value]["positions"]}
        assert tickets <= registered


def test_broker_times_strictly_increase_and_every_close_comes_with_its_deal(tmp_path):
    engine, sink = replay(tmp_path, faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0))
    times = [payload["broker_time"] for payload in sink.syncs]
    assert times == sorted(times) and len(set(times)) == len(times)
    # one close sync per bar, plus open syncs for trades and the bar after the weekend
    assert len(sink.syncs) > 150
    weekend_open = [s for s in engine.syncs if s.after_gap]
    assert [(s.bar, s.moment) for s in weekend_open] == [(WEEKEND_AT, "open")]
    reported = {d["position_id"] for payload in sink.syncs for d in payload["deals"]}
    assert reported == {d.position_id for d in engine.broker.deals}
    # every position vanishes from the snapshots in the same sync that carries its closing deal
    for before, after in zip(sink.syncs, sink.syncs[1:], strict=False):
        gone = {p["ticket"] for p in before["positions"]} - {p["ticket"] for p in after["positions"]}
        assert gone == {d["position_id"] for d in after["deals"]}


def test_trades_end_by_tp_sl_and_the_bots_reversal(tmp_path):
    engine, _ = replay(tmp_path, faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0))
    assert {d.reason for d in engine.broker.deals} == {3, 4, 5}


def test_scheduled_faults_are_each_injected_once_with_their_expected_outcome(tmp_path):
    # given one fault of each kind forced at known bars/entries, no random ones
    faults = F.FaultInjector(seed=3, bar_rate=0, entry_rate=0, schedule=SCHEDULE, entry_schedule=ENTRY_SCHEDULE)
    # when
    engine, sink = replay(tmp_path, faults=faults)
    # then
    assert faults.counts() == dict.fromkeys(F.ALL_KINDS, 1)
    by_kind = {f.kind: f for f in faults.faults}
    slipped = by_kind[F.ENTRY_SLIPPAGE]
    row = first_sighting(sink, slipped.ticket)
    registered = next(r for r in sink.registrations if r["ticket"] == slipped.ticket)
    pips = (Decimal(row["price_open"]) - Decimal(registered["requested_price"])) / Decimal("0.0001")
    assert pips == slipped.details["slippage_pips"] and 3 <= abs(pips) <= 10
    partial = by_kind[F.PARTIAL_FILL]
    assert Decimal(first_sighting(sink, partial.ticket)["volume"]) < Decimal("1.00")
    manual = by_kind[F.MANUAL_TRADE]
    assert manual.ticket not in {r["ticket"] for r in sink.registrations}
    assert first_sighting(sink, manual.ticket)["magic"] == 0
    change = by_kind[F.SLTP_CHANGE]
    assert change.expected["divergence"] in ("sl_mismatch", "tp_mismatch")
    assert abs(Decimal(change.details["actual"]) - Decimal(change.details["expected"])) >= Decimal("0.0005")
    closed = by_kind[F.MANUAL_CLOSE]
    assert next(d for d in engine.broker.deals if d.position_id == closed.ticket).reason in (0, 1, 2)
    wide = by_kind[F.WIDE_SPREAD]
    assert Decimal(wide.details["spread_pct"]) > Decimal("0.05")
    assert faults.expected_divergences() == {
        (slipped.ticket, "entry_slippage"),
        (partial.ticket, "partial_fill"),
        (manual.ticket, "unexpected_at_broker"),
        (change.ticket, change.expected["divergence"]),
    }


def test_widened_spread_keeps_the_mid_so_the_gap_guard_does_not_see_it(tmp_path):
    faults = F.FaultInjector(seed=3, bar_rate=0, entry_rate=0, schedule={50: [F.WIDE_SPREAD]})
    engine, _ = replay(tmp_path, faults=faults)
    (fault,) = faults.faults
    index = next(i for i, s in enumerate(engine.syncs) if s.broker_time == fault.time)
    wide, normal_before = engine.syncs[index], engine.syncs[index - 1]
    # the close of that bar with its normal 10-point spread would have had the same mid
    bar = engine.bars[wide.bar]
    assert (wide.bid + wide.ask) / 2 == bar.close + Decimal("0.00005")
    assert wide.ask - wide.bid > normal_before.ask - normal_before.bid


@pytest.mark.parametrize("seed", [7, 11])
def test_same_seed_same_faults(tmp_path, seed):
    first, _ = replay(tmp_path, faults=F.FaultInjector(seed=seed, bar_rate=0.1, entry_rate=0.5))
    second, _ = replay(tmp_path, faults=F.FaultInjector(seed=seed, bar_rate=0.1, entry_rate=0.5))
    assert [f.as_json() for f in first.faults.faults] == [f.as_json() for f in second.faults.faults]
    assert first.faults.faults  # the rates do inject something on 150 bars


def test_mt5_spread_column_sets_the_ask(tmp_path):
    engine, sink = replay(tmp_path, faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0), mt5=True)
    quote = sink.syncs[0]["quotes"][0]
    # 10 points = 0.00010 above the bid
    assert Decimal(quote["ask"]) - Decimal(quote["bid"]) == Decimal("0.00010")


def test_minimum_lot_entries_are_never_partially_filled(tmp_path):
    # given the bot trades 0.01 lot (one volume step) and every entry is due a partial fill
    bars = read_bars(write_series(tmp_path / "bars.csv"))
    faults = F.FaultInjector(
        seed=1, bar_rate=0, entry_rate=0, entry_schedule=dict.fromkeys(range(1, 50), F.PARTIAL_FILL)
    )
    engine = Engine(
        bars=bars,
        broker=Broker(spec=SPECS["EURUSD"], balance=Decimal("10000.00")),
        bot=SmaCrossBot(fast=3, slow=8, lots=Decimal("0.01"), sl_pips=20, tp_pips=50),
        faults=faults,
        sink=NullSink(),
    )
    # when
    engine.run()
    # then nothing was injected and every fill is the full 0.01 lot
    assert engine.entries > 0 and faults.faults == []
    assert {d.volume for d in engine.broker.deals} == {Decimal("0.01")}
