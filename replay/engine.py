"""The bar loop: bot, broker and faults over the bars, one MT5-shaped snapshot posted per bar.

Timeline of bar *i* (opening time t, period P, normal spread s from the CSV or the default):

1. **Rollover**: swap for the midnights between the previous bar and t (``Broker.apply_rollover``).
2. **Open tick** (bid = open, ask = open + s): positions whose SL/TP the market *opened* beyond close at the
   open (weekend gaps); the bot executes the signal of the previous close (closes its opposite position,
   reason 3, then sends a market order at the current ask/bid); a queued ``manual_trade`` fault opens a trade
   at the terminal. The bot registers each fill with ``POST positions/`` (``requested_price`` = the price it
   sent, SL/TP from it; the volume it asked for) *before* the next snapshot, as a real worker would.
   When anything happened at the open, or the bar follows a gap in the data (a weekend), a snapshot is posted
   at t, so weekend gaps reach the gap guard as real open-to-previous-close gaps.
3. **Inside the bar**: SL/TP hits from the bar's high/low (deals stamped t + P/2).
4. **Close tick** (bid = close, ask = close + s, at t + P − 1 s): manual trades due are closed at the terminal;
   queued ``manual_close``, ``sltp_change`` and ``wide_spread`` faults apply; the snapshot is posted with the
   closing deals since the previous one; the bot sees the close and may signal for bar *i + 1*.

Broker times are strictly increasing, so the service never answers 409 for a replay of a fresh account.
The first snapshot carries the symbol's ``symbol_info()`` specs, as a worker does on start-up.

Scenarios (each off unless its option is set; ``replay.run`` sets them for its three accounts), with the
ground truth each writes into ``events`` (kind, ticket):

* ``partial_close_at_r``: a bot position that has moved its SL distance (1R) in favour is half closed at the
  close tick (OUT deal, reason 3: ``partial_close``); after that snapshot the bot moves its SL to
  break-even, declaring it first with ``PATCH positions/{id}/`` (``sl_updated`` once a snapshot shows it).
* ``cash_flows``: {bar: amount} deposits (+) and withdrawals (−) as balance deals at the close tick.
* ``manual_symbol_trade``: (open bar, close bar) of a 1-lot NAS100 buy at the terminal (magic 0) whose
  specs the worker never sends (the service values it ``spec_missing`` and still runs the guards).
* ``weekend_syncs``: the worker keeps syncing while the market is closed (Saturday and Sunday 12:00 UTC
  inside a gap of the data), with Friday's last tick: no quote may be stale while the market is closed.
* ``netting``: a :class:`NettingScript` trades a netting account instead of the bot: open, increase, partial
  close, reversal (INOUT) and close.
* ``stop_outs``: lots sized to 80 % of the equity as margin at the broker's leverage, no SL; when a bar
  reaches the price at which the margin level falls to the stop-out level, the worker's snapshot at that
  moment shows it (margin level ≤ stop-out), then the broker closes there with a deal of reason 6. Every
  ``delay_every``-th stop-out deal is delivered one snapshot late, so the service first sees the position
  vanish without a deal (inferred ``stop_out``) and then the deal. When flat, the account is topped up to
  ``top_up_to`` by a deposit below ``top_up_below``, and brought back to it by a withdrawal above twice it.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Protocol

from replay import faults as F
from replay.bars import Bar, bar_period_seconds
from replay.bot import SmaCrossBot
from replay.broker import (
    BUY,
    CENT,
    REASON_CLIENT,
    REASON_EXPERT,
    REASON_STOP_OUT,
    SELL,
    Broker,
    Deal,
    Position,
    money,
)
from tradingsite import sync_payload


class Sink(Protocol):
    """Where the worker sends what it sees: tradingsite over HTTP, or a recorder in unit tests."""

    def register_position(self, payload: dict) -> dict:
        """``POST /api/v1/positions/`` with the bot's expected position; return the response JSON."""

    def post_sync(self, payload: dict) -> dict:
        """``POST /api/v1/reconciliation/syncs/`` with one snapshot; return the response JSON."""

    def declare_stops(self, position_id: int | None, ticket: int, payload: dict) -> dict:
        """``PATCH /api/v1/positions/{position_id}/`` with the bot's new ``sl``/``tp``; return the response JSON."""


