"""reconciliation services: ingest one broker sync — reconcile, store quotes, evaluate guards, log.

One transaction per sync. The sync's ``account`` object names the MT5 account (server, login); an
unseen one of the user is created. The user's row is locked first, then the account row (both ``FOR
NO KEY UPDATE``: the user's writers serialize, so the log ids of one user commit in order, as the event
stream reads them, while concurrent inserts that reference the rows are not blocked; one lock order for
every writer, ``tradingsite.db``), then its positions in primary-key order (Saleor's ``lock_objects``
pattern). A deadlock or serialization failure is retried once. Ordering (409) and idempotency on
``sync_id`` are per account: the ``sync`` log row stores the response summary and a replay returns it
without writing anything.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Account
from accounts.money import quantize_money
from accounts.services import account_apply_sync, account_for_sync, account_save
from guards.instruments import InstrumentGuards
from guards.models import GuardConfig, GuardState
from guards.services import GuardEvent, GuardSession, guard_config_create, record_guard_transitions
from positions.models import Deal, Instrument, Position, Quote
from positions.pips import pip_size
from positions.selectors import account_instruments
from reconciliation.models import ReconciliationLog
from reconciliation.reconcile import ReconcileOutcome, reconcile
from reconciliation.serializers import ServerClockTime
from tradingsite.caching import bump_and_warm_user
from tradingsite.db import UserInactive, WriteBatch, lock_active_user_row, retry_conflict_once
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
    "realized_pnl_inferred",
    "declared_stops",
    "ticket",
    "last_synced_at",
    "matched",
    "divergence_reasons",
    "divergence_details",
    "updated_at",
]
INSTRUMENT_SPEC_FIELDS = ["contract_size", "digits", "point", "pip_size", "currency_base", "currency_profit"]
OPTIONAL_SPEC_FIELDS = [
    "volume_step",
    "volume_min",
    "trade_calc_mode",
    "trade_tick_value",
    "trade_tick_size",
    "sessions",
]


class SyncOutOfOrder(Exception):
    """A sync whose ``broker_time`` is older than the account's latest accepted one (the view answers 409)."""


@dataclass(frozen=True)
class SyncResult:
    """Outcome of :func:`sync_ingest`: the response ``summary`` and whether this call ``created`` the sync
    (False for an idempotent replay, which wrote nothing)."""

    summary: dict[str, Any]
    created: bool


def _lock_account(user_id: int, info: dict[str, Any]) -> tuple[Account, GuardConfig | None, GuardState | None]:
    """Lock the user's row (checking ``is_active``: :class:`tradingsite.db.UserInactive` otherwise), then
    find or create and lock the account ``info`` names (serializes its syncs), and read its guard config
    and peak.

    A known account with its guard rows (every account after its first sync) takes one statement
    (:func:`_lock_known_account`); otherwise the user's row is locked, the account found or created
    and locked, and the guard rows read, each on its own. The guard rows are locked or read after the
    account's lock: under READ COMMITTED, PostgreSQL re-reads only the *locked* rows of a statement
    that waited for a lock, so a guard row read unlocked in the same statement could be a stale
    snapshot (e.g. the peak the concurrent sync just raised).
    """
    known = _lock_known_account(user_id, info)
    if known is not None:
        return known
    lock_active_user_row(user_id)  # the first lock of every writer of the user's data (tradingsite.db)
    account = account_for_sync(user_id=user_id, info=info)
    config = GuardConfig.objects.filter(account=account).first()
    state = GuardState.objects.filter(account=account).first()
    return account, config, state


_LOCKED_MODELS = (Account, GuardConfig, GuardState)


