"""guards selectors: reads of thresholds, equity and alerts, scoped to one user and one of its accounts
(keyword-only, ``user_id`` first, then ``account_id``; None = every account of the user).

:func:`guard_status` is a hot read (``GET guards/status/``): it keeps plain, picklable facts in
the per-user data cache and derives ``system_status`` at read time. It never recomputes a
guard: levels were evaluated and stored by the sync; this only reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.db.models import Field, QuerySet
from django.utils import timezone

from accounts.selectors import each_account
from guards.models import (
    CONFIG_FIELDS,
    DrawdownAlert,
    EquitySnapshot,
    GuardConfig,
    GuardState,
    Level,
    LossRule,
    MarketAlert,
)  # fmt: skip
from guards.services import _pct, drawdown_level, drawdown_pct
from positions.models import Position
from tradingsite.caching import cached_read


def _scoped(queryset: Any, *, user_id: int, account_id: int | None = None) -> QuerySet[Any]:
    queryset = queryset.filter(user_id=user_id)
    return queryset if account_id is None else queryset.filter(account_id=account_id)


def guard_thresholds(*, user_id: int, account_id: int | None = None) -> dict[str, Any]:
    """Return the account's thresholds (``CONFIG_FIELDS`` → value), the model defaults when no config exists yet.

    Percentages 0–100, ``min_equity`` in the account currency, staleness in seconds. A read:
    it never creates the config row (``guards.services`` does, on first write or ``GET guards/config/``).
    """
    values = _scoped(GuardConfig.objects, user_id=user_id, account_id=account_id).values(*CONFIG_FIELDS).first()
    if values is not None:
        return values
    return {name: cast(Field, GuardConfig._meta.get_field(name)).get_default() for name in CONFIG_FIELDS}


def equity_snapshot_list(*, user_id: int, account_id: int | None = None) -> QuerySet[EquitySnapshot]:
    """Return the account's equity snapshots, newest first."""
    return _scoped(EquitySnapshot.objects, user_id=user_id, account_id=account_id).order_by("-created_at", "-id")


