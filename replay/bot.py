"""The trading bot being monitored: a deterministic simple-moving-average crossover with fixed lots.

At each bar's close the bot updates SMA(fast) and SMA(slow) of the closes. When the fast average crosses
above the slow one it decides to go long, below to go short; the order is sent at the next bar's open
(closing its own opposite position first, MT5 deal reason 3 "expert"). Every entry carries an SL and a TP a
fixed number of pips from the requested price. The bot only manages positions carrying its magic number,
so manual trades at the terminal are left alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from replay.broker import BUY, SELL, SymbolSpec


@dataclass
class SmaCrossBot:
    """SMA crossover: ``fast``/``slow`` periods in bars, ``lots`` per entry, SL/TP distances in pips."""

    fast: int = 10
    slow: int = 30
    lots: Decimal = Decimal("1.00")
    sl_pips: int = 30
    tp_pips: int = 60
    magic: int = 20260501
    use_sl: bool = True  # False: entries carry a TP only (the high-leverage account rides to stop-out)
    _closes: deque = field(default_factory=deque, init=False, repr=False)
    _previous_diff: Decimal | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.fast < self.slow:
            raise ValueError(f"need 0 < fast ({self.fast}) < slow ({self.slow})")
        if self.sl_pips <= 0 or self.tp_pips <= 0:
            raise ValueError("sl_pips and tp_pips must be positive")
        self._closes = deque(maxlen=self.slow)

    def on_bar_close(self, close: Decimal) -> str | None:
        """Feed one closing price; return ``"buy"``/``"sell"`` when the averages cross on this bar, else None."""
        self._closes.append(close)
        if len(self._closes) < self.slow:
            return None
        closes = list(self._closes)
        diff = sum(closes[-self.fast :]) / self.fast - sum(closes) / self.slow
        previous, self._previous_diff = self._previous_diff, diff
        if previous is None:
            return None
        if previous <= 0 < diff:
            return BUY
        if previous >= 0 > diff:
            return SELL
        return None

    def levels(self, *, side: str, requested: Decimal, spec: SymbolSpec) -> tuple[Decimal | None, Decimal]:
        """Return (sl, tp) for an entry requested at ``requested``: ``sl_pips`` against, ``tp_pips`` in favour.

        Example (EURUSD, 30/60 pips): buy at 1.07230 → SL 1.06930, TP 1.07830.
        """
        direction = 1 if side == BUY else -1
        sl = spec.price(requested - direction * self.sl_pips * spec.pip)
        tp = spec.price(requested + direction * self.tp_pips * spec.pip)
        return (sl if self.use_sl else None), tp
