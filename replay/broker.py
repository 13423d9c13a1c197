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
  4 SL, 5 TP. Its profit + swap + commission is added to the balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from replay.bars import Bar

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

    @property
    def direction(self) -> int:
        """+1 for a buy, −1 for a sell."""
        return 1 if self.side == BUY else -1


@dataclass(frozen=True, slots=True)
class Deal:
    """One closing deal as ``history_deals_get()`` reports it (``entry`` 1 = out)."""

    ticket: int
    position_id: int
    side: str  # side of the closed position
    reason: int
    price: Decimal
    volume: Decimal
    profit: Decimal
    swap: Decimal
    commission: Decimal
    time: datetime
    magic: int

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

    def __post_init__(self) -> None:
        if self.spec.currency_profit != self.currency:
            raise ValueError(
                f"{self.spec.symbol} profits are in {self.spec.currency_profit}; the simulated account is in "
                f"{self.currency}: only symbols quoted in the account currency are supported"
            )
        self._next_ticket = self.first_ticket
        self._next_deal = self.first_deal
        self._unreported: list[Deal] = []

    # ------------------------------------------------------------------ quotes and valuation
    def set_quote(self, *, bid: Decimal, ask: Decimal, time: datetime) -> None:
        """Set the current tick and revalue every open position at it."""
        if ask < bid:
            raise ValueError(f"ask {ask} below bid {bid}")
        self.bid, self.ask, self.quote_time = bid, ask, time
        for position in self.positions.values():
            self._mark(position)

    def _mark(self, position: Position) -> None:
        position.price_current = self.bid if position.side == BUY else self.ask
        position.profit = self.profit(position.side, position.price_open, position.price_current, position.volume)

    def profit(self, side: str, price_open: Decimal, price_close: Decimal, volume: Decimal) -> Decimal:
        """d × (close − open) × volume × contract_size, rounded to cents (account currency)."""
        direction = 1 if side == BUY else -1
        return money(direction * (price_close - price_open) * volume * self.spec.contract_size)

    def equity(self) -> Decimal:
        """balance + Σ (profit + swap) over open positions, account currency."""
        return self.balance + sum((p.profit + p.swap for p in self.positions.values()), Decimal("0.00"))

    def margin(self) -> Decimal:
        """Σ volume × contract_size × current price / leverage, rounded to cents (account currency)."""
        return sum(
            (
                money(p.volume * self.spec.contract_size * p.price_current / self.leverage)
                for p in self.positions.values()
            ),
            Decimal("0.00"),
        )

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
    ) -> Position:
        """Open a position filled at ``price`` and return it with its new ticket."""
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
        )
        self._next_ticket += 1
        self.positions[position.ticket] = position
        self._mark(position)
        return position

    def close_position(self, *, ticket: int, price: Decimal, time: datetime, reason: int) -> Deal:
        """Close position ``ticket`` at ``price``: book profit and swap to the balance, record the deal."""
        position = self.positions.pop(ticket)
        profit = self.profit(position.side, position.price_open, price, position.volume)
        deal = Deal(
            ticket=self._next_deal,
            position_id=ticket,
            side=position.side,
            reason=reason,
            price=price,
            volume=position.volume,
            profit=profit,
            swap=position.swap,
            commission=Decimal("0.00"),
            time=time,
            magic=position.magic,
        )
        self._next_deal += 1
        self.balance += deal.realized
        self.deals.append(deal)
        self._unreported.append(deal)
        return deal

    def close_at_market(self, *, ticket: int, time: datetime, reason: int) -> Deal:
        """Close at the current quote: a buy at the bid, a sell at the ask."""
        position = self.positions[ticket]
        return self.close_position(
            ticket=ticket, price=self.bid if position.side == BUY else self.ask, time=time, reason=reason
        )

    def modify_position(self, *, ticket: int, sl: Decimal | None, tp: Decimal | None) -> None:
        """Change a position's SL/TP (``TRADE_ACTION_SLTP``)."""
        position = self.positions[ticket]
        position.sl, position.tp = sl, tp

    def check_stops(self, bar: Bar, *, spread: Decimal, time: datetime) -> list[Deal]:
        """Close every position whose SL or TP the bar reaches; return the deals (see the module rules).

        ``spread`` is the bar's normal spread as a price difference; ``time`` stamps the deals.
        """
        deals = []
        for position in list(self.positions.values()):
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
            charge = money(position.volume * self.spec.contract_size * self.spec.point * points) * nights
            position.swap += charge
            total += charge
        return total

    def take_unreported_deals(self) -> list[Deal]:
        """Return the closing deals since the last call (the ``deals`` of the next snapshot) and forget them."""
        deals, self._unreported = self._unreported, []
        return deals

    # ------------------------------------------------------------------ MT5-shaped payload parts
    def account_info(self) -> dict:
        """``account_info()``: login, server, currency, balance, equity, margin, margin_free (strings, 2 dp)."""
        equity = self.equity()
        margin = self.margin()
        return {
            "login": self.login,
            "server": self.server,
            "currency": self.currency,
            "balance": str(money(self.balance)),
            "equity": str(money(equity)),
            "margin": str(margin),
            "margin_free": str(money(equity - margin)),
        }

    def positions_get(self) -> list[dict]:
        """``positions_get()``: one dict per open position (type 0 buy / 1 sell, ``sl``/``tp`` "0" for none)."""
        return [
            {
                "ticket": p.ticket,
                "symbol": self.spec.symbol,
                "type": 0 if p.side == BUY else 1,
                "volume": str(p.volume),
                "price_open": str(p.price_open),
                "price_current": str(p.price_current),
                "sl": str(p.sl) if p.sl is not None else "0",
                "tp": str(p.tp) if p.tp is not None else "0",
                "swap": str(p.swap),
                "commission": "0.00",
                "profit": str(p.profit),
                "time": int(p.time.timestamp()),
                "magic": p.magic,
            }
            for p in self.positions.values()
        ]

    def deal_dict(self, deal: Deal) -> dict:
        """``history_deals_get()`` row of a closing deal (type 1 sell closes a buy, 0 buy closes a sell)."""
        return {
            "ticket": deal.ticket,
            "position_id": deal.position_id,
            "symbol": self.spec.symbol,
            "type": 1 if deal.side == BUY else 0,
            "entry": 1,
            "reason": deal.reason,
            "price": str(deal.price),
            "volume": str(deal.volume),
            "profit": str(deal.profit),
            "swap": str(deal.swap),
            "commission": str(deal.commission),
            "time": int(deal.time.timestamp()),
            "magic": deal.magic,
        }

    def symbol_info(self) -> dict:
        """``symbol_info()`` specs of the symbol (a sync may carry them to create/update the instrument)."""
        spec = self.spec
        return {
            "symbol": spec.symbol,
            "trade_contract_size": str(spec.contract_size),
            "digits": spec.digits,
            "point": str(spec.point),
            "currency_base": spec.currency_base,
            "currency_profit": spec.currency_profit,
            "volume_step": str(spec.volume_step),
            "volume_min": str(spec.volume_step),
        }

    def tick(self) -> dict:
        """``symbol_info_tick()`` of the symbol at the current quote."""
        return {
            "symbol": self.spec.symbol,
            "bid": str(self.bid),
            "ask": str(self.ask),
            "time": int(self.quote_time.timestamp()) if self.quote_time else 0,
        }


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
