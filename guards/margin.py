"""Margin guard (pure): margin level, margin call and stop-out, distance to stop-out, adverse move in pips.

Units: money in the account (deposit) currency, margin levels in percent (101.05 means 101.05 %),
prices in the instrument's quote currency. Field names follow MT5's ``account_info()``: ``equity``,
``margin``, ``margin_level``, ``margin_so_mode``, ``margin_so_call``, ``margin_so_so``.

Sources:
- margin level = equity / margin × 100, reported as 0 when no margin is used; the broker warns at
  ``margin_so_call`` and starts closing positions at ``margin_so_so`` (MQL5 reference, account
  properties: ACCOUNT_MARGIN_LEVEL, ACCOUNT_MARGIN_SO_CALL, ACCOUNT_MARGIN_SO_SO).
- ``margin_so_mode`` (ENUM_ACCOUNT_STOPOUT_MODE): 0 PERCENT, the two levels are margin levels in
  percent; 1 MONEY, they are amounts in the deposit currency (https://docs.mql4.com/account/accountstopoutmode:
  "0 - calculation of percentage ratio between margin and equity; 1 - comparison of the free margin level
  to the absolute value"). In MONEY mode this module compares **equity** with the amount, as the MT5
  terminal's account properties describe the levels; an operator whose broker compares free margin
  instead should set a larger ``critical_distance_pct``.

Every comparison is made in margin-level points: in MONEY mode a money level L is converted to the
margin level it corresponds to at the current margin, L / margin × 100, so one configuration (buffer
above the call level, distance above the stop-out level) serves both modes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from guards.models import Level

HUNDRED = Decimal("100")
ZERO = Decimal("0")

SO_MODE_PERCENT = 0
SO_MODE_MONEY = 1

# Defaults of the two user-settable margin thresholds (GuardConfig fields of the same names).
# Warning 10 points above the broker's margin-call level: the trader hears of it before the broker's
# own call (100 % on typical retail accounts), i.e. while equity can still fall ~9 % before the call.
DEFAULT_WARNING_BUFFER_PCT = Decimal("10")
# Critical 20 points above the stop-out level: with a 50 % stop-out the account is critical at a
# 70 % margin level, when equity is 20 / 70 ≈ 28.6 % away from the broker closing positions.
DEFAULT_CRITICAL_DISTANCE_PCT = Decimal("20")


def margin_level_pct(*, equity: Decimal, margin: Decimal, reported: Decimal | None = None) -> Decimal | None:
    """Margin level in percent: the broker's ``margin_level`` when sent and positive, else equity / margin × 100.

    Returns ``None`` when no margin is used (margin ≤ 0): MT5 then reports 0, which does not mean
    "at stop-out" but "no exposure", so the guard has nothing to measure.
    """
    if margin <= 0:
        return None
    if reported is not None and reported > 0:
        return reported
    return equity / margin * HUNDRED


def level_as_margin_pct(*, value: Decimal, so_mode: int, margin: Decimal) -> Decimal:
    """A margin-call or stop-out level of either mode expressed as a margin level in percent.

    PERCENT mode: the value itself. MONEY mode: the equity amount ``value`` as a margin level at the
    current margin, value / margin × 100 (``margin`` must be positive).
    """
    if so_mode == SO_MODE_MONEY:
        return value / margin * HUNDRED
    return value


def equity_at_margin_pct(*, margin_pct: Decimal, margin: Decimal) -> Decimal:
    """The equity at which the margin level equals ``margin_pct``: margin × margin_pct / 100."""
    return margin * margin_pct / HUNDRED


@dataclass(frozen=True)
class MarginStatus:
    """The margin guard's measure for one account snapshot.

    ``margin_level_pct`` None means no margin in use (level ``ok``, nothing else measured).
    ``call_level_pct`` / ``stop_out_level_pct``: the broker's levels as margin levels (percent).
    ``stop_out_equity``: equity at which stop-out starts (account currency).
    ``distance_money``: equity − stop_out_equity; ``distance_pct``: that distance as percent of equity
    (how much of the equity may still be lost before stop-out; ≤ 0 means at or past it).
    """

    level: str
    margin_level_pct: Decimal | None
    call_level_pct: Decimal | None = None
    stop_out_level_pct: Decimal | None = None
    stop_out_equity: Decimal | None = None
    distance_money: Decimal | None = None
    distance_pct: Decimal | None = None
    warning_at_pct: Decimal | None = None
    critical_at_pct: Decimal | None = None

    @property
    def at_or_under_stop_out(self) -> bool:
        """True when the margin level is at or under the broker's stop-out level."""
        if self.margin_level_pct is None or self.stop_out_level_pct is None:
            return False
        return self.margin_level_pct <= self.stop_out_level_pct


