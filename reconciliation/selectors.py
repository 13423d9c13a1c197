"""reconciliation selectors: reads of the audit trail, scoped to one user and one of its accounts
(keyword-only, ``user_id`` first, then ``account_id``).

:func:`reconciliation_status` is a hot read (``GET reconciliation/status/``): it keeps plain,
picklable facts in the per-user data cache (``RECONCILIATION_STATUS``) and derives the time-dependent
fields at read time.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import Account
from accounts.selectors import each_account
from guards.selectors import guard_thresholds
from positions.models import Position
from positions.selectors import open_positions, position_history
from reconciliation.models import ReconciliationLog
from tradingsite.caching import cached_read

RECENT_EVENTS = 5
DIVERGENCE_WINDOW = timedelta(hours=24)  # divergences_24h
# Divergence times kept in the cached facts so divergences_24h can age at read time (bounded memory).
DIVERGENCE_TIMES_KEPT = 200

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


def log_list(*, user_id: int, account_id: int | None = None) -> QuerySet[ReconciliationLog]:
    """Return the account's reconciliation log (every account of the user when ``account_id`` is None),
    newest first on (``created_at``, ``id``)."""
    logs = ReconciliationLog.objects.filter(user_id=user_id)
    if account_id is not None:
        logs = logs.filter(account_id=account_id)
    return logs.order_by("-created_at", "-id")


def recent_events(*, user_id: int, account_id: int | None = None, limit: int = RECENT_EVENTS) -> list[dict[str, Any]]:
    """Return the account's ``limit`` newest log rows as dicts of ``RECENT_EVENT_FIELDS`` (1 query)."""
    return list(log_list(user_id=user_id, account_id=account_id).values(*RECENT_EVENT_FIELDS)[:limit])


def reconciliation_status(*, user_id: int, account_id: int | None = None) -> dict[str, Any]:
    """Return the user's reconciliation health (``reconciliation/status/``), rendered now from
    facts kept in the data cache (no SQL on a hit).

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

    The facts (:func:`compute_reconciliation_facts`) change only with a write, which bumps the
    generation; everything that changes merely because time passes (``status`` going stale,
    ``sync_age_seconds``, ``message``, ``divergences_24h`` as rows age past 24 h, ``as_of``) is derived
    here at read time by :func:`render_reconciliation_status`.
    """
    now = timezone.now()
    facts = RECONCILIATION_STATUS.get(
        user_id=user_id, account_id=account_id, is_valid=lambda cached: _divergence_window_known(cached, now=now)
    )
    return render_reconciliation_status(facts, now=now)


