"""A simulated MT5 broker account over OHLC bars: fills, SL/TP hits, swap at rollover, equity, deals.

Conventions (those of MT5 for an FX/metal symbol quoted in the account currency):

* Bars are **bid** prices; ask = bid + spread (``spread_points`` × ``point``).
* A buy opens at the ask and is valued/closed at the bid; a sell opens at the bid and is valued/closed at the ask.
* SL/TP are decided from the bar's extremes: buy SL when bid low ≤ SL, TP when bid high ≥ TP; sell SL when
  ask high (high + spread) ≥ SL, TP when ask low (low + spread) ≤ TP. When the bar *opens* beyond a level (a gap)
  the position closes at that open, as a market order would; when both levels lie inside one bar, the SL is
  assumed hit first (the pessimistic convention of backtesters).
* Profit (account currency = quote currency, no conversion) = d × (close − open) × volume × contract_size,
  rounded half-up to 2 dp (MT5 rounds to the account currency's digits); d = +1 buy, −1 sell.
* Swap is charged at each midnight crossed whose previous day is Monday–Friday, three-fold for Wednesday's
  (the FX weekend convention): volume × contract_size × point × swap_points, rounded to 2 dp.
* Equity = balance + Σ (profit + swap) of open positions; margin = Σ volume × contract_size × price / leverage.
* A closing deal (``entry`` 1 = out) carries the MT5 ``reason`` code: 0 client, 1 mobile, 2 web, 3 expert,
  4 SL, 5 TP, 6 stop out. Its profit + swap + commission is added to the balance. A partial close is an
  OUT deal for part of the volume; it takes the same share of the position's swap.
* Netting accounts (``netting``, MT5 margin mode 0) hold one position per symbol: an order on its side is
  an IN deal that increases it (``price_open`` the volume-weighted average, 8 decimals), a smaller
  opposite order an OUT deal (partial close), an equal one closes it, a larger one is an INOUT deal that
  closes it and opens the remainder on the other side under the same identifier (MQL5 reference,
  ``ENUM_DEAL_ENTRY``). With ``entry_deals`` the IN deals are reported too; ``commission_per_lot``
  (account currency, negative = charged) is booked on every trade deal's volume when it happens.
* Balance operations (deposits +, withdrawals −) are deals of type 2 (DEAL_TYPE_BALANCE), position 0.
* Times: MT5 stamps ``time`` fields with the trade server's clock; ``utc_offset`` (minutes east of UTC at a
  moment) turns a UTC moment into those epoch seconds, and ``account_info()`` reports the current offset as
  ``server_utc_offset`` (as a worker does), so the service can normalise them back.
* Margin level = equity / margin × 100 (2 dp, 0 without margin); the broker's levels are sent as MT5's
  ``margin_so_mode`` 0 (percent), ``margin_so_call`` and ``margin_so_so``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from replay.bars import Bar
from tradingsite import sync_payload

CENT = Decimal("0.01")

# MT5 ENUM_DEAL_REASON values used here.
REASON_CLIENT = 0
REASON_MOBILE = 1
REASON_WEB = 2
REASON_EXPERT = 3
REASON_SL = 4
REASON_TP = 5
REASON_STOP_OUT = 6

# How tradingsite must map a closing deal's reason to a close reason.
CLOSE_REASON_BY_DEAL_REASON = {
    REASON_CLIENT: "closed_manually",
    REASON_MOBILE: "closed_manually",
    REASON_WEB: "closed_manually",
    REASON_EXPERT: "closed_by_bot",
    REASON_SL: "sl_hit",
    REASON_TP: "tp_hit",
    REASON_STOP_OUT: "stop_out",
}

BUY = "buy"
SELL = "sell"

# MT5 ENUM_DEAL_ENTRY and the deal types used here (ENUM_DEAL_TYPE: 0 buy, 1 sell, 2 balance).
ENTRY_IN = 0
ENTRY_OUT = 1
ENTRY_INOUT = 2
DEAL_BUY = 0
DEAL_SELL = 1
DEAL_BALANCE = 2
PRICE_QUANTUM = Decimal("0.00000001")
NEW_YORK = ZoneInfo("America/New_York")


def new_york_close_offset(moment: datetime) -> int:
    """Minutes east of UTC of a trade server whose midnight is 17:00 New York (the common MT5 setup):
    UTC+3 while New York keeps daylight saving time, else UTC+2."""
    return 180 if moment.astimezone(NEW_YORK).dst() else 120


def money(value: Decimal) -> Decimal:
    """Round an amount of account currency half-up to cents."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """MT5 ``symbol_info()`` essentials: digits, contract size (units per lot), base and quote currency."""

    symbol: str
    digits: int
    contract_size: Decimal
    currency_base: str
    currency_profit: str
    volume_step: Decimal = Decimal("0.01")

    @property
    def point(self) -> Decimal:
        """Smallest price step, e.g. 0.00001 for a 5-digit quote."""
        return Decimal(1).scaleb(-self.digits)

    @property
    def pip(self) -> Decimal:
        """Pip size: 10 × point for 3- and 5-digit quotes, else the point (EURUSD 0.0001)."""
        return self.point * 10 if self.digits in (3, 5) else self.point

    def price(self, value: Decimal) -> Decimal:
        """Round a price half-up to the symbol's digits."""
        return value.quantize(self.point, rounding=ROUND_HALF_UP)


