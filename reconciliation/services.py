"""reconciliation services: ingest one broker sync (SPEC §2) — reconcile, store quotes, evaluate guards, log.

One transaction per sync. The user's ``auth_user`` row is locked first (so two syncs of one user
serialize even when the account is flat), then the user's positions in primary-key order (Saleor's
``lock_objects`` pattern: one lock order everywhere, no deadlocks). Idempotent on ``sync_id``: the
``sync`` log row stores the response summary and a replay returns it without writing anything.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from guards.models import GuardConfig, GuardState
from guards.services import guards_evaluate, record_guard_transitions
from positions.models import Instrument, Position, Quote, pip_size_for
from reconciliation.models import ReconciliationLog
from reconciliation.reconcile import reconcile
from tradingsite.api import Conflict
from tradingsite.caching import bump_user_generation
from tradingsite.metrics import DIVERGENCES, SYNCS

POSITION_SYNC_FIELDS = [
    "symbol",
    "side",
    "volume",
    "price_open",
    "price_current",
    "sl",
    "tp",
    "swap",
    "commission",
    "profit",
    "status",
    "opened_at",
    "closed_at",
    "close_price",
    "close_reason",
    "realized_pnl",
    "last_synced_at",
    "matched",
    "divergence_reasons",
    "divergence_details",
    "updated_at",
]
INSTRUMENT_SPEC_FIELDS = ["contract_size", "digits", "point", "pip_size", "currency_base", "currency_profit"]


@dataclass(frozen=True)
class SyncResult:
    """Outcome of :func:`sync_ingest`: the response ``summary`` and whether this call ``created`` the sync
    (False for an idempotent replay, which wrote nothing)."""

    summary: dict[str, Any]
    created: bool


def _lock_user(user_id: int) -> tuple[GuardConfig | None, GuardState | None]:
    """Lock the user's row (serializes this user's syncs), then read its guard config and peak.

    The read is a second statement on purpose: under READ COMMITTED, PostgreSQL re-checks only the
    locked row after waiting for a lock, so columns joined into the locking query could be a stale
    snapshot (e.g. the peak the concurrent sync just raised).
    """
    users = get_user_model().objects
    if connection.features.has_select_for_update:  # SQLite: the IMMEDIATE transaction already serializes writers
        users.select_for_update().filter(pk=user_id).values_list("pk", flat=True).get()
    user = users.select_related("guard_config", "guard_state").only("pk", "guard_config", "guard_state").get(pk=user_id)
    return getattr(user, "guard_config", None), getattr(user, "guard_state", None)


def _apply_symbol_specs(specs: list[dict[str, Any]]) -> None:
    """Create or update ``Instrument`` rows from MT5 ``symbol_info()`` specs carried by the sync (SPEC §1)."""
    if not specs:
        return
    existing = {i.symbol: i for i in Instrument.objects.filter(symbol__in=[spec["symbol"] for spec in specs])}
    to_create, to_update = [], []
    for spec in specs:
        values = {
            "contract_size": spec["trade_contract_size"],
            "digits": spec["digits"],
            "point": spec["point"],
            "pip_size": pip_size_for(digits=spec["digits"], point=spec["point"]),
            "currency_base": spec["currency_base"],
            "currency_profit": spec["currency_profit"],
        }
        for optional in ("volume_step", "volume_min"):
            if spec.get(optional) is not None:
                values[optional] = spec[optional]
        instrument = existing.get(spec["symbol"])
        if instrument is None:
            to_create.append(Instrument(symbol=spec["symbol"], description=spec["symbol"], **values))
        elif any(getattr(instrument, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(instrument, name, value)
            instrument.updated_at = timezone.now()
            to_update.append(instrument)
    if to_create:
        Instrument.objects.bulk_create(to_create)
    if to_update:
        Instrument.objects.bulk_update(to_update, [*INSTRUMENT_SPEC_FIELDS, "volume_step", "volume_min", "updated_at"])


def _load_instruments(symbols: set[str]) -> dict[str, Instrument]:
    return {i.symbol: i for i in Instrument.objects.filter(symbol__in=symbols)} if symbols else {}


def _lock_positions(user_id: int, tickets: list[int]) -> list[Position]:
    """Lock and return the user's pending/open positions and any row the broker reports, in pk order."""
    condition = Q(status__in=[Position.Status.PENDING, Position.Status.OPEN])
    if tickets:
        condition |= Q(ticket__in=tickets)
    return list(Position.objects.select_for_update(of=("self",)).filter(condition, user_id=user_id).order_by("pk"))


