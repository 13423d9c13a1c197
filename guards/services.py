"""guards services: thresholds, peak equity, and the guard evaluation run inside every sync.

Percentages are 0–100 (15 means 15 %); money in the account currency; prices in the quote currency.
Alerts are stateful, one row per episode: opened when a level is entered, escalated when the level
rises, resolved when the measure falls back below the warning threshold — never a row per sync.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Account
from accounts.services import account_lock
from guards.account_guards import AccountGuardsMixin
from guards.cashflow import IndexState, advance, balance_check, cash_flow
from guards.cashflow import drawdown_pct as index_drawdown_pct
from guards.instruments import InstrumentGuards, guard_for
from guards.models import (
    CONFIG_FIELDS,
    LEVEL_RANK,
    PCT,
    SPREAD_PIPS,
    THRESHOLD,
    DrawdownAlert,
    EquitySnapshot,
    GuardConfig,
    GuardState,
    InstrumentGuardSetting,
    Level,
    MarketAlert,
)
from guards.sessions import Calendar, calendar_from_symbol_info, default_calendar, quote_age_seconds
from guards.tolerances import PCT as PCT_UNIT
from guards.tolerances import InstrumentGuard
from positions.models import Instrument, Quote
from tradingsite.bounds import INT32_MAX, clamp_decimal, decimal_limit
from tradingsite.caching import bump_and_warm_user
from tradingsite.db import WriteBatch, lock_user_row, retry_conflict_once
from tradingsite.metrics import GUARD_TRANSITIONS

PCT_QUANTUM = Decimal("0.0001")  # guards.models.PCT: 4 decimal places
THRESHOLD_QUANTUM = Decimal("0.001")  # guards.models.THRESHOLD: 3 decimal places
PIPS_QUANTUM = Decimal("0.01")
MONEY_QUANTUM = Decimal("0.01")  # guards.models MONEY: 2 decimal places
HUNDRED = Decimal("100")


def _pct(value: Decimal) -> Decimal:
    """A percent as the PCT columns store it: clamped into ±999.9999 (a 1,000 % gap after a reverse split
    is still critical, never a numeric overflow), then rounded half-up to 4 decimal places."""
    return clamp_decimal(value, **PCT).quantize(PCT_QUANTUM, rounding=ROUND_HALF_UP)


def _raw_if_clamped(raw: Decimal, stored: Decimal) -> str | None:
    """The unclamped figure for ``details`` when :func:`_pct` had to clamp it, else None."""
    return str(raw) if abs(raw) > abs(stored) and abs(raw) > decimal_limit(**PCT) else None


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_UP)


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
def guard_config_create(*, user_id: int, account_id: int) -> GuardConfig:
    """Create the account's thresholds with the model's defaults unless they exist (``INSERT … ON CONFLICT
    DO NOTHING``, so a concurrent first use never fails on the one-config-per-account constraint); return
    the row as stored (Decimal thresholds with their column's places, 15.000). Call with the user's and
    the account's rows locked, in that order (``tradingsite.db.lock_user_row``, ``account_lock``)."""
    GuardConfig.objects.bulk_create([GuardConfig(user_id=user_id, account_id=account_id)], ignore_conflicts=True)
    return GuardConfig.objects.get(user_id=user_id, account_id=account_id)


def _lock_user_and_account(user_id: int, account_id: int) -> None:
    """The lock order of every writer: the user's row, then the account's (both FOR NO KEY UPDATE)."""
    lock_user_row(user_id)
    account_lock(Account(pk=account_id))


@retry_conflict_once
def guard_config_get_or_create(*, user_id: int, account_id: int) -> GuardConfig:
    """Return the account's guard thresholds, creating them with the model's defaults on first use.

    The first use locks the user's row, then the account's, as every writer does (``tradingsite.db``),
    so it waits for a concurrent first sync instead of deadlocking with it.
    """
    config = GuardConfig.objects.filter(user_id=user_id, account_id=account_id).first()
    if config is not None:
        return config
    with transaction.atomic():
        _lock_user_and_account(user_id, account_id)
        return guard_config_create(user_id=user_id, account_id=account_id)


@transaction.atomic
def guard_config_update(*, user_id: int, account_id: int, **fields: Any) -> GuardConfig:
    """Update some of the account's thresholds (names in ``CONFIG_FIELDS``) after ``full_clean``.

    Raises ``ValidationError`` with field errors (→ 400, nothing written) on an unknown field or
    when ``GuardConfig.clean`` rejects the result (0 < warning < critical ≤ 100; drawdown ≥ 1).
    Bumps the user's cache generation after commit.
    """
    unknown = sorted(set(fields) - set(CONFIG_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    _lock_user_and_account(user_id, account_id)
    guard_config_create(user_id=user_id, account_id=account_id)
    config = GuardConfig.objects.select_for_update().get(user_id=user_id, account_id=account_id)
    for name, value in fields.items():
        setattr(config, name, value)
    config.full_clean(exclude=["user", "account"])
    config.save(update_fields=[*fields, "updated_at"])
    transaction.on_commit(lambda: bump_and_warm_user(user_id))
    return config


# --------------------------------------------------------------------------------------------
# Levels (pure)
# --------------------------------------------------------------------------------------------
def drawdown_pct(*, peak: Decimal, equity: Decimal) -> Decimal:
    """(peak − equity) / peak × 100, unrounded; 0 when the peak is not positive."""
    if peak <= 0:
        return Decimal("0")
    return (peak - equity) / peak * HUNDRED


def drawdown_level(*, pct: Decimal, equity: Decimal, config: GuardConfig) -> str:
    """``critical`` from the critical threshold or when equity < min_equity, ``warning`` from the
    warning threshold, else ``ok``. ``pct`` in percent (0–100)."""
    if pct >= config.drawdown_critical_pct or equity < config.min_equity:
        return Level.CRITICAL
    if pct >= config.drawdown_warning_pct:
        return Level.WARNING
    return Level.OK


def gap_pct(*, mid: Decimal, previous_mid: Decimal) -> Decimal:
    """|mid − previous mid| / previous mid × 100, unrounded."""
    return abs(mid - previous_mid) / previous_mid * HUNDRED


def gap_level(*, pct: Decimal, config: GuardConfig) -> str:
    """``warning`` from ``gap_warning_pct``, ``critical`` from ``gap_critical_pct``."""
    if pct >= config.gap_critical_pct:
        return Level.CRITICAL
    if pct >= config.gap_warning_pct:
        return Level.WARNING
    return Level.OK


def spread_pct(*, bid: Decimal, ask: Decimal) -> Decimal:
    """(ask − bid) / bid × 100, unrounded."""
    return (ask - bid) / bid * HUNDRED


def spread_level(*, pct: Decimal, config: GuardConfig) -> str:
    """The account-wide ceiling: ``warning`` above ``spread_warning_pct``, ``critical`` from
    ``spread_critical_pct`` (percent of bid, whatever the market)."""
    if pct >= config.spread_critical_pct:
        return Level.CRITICAL
    if pct > config.spread_warning_pct:
        return Level.WARNING
    return Level.OK


@dataclass(frozen=True)
class SpreadLevel:
    """A spread's level and what decided it: ``unit`` (``pips``, ``pct`` of bid, ``median_multiple``), the
    spread in that unit (``value``) and the threshold of the level in it (``threshold``; the warning one
    at ``ok``); ``threshold_pct``: that threshold as a percent of bid (the alert's ``threshold_pct``)."""

    level: str
    unit: str
    value: Decimal
    threshold: Decimal
    threshold_pct: Decimal


def spread_check(*, bid: Decimal, ask: Decimal, rules: InstrumentGuard | None, config: GuardConfig) -> SpreadLevel:
    """The wide-spread level of one quote.

    With the instrument's rules (``guards.tolerances``): the per-symbol override alone when the account set
    one; else the worse of the symbol's default (6 × / 3 × its rolling median spread once known, else the
    class thresholds in pips or percent of price) and the account-wide ceiling in percent of bid
    (``spread_warning_pct``/``spread_critical_pct``, :func:`spread_level`). Without an instrument: the
    account-wide percentages alone.
    """
    pct = spread_pct(bid=bid, ask=ask)
    account_level = spread_level(pct=pct, config=config)
    account_threshold = config.spread_critical_pct if account_level == Level.CRITICAL else config.spread_warning_pct
    by_account = SpreadLevel(level=account_level, unit=PCT_UNIT, value=pct, threshold=account_threshold,
                             threshold_pct=account_threshold)  # fmt: skip
    if rules is None:
        return by_account
    measure = rules.measure_spread(bid=bid, ask=ask)
    if rules.spread is None and LEVEL_RANK[account_level] > LEVEL_RANK[measure.level]:
        return by_account
    at = measure.threshold_price(pip=rules.pip, bid=bid, median_spread=rules.median_spread) / bid * HUNDRED
    threshold_pct = clamp_decimal(at, **THRESHOLD).quantize(THRESHOLD_QUANTUM, rounding=ROUND_HALF_UP)
    return SpreadLevel(level=measure.level, unit=measure.unit, value=measure.value, threshold=measure.threshold,
                       threshold_pct=threshold_pct)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Evaluation inside a sync
# --------------------------------------------------------------------------------------------
SUCCESS = "success"
WARNING = "warning"
UNEXPLAINED_BALANCE_CHANGE = "unexplained_balance_change"


@dataclass(frozen=True)
class GuardEvent:
    """Something the guards saw that belongs in the account's audit trail; the caller (reconciliation)
    turns it into a log row. ``kind``: "guard" (a level transition or a peak reset) or "divergence"
    (``divergence_reason`` says which, e.g. ``unexplained_balance_change``); ``status``: "success" or
    "warning"; ``details``: JSON-ready values (money and percentages as strings)."""

    kind: str
    status: str
    message: str
    details: dict[str, Any]
    symbol: str = ""
    divergence_reason: str = ""


@dataclass
class GuardOutcome:
    """The guard levels after a sync (the sync summary's ``guards``) and the events of the transitions."""

    summary: dict[str, Any]
    events: list[GuardEvent] = field(default_factory=list)
    transitions: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, transition, level)


@dataclass
class _Measure:
    level: str
    value_pct: Decimal
    threshold_pct: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    reference_price: Decimal | None = None
    value_pips: Decimal | None = None
    age_seconds: int | None = None
    raw_pct: str | None = None  # the unclamped percent when value_pct had to be clamped
    spread: SpreadLevel | None = None  # wide spreads: the unit and threshold that decided the level


def _spread_details(spread: SpreadLevel | None) -> dict[str, Any]:
    """The unit, value and threshold that decided a wide-spread level, for the event's ``details``."""
    if spread is None:
        return {}
    return {"spread_unit": spread.unit, "spread_value": _s(spread.value.quantize(PCT_QUANTUM, rounding=ROUND_HALF_UP)),
            "spread_threshold": _s(spread.threshold)}  # fmt: skip


def _guard_event(*, transition: str, message: str, details: dict[str, Any], symbol: str = "") -> GuardEvent:
    status = SUCCESS if transition == "resolved" else WARNING
    return GuardEvent(kind="guard", status=status, message=message, details=details, symbol=symbol)


def _apply_episode(alert, *, level: str, value: Decimal, threshold: Decimal, now: datetime) -> str | None:
    """Update an open alert with a new non-ok measure; return "escalated" when the level rose."""
    transition = None
    if LEVEL_RANK[level] > LEVEL_RANK[alert.level]:
        alert.escalated_at = now
        transition = "escalated"
    if LEVEL_RANK[level] > LEVEL_RANK[alert.max_level]:
        alert.max_level = level
    alert.level = level
    alert.value_pct = value
    alert.threshold_pct = threshold
    if value > alert.max_value_pct:
        alert.max_value_pct = value
    return transition


def measure_quote(
    *,
    quote: dict[str, Any],
    previous: Quote | None,
    instrument: Instrument | None,
    broker_time: datetime,
    config: GuardConfig,
    calendar: Calendar | None = None,
    rules: InstrumentGuard | None = None,
) -> dict[str, _Measure]:
    """Measure one quote against the thresholds: ``price_gap`` (vs the previous accepted quote's mid),
    ``wide_spread`` (:func:`spread_check` with ``rules``, the symbol's pip, overrides and median spread;
    the instrument's defaults when None; stored as percent of bid plus pips) and ``stale_quote``
    (older than ``quote_stale_seconds`` at broker_time → warning). Returns every condition measured,
    including those at level ``ok``.

    Staleness follows the symbol's trading sessions (``calendar``, else ``guards.sessions.default_calendar``):
    while the market is closed no quote is stale, and after the reopening the age counts from the later
    of the tick and the opening. The price gap is measured whatever the session (a Monday gap alerts)."""
    bid, ask = quote["bid"], quote["ask"]
    mid = (bid + ask) / 2
    measures: dict[str, _Measure] = {}
    stale_tick = (
        previous is not None
        and quote["time"] is not None
        and previous.is_newer_than(quote["time"], broker_time=broker_time)
    )
    if previous is not None and not stale_tick:
        pct = gap_pct(mid=mid, previous_mid=previous.mid)
        level = gap_level(pct=pct, config=config)
        measures[MarketAlert.Condition.PRICE_GAP] = _Measure(
            level=level,
            value_pct=_pct(pct),
            raw_pct=_raw_if_clamped(pct, _pct(pct)),
            threshold_pct=config.gap_critical_pct if level == Level.CRITICAL else config.gap_warning_pct,
            bid=bid,
            ask=ask,
            reference_price=previous.mid,
        )
    pct = spread_pct(bid=bid, ask=ask)
    rules = rules if rules is not None else guard_for(quote["symbol"], instrument)
    spread = spread_check(bid=bid, ask=ask, rules=rules, config=config)
    spread_pips = None
    if rules is not None:
        pips = clamp_decimal((ask - bid) / rules.pip, **SPREAD_PIPS)  # 10^12 pips and more: clamped
        spread_pips = pips.quantize(PIPS_QUANTUM, rounding=ROUND_HALF_UP)
    measures[MarketAlert.Condition.WIDE_SPREAD] = _Measure(
        level=spread.level,
        value_pct=_pct(pct),
        raw_pct=_raw_if_clamped(pct, _pct(pct)),
        threshold_pct=spread.threshold_pct,
        bid=bid,
        ask=ask,
        value_pips=spread_pips,
        spread=spread,
    )
    age: int | None = 0
    if quote["time"] is not None:
        age = quote_age_seconds(
            tick_time=quote["time"], now=broker_time, calendar=calendar or default_calendar(quote["symbol"])
        )
    measures[MarketAlert.Condition.STALE_QUOTE] = _Measure(
        level=Level.WARNING if age is not None and age > config.quote_stale_seconds else Level.OK,
        value_pct=Decimal("0"),
        threshold_pct=Decimal("0"),
        bid=bid,
        ask=ask,
        age_seconds=min(max(age, 0), INT32_MAX) if age is not None else 0,  # the integer column
    )
    return measures


class GuardSession(AccountGuardsMixin):
    """The guards of one user across the syncs of one ingestion (one transaction, the user's row locked).

    Evaluates each sync in memory (:meth:`evaluate`) and writes once (:meth:`flush`): the peak
    (``GuardState``), one ``EquitySnapshot`` per sync and the alert episodes in their final state —
    an episode that opens and resolves within one ingestion is still one row. ``alerts_may_be_open``
    False (the previous sync's summary shows none) skips reading the open alerts.
    """

    def __init__(
        self,
        *,
        user_id: int,
        account_id: int,
        config: GuardConfig,
        state: GuardState | None,
        alerts_may_be_open: bool,
        instrument_guards: InstrumentGuards | None = None,
    ):
        self.user_id = user_id
        # per-symbol overrides and rolling spreads (read by the caller with the instruments; no query here)
        self.instrument_guards = instrument_guards or InstrumentGuards(
            user_id=user_id, account_id=account_id, settings={}, spreads={}
        )
        self.account_id = account_id
        self.config = config
        self.state = state
        self.state_dirty = False
        self.snapshots: list[EquitySnapshot] = []
        self.drawdown_alert: DrawdownAlert | None = None
        self.market_alerts: dict[tuple[str, str], MarketAlert] = {}
        self.changed_alerts: dict[int, DrawdownAlert | MarketAlert] = {}
        self.transitions: list[tuple[str, str, str]] = []
        # the operator's session overrides: from the settings the caller read with the instruments, else one query
        self.session_overrides: dict[str, Any] | None = None
        if instrument_guards is not None:
            self.session_overrides = {
                symbol: setting.sessions for symbol, setting in instrument_guards.settings.items() if setting.sessions
            }
        if alerts_may_be_open:
            self.drawdown_alert = DrawdownAlert.objects.filter(
                user_id=user_id, account_id=account_id, resolved_at__isnull=True
            ).first()
            self.market_alerts = {
                (a.symbol, a.condition): a
                for a in MarketAlert.objects.filter(user_id=user_id, account_id=account_id, resolved_at=None)
            }

    def _changed(self, alert: DrawdownAlert | MarketAlert) -> None:
        self.changed_alerts[id(alert)] = alert

    def evaluate(
        self,
        *,
        sync_id: uuid.UUID,
        broker_time: datetime,
        account: dict[str, Any],
        quotes: Iterable[dict[str, Any]],
        previous_quotes: dict[str, Quote],
        instruments: dict[str, Instrument],
        held_symbols: set[str],
        open_positions: int,
        new_deals: Sequence[dict[str, Any]] = (),
        currency_digits: int = 2,
        positions: Iterable[Any] = (),
        server_utc_offset_minutes: int = 0,
    ) -> GuardOutcome:
        """Evaluate every guard for one sync; returns the summary's ``guards`` and the transition events.

        ``quotes``: validated quotes with ``time`` set; ``previous_quotes``: the account's accepted quote
        per symbol before this sync (the gap reference); ``held_symbols``: symbols of open positions;
        ``new_deals``: the deals not seen before this sync (their balance operations are the period's
        cash flow, and all of them explain the change in balance); ``currency_digits``: the account's;
        ``positions``: the open ledger rows (the margin guard's net exposures);
        ``server_utc_offset_minutes``: the account's trade-server clock (the clock of the sync's sessions).
        """
        outcome = GuardOutcome(summary={})
        new_deals, quotes = list(new_deals), list(quotes)
        drawdown = self._drawdown(
            sync_id=sync_id,
            broker_time=broker_time,
            account=account,
            open_positions=open_positions,
            flow=cash_flow(new_deals),
            outcome=outcome,
        )
        self._balance_continuity(account=account, new_deals=new_deals, digits=currency_digits, outcome=outcome)
        market = self._market(
            sync_id=sync_id,
            broker_time=broker_time,
            quotes=quotes,
            previous_quotes=previous_quotes,
            instruments=instruments,
            held_symbols=held_symbols,
            outcome=outcome,
            server_utc_offset_minutes=server_utc_offset_minutes,
        )
        mids = {symbol: q.mid for symbol, q in previous_quotes.items()}
        mids.update({q["symbol"]: (q["bid"] + q["ask"]) / 2 for q in quotes})
        margin, rules = self._account_guards(
            broker_time=broker_time,
            account=account,
            positions=positions,
            instruments=instruments,
            mids=mids,
            outcome=outcome,
        )
        outcome.summary = {
            "drawdown": drawdown,
            "market_alerts": market,
            "margin": margin,
            "rules": rules,
            "any_positions_should_close": drawdown["should_close_all"]
            or margin["should_close_all"]
            or any(rule["should_close_all"] for rule in rules)
            or any(a["should_close_positions"] for a in market),
        }
        self.transitions.extend(outcome.transitions)
        return outcome

    def _drawdown(
        self, *, sync_id, broker_time, account, open_positions, flow, outcome: GuardOutcome
    ) -> dict[str, Any]:
        """Drawdown on the cash-flow-adjusted equity index (``guards.cashflow``): the period's ``flow``
        (deposits +, withdrawals −) is taken out of the return, so it never moves the drawdown.

        The first snapshot starts the index at equity / max(balance, equity) with peak 1 (a floating loss
        at the first sync is a drawdown from the balance). A deposit into a wiped-out account (drawdown
        ≥ 99 %, ``guards.cashflow.is_wiped_out``) restarts the index at the refill: the open episode
        resolves with its worst drawdown on record, the peak becomes the refilled equity and an
        ``index_restart`` guard event records the old index. ``peak_equity`` = equity × index peak / index,
        the equity at which the drawdown would be 0, rounded half-up to 0.01.

        A first sync with negative balance and equity is valid MT5 state (a stop-out through a gap
        leaves the balance negative until the broker's negative-balance protection resets it): the
        peak starts at 0 (the column's check, peak ≥ 0) and the level comes from ``min_equity``. A
        drawdown that cannot fit its column is stored clamped, the raw figure in ``drawdown_pct_raw``.
        """
        config, user_id = self.config, self.user_id
        balance, equity = account["balance"], account["equity"]
        if self.state is None:
            self.state = GuardState(
                user_id=user_id,
                account_id=self.account_id,
                peak_equity=max(balance, equity, balance.copy_abs() * 0),  # 0 with the balance's places
                peak_equity_at=broker_time,
            )
            start = IndexState(equity=max(balance, equity))
        else:
            start = IndexState(
                index=self.state.equity_index, peak=self.state.equity_index_peak, equity=self.state.index_equity
            )
        index = advance(start, equity=equity, flow=flow)
        state = self.state
        if index.index > 0 and equity > 0:
            peak = _money(equity * index.peak / index.index)
        elif index.restarted:
            peak = _money(max(equity, Decimal("0")))
        else:
            peak = state.peak_equity
        if index.peak > start.peak or state.pk is None or index.restarted:
            state.peak_equity_at = broker_time
        if index.restarted:
            outcome.events.append(
                GuardEvent(
                    kind="guard",
                    status=SUCCESS,
                    message=(
                        f"drawdown index restarted at the refill: the account was wiped out (index {start.index} "
                        f"of peak {start.peak}); the drawdown is measured from equity {equity}"
                    ),
                    details={
                        "kind": "index_restart",
                        "previous_index": _s(start.index),
                        "previous_index_peak": _s(start.peak),
                        "previous_drawdown_pct": _s(index_drawdown_pct(start)),
                        "previous_peak_equity": _s(state.peak_equity),
                        "cash_flow": _s(flow),
                        "equity": _s(equity),
                        "peak_equity": _s(peak),
                    },
                )
            )
        values = (peak, index.index, index.peak, equity)
        if state.pk is None or values != (
            state.peak_equity,
            state.equity_index,
            state.equity_index_peak,
            state.index_equity,
        ):
            state.peak_equity, state.equity_index, state.equity_index_peak, state.index_equity = values
            self.state_dirty = True  # written once at flush; a flat account with no flow writes nothing
        raw_pct = index_drawdown_pct(index)
        pct = _pct(raw_pct)
        clamped = _raw_if_clamped(raw_pct, pct)
        raw = {"drawdown_pct_raw": clamped} if clamped else {}
        level = self._drawdown_level(
            index=index, equity=equity, previous=self.drawdown_alert.level if self.drawdown_alert else None
        )
        below_min = equity < config.min_equity
        self.snapshots.append(
            EquitySnapshot(
                user_id=user_id,
                account_id=self.account_id,
                sync_id=sync_id,
                broker_time=broker_time,
                login=account.get("login"),
                currency=account["currency"],
                balance=balance,
                equity=equity,
                margin=account.get("margin", Decimal("0")),
                margin_free=account.get("margin_free", Decimal("0")),
                peak_equity=peak,
                drawdown_pct=pct,
                drawdown_level=level,
                open_positions=open_positions,
                cash_flow=flow,
                equity_index=index.index,
            )
        )
        threshold = config.drawdown_critical_pct if level == Level.CRITICAL else config.drawdown_warning_pct
        alert = self.drawdown_alert
        transition = None
        if level != Level.OK and alert is None:
            alert = DrawdownAlert(
                user_id=user_id,
                account_id=self.account_id,
                level=level,
                max_level=level,
                value_pct=pct,
                max_value_pct=pct,
                threshold_pct=threshold,
                opened_at=broker_time,
                sync_id=sync_id,
                equity=equity,
                peak_equity=peak,
                below_min_equity=below_min,
            )
            self.drawdown_alert = alert
            transition = "opened"
        elif level != Level.OK and alert is not None:  # (alert is never None here: the branch above opened it)
            transition = _apply_episode(alert, level=level, value=pct, threshold=threshold, now=broker_time)
            alert.equity, alert.peak_equity, alert.below_min_equity = equity, peak, below_min
        elif alert is not None:
            alert.resolved_at = broker_time
            alert.value_pct, alert.equity, alert.peak_equity, alert.below_min_equity = pct, equity, peak, below_min
            self.drawdown_alert = None
            transition = "resolved"
        if alert is not None:
            self._changed(alert)
        if transition:
            reported = alert.max_level if transition == "resolved" and alert is not None else level
            outcome.transitions.append(("drawdown", transition, reported))
            outcome.events.append(
                _guard_event(
                    transition=transition,
                    message=f"drawdown {transition}: {level} at {pct} % (peak {peak}, equity {equity})",
                    details={
                        "kind": "drawdown",
                        "transition": transition,
                        "level": level,
                        "drawdown_pct": _s(pct),
                        "threshold_pct": _s(threshold),
                        "equity": _s(equity),
                        "peak_equity": _s(peak),
                        "below_min_equity": below_min,
                        **raw,
                    },
                )
            )
        return {
            "level": level,
            "equity": _s(equity),
            "balance": _s(balance),
            "currency": account["currency"],
            "peak_equity": _s(peak),
            "drawdown_pct": _s(pct),
            "warning_pct": _s(config.drawdown_warning_pct),
            "critical_pct": _s(config.drawdown_critical_pct),
            "min_equity": _s(config.min_equity),
            "below_min_equity": below_min,
            "should_close_all": level == Level.CRITICAL,
            "cash_flow": _s(flow),
            "equity_index": _s(index.index),
            **raw,
        }

    def _balance_continuity(self, *, account, new_deals, digits: int, outcome: GuardOutcome) -> None:
        """Δbalance against the money of the new deals (``guards.cashflow.balance_check``): a residue above
        one unit of the account's smallest currency unit is an ``unexplained_balance_change`` event."""
        state = self.state
        if state is None:  # the drawdown step creates the state earlier in the same evaluation
            return
        previous, balance = state.balance, account["balance"]
        if previous != balance:
            state.balance = balance
            self.state_dirty = True
        if previous is None:
            return
        check = balance_check(previous_balance=previous, balance=balance, new_deals=new_deals, currency_digits=digits)
        if check.ok:
            return
        outcome.events.append(
            GuardEvent(
                kind="divergence",
                status=WARNING,
                divergence_reason=UNEXPLAINED_BALANCE_CHANGE,
                message=(
                    f"unexplained balance change: {check.actual} instead of {check.expected} "
                    f"(residue {check.residue} {account['currency']})"
                ),
                details={"reason": UNEXPLAINED_BALANCE_CHANGE, "currency": account["currency"], **check.details()},
            )
        )

    def _calendar(self, symbol: str, instrument: Instrument | None, *, server_utc_offset_minutes: int) -> Calendar:
        """The symbol's trading sessions, in order: the sync's (``Instrument.sessions``, the account's trade
        server), the operator's ``InstrumentGuardSetting.sessions``, the default calendar of its class.
        Both stored lists are on the account's server clock (``server_utc_offset_minutes``)."""
        sessions = instrument.sessions if instrument is not None else None
        if not sessions:
            sessions = self._session_overrides().get(symbol)
        if sessions:
            return calendar_from_symbol_info(sessions, server_utc_offset_seconds=server_utc_offset_minutes * 60)
        return default_calendar(symbol, calc_mode=instrument.trade_calc_mode if instrument is not None else None)

    def _session_overrides(self) -> dict[str, Any]:
        """The account's ``InstrumentGuardSetting.sessions`` by symbol: read with the instruments by the sync
        (``InstrumentGuards.load``), else one query per ingestion, on first need."""
        if self.session_overrides is None:
            rows = InstrumentGuardSetting.objects.filter(account_id=self.account_id, sessions__isnull=False)
            self.session_overrides = dict(rows.values_list("symbol", "sessions"))
        return self.session_overrides

    def _market(
        self,
        *,
        sync_id,
        broker_time,
        quotes,
        previous_quotes,
        instruments,
        held_symbols,
        outcome: GuardOutcome,
        server_utc_offset_minutes: int = 0,
    ) -> list[dict[str, Any]]:
        """Open/escalate/update/resolve the market alerts of the quoted symbols; others are left as they are.

        Returns every open alert after the sync with ``should_close_positions`` (critical on a held symbol).
        """
        open_alerts = self.market_alerts
        for quote in quotes:
            symbol = quote["symbol"]
            instrument, previous = instruments.get(symbol), previous_quotes.get(symbol)
            measures = measure_quote(
                quote=quote,
                previous=previous,
                instrument=instrument,
                broker_time=broker_time,
                config=self.config,
                rules=self.instrument_guards.guard(symbol, instrument),
                calendar=self._calendar(symbol, instrument, server_utc_offset_minutes=server_utc_offset_minutes),
            )
            # the spread joins the symbol's rolling window after it was measured against the window before it
            if previous is None or (quote["time"], quote["bid"], quote["ask"]) != (previous.time, previous.bid,
                                                                                  previous.ask):  # fmt: skip
                self.instrument_guards.record(symbol, bid=quote["bid"], ask=quote["ask"], instrument=instrument)
            for condition, m in measures.items():
                alert = open_alerts.get((symbol, condition))
                transition = None
                if m.level != Level.OK and alert is None:
                    alert = MarketAlert(
                        user_id=self.user_id,
                        account_id=self.account_id,
                        symbol=symbol,
                        condition=condition,
                        level=m.level,
                        max_level=m.level,
                        value_pct=m.value_pct,
                        max_value_pct=m.value_pct,
                        threshold_pct=m.threshold_pct,
                        opened_at=broker_time,
                        sync_id=sync_id,
                    )
                    open_alerts[(symbol, condition)] = alert
                    transition = "opened"
                elif m.level != Level.OK:
                    transition = _apply_episode(
                        alert, level=m.level, value=m.value_pct, threshold=m.threshold_pct, now=broker_time
                    )
                elif alert is not None:
                    alert.resolved_at = broker_time
                    alert.value_pct = m.value_pct
                    del open_alerts[(symbol, condition)]
                    transition = "resolved"
                if alert is None:
                    continue
                alert.bid, alert.ask = m.bid, m.ask
                if m.reference_price is not None:
                    alert.reference_price = m.reference_price
                if m.value_pips is not None:
                    alert.value_pips = m.value_pips
                if m.age_seconds is not None:
                    alert.age_seconds = m.age_seconds
                self._changed(alert)
                if transition:
                    level = m.level if transition != "resolved" else alert.max_level
                    outcome.transitions.append(("market", transition, level))
                    outcome.events.append(
                        _guard_event(
                            transition=transition,
                            symbol=symbol,
                            message=f"{condition} {transition} on {symbol}: {m.level} at {m.value_pct} %",
                            details={
                                "kind": "market",
                                "condition": condition,
                                "transition": transition,
                                "level": m.level,
                                "value_pct": _s(m.value_pct),
                                "threshold_pct": _s(m.threshold_pct),
                                "value_pips": _s(m.value_pips),
                                "age_seconds": m.age_seconds,
                                "bid": _s(m.bid),
                                "ask": _s(m.ask),
                                "reference_price": _s(m.reference_price),
                                **({"value_pct_raw": m.raw_pct} if m.raw_pct else {}),
                                **_spread_details(m.spread),
                            },
                        )
                    )
        return [
            {
                "symbol": a.symbol,
                "condition": a.condition,
                "level": a.level,
                "value_pct": _s(a.value_pct),
                "threshold_pct": _s(a.threshold_pct),
                "value_pips": _s(a.value_pips),
                "age_seconds": a.age_seconds,
                "should_close_positions": a.level == Level.CRITICAL and a.symbol in held_symbols,
            }
            for a in sorted(open_alerts.values(), key=lambda a: (a.symbol, a.condition))
        ]

    def flush(self, writes: WriteBatch | None = None) -> None:
        """Write the peak, the snapshots and the alerts' final states (existing alerts before new ones, so a
        resolved episode never collides with the next one on the "one open alert" constraints).

        The peak's UPDATE, the snapshots and the alert upserts are queued in ``writes`` (the caller's
        batch, sent with its other writes: ``tradingsite.db.WriteBatch``); without one they are sent here.
        """
        batch = writes if writes is not None else WriteBatch()
        if self.state is not None and self.state_dirty:
            if self.state.pk is None:
                self.state.save(force_insert=True)
            else:
                batch.update(self.state, STATE_FIELDS)
        self._flush_rules()
        self.instrument_guards.flush(batch)
        batch.insert(EquitySnapshot, self.snapshots)
        for model, fields in ((DrawdownAlert, DRAWDOWN_ALERT_FIELDS), (MarketAlert, MARKET_ALERT_FIELDS)):
            alerts: list[Any] = [a for a in self.changed_alerts.values() if isinstance(a, model)]
            existing = [a for a in alerts if a.pk is not None]
            new = [a for a in alerts if a.pk is None]
            # An upsert on the primary key: one statement, no per-field CASE expressions.
            batch.insert(model, existing, unique_fields=["pk"], update_fields=fields)
            if new:
                batch.execute()  # the existing episodes' ends first
                model.objects.bulk_create(new)
        if writes is None:
            batch.execute()
        self.changed_alerts.clear()
        self.snapshots = []
        self.state_dirty = False


STATE_FIELDS = [
    "peak_equity",
    "peak_equity_at",
    "equity_index",
    "equity_index_peak",
    "index_equity",
    "balance",
    "margin_guard_level",
    "margin_at_or_under_stop_out",
    "updated_at",
]
_ALERT_FIELDS = [
    "level",
    "max_level",
    "value_pct",
    "max_value_pct",
    "threshold_pct",
    "escalated_at",
    "resolved_at",
    "updated_at",
]
DRAWDOWN_ALERT_FIELDS = [*_ALERT_FIELDS, "equity", "peak_equity", "below_min_equity"]
MARKET_ALERT_FIELDS = [*_ALERT_FIELDS, "bid", "ask", "reference_price", "value_pips", "age_seconds"]


def record_guard_transitions(transitions: Iterable[tuple[str, str, str]]) -> None:
    """Count guard transitions in Prometheus (call after commit)."""
    for kind, transition, level in transitions:
        GUARD_TRANSITIONS.labels(kind=kind, transition=transition, level=level).inc()


# --------------------------------------------------------------------------------------------
# Peak reset (admin action)
# --------------------------------------------------------------------------------------------
@transaction.atomic
def peak_equity_reset(*, account_id: int, actor: str, record: Callable[..., None] | None = None) -> GuardState:
    """Set the peak to the latest equity (the admin's "reset peak equity"): the index peak becomes the
    current index and ``peak_equity`` the latest equity.

    The drawdown becomes 0 %: an open drawdown alert is resolved, unless the equity is below
    ``min_equity`` (still critical), in which case it stays open at that level. Passes a ``guard``
    event naming ``actor`` with the old and new peak to ``record(account_id=, user_id=, event=)``
    inside this transaction: by default the audit trail's writer named by the ``GUARD_EVENT_RECORDER``
    setting (the app above guards that keeps the log; guards never imports it). Bumps the user's cache
    generation after commit. Raises ``ValidationError`` before the first sync.
    """
    user_id = Account.objects.values_list("user_id", flat=True).get(pk=account_id)
    _lock_user_and_account(user_id, account_id)  # the lock order of every writer
    snapshot = EquitySnapshot.objects.filter(account_id=account_id).order_by("-created_at", "-id").first()
    state = GuardState.objects.filter(account_id=account_id).first()
    if snapshot is None or state is None:
        raise ValidationError({"peak_equity": "No equity snapshot yet: nothing to reset before the first sync."})
    config = guard_config_get_or_create(user_id=user_id, account_id=account_id)
    now = timezone.now()
    old_peak, new_peak = state.peak_equity, max(snapshot.equity, Decimal("0"))
    state.peak_equity, state.peak_equity_at, state.peak_reset_at = new_peak, now, now
    state.equity_index_peak = state.equity_index
    state.save(update_fields=["peak_equity", "peak_equity_at", "peak_reset_at", "equity_index_peak", "updated_at"])
    pct = _pct(drawdown_pct(peak=new_peak, equity=snapshot.equity))
    level = drawdown_level(pct=pct, equity=snapshot.equity, config=config)
    alert = DrawdownAlert.objects.filter(account_id=account_id, resolved_at__isnull=True).first()
    transition = None
    if alert is not None and level == Level.OK:
        alert.resolved_at, alert.value_pct, alert.peak_equity = now, pct, new_peak
        alert.save()
        transition = "resolved"
    elif alert is not None:
        alert.level, alert.value_pct, alert.peak_equity = level, pct, new_peak
        alert.threshold_pct = config.drawdown_critical_pct
        alert.save()
    record = record or import_string(settings.GUARD_EVENT_RECORDER)
    record(
        account_id=account_id,
        user_id=user_id,
        event=GuardEvent(
            kind="guard",
            status=SUCCESS,
            message=f"peak equity reset by {actor}: {old_peak} → {new_peak}",
            details={
                "kind": "peak_reset",
                "actor": actor,
                "old_peak": _s(old_peak),
                "new_peak": _s(new_peak),
                "drawdown_pct": _s(pct),
                "level": level,
                "alert_transition": transition,
            },
        ),
    )

    def after_commit() -> None:
        bump_and_warm_user(user_id)
        if transition and alert is not None:  # a transition implies the open alert
            record_guard_transitions([("drawdown", transition, alert.max_level)])

    transaction.on_commit(after_commit)
    return state
