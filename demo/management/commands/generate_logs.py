"""``manage.py generate_logs``: bulk-generate a large, deterministic reconciliation log for testing.

Example (1,000,000 rows over 100 users, about a minute on PostgreSQL)::

    DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/ts_c_bench \\
        .venv/bin/python manage.py generate_logs --rows 1000000 --users 100 --seed 1 --batch 10000

The rows follow the "log by transition": each simulated sync writes one ``sync`` row and, now
and then, ``match`` / ``divergence`` / ``divergence_resolved`` / ``close`` rows for the tickets it
touches, plus rare ``guard`` and ``error`` rows; so about 3 rows in 4 are ``sync`` rows. Symbols,
prices, tickets and reasons are realistic; ``created_at`` rises steadily over ``--days`` (six weeks
by default) up to ``--end``, so the physical order follows time, as in production.

The same ``--seed``, ``--rows``, ``--users``, ``--days`` and ``--end`` give the same rows (ids
aside). Users ``<prefix>001`` … are created if missing (unusable passwords), each with one account
(server "Bench-Server", login = the user's id) that the rows belong to. Inserts go through
PostgreSQL ``COPY`` (psycopg 3) in ``--batch`` rows per statement, or ``bulk_create`` batches on
other databases; the table is ANALYZEd at the end so the admin's row estimate is right. When the table
is partitioned (PostgreSQL, ``tradingsite.partitions``) the monthly partitions of the generated span are
created first, so the rows spread over their months instead of landing in the DEFAULT partition.
"""

from __future__ import annotations

import json
import random
import time as time_module
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from accounts.models import Account
from reconciliation.models import LOG_FIELDS, ReconciliationLog
from reconciliation.services import account_sync_counts_recount
from tradingsite.partitions import add_months, ensure_month_partitions, is_partitioned, month_start

DEFAULT_END = "2026-11-30T00:00:00+00:00"

#: symbol → (reference price, digits, weight). Prices near late-2026 levels; weights favour majors and gold.
SYMBOLS: dict[str, tuple[str, int, int]] = {
    "EURUSD": ("1.08500", 5, 20),
    "GBPUSD": ("1.27000", 5, 12),
    "USDJPY": ("150.000", 3, 12),
    "AUDUSD": ("0.65500", 5, 6),
    "USDCAD": ("1.36000", 5, 5),
    "USDCHF": ("0.88000", 5, 4),
    "NZDUSD": ("0.60000", 5, 3),
    "EURGBP": ("0.85500", 5, 4),
    "EURJPY": ("162.500", 3, 5),
    "GBPJPY": ("190.500", 3, 4),
    "XAUUSD": ("1950.50", 2, 15),
    "XAGUSD": ("23.500", 3, 3),
    "BTCUSD": ("60000.00", 2, 7),
}
#: event rows that accompany a sync: how many (weights for 0, 1, 2, 3).
EXTRA_ROWS_WEIGHTS = (76, 15, 6, 3)
#: kind of an accompanying row → weight.
EVENT_WEIGHTS = {"match": 34, "divergence": 15, "divergence_resolved": 21, "close": 24, "guard": 3, "error": 3}
#: divergence reason → weight.
REASON_WEIGHTS = {
    "entry_slippage": 30,
    "partial_fill": 12,
    "volume_mismatch": 6,
    "sl_mismatch": 14,
    "tp_mismatch": 12,
    "side_mismatch": 2,
    "unexpected_at_broker": 16,
    "missing_at_broker": 8,
}
MAX_OPEN_POSITIONS = 8
MAX_OPEN_DIVERGENCES = 1
CLOSE_REASONS = {"tp_hit": 35, "sl_hit": 30, "closed_by_bot": 20, "closed_manually": 8, "closed_externally": 5}
COLUMNS = ("user_id", "account_id", *LOG_FIELDS, "created_at")  # the COPY column list


@dataclass
class _Ticket:
    ticket: int
    symbol: str
    side: str
    volume: Decimal
    price_open: Decimal


@dataclass
class _Account:
    open: dict[int, _Ticket] = field(default_factory=dict)
    diverged: list[tuple[int, str]] = field(default_factory=list)
    next_ticket: int = 0


