"""Prop-firm loss rules (pure): daily and maximum loss limits on equity, with firm presets.

A rule says: equity may not fall below (or reach) a *limit equity* = anchor − loss amount, where
- the **anchor** is the initial capital, the value at the start of the trading day (balance, equity or
  the higher of them: the rule's **basis**), or the highest end-of-day balance (never below the
  initial capital);
- the **loss amount** is a fixed amount of money, or a percentage of the initial capital or of the
  anchor;
- the trading day starts at the rule's **reset time** in its IANA **time zone** (zoneinfo, so
  "midnight CE(S)T" follows daylight saving time).
Equity is always the measured value: every firm below counts floating P&L, commissions and swaps.

Units: money in the account currency; percentages 0–100; times aware UTC (local only for the reset).
A breach opens one episode per trading day (``breached_at``); it stays until the next reset, since
the firms treat a touched limit as violated even if equity recovers.

Presets (``PRESETS``) carry the published figures and their sources; firms change rules, so the
``source`` of each preset names the page and what it said when this module was written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guards.models import Level

HUNDRED = Decimal("100")

DAILY_LOSS = "daily_loss"
MAX_LOSS = "max_loss"
KINDS = (DAILY_LOSS, MAX_LOSS)

ANCHOR_INITIAL = "initial_capital"
ANCHOR_DAY_START = "day_start"
ANCHOR_HIGHEST_EOD_BALANCE = "highest_eod_balance"
ANCHORS = (ANCHOR_INITIAL, ANCHOR_DAY_START, ANCHOR_HIGHEST_EOD_BALANCE)

BASIS_BALANCE = "balance"
BASIS_EQUITY = "equity"
BASIS_MAX = "max_balance_equity"
BASES = (BASIS_BALANCE, BASIS_EQUITY, BASIS_MAX)

PERCENT_OF_INITIAL = "initial_capital"
PERCENT_OF_ANCHOR = "anchor"
PERCENT_OF = (PERCENT_OF_INITIAL, PERCENT_OF_ANCHOR)

# A rule reads ``warning`` when no more than this share of its loss amount is left (20 %: with FTMO's
# 5 000 daily amount on 100 000, the warning comes 1 000 above the limit). A product choice, settable
# per rule (``warning_remaining_pct``).
DEFAULT_WARNING_REMAINING_PCT = Decimal("20")


@dataclass(frozen=True)
class LossRule:
    """One loss rule. Exactly one of ``amount`` (money) and ``percent`` (0 < p ≤ 100) is set.

    ``inclusive``: True when equity *at* the limit is already a breach ("reaches or falls below"),
    False when only equity *below* it is ("may not drop below").
    """

    name: str
    kind: str
    anchor: str
    basis: str = BASIS_BALANCE
    amount: Decimal | None = None
    percent: Decimal | None = None
    percent_of: str = PERCENT_OF_INITIAL
    reset_time: time = time(0, 0)
    timezone: str = "UTC"
    inclusive: bool = False
    warning_remaining_pct: Decimal = DEFAULT_WARNING_REMAINING_PCT
    source: str = ""

    def errors(self) -> dict[str, str]:
        """Field errors of this rule ({} when valid), for the API and admin validation."""
        errors: dict[str, str] = {}
        if self.kind not in KINDS:
            errors["kind"] = f"One of {', '.join(KINDS)}."
        if self.anchor not in ANCHORS:
            errors["anchor"] = f"One of {', '.join(ANCHORS)}."
        if self.basis not in BASES:
            errors["basis"] = f"One of {', '.join(BASES)}."
        if self.percent_of not in PERCENT_OF:
            errors["percent_of"] = f"One of {', '.join(PERCENT_OF)}."
        if (self.amount is None) == (self.percent is None):
            errors["amount"] = "Set exactly one of amount (money) and percent."
        elif self.amount is not None and self.amount <= 0:
            errors["amount"] = "Must be greater than 0 (account currency)."
        elif self.percent is not None and not 0 < self.percent <= 100:
            errors["percent"] = "Must be greater than 0 and at most 100 (percent, 0–100)."
        if not 0 <= self.warning_remaining_pct <= 100:
            errors["warning_remaining_pct"] = "Must be between 0 and 100 (percent of the loss amount)."
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory or an overlong name
            errors["timezone"] = "Unknown IANA time zone (for example Europe/Prague)."
        return errors


@dataclass(frozen=True)
class RuleState:
    """What a rule remembers between syncs (stored per account and rule).

    ``day_start_at``: the reset instant (UTC) that opened the current trading day; ``day_start_*``:
    balance and equity at that reset; ``highest_eod_balance``: highest balance at any reset seen;
    ``last_*``: the latest sync's values (they become the next day's start values at the reset);
    ``breached_at``: the current trading day's breach, if any.
    """

    day_start_at: datetime | None = None
    day_start_balance: Decimal | None = None
    day_start_equity: Decimal | None = None
    highest_eod_balance: Decimal | None = None
    last_balance: Decimal | None = None
    last_equity: Decimal | None = None
    breached_at: datetime | None = None


@dataclass(frozen=True)
class RuleResult:
    """One rule after one sync: ``rules[]`` of ``guards/status``.

    ``distance_money`` = equity − limit_equity (negative past the limit); ``distance_pct`` = that
    distance as percent of equity; ``next_reset`` None when the limit never moves (static maximum loss).
    """

    name: str
    kind: str
    level: str
    limit_equity: Decimal
    loss_amount: Decimal
    distance_money: Decimal
    distance_pct: Decimal
    next_reset: datetime | None
    breached_at: datetime | None
    trading_day_start: datetime | None


def last_reset(*, now: datetime, reset_time: time, timezone: str) -> datetime:
    """The latest reset instant at or before ``now`` (aware UTC): ``reset_time`` on the calendar of ``timezone``."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), reset_time, tzinfo=tz)
    if candidate > local:
        candidate = datetime.combine(local.date() - timedelta(days=1), reset_time, tzinfo=tz)
    return candidate.astimezone(UTC)


