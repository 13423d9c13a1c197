"""dashboard selectors: what the page shows, read through the apps' own selectors (user-scoped)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from guards.selectors import guard_status, guard_thresholds
from positions.models import Position
from positions.selectors import open_positions
from reconciliation.selectors import reconciliation_status


def open_divergences(*, user_id: int, account_id: int | None = None) -> list[Position]:
    """The account's pending/open positions with at least one active divergence reason, newest first."""
    positions = Position.objects.filter(user_id=user_id, status__in=[Position.Status.PENDING, Position.Status.OPEN])
    if account_id is not None:
        positions = positions.filter(account_id=account_id)
    return list(positions.exclude(divergence_reasons=[]).order_by("-created_at", "-id")[:50])


def _distance(limit: Any, value: Any) -> Decimal | None:
    return Decimal(str(limit)) - Decimal(str(value)) if limit is not None and value is not None else None


def dashboard_panels(*, user_id: int, account_id: int | None = None) -> dict[str, Any]:
    """Everything the live panels render for one account: status, positions, guard levels with
    distances, divergences.

    ``guards.drawdown`` gains ``to_warning_pct`` / ``to_critical_pct`` (percentage points of drawdown
    left before each threshold, negative once past it) and ``equity_above_min`` (equity − min_equity,
    account currency).
    """
    guards = guard_status(user_id=user_id, account_id=account_id)
    drawdown = dict(guards.get("drawdown") or {})
    if drawdown:
        drawdown["to_warning_pct"] = _distance(drawdown.get("warning_pct"), drawdown.get("drawdown_pct"))
        drawdown["to_critical_pct"] = _distance(drawdown.get("critical_pct"), drawdown.get("drawdown_pct"))
        min_equity = guard_thresholds(user_id=user_id, account_id=account_id).get("min_equity")
        drawdown["equity_above_min"] = _distance(drawdown.get("equity"), min_equity)
    return {
        "status": reconciliation_status(user_id=user_id, account_id=account_id),
        "positions": open_positions(user_id=user_id, account_id=account_id),
        "guards": {**guards, "drawdown": drawdown},
        "divergences": open_divergences(user_id=user_id, account_id=account_id),
    }
