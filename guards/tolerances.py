"""Instrument-aware tolerances (pure): pip sizes, entry and stop tolerances, spread thresholds per symbol.

The pip rule (FX 10 × point for 3/5-digit quotes, gold 0.10, silver 0.01, indices 1.0, crypto the point)
lives in ``positions.pips`` and is re-exported here; ``InstrumentGuardSetting.pip_size`` overrides it.

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
from positions.pips import CRYPTO, FX, INDEX, METAL, asset_class, pip_size  # the one pip rule, re-exported

HUNDRED = Decimal("100")


@dataclass(frozen=True)
class ToleranceSpec:
    """One tolerance's defaults: the floor (``pips`` for FX; ``pct`` % of price for metals and indices,
    ``crypto_pct`` % for crypto) and ``spread_multiple`` k.

    tolerance = max(floor, k × median spread); the median term applies only when a median is known.
    """

    pips: Decimal
    pct: Decimal
    crypto_pct: Decimal
    spread_multiple: Decimal


# Entry (product choice): 2 pips for FX (the previous fixed rule, kept for FX); 0.02 % of price for metals
# and indices (0.40 at gold 2000 and 4 points at an index near 20 000: about the typical spread of each,
# FXCM's published averages XAU/USD 0.36, GER30 1.15, US30 2.97 points,
# https://www.fxcm.com/au/accounts/spread-costs/); 0.1 % for crypto (60 at BTC 60 000, where spreads of
# tens of dollars are common); k = 1.5 (a fill up to one and a half usual spreads from the request is a
# fill inside the market's quote plus a tick of movement).
ENTRY = ToleranceSpec(pips=Decimal("2"), pct=Decimal("0.02"), crypto_pct=Decimal("0.1"), spread_multiple=Decimal("1.5"))
# Stops (product choice): 1 pip for FX (the previous fixed rule); half the entry percentages, the same k (a
# stop a broker re-rounded to its tick size differs by far less than a spread).
STOP = ToleranceSpec(pips=Decimal("1"), pct=Decimal("0.01"), crypto_pct=Decimal("0.05"), spread_multiple=Decimal("1.5"))


def tolerance(
    *,
    spec: ToleranceSpec,
    klass: str,
    price: Decimal,
    pip: Decimal,
    median_spread: Decimal | None = None,
    floor_pips: Decimal | None = None,
    floor_pct: Decimal | None = None,
) -> Decimal:
    """The tolerance as a price difference (quote currency): max(floor, k × median spread).

    floor = ``floor_pips`` × pip when that override is set, else ``floor_pct`` % × price when set, else the
    class default: ``spec.pips`` × pip for FX, ``spec.pct`` % × price for metals and indices,
    ``spec.crypto_pct`` % × price for crypto.
    """
    if floor_pips is not None:
        floor = floor_pips * pip
    elif floor_pct is not None:
        floor = price * floor_pct / HUNDRED
    elif klass == FX:
        floor = spec.pips * pip
    else:
        floor = price * (spec.crypto_pct if klass == CRYPTO else spec.pct) / HUNDRED
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


# With a known median (at least MIN_MEDIAN_SAMPLES spreads): warning at 3 ×, critical at 6 × the symbol's
# usual spread (product choice: the 20-pip EURUSD spread is about 10 × normal, and a news spike of
# two or three times normal is routine). Without one, per class (product choices sized on FXCM's published
# average spreads, https://www.fxcm.com/au/accounts/spread-costs/: EUR/USD 1.3 pips, GBP/NZD 5.6, XAU/USD
# 0.36 = 3.6 gold pips, XAG/USD 0.043 = 4.3 silver pips, SPX500 0.56 points ≈ 0.011 % of price, US30 2.97
# points ≈ 0.008 %, JPN225 10.85 ≈ 0.03 %):
# - FX 5 / 10 pips: about 4 × / 8 × EURUSD's usual spread, above the usual spread of every major cross;
# - metals 10 / 20 pips (gold 1.00 / 2.00, silver 0.10 / 0.20): about 3 × / 6 × gold's usual 3.6 pips;
# - indices 0.05 / 0.10 % of price (10 / 20 points at 20 000): above every FXCM index average;
# - crypto 0.3 / 0.6 % of price (180 / 360 at BTC 60 000): a product choice, crypto CFD spreads run from
#   a few hundredths of a percent to about 0.2 % across brokers and hours.
MEDIAN_DEFAULT = SpreadThreshold(unit=MEDIAN_MULTIPLE, warning=Decimal("3"), critical=Decimal("6"))
CLASS_DEFAULTS = {
    FX: SpreadThreshold(unit=PIPS, warning=Decimal("5"), critical=Decimal("10")),
    METAL: SpreadThreshold(unit=PIPS, warning=Decimal("10"), critical=Decimal("20")),
    INDEX: SpreadThreshold(unit=PCT, warning=Decimal("0.05"), critical=Decimal("0.1")),
    CRYPTO: SpreadThreshold(unit=PCT, warning=Decimal("0.3"), critical=Decimal("0.6")),
}
# Spreads a median needs before it is used (tolerances and the median-multiple thresholds): product choice,
# about one to two minutes of syncs every few seconds, so a fresh account's first ticks do not set "normal".
MIN_MEDIAN_SAMPLES = 20
# Spreads kept per symbol (product choice): at one sync every few seconds, the last ~10–15 minutes, long
# enough that one bad tick does not move the median and short enough to follow a session's normal spread.
SPREAD_WINDOW = 200


@dataclass(frozen=True)
class SpreadMeasure:
    """A spread's level, its value in the threshold's unit, the threshold of that level, and its pips."""

    level: str
    value: Decimal
    unit: str
    threshold: Decimal
    pips: Decimal

    def threshold_price(self, *, pip: Decimal, bid: Decimal, median_spread: Decimal | None) -> Decimal:
        """The threshold as a price difference (quote currency): pips × pip, % × bid, or multiple × median."""
        if self.unit == PIPS:
            return self.threshold * pip
        if self.unit == MEDIAN_MULTIPLE and median_spread:
            return self.threshold * median_spread
        return self.threshold * bid / HUNDRED


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
    """The median of the last ``size`` spreads of one symbol (``statistics.median`` on Decimals: the mean
    of the two middle values for an even count, still a Decimal).

    ``size`` defaults to ``SPREAD_WINDOW`` (the window ``guards.models.SymbolSpread`` keeps).
    """

    def __init__(self, values: Iterable[Decimal] = (), *, size: int = SPREAD_WINDOW):
        self.values: deque[Decimal] = deque(values, maxlen=size)

    def add(self, value: Decimal) -> None:
        self.values.append(value)

    @property
    def median(self) -> Decimal | None:
        return statistics.median(self.values) if self.values else None


# --------------------------------------------------------------------------------------------
# One instrument's effective rules
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstrumentGuard:
    """One instrument's effective pip, tolerances and spread thresholds, overrides applied.

    ``pip``: price units (``InstrumentGuardSetting.pip_size`` or the instrument's ``positions.pips`` pip);
    ``median_spread``: the rolling median spread in price units, None until ``MIN_MEDIAN_SAMPLES`` spreads
    are known; ``entry_pips``/``entry_pct``/``stop_pips``/``stop_pct``: floor overrides (None = class
    default); ``spread``: a per-symbol threshold override (None = median default, else class default).
    """

    symbol: str
    klass: str
    pip: Decimal
    median_spread: Decimal | None = None
    samples: int = 0
    entry_pips: Decimal | None = None
    entry_pct: Decimal | None = None
    stop_pips: Decimal | None = None
    stop_pct: Decimal | None = None
    spread: SpreadThreshold | None = None

    def entry(self, price: Decimal) -> Decimal:
        """The entry tolerance at ``price`` (price units): :func:`tolerance` with ``ENTRY``."""
        return tolerance(spec=ENTRY, klass=self.klass, price=price, pip=self.pip, median_spread=self.median_spread,
                         floor_pips=self.entry_pips, floor_pct=self.entry_pct)  # fmt: skip

    def stop(self, price: Decimal) -> Decimal:
        """The SL/TP tolerance at ``price`` (price units): :func:`tolerance` with ``STOP``."""
        return tolerance(spec=STOP, klass=self.klass, price=price, pip=self.pip, median_spread=self.median_spread,
                         floor_pips=self.stop_pips, floor_pct=self.stop_pct)  # fmt: skip

    def floor(self, spec: ToleranceSpec) -> tuple[str, Decimal, bool]:
        """The floor of ``spec`` (``ENTRY`` or ``STOP``) for this instrument: ``(unit, value, overridden)``,
        unit ``pips`` or ``pct`` (of price)."""
        pips, pct = (self.entry_pips, self.entry_pct) if spec is ENTRY else (self.stop_pips, self.stop_pct)
        if pips is not None:
            return PIPS, pips, True
        if pct is not None:
            return PCT, pct, True
        if self.klass == FX:
            return PIPS, spec.pips, False
        return PCT, spec.crypto_pct if self.klass == CRYPTO else spec.pct, False

    def measure_spread(self, *, bid: Decimal, ask: Decimal) -> SpreadMeasure:
        """:func:`spread_measure` with this instrument's pip, class, median and override."""
        return spread_measure(bid=bid, ask=ask, pip=self.pip, klass=self.klass, median_spread=self.median_spread,
                              threshold=self.spread)  # fmt: skip

    def spread_threshold(self) -> SpreadThreshold:
        """The thresholds in force: the override, else the median default once a median is known, else the
        class default (a median-multiple override without a median falls back to the class default)."""
        if self.spread is not None and (self.spread.unit != MEDIAN_MULTIPLE or self.median_spread):
            return self.spread
        return MEDIAN_DEFAULT if self.median_spread and self.spread is None else CLASS_DEFAULTS[self.klass]


def median_or_none(median: Decimal | None, samples: int) -> Decimal | None:
    """The median when at least ``MIN_MEDIAN_SAMPLES`` spreads back it and it is positive, else None."""
    return median if median and samples >= MIN_MEDIAN_SAMPLES else None


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
    pip = pip_size(symbol=symbol, digits=digits, point=point, calc_mode=calc_mode, override=pip_override)
    return InstrumentTolerances(
        klass=klass,
        pip=pip,
        entry=tolerance(spec=ENTRY, klass=klass, price=price, pip=pip, median_spread=median_spread),
        stop=tolerance(spec=STOP, klass=klass, price=price, pip=pip, median_spread=median_spread),
    )
