"""Trade and equity statistics: pure functions over Decimals (no database, no clock).

Definitions (as freqtrade's ``/profit`` and common trading-journal practice):

- win rate = winning trades / trades × 100, a win being a trade with net P&L > 0 (a trade of exactly
  0 is "breakeven": neither a win nor a loss, but it counts in the number of trades);
- profit factor = gross profit / |gross loss| (None when there is no losing trade);
- expectancy = total net P&L / trades (account currency per trade);
- average win / loss = gross profit / wins, gross loss / losses; largest win / loss = extremes;
- max drawdown = the largest fall from a running peak of the equity curve, in percent of that peak,
  with the peak's time (start) and the trough's time (end);
- time-weighted return = Π (1 + rᵢ) − 1 over consecutive points, rᵢ = (Vᵢ − Fᵢ) / Vᵢ₋₁ − 1, where
  Fᵢ is the net external cash flow (deposits − withdrawals) between points i−1 and i: cash flows do
  not count as performance (GIPS's definition of a time-weighted return).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

ZERO = Decimal("0")
HUNDRED = Decimal("100")


@dataclass(frozen=True)
class Trade:
    """One closed trade: when it closed, its symbol and its net realized P&L (account currency)."""

    closed_at: datetime
    symbol: str
    pnl: Decimal


@dataclass(frozen=True)
class TradeStats:
    """Trade statistics (money in the account currency, rates in percent); None where undefined."""

    trades: int
    wins: int
    losses: int
    breakeven: int
    win_rate_pct: Decimal | None
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: Decimal | None
    expectancy: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None


def trade_stats(trades: list[Trade]) -> TradeStats:
    """Statistics of ``trades`` (any order); see the module docstring for each formula."""
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl < 0]
    gross_profit = sum(wins, ZERO)
    gross_loss = sum(losses, ZERO)
    net = gross_profit + gross_loss
    count = len(trades)
    return TradeStats(
        trades=count,
        wins=len(wins),
        losses=len(losses),
        breakeven=count - len(wins) - len(losses),
        win_rate_pct=Decimal(len(wins)) * HUNDRED / count if count else None,
        net_pnl=net,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / -gross_loss if losses else None,
        expectancy=net / count if count else None,
        average_win=gross_profit / len(wins) if wins else None,
        average_loss=gross_loss / len(losses) if losses else None,
        largest_win=max(wins) if wins else None,
        largest_loss=min(losses) if losses else None,
    )


@dataclass(frozen=True)
class Drawdown:
    """The largest peak-to-trough fall: percent of the peak, amount, and the peak's and trough's times."""

    pct: Decimal
    amount: Decimal
    peak: Decimal | None
    trough: Decimal | None
    start: datetime | None
    end: datetime | None


def max_drawdown(points: list[tuple[datetime, Decimal]]) -> Drawdown:
    """Largest fall from a running peak over ``points`` ((time, equity), time ascending).

    Percent of the peak it fell from; 0 with no start/end when the curve never falls. Ties keep the
    first (earliest) such drawdown.
    """
    best = Drawdown(pct=ZERO, amount=ZERO, peak=None, trough=None, start=None, end=None)
    peak_value: Decimal | None = None
    peak_at: datetime | None = None
    for at, value in points:
        if peak_value is None or value > peak_value:
            peak_value, peak_at = value, at
            continue
        if peak_value <= 0:
            continue
        pct = (peak_value - value) * HUNDRED / peak_value
        if pct > best.pct:
            best = Drawdown(pct=pct, amount=peak_value - value, peak=peak_value, trough=value, start=peak_at, end=at)
    return best


def time_weighted_return(values: list[Decimal], flows: list[Decimal]) -> Decimal | None:
    """Time-weighted return in percent over ``values`` (equity at each point, oldest first).

    ``flows[i]`` is the net cash flow between point i−1 and i (``flows[0]`` is ignored), so
    ``len(flows) == len(values)``. None with fewer than two points or a non-positive starting value.
    """
    if len(values) < 2:
        return None
    growth = Decimal("1")
    for previous, value, flow in zip(values[:-1], values[1:], flows[1:], strict=True):
        if previous <= 0:
            return None
        growth *= (value - flow) / previous
    return (growth - 1) * HUNDRED
