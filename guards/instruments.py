"""Per-instrument guard rules of one account: overrides, rolling median spreads, tolerances.

Inside a sync:

:class:`InstrumentGuards` is read once per ingestion (two queries: the account's ``InstrumentGuardSetting``
rows and the ``SymbolSpread`` rows of the symbols involved), answers the reconciliation's tolerances and
the spread guard's thresholds (:meth:`InstrumentGuards.guard`), records each new quote's spread in memory
(:meth:`InstrumentGuards.record`) and writes every changed window in one upsert (:meth:`InstrumentGuards.flush`).
For the API: :func:`instrument_guard_list` (the effective rules and where each comes from) and
:func:`instrument_setting_update` (an account's overrides of one symbol).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Account
from accounts.services import account_lock
from guards.models import InstrumentGuardSetting, SymbolSpread
from guards.tolerances import (
    ENTRY,
    MEDIAN_DEFAULT,
    SPREAD_WINDOW,
    STOP,
    InstrumentGuard,
    RollingMedian,
    SpreadThreshold,
    ToleranceSpec,
    asset_class,
    median_or_none,
)
from positions.models import Instrument, Quote
from positions.selectors import account_instruments
from tradingsite.caching import bump_and_warm_user
from tradingsite.db import WriteBatch, lock_user_row

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

    def flush(self, writes: WriteBatch) -> None:
        """Queue in ``writes`` (the sync's ``tradingsite.db.WriteBatch``, sent with its other writes) every
        changed window: one ``INSERT … ON CONFLICT (account, symbol) DO UPDATE`` statement."""
        if not self.changed:
            return
        # Rows without a primary key: a mix of stored and new rows would be two INSERT statements.
        rows = [
            SymbolSpread(user_id=self.user_id, account_id=self.account_id, symbol=row.symbol, point=row.point,
                         spreads=row.spreads, samples=row.samples, median=row.median)
            for row in self.changed.values()
        ]  # fmt: skip
        writes.insert(SymbolSpread, rows, unique_fields=["account", "symbol"], update_fields=SYMBOL_SPREAD_FIELDS)
        self.changed.clear()


# --------------------------------------------------------------------------------------------
# The API's read and write: GET guards/instruments/, PATCH guards/instruments/{symbol}/
# --------------------------------------------------------------------------------------------
SETTING_FIELDS = (
    "pip_size", "entry_tolerance_pips", "entry_tolerance_pct", "stop_tolerance_pips", "stop_tolerance_pct",
    "spread_unit", "spread_warning", "spread_critical",
)  # fmt: skip


def _tolerance_entry(guard: InstrumentGuard, spec: ToleranceSpec, price: Decimal | None) -> dict[str, Any]:
    unit, value, overridden = guard.floor(spec)
    at = (guard.entry if spec is ENTRY else guard.stop)(price) if price is not None else None
    return {
        "floor_unit": unit,
        "floor": value,
        "spread_multiple": spec.spread_multiple,
        "source": "override" if overridden else "default",
        "at_price": at,
        "at_price_pips": at / guard.pip if at is not None else None,
    }


def _without_instrument(symbol: str, setting: InstrumentGuardSetting | None) -> dict[str, Any]:
    """The entry of a symbol with overrides but neither an instrument nor a pip override yet."""
    return {
        "symbol": symbol, "asset_class": asset_class(symbol), "pip_size": None, "pip_size_source": None,
        "reference_price": None, "entry_tolerance": None, "stop_tolerance": None, "spread_thresholds": None,
        "median_spread": None, "median_spread_pips": None, "spread_samples": 0, "median_in_use": False,
        "override": {f: getattr(setting, f) for f in SETTING_FIELDS} if setting is not None else None,
    }  # fmt: skip


def instrument_guard_list(*, account_id: int, symbol: str | None = None) -> list[dict[str, Any]]:
    """Every instrument of the account (its own specs over the shipped defaults) and every symbol it has
    overrides for, with the effective guard rules, each saying whether an override or a default set it
    (four queries; ``symbol`` narrows to one). A symbol with overrides but no instrument and no pip
    override yet has null pip, tolerances and thresholds (nothing to measure in until its specs arrive).

    Shape per symbol: ``symbol``, ``asset_class``, ``pip_size`` and ``pip_size_source`` (``override`` |
    ``instrument``); ``reference_price`` (the latest quote's mid, None before one); ``entry_tolerance`` and
    ``stop_tolerance`` (``floor_unit`` pips | pct, ``floor``, ``spread_multiple``, ``source`` override |
    default, and the tolerance at the reference price in price units and pips); ``spread_thresholds``
    (``unit``, ``warning``, ``critical``, ``source``: override | median | class_default); ``median_spread``
    (price units) and ``median_spread_pips``, ``spread_samples``, ``median_in_use`` (at least
    ``MIN_MEDIAN_SAMPLES``); ``override``: the account's setting fields, or None.
    """
    instruments = account_instruments(account_id=account_id)
    settings = {s.symbol: s for s in InstrumentGuardSetting.objects.filter(account_id=account_id)}
    names = sorted({*instruments, *settings} if symbol is None else {symbol} & {*instruments, *settings})
    spreads = {s.symbol: s for s in SymbolSpread.objects.filter(account_id=account_id)}
    mids = {q.symbol: q.mid for q in Quote.objects.filter(account_id=account_id, symbol__in=names)}
    result = []
    for name in names:
        setting, spread, instrument = settings.get(name), spreads.get(name), instruments.get(name)
        guard = guard_for(name, instrument, setting=setting, spread=spread)
        if guard is None:  # overrides set before the symbol's specs arrived, without a pip: nothing to measure in
            result.append(_without_instrument(name, setting))
            continue
        threshold = guard.spread_threshold()
        source = (
            "override" if guard.spread is threshold else "median" if threshold is MEDIAN_DEFAULT else "class_default"
        )
        median = spread.median if spread is not None else None
        price = mids.get(name)
        result.append(
            {
                "symbol": name,
                "asset_class": guard.klass,
                "pip_size": guard.pip,
                "pip_size_source": "override" if setting is not None and setting.pip_size is not None else "instrument",
                "reference_price": price,
                "entry_tolerance": _tolerance_entry(guard, ENTRY, price),
                "stop_tolerance": _tolerance_entry(guard, STOP, price),
                "spread_thresholds": {"unit": threshold.unit, "warning": threshold.warning,
                                      "critical": threshold.critical, "source": source},
                "median_spread": median,
                "median_spread_pips": median / guard.pip if median is not None else None,
                "spread_samples": spread.samples if spread is not None else 0,
                "median_in_use": guard.median_spread is not None,
                "override": {f: getattr(setting, f) for f in SETTING_FIELDS} if setting is not None else None,
            }
        )  # fmt: skip
    return result


# Symbols one account may hold overrides for (product choice, as the quotes: MT5's Market Watch shows at
# most a few hundred symbols).
MAX_SETTINGS_PER_ACCOUNT = 1000


@transaction.atomic
def instrument_setting_update(*, user_id: int, account_id: int, symbol: str, **fields: Any) -> InstrumentGuardSetting:
    """Create or change the account's overrides of one symbol (names in ``SETTING_FIELDS``; None clears one,
    ``spread_unit`` "" clears the spread thresholds) after ``full_clean``.

    Locks the user's row, then the account's (the order of every writer, ``tradingsite.db``). Raises
    ``ValidationError`` with field errors (→ 400, nothing written) on an unknown field or a rejected result
    (``InstrumentGuardSetting.clean``). The next sync uses the new values; bumps the user's cache generation
    after commit.
    """
    unknown = sorted(set(fields) - set(SETTING_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    lock_user_row(user_id)
    account_lock(Account(pk=account_id))
    setting = InstrumentGuardSetting.objects.select_for_update().filter(account_id=account_id, symbol=symbol).first()
    if setting is None:
        if InstrumentGuardSetting.objects.filter(account_id=account_id).count() >= MAX_SETTINGS_PER_ACCOUNT:
            raise ValidationError(
                {"symbol": f"An account keeps overrides for at most {MAX_SETTINGS_PER_ACCOUNT} symbols."}
            )
        setting = InstrumentGuardSetting(user_id=user_id, account_id=account_id, symbol=symbol)
    for name, value in fields.items():
        setattr(setting, name, value)
    if not setting.spread_unit:  # no unit: the thresholds mean nothing, clear them
        setting.spread_warning = setting.spread_critical = None
    setting.full_clean(exclude=["user", "account"])
    setting.save()
    transaction.on_commit(lambda: bump_and_warm_user(user_id))
    return setting
