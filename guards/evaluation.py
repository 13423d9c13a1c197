"""Margin and loss-rule evaluation for one sync (pure): the summary sections and the events of transitions.

Glue between the sync's account dict and :mod:`guards.margin`, :mod:`guards.loss_rules` and
:mod:`guards.hysteresis`; no database access, so the sync path (``guards.services.GuardSession``)
calls it and turns the returned :class:`GuardEvent` objects into its log rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from accounts.fields import trim_money
from guards import loss_rules, margin
from guards.hysteresis import level_with_hysteresis
from guards.models import LEVEL_RANK, Level

# When the sync does not send the broker's levels: the typical retail levels, 100 % margin call and
# 50 % stop-out (percent mode). The summary says ``levels_source: "default"`` so nobody mistakes them
# for the broker's.
DEFAULT_SO_CALL = Decimal("100")
DEFAULT_SO_SO = Decimal("50")
DEFAULT_MARGIN_HYSTERESIS_PCT = Decimal("5")  # margin-level points; see guards.hysteresis


PCT_QUANTUM = Decimal("0.0001")


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _pct(value: Decimal | None) -> str | None:
    """A percentage as a string with 4 decimals (half-up)."""
    return None if value is None else str(value.quantize(PCT_QUANTUM, rounding=ROUND_HALF_UP))


def _money(value: Decimal | None) -> str | None:
    """Money as a string with its significant decimals, never fewer than 2 (``accounts.fields.trim_money``)."""
    return None if value is None else str(trim_money(value))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class GuardEvent:
    """A guard transition to log: ``kind`` (``margin`` or ``loss_rule``), ``transition`` (``opened``,
    ``escalated``, ``resolved``, ``breached``), the ``level`` reported, a message and JSON details."""

    kind: str
    transition: str
    level: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def transition_between(previous: str | None, level: str) -> str | None:
    """``opened`` (ok → not ok), ``escalated`` (level rose), ``resolved`` (back to ok), else None."""
    before = previous or Level.OK
    if before == level:
        return None
    if before == Level.OK:
        return "opened"
    if level == Level.OK:
        return "resolved"
    return "escalated" if LEVEL_RANK[level] > LEVEL_RANK[before] else None


def evaluate_margin(
    *,
    account: Mapping[str, Any],
    previous_level: str | None,
    warning_buffer_pct: Decimal = margin.DEFAULT_WARNING_BUFFER_PCT,
    critical_distance_pct: Decimal = margin.DEFAULT_CRITICAL_DISTANCE_PCT,
    hysteresis_pct: Decimal = DEFAULT_MARGIN_HYSTERESIS_PCT,
    exposures: Iterable[margin.Exposure] = (),
) -> tuple[dict[str, Any], margin.MarginStatus, str, GuardEvent | None]:
    """The margin section of a sync: returns (summary, raw status, level after hysteresis, event or None).

    ``account`` carries ``equity``, ``margin`` and optionally ``margin_level``, ``margin_so_mode``,
    ``margin_so_call``, ``margin_so_so`` (``account_info()`` names; the defaults above when absent).
    The summary's ``should_close_all`` is True at ``critical``.
    """
    sent = account.get("margin_so_call") is not None and account.get("margin_so_so") is not None
    status = margin.margin_status(
        equity=account["equity"],
        margin=account.get("margin") or Decimal("0"),
        so_mode=account.get("margin_so_mode") or margin.SO_MODE_PERCENT,
        so_call=account["margin_so_call"] if sent else DEFAULT_SO_CALL,
        so_so=account["margin_so_so"] if sent else DEFAULT_SO_SO,
        reported_level=account.get("margin_level"),
        warning_buffer_pct=warning_buffer_pct,
        critical_distance_pct=critical_distance_pct,
    )
    level: str = Level.OK
    if status.margin_level_pct is not None and status.warning_at_pct is not None and status.critical_at_pct is not None:
        level = level_with_hysteresis(
            value=status.margin_level_pct,
            warning=status.warning_at_pct,
            critical=status.critical_at_pct,
            previous=previous_level,
            band=hysteresis_pct,
            higher_is_worse=False,
        )
    move = None
    if status.distance_money is not None:
        move = margin.adverse_move_pips(distance_money=status.distance_money, exposures=exposures)
    summary = {
        "level": level,
        "margin_level_pct": _pct(status.margin_level_pct),
        "margin_call_level_pct": _pct(status.call_level_pct),
        "stop_out_level_pct": _pct(status.stop_out_level_pct),
        "levels_source": "broker" if sent else "default",
        "stop_out_equity": _money(status.stop_out_equity),
        "distance_to_stop_out": _money(status.distance_money),
        "distance_to_stop_out_pct": _pct(status.distance_pct),
        "adverse_move": None
        if move is None
        else {"symbol": move.symbol, "pips": _pct(move.pips), "price_move": _s(move.price_move.normalize())},
        "should_close_all": level == Level.CRITICAL,
    }
    transition = transition_between(previous_level, level)
    event = None
    if transition:
        reported = level if transition != "resolved" else (previous_level or Level.OK)
        event = GuardEvent(
            kind="margin",
            transition=transition,
            level=reported,
            message=f"margin {transition}: {level} at margin level {_s(status.margin_level_pct)} %",
            details={k: v for k, v in summary.items() if k not in ("adverse_move", "should_close_all")},
        )
    return summary, status, level, event


def rule_summary(result: loss_rules.RuleResult) -> dict[str, Any]:
    """One entry of ``rules[]``: limit equity, distance in money and %, next reset, breached_at."""
    return {
        "name": result.name,
        "kind": result.kind,
        "level": result.level,
        "limit_equity": _money(result.limit_equity),
        "loss_amount": _money(result.loss_amount),
        "distance": _money(result.distance_money),
        "distance_pct": _pct(result.distance_pct),
        "next_reset": _time(result.next_reset),
        "breached_at": _time(result.breached_at),
        "trading_day_start": _time(result.trading_day_start),
        "should_close_all": result.level == Level.CRITICAL,
    }


def evaluate_rules(
    *,
    rules: Iterable[tuple[loss_rules.LossRule, loss_rules.RuleState]],
    now: datetime,
    balance: Decimal,
    equity: Decimal,
    initial_capital: Decimal,
) -> tuple[list[dict[str, Any]], list[loss_rules.RuleState], list[GuardEvent]]:
    """Evaluate every rule; returns the ``rules[]`` summaries, the new states (same order) and the events.

    A breach (``breached_at`` set by this sync) is a ``breached`` event at ``critical``; the next trading
    day's first evaluation ends that episode with a ``resolved`` event. Warnings are shown, not logged.
    """
    summaries, states, events = [], [], []
    for rule, state in rules:
        before = state.breached_at
        result, new_state = loss_rules.evaluate(
            rule=rule, state=state, now=now, balance=balance, equity=equity, initial_capital=initial_capital
        )
        summaries.append(rule_summary(result))
        states.append(new_state)
        transition = None
        if result.breached_at is not None and result.breached_at != before:
            transition = "breached"
        elif before is not None and result.breached_at is None:
            transition = "resolved"
        if transition:
            events.append(
                GuardEvent(
                    kind="loss_rule",
                    transition=transition,
                    level=Level.CRITICAL,
                    message=(
                        f"{rule.name} {transition}: equity {equity}, limit {result.limit_equity}"
                        if transition == "breached"
                        else f"{rule.name}: new trading day, limit {result.limit_equity}"
                    ),
                    details={k: _s(v) for k, v in rule_summary(result).items() if k != "should_close_all"},
                )
            )
    return summaries, states, events