def next_reset(*, now: datetime, reset_time: time, timezone: str) -> datetime:
    """The first reset instant strictly after ``now`` (aware UTC)."""
    tz = ZoneInfo(timezone)
    local_last = last_reset(now=now, reset_time=reset_time, timezone=timezone).astimezone(tz)
    return datetime.combine(local_last.date() + timedelta(days=1), reset_time, tzinfo=tz).astimezone(UTC)


def roll(*, rule: LossRule, state: RuleState, now: datetime, balance: Decimal, equity: Decimal) -> RuleState:
    """Advance ``state`` to the trading day containing ``now`` and record this sync's values.

    At a reset the start values are the last balance and equity seen before it (exact when no deal
    falls between that sync and the reset); the end-of-day balance joins ``highest_eod_balance``
    and the day's breach episode ends. The first evaluation ever takes this sync's values as the
    day's start (a fresh challenge starts at its initial capital; monitoring started mid-day cannot
    know the earlier values).
    """
    day_start = last_reset(now=now, reset_time=rule.reset_time, timezone=rule.timezone)
    if state.day_start_at is None:
        state = RuleState(day_start_at=day_start, day_start_balance=balance, day_start_equity=equity)
    elif day_start > state.day_start_at:
        eod_balance = state.last_balance if state.last_balance is not None else balance
        eod_equity = state.last_equity if state.last_equity is not None else equity
        highest = eod_balance if state.highest_eod_balance is None else max(state.highest_eod_balance, eod_balance)
        state = RuleState(
            day_start_at=day_start,
            day_start_balance=eod_balance,
            day_start_equity=eod_equity,
            highest_eod_balance=highest,
        )
    return replace(state, last_balance=balance, last_equity=equity)


