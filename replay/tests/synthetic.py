"""A small synthetic hourly EURUSD series the tests write themselves (no third-party data in the repo).

150 bars from Monday 2024-01-01 00:00 UTC: a 24-bar sine whose amplitude swells from 25 to 70 pips
(so a 3/8-bar SMA crossover trades, and trades end by TP, SL and the bot's own reversal), a 29-pip wick
either way every 19th bar (stop-loss hits), and after bar 116 (Friday 20:00) a weekend jump to Sunday
21:00 where the price opens 70 pips (≈ 0.64 %) higher.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

POINT = Decimal("0.00001")
BARS = 150
WEEKEND_AT = 117  # index of the first bar after the weekend


def write_series(path: Path, *, bars: int = BARS, mt5: bool = False) -> Path:
    """Write the series as the plain CSV (or MT5's tab-separated export with a 10-point spread) and return ``path``."""
    moment = datetime(2024, 1, 1, 0, 0)
    previous = Decimal("1.10000")
    shift = Decimal("0")
    if mt5:
        lines = ["<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"]
    else:
        lines = ["time,Open,High,Low,Close,Volume"]
    for i in range(bars):
        if i == WEEKEND_AT:
            moment += timedelta(hours=48)
            shift = Decimal("0.0070")
        amplitude = 0.0025 + 0.0045 * (1 + math.sin(2 * math.pi * i / 70)) / 2
        close = (
            Decimal("1.10000") + shift + Decimal(str(round(amplitude * math.sin(2 * math.pi * i / 24), 5)))
        ).quantize(POINT)
        opening = previous if i != WEEKEND_AT else (previous + shift).quantize(POINT)
        high = max(opening, close) + Decimal("0.00040")
        low = min(opening, close) - Decimal("0.00040")
        if i % 19 == 7:
            high += Decimal("0.0025")
            low -= Decimal("0.0025")
        if mt5:
            lines.append(f"{moment:%Y.%m.%d}\t{moment:%H:%M:%S}\t{opening}\t{high}\t{low}\t{close}\t{100 + i}\t0\t10")
        else:
            lines.append(f"{moment:%Y-%m-%d %H:%M:%S},{opening},{high},{low},{close},{100 + i}")
        previous = close
        moment += timedelta(hours=1)
    path.write_text("\n".join(lines) + "\n")
    return path