def drawdown_alert_list(
    *,
    user_id: int,
    account_id: int | None = None,
    level: str | None = None,
    is_open: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[DrawdownAlert]:
    """Return the user's drawdown episodes, newest first, optionally by current level, open/resolved and
    creation time (``created_after`` inclusive, ``created_before`` exclusive)."""
    alerts = _scoped(DrawdownAlert.objects, user_id=user_id, account_id=account_id).order_by("-created_at", "-id")
    return _filter_alerts(
        alerts, level=level, is_open=is_open, created_after=created_after, created_before=created_before
    )


def market_alert_list(
    *,
    user_id: int,
    account_id: int | None = None,
    level: str | None = None,
    is_open: bool | None = None,
    symbol: str | None = None,
    condition: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[MarketAlert]:
    """Return the user's market episodes (gap, spread, stale quote), newest first, optionally by level,
    open/resolved, symbol (case-insensitive), condition and creation time."""
    alerts = _scoped(MarketAlert.objects, user_id=user_id, account_id=account_id).order_by("-created_at", "-id")
    if symbol:
        alerts = alerts.filter(symbol=symbol.strip().upper())
    if condition:
        alerts = alerts.filter(condition=condition)
    return _filter_alerts(
        alerts, level=level, is_open=is_open, created_after=created_after, created_before=created_before
    )


def _filter_alerts(alerts: QuerySet, *, level, is_open, created_after, created_before) -> QuerySet:
    if level:
        alerts = alerts.filter(level=level)
    if is_open is not None:
        alerts = alerts.filter(resolved_at__isnull=is_open)
    if created_after is not None:
        alerts = alerts.filter(created_at__gte=created_after)
    if created_before is not None:
        alerts = alerts.filter(created_at__lt=created_before)
    return alerts


def guard_status(*, user_id: int, account_id: int | None = None) -> dict[str, Any]:
    """Return the user's guard state (``guards/status/``) through the data cache.

    Shape (Decimals unrounded, percentages 0–100, money in the account currency)::

        {"system_status": "healthy" | "warning" | "critical" | "stale" | "idle",
         "any_positions_should_close": bool,
         "drawdown": None | {"level", "equity", "balance", "peak_equity", "drawdown_pct", "warning_pct",
                             "critical_pct", "should_close_all", "since"},
         "market_alerts": [{"symbol", "condition", "level", "value_pct", "threshold_pct", "bid", "ask",
                            "reference_price", "should_close_positions", "since"}, ...],
         "margin": None | {"level", "margin_level_pct", "margin_call_level_pct", "stop_out_level_pct",
                           "levels_source", "stop_out_equity", "distance_to_stop_out",
                           "distance_to_stop_out_pct", "adverse_move", "should_close_all"},
         "rules": [{"name", "kind", "level", "limit_equity", "distance", "distance_pct", "next_reset",
                    "breached_at", "day_start_at", "should_close_all"}, ...],
         "evaluated_at": datetime | None}

    ``drawdown`` and ``margin`` are None before the first sync; ``rules`` lists the account's enabled
    loss rules when it has an initial capital. The margin guard and a breached rule count as levels.
    ``system_status``: ``idle`` before the first sync;
    else ``critical`` when the drawdown or any open market alert is critical; else ``stale`` when the
    last snapshot is older than ``sync_stale_seconds``; else ``warning`` when anything is at warning;
    else ``healthy``. A critical level outranks staleness so it is never hidden.

    The facts (:func:`compute_guard_facts`) change only with a write, which bumps the generation; the
    ``stale`` case of ``system_status`` — the one thing that changes merely because time passes — is
    derived here at read time by :func:`render_guard_status` (no SQL on a hit).
    """
    now = timezone.now()
    facts = GUARD_STATUS.get(user_id=user_id, account_id=account_id)
    return render_guard_status(facts, now=now)


def compute_guard_status(*, user_id: int, account_id: int | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Compute :func:`guard_status` from the database at ``now`` (no cache of its own):
    :func:`compute_guard_facts` rendered by :func:`render_guard_status`."""
    facts = compute_guard_facts(user_id=user_id, account_id=account_id)
    return render_guard_status(facts, now=now or timezone.now())


def render_guard_status(facts: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Render the guard status from :func:`compute_guard_facts` at ``now`` (no SQL): adds
    ``system_status`` and drops the facts' private ``sync_stale_seconds``."""
    drawdown, market_alerts = facts["drawdown"], facts["market_alerts"]
    margin, rules = facts.get("margin"), facts.get("rules", [])
    evaluated_at = facts["evaluated_at"]  # the latest snapshot's time
    levels = [alert["level"] for alert in market_alerts] + ([drawdown["level"]] if drawdown else [])
    levels += [rule["level"] for rule in rules] + ([margin["level"]] if margin else [])
    if evaluated_at is None:
        system_status = "idle"
    elif Level.CRITICAL in levels:
        system_status = "critical"
    elif (now - evaluated_at).total_seconds() > facts["sync_stale_seconds"]:
        system_status = "stale"
    elif Level.WARNING in levels:
        system_status = "warning"
    else:
        system_status = "healthy"
    return {
        "system_status": system_status,
        "any_positions_should_close": facts["any_positions_should_close"],
        "drawdown": drawdown,
        "market_alerts": market_alerts,
        "margin": margin,
        "rules": rules,
        "evaluated_at": evaluated_at,
    }


def compute_guard_facts(*, user_id: int, account_id: int | None = None) -> dict[str, Any]:
    """The time-independent facts behind the guard status, from the database: 3 queries (+1 after the first
    snapshot: the guard state, for a peak reset since), +1 with a
    drawdown episode on record, +1 when a market alert is critical (the symbols the user holds).

    Shape: the status's ``any_positions_should_close``, ``drawdown``, ``market_alerts`` and
    ``evaluated_at`` (the latest snapshot's time, None before the first), plus ``sync_stale_seconds``
    (the user's threshold, used by :func:`render_guard_status`).
    """
    snapshot: dict[str, Any] | None = cast(
        dict[str, Any] | None,
        equity_snapshot_list(user_id=user_id, account_id=account_id)
        .values(
            "equity",
            "balance",
            "peak_equity",
            "drawdown_pct",
            "drawdown_level",
            "created_at",
            "margin_level_pct",
            "margin_guard_level",
            "margin_details",
        )
        .first(),
    )
    thresholds = guard_thresholds(user_id=user_id, account_id=account_id)
    alerts = list(
        market_alert_list(user_id=user_id, account_id=account_id, is_open=True)
        .order_by("symbol", "condition")
        .values(
            "symbol", "condition", "level", "value_pct", "threshold_pct", "bid", "ask", "reference_price", "opened_at"
        )
    )
    held: set[str] = set()
    if any(alert["level"] == Level.CRITICAL for alert in alerts):
        held = set(
            _scoped(Position.objects, user_id=user_id, account_id=account_id)
            .filter(status=Position.Status.OPEN)
            .values_list("symbol", flat=True)
            .distinct()
        )
    market_alerts = [
        {
            "symbol": alert["symbol"],
            "condition": alert["condition"],
            "level": alert["level"],
            "value_pct": alert["value_pct"],
            "threshold_pct": alert["threshold_pct"],
            "bid": alert["bid"],
            "ask": alert["ask"],
            "reference_price": alert["reference_price"],
            # a critical market alert on a symbol the user holds.
            "should_close_positions": alert["level"] == Level.CRITICAL and alert["symbol"] in held,
            "since": alert["opened_at"],
        }
        for alert in alerts
    ]

    drawdown = None
    if snapshot is not None:
        snapshot = _rebased_on_peak_reset(
            user_id=user_id, account_id=account_id, snapshot=snapshot, thresholds=thresholds
        )
        drawdown = {
            "level": snapshot["drawdown_level"],
            "equity": snapshot["equity"],
            "balance": snapshot["balance"],
            "peak_equity": snapshot["peak_equity"],
            "drawdown_pct": snapshot["drawdown_pct"],
            "warning_pct": thresholds["drawdown_warning_pct"],
            "critical_pct": thresholds["drawdown_critical_pct"],
            "should_close_all": snapshot["drawdown_level"] == Level.CRITICAL,
            "since": _drawdown_since(user_id=user_id, account_id=account_id, level=snapshot["drawdown_level"]),
        }

    margin = _margin_status(snapshot)
    rules = _rules_status(user_id=user_id, account_id=account_id) if thresholds["initial_capital"] is not None else []
    return {
        "any_positions_should_close": bool(drawdown and drawdown["should_close_all"])
        or bool(margin and margin["should_close_all"])
        or any(rule["should_close_all"] for rule in rules)
        or any(alert["should_close_positions"] for alert in market_alerts),
        "drawdown": drawdown,
        "market_alerts": market_alerts,
        "margin": margin,
        "rules": rules,
        "evaluated_at": snapshot["created_at"] if snapshot else None,
        "sync_stale_seconds": thresholds["sync_stale_seconds"],
    }


# The hot read behind GET guards/status/ (time-dependent fields rendered at read time).
GUARD_STATUS = cached_read("guards:status", warm_params=each_account)(compute_guard_facts)


def _rebased_on_peak_reset(
    *, user_id: int, account_id: int | None, snapshot: dict[str, Any], thresholds: dict[str, Any]
) -> dict[str, Any]:
    """The latest snapshot's drawdown figures, re-based on a peak an operator reset after it (1 query).

    ``guards.services.peak_equity_reset`` sets ``GuardState.peak_equity`` between two syncs; until the
    next sync stores a snapshot, the status shows the reset at once: the peak from the state, the
    drawdown and level from the snapshot's equity with the service's own pure functions (the same
    ones the reset used). Without a reset since the snapshot, the snapshot is returned unchanged.
    """
    state = (
        _scoped(GuardState.objects, user_id=user_id, account_id=account_id)
        .values("peak_equity", "peak_reset_at")
        .first()
    )
    if state is None or state["peak_reset_at"] is None or state["peak_reset_at"] <= snapshot["created_at"]:
        return snapshot
    pct = _pct(drawdown_pct(peak=state["peak_equity"], equity=snapshot["equity"]))
    config = GuardConfig(**{name: thresholds[name] for name in ("drawdown_warning_pct", "drawdown_critical_pct",
                                                                "min_equity")})  # fmt: skip
    level = drawdown_level(pct=pct, equity=snapshot["equity"], config=config)
    return {**snapshot, "peak_equity": state["peak_equity"], "drawdown_pct": pct, "drawdown_level": level}


def _drawdown_since(*, user_id: int, account_id: int | None = None, level: str) -> datetime | None:
    """When the current drawdown level began: the open episode's escalation (critical) or opening
    (warning); at ``ok``, when the last episode resolved; None when there never was one (1 query)."""
    latest = (
        drawdown_alert_list(user_id=user_id, account_id=account_id)
        .values("opened_at", "escalated_at", "resolved_at")
        .first()
    )
    if latest is None:
        return None
    if latest["resolved_at"] is None and level != Level.OK:
        if level == Level.CRITICAL and latest["escalated_at"] is not None:
            return latest["escalated_at"]
        return latest["opened_at"]
    return latest["resolved_at"]


def _margin_status(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """The margin guard of the latest snapshot: level, margin level and the stored measure; None before
    the first sync, or for a snapshot the margin guard did not measure."""
    if snapshot is None or snapshot["margin_details"] is None:
        return None
    details = snapshot["margin_details"]
    return {
        "level": snapshot["margin_guard_level"],
        "margin_level_pct": snapshot["margin_level_pct"],
        "margin_call_level_pct": details.get("margin_call_level_pct"),
        "stop_out_level_pct": details.get("stop_out_level_pct"),
        "levels_source": details.get("levels_source"),
        "stop_out_equity": details.get("stop_out_equity"),
        "distance_to_stop_out": details.get("distance_to_stop_out"),
        "distance_to_stop_out_pct": details.get("distance_to_stop_out_pct"),
        "adverse_move": details.get("adverse_move"),
        "should_close_all": snapshot["margin_guard_level"] == Level.CRITICAL,
    }


def _rules_status(*, user_id: int, account_id: int | None) -> list[dict[str, Any]]:
    """The account's enabled loss rules with their latest result (``rules[]`` of the status; 1 query)."""
    rows = _scoped(LossRule.objects, user_id=user_id, account_id=account_id).filter(enabled=True).order_by("kind", "id")
    return [
        {**row, "should_close_all": row["level"] == Level.CRITICAL}
        for row in rows.values(
            "name",
            "kind",
            "level",
            "limit_equity",
            "distance",
            "distance_pct",
            "next_reset",
            "breached_at",
            "day_start_at",
        )
    ]
