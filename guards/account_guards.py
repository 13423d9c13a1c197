"""The margin guard, the loss rules and the banded drawdown level inside a sync (``GuardSession``'s mixin).

Kept apart from ``guards.services`` so the sync path's session stays small: :class:`AccountGuardsMixin`
reads its inputs from the session (``user_id``, ``account_id``, ``config``, ``state``, ``snapshots``),
evaluates through the pure modules (:mod:`guards.evaluation`) and appends guard events to the outcome.
Queries: the account's loss rules once per ingestion, and only when ``GuardConfig.initial_capital``
is set (accounts without rules pay nothing); their new state is written in one ``bulk_update``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from guards import evaluation
from guards.cashflow import IndexState
from guards.hysteresis import level_with_hysteresis
from guards.margin import Exposure
from guards.models import EquitySnapshot, GuardConfig, GuardState, Level, LossRule
from positions.valuation import Rate, convert_to_account

HUNDRED = Decimal("100")
MARGIN_LEVEL_QUANTUM = Decimal("0.01")
MARGIN_LEVEL_LIMIT = Decimal(10) ** 17  # EquitySnapshot.margin_level_pct: 20 digits, 2 decimals (with room)
MONEY_LIMIT = Decimal(10) ** 17  # MoneyField: 26 digits, 8 decimals
PCT_LIMIT = Decimal(10) ** 15  # LossRule.distance_pct: 20 digits, 4 decimals


def exposures_of(
    *,
    positions: Iterable[Any],
    instruments: Mapping[str, Any],
    mids: Mapping[str, Decimal],
    account_currency: str,
) -> list[Exposure]:
    """Net lots per symbol of the open positions (buy +, sell −), valued with the instrument and the mids.

    A symbol without instrument, price or conversion rate is left out (its adverse move is unknown).
    """
    net: dict[str, Decimal] = {}
    price: dict[str, Decimal] = {}
    for p in positions:
        net[p.symbol] = net.get(p.symbol, Decimal("0")) + (p.volume if p.side == "buy" else -p.volume)
        if p.price_current is not None:
            price[p.symbol] = p.price_current
    # The quoted instruments as conversion rates, matched by their currencies (positions.valuation).
    rates = [
        Rate(symbol=symbol, base=spec.currency_base.upper(), profit=spec.currency_profit.upper(), mid=mid)
        for symbol, mid in sorted(mids.items())
        if (spec := instruments.get(symbol)) is not None and spec.currency_base and spec.currency_profit
    ]
    exposures = []
    for symbol, lots in net.items():
        instrument = instruments.get(symbol)
        last = mids.get(symbol) or price.get(symbol)
        if instrument is None or last is None:
            continue
        rate, _path = convert_to_account(
            amount=Decimal("1"),
            quote_currency=instrument.currency_profit,
            account_currency=account_currency,
            rates=rates,
        )
        if rate is None:
            continue
        exposures.append(
            Exposure(
                symbol=symbol, net_lots=lots, contract_size=instrument.contract_size, pip_size=instrument.pip_size,
                price=last, rate=rate,
            )
        )  # fmt: skip
    return exposures


def _fitting(value: Decimal, limit: Decimal) -> Decimal | None:
    """``value`` when its column can hold it (|value| < limit), else None (the sync summary keeps the figure)."""
    return value if abs(value) < limit else None


class AccountGuardsMixin:
    """Margin, loss rules and the banded drawdown level for ``guards.services.GuardSession``."""

    _loss_rules: list[LossRule] | None = None
    # Set by GuardSession.__init__ (the session this mixes into).
    user_id: int
    account_id: int
    config: GuardConfig
    state: GuardState | None
    snapshots: list[EquitySnapshot]

    # --- drawdown -------------------------------------------------------------------------------
    def _drawdown_level(self, *, index: IndexState, equity: Decimal, previous: str | None) -> str:
        """The drawdown level on the exact (unrounded) index drawdown, with ``drawdown_hysteresis_pct``
        (at most half the warning threshold, so that the warning level can always be left).

        ``critical`` below ``min_equity`` whatever the drawdown (no band: a money floor is not a measure
        that oscillates with rounding). ``previous``: the open episode's level, or None.
        """
        config = self.config
        if equity < config.min_equity:
            return Level.CRITICAL
        exact = (index.peak - index.index) / index.peak * HUNDRED if index.peak > 0 else Decimal("0")
        return level_with_hysteresis(
            value=exact,
            warning=config.drawdown_warning_pct,
            critical=config.drawdown_critical_pct,
            previous=previous,
            band=min(config.drawdown_hysteresis_pct, config.drawdown_warning_pct / 2),
        )

    # --- margin and rules -----------------------------------------------------------------------
    def _account_guards(
        self,
        *,
        broker_time: datetime,
        account: Mapping[str, Any],
        positions: Iterable[Any],
        instruments: Mapping[str, Any],
        mids: Mapping[str, Decimal],
        outcome: Any,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Evaluate the margin guard and the loss rules; returns the summary's ``margin`` and ``rules``."""
        return (
            self._margin(account=account, positions=positions, instruments=instruments, mids=mids, outcome=outcome),
            self._rules(broker_time=broker_time, account=account, outcome=outcome),
        )

    def _margin(self, *, account, positions, instruments, mids, outcome) -> dict[str, Any]:
        from guards.services import _guard_event  # the session's event type (guards.services imports this module)

        config, state = self.config, self.state
        assert state is not None, "the drawdown step creates the guard state first"
        exposures = exposures_of(
            positions=positions, instruments=instruments, mids=mids, account_currency=account["currency"]
        )
        summary, status, level, event = evaluation.evaluate_margin(
            account=account,
            previous_level=state.margin_guard_level,
            warning_buffer_pct=config.margin_warning_buffer_pct,
            critical_distance_pct=config.margin_critical_distance_pct,
            hysteresis_pct=config.margin_hysteresis_pct,
            exposures=exposures,
        )
        state.margin_guard_level = level
        state.margin_at_or_under_stop_out = status.at_or_under_stop_out
        snapshot = self.snapshots[-1]
        raw = status.margin_level_pct
        snapshot.margin_level_pct = (
            raw.quantize(MARGIN_LEVEL_QUANTUM, rounding=ROUND_HALF_UP)
            if raw is not None and raw < MARGIN_LEVEL_LIMIT
            else None
        )
        snapshot.margin_guard_level = level
        snapshot.margin_details = {k: v for k, v in summary.items() if k not in ("level", "should_close_all")}
        if event is not None:
            outcome.transitions.append(("margin", event.transition, event.level))
            outcome.events.append(
                _guard_event(
                    transition=event.transition,
                    message=event.message,
                    details={**event.details, "kind": "margin", "transition": event.transition, "level": event.level},
                )
            )
        return summary

    def _rules(self, *, broker_time, account, outcome) -> list[dict[str, Any]]:
        from guards.services import _guard_event

        initial = self.config.initial_capital
        if initial is None:
            return []
        if self._loss_rules is None:
            self._loss_rules = list(
                LossRule.objects.filter(user_id=self.user_id, account_id=self.account_id, enabled=True).order_by(
                    "kind", "id"
                )
            )
        rows = self._loss_rules
        summaries, states, events = evaluation.evaluate_rules(
            rules=[(row.as_rule(), row.as_state()) for row in rows],
            now=broker_time,
            balance=account["balance"],
            equity=account["equity"],
            initial_capital=initial,
        )
        for row, new_state, summary in zip(rows, states, summaries, strict=True):
            for name in LossRule.STATE_FIELDS:
                setattr(row, name, getattr(new_state, name))
            row.level = summary["level"]
            row.limit_equity = _fitting(Decimal(summary["limit_equity"]), MONEY_LIMIT)
            row.distance = _fitting(Decimal(summary["distance"]), MONEY_LIMIT)
            row.distance_pct = _fitting(Decimal(summary["distance_pct"]), PCT_LIMIT)
            row.next_reset = datetime.fromisoformat(summary["next_reset"]) if summary["next_reset"] else None
            row.evaluated_at = broker_time
        for event in events:
            outcome.transitions.append(("loss_rule", event.transition, event.level))
            outcome.events.append(
                _guard_event(
                    transition="resolved" if event.transition == "resolved" else "opened",
                    message=event.message,
                    details={
                        **event.details,
                        "rule_kind": event.details["kind"],
                        "kind": "loss_rule",
                        "transition": event.transition,
                        "level": event.level,
                    },
                )
            )
        return summaries

    def _flush_rules(self) -> None:
        """Write the rules' state and latest result (one statement)."""
        if self._loss_rules:
            LossRule.objects.bulk_update(
                self._loss_rules, [*LossRule.STATE_FIELDS, *LossRule.RESULT_FIELDS], batch_size=100
            )