SPECS = {
    "EURUSD": SymbolSpec("EURUSD", 5, Decimal("100000"), "EUR", "USD"),
    "GBPUSD": SymbolSpec("GBPUSD", 5, Decimal("100000"), "GBP", "USD"),
    "AUDUSD": SymbolSpec("AUDUSD", 5, Decimal("100000"), "AUD", "USD"),
    "NZDUSD": SymbolSpec("NZDUSD", 5, Decimal("100000"), "NZD", "USD"),
    "XAUUSD": SymbolSpec("XAUUSD", 2, Decimal("100"), "XAU", "USD"),
    # An index CFD the replay trades by hand without sending its specs (the service has none: spec_missing).
    "NAS100": SymbolSpec("NAS100", 1, Decimal("1"), "USD", "USD"),
}


@dataclass(slots=True)
class Position:
    """One open position as ``positions_get()`` reports it (prices in quote currency, money in account currency)."""

    ticket: int
    side: str
    volume: Decimal
    price_open: Decimal
    sl: Decimal | None
    tp: Decimal | None
    time: datetime
    magic: int
    comment: str = ""
    swap: Decimal = Decimal("0.00")
    price_current: Decimal = Decimal("0")
    profit: Decimal = Decimal("0.00")
    symbol: str = ""

    @property
    def direction(self) -> int:
        """+1 for a buy, −1 for a sell."""
        return 1 if self.side == BUY else -1


@dataclass(frozen=True, slots=True)
class Deal:
    """One deal as ``history_deals_get()`` reports it: ``entry`` 0 in, 1 out, 2 inout; ``type`` 0 buy, 1 sell,
    2 balance (``position_id`` 0). ``side`` is the side of the position the deal closes (or opens, for IN)."""

    ticket: int
    position_id: int
    side: str  # side of the position the deal acts on (before it)
    reason: int
    price: Decimal
    volume: Decimal
    profit: Decimal
    swap: Decimal
    commission: Decimal
    time: datetime
    magic: int
    entry: int = ENTRY_OUT
    type: int | None = None  # None: the opposite of ``side`` (a closing deal)
    order: int = 0
    symbol: str = ""
    final: bool = False  # the deal ends a lifecycle of its position (a full close, or an INOUT reversal)

    @property
    def deal_type(self) -> int:
        """MT5 deal type: the explicit one, else the closing direction (a sell closes a buy)."""
        if self.type is not None:
            return self.type
        return DEAL_SELL if self.side == BUY else DEAL_BUY

    @property
    def is_trade(self) -> bool:
        """A buy/sell deal (not a balance operation)."""
        return self.deal_type in (DEAL_BUY, DEAL_SELL)

    @property
    def realized(self) -> Decimal:
        """profit + swap + commission (the realized_pnl), account currency."""
        return self.profit + self.swap + self.commission