def anchor_value(*, rule: LossRule, state: RuleState, initial_capital: Decimal) -> Decimal:
    """The value the loss amount is subtracted from (see the module docstring)."""
    if rule.anchor == ANCHOR_INITIAL:
        return initial_capital
    if rule.anchor == ANCHOR_HIGHEST_EOD_BALANCE:
        highest = state.highest_eod_balance
        return initial_capital if highest is None else max(initial_capital, highest)
    balance = state.day_start_balance if state.day_start_balance is not None else initial_capital
    equity = state.day_start_equity if state.day_start_equity is not None else balance
    if rule.basis == BASIS_EQUITY:
        return equity
    if rule.basis == BASIS_MAX:
        return max(balance, equity)
    return balance


def loss_amount(*, rule: LossRule, anchor: Decimal, initial_capital: Decimal) -> Decimal:
    """The rule's amount, or percent × (initial capital or anchor) / 100."""
    if rule.amount is not None:
        return rule.amount
    if rule.percent is None:
        raise ValueError(f"loss rule {rule.name!r} has neither an amount nor a percent")  # LossRule.clean refuses it
    base = anchor if rule.percent_of == PERCENT_OF_ANCHOR else initial_capital
    return base * rule.percent / HUNDRED


def is_breach(*, rule: LossRule, equity: Decimal, limit_equity: Decimal) -> bool:
    """equity ≤ limit when the rule is inclusive, equity < limit otherwise."""
    return equity <= limit_equity if rule.inclusive else equity < limit_equity


def evaluate(
    *, rule: LossRule, state: RuleState, now: datetime, balance: Decimal, equity: Decimal, initial_capital: Decimal
) -> tuple[RuleResult, RuleState]:
    """Evaluate one rule for one sync; returns its result and the state to store.

    Levels: ``critical`` once the limit is breached in this trading day (until the next reset);
    ``warning`` when the distance to the limit is at most ``warning_remaining_pct`` % of the loss
    amount; else ``ok``.
    """
    state = roll(rule=rule, state=state, now=now, balance=balance, equity=equity)
    anchor = anchor_value(rule=rule, state=state, initial_capital=initial_capital)
    amount = loss_amount(rule=rule, anchor=anchor, initial_capital=initial_capital)
    limit = anchor - amount
    if state.breached_at is None and is_breach(rule=rule, equity=equity, limit_equity=limit):
        state = replace(state, breached_at=now)
    distance = equity - limit
    if state.breached_at is not None:
        level = Level.CRITICAL
    elif distance <= amount * rule.warning_remaining_pct / HUNDRED:
        level = Level.WARNING
    else:
        level = Level.OK
    moves = rule.anchor != ANCHOR_INITIAL
    result = RuleResult(
        name=rule.name,
        kind=rule.kind,
        level=level,
        limit_equity=limit,
        loss_amount=amount,
        distance_money=distance,
        distance_pct=distance / equity * HUNDRED if equity > 0 else Decimal("0"),
        next_reset=next_reset(now=now, reset_time=rule.reset_time, timezone=rule.timezone) if moves else None,
        breached_at=state.breached_at,
        trading_day_start=state.day_start_at,
    )
    return result, state