def _lock_known_account(user_id: int, info: dict[str, Any]) -> tuple[Account, GuardConfig, GuardState] | None:
    """Lock, in one statement and in the lock order of every writer, the user's row, the account (server,
    login) and its guard config and state (``FOR NO KEY UPDATE OF`` them in that order: PostgreSQL
    locks the rows of a joined result in the order the ``OF`` list names them), and return the three
    rows; None when the account or one of its guard rows does not exist yet. Raises
    :class:`tradingsite.db.UserInactive` for a deactivated user (the statement reads ``is_active``).

    All four rows are locked, so a statement that had to wait returns their latest committed versions.
    """
    user = get_user_model()._meta

    def quote(name: str | None) -> str:
        return connection.ops.quote_name(cast(str, name))

    columns = [f"u.{quote(user.get_field('is_active').column)}"]
    for model, alias in zip(_LOCKED_MODELS, ("a", "c", "s"), strict=True):
        columns += [f"{alias}.{quote(field.column)}" for field in model._meta.concrete_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(user.db_table)} u "
        f"JOIN {quote(Account._meta.db_table)} a ON a.user_id = u.{quote(cast(Any, user.pk).column)} "
        f"JOIN {quote(GuardConfig._meta.db_table)} c ON c.account_id = a.id "
        f"JOIN {quote(GuardState._meta.db_table)} s ON s.account_id = a.id "
        f"WHERE u.{quote(cast(Any, user.pk).column)} = %s AND a.server = %s AND a.login = %s"
    )
    if connection.features.has_select_for_update:
        sql += " FOR NO KEY UPDATE OF u, a, c, s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, info["server"], info["login"]])
        row = cursor.fetchone()
    if row is None:
        return None
    if not row[0]:
        raise UserInactive(user_id)
    values, start, rows = list(row), 1, []
    for model, alias in zip(_LOCKED_MODELS, ("a", "c", "s"), strict=True):
        fields = model._meta.concrete_fields
        rows.append(_instance(model, alias, values[start : start + len(fields)]))
        start += len(fields)
    account, config, state = rows
    return cast(Account, account), cast(GuardConfig, config), cast(GuardState, state)


