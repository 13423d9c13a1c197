"""Instrument-aware tolerances (pure): pip sizes, entry and stop tolerances, spread thresholds per symbol.

A pip is the unit traders quote moves in; ``point`` (MT5's smallest price step) is not one:
- FX: 10 × point for 3- and 5-digit quotes, else the point (``positions.models.pip_size_for``);
- metals: gold (XAU) 0.10 and silver (XAG) 0.01 of the quote currency, the units gold and silver
  moves are quoted in (a 2-digit gold quote's point, 0.01, is a tenth of that);
- indices: 1.0 (one index point);
- crypto: no market-wide pip convention exists (BTC near 60 000 and DOGE near 0.10 share no
  sensible fixed step), so the pip is the point and tolerances are a percentage of price instead.

Tolerances (entry fill vs requested price, stop vs expected stop) are the larger of a fixed floor and
``k`` × the symbol's recent median spread: a fill inside the spread the market was offering is not
slippage. The floor is a pip count for FX and a percentage of price for metals, crypto and indices,
whose prices span orders of magnitude. Spread thresholds are a multiple of the symbol's rolling
median spread when one is known (a spread ten times normal is abnormal whatever the market), else
per-class defaults in pips or percent of price. Every default below is a product choice documented
where it is defined; per-instrument overrides replace them.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from guards.models import Level
from positions.models import pip_size_for

HUNDRED = Decimal("100")

FX = "fx"
METAL = "metal"
INDEX = "index"
CRYPTO = "crypto"
ASSET_CLASSES = (FX, METAL, INDEX, CRYPTO)

# MT5 ENUM_SYMBOL_CALC_MODE: 3 = CFDINDEX (profit of an index CFD).
CALC_MODE_CFDINDEX = 3

METAL_PIP = {"XAU": Decimal("0.10"), "XAG": Decimal("0.01"), "XPT": Decimal("0.10"), "XPD": Decimal("0.10")}
INDEX_PIP = Decimal("1.0")
CRYPTO_BASES = frozenset(
    {"BTC", "ETH", "LTC", "XRP", "BCH", "SOL", "ADA", "DOT", "DOGE", "BNB", "AVAX", "LINK", "XLM", "TRX"}
)
INDEX_NAMES = frozenset(
    {
        "US30", "US100", "US500", "USTEC", "NAS100", "SPX500", "SP500", "DJ30", "DE30", "DE40", "GER30",
        "GER40", "UK100", "FRA40", "F40", "EU50", "STOXX50", "JP225", "JPN225", "AUS200", "HK50", "ES35",
    }
)  # fmt: skip


def asset_class(symbol: str, *, calc_mode: int | None = None) -> str:
    """Classify a symbol: ``metal`` (XAU/XAG/XPT/XPD…), ``crypto`` (a known coin as base), ``index``
    (``calc_mode`` CFDINDEX or a common index CFD name, suffixes such as ``.cash`` ignored), else ``fx``."""
    name = symbol.upper()
    if name[:3] in METAL_PIP:
        return METAL
    if any(name.startswith(base) for base in CRYPTO_BASES):
        return CRYPTO
    if calc_mode == CALC_MODE_CFDINDEX or name.split(".")[0].rstrip("_") in INDEX_NAMES:
        return INDEX
    return FX


def pip_size(*, symbol: str, digits: int, point: Decimal, override: Decimal | None = None) -> Decimal:
    """The symbol's pip: ``override`` when set (per instrument), else by class (see the module docstring)."""
    if override is not None:
        return override
    klass = asset_class(symbol)
    if klass == METAL:
        return METAL_PIP[symbol.upper()[:3]]
    if klass == INDEX:
        return INDEX_PIP
    if klass == CRYPTO:
        return point
    return pip_size_for(digits=digits, point=point)


@dataclass(frozen=True)
class ToleranceSpec:
    """One tolerance: floor (``pips`` for FX, ``pct`` of price otherwise) and ``spread_multiple`` k.

    tolerance = max(floor, k × median spread); the median term applies only when a median is known.
    """

    pips: Decimal
    pct: Decimal
    spread_multiple: Decimal


# Entry: 2 pips for FX (the previous fixed rule); 0.02 % of price for metals and indices (0.40 at gold
# 2000, 4 points at an index 20 000: about twice their usual spreads); 0.1 % for crypto (60 at BTC
# 60 000, where spreads of tens of dollars are common); k = 1.5 (a fill up to one and a half usual
# spreads from the request is a fill inside the market's quote plus a tick of movement).
ENTRY = ToleranceSpec(pips=Decimal("2"), pct=Decimal("0.02"), spread_multiple=Decimal("1.5"))
# Stops: 1 pip for FX (the previous fixed rule); half the entry percentages, the same k (a stop a
# broker re-rounded to its tick size differs by far less than a spread).
STOP = ToleranceSpec(pips=Decimal("1"), pct=Decimal("0.01"), spread_multiple=Decimal("1.5"))
CRYPTO_PCT_FACTOR = Decimal("5")  # crypto floors are 5 × the metal/index percentage (0.1 % entry, 0.05 % stop)


def tolerance(
    *,
    spec: ToleranceSpec,
    klass: str,
    price: Decimal,
    pip: Decimal,
    median_spread: Decimal | None = None,
) -> Decimal:
    """The tolerance as a price difference: max(floor, k × median spread).

    floor = ``spec.pips`` × pip for FX; ``spec.pct`` % × price for metals and indices; 5 × that for crypto.
    """
    if klass == FX:
        floor = spec.pips * pip
    else:
        pct = spec.pct * CRYPTO_PCT_FACTOR if klass == CRYPTO else spec.pct
        floor = price * pct / HUNDRED
    if median_spread is None:
        return floor
    return max(floor, spec.spread_multiple * median_spread)