@dataclass
class Broker:
    """The simulated account: open positions, balance, the current quote, and the closing deals history.

    Tickets: positions (= their opening orders) are numbered from ``first_ticket``, deals from ``first_deal``,
    each sequence increasing by one, as MT5's server counters do.
    """

    spec: SymbolSpec
    balance: Decimal
    currency: str = "USD"
    login: int = 5021337
    server: str = "Replay-Server"  # the MT5 trade server name account_info() reports
    leverage: int = 100
    swap_long_points: Decimal = Decimal("-6.5")
    swap_short_points: Decimal = Decimal("1.8")
    first_ticket: int = 50_000_001
    first_deal: int = 80_000_001
    positions: dict[int, Position] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)
    bid: Decimal = Decimal("0")
    ask: Decimal = Decimal("0")
    quote_time: datetime | None = None
    netting: bool = False
    entry_deals: bool = False
    commission_per_lot: Decimal = Decimal("0.00")
    utc_offset: Callable[[datetime], int] | None = None
    margin_so_call: Decimal = Decimal("100")
    margin_so_so: Decimal = Decimal("50")
    extra_specs: dict[str, SymbolSpec] = field(default_factory=dict)
    extra_quotes: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spec.currency_profit != self.currency:
            raise ValueError(
                f"{self.spec.symbol} profits are in {self.spec.currency_profit}; the simulated account is in "
                f"{self.currency}: only symbols quoted in the account currency are supported"
            )
        self._next_ticket = self.first_ticket
        self._next_deal = self.first_deal
        self._unreported: list[Deal] = []
        self._held: set[int] = set()

    # ------------------------------------------------------------------ quotes and valuation
    def set_quote(self, *, bid: Decimal, ask: Decimal, time: datetime) -> None:
        """Set the current tick and revalue every open position at it."""
        if ask < bid:
            raise ValueError(f"ask {ask} below bid {bid}")
        self.bid, self.ask, self.quote_time = bid, ask, time
        for position in self.positions.values():
            self._mark(position)

    def set_extra_quote(self, symbol: str, *, bid: Decimal, ask: Decimal) -> None:
        """Set the tick of a second symbol (``extra_specs``) and revalue its positions."""
        self.extra_quotes[symbol] = (bid, ask)
        for position in self.positions.values():
            if position.symbol == symbol:
                self._mark(position)

    def spec_of(self, position: Position) -> SymbolSpec:
        """The position's symbol spec (the main symbol's unless it is one of ``extra_specs``)."""
        return self.extra_specs.get(position.symbol, self.spec)

    def quote_of(self, position: Position) -> tuple[Decimal, Decimal]:
        """(bid, ask) of the position's symbol."""
        if position.symbol in self.extra_specs:
            return self.extra_quotes[position.symbol]
        return self.bid, self.ask

    def _mark(self, position: Position) -> None:
        bid, ask = self.quote_of(position)
        position.price_current = bid if position.side == BUY else ask
        position.profit = self.profit(
            position.side, position.price_open, position.price_current, position.volume, self.spec_of(position)
        )

    def profit(
        self, side: str, price_open: Decimal, price_close: Decimal, volume: Decimal, spec: SymbolSpec | None = None
    ) -> Decimal:
        """d × (close − open) × volume × contract_size, rounded to cents (account currency)."""
        direction = 1 if side == BUY else -1
        return money(direction * (price_close - price_open) * volume * (spec or self.spec).contract_size)

    def equity(self) -> Decimal:
        """balance + Σ (profit + swap) over open positions, account currency."""
        return self.balance + sum((p.profit + p.swap for p in self.positions.values()), Decimal("0.00"))

    def margin(self) -> Decimal:
        """Σ volume × contract_size × current price / leverage, rounded to cents (account currency)."""
        return sum(
            (
                money(p.volume * self.spec_of(p).contract_size * p.price_current / self.leverage)
                for p in self.positions.values()
            ),
            Decimal("0.00"),
        )

    def margin_level(self) -> Decimal:
        """equity / margin × 100 rounded half-up to 2 dp (percent); 0 without margin, as MT5 reports it."""
        margin = self.margin()
        if margin <= 0:
            return Decimal("0.00")
        return (money(self.equity()) / margin * 100).quantize(CENT, rounding=ROUND_HALF_UP)

    # ------------------------------------------------------------------ trading
    def open_position(
        self,
        *,
        side: str,
        volume: Decimal,
        price: Decimal,
        sl: Decimal | None,
        tp: Decimal | None,
        time: datetime,
        magic: int,
        comment: str = "",
        symbol: str = "",
        reason: int = REASON_EXPERT,
    ) -> Position:
        """Open a position filled at ``price`` and return it with its new ticket (= its opening order's,
        MT5's position identifier); with ``entry_deals`` an IN deal is recorded (its commission booked)."""
        if side not in (BUY, SELL):
            raise ValueError(f"side must be buy or sell, not {side!r}")
        if volume <= 0:
            raise ValueError("volume must be positive")
        position = Position(
            ticket=self._next_ticket,
            side=side,
            volume=volume,
            price_open=price,
            sl=sl,
            tp=tp,
            time=time,
            magic=magic,
            comment=comment,
            symbol=symbol if symbol and symbol != self.spec.symbol else "",
        )
        self._next_ticket += 1
        self.positions[position.ticket] = position
        self._mark(position)
        if self.entry_deals:
            self._book(
                position, side=side, entry=ENTRY_IN, type_=DEAL_BUY if side == BUY else DEAL_SELL,
                volume=volume, price=price, profit=Decimal("0.00"), swap=Decimal("0.00"), time=time, reason=reason,
                order=position.ticket,
            )  # fmt: skip
        return position

    def _commission(self, volume: Decimal) -> Decimal:
        return money(self.commission_per_lot * volume)

    def _book(
        self, position: Position, *, side, entry, type_, volume, price, profit, swap, time, reason, order=0, final=False
    ) -> Deal:
        """Record one trade deal of ``position`` and book its money on the balance."""
        deal = Deal(
            ticket=self._next_deal,
            position_id=position.ticket,
            side=side,
            reason=reason,
            price=price,
            volume=volume,
            profit=profit,
            swap=swap,
            commission=self._commission(volume),
            time=time,
            magic=position.magic,
            entry=entry,
            type=type_,
            order=order,
            symbol=position.symbol or self.spec.symbol,
            final=final,
        )
        self._next_deal += 1
        self.balance += deal.realized
        self.deals.append(deal)
        self._unreported.append(deal)
        return deal

    def close_position(
        self, *, ticket: int, price: Decimal, time: datetime, reason: int, volume: Decimal | None = None
    ) -> Deal:
        """Close position ``ticket`` (or ``volume`` lots of it: a partial close) at ``price``: book profit and
        swap (the closed share of the position's swap, to the cent) to the balance, record the OUT deal."""
        position = self.positions[ticket]
        volume = position.volume if volume is None or volume >= position.volume else volume
        partial = volume < position.volume
        swap = money(position.swap * volume / position.volume) if partial else position.swap
        profit = self.profit(position.side, position.price_open, price, volume, self.spec_of(position))
        if partial:
            position.volume -= volume
            position.swap -= swap
            self._mark(position)
        else:
            del self.positions[ticket]
        return self._book(
            position, side=position.side, entry=ENTRY_OUT, type_=None, volume=volume, price=price, profit=profit,
            swap=swap, time=time, reason=reason, order=self._order(), final=not partial,
        )  # fmt: skip

    def _order(self) -> int:
        """A new order ticket (positions and orders share MT5's counter)."""
        ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
        return ticket

    def close_at_market(self, *, ticket: int, time: datetime, reason: int, volume: Decimal | None = None) -> Deal:
        """Close (all, or ``volume`` lots) at the current quote: a buy at the bid, a sell at the ask."""
        position = self.positions[ticket]
        bid, ask = self.quote_of(position)
        return self.close_position(
            ticket=ticket, price=bid if position.side == BUY else ask, time=time, reason=reason, volume=volume
        )

    def net_order(
        self, *, side: str, volume: Decimal, price: Decimal, time: datetime, magic: int, reason: int = REASON_EXPERT
    ) -> tuple[str, Position | None, Deal | None]:
        """A market order on a netting account (the main symbol); returns (what happened, the position after
        it or None, the deal). Kinds: ``opened``, ``increased``, ``partial_close``, ``closed``, ``reversed``."""
        if not self.netting:
            raise ValueError("net_order needs a netting account")
        current = next((p for p in self.positions.values() if not p.symbol), None)
        if current is None:
            position = self.open_position(
                side=side, volume=volume, price=price, sl=None, tp=None, time=time, magic=magic, reason=reason
            )
            return "opened", position, self.deals[-1] if self.entry_deals else None
        if current.side == side:
            total = current.volume + volume
            current.price_open = ((current.price_open * current.volume + price * volume) / total).quantize(
                PRICE_QUANTUM, rounding=ROUND_HALF_UP
            )
            current.volume = total
            self._mark(current)
            deal = self._book(
                current, side=side, entry=ENTRY_IN, type_=DEAL_BUY if side == BUY else DEAL_SELL, volume=volume,
                price=price, profit=Decimal("0.00"), swap=Decimal("0.00"), time=time, reason=reason,
                order=self._order(),
            )  # fmt: skip
            return "increased", current, deal
        if volume < current.volume:
            deal = self.close_position(ticket=current.ticket, price=price, time=time, reason=reason, volume=volume)
            return "partial_close", current, deal
        if volume == current.volume:
            deal = self.close_position(ticket=current.ticket, price=price, time=time, reason=reason)
            return "closed", None, deal
        profit = self.profit(current.side, current.price_open, price, current.volume)
        deal = self._book(
            current, side=current.side, entry=ENTRY_INOUT, type_=DEAL_BUY if side == BUY else DEAL_SELL,
            volume=volume, price=price, profit=profit, swap=current.swap, time=time, reason=reason,
            order=self._order(), final=True,
        )  # fmt: skip
        current.side, current.volume, current.price_open = side, volume - current.volume, price
        current.swap, current.time, current.sl, current.tp = Decimal("0.00"), time, None, None
        self._mark(current)
        return "reversed", current, deal

    def balance_operation(self, *, amount: Decimal, time: datetime, comment: str = "") -> Deal:
        """A deposit (amount > 0) or withdrawal (< 0): a DEAL_TYPE_BALANCE deal, position 0, amount in profit."""
        deal = Deal(
            ticket=self._next_deal,
            position_id=0,
            side="",
            reason=REASON_CLIENT,
            price=Decimal("0"),
            volume=Decimal("0"),
            profit=money(amount),
            swap=Decimal("0.00"),
            commission=Decimal("0.00"),
            time=time,
            magic=0,
            entry=ENTRY_IN,
            type=DEAL_BALANCE,
        )
        self._next_deal += 1
        self.balance += deal.profit
        self.deals.append(deal)
        self._unreported.append(deal)
        return deal

    def hold_back(self, deal: Deal) -> None:
        """Deliver ``deal`` one snapshot late (a worker's ``history_deals_get()`` window that missed it)."""
        self._held.add(deal.ticket)

    def modify_position(self, *, ticket: int, sl: Decimal | None, tp: Decimal | None) -> None:
        """Change a position's SL/TP (``TRADE_ACTION_SLTP``)."""
        position = self.positions[ticket]
        position.sl, position.tp = sl, tp

    def check_stops(self, bar: Bar, *, spread: Decimal, time: datetime) -> list[Deal]:
        """Close every position whose SL or TP the bar reaches; return the deals (see the module rules).

        ``spread`` is the bar's normal spread as a price difference; ``time`` stamps the deals.
        """
        deals = []
        for position in [p for p in self.positions.values() if not p.symbol]:
            hit = stop_hit(position, bar, spread)
            if hit is not None:
                reason, price = hit
                deals.append(self.close_position(ticket=position.ticket, price=price, time=time, reason=reason))
        return deals

    def apply_rollover(self, *, previous: datetime, current: datetime) -> Decimal:
        """Charge swap for every midnight in (previous, current]; return the total charged (account currency)."""
        nights = rollover_nights(previous, current)
        if not nights:
            return Decimal("0.00")
        total = Decimal("0.00")
        for position in self.positions.values():
            points = self.swap_long_points if position.side == BUY else self.swap_short_points
            spec = self.spec_of(position)
            charge = money(position.volume * spec.contract_size * spec.point * points) * nights
            position.swap += charge
            total += charge
        return total

    def take_unreported_deals(self) -> list[Deal]:
        """Return the deals since the last call (the ``deals`` of the next snapshot) and forget them; a deal
        held back (:meth:`hold_back`) waits for the call after."""
        deals = [d for d in self._unreported if d.ticket not in self._held]
        self._unreported = [d for d in self._unreported if d.ticket in self._held]
        self._held.clear()
        return deals

    def has_unreported_deals(self) -> bool:
        """True while a deal waits for a snapshot (one held back included)."""
        return bool(self._unreported)

    def server_epoch(self, moment: datetime) -> int:
        """``moment`` (UTC) as MT5 epoch seconds on the trade server's clock (UTC + ``utc_offset``)."""
        offset = self.utc_offset(moment) if self.utc_offset else 0
        return int(moment.timestamp()) + offset * 60

    # ------------------------------------------------------------------ MT5-shaped payload parts
    def account_info(self, now: datetime | None = None) -> dict:
        """``account_info()``: login, server, currency, balance, equity, margin, margin_free (strings, 2 dp),
        margin level and the broker's levels, leverage, margin mode (0 netting, 2 hedging) and, with
        ``utc_offset``, the server's offset at ``now`` (minutes)."""
        equity = self.equity()
        margin = self.margin()
        return sync_payload.account_info(
            login=self.login,
            server=self.server,
            currency=self.currency,
            balance=money(self.balance),
            equity=money(equity),
            margin=margin,
            margin_free=money(equity - margin),
            margin_level=self.margin_level(),
            margin_so_mode=0,
            margin_so_call=self.margin_so_call,
            margin_so_so=self.margin_so_so,
            leverage=self.leverage,
            margin_mode=0 if self.netting else 2,
            server_utc_offset=self.utc_offset(now) if self.utc_offset is not None and now is not None else None,
        )

    def positions_get(self) -> list[dict]:
        """``positions_get()``: one dict per open position (type 0 buy / 1 sell, ``sl``/``tp`` "0" for none)."""
        return [
            sync_payload.position(
                ticket=p.ticket,
                symbol=p.symbol or self.spec.symbol,
                type=0 if p.side == BUY else 1,
                volume=p.volume,
                price_open=p.price_open,
                price_current=p.price_current,
                sl=p.sl,
                tp=p.tp,
                swap=p.swap,
                commission=Decimal("0.00"),
                profit=p.profit,
                time=self.server_epoch(p.time),
                magic=p.magic,
            )
            for p in self.positions.values()
        ]

    def deal_dict(self, deal: Deal) -> dict:
        """``history_deals_get()`` row of a deal (a closing deal's type is the opposite side: 1 sell closes a
        buy); ``time`` on the server's clock."""
        return sync_payload.deal(
            ticket=deal.ticket,
            order=deal.order,
            position_id=deal.position_id,
            symbol=deal.symbol if deal.is_trade else None,
            type=deal.deal_type,
            entry=deal.entry,
            reason=deal.reason,
            price=deal.price,
            volume=deal.volume,
            profit=deal.profit,
            swap=deal.swap,
            commission=deal.commission,
            time=self.server_epoch(deal.time),
            magic=deal.magic,
        )

    def symbol_info(self) -> dict:
        """``symbol_info()`` specs of the symbol (a sync may carry them to create/update the instrument)."""
        spec = self.spec
        return sync_payload.symbol_spec(
            symbol=spec.symbol,
            trade_contract_size=spec.contract_size,
            digits=spec.digits,
            point=spec.point,
            currency_base=spec.currency_base,
            currency_profit=spec.currency_profit,
            volume_step=spec.volume_step,
            volume_min=spec.volume_step,
        )

    def tick(self) -> dict:
        """``symbol_info_tick()`` of the symbol at the current quote (``time`` on the server's clock)."""
        return sync_payload.tick(
            symbol=self.spec.symbol,
            bid=self.bid,
            ask=self.ask,
            time=self.server_epoch(self.quote_time) if self.quote_time else 0,
        )