def _upsert_quotes(
    user_id: int, quotes: list[dict[str, Any]], previous: dict[str, Quote], broker_time: datetime
) -> int:
    """Store each quote as the user's latest for its symbol, unless the stored one is newer. Returns rows written."""
    rows = []
    for quote in quotes:
        when = quote["time"] or broker_time
        stored = previous.get(quote["symbol"])
        if stored is not None and stored.time > when:
            continue
        rows.append(Quote(user_id=user_id, symbol=quote["symbol"], bid=quote["bid"], ask=quote["ask"], time=when))
    if rows:
        Quote.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["user", "symbol"],
            update_fields=["bid", "ask", "time", "updated_at"],
        )
    return len(rows)


def _save_positions(positions: list[Position]) -> None:
    """Write the reconciled ledger rows in one statement: an upsert on the primary key (every row exists).

    ``INSERT … ON CONFLICT (id) DO UPDATE SET`` the sync's fields, instead of ``bulk_update``, whose
    per-field ``CASE WHEN`` expressions cost milliseconds to build for a handful of rows. Only
    ``POSITION_SYNC_FIELDS`` are updated (``created_at``, ``user``, ``ticket`` and the bot's
    ``requested_price`` are never touched).
    """
    Position.objects.bulk_create(
        positions, update_conflicts=True, unique_fields=["pk"], update_fields=POSITION_SYNC_FIELDS
    )


@dataclass(frozen=True)
class _Previous:
    """What the sync needs from the user's earlier syncs (one query)."""

    replayed_id: int | None  # pk of the sync row with this sync_id, if any
    broker_time: datetime | None  # broker time of the latest accepted sync
    alerts_may_be_open: bool  # False when the latest summary shows no open alert (skips two queries)


def _previous(user_id: int, sync_id: uuid.UUID) -> _Previous:
    """Read the sync row with ``sync_id`` (a replay) and the latest sync row, in one query.

    Accepted syncs never go back in broker time, so the newest sync row (the (user, event_type,
    created_at) index) carries the latest broker time. Its summary lists the guard levels after it:
    alerts only open inside syncs, so a drawdown level "ok" and no market alert there mean no open
    alert now (a peak reset can only resolve one).
    """
    syncs = ReconciliationLog.objects.filter(user_id=user_id, event_type=ReconciliationLog.EventType.SYNC)
    latest = syncs.order_by("-created_at", "-id").values("pk")[:1]
    rows = list(
        syncs.filter(Q(sync_id=sync_id) | Q(pk=Subquery(latest))).values_list(
            "created_at",
            "pk",
            "sync_id",
            "broker_time",
            "details__guards__drawdown__level",
            "details__guards__market_alerts",
        )
    )
    replayed = next((pk for _, pk, row_sync_id, *_ in rows if row_sync_id == sync_id), None)
    newest = max(rows, key=lambda row: (row[0], row[1]), default=None)
    if newest is None:
        return _Previous(replayed, None, False)
    *_, broker_time, drawdown_level, market_alerts = newest
    return _Previous(replayed, broker_time, drawdown_level != "ok" or bool(market_alerts))


def sync_ingest(*, user_id: int, data: dict[str, Any]) -> SyncResult:
    """Ingest one validated sync (``SyncInputSerializer.validated_data``) for the user (SPEC §2, §3, §5).

    In one transaction: lock the user, replay → ``SyncResult(stored summary, created=False)``; a
    ``broker_time`` older than the latest accepted sync → :class:`tradingsite.api.Conflict` (409);
    apply symbol specs; when ``positions`` is not None, reconcile against the locked ledger
    (matches, divergences with deltas, broker-only positions, missing pending ones, closes); upsert
    quotes; evaluate guards (peak, drawdown, gaps, spreads, stale quotes); insert the transition log
    rows and exactly one ``sync`` row whose ``details`` is the returned summary. A broker position
    on a symbol with no instrument raises ``ValidationError`` (→ 400, nothing written). After commit:
    bump the user's cache generation and count metrics.
    """
    started = time.perf_counter()
    try:
        with transaction.atomic():
            result, after_commit = _ingest(user_id=user_id, data=data, started=started)
    except (Conflict, ValidationError):
        SYNCS.labels(outcome="rejected").inc()
        raise
    if after_commit is None:
        SYNCS.labels(outcome="replayed").inc()
    return result