# --------------------------------------------------------------------------------------------
# Presets: published figures, each with its source
# --------------------------------------------------------------------------------------------
FTMO_DAILY_SOURCE = (
    "https://academy.ftmo.com/lesson/maximum-daily-loss — 2-Step: 5 % of the Initial Simulated Capital; "
    "limit = account balance at midnight CE(S)T of the previous day − 5 % of the initial capital "
    "(initial capital on the first day); equity, including floating P/L, commissions and swaps, "
    "cannot drop below it."
)
FTMO_MAX_SOURCE = (
    "https://academy.ftmo.com/?p=47 — Maximum Loss: equity must not drop below 90 % of the initial "
    "account balance at any time (balance 92 000 with a floating loss of 2 001 exceeds it)."
)
FTMO_ONE_STEP_MAX_SOURCE = (
    "https://ftmo.com/au/?p=1671 — 1-Step: limit recalculated every midnight CE(S)T as the highest "
    "end-of-day balance (or the initial capital if higher) − 10 % of the initial capital."
)
THE5ERS_SOURCE = (
    "https://help.the5ers.com/what-is-the-maximum-loss-and-the-maximum-daily-loss-in-the-high-stakes-program"
    " — High Stakes: maximum loss 10 % of the initial balance; daily loss 5 % of the starting equity or "
    "the starting balance of the day (the higher of them) at 5 PM EST / 00:00 UTC+3 server time; "
    "reaching either limit terminates the account."
)
BREAKOUT_DAILY_SOURCE = (
    "https://intercom.help/breakoutprop/en/articles/11647189-what-is-the-maximum-daily-loss-in-a-funded-account"
    " — 1-Step: daily equity limit = balance at 00:30 UTC − 4 % (balance 105 000 → limit 100 800), "
    "recalculated every day at 00:30 UTC."
)
BREAKOUT_MAX_SOURCE = (
    "https://www.breakoutprop.com/program-rules — 1-Step (Classic): static maximum drawdown 6 000 on "
    "100 000 (6 % of the starting balance); an equity limit reached or exceeded is a breach."
)

PRAGUE = "Europe/Prague"
# "5 PM EST or 00:00 UTC+3 server time": the New York close, which moves with US daylight saving
# time exactly as the UTC+2/UTC+3 server clock does.
NEW_YORK = "America/New_York"

PRESETS: dict[str, tuple[LossRule, ...]] = {
    "ftmo_2step": (
        LossRule(
            name="FTMO maximum daily loss", kind=DAILY_LOSS, anchor=ANCHOR_DAY_START, basis=BASIS_BALANCE,
            percent=Decimal("5"), percent_of=PERCENT_OF_INITIAL, reset_time=time(0, 0), timezone=PRAGUE,
            inclusive=False, source=FTMO_DAILY_SOURCE,
        ),
        LossRule(
            name="FTMO maximum loss", kind=MAX_LOSS, anchor=ANCHOR_INITIAL, percent=Decimal("10"),
            percent_of=PERCENT_OF_INITIAL, reset_time=time(0, 0), timezone=PRAGUE, inclusive=False,
            source=FTMO_MAX_SOURCE,
        ),
    ),
    "the5ers_high_stakes": (
        LossRule(
            name="The5ers daily loss", kind=DAILY_LOSS, anchor=ANCHOR_DAY_START, basis=BASIS_MAX,
            percent=Decimal("5"), percent_of=PERCENT_OF_ANCHOR, reset_time=time(17, 0), timezone=NEW_YORK,
            inclusive=True, source=THE5ERS_SOURCE,
        ),
        LossRule(
            name="The5ers maximum loss", kind=MAX_LOSS, anchor=ANCHOR_INITIAL, percent=Decimal("10"),
            percent_of=PERCENT_OF_INITIAL, reset_time=time(17, 0), timezone=NEW_YORK, inclusive=True,
            source=THE5ERS_SOURCE,
        ),
    ),
    "breakout_1step_classic": (
        LossRule(
            name="Breakout maximum daily loss", kind=DAILY_LOSS, anchor=ANCHOR_DAY_START, basis=BASIS_BALANCE,
            percent=Decimal("4"), percent_of=PERCENT_OF_ANCHOR, reset_time=time(0, 30), timezone="UTC",
            inclusive=True, source=BREAKOUT_DAILY_SOURCE,
        ),
        LossRule(
            name="Breakout maximum drawdown", kind=MAX_LOSS, anchor=ANCHOR_INITIAL, percent=Decimal("6"),
            percent_of=PERCENT_OF_INITIAL, reset_time=time(0, 30), timezone="UTC", inclusive=True,
            source=BREAKOUT_MAX_SOURCE,
        ),
    ),
}  # fmt: skip