def _choice(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _quantize(value: Decimal, digits: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _pip(symbol: str) -> Decimal:
    digits = SYMBOLS[symbol][1]
    point = Decimal(1).scaleb(-digits)
    return point * 10 if digits in (3, 5) else point


class LogGenerator:
    """Deterministic stream of log rows (dicts keyed by :data:`COLUMNS`), oldest first.

    ``rows`` rows for ``user_ids`` between ``end - days`` and ``end``; all randomness comes from
    ``random.Random(seed)``, so the stream is a pure function of the arguments.
    """

    def __init__(
        self,
        *,
        rows: int,
        user_ids: list[int],
        seed: int,
        days: float,
        end: datetime,
        account_ids: dict[int, int] | None = None,
    ) -> None:
        self.account_ids = account_ids or {}  # user id → the id of the user's account the rows belong to
        self.rows = rows
        self.user_ids = user_ids
        self.rng = random.Random(seed)
        self.start = end - timedelta(days=days)
        expected_rows_per_sync = 1 + sum(n * w for n, w in enumerate(EXTRA_ROWS_WEIGHTS)) / sum(EXTRA_ROWS_WEIGHTS)
        self.step = timedelta(days=days) / max(rows / expected_rows_per_sync, 1)
        self.accounts = {
            user_id: _Account(next_ticket=10_000_000 + index * 1_000_000) for index, user_id in enumerate(user_ids, 1)
        }
        self.symbols = list(SYMBOLS)
        self.symbol_weights = [weight for _, _, weight in SYMBOLS.values()]

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _price(self, symbol: str) -> Decimal:
        reference, digits, _ = SYMBOLS[symbol]
        return _quantize(Decimal(reference) * (1 + Decimal(self.rng.randint(-200, 200)) / 10_000), digits)

    def _new_ticket(self, account: _Account) -> _Ticket:
        account.next_ticket += 1
        symbol = self.rng.choices(self.symbols, weights=self.symbol_weights)[0]
        volume = Decimal(self.rng.choice((1, 1, 2, 5, 10, 10, 20, 50, 100))) / 100
        ticket = _Ticket(account.next_ticket, symbol, self.rng.choice(("buy", "sell")), volume, self._price(symbol))
        account.open[ticket.ticket] = ticket
        return ticket

    def _base(self, user_id: int, sync_id: uuid.UUID, created_at: datetime, event_type: str) -> dict:
        return {
            "user_id": user_id,
            "account_id": self.account_ids.get(user_id),
            "sync_id": sync_id,
            "event_type": event_type,
            "status": "success",
            "ticket": None,
            "symbol": "",
            "side": "",
            "volume": None,
            "price_open": None,
            "price_current": None,
            "matched": None,
            "divergence_reason": "",
            "slippage_pips": None,
            "close_reason": "",
            "close_price": None,
            "realized_pnl": None,
            "duration_ms": None,
            "broker_time": None,
            "message": "",
            "details": {},
            "created_at": created_at,
        }

    def _position_fields(self, row: dict, ticket: _Ticket) -> dict:
        row.update(
            ticket=ticket.ticket,
            symbol=ticket.symbol,
            side=ticket.side,
            volume=ticket.volume,
            price_open=ticket.price_open,
            price_current=self._price(ticket.symbol),
        )
        return row

    def _event(self, kind: str, user_id: int, sync_id: uuid.UUID, created_at: datetime) -> dict:
        account = self.accounts[user_id]
        rng = self.rng
        # Keep each account near a steady state: a few open positions, at most one open divergence.
        if kind == "divergence" and len(account.diverged) >= MAX_OPEN_DIVERGENCES:
            kind = "divergence_resolved"
        if kind == "divergence_resolved" and not account.diverged:
            kind = "divergence"
        if kind == "match" and len(account.open) >= MAX_OPEN_POSITIONS:
            kind = "close"
        if kind == "close" and not account.open:
            kind = "match"
        row = self._base(user_id, sync_id, created_at, kind)
        if kind == "match":
            ticket = self._new_ticket(account)
            self._position_fields(row, ticket)
            row.update(matched=True, message=f"Position {ticket.ticket} confirmed at the broker.")
        elif kind == "divergence":
            reason = _choice(rng, REASON_WEIGHTS)
            if reason == "unexpected_at_broker" or not account.open:
                ticket = self._new_ticket(account)
            else:
                ticket = account.open[rng.choice(list(account.open))]
            self._position_fields(row, ticket)
            row.update(status="warning", matched=False, divergence_reason=reason)
            expected, actual = self._expected_actual(reason, ticket, row)
            row["details"] = {"reason": reason, "expected": expected, "actual": actual}
            row["message"] = f"Divergence {reason} on {ticket.ticket} {ticket.symbol}."
            account.diverged.append((ticket.ticket, reason))
        elif kind == "divergence_resolved":
            ticket_id, reason = account.diverged.pop(rng.randrange(len(account.diverged)))
            ticket = account.open.get(ticket_id) or self._new_ticket(account)
            self._position_fields(row, ticket)
            row.update(matched=True, divergence_reason=reason, message=f"Divergence {reason} on {ticket_id} cleared.")
        elif kind == "close":
            ticket = account.open.pop(rng.choice(list(account.open)))
            account.diverged = [item for item in account.diverged if item[0] != ticket.ticket]
            self._position_fields(row, ticket)
            close_reason = _choice(rng, CLOSE_REASONS)
            pnl = _quantize(Decimal(rng.randint(-50_000, 60_000)) / 100, 2)
            row.update(
                close_reason=close_reason,
                close_price=row["price_current"],
                realized_pnl=pnl,
                message=f"Position {ticket.ticket} closed: {close_reason}.",
            )
        elif kind == "guard":
            drawdown = Decimal(rng.randint(1500, 2600)) / 100
            level = "critical" if drawdown >= 20 else "warning"
            row.update(status="warning", message=f"Drawdown {drawdown} % ({level}).")
            row["details"] = {"guard": "drawdown", "level": level, "drawdown_pct": str(drawdown)}
        else:  # error
            row.update(status="failed", message="Positions could not be read; positions left untouched.")
            row["details"] = {"error": "positions_unavailable"}
        return row

    def _expected_actual(self, reason: str, ticket: _Ticket, row: dict) -> tuple[dict, dict]:
        rng = self.rng
        pip = _pip(ticket.symbol)
        if reason == "entry_slippage":
            pips = Decimal(rng.randint(-80, 80) or 25) / 10
            requested = ticket.price_open - pips * pip
            row["slippage_pips"] = pips.quantize(Decimal("0.01"))
            return {"price_open": str(requested)}, {"price_open": str(ticket.price_open)}
        if reason in ("partial_fill", "volume_mismatch"):
            factor = Decimal(2) if reason == "partial_fill" else Decimal("0.5")
            return {"volume": str(ticket.volume * factor)}, {"volume": str(ticket.volume)}
        if reason in ("sl_mismatch", "tp_mismatch"):
            key = reason[:2]
            return {key: str(ticket.price_open - 30 * pip)}, {key: str(ticket.price_open - 38 * pip)}
        if reason == "side_mismatch":
            other = "sell" if ticket.side == "buy" else "buy"
            return {"side": other}, {"side": ticket.side}
        if reason == "unexpected_at_broker":
            return {"ticket": None}, {"ticket": ticket.ticket}
        return {"ticket": ticket.ticket}, {"ticket": None}  # missing_at_broker

    def __iter__(self) -> Iterator[dict]:
        rng = self.rng
        moment = self.start
        produced = 0
        while produced < self.rows:
            moment += self.step * (0.5 + rng.random())
            user_id = self.user_ids[rng.randrange(len(self.user_ids))]
            sync_id = self._uuid()
            extra = rng.choices(range(len(EXTRA_ROWS_WEIGHTS)), weights=EXTRA_ROWS_WEIGHTS)[0]
            account = self.accounts[user_id]
            sync = self._base(user_id, sync_id, moment, "sync")
            sync.update(
                status="warning" if account.diverged else "success",
                duration_ms=rng.randint(4, 180),
                broker_time=moment - timedelta(milliseconds=rng.randint(200, 2500)),
                message=f"Sync accepted: {len(account.open)} positions.",
                details={"positions_seen": len(account.open), "divergences_open": len(account.diverged)},
            )
            yield sync
            produced += 1
            for index in range(extra):
                if produced >= self.rows:
                    break
                kind = _choice(rng, EVENT_WEIGHTS)
                yield self._event(kind, user_id, sync_id, moment + timedelta(microseconds=index + 1))
                produced += 1


class Command(BaseCommand):
    help = "Bulk-generate a large deterministic reconciliation log (e.g. --rows 1000000 --users 100 --seed 1)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=1_000_000, help="Rows to insert (default 1,000,000).")
        parser.add_argument("--users", type=int, default=100, help="Users the rows spread over (default 100).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument("--batch", type=int, default=10_000, help="Rows per COPY / bulk_create batch.")
        parser.add_argument("--days", type=float, default=42, help="Time span of created_at (default 42 days).")
        parser.add_argument("--end", default=DEFAULT_END, help=f"Newest created_at, ISO 8601 or 'now' ({DEFAULT_END}).")
        parser.add_argument("--user-prefix", default="logs-user-", help="Username prefix (default logs-user-).")
        parser.add_argument(
            "--no-copy", action="store_true", help="Use bulk_create even on PostgreSQL (slower; for comparison)."
        )

    def handle(self, *args, **options) -> None:
        rows, users, batch = options["rows"], options["users"], options["batch"]
        if rows < 0 or users < 1 or batch < 1:
            raise CommandError("--rows must be >= 0, --users and --batch >= 1.")
        end = datetime.now(UTC) if options["end"] == "now" else datetime.fromisoformat(options["end"])
        if end.tzinfo is None:
            end = end.replace(tzinfo=UTC)
        user_ids = self._ensure_users(prefix=options["user_prefix"], count=users)
        account_ids = _ensure_accounts(user_ids)
        generator = LogGenerator(
            rows=rows, user_ids=user_ids, seed=options["seed"], days=options["days"], end=end, account_ids=account_ids
        )
        use_copy = connection.vendor == "postgresql" and not options["no_copy"]
        table = ReconciliationLog._meta.db_table
        if is_partitioned(connection, table):
            months = [month_start(generator.start)]
            while months[-1] < month_start(end):
                months.append(add_months(months[-1], 1))
            with transaction.atomic():
                created = ensure_month_partitions(connection, table, months)
            if created:
                self.stdout.write(f"Created partitions: {', '.join(created)}")
        started = time_module.perf_counter()
        inserted = 0
        first = True
        for chunk in _chunks(iter(generator), batch):
            if first:
                self._refuse_duplicate(chunk[0])
                first = False
            with transaction.atomic():
                if use_copy:
                    _copy_rows(chunk)
                else:
                    ReconciliationLog.objects.bulk_create([ReconciliationLog(**row) for row in chunk], batch_size=batch)
            inserted += len(chunk)
            if options["verbosity"] >= 2 or inserted % max(batch * 10, 100_000) < batch:
                elapsed = time_module.perf_counter() - started
                self.stdout.write(f"  {inserted:>10,} rows  {elapsed:7.1f} s")
        account_sync_counts_recount(list(account_ids.values()))  # what each sync keeps: the status's total_syncs
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(ReconciliationLog._meta.db_table)}")
        elapsed = time_module.perf_counter() - started
        rate = inserted / elapsed if elapsed else 0
        method = "COPY" if use_copy else "bulk_create"
        self.stdout.write(
            self.style.SUCCESS(
                f"Inserted {inserted:,} log rows for {len(user_ids)} users in {elapsed:.1f} s "
                f"({rate:,.0f} rows/s, {method}, seed {options['seed']})."
            )
        )

    def _ensure_users(self, *, prefix: str, count: int) -> list[int]:
        """Create ``<prefix>001`` … ``<prefix>NNN`` if missing; return their ids in username order."""
        user_model = get_user_model()
        width = max(3, len(str(count)))
        names = [f"{prefix}{index:0{width}d}" for index in range(1, count + 1)]
        existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
        missing = []
        for name in names:
            if name not in existing:
                new_user = user_model(username=name)
                new_user.set_unusable_password()
                missing.append(new_user)
        user_model.objects.bulk_create(missing, batch_size=1000)
        by_name = dict(user_model.objects.filter(username__in=names).values_list("username", "pk"))
        return [by_name[name] for name in names]

    def _refuse_duplicate(self, first_row: dict) -> None:
        """Stop early when this seed was already generated (its first sync row would violate uniqueness)."""
        exists = ReconciliationLog.objects.filter(
            user_id=first_row["user_id"], sync_id=first_row["sync_id"], event_type="sync"
        ).exists()
        if exists:
            raise CommandError(
                f"Rows for this seed (first sync {first_row['sync_id']}) already exist; use another --seed "
                "or a fresh database."
            )


BENCH_SERVER = "Bench-Server"


def _ensure_accounts(user_ids: list[int]) -> dict[int, int]:
    """Give each user one account (server "Bench-Server", login = the user's id) if missing; return
    user id → account id."""
    existing = dict(Account.objects.filter(user_id__in=user_ids, server=BENCH_SERVER).values_list("user_id", "pk"))
    missing = [
        Account(user_id=user_id, server=BENCH_SERVER, login=user_id, currency="USD")
        for user_id in user_ids
        if user_id not in existing
    ]
    Account.objects.bulk_create(missing, batch_size=1000)
    return dict(Account.objects.filter(user_id__in=user_ids, server=BENCH_SERVER).values_list("user_id", "pk"))


def _chunks(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy_rows(rows: list[dict]) -> None:
    """``COPY reconciliation_reconciliationlog (…) FROM STDIN`` through psycopg 3 for one batch."""
    table = connection.ops.quote_name(ReconciliationLog._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(column) for column in COLUMNS)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor under Django's wrapper
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_DUMPERS.get(column, _identity)(row[column]) for column in COLUMNS])


def _identity(value):
    return value


# jsonb goes through COPY's text format as its JSON text.
_DUMPERS = {"details": lambda value: json.dumps(value, sort_keys=True)}
