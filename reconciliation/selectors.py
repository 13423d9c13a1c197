"""reconciliation selectors: reads of the audit trail, scoped to one user (keyword-only, ``user_id`` first).

:func:`reconciliation_status` is a hot read (``GET reconciliation/status/``): it returns plain,
picklable data through the per-user data cache (SPEC §7).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from guards.selectors import guard_thresholds
from positions.models import Position
from positions.selectors import open_positions
from reconciliation.models import ReconciliationLog
from tradingsite.caching import cached_data

RECONCILIATION_STATUS_NAMESPACE = "reconciliation.status"
RECENT_EVENTS = 5

RECENT_EVENT_FIELDS = (
    "id",
    "created_at",
    "event_type",
    "status",
    "ticket",
    "symbol",
    "matched",
    "divergence_reason",
    "message",
)


def log_list(*, user_id: int) -> QuerySet[ReconciliationLog]:
    """Return the user's reconciliation log, newest first on (``created_at``, ``id``)."""
    return ReconciliationLog.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def recent_events(*, user_id: int, limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """Return the ``limit`` newest log rows as dicts of ``RECENT_EVENT_FIELDS`` (1 query)."""
    return list(log_list(user_id=user_id).values(*RECENT_EVENT_FIELDS)[:limit])


def reconciliation_status(*, user_id: int) -> dict[str, Any]:
    """Return the user's reconciliation health (SPEC §6 ``reconciliation/status/``) through the data cache.

    Shape::

        {"status": "healthy" | "warning" | "stale" | "idle", "total_syncs": int,
         "last_sync_at": datetime | None, "last_sync_duration_ms": int | None,
         "sync_age_seconds": int | None, "open_positions_count": int, "matched_positions": int,
         "divergences_open": int, "divergences_24h": int, "message": str,
         "recent_events": [{RECENT_EVENT_FIELDS}, ...], "as_of": datetime}

    ``open_positions_count`` and ``matched_positions`` come from the same cached
    :func:`positions.selectors.open_positions` result that ``positions/open/`` serves, so the counts
    agree. ``divergences_open`` counts the active divergence reasons over pending and open positions;
    ``divergences_24h`` the ``divergence`` log rows of the last 24 hours. ``status``: ``idle`` before
    the first sync; ``stale`` when the last sync is older than ``sync_stale_seconds``; ``warning`` when
    divergences are open; else ``healthy``.
    """
    return cached_data(
        RECONCILIATION_STATUS_NAMESPACE,
        user_id=user_id,
        compute=lambda: compute_reconciliation_status(user_id=user_id),
        view="reconciliation:status",
    )


def compute_reconciliation_status(*, user_id: int, now: datetime | None = None) -> dict[str, Any]:
    """Compute :func:`reconciliation_status` from the database (no cache): 6 queries, plus the
    open-positions selector (0 when it is cached, else 2–4)."""
    now = now or timezone.now()
    syncs = log_list(user_id=user_id).filter(event_type=ReconciliationLog.EventType.SYNC)
    last_sync = syncs.values("created_at", "duration_ms").first()
    total_syncs = syncs.count() if last_sync else 0
    divergences_24h = (
        log_list(user_id=user_id)
        .filter(event_type=ReconciliationLog.EventType.DIVERGENCE, created_at__gte=now - timedelta(hours=24))
        .count()
    )
    divergences_open = sum(
        len(reasons or [])
        for reasons in Position.objects.filter(
            user_id=user_id, status__in=(Position.Status.PENDING, Position.Status.OPEN)
        ).values_list("divergence_reasons", flat=True)
    )
    positions = open_positions(user_id=user_id)
    open_count = positions["count"]
    matched = sum(1 for position in positions["positions"] if position["matched"])
    stale_after = guard_thresholds(user_id=user_id)["sync_stale_seconds"]
    events = recent_events(user_id=user_id)

    age = int((now - last_sync["created_at"]).total_seconds()) if last_sync else None
    if last_sync is None:
        status, message = "idle", "No sync received yet."
    elif age > stale_after:
        status, message = "stale", f"Last sync {age} s ago; stale after {stale_after} s."
    elif divergences_open:
        status = "warning"
        message = f"{divergences_open} divergence{'s' if divergences_open != 1 else ''} open."
    else:
        status, message = "healthy", f"{matched} of {open_count} open positions matched; no divergence open."

    return {
        "status": status,
        "total_syncs": total_syncs,
        "last_sync_at": last_sync["created_at"] if last_sync else None,
        "last_sync_duration_ms": last_sync["duration_ms"] if last_sync else None,
        "sync_age_seconds": max(age, 0) if age is not None else None,
        "open_positions_count": open_count,
        "matched_positions": matched,
        "divergences_open": divergences_open,
        "divergences_24h": divergences_24h,
        "message": message,
        "recent_events": events,
        "as_of": now,
    }