def _instance(model: type[Any], alias: str, values: list[Any]) -> Any:
    """A model instance from a raw row of its concrete fields, through the converters a queryset applies
    (the backend's and the fields' own ``from_db_value``: decimals, times, JSON)."""
    fields = model._meta.concrete_fields
    converted = []
    for field, value in zip(fields, values, strict=True):
        column = field.get_col(alias)
        for converter in [*connection.ops.get_db_converters(column), *column.get_db_converters(connection)]:
            value = converter(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


def _lock_positions(user_id: int, account_id: int, identifiers: list[int]) -> list[Position]:
    """Lock and return the account's pending/open positions and any row whose identifier the broker or a
    deal reports (a closed one may reappear or get its closing deal), in pk order."""
    condition = Q(status__in=[Position.Status.PENDING, Position.Status.OPEN])
    if identifiers:
        condition |= Q(identifier__in=identifiers)
    return list(
        Position.objects.select_for_update(of=("self",))
        .filter(condition, user_id=user_id, account_id=account_id)
        .order_by("pk")
    )


def _save_positions(positions: list[Position], writes: WriteBatch) -> None:
    """Queue the reconciled ledger rows' write in ``writes``: an upsert on the primary key (every row exists).

    ``INSERT … ON CONFLICT (id) DO UPDATE SET`` the sync's fields, instead of ``bulk_update``, whose
    per-field ``CASE WHEN`` expressions cost milliseconds to build for a handful of rows. Only
    ``POSITION_SYNC_FIELDS`` are updated (``created_at``, ``user``, ``ticket`` and the bot's
    ``requested_price`` are never touched).
    """
    writes.insert(Position, positions, unique_fields=["pk"], update_fields=POSITION_SYNC_FIELDS)


@dataclass(frozen=True)
class _Previous:
    """What a batch needs from the user's earlier syncs (one query)."""

    replayed: dict[uuid.UUID, int]  # sync_id → pk of its stored sync row
    broker_time: datetime | None  # broker time of the latest accepted sync
    alerts_may_be_open: bool  # False when the latest summary shows no open alert (skips two queries)


def _previous(user_id: int, account_id: int, sync_ids: list[uuid.UUID]) -> _Previous:
    """Read the stored sync rows of ``sync_ids`` (replays) and the latest sync row, in one query.

    Accepted syncs never go back in broker time, so the newest sync row (the (user, event_type,
    created_at) index) carries the latest broker time. Its summary lists the guard levels after it:
    alerts only open inside syncs, so a drawdown level "ok" and no market alert there mean no open
    alert now (a peak reset can only resolve one).
    """
    syncs = ReconciliationLog.objects.filter(
        user_id=user_id, account_id=account_id, event_type=ReconciliationLog.EventType.SYNC
    )
    latest = syncs.order_by("-created_at", "-id").values("pk")[:1]
    rows = list(
        syncs.filter(Q(sync_id__in=sync_ids) | Q(pk=Subquery(latest))).values_list(
            "created_at",
            "pk",
            "sync_id",
            "broker_time",
            "details__guards__drawdown__level",
            "details__guards__market_alerts",
        )
    )
    wanted = set(sync_ids)
    replayed = {row_sync_id: pk for _, pk, row_sync_id, *_ in rows if row_sync_id in wanted}
    newest = max(rows, key=lambda row: (row[0], row[1]), default=None)
    if newest is None:
        return _Previous(replayed, None, False)
    *_, broker_time, drawdown_level, market_alerts = newest
    return _Previous(replayed, broker_time, drawdown_level != "ok" or bool(market_alerts))


def sync_ingest(*, user_id: int, data: dict[str, Any]) -> SyncResult:
    """Ingest one validated sync (``SyncInputSerializer.validated_data``) for the user.

    In one transaction: lock the user, replay → ``SyncResult(stored summary, created=False)``; a
    ``broker_time`` older than the latest accepted sync → :class:`SyncOutOfOrder` (the view's 409);
    apply symbol specs; when ``positions`` is not None, reconcile against the locked ledger
    (matches, divergences with deltas, broker-only positions, missing pending ones, closes); upsert
    quotes; evaluate guards (peak, drawdown, gaps, spreads, stale quotes); insert the transition log
    rows and exactly one ``sync`` row whose ``details`` is the returned summary. A broker position
    on a symbol with no instrument is accepted and stored (shown unvalued, reason ``spec_missing``);
    the account's guards still run. After commit: bump the user's cache generation and count metrics.
    """
    return sync_ingest_batch(user_id=user_id, batch=[data])[0]


@retry_conflict_once
def sync_ingest_batch(*, user_id: int, batch: list[dict[str, Any]]) -> list[SyncResult]:
    """Ingest several validated syncs of one user, in order, in one transaction (a worker's backlog).

    Each sync is processed exactly as :func:`sync_ingest` would (same rules, same summary, one
    ``sync`` row each, replays answered from the stored summary), but each account's state is read
    once and written once: the ledger, quotes, peak and alert episodes in their final state, plus
    every snapshot and log row in bulk. Syncs of several accounts are grouped per account (locked
    in (server, login) order, one lock order everywhere). All or nothing: an out-of-order sync (409)
    or a bad time (400) anywhere rejects the whole batch. Returns one :class:`SyncResult` per input,
    in order.
    """
    started = time.perf_counter()
    groups: dict[tuple[str, int], list[int]] = {}
    for index, data in enumerate(batch):
        groups.setdefault((data["account"]["server"], data["account"]["login"]), []).append(index)
    results: list[SyncResult | None] = [None] * len(batch)
    try:
        with transaction.atomic():
            # Each group locks the user's row first (tradingsite.db's lock order), then its account.
            for key in sorted(groups):
                indexes = groups[key]
                group = _Batch(user_id=user_id, started=started).run([batch[index] for index in indexes])
                for index, result in zip(indexes, group, strict=True):
                    results[index] = result
    except (SyncOutOfOrder, ValidationError):
        SYNCS.labels(outcome="rejected").inc()
        raise
    done = [result for result in results if result is not None]
    replayed = sum(not result.created for result in done)
    if replayed:
        SYNCS.labels(outcome="replayed").inc(replayed)
    return done


def stand_ins(
    broker_positions: list[dict[str, Any]], ledger: list[Position], instruments: dict[str, Instrument]
) -> dict[str, Instrument]:
    """Unsaved stand-in instruments for symbols without a spec (a manual NAS100 trade), so reconciliation
    can mirror and close such positions instead of refusing the whole sync.

    Only broker-origin positions can have such a symbol (registration needs a spec), so only the close
    inference uses the stand-in: its point is the finest price step seen in the position's
    ``price_open``/``price_current`` (18250.5 → 0.1) and its pip ``positions.pips.pip_size`` of that (an
    index name → 1.0), its volume step 0.01 lot. Nothing values the
    position (no contract size is known): it is shown unvalued with the reason ``spec_missing``.
    """
    prices: dict[str, list[Decimal]] = {}
    for row in broker_positions:
        prices.setdefault(row["symbol"], []).extend([row["price_open"], row["price_current"]])
    for position in ledger:
        prices.setdefault(position.symbol, []).extend(p for p in (position.price_open, position.price_current) if p)
    result = {}
    for symbol, seen in prices.items():
        if symbol in instruments:
            continue
        exponents = [int(price.normalize().as_tuple().exponent) for price in seen if price]
        step = Decimal(1).scaleb(min(min(exponents, default=0), 0))
        result[symbol] = Instrument(
            symbol=symbol, description=symbol, contract_size=Decimal(1), digits=max(-int(step.as_tuple().exponent), 0),
            point=step, pip_size=pip_size(symbol=symbol, digits=max(-int(step.as_tuple().exponent), 0), point=step),
            currency_base="", currency_profit="",
        )  # fmt: skip
    return result


TIMED_PARTS = ("positions", "quotes", "deals")
# Quote rows one account may hold (one per symbol): MT5's Market Watch shows at most a few hundred
# symbols, and each row is read by every valuation of the account.
MAX_QUOTE_ROWS_PER_ACCOUNT = 1000


def normalize_server_times(data: dict[str, Any], *, offset_minutes: int, broker_time: datetime) -> dict[str, Any]:
    """Return a copy of a validated sync whose MT5 server-clock times (``ServerClockTime``: epoch ``time``
    of positions, quotes and deals) are shifted to UTC by the account's offset (UTC+2 → minus 120 min).

    Raises ``ValidationError`` on the part (``positions``/``quotes``/``deals``, each message naming the
    row ``[i].time``; → 400, nothing written) for any ``time`` later than the sync's ``broker_time``:
    a tick or deal from the future is a clock error, never silently kept.
    """
    offset = timedelta(minutes=offset_minutes)
    result = dict(data)
    errors: dict[str, list[str]] = {}
    for part in TIMED_PARTS:
        rows = data.get(part)
        if not rows:
            continue
        shifted = []
        for index, row in enumerate(rows):
            moment = row.get("time")
            if isinstance(moment, ServerClockTime):
                moment = datetime.fromtimestamp(moment.timestamp(), tz=UTC) - offset
            if moment is not None and moment > broker_time:
                errors.setdefault(part, []).append(
                    f"[{index}].time {moment.isoformat()} (UTC, server offset {offset_minutes:+d} min) is "
                    f"later than broker_time {broker_time.isoformat()}."
                )
            shifted.append({**row, "time": moment} if "time" in row else row)
        result[part] = shifted
    if errors:
        raise ValidationError(errors)
    return result


# Money fields of a sync's parts, quantized to the account's currency_digits where they enter.
MONEY_FIELDS = {
    "account": ("balance", "equity", "margin", "margin_free", "credit"),
    "positions": ("swap", "commission", "profit"),
    "deals": ("profit", "swap", "commission", "fee"),
}


def quantize_sync_money(data: dict[str, Any], digits: int) -> dict[str, Any]:
    """Return a copy of a validated sync with every money field rounded half-up to ``digits`` decimals
    (the account's ``currency_digits``: 2 for USD, 0 for JPY on some servers, 8 for BTC)."""

    def rounded(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        return {**row, **{name: quantize_money(row[name], digits) for name in names if row.get(name) is not None}}

    result = {**data, "account": rounded(data["account"], MONEY_FIELDS["account"])}
    for part in ("positions", "deals"):
        if data.get(part) is not None:
            result[part] = [rounded(row, MONEY_FIELDS[part]) for row in data[part]]
    return result


class _Batch:
    """One ingestion for one account: its locked state in memory, the syncs applied in order, then one flush."""

    def __init__(self, *, user_id: int, started: float):
        self.user_id = user_id
        self.started = started
        self.new_positions: list[Position] = []
        self.changed_positions: dict[int, Position] = {}
        self.changed_instruments: dict[str, Instrument] = {}
        self.final_quotes: dict[str, Quote] = {}
        self.logs: list[ReconciliationLog] = []
        self.new_deals: list[Deal] = []
        self.deal_positions: dict[int, Position] = {}
        self.opened_reasons: list[str] = []

    def run(self, batch: list[dict[str, Any]]) -> list[SyncResult]:
        user_id = self.user_id
        self.account, config, state = _lock_account(user_id, batch[0]["account"])
        sync_ids = [uuid.UUID(str(data["sync_id"])) if data.get("sync_id") else uuid.uuid4() for data in batch]
        previous = _previous(user_id, self.account.pk, sync_ids)
        # Which inputs are new: a stored sync_id, or one repeated inside the batch, is a replay.
        plan: list[tuple[str, Any]] = []
        seen: dict[uuid.UUID, int] = {}
        latest = previous.broker_time
        for index, (sync_id, data) in enumerate(zip(sync_ids, batch, strict=True)):
            if sync_id in previous.replayed:
                plan.append(("stored", previous.replayed[sync_id]))
            elif sync_id in seen:
                plan.append(("batch", seen[sync_id]))
            else:
                broker_time = data["broker_time"]
                if latest is not None and broker_time < latest:
                    raise SyncOutOfOrder(
                        f"broker_time {broker_time.isoformat()} is older than the latest accepted sync "
                        f"({latest.isoformat()})."
                    )
                latest = broker_time
                seen[sync_id] = index
                plan.append(("new", index))
        new = [batch[index] for kind, index in plan if kind == "new"]
        summaries: dict[int, dict[str, Any]] = {}
        if new:
            if config is None:
                config = guard_config_create(user_id=user_id, account_id=self.account.pk)
            self.config = config
            self._load(new)
            self.guards = GuardSession(
                user_id=user_id,
                account_id=self.account.pk,
                config=config,
                state=state,
                alerts_may_be_open=previous.alerts_may_be_open,
                instrument_guards=self.instrument_guards,
            )
            for kind, index in plan:
                if kind == "new":
                    summaries[index] = self._sync(sync_ids[index], batch[index])
            self.account.sync_count += len(new)  # one sync row each; written by the account's UPDATE
            self._flush()
        stored_ids = [pk for kind, pk in plan if kind == "stored"]
        stored = (
            dict(ReconciliationLog.objects.filter(pk__in=stored_ids).values_list("pk", "details")) if stored_ids else {}
        )
        results = []
        for kind, ref in plan:
            if kind == "new":
                results.append(SyncResult(summary=summaries[ref], created=True))
            elif kind == "batch":
                results.append(SyncResult(summary=summaries[ref], created=False))
            else:
                results.append(SyncResult(summary=stored[ref], created=False))
        if new:
            self._after_commit(len(new))
        return results

    # --- reads ------------------------------------------------------------------------------
    def _load(self, new: list[dict[str, Any]]) -> None:
        """Lock the ledger rows and read instruments and quotes for every sync of the batch."""
        identifiers = {row["identifier"] for data in new for row in (data.get("positions") or [])}
        identifiers |= {deal["position_id"] for data in new for deal in data.get("deals") or [] if deal["position_id"]}
        self.ledger = _lock_positions(self.user_id, self.account.pk, sorted(identifiers))
        deal_tickets = [deal["ticket"] for data in new for deal in data.get("deals") or []]
        # Deals are idempotent on (account, ticket): a deal sent again by a later sync is not booked twice.
        known = Deal.objects.filter(account_id=self.account.pk, ticket__in=deal_tickets) if deal_tickets else None
        self.known_deals = set(known.values_list("ticket", flat=True)) if known is not None else set()
        symbols = {p.symbol for p in self.ledger}
        for data in new:
            symbols |= {q["symbol"] for q in data.get("quotes") or []}
            symbols |= {row["symbol"] for row in data.get("positions") or []}
            symbols |= {spec["symbol"] for spec in data.get("symbols") or []}
        self.instruments = account_instruments(account_id=self.account.pk, symbols=symbols)
        # per-symbol overrides and rolling median spreads (guards.instruments): tolerances and spread thresholds
        self.instrument_guards = InstrumentGuards.load(
            user_id=self.user_id, account_id=self.account.pk, symbols=symbols
        )
        quoted = {q["symbol"] for data in new for q in data.get("quotes") or []}
        self.quotes = (
            {q.symbol: q for q in Quote.objects.filter(account_id=self.account.pk, symbol__in=quoted)} if quoted else {}
        )
        unseen = quoted - set(self.quotes)
        if unseen:
            stored = Quote.objects.filter(account_id=self.account.pk).count()
            if stored + len(unseen) > MAX_QUOTE_ROWS_PER_ACCOUNT:
                raise ValidationError(
                    {
                        "quotes": (
                            f"An account keeps at most {MAX_QUOTE_ROWS_PER_ACCOUNT} quoted symbols: it has {stored}, "
                            f"this sync adds {len(unseen)} new ones."
                        )
                    }
                )

    # --- one sync: one step per app ------------------------------------------------------------
    def _sync(self, sync_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
        account, broker_time = self.account, data["broker_time"]
        account_apply_sync(account, info=data["account"], broker_time=broker_time, now=timezone.now())
        data = quantize_sync_money(data, account.currency_digits)
        data = normalize_server_times(data, offset_minutes=account.server_utc_offset, broker_time=broker_time)
        self._apply_symbol_specs(data.get("symbols") or [])
        deals = self._deals_step(data.get("deals") or [])
        outcome = self._ledger_step(sync_id, broker_time, data.get("positions"), deals)
        previous_quotes, stored = self._quotes_step(data.get("quotes") or [], broker_time)
        open_rows = [p for p in self.ledger if p.status == Position.Status.OPEN]
        guards = self.guards.evaluate(
            sync_id=sync_id,
            broker_time=broker_time,
            account=data["account"],
            quotes=[{**q, "time": q["time"] or broker_time} for q in data.get("quotes") or []],
            previous_quotes=previous_quotes,
            instruments=self.instruments,
            held_symbols={p.symbol for p in open_rows},
            open_positions=len(open_rows),
            new_deals=deals,
            currency_digits=account.currency_digits,
            positions=open_rows,
            server_utc_offset_minutes=account.server_utc_offset,
        )
        return self._log_step(sync_id, data, outcome, guards, open_rows=len(open_rows), stored=stored)

    def _deals_step(self, deals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keep the deals not stored before and queue them for insertion (positions app's ``Deal``)."""
        new = [deal for deal in deals if deal["ticket"] not in self.known_deals]
        for deal in new:
            self.known_deals.add(deal["ticket"])
            self.new_deals.append(
                Deal(
                    user_id=self.user_id,
                    account=self.account,
                    ticket=deal["ticket"],
                    order=deal["order"],
                    position_identifier=deal["position_id"],
                    symbol=deal["symbol"],
                    type=deal["type"],  # None: a trade deal sent without it, typed from its position at flush
                    entry=deal["entry"],
                    reason=deal["reason"],
                    volume=deal["volume"],
                    price=deal["price"],
                    profit=deal["profit"],
                    swap=deal["swap"],
                    commission=deal["commission"],
                    fee=deal["fee"],
                    magic=deal["magic"],
                    comment=deal["comment"],
                    time=deal["time"] or cast(datetime, self.account.broker_time),  # this sync's, set above
                )
            )
        return new

    def _ledger_step(self, sync_id, broker_time, broker_positions, deals) -> ReconcileOutcome:
        """Reconcile the snapshot and the new deals against the locked ledger (positions app's rows)."""
        state = self.guards.state
        instruments = {**stand_ins(broker_positions or [], self.ledger, self.instruments), **self.instruments}
        outcome = reconcile(
            user_id=self.user_id,
            account_id=self.account.pk,
            sync_id=sync_id,
            broker_time=broker_time,
            ledger=self.ledger,
            broker_positions=broker_positions,
            deals=deals,
            instruments=instruments,
            tolerances=self.instrument_guards.tolerances(instruments),
            sync_stale_seconds=self.config.sync_stale_seconds,
            # the previous sync's margin measure: the guards of this sync run after the ledger step
            last_margin_at_or_under_stop_out=bool(state and state.margin_at_or_under_stop_out),
        )
        self.ledger.extend(outcome.created)
        self.new_positions.extend(outcome.created)
        for position in outcome.updated:
            if position.pk is not None:
                self.changed_positions[position.pk] = position
        self.deal_positions.update(outcome.deal_positions)
        self.opened_reasons.extend(outcome.opened_reasons)
        return outcome

    def _quotes_step(self, quotes: list[dict[str, Any]], broker_time: datetime) -> tuple[dict[str, Quote], int]:
        """Keep each symbol's newest quote (positions app's ``Quote``); return the previous ones and the count."""
        previous = dict(self.quotes)
        stored = 0
        for quote in quotes:
            when = quote["time"] or broker_time
            current = self.quotes.get(quote["symbol"])
            if current is not None and current.is_newer_than(when, broker_time=broker_time):
                continue  # the stored quote is newer: keep it
            row = Quote(
                user_id=self.user_id, account=self.account, symbol=quote["symbol"], bid=quote["bid"], ask=quote["ask"],
                time=when,
            )  # fmt: skip
            self.quotes[quote["symbol"]] = row
            self.final_quotes[quote["symbol"]] = row
            stored += 1
        return previous, stored

    def _log_step(self, sync_id, data, outcome: ReconcileOutcome, guards, *, open_rows: int, stored: int):
        """The sync's summary and its audit rows: the ledger's transitions, the guards' events, one sync row."""
        broker_time, positions_known = data["broker_time"], data.get("positions") is not None
        now_perf = time.perf_counter()
        duration_ms = int((now_perf - self.started) * 1000)
        self.started = now_perf  # the next sync of the batch is timed from here
        counts = {**outcome.counts, "open_positions": open_rows, "quotes": len(data.get("quotes") or []),
                  "quotes_stored": stored}  # fmt: skip
        if not positions_known:
            message = "positions unknown (positions: null): account, deals and quotes processed, no absence rule"
        else:
            message = (
                f"{counts['positions_seen']} positions, {counts['matched']} matched, "
                f"{counts['divergences_opened']} divergences opened, {counts['divergences_resolved']} resolved, "
                f"{counts['closed']} closed"
            )
        account_divergences = [
            {**event.details, "reason": event.divergence_reason} for event in guards.events if event.divergence_reason
        ]
        divergences = [*outcome.divergences, *account_divergences]
        summary = {
            "sync_id": str(sync_id),
            "broker_time": broker_time.isoformat(),
            "positions_known": positions_known,
            "message": message,
            "counts": counts,
            "divergences": divergences,
            "closed": outcome.closed,
            "events": outcome.events,
            "guards": guards.summary,
            "duration_ms": duration_ms,
        }
        warning = not positions_known or divergences or guards.summary["any_positions_should_close"]
        sync_row = ReconciliationLog(
            user_id=self.user_id,
            sync_id=sync_id,
            event_type=ReconciliationLog.EventType.SYNC,
            status=ReconciliationLog.Status.WARNING if warning else ReconciliationLog.Status.SUCCESS,
            duration_ms=duration_ms,
            broker_time=broker_time,
            message=message,
            details=summary,
        )
        created_at = timezone.now()
        guard_rows = [guard_event_log(e, user_id=self.user_id, sync_id=sync_id) for e in guards.events]
        self.opened_reasons.extend(e.divergence_reason for e in guards.events if e.divergence_reason)
        for row in (*outcome.logs, *guard_rows, sync_row):
            row.account_id = self.account.pk
            row.created_at = created_at
            self.logs.append(row)
        return summary

    def _apply_symbol_specs(self, specs: list[dict[str, Any]]) -> None:
        """Create or update the account's own ``Instrument`` rows from MT5 ``symbol_info()`` specs; written
        at flush. The shipped defaults and other accounts' rows are never changed."""
        for spec in specs:
            values = {
                "contract_size": spec["trade_contract_size"],
                "digits": spec["digits"],
                "point": spec["point"],
                "pip_size": pip_size(
                    symbol=spec["symbol"],
                    digits=spec["digits"],
                    point=spec["point"],
                    calc_mode=spec.get("trade_calc_mode"),
                ),
                "currency_base": spec["currency_base"],
                "currency_profit": spec["currency_profit"],
            }
            for optional in OPTIONAL_SPEC_FIELDS:
                if spec.get(optional) is not None:
                    values[optional] = spec[optional]
            instrument = self.instruments.get(spec["symbol"])
            if instrument is not None and all(getattr(instrument, name) == value for name, value in values.items()):
                continue
            if instrument is None or instrument.account_id != self.account.pk:
                # Specs are per account: never change the shipped default (nor, by construction, another's row).
                inherited = (
                    {"volume_step": instrument.volume_step, "volume_min": instrument.volume_min} if instrument else {}
                )
                instrument = Instrument(
                    account=self.account,
                    server=self.account.server,
                    symbol=spec["symbol"],
                    description=spec["symbol"],
                    **{**inherited, **values},
                )
                self.instruments[spec["symbol"]] = instrument
            for name, value in values.items():
                setattr(instrument, name, value)
            self.changed_instruments[spec["symbol"]] = instrument

    # --- writes -----------------------------------------------------------------------------
    def _flush(self) -> None:
        """Write the batch: instruments, changed then new positions, deals, quotes, guards, then the log
        rows (which point at positions created above)."""
        new_instruments = [i for i in self.changed_instruments.values() if i.pk is None]
        old_instruments = [i for i in self.changed_instruments.values() if i.pk is not None]
        if new_instruments:
            Instrument.objects.bulk_create(new_instruments)
        if old_instruments:
            now = timezone.now()
            for instrument in old_instruments:
                instrument.updated_at = now
            Instrument.objects.bulk_update(
                old_instruments, [*INSTRUMENT_SPEC_FIELDS, *OPTIONAL_SPEC_FIELDS, "updated_at"]
            )
        # The writes nothing reads back go out together (one statement on PostgreSQL, tradingsite.db).
        writes = WriteBatch()
        if self.changed_positions:  # first: a reversal closes a row before its successor takes the identifier
            _save_positions(list(self.changed_positions.values()), writes)
        if self.new_positions:
            writes.execute()  # the closes above, before the new rows (which need their pks: bulk_create)
            Position.objects.bulk_create(self.new_positions)
        if self.new_deals:
            for deal in self.new_deals:
                deal.position = self.deal_positions.get(deal.ticket)
                if deal.type is None:
                    deal.type = deal_type_on(deal.position, entry=deal.entry)
            Deal.objects.bulk_create(self.new_deals)
        account_save(self.account, writes=writes)
        if self.final_quotes:
            writes.insert(
                Quote,
                self.final_quotes.values(),
                unique_fields=["account", "symbol"],
                update_fields=["bid", "ask", "time", "updated_at"],
            )
        self.guards.flush(writes)
        writes.execute()
        ReconciliationLog.objects.bulk_create(self.logs)  # their ids go to the subscribers below
        log_rows_written(self.logs)

    def _after_commit(self, created: int) -> None:
        user_id = self.user_id
        opened_reasons = list(self.opened_reasons)
        transitions = list(self.guards.transitions)

        def after_commit() -> None:
            bump_and_warm_user(user_id)
            SYNCS.labels(outcome="created").inc(created)
            for reason in opened_reasons:
                DIVERGENCES.labels(reason=reason).inc()
            record_guard_transitions(transitions)

        transaction.on_commit(after_commit)


def deal_type_on(position: Position | None, *, entry: int) -> int:
    """MT5 deal type of a trade deal sent without one: an IN deal is on its position's side, an exit on
    the other side (0 buy, 1 sell)."""
    buy = position is None or position.side == Position.Side.BUY
    return (0 if buy else 1) if entry == Deal.Entry.IN else (1 if buy else 0)


def account_sync_counts_recount(account_ids: list[int]) -> None:
    """Set each account's ``sync_count`` to its number of ``sync`` log rows (one UPDATE), for rows
    written without a sync (``generate_logs``); a sync keeps the counter itself."""
    syncs = (
        ReconciliationLog.objects.filter(account=OuterRef("pk"), event_type=ReconciliationLog.EventType.SYNC)
        .order_by()
        .values("account")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Account.objects.filter(pk__in=account_ids).update(sync_count=Coalesce(Subquery(syncs), 0))


def guard_event_log(event: GuardEvent, *, user_id: int, sync_id: uuid.UUID | None = None) -> ReconciliationLog:
    """The audit row of a guard event: ``guard`` rows for level transitions and peak resets, ``divergence``
    rows (with the reason) for account-level divergences such as ``unexplained_balance_change``."""
    divergence = event.kind == "divergence"
    return ReconciliationLog(
        user_id=user_id,
        sync_id=sync_id or uuid.uuid4(),
        event_type=ReconciliationLog.EventType.DIVERGENCE if divergence else ReconciliationLog.EventType.GUARD,
        status=event.status,
        symbol=event.symbol,
        matched=False if divergence else None,
        divergence_reason=event.divergence_reason,
        message=event.message,
        details=event.details,
    )


def guard_event_record(*, account_id: int, user_id: int, event: GuardEvent) -> None:
    """Write a guard event raised outside a sync (the admin's peak reset) as its audit row; the
    ``GUARD_EVENT_RECORDER`` setting names this function for ``guards.services``."""
    row = guard_event_log(event, user_id=user_id)
    row.account_id = account_id
    row.save()
    log_rows_written([row])


def log_rows_written(rows: list[ReconciliationLog]) -> None:
    """Hand the log rows just inserted (ids set) to every ``RECONCILIATION_LOG_SUBSCRIBERS`` entry, inside
    the writing transaction: the apps above reconciliation (the webhook outbox and the event stream)
    are named in settings, so reconciliation never imports them (the layer contract)."""
    if not rows:
        return
    for path in settings.RECONCILIATION_LOG_SUBSCRIBERS:
        import_string(path)(rows)