def stop_hit(position: Position, bar: Bar, spread: Decimal) -> tuple[int, Decimal] | None:
    """Return (MT5 reason, fill price) when ``bar`` reaches the position's SL or TP, else None (module rules)."""
    sl, tp = position.sl, position.tp
    if position.side == BUY:
        opening, high, low = bar.open, bar.high, bar.low
        if sl is not None and opening <= sl:
            return REASON_SL, opening
        if tp is not None and opening >= tp:
            return REASON_TP, opening
        if sl is not None and low <= sl:
            return REASON_SL, sl
        if tp is not None and high >= tp:
            return REASON_TP, tp
        return None
    opening, high, low = bar.open + spread, bar.high + spread, bar.low + spread
    if sl is not None and opening >= sl:
        return REASON_SL, opening
    if tp is not None and opening <= tp:
        return REASON_TP, opening
    if sl is not None and high >= sl:
        return REASON_SL, sl
    if tp is not None and low <= tp:
        return REASON_TP, tp
    return None


def rollover_nights(previous: datetime, current: datetime) -> int:
    """Count the swap nights charged for the midnights in (previous, current].

    A midnight counts when the day before it is Monday–Friday; Wednesday's counts three times (it carries the
    weekend), Saturday's and Sunday's count zero. Friday 23:00 → Monday 00:00 gives 1 (Friday night only).
    """
    nights = 0
    midnight = previous.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    while midnight <= current:
        day_before = (midnight - timedelta(days=1)).weekday()
        if day_before == 2:
            nights += 3
        elif day_before < 5:
            nights += 1
        midnight += timedelta(days=1)
    return nights