def _ingest(*, user_id: int, data: dict[str, Any], started: float):
    sync_id = uuid.UUID(str(data["sync_id"])) if data.get("sync_id") else uuid.uuid4()
    broker_time: datetime = data["broker_time"]
    config, state = _lock_user(user_id)
    previous = _previous(user_id, sync_id)
    if previous.replayed_id is not None:
        stored = ReconciliationLog.objects.values_list("details", flat=True).get(pk=previous.replayed_id)
        return SyncResult(summary=stored, created=False), None
    latest = previous.broker_time
    if latest is not None and broker_time < latest:
        raise Conflict(
            f"broker_time {broker_time.isoformat()} is older than the latest accepted sync ({latest.isoformat()})."
        )
    if config is None:
        config = GuardConfig.objects.create(user_id=user_id)
        config.refresh_from_db()  # Decimal thresholds as stored (15.000), as every later sync reads them

    _apply_symbol_specs(data.get("symbols") or [])
    broker_positions = data.get("positions")
    quotes = data.get("quotes") or []
    deals = data.get("deals") or []
    positions_known = broker_positions is not None

    ledger: list[Position] = []
    if positions_known:
        ledger = _lock_positions(user_id, [row["ticket"] for row in broker_positions])
    symbols = {q["symbol"] for q in quotes} | {p.symbol for p in ledger}
    symbols |= {row["symbol"] for row in broker_positions or []}
    instruments = _load_instruments(symbols)
    unknown = sorted({row["symbol"] for row in broker_positions or []} - set(instruments))
    if unknown:
        raise ValidationError(
            {"positions": f"Unknown symbols {', '.join(unknown)}: send their specs in 'symbols' first."}
        )

    if positions_known:
        outcome = reconcile(
            user_id=user_id,
            sync_id=sync_id,
            broker_time=broker_time,
            ledger=ledger,
            broker_positions=broker_positions,
            deals=deals,
            instruments=instruments,
            sync_stale_seconds=config.sync_stale_seconds,
        )
        if outcome.created:
            Position.objects.bulk_create(outcome.created)
        if outcome.updated:
            _save_positions(list({id(p): p for p in outcome.updated}.values()))
        open_count, held_symbols = outcome.open_count, outcome.open_symbols
        logs = outcome.logs
    else:
        outcome = None
        open_rows = Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).values_list(
            "symbol", flat=True
        )
        held = list(open_rows)
        open_count, held_symbols, logs = len(held), set(held), []

    previous_quotes = {
        q.symbol: q for q in Quote.objects.filter(user_id=user_id, symbol__in=[q["symbol"] for q in quotes])
    }
    normalized_quotes = [{**q, "time": q["time"] or broker_time} for q in quotes]
    quotes_written = _upsert_quotes(user_id, normalized_quotes, previous_quotes, broker_time)
    guards = guards_evaluate(
        user_id=user_id,
        sync_id=sync_id,
        broker_time=broker_time,
        account=data["account"],
        quotes=normalized_quotes,
        previous_quotes=previous_quotes,
        instruments=instruments,
        held_symbols=held_symbols,
        open_positions=open_count,
        config=config,
        state=state,
        alerts_may_be_open=previous.alerts_may_be_open,
    )

    duration_ms = int((time.perf_counter() - started) * 1000)
    counts = (
        outcome.counts
        if outcome
        else dict.fromkeys(
            (
                "positions_seen",
                "matched",
                "confirmed",
                "created_from_broker",
                "divergences_opened",
                "divergences_resolved",
                "missing_at_broker",
                "closed",
                "ignored_closed",
            ),
            0,
        )
    )
    counts = {**counts, "open_positions": open_count, "quotes": len(quotes), "quotes_stored": quotes_written}
    divergences = outcome.divergences if outcome else []
    if not positions_known:
        message = "positions unknown (positions: null): account and quotes processed, ledger untouched"
    else:
        message = (
            f"{counts['positions_seen']} positions, {counts['matched']} matched, "
            f"{counts['divergences_opened']} divergences opened, {counts['divergences_resolved']} resolved, "
            f"{counts['closed']} closed"
        )
    summary = {
        "sync_id": str(sync_id),
        "broker_time": broker_time.isoformat(),
        "positions_known": positions_known,
        "message": message,
        "counts": counts,
        "divergences": divergences,
        "closed": outcome.closed if outcome else [],
        "guards": guards.summary,
        "duration_ms": duration_ms,
    }
    sync_status = (
        ReconciliationLog.Status.WARNING
        if (not positions_known or divergences or guards.summary["any_positions_should_close"])
        else ReconciliationLog.Status.SUCCESS
    )
    sync_row = ReconciliationLog(
        user_id=user_id,
        sync_id=sync_id,
        event_type=ReconciliationLog.EventType.SYNC,
        status=sync_status,
        duration_ms=duration_ms,
        broker_time=broker_time,
        message=message,
        details=summary,
    )
    now = timezone.now()
    all_logs = [*logs, *guards.logs, sync_row]
    for row in all_logs:
        row.created_at = now
    ReconciliationLog.objects.bulk_create(all_logs)

    opened_reasons = list(outcome.opened_reasons) if outcome else []
    transitions = list(guards.transitions)

    def after_commit() -> None:
        bump_user_generation(user_id)
        SYNCS.labels(outcome="created").inc()
        for reason in opened_reasons:
            DIVERGENCES.labels(reason=reason).inc()
        record_guard_transitions(transitions)

    transaction.on_commit(after_commit)
    return SyncResult(summary=summary, created=True), after_commit
