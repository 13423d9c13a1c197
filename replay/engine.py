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
"""

from __future__ import annotations

import math
import time as clock
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from replay import faults as F
from replay.bars import Bar, bar_period_seconds
from replay.bot import SmaCrossBot
from replay.broker import BUY, REASON_EXPERT, Broker, Deal, Position


class Sink(Protocol):
    """Where the worker sends what it sees: tradingsite over HTTP, or a recorder in unit tests."""

    def register_position(self, payload: dict) -> dict:
        """``POST /api/v1/positions/`` with the bot's expected position; return the response JSON."""

    def post_sync(self, payload: dict) -> dict:
        """``POST /api/v1/reconciliation/syncs/`` with one snapshot; return the response JSON."""


class NullSink:
    """A sink that records payloads and answers ``{}``: the engine without a service (unit tests, dry runs)."""

    def __init__(self) -> None:
        self.registrations: list[dict] = []
        self.syncs: list[dict] = []
        self.calls: list[tuple[str, int]] = []  # ("register", ticket) / ("sync", number), in order

    def register_position(self, payload: dict) -> dict:
        self.registrations.append(payload)
        self.calls.append(("register", payload["ticket"]))
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
    response: dict = field(default_factory=dict)


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z suffix."""
    return moment.isoformat().replace("+00:00", "Z")


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
        self.elapsed_s = clock.perf_counter() - started

    def _bar(self, index: int, bar: Bar) -> None:
        self.faults.new_bar(index)
        spread = self.spread_of(bar)
        previous = self.bars[index - 1] if index else None
        if previous is not None:
            self.broker.apply_rollover(previous=previous.time, current=bar.time)

        # 2. open tick
        self.broker.set_quote(bid=bar.open, ask=bar.open + spread, time=bar.time)
        opening_only = Bar(time=bar.time, open=bar.open, high=bar.open, low=bar.open, close=bar.open)
        activity = bool(self.broker.check_stops(opening_only, spread=spread, time=bar.time))
        if self.signal is not None:
            activity |= self._execute_signal(index, bar.time)
        if self.faults.due(F.MANUAL_TRADE) and len(self.manual_trades) < self.max_manual_trades:
            self._manual_trade(index, bar.time)
            activity = True
        after_gap = previous is not None and bar.time - previous.time > self.period
        if activity or after_gap:
            self._sync(bar.time, index, "open", after_gap=after_gap)

        # 3. inside the bar
        self.broker.check_stops(bar, spread=spread, time=bar.time + self.period / 2)

        # 4. close tick
        close_time = bar.time + self.period - timedelta(seconds=1)
        self.broker.set_quote(bid=bar.close, ask=bar.close + spread, time=close_time)
        self._close_due_manual_trades(index, close_time)
        if self.faults.due(F.MANUAL_CLOSE):
            self._manual_close(index, close_time)
        if self.faults.due(F.SLTP_CHANGE):
            self._sltp_change(index, close_time)
        wide = self.faults.due(F.WIDE_SPREAD) and self._wide_spread(index, bar, spread, close_time)
        self._sync(close_time, index, "close")
        self.last_sync_wide = wide
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
        self.entries += 1
        requested = self.broker.ask if side == BUY else self.broker.bid
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
        payload = {
            "ticket": position.ticket,
            "symbol": self.spec.symbol,
            "side": side,
            "volume": str(self.bot.lots),
            "requested_price": str(requested),
            "sl": str(sl),
            "tp": str(tp),
            "server": self.broker.server,
            "login": self.broker.login,
        }
        self.registrations.append(payload)
        self.sink.register_position(payload)

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
        candidates = self.bot_positions()
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
        account = self.broker.account_info()
        payload = {
            "sync_id": str(uuid.uuid4()),
            "broker_time": iso(when),
            "account": account,
            "positions": self.broker.positions_get(),
            "quotes": [self.broker.tick()],
            "deals": [self.broker.deal_dict(d) for d in deals],
        }
        if not self.syncs:  # the worker forwards symbol_info() once, so the service knows the instrument
            payload["symbols"] = [self.broker.symbol_info()]
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
        )
        started = clock.perf_counter()
        record.response = self.sink.post_sync(payload) or {}
        self.post_s += clock.perf_counter() - started
        self.syncs.append(record)
