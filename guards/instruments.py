"""Per-instrument guard rules of one account inside a sync: overrides, rolling median spreads, tolerances.

:class:`InstrumentGuards` is read once per ingestion (two queries: the account's ``InstrumentGuardSetting``
rows and the ``SymbolSpread`` rows of the symbols involved), answers the reconciliation's tolerances and
the spread guard's thresholds (:meth:`InstrumentGuards.guard`), records each new quote's spread in memory
(:meth:`InstrumentGuards.record`) and writes every changed window in one upsert (:meth:`InstrumentGuards.flush`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from guards.models import InstrumentGuardSetting, SymbolSpread
from guards.tolerances import (
    SPREAD_WINDOW,
    InstrumentGuard,
    RollingMedian,
    SpreadThreshold,
    asset_class,
    median_or_none,
)
from positions.models import Instrument

SYMBOL_SPREAD_FIELDS = ["point", "spreads", "samples", "median", "updated_at"]


def guard_for(
    symbol: str,
    instrument: Instrument | None,
    *,
    setting: InstrumentGuardSetting | None = None,
    spread: SymbolSpread | None = None,
) -> InstrumentGuard | None:
    """The effective :class:`~guards.tolerances.InstrumentGuard` of one symbol, or None without an instrument
    and without a pip override (no pip to measure in).

    Class from the symbol and the instrument's ``trade_calc_mode``; pip = the setting's ``pip_size``, else
    the instrument's stored pip (``positions.pips``); the median only once ``MIN_MEDIAN_SAMPLES`` spreads are
    known; the setting's tolerance floors and spread thresholds, when set, replace the defaults.
    """
    override = setting.pip_size if setting is not None else None
    if instrument is None and override is None:
        return None
    calc_mode = instrument.trade_calc_mode if instrument is not None else None
    pip = override if override is not None else instrument.pip_size if instrument is not None else None
    if pip is None:  # unreachable: one of them is set (above); keeps the type narrow
        return None
    threshold = None
    if setting is not None and setting.spread_unit and setting.spread_warning and setting.spread_critical:
        threshold = SpreadThreshold(
            unit=setting.spread_unit, warning=setting.spread_warning, critical=setting.spread_critical
        )
    samples = spread.samples if spread is not None else 0
    return InstrumentGuard(
        symbol=symbol,
        klass=asset_class(symbol, calc_mode=calc_mode),
        pip=pip,
        median_spread=median_or_none(spread.median if spread is not None else None, samples),
        samples=samples,
        entry_pips=setting.entry_tolerance_pips if setting else None,
        entry_pct=setting.entry_tolerance_pct if setting else None,
        stop_pips=setting.stop_tolerance_pips if setting else None,
        stop_pct=setting.stop_tolerance_pct if setting else None,
        spread=threshold,
    )


def _window_median(values: Iterable[int], point: Decimal) -> Decimal | None:
    """The median of spreads counted in points, in price units."""
    median = RollingMedian(Decimal(v) for v in values).median
    return None if median is None else median * point


class InstrumentGuards:
    """One account's instrument overrides and rolling spreads for one ingestion (see the module docstring)."""

    def __init__(
        self,
        *,
        user_id: int,
        account_id: int,
        settings: Mapping[str, InstrumentGuardSetting],
        spreads: Mapping[str, SymbolSpread],
    ):
        self.user_id = user_id
        self.account_id = account_id
        self.settings = dict(settings)
        self.spreads = dict(spreads)
        self.changed: dict[str, SymbolSpread] = {}

    @classmethod
    def load(cls, *, user_id: int, account_id: int, symbols: Iterable[str]) -> InstrumentGuards:
        """Read the account's settings and the spread windows of ``symbols`` (two queries; none without symbols)."""
        wanted = sorted(set(symbols))
        if not wanted:
            return cls(user_id=user_id, account_id=account_id, settings={}, spreads={})
        settings = InstrumentGuardSetting.objects.filter(account_id=account_id, symbol__in=wanted)
        spreads = SymbolSpread.objects.filter(account_id=account_id, symbol__in=wanted)
        return cls(
            user_id=user_id,
            account_id=account_id,
            settings={s.symbol: s for s in settings},
            spreads={s.symbol: s for s in spreads},
        )

    def guard(self, symbol: str, instrument: Instrument | None) -> InstrumentGuard | None:
        """The symbol's effective rules now (the median as of the spreads recorded so far)."""
        return guard_for(symbol, instrument, setting=self.settings.get(symbol), spread=self.spreads.get(symbol))

    def tolerances(self, instruments: Mapping[str, Instrument]) -> dict[str, InstrumentGuard]:
        """``{symbol: InstrumentGuard}`` for every instrument (the reconciliation's ``tolerances``)."""
        result = {}
        for symbol, instrument in instruments.items():
            guard = self.guard(symbol, instrument)
            if guard is not None:
                result[symbol] = guard
        return result

    def record(self, symbol: str, *, bid: Decimal, ask: Decimal, instrument: Instrument | None) -> None:
        """Add one spread (ask − bid, price units) to the symbol's window, counted in the instrument's point
        (rounded half-up to a whole point); a crossed quote (ask < bid) or a symbol without an instrument is
        not recorded. The window keeps the last ``SPREAD_WINDOW`` spreads; a new point starts it again."""
        if instrument is None or ask < bid:
            return
        point = instrument.point
        points = int(((ask - bid) / point).to_integral_value(rounding=ROUND_HALF_UP))
        row = self.spreads.get(symbol)
        if row is None:
            row = SymbolSpread(user_id=self.user_id, account_id=self.account_id, symbol=symbol, point=point)
            self.spreads[symbol] = row
        if row.point != point:
            row.point, row.spreads = point, []
        window = [*(row.spreads or []), points][-SPREAD_WINDOW:]
        row.spreads, row.samples, row.median = window, len(window), _window_median(window, point)
        self.changed[symbol] = row

    def flush(self) -> None:
        """Write every changed window: one ``INSERT … ON CONFLICT (account, symbol) DO UPDATE`` statement."""
        if not self.changed:
            return
        # Rows without a primary key: a mix of stored and new rows would be two INSERT statements.
        rows = [
            SymbolSpread(user_id=self.user_id, account_id=self.account_id, symbol=row.symbol, point=row.point,
                         spreads=row.spreads, samples=row.samples, median=row.median)
            for row in self.changed.values()
        ]  # fmt: skip
        SymbolSpread.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["account", "symbol"],
            update_fields=SYMBOL_SPREAD_FIELDS,
        )
        self.changed.clear()
