"""``manage.py prune_logs``: partition upkeep and retention of the reconciliation log and the equity snapshots.

On PostgreSQL both tables are partitioned by calendar month (``tradingsite.partitions``). This command,
run daily from cron or a systemd timer:

1. creates the partitions of the current month and the next ``--ahead`` months that do not exist yet
   (so a sync never lands in the DEFAULT partition because a month was missing);
2. detaches and drops every monthly partition that ends at or before ``now − --older-than`` — whole
   partitions only, never a ``DELETE``, and never the current month's partition (a partition is dropped
   only when its end is also at or before the start of the current month);
3. reports the rows in the DEFAULT partition (rows outside every month's range; kept, never dropped).

It prints each action; ``--dry-run`` prints the same plan and changes nothing. It is idempotent (a second
run finds nothing to do) and safe beside syncs: a transaction-scoped advisory lock serializes concurrent
runs, creation attaches a new table (SHARE UPDATE EXCLUSIVE on the parent: inserts go on), and each
drop runs in its own short transaction under ``lock_timeout`` (``DETACH`` needs ACCESS EXCLUSIVE on the
parent for an instant; past the timeout it retries, so a long sync is never blocked behind it for
long). ``DETACH … CONCURRENTLY`` is not used: PostgreSQL refuses it when a DEFAULT partition exists
(https://www.postgresql.org/docs/current/sql-altertable.html#SQL-ALTERTABLE-DETACH-PARTITION).

On SQLite the tables are not partitioned and the command says so and does nothing.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from guards.models import EquitySnapshot
from reconciliation.models import ReconciliationLog
from tradingsite.partitions import (
    Partition,
    add_months,
    default_partition_name,
    drop_partition,
    ensure_month_partitions,
    is_partitioned,
    list_partitions,
    month_start,
    upkeep_lock,
)

TABLES = (ReconciliationLog._meta.db_table, EquitySnapshot._meta.db_table)
LOCK_NOT_AVAILABLE = "55P03"
DROP_ATTEMPTS = 3


def parse_age(value: str) -> timedelta:
    """``90d`` → 90 days (``d`` days, ``w`` weeks; at least one day)."""
    match = re.fullmatch(r"\s*(\d+)\s*([dw])\s*", value)
    if not match:
        raise CommandError(f"--older-than {value!r}: expected a number of days or weeks, e.g. 90d or 13w.")
    amount = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if amount < 1:
        raise CommandError("--older-than must be at least 1d.")
    return timedelta(days=amount)


class Command(BaseCommand):
    help = "Create the next months' log partitions and drop whole partitions older than the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", default="90d", help="Retention: drop partitions ending before now minus this (90d)."
        )
        parser.add_argument("--ahead", type=int, default=3, help="Months to create past the current one (3).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; change nothing.")
        parser.add_argument("--lock-timeout-ms", type=int, default=2000, help="lock_timeout of a drop (2000).")
        parser.add_argument("--now", help="ISO 8601 time to act as of (tests and what-if runs); default now.")

    def handle(self, *args, **options) -> None:
        retention = parse_age(options["older_than"])
        if options["ahead"] < 0 or options["ahead"] > 24:
            raise CommandError("--ahead must be between 0 and 24 months.")
        now = datetime.fromisoformat(options["now"]) if options["now"] else timezone.now()
        if timezone.is_naive(now):
            raise CommandError("--now needs a UTC offset, e.g. 2027-01-15T00:00:00+00:00.")
        dry_run = options["dry_run"]
        prefix = "would " if dry_run else ""
        cutoff = min(now - retention, month_start(now))
        self.stdout.write(
            f"prune_logs as of {now.isoformat()}: keep from {cutoff.isoformat()}, "
            f"{options['ahead']} months ahead{' (dry run: nothing changes)' if dry_run else ''}"
        )
        for table in TABLES:
            if not is_partitioned(connection, table):
                self.stdout.write(f"{table}: not partitioned ({connection.vendor}); nothing to do")
                continue
            months = [add_months(month_start(now), offset) for offset in range(options["ahead"] + 1)]
            with transaction.atomic():
                created = ensure_month_partitions(connection, table, months, dry_run=dry_run)
            for name in created:
                self.stdout.write(f"{table}: {prefix}create {name}")
            old = [p for p in list_partitions(connection, table) if p.end is not None and p.end <= cutoff]
            for partition in old:
                rows = _estimated_rows(partition.name)
                self.stdout.write(
                    f"{table}: {prefix}drop {partition.name} [{partition.start:%Y-%m-%d}, {partition.end:%Y-%m-%d}) "
                    f"≈{rows:,} rows"
                )
                if not dry_run:
                    self._drop(table, partition, cutoff, options["lock_timeout_ms"])
            default_rows = _exact_rows(default_partition_name(table))
            if default_rows:
                self.stdout.write(
                    self.style.WARNING(
                        f"{table}: {default_rows:,} rows in {default_partition_name(table)} (outside every month's "
                        "range; kept). A later run moves them when it creates their month."
                    )
                )
            if not created and not old:
                self.stdout.write(f"{table}: nothing to do")

    def _drop(self, table: str, partition: Partition, cutoff: datetime, lock_timeout_ms: int) -> None:
        for attempt in range(1, DROP_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    upkeep_lock(connection)
                    # Another run may have dropped it meanwhile: act only on what is still attached and old.
                    current = {p.name: p for p in list_partitions(connection, table)}
                    still = current.get(partition.name)
                    if still is None or still.end is None or still.end > cutoff:
                        return
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{lock_timeout_ms}ms"])
                    drop_partition(connection, table, partition.name)
                return
            except OperationalError as exc:
                if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == DROP_ATTEMPTS:
                    raise
                self.stdout.write(f"{table}: {partition.name} is busy (lock timeout); retrying")
                time.sleep(attempt)


def _estimated_rows(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(%s)", [name])
        row = cursor.fetchone()
    return row[0] if row else 0


def _exact_rows(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
        return cursor.fetchone()[0]
