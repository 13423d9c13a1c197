"""Monthly range partitions of the time-series tables (PostgreSQL declarative partitioning).

The reconciliation log and the equity snapshots grow by one row per account per sync (every 5 s:
≈17,000 rows per account per day). On PostgreSQL both are ``PARTITION BY RANGE (created_at)`` with one
partition per calendar month (UTC) and a DEFAULT partition, so:

- retention drops whole partitions (``DETACH PARTITION`` + ``DROP TABLE``: no ``DELETE``, no vacuum debt);
- a query that filters on ``created_at`` reads only the partitions of its window (partition pruning);
- indexes are declared on the parent, so every partition, including one created later, has them.

Design (PostgreSQL's rules, https://www.postgresql.org/docs/current/ddl-partitioning.html#DDL-PARTITIONING-DECLARATIVE-LIMITATIONS):

- **Primary key.** A unique constraint of a partitioned table must contain the partition key, so the
  database's primary key is ``(id, created_at)``. Django keeps ``id`` as the model's ``pk`` (not a
  ``CompositePrimaryKey``): ids still come from one identity sequence on the parent, so they are unique
  in practice, and the admin (which does not support composite primary keys in Django 5.2,
  https://docs.djangoproject.com/en/5.2/topics/composite-primary-key/#composite-primary-keys-and-the-admin),
  DRF serializers, the ``(created_at, id)`` cursor pagination, the CSV export, the webhook outbox's
  ``event_id`` and ``pk__in`` lookups keep working unchanged.
- **Uniqueness without the partition key.** The sync idempotency constraints ((account, sync_id) of the
  sync rows) cannot be unique indexes any more. They become a non-unique index of the same name plus a
  ``BEFORE INSERT`` row trigger that locks the account row (``FOR NO KEY UPDATE``: the sync service
  already holds it, so this waits only for a concurrent writer of the same account) and raises
  ``unique_violation`` with the old constraint's name when a row with the same key exists in any
  partition. Django turns that into ``IntegrityError`` as before.
- **Append-only** (the log; the equity snapshots are not declared append-only by the application).
  A ``BEFORE UPDATE`` row trigger on the parent refuses every UPDATE, on every partition,
  including partitions created later (row triggers of a partitioned table are cloned to each partition,
  https://www.postgresql.org/docs/current/sql-createtrigger.html). DELETE stays possible for the cascade
  when a user or account is deleted; retention drops partitions and deletes no row.
- **Foreign keys.** The tables keep their foreign keys to users, accounts and positions. Nothing may
  reference these tables by foreign key (it would need ``(id, created_at)``); the webhook outbox keeps the
  log row id as a plain integer.
- **Default partition.** A row outside every monthly range lands in ``<table>_default`` and is never lost.
  :func:`ensure_month_partitions` moves such rows into a new month's partition when it creates it.

On SQLite (development, most tests) nothing here runs: the migrations are no-ops there and the tables
stay plain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.backends.base.base import BaseDatabaseWrapper

PARTITION_KEY = "created_at"
#: ``pg_advisory_xact_lock`` key that serializes partition upkeep (two cron runs at once wait, never clash).
UPKEEP_LOCK_KEY = 0x7473_7061_7274  # "tspart"
_NAME = re.compile(r"_p(\d{4})(\d{2})$")


@dataclass(frozen=True)
class PartitionSpec:
    """A table to partition: its name, the uniqueness the database must still enforce, and its account column.

    ``unique_name``/``unique_columns``/``unique_condition``: the idempotency constraint replaced by the
    trigger (``unique_condition`` is a SQL boolean over ``NEW``, or ``None`` for every row).
    """

    table: str
    unique_name: str
    unique_columns: tuple[str, ...]
    unique_condition: str | None
    account_table: str = "accounts_account"
    account_column: str = "account_id"
    #: refuse UPDATE in the database (the log, which the application treats as append-only)
    append_only: bool = True


@dataclass(frozen=True)
class Partition:
    """One attached partition: its name and ``[start, end)`` bounds in UTC (both None for DEFAULT)."""

    name: str
    start: datetime | None
    end: datetime | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of ``moment``'s calendar month."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    """``start`` (a month start) moved by ``months`` calendar months."""
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, start: datetime) -> str:
    """``<table>_pYYYYMM`` for the month starting at ``start``."""
    return f"{table}_p{start:%Y%m}"


def default_partition_name(table: str) -> str:
    return f"{table}_default"


def is_partitioned(connection: BaseDatabaseWrapper, table: str) -> bool:
    """True when ``table`` is a partitioned table (PostgreSQL ``relkind = 'p'``)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def list_partitions(connection: BaseDatabaseWrapper, table: str) -> list[Partition]:
    """The partitions attached to ``table``, oldest first, DEFAULT last (bounds read from the catalog)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = to_regclass(%s)
            """,
            [table],
        )
        rows = cursor.fetchall()
    partitions = []
    for name, bound in rows:
        if bound == "DEFAULT":
            partitions.append(Partition(name, None, None))
            continue
        found = re.findall(r"'([^']+)'", bound)
        start, end = (datetime.fromisoformat(value).astimezone(UTC) for value in found[:2])
        partitions.append(Partition(name, start, end))
    return sorted(partitions, key=lambda p: (p.is_default, p.start or datetime.min.replace(tzinfo=UTC)))