def compute_reconciliation_status(
    *, user_id: int, account_id: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Compute :func:`reconciliation_status` from the database at ``now`` (no cache of its own):
    :func:`compute_reconciliation_facts` rendered by :func:`render_reconciliation_status`."""
    now = now or timezone.now()
    facts = compute_reconciliation_facts(user_id=user_id, account_id=account_id, now=now)
    return render_reconciliation_status(facts, now=now)


def compute_reconciliation_facts(
    *, user_id: int, account_id: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The time-independent facts behind the status, from the database: 6 queries (+1 when more than
    ``DIVERGENCE_TIMES_KEPT`` divergences fall in the last 24 h), plus the open-positions selector
    (0 when it is cached, else 2–4).

    Shape: the status's ``total_syncs``, ``last_sync_at``, ``last_sync_duration_ms``,
    ``open_positions_count``, ``matched_positions``, ``divergences_open``, ``recent_events``, plus
    ``sync_stale_seconds`` (the user's threshold), ``divergences_24h_at_compute`` (the count at ``now``)
    and ``divergence_times``: the creation times of the oldest ``DIVERGENCE_TIMES_KEPT`` divergence rows
    of the window, ascending — the ones that age out first — with ``divergence_times_complete`` False
    when the window held more (bounded memory; see :func:`_divergence_window_known`).
    """
    now = now or timezone.now()
    syncs = log_list(user_id=user_id, account_id=account_id).filter(event_type=ReconciliationLog.EventType.SYNC)
    last_sync = syncs.values("created_at", "duration_ms").first()
    # The counter each sync keeps on its account (one row per account, whatever the history's length).
    accounts = Account.objects.filter(user_id=user_id)
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    total_syncs = (accounts.aggregate(total=Sum("sync_count"))["total"] or 0) if last_sync else 0
    window = log_list(user_id=user_id, account_id=account_id).filter(
        event_type=ReconciliationLog.EventType.DIVERGENCE,
        created_at__gte=now - DIVERGENCE_WINDOW,
    )
    times = list(window.order_by("created_at", "id").values_list("created_at", flat=True)[: DIVERGENCE_TIMES_KEPT + 1])
    complete = len(times) <= DIVERGENCE_TIMES_KEPT
    divergences_24h = len(times) if complete else window.count()
    divergences_open = sum(
        len(reasons or [])
        for reasons in position_history(user_id=user_id, account_id=account_id)
        .filter(status__in=(Position.Status.PENDING, Position.Status.OPEN))
        .values_list("divergence_reasons", flat=True)
    )
    positions = open_positions(user_id=user_id, account_id=account_id)
    return {
        "total_syncs": total_syncs,
        "last_sync_at": last_sync["created_at"] if last_sync else None,
        "last_sync_duration_ms": last_sync["duration_ms"] if last_sync else None,
        "open_positions_count": positions["count"],
        "matched_positions": sum(1 for position in positions["positions"] if position["matched"]),
        "divergences_open": divergences_open,
        "divergences_24h_at_compute": divergences_24h,
        "divergence_times": times[:DIVERGENCE_TIMES_KEPT],
        "divergence_times_complete": complete,
        "sync_stale_seconds": guard_thresholds(user_id=user_id, account_id=account_id)["sync_stale_seconds"],
        "recent_events": recent_events(user_id=user_id, account_id=account_id),
    }


# The hot read behind GET reconciliation/status/: its facts nest the open positions' cached book.
RECONCILIATION_STATUS = cached_read("reconciliation:status", warm_params=each_account, after=("positions:open",))(
    compute_reconciliation_facts
)


def _aged_divergences(facts: dict[str, Any], *, now: datetime) -> int:
    """How many of the kept divergence times have left the 24 h window by ``now``."""
    return bisect.bisect_left(facts["divergence_times"], now - DIVERGENCE_WINDOW)


def _divergence_window_known(facts: dict[str, Any], *, now: datetime) -> bool:
    """False once every kept divergence time has aged out of a window that held more than were kept:
    the facts can no longer count ``divergences_24h`` and must be recomputed (rare: more than
    ``DIVERGENCE_TIMES_KEPT`` divergences in a day and no write for a day)."""
    return facts["divergence_times_complete"] or _aged_divergences(facts, now=now) < len(facts["divergence_times"])


def render_reconciliation_status(facts: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Render the status from :func:`compute_reconciliation_facts` at ``now`` (no SQL).

    ``divergences_24h`` = the count at compute time − the kept times that have since left the window
    (rows are only ever added by writes, which bump the generation, so nothing else can change it).
    """
    last_sync_at = facts["last_sync_at"]
    stale_after = facts["sync_stale_seconds"]
    divergences_open = facts["divergences_open"]
    matched, open_count = facts["matched_positions"], facts["open_positions_count"]
    age = int((now - last_sync_at).total_seconds()) if last_sync_at is not None else None
    if last_sync_at is None:
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
        "total_syncs": facts["total_syncs"],
        "last_sync_at": last_sync_at,
        "last_sync_duration_ms": facts["last_sync_duration_ms"],
        "sync_age_seconds": max(age, 0) if age is not None else None,
        "open_positions_count": open_count,
        "matched_positions": matched,
        "divergences_open": divergences_open,
        "divergences_24h": facts["divergences_24h_at_compute"] - _aged_divergences(facts, now=now),
        "message": message,
        "recent_events": facts["recent_events"],
        "as_of": now,
    }