class NullSink:
    """A sink that records payloads and answers ``{}``: the engine without a service (unit tests, dry runs)."""

    def __init__(self) -> None:
        self.registrations: list[dict] = []
        self.syncs: list[dict] = []
        self.calls: list[tuple[str, int]] = []  # ("register", ticket) / ("sync", number), in order
        self.declarations: list[tuple[int, dict]] = []  # (ticket, body)

    def register_position(self, payload: dict) -> dict:
        self.registrations.append(payload)
        self.calls.append(("register", payload["ticket"]))
        return {}

    def declare_stops(self, position_id: int | None, ticket: int, payload: dict) -> dict:
        self.declarations.append((ticket, payload))
        self.calls.append(("declare", ticket))
        return {}

    def post_sync(self, payload: dict) -> dict:
        self.syncs.append(payload)
        self.calls.append(("sync", len(self.syncs) - 1))
        return {}


@dataclass
class SyncRecord:
    """One posted snapshot as the tool knows it (its own figures) plus the service's answer."""

    number: int
    sync_id: str
    broker_time: datetime
    bar: int
    moment: str  # "open" or "close"
    bid: Decimal
    ask: Decimal
    balance: Decimal
    equity: Decimal
    open_positions: int
    deals: int
    after_gap: bool = False
    flow: Decimal = Decimal("0.00")  # Σ balance operations among this snapshot's deals
    deal_money: Decimal = Decimal("0.00")  # Σ profit + swap + commission of all its deals
    margin_level: Decimal = Decimal("0.00")
    quote_time: datetime | None = None
    response: dict = field(default_factory=dict)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z suffix."""
    return moment.isoformat().replace("+00:00", "Z")


def weekend_moments(start: datetime, end: datetime) -> list[datetime]:
    """Saturday and Sunday 12:00 UTC strictly between ``start`` and ``end`` (the FX market is closed then
    under either daylight-saving state: it closes Friday 21:00/22:00 UTC and opens Sunday 21:00/22:00 UTC)."""
    moments = []
    day = start.replace(hour=12, minute=0, second=0, microsecond=0)
    while day < end:
        if day > start and day.weekday() in (5, 6):
            moments.append(day)
        day += timedelta(days=1)
    return moments


@dataclass
class NettingScript:
    """The netting account's trades, one cycle of ``cycle`` bars from bar ``start`` (buy first, then sell):
    open ``lots`` (IN), add half of it (IN: increase), take half back (OUT: partial close), reverse with twice
    the open volume (INOUT: the lifecycle closes, the remainder opens on the other side), close the rest (OUT).
    Orders go at the bar's open (buy at the ask, sell at the bid), MT5 reason 3 (expert)."""

    start: int = 40
    cycle: int = 12
    lots: Decimal = Decimal("0.20")

    def order(self, index: int, held: Position | None) -> tuple[str, Decimal] | None:
        """The (side, volume) to send at bar ``index`` given the position ``held``, or None."""
        if index < self.start:
            return None
        number, step = divmod(index - self.start, self.cycle)
        first = BUY if number % 2 == 0 else SELL
        other = SELL if first == BUY else BUY
        if step == 0 and held is None:
            return first, self.lots
        if held is None:
            return None
        if step == 3 and held.side == first:
            return first, self.lots / 2
        if step == 6 and held.side == first:
            return other, self.lots / 2
        if step == 8 and held.side == first:
            return other, held.volume * 2
        if step == 11:
            return (SELL if held.side == BUY else BUY), held.volume
        return None