def upkeep_lock(connection: BaseDatabaseWrapper) -> None:
    """Take the partition upkeep's advisory lock (``UPKEEP_LOCK_KEY``) until the end of the transaction:
    every creator and dropper of partitions (``prune_logs``, ``generate_logs``, the migration) queues on it,
    so two never see the same month missing and both create it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [UPKEEP_LOCK_KEY])


def ensure_month_partitions(
    connection: BaseDatabaseWrapper, table: str, months: Iterable[datetime], *, dry_run: bool = False
) -> list[str]:
    """Create the monthly partitions of ``table`` for the month starts ``months`` that do not exist yet.

    Returns the names created (or that would be, with ``dry_run``). Each partition is created as a plain
    table and then attached (``ATTACH PARTITION`` takes only a SHARE UPDATE EXCLUSIVE lock on the parent,
    so syncs inserting meanwhile are not blocked; ``CREATE TABLE … PARTITION OF`` would take an ACCESS
    EXCLUSIVE one). Rows of that month already in the DEFAULT partition are moved into it first
    (attaching would otherwise fail). Run inside a transaction (it holds :func:`upkeep_lock` until its
    end); idempotent.
    """
    upkeep_lock(connection)
    existing = {p.start for p in list_partitions(connection, table) if not p.is_default}
    created = []
    quote = connection.ops.quote_name
    default = default_partition_name(table)
    for start in sorted(set(months)):
        if start in existing:
            continue
        name = partition_name(table, start)
        created.append(name)
        if dry_run:
            continue
        end = add_months(start, 1)
        bounds = [start.isoformat(), end.isoformat()]
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
            cursor.execute(
                f"ALTER TABLE {quote(name)} ADD CONSTRAINT {quote(name + '_bounds')} "
                f"CHECK ({PARTITION_KEY} IS NOT NULL AND {PARTITION_KEY} >= %s AND {PARTITION_KEY} < %s)",
                bounds,
            )
            cursor.execute(
                f"SELECT 1 FROM {quote(default)} WHERE {PARTITION_KEY} >= %s AND {PARTITION_KEY} < %s LIMIT 1",
                bounds,
            )
            if cursor.fetchone():
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {quote(default)} WHERE {PARTITION_KEY} >= %s "
                    f"AND {PARTITION_KEY} < %s RETURNING *) INSERT INTO {quote(name)} SELECT * FROM moved",
                    bounds,
                )
            cursor.execute(
                f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} FOR VALUES FROM (%s) TO (%s)", bounds
            )
            # The check only made ATTACH skip its validation scan; the partition bound now says the same.
            cursor.execute(f"ALTER TABLE {quote(name)} DROP CONSTRAINT {quote(name + '_bounds')}")
    return created


def drop_partition(connection: BaseDatabaseWrapper, table: str, name: str) -> None:
    """Detach partition ``name`` from ``table`` and drop it (inside the caller's transaction)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(name)}")
        cursor.execute(f"DROP TABLE {quote(name)}")


def _fetch(connection: BaseDatabaseWrapper, sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def partition_table(connection: BaseDatabaseWrapper, spec: PartitionSpec, *, now: datetime, ahead: int = 3) -> None:
    """Turn the plain table ``spec.table`` into a monthly partitioned one, keeping its rows, in the caller's
    transaction (the migration's).

    Steps: rename the table; create the partitioned parent ``LIKE`` it (columns, defaults, identity, checks);
    create a partition per month from the oldest row's month to ``ahead`` months past ``now`` and the
    DEFAULT partition; copy every row (ids kept); continue the identity sequence after the old one; drop
    the old table; add the primary key ``(id, created_at)``, the old table's indexes (the idempotency
    unique index/constraint as a plain index), its foreign keys, and the two triggers (see the module
    docstring). Whatever indexes the table has when the migration runs are recreated, so migrations that
    added indexes before this one are kept.
    """
    quote = connection.ops.quote_name
    table = spec.table
    old = f"{table}__unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {quote(table)} IN ACCESS EXCLUSIVE MODE")
    indexes = _fetch(connection, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
    constraints = _fetch(
        connection,
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'u', 'f')",
        [table],
    )
    constraint_names = {name for name, kind, _ in constraints if kind in "pu"}
    foreign_keys = [(name, definition) for name, kind, definition in constraints if kind == "f"]
    pk_name = next(name for name, kind, _ in constraints if kind == "p")
    (old_sequence_value,) = _fetch(connection, f"SELECT last_value FROM {pg_sequence(connection, table)}", [])[0]
    oldest = _fetch(connection, f"SELECT min({PARTITION_KEY}) FROM {quote(table)}", [])[0][0]

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
        cursor.execute(
            f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS INCLUDING IDENTITY "
            f"INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ({PARTITION_KEY})"
        )
        cursor.execute(f"CREATE TABLE {quote(default_partition_name(table))} PARTITION OF {quote(table)} DEFAULT")
    first = month_start(min(oldest, now) if oldest else now)
    last = add_months(month_start(now), ahead)
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    ensure_month_partitions(connection, table, months)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")
        cursor.execute(f"DROP TABLE {quote(old)}")
        sequence = pg_sequence(connection, table)
        cursor.execute(
            f"SELECT setval('{sequence}', GREATEST(%s, (SELECT max(id) FROM {quote(table)})))", [old_sequence_value]
        )
        _rename_sequence(cursor, sequence, f"{table}_id_seq")
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(pk_name)} PRIMARY KEY (id, {PARTITION_KEY})")
        for name, definition in indexes:
            if name == pk_name:
                continue
            if name in constraint_names or name == spec.unique_name:
                columns = ", ".join(quote(column) for column in spec.unique_columns)
                where = f" WHERE {spec.unique_condition.replace('NEW.', '')}" if spec.unique_condition else ""
                cursor.execute(f"CREATE INDEX {quote(name)} ON {quote(table)} ({columns}){where}")
                continue
            # Read before the rename, so the definition names the table itself.
            cursor.execute(re.sub(r"^CREATE (UNIQUE )?INDEX", "CREATE INDEX", definition))
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
        for statement in trigger_sql(spec):
            cursor.execute(statement)
        cursor.execute(f"ANALYZE {quote(table)}")