def within(*, expected: Decimal, actual: Decimal, tolerance: Decimal) -> bool:
    """|actual − expected| ≤ tolerance."""
    return abs(actual - expected) <= tolerance


# --------------------------------------------------------------------------------------------
# Spreads
# --------------------------------------------------------------------------------------------
PIPS = "pips"
PCT = "pct"
MEDIAN_MULTIPLE = "median_multiple"
SPREAD_UNITS = (PIPS, PCT, MEDIAN_MULTIPLE)


@dataclass(frozen=True)
class SpreadThreshold:
    """Warning and critical spread thresholds in one ``unit``: ``pips``, ``pct`` (of bid) or ``median_multiple``."""

    unit: str
    warning: Decimal
    critical: Decimal


# With a known median: warning at 3 ×, critical at 6 × the symbol's usual spread (the 20-pip
# EURUSD spread is ~10 × normal). Without one, per class: FX 5 / 10 pips (EURUSD's usual spread is
# well under 2 pips), metals and indices 0.05 / 0.1 % of price, crypto 0.3 / 0.6 %.
MEDIAN_DEFAULT = SpreadThreshold(unit=MEDIAN_MULTIPLE, warning=Decimal("3"), critical=Decimal("6"))
CLASS_DEFAULTS = {
    FX: SpreadThreshold(unit=PIPS, warning=Decimal("5"), critical=Decimal("10")),
    METAL: SpreadThreshold(unit=PCT, warning=Decimal("0.05"), critical=Decimal("0.1")),
    INDEX: SpreadThreshold(unit=PCT, warning=Decimal("0.05"), critical=Decimal("0.1")),
    CRYPTO: SpreadThreshold(unit=PCT, warning=Decimal("0.3"), critical=Decimal("0.6")),
}


@dataclass(frozen=True)
class SpreadMeasure:
    """A spread's level, its value in the threshold's unit, the threshold of that level, and its pips."""

    level: str
    value: Decimal
    unit: str
    threshold: Decimal
    pips: Decimal


def spread_measure(
    *,
    bid: Decimal,
    ask: Decimal,
    pip: Decimal,
    klass: str,
    median_spread: Decimal | None = None,
    threshold: SpreadThreshold | None = None,
) -> SpreadMeasure:
    """Measure a spread (ask − bid) against ``threshold`` (a per-symbol override), else the median
    default when ``median_spread`` > 0 is known, else the class default. Levels are inclusive
    (value ≥ threshold); a ``median_multiple`` threshold without a median falls back to the class default."""
    spread = ask - bid
    if threshold is None or (threshold.unit == MEDIAN_MULTIPLE and not median_spread):
        threshold = MEDIAN_DEFAULT if median_spread and threshold is None else CLASS_DEFAULTS[klass]
    if threshold.unit == MEDIAN_MULTIPLE and median_spread:  # a median multiple only with a median (above)
        value = spread / median_spread
    elif threshold.unit == PIPS:
        value = spread / pip
    else:
        value = spread / bid * HUNDRED
    if value >= threshold.critical:
        level, at = Level.CRITICAL, threshold.critical
    elif value >= threshold.warning:
        level, at = Level.WARNING, threshold.warning
    else:
        level, at = Level.OK, threshold.warning
    return SpreadMeasure(level=level, value=value, unit=threshold.unit, threshold=at, pips=spread / pip)


class RollingMedian:
    """The median of the last ``size`` spreads of one symbol (``statistics.median`` on Decimals).

    ``size`` 200: at one sync every few seconds, the last ~10–15 minutes, long enough that one bad tick
    does not move it and short enough to follow a session's normal spread.
    """

    def __init__(self, values: Iterable[Decimal] = (), *, size: int = 200):
        self.values: deque[Decimal] = deque(values, maxlen=size)

    def add(self, value: Decimal) -> None:
        self.values.append(value)

    @property
    def median(self) -> Decimal | None:
        return statistics.median(self.values) if self.values else None


@dataclass(frozen=True)
class InstrumentTolerances:
    """An instrument's pip and its entry and stop tolerances at one price (quote currency).

    For the reconciliation's comparisons: a fill is slippage when |price_open − requested| > ``entry``,
    a stop differs when |actual − expected| > ``stop``; pips are price differences / ``pip``.
    """

    klass: str
    pip: Decimal
    entry: Decimal
    stop: Decimal


def instrument_tolerances(
    *,
    symbol: str,
    digits: int,
    point: Decimal,
    price: Decimal,
    calc_mode: int | None = None,
    pip_override: Decimal | None = None,
    median_spread: Decimal | None = None,
) -> InstrumentTolerances:
    """The pip (:func:`pip_size`) and the ENTRY and STOP tolerances (:func:`tolerance`) of one instrument."""
    klass = asset_class(symbol, calc_mode=calc_mode)
    pip = pip_size(symbol=symbol, digits=digits, point=point, override=pip_override)
    return InstrumentTolerances(
        klass=klass,
        pip=pip,
        entry=tolerance(spec=ENTRY, klass=klass, price=price, pip=pip, median_spread=median_spread),
        stop=tolerance(spec=STOP, klass=klass, price=price, pip=pip, median_spread=median_spread),
    )