def margin_status(
    *,
    equity: Decimal,
    margin: Decimal,
    so_mode: int,
    so_call: Decimal,
    so_so: Decimal,
    reported_level: Decimal | None = None,
    warning_buffer_pct: Decimal = DEFAULT_WARNING_BUFFER_PCT,
    critical_distance_pct: Decimal = DEFAULT_CRITICAL_DISTANCE_PCT,
) -> MarginStatus:
    """Evaluate the margin guard.

    Levels (in margin-level points, percent):
    - ``critical`` when margin level ≤ stop-out level + ``critical_distance_pct``;
    - ``warning`` when margin level ≤ margin-call level + ``warning_buffer_pct``;
    - else ``ok``; ``ok`` as well when no margin is used.
    ``so_mode``, ``so_call`` and ``so_so`` are ``account_info()``'s ``margin_so_mode``,
    ``margin_so_call`` and ``margin_so_so``. The distance to stop-out is measured at the current
    margin (see :func:`adverse_move_pips` for the assumption).
    """
    level_pct = margin_level_pct(equity=equity, margin=margin, reported=reported_level)
    if level_pct is None:
        return MarginStatus(level=Level.OK, margin_level_pct=None)
    call_pct = level_as_margin_pct(value=so_call, so_mode=so_mode, margin=margin)
    so_pct = level_as_margin_pct(value=so_so, so_mode=so_mode, margin=margin)
    warning_at, critical_at = call_pct + warning_buffer_pct, so_pct + critical_distance_pct
    if level_pct <= critical_at:
        level = Level.CRITICAL
    elif level_pct <= warning_at:
        level = Level.WARNING
    else:
        level = Level.OK
    so_equity = equity_at_margin_pct(margin_pct=so_pct, margin=margin)
    distance = equity - so_equity
    return MarginStatus(
        level=level,
        margin_level_pct=level_pct,
        call_level_pct=call_pct,
        stop_out_level_pct=so_pct,
        stop_out_equity=so_equity,
        distance_money=distance,
        distance_pct=distance / equity * HUNDRED if equity > 0 else ZERO,
        warning_at_pct=warning_at,
        critical_at_pct=critical_at,
    )


@dataclass(frozen=True)
class Exposure:
    """The net position on one symbol, valued for the adverse-move estimate.

    ``net_lots``: Σ buy volume − Σ sell volume (lots; hedged volume cancels). ``contract_size``: units
    per lot; ``pip_size`` and ``price`` in the quote currency; ``rate``: account-currency value of one
    unit of the quote (profit) currency, 1 when they are the same.
    """

    symbol: str
    net_lots: Decimal
    contract_size: Decimal
    pip_size: Decimal
    price: Decimal
    rate: Decimal = Decimal("1")

    @property
    def notional(self) -> Decimal:
        """|net lots| × contract size × price × rate, in the account currency."""
        return abs(self.net_lots) * self.contract_size * self.price * self.rate

    @property
    def money_per_pip(self) -> Decimal:
        """|net lots| × contract size × pip size × rate: the P&L of a one-pip move, account currency."""
        return abs(self.net_lots) * self.contract_size * self.pip_size * self.rate


@dataclass(frozen=True)
class AdverseMove:
    """The move of ``symbol`` against its net position that would reach stop-out, in pips and price."""

    symbol: str
    pips: Decimal
    price_move: Decimal


def adverse_move_pips(*, distance_money: Decimal, exposures: Iterable[Exposure]) -> AdverseMove | None:
    """The adverse move of the largest net exposure (by notional) that would bring equity to stop-out.

    Formula: pips = distance_money / money_per_pip, with money_per_pip = |net lots| × contract size ×
    pip size × rate; price_move = pips × pip size. Assumptions: every other position's P&L stays
    where it is, the margin stays at its current amount (exact for fixed-margin symbols; the margin
    of FX symbols whose margin currency is not the account's moves slightly with the rate), the
    conversion rate stays where it is, and the symbol moves without gaps (a gap can skip the level).
    Returns None when there is no net exposure; pips ≤ 0 when the account is at or past stop-out.
    """
    candidates = [e for e in exposures if e.net_lots != 0 and e.money_per_pip > 0]
    if not candidates:
        return None
    largest = max(candidates, key=lambda e: (e.notional, e.symbol))
    pips = distance_money / largest.money_per_pip
    return AdverseMove(symbol=largest.symbol, pips=pips, price_move=pips * largest.pip_size)


def is_inferred_stop_out(*, closed_with_deal: bool, last_at_or_under_stop_out: bool | None) -> bool:
    """Whether a position that disappeared from the broker's list should close as ``stop_out`` (inferred).

    True when no deal explains the close and the last margin measure before it was at or under the
    stop-out level (``MarginStatus.at_or_under_stop_out`` of the account's previous sync, kept in
    ``GuardState.margin_at_or_under_stop_out``; None = never measured): the broker closes positions itself
    at ``margin_so_so`` (its deals carry reason 6, SO), so a vanished position in that state is most
    likely one of them. A close with a deal is classified from the deal's reason instead.
    """
    return not closed_with_deal and bool(last_at_or_under_stop_out)