def _rename_sequence(cursor, sequence: str, name: str) -> None:
    if sequence.split(".")[-1].strip('"') != name:
        cursor.execute(f'ALTER SEQUENCE {sequence} RENAME TO "{name}"')


def pg_sequence(connection: BaseDatabaseWrapper, table: str) -> str:
    """The name of the identity sequence of ``table.id``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        return cursor.fetchone()[0]


def trigger_sql(spec: PartitionSpec) -> list[str]:
    """SQL creating the append-only trigger (when ``spec.append_only``) and the uniqueness trigger on the
    parent (cloned to every partition)."""
    table = spec.table
    key_match = " AND ".join(f"t.{column} = NEW.{column}" for column in spec.unique_columns)
    condition = spec.unique_condition or "TRUE"
    when = f"WHEN ({spec.unique_condition}) " if spec.unique_condition else ""
    same_rows = f"{key_match} AND {condition.replace('NEW.', 't.')}"
    columns = ", ".join(spec.unique_columns)
    append_only = [
        f"""
        CREATE OR REPLACE FUNCTION {table}_forbid_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '{table} is append-only: rows cannot be updated'
                USING ERRCODE = 'restrict_violation';
        END $$
        """,
        f"""
        CREATE TRIGGER {table}_forbid_update BEFORE UPDATE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_forbid_update()
        """,
    ]
    return [
        *(append_only if spec.append_only else []),
        f"""
        CREATE OR REPLACE FUNCTION {table}_unique_sync() RETURNS trigger LANGUAGE plpgsql
        -- PL/pgSQL keeps one plan per session: one made while this month's partition was still empty
        -- would scan it sequentially for the rest of the session (each insert then reads the whole
        -- month). The index on the key is always the right plan.
        SET enable_seqscan = off AS $$
        BEGIN
            -- Serialize writers of the account, then look in every partition.
            PERFORM 1 FROM {spec.account_table} WHERE id = NEW.{spec.account_column} FOR NO KEY UPDATE;
            IF EXISTS (SELECT 1 FROM {table} t WHERE {same_rows}) THEN
                RAISE EXCEPTION 'duplicate key value violates unique constraint "{spec.unique_name}"'
                    USING ERRCODE = 'unique_violation', CONSTRAINT = '{spec.unique_name}',
                          DETAIL = 'Key ({columns}) already exists.';
            END IF;
            RETURN NEW;
        END $$
        """,
        f"""
        CREATE TRIGGER {table}_unique_sync BEFORE INSERT ON {table}
            FOR EACH ROW {when}EXECUTE FUNCTION {table}_unique_sync()
        """,
    ]


def unpartition_table(connection: BaseDatabaseWrapper, spec: PartitionSpec, *, unique_sql: str) -> None:
    """Reverse of :func:`partition_table`: a plain table with the same rows, ``id`` primary key, the indexes
    and foreign keys, and ``unique_sql`` (the idempotency constraint's DDL) instead of the triggers."""
    quote = connection.ops.quote_name
    table = spec.table
    old = f"{table}__partitioned"
    indexes = _fetch(connection, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
    constraints = _fetch(
        connection,
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'f')",
        [table],
    )
    pk_name = next(name for name, kind, _ in constraints if kind == "p")
    foreign_keys = [(name, definition) for name, kind, definition in constraints if kind == "f"]
    (sequence_value,) = _fetch(connection, f"SELECT last_value FROM {pg_sequence(connection, table)}", [])[0]
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(old)}")
        cursor.execute(
            f"CREATE TABLE {quote(table)} (LIKE {quote(old)} INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)"
        )
        cursor.execute(f"INSERT INTO {quote(table)} SELECT * FROM {quote(old)}")
        cursor.execute(f"DROP TABLE {quote(old)} CASCADE")
        for function in ("forbid_update", "unique_sync"):
            cursor.execute(f"DROP FUNCTION IF EXISTS {table}_{function}()")
        sequence = pg_sequence(connection, table)
        cursor.execute(
            f"SELECT setval('{sequence}', GREATEST(%s, (SELECT max(id) FROM {quote(table)})))", [sequence_value]
        )
        _rename_sequence(cursor, sequence, f"{table}_id_seq")
        cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(pk_name)} PRIMARY KEY (id)")
        for name, definition in indexes:
            if name in (pk_name, spec.unique_name):
                continue
            cursor.execute(definition.replace(" ON ONLY ", " ON "))  # read before the rename
        cursor.execute(unique_sql)
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