class Engine:
    """Replays ``bars`` through ``bot``/``broker``/``faults`` and posts everything to ``sink``.

    ``spread_warning_pct`` (percent) sizes the injected widened spreads; ``default_spread_points`` is
    used for bars without a spread column. ``progress`` is called with (bars done, bars total) every 100 bars.
    """

    def __init__(
        self,
        *,
        bars: list[Bar],
        broker: Broker,
        bot: SmaCrossBot,
        faults: F.FaultInjector,
        sink: Sink,
        default_spread_points: int = 10,
        spread_warning_pct: Decimal = Decimal("0.5"),
        max_manual_trades: int = 3,
        progress: Callable[[int, int], None] | None = None,
        partial_close_at_r: bool = False,
        cash_flows: dict[int, Decimal] | None = None,
        manual_symbol_trade: tuple[int, int] | None = None,
        manual_symbol: str = "NAS100",
        weekend_syncs: bool = False,
        netting: NettingScript | None = None,
        stop_outs: bool = False,
        delay_every: int = 2,
        top_up_below: Decimal = Decimal("500"),
        top_up_to: Decimal = Decimal("1000"),
        probe: Callable[[str, int], None] | None = None,
    ) -> None:
        if not bars:
            raise ValueError("no bars to replay")
        self.broker = broker
        self.spec = broker.spec
        price = self.spec.price
        # Quotes carry exactly the symbol's digits ("1.0716" in the CSV is 1.07160).
        self.bars = [
            replace(bar, open=price(bar.open), high=price(bar.high), low=price(bar.low), close=price(bar.close))
            for bar in bars
        ]
        self.bot = bot
        self.faults = faults
        self.sink = sink
        self.default_spread_points = default_spread_points
        self.spread_warning_pct = spread_warning_pct
        self.max_manual_trades = max_manual_trades
        self.progress = progress
        self.period = timedelta(seconds=bar_period_seconds(bars))
        self.syncs: list[SyncRecord] = []
        self.registrations: list[dict] = []
        self.entries = 0
        self.manual_trades: dict[int, tuple[int, int]] = {}  # ticket → (bar due, close reason)
        self.modified: set[int] = set()
        self.signal: str | None = None
        self.last_sync_wide = False
        self.elapsed_s = 0.0
        self.post_s = 0.0
        self.partial_close_at_r = partial_close_at_r
        self.cash_flows = cash_flows or {}
        self.manual_symbol_trade = manual_symbol_trade
        self.manual_symbol = manual_symbol
        self.weekend_syncs = weekend_syncs
        self.netting = netting
        self.stop_outs = stop_outs
        self.delay_every = delay_every
        self.top_up_below, self.top_up_to = top_up_below, top_up_to
        self.probe = probe
        self.events: list[dict] = []  # scenario ground truth: {"kind", "ticket", "time", …}
        self.ledger_ids: dict[int, int | None] = {}  # ticket → the service's position id (registration answer)
        self.partial_done: set[int] = set()
        self.trail_pending: list[int] = []
        self.declared: dict[int, Decimal] = {}  # ticket → declared SL not yet seen at the broker
        self.symbol_trade: int | None = None  # ticket of the open manual trade in the spec-less symbol
        self.probed = False
        self.stop_out_deals: list[Deal] = []
        self.delayed_deals: list[Deal] = []
        self.extra_divergences: set[tuple[int, str]] = set()

    # ------------------------------------------------------------------ helpers
    def spread_of(self, bar: Bar) -> Decimal:
        """The bar's normal spread as a price difference (CSV spread in points, else the default)."""
        points = bar.spread_points if bar.spread_points is not None else self.default_spread_points
        return points * self.spec.point

    def bot_positions(self) -> list[Position]:
        """Open positions carrying the bot's magic number, oldest first."""
        return [p for p in self.broker.positions.values() if p.magic == self.bot.magic]

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        """Replay every bar (see the module docstring for the per-bar timeline)."""
        started = clock.perf_counter()
        total = len(self.bars)
        for index, bar in enumerate(self.bars):
            self._bar(index, bar)
            if self.progress and (index + 1) % 100 == 0:
                self.progress(index + 1, total)
        if self.broker.has_unreported_deals():  # a deal held back at the last bar: one more snapshot
            last = self.syncs[-1]
            self._sync(last.broker_time + timedelta(seconds=1), last.bar, "close")
        self.elapsed_s = clock.perf_counter() - started

    def _bar(self, index: int, bar: Bar) -> None:
        self.faults.new_bar(index)
        spread = self.spread_of(bar)
        previous = self.bars[index - 1] if index else None
        if previous is not None and self.weekend_syncs:
            for moment in weekend_moments(previous.time + self.period, bar.time):
                self._sync(moment, index - 1, "weekend")
        if previous is not None:
            self.broker.apply_rollover(previous=previous.time, current=bar.time)

        # 2. open tick
        self.broker.set_quote(bid=bar.open, ask=bar.open + spread, time=bar.time)
        self._symbol_quote(index, bar.open)
        opening_only = Bar(time=bar.time, open=bar.open, high=bar.open, low=bar.open, close=bar.open)
        activity = bool(self.broker.check_stops(opening_only, spread=spread, time=bar.time))
        if self.netting is not None:
            activity |= self._netting_order(index, bar.time)
        elif self.signal is not None:
            activity |= self._execute_signal(index, bar.time)
        if self.faults.due(F.MANUAL_TRADE) and len(self.manual_trades) < self.max_manual_trades:
            self._manual_trade(index, bar.time)
            activity = True
        if self.manual_symbol_trade and index == self.manual_symbol_trade[0]:
            self._open_symbol_trade(bar.time)
            activity = True
        after_gap = previous is not None and bar.time - previous.time > self.period
        if activity or after_gap:
            self._sync(bar.time, index, "open", after_gap=after_gap)

        # 3. inside the bar: a stop-out first (at a quarter of the bar), then SL/TP
        if self.stop_outs:
            self._stop_out(index, bar, spread)
        self.broker.check_stops(bar, spread=spread, time=bar.time + self.period / 2)

        # 4. close tick
        close_time = bar.time + self.period - timedelta(seconds=1)
        self.broker.set_quote(bid=bar.close, ask=bar.close + spread, time=close_time)
        self._symbol_quote(index, bar.close)
        self._close_due_manual_trades(index, close_time)
        if self.symbol_trade is not None and self.manual_symbol_trade and index >= self.manual_symbol_trade[1]:
            self.broker.close_at_market(ticket=self.symbol_trade, time=close_time, reason=REASON_CLIENT)
            self.symbol_trade = None
        if self.partial_close_at_r:
            self._partial_closes(close_time)
        if self.faults.due(F.MANUAL_CLOSE):
            self._manual_close(index, close_time)
        if self.faults.due(F.SLTP_CHANGE):
            self._sltp_change(index, close_time)
        if index in self.cash_flows:
            self._balance_operation(self.cash_flows[index], close_time)
        # the trader refills the account after stop-outs and takes profits out above twice the refill level,
        # so lots sized to the equity neither vanish nor compound without bound
        balance = self.broker.balance
        if self.stop_outs and not self.broker.positions and not self.top_up_below <= balance <= 2 * self.top_up_to:
            self._balance_operation(self.top_up_to - balance, close_time)
        wide = self.faults.due(F.WIDE_SPREAD) and self._wide_spread(index, bar, spread, close_time)
        self._sync(close_time, index, "close")
        self.last_sync_wide = wide
        self._trail_stops()
        if self.netting is None:
            self.signal = self.bot.on_bar_close(bar.close)

    # ------------------------------------------------------------------ bot
    def _execute_signal(self, index: int, when: datetime) -> bool:
        side, self.signal = self.signal, None
        acted = False
        for position in self.bot_positions():
            if position.side != side:
                self.broker.close_at_market(ticket=position.ticket, time=when, reason=REASON_EXPERT)
                acted = True
        if any(p.side == side for p in self.bot_positions()):
            return acted
        self._enter(index, side, when)
        return True

    def _enter(self, index: int, side: str, when: datetime) -> None:
        requested = self.broker.ask if side == BUY else self.broker.bid
        if self.stop_outs:
            self.bot.lots = self._margin_sized_lots(requested)
            if self.bot.lots < self.spec.volume_step:
                return  # not enough equity for one volume step
        self.entries += 1
        sl, tp = self.bot.levels(side=side, requested=requested, spec=self.spec)
        fill_price, fill_volume = requested, self.bot.lots
        fault = self.faults.entry_fault(self.entries)
        if fault == F.PARTIAL_FILL and self.bot.lots < 2 * self.spec.volume_step:
            fault = None  # one volume step cannot be filled partially
        details: dict = {}
        if fault == F.ENTRY_SLIPPAGE:
            pips = self.faults.slippage_pips()
            fill_price = self.spec.price(requested + pips * self.spec.pip)
            details = {"requested_price": str(requested), "price_open": str(fill_price), "slippage_pips": pips}
        elif fault == F.PARTIAL_FILL:
            fill_volume = self.faults.partial_volume(self.bot.lots, self.spec.volume_step)
            details = {"requested_volume": str(self.bot.lots), "filled_volume": str(fill_volume)}
        position = self.broker.open_position(
            side=side,
            volume=fill_volume,
            price=fill_price,
            sl=sl,
            tp=tp,
            time=when,
            magic=self.bot.magic,
            comment="sma",
        )
        if fault is not None:
            self.faults.record(
                F.Fault(
                    kind=fault,
                    bar=index,
                    time=when,
                    ticket=position.ticket,
                    expected={"divergence": fault},
                    details=details,
                )
            )
        self._register(position.ticket, side=side, volume=self.bot.lots, requested=requested, sl=sl, tp=tp)

    def _register(
        self, ticket: int, *, side: str, volume: Decimal, requested: Decimal, sl: Decimal | None, tp: Decimal | None
    ) -> None:
        """``POST positions/`` on this account (named by server and login); keeps the service's id."""
        payload = {
            "ticket": ticket,
            "symbol": self.spec.symbol,
            "side": side,
            "volume": str(volume),
            "requested_price": str(requested),
            "server": self.broker.server,
            "login": self.broker.login,
        }
        if sl is not None:
            payload["sl"] = str(sl)
        if tp is not None:
            payload["tp"] = str(tp)
        self.registrations.append(payload)
        response = self.sink.register_position(payload) or {}
        self.ledger_ids[ticket] = response.get("id")

    def _margin_sized_lots(self, price: Decimal) -> Decimal:
        """Lots whose margin at the broker's leverage is 80 % of the equity (a margin level of 125 % at entry),
        rounded down to the volume step."""
        step = self.spec.volume_step
        lots = self.broker.equity() * self.broker.leverage / (self.spec.contract_size * price * Decimal("1.25"))
        return (lots / step).to_integral_value(rounding=ROUND_DOWN) * step

    # ------------------------------------------------------------------ scenarios
    def _event(self, kind: str, ticket: int, when: datetime, **details) -> None:
        self.events.append({"kind": kind, "ticket": ticket, "time": iso(when), **details})

    def _partial_closes(self, when: datetime) -> None:
        """Half of a full-size bot position at 1R in favour (the SL distance), once per position."""
        step, r = self.spec.volume_step, self.bot.sl_pips * self.spec.pip
        for position in self.bot_positions():
            if position.ticket in self.partial_done or position.volume != self.bot.lots:
                continue
            half = (position.volume / 2 / step).to_integral_value(rounding=ROUND_DOWN) * step
            if half < step:
                continue
            if position.side == BUY:
                gain = self.broker.bid - position.price_open
            else:
                gain = position.price_open - self.broker.ask
            if gain < r:
                continue
            deal = self.broker.close_at_market(ticket=position.ticket, time=when, reason=REASON_EXPERT, volume=half)
            self.partial_done.add(position.ticket)
            self.trail_pending.append(position.ticket)
            self._event("partial_close", position.ticket, when, volume=str(half), deal=deal.ticket)

    def _trail_stops(self) -> None:
        """After the snapshot that showed a partial close: SL to break-even, declared to the service first."""
        for ticket in self.trail_pending:
            position = self.broker.positions.get(ticket)
            if position is None or position.sl is None:
                continue
            level = self.spec.price(position.price_open)
            if not self._valid_level(position, "sl", level, 2 * self.spec.pip):
                continue
            self.sink.declare_stops(self.ledger_ids.get(ticket), ticket, {"sl": str(level)})
            self.broker.modify_position(ticket=ticket, sl=level, tp=position.tp)
            self.declared[ticket] = level
            self.modified.add(ticket)  # no sltp_change fault on it: the broker must show the declaration
        self.trail_pending = []

    def _balance_operation(self, amount: Decimal, when: datetime) -> None:
        deal = self.broker.balance_operation(amount=amount, time=when, comment="replay cash flow")
        self._event("deposit" if amount > 0 else "withdrawal", deal.ticket, when, amount=str(deal.profit))

    def _symbol_quote(self, index: int, price: Decimal) -> None:
        """The spec-less symbol's tick around its trade: 6 000 × EURUSD / the first open, a 1-point spread."""
        if not self.manual_symbol_trade or not self.manual_symbol_trade[0] <= index <= self.manual_symbol_trade[1]:
            return
        spec = self.broker.extra_specs[self.manual_symbol]
        bid = spec.price(Decimal("6000") * price / self.bars[0].open)
        self.broker.set_extra_quote(self.manual_symbol, bid=bid, ask=bid + spec.point * 10)

    def _open_symbol_trade(self, when: datetime) -> None:
        _, ask = self.broker.extra_quotes[self.manual_symbol]
        position = self.broker.open_position(
            side=BUY, volume=Decimal("1.00"), price=ask, sl=None, tp=None, time=when, magic=0, comment="manual",
            symbol=self.manual_symbol,
        )  # fmt: skip
        self.symbol_trade = position.ticket
        self.extra_divergences.add((position.ticket, "unexpected_at_broker"))
        self._event("spec_missing_trade", position.ticket, when, symbol=self.manual_symbol, price_open=str(ask))

    def _netting_order(self, index: int, when: datetime) -> bool:
        held = next((p for p in self.broker.positions.values() if not p.symbol), None)
        order = self.netting.order(index, held) if self.netting else None
        if order is None:
            return False
        side, volume = order
        price = self.broker.ask if side == BUY else self.broker.bid
        kind, position, deal = self.broker.net_order(side=side, volume=volume, price=price, time=when, magic=20260502)
        if kind == "opened" and position is not None:
            self.entries += 1
            self._register(position.ticket, side=side, volume=volume, requested=price, sl=None, tp=None)
        elif kind in ("increased", "partial_close", "reversed") and position is not None:
            self._event(
                "position_increased" if kind == "increased" else kind,
                position.ticket,
                when,
                deal=deal.ticket if deal else None,
            )
        return True

    def _stop_out_price(self, position: Position) -> Decimal:
        """The closing-side price (a buy's bid, a sell's ask) at which the margin level reaches the stop-out
        level with this the only position: equity = so × margin, equity = balance + swap + d × (p − open) × V
        × C and margin = V × C × p / leverage, solved for p, then moved by whole points until the level the
        broker reports (2 dp) is at or under the stop-out level."""
        broker, spec = self.broker, self.spec
        so = broker.margin_so_so / 100
        units = position.volume * spec.contract_size
        base = broker.balance + position.swap
        if position.side == BUY:
            price = ((position.price_open * units - base) / (units * (1 - so / broker.leverage))).quantize(
                spec.point, rounding=ROUND_FLOOR
            )
        else:
            price = ((base + position.price_open * units) / (units * (1 + so / broker.leverage))).quantize(
                spec.point, rounding=ROUND_CEILING
            )
        step = -spec.point if position.side == BUY else spec.point
        for _ in range(1000):
            if price > 0 and self._level_at(position, price) <= broker.margin_so_so:
                return price
            price += step
        raise AssertionError("no stop-out price within 1,000 points")

    def _level_at(self, position: Position, price: Decimal) -> Decimal:
        """The margin level (2 dp) the broker reports with ``position`` (the only one) valued at ``price``."""
        broker = self.broker
        profit = broker.profit(position.side, position.price_open, price, position.volume)
        equity = broker.balance + position.swap + profit
        margin = money(position.volume * self.spec.contract_size * price / broker.leverage)
        return (equity / margin * 100).quantize(CENT, rounding=ROUND_HALF_UP) if margin > 0 else Decimal("999999")

    def _stop_out(self, index: int, bar: Bar, spread: Decimal) -> None:
        """The broker's stop-out inside the bar (see the module docstring)."""
        positions = [p for p in self.broker.positions.values() if not p.symbol]
        if len(positions) != 1:
            return
        position = positions[0]
        level = self._stop_out_price(position)
        fill: Decimal | None
        if position.side == BUY:
            fill = bar.open if bar.open <= level else level if bar.low <= level else None
        else:
            fill = bar.open + spread if bar.open + spread >= level else level if bar.high + spread >= level else None
        if fill is None:
            return
        when = bar.time + self.period / 4
        bid, ask = (fill, fill + spread) if position.side == BUY else (fill - spread, fill)
        self.broker.set_quote(bid=bid, ask=ask, time=when)
        self._sync(when, index, "stop_out")  # the worker sees the margin level at the stop-out level
        deal = self.broker.close_position(ticket=position.ticket, price=fill, time=when, reason=REASON_STOP_OUT)
        self.stop_out_deals.append(deal)
        if len(self.stop_out_deals) % self.delay_every == 0:
            self.broker.hold_back(deal)
            self.delayed_deals.append(deal)

    # ------------------------------------------------------------------ faults
    def _manual_trade(self, index: int, when: datetime) -> None:
        side, lots, hold, reason = self.faults.manual_trade()
        price = self.broker.ask if side == BUY else self.broker.bid
        position = self.broker.open_position(
            side=side, volume=lots, price=price, sl=None, tp=None, time=when, magic=0, comment="manual"
        )
        self.manual_trades[position.ticket] = (index + hold, reason)
        self.faults.done(F.MANUAL_TRADE)
        self.faults.record(
            F.Fault(
                kind=F.MANUAL_TRADE,
                bar=index,
                time=when,
                ticket=position.ticket,
                expected={"divergence": "unexpected_at_broker"},
                details={"side": side, "volume": str(lots), "price_open": str(price), "close_bar": index + hold},
            )
        )

    def _close_due_manual_trades(self, index: int, when: datetime) -> None:
        for ticket, (due, reason) in list(self.manual_trades.items()):
            if due <= index:
                if ticket in self.broker.positions:
                    self.broker.close_at_market(ticket=ticket, time=when, reason=reason)
                del self.manual_trades[ticket]

    def _manual_close(self, index: int, when: datetime) -> None:
        candidates = [p for p in self.bot_positions() if p.ticket not in self.trail_pending]
        if not candidates:
            return
        position = self.faults.pick(candidates)
        reason = self.faults.manual_close_reason()
        deal = self.broker.close_at_market(ticket=position.ticket, time=when, reason=reason)
        self.faults.done(F.MANUAL_CLOSE)
        self.faults.record(
            F.Fault(
                kind=F.MANUAL_CLOSE,
                bar=index,
                time=when,
                ticket=position.ticket,
                expected={"close_reason": "closed_manually"},
                details={"deal_reason": reason, "price": str(deal.price), "realized_pnl": str(deal.realized)},
            )
        )

    def _sltp_change(self, index: int, when: datetime) -> None:
        candidates = [p for p in self.bot_positions() if p.ticket not in self.modified]
        if not candidates:
            return
        position = self.faults.pick(candidates)
        which, pips = self.faults.sltp_change()
        current = getattr(position, which)
        if current is None:
            return
        margin = 2 * self.spec.pip
        for move in (pips, -pips):
            new = self.spec.price(current + move * self.spec.pip)
            if self._valid_level(position, which, new, margin):
                break
        else:
            return
        sl, tp = (new, position.tp) if which == "sl" else (position.sl, new)
        self.broker.modify_position(ticket=position.ticket, sl=sl, tp=tp)
        self.modified.add(position.ticket)
        self.faults.done(F.SLTP_CHANGE)
        self.faults.record(
            F.Fault(
                kind=F.SLTP_CHANGE,
                bar=index,
                time=when,
                ticket=position.ticket,
                expected={"divergence": f"{which}_mismatch"},
                details={"field": which, "expected": str(current), "actual": str(new), "move_pips": move},
            )
        )

    def _valid_level(self, position: Position, which: str, level: Decimal, margin: Decimal) -> bool:
        """MT5 accepts an SL below / TP above the bid for a buy (mirrored at the ask for a sell), off by a margin."""
        if level <= 0:
            return False
        if position.side == BUY:
            price = self.broker.bid
            return level < price - margin if which == "sl" else level > price + margin
        price = self.broker.ask
        return level > price + margin if which == "sl" else level < price - margin

    def _wide_spread(self, index: int, bar: Bar, spread: Decimal, when: datetime) -> bool:
        if self.last_sync_wide:
            return False
        point = self.spec.point
        factor = self.faults.spread_factor()
        target = self.spread_warning_pct * factor / 100 * bar.close
        total_points = math.ceil(target / point)
        normal_points = int(spread / point)
        widen = max(1, math.ceil(Decimal(total_points - normal_points) / 2))
        bid, ask = bar.close - widen * point, bar.close + spread + widen * point
        for position in self.broker.positions.values():
            if position.sl is None:
                continue
            if (position.side == BUY and bid <= position.sl) or (position.side != BUY and ask >= position.sl):
                return False  # the spike would stop the position out: choose another moment
        self.broker.set_quote(bid=bid, ask=ask, time=when)
        self.faults.done(F.WIDE_SPREAD)
        spread_pct = (ask - bid) / bid * 100
        self.faults.record(
            F.Fault(
                kind=F.WIDE_SPREAD,
                bar=index,
                time=when,
                ticket=None,
                expected={"alert": "wide_spread"},
                details={
                    "bid": str(bid),
                    "ask": str(ask),
                    "spread_points": int((ask - bid) / point),
                    "spread_pct": str(spread_pct.quantize(Decimal("0.0001"))),
                },
            )
        )
        return True

    # ------------------------------------------------------------------ snapshots
    def _sync(self, when: datetime, index: int, moment: str, *, after_gap: bool = False) -> None:
        deals: list[Deal] = self.broker.take_unreported_deals()
        account = self.broker.account_info(when)
        payload = sync_payload.sync_body(
            account=account,
            broker_time=when,
            positions=self.broker.positions_get(),
            quotes=[self.broker.tick()],
            deals=[self.broker.deal_dict(d) for d in deals],
            # the worker forwards symbol_info() once, so the service knows the instrument
            symbols=[] if self.syncs else [self.broker.symbol_info()],
        )
        record = SyncRecord(
            number=len(self.syncs) + 1,
            sync_id=payload["sync_id"],
            broker_time=when,
            bar=index,
            moment=moment,
            bid=self.broker.bid,
            ask=self.broker.ask,
            balance=Decimal(account["balance"]),
            equity=Decimal(account["equity"]),
            open_positions=len(self.broker.positions),
            deals=len(deals),
            after_gap=after_gap,
            flow=sum((d.realized for d in deals if not d.is_trade), Decimal("0.00")),
            deal_money=sum((d.realized for d in deals), Decimal("0.00")),
            margin_level=Decimal(account["margin_level"]),
            quote_time=self.broker.quote_time,
        )
        for ticket, level in list(self.declared.items()):
            row = next((r for r in payload["positions"] if r["ticket"] == ticket), None)
            if row is None:
                del self.declared[ticket]  # closed before any snapshot showed the new stop: nothing to log
            elif Decimal(row["sl"]) == level:
                del self.declared[ticket]
                self._event("sl_updated", ticket, when, sl=str(level))
        started = clock.perf_counter()
        record.response = self.sink.post_sync(payload) or {}
        self.post_s += clock.perf_counter() - started
        self.syncs.append(record)
        if self.symbol_trade is not None and not self.probed and self.probe is not None:
            self.probed = True  # the service shows the spec-less position now: ask how it values it
            self.probe("spec_missing", self.symbol_trade)
