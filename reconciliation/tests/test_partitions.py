"""Monthly partitions of the reconciliation log and the equity snapshots (PostgreSQL), and ``prune_logs``.

The test database is migrated, so both tables are partitioned here exactly as in production. Every test
acts on months far from today (2031, 2040) through ``prune_logs --now`` so its expectations do not depend
on the date the suite runs; PostgreSQL DDL is transactional, so each test's partitions vanish with its
rolled-back transaction.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from accounts.tests.factories import default_account
from guards.models import EquitySnapshot
from guards.tests.read_factories import EquitySnapshotFactory
from reconciliation.models import ReconciliationLog
from tradingsite.admin import estimated_row_count
from tradingsite.partitions import is_partitioned, list_partitions

LOG = ReconciliationLog._meta.db_table
SNAPSHOT = EquitySnapshot._meta.db_table

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_logs", *args, stdout=out)
    return out.getvalue()


def _names(table: str) -> set[str]:
    return {p.name for p in list_partitions(connection, table)}


def _log(user, created_at: datetime, **fields) -> ReconciliationLog:
    fields.setdefault("event_type", "match")
    return ReconciliationLog.objects.create(user=user, account=default_account(user), created_at=created_at, **fields)


def _partition_of(model, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _fire_deferred_checks() -> None:
    # The foreign keys are DEFERRABLE INITIALLY DEFERRED: PostgreSQL refuses to detach a partition while
    # the same transaction has pending checks, which only happens here because a test inserts and prunes
    # in one transaction (the command runs in its own).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_the_tables_are_partitioned_with_a_default_partition():
    for table in (LOG, SNAPSHOT):
        partitions = list_partitions(connection, table)
        assert partitions[-1].name == f"{table}_default"
        assert partitions[-1].is_default
        assert all(p.name.startswith(f"{table}_p") for p in partitions[:-1])


def test_prune_logs_creates_the_current_and_the_next_months_partitions_and_is_idempotent():
    # given "now" is 2031-01-10 and 2 months ahead
    out = _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "2")

    # then January, February and March 2031 exist for both tables
    for table in (LOG, SNAPSHOT):
        assert {f"{table}_p203101", f"{table}_p203102", f"{table}_p203103"} <= _names(table)
        assert f"{table}: create {table}_p203103" in out
    assert f"{LOG}_p203104" not in _names(LOG)
    # and a second run finds nothing to do
    again = _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "2", "--older-than", "99999d")
    assert "create" not in again
    assert f"{LOG}: nothing to do" in again


def test_rows_land_in_their_months_partition(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "2", "--older-than", "99999d")
    january = _log(user, datetime(2031, 1, 31, 23, 59, 59, tzinfo=UTC))
    february = _log(user, datetime(2031, 2, 1, 0, 0, tzinfo=UTC))  # the bound belongs to the later month

    assert _partition_of(ReconciliationLog, january.pk) == f"{LOG}_p203101"
    assert _partition_of(ReconciliationLog, february.pk) == f"{LOG}_p203102"
    # an equity snapshot is stamped now (auto_now_add): it lands in the current month's partition
    snapshot = EquitySnapshotFactory.create(user=user)
    assert _partition_of(EquitySnapshot, snapshot.pk) == f"{SNAPSHOT}_p{snapshot.created_at:%Y%m}"


def test_the_default_partition_catches_a_row_outside_every_month_and_upkeep_moves_it(user):
    # given a row in 2040, a month no partition covers
    row = _log(user, datetime(2040, 1, 15, tzinfo=UTC))
    assert _partition_of(ReconciliationLog, row.pk) == f"{LOG}_default"
    out = _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "0", "--older-than", "99999d")
    assert f"1 rows in {LOG}_default" in out

    # when the upkeep reaches January 2040
    _prune("--now", "2040-01-02T00:00:00+00:00", "--ahead", "0", "--older-than", "99999d")

    # then the row moved into the new month's partition, unchanged
    assert _partition_of(ReconciliationLog, row.pk) == f"{LOG}_p204001"
    assert ReconciliationLog.objects.get(pk=row.pk).created_at == datetime(2040, 1, 15, tzinfo=UTC)


def test_prune_logs_drops_only_partitions_past_the_retention(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "2", "--older-than", "99999d")
    old = _log(user, datetime(2031, 1, 5, tzinfo=UTC))
    kept = _log(user, datetime(2031, 3, 20, tzinfo=UTC))
    _fire_deferred_checks()

    # when pruning on 2031-06-15 with 90 days' retention: the cutoff is 2031-03-17 (June 15 − 90 days:
    # 15 days of June back to June 1, 31 of May, 30 of April, 14 of March = 90), so January (ends
    # Feb 1) and February (ends Mar 1) go, March (ends Apr 1, after the cutoff) stays
    out = _prune("--now", "2031-06-15T00:00:00+00:00", "--ahead", "0", "--older-than", "90d")

    names = _names(LOG)
    assert f"{LOG}_p203101" not in names
    assert f"{LOG}_p203102" not in names
    assert {f"{LOG}_p203103", f"{LOG}_p203106", f"{LOG}_default"} <= names
    assert f"{LOG}: drop {LOG}_p203101 [2031-01-01, 2031-02-01)" in out
    assert not ReconciliationLog.objects.filter(pk=old.pk).exists()
    assert ReconciliationLog.objects.filter(pk=kept.pk).exists()


def test_prune_logs_never_drops_the_current_month(user):
    _prune("--now", "2031-03-01T00:00:00+00:00", "--ahead", "0", "--older-than", "99999d")
    current = _log(user, datetime(2031, 3, 1, 0, 0, 30, tzinfo=UTC))
    _fire_deferred_checks()

    # 1 day of retention on March 2nd: the cutoff (March 1st) equals the current month's start
    _prune("--now", "2031-03-02T00:00:00+00:00", "--ahead", "0", "--older-than", "1d")

    assert f"{LOG}_p203103" in _names(LOG)
    assert ReconciliationLog.objects.filter(pk=current.pk).exists()


def test_dry_run_prints_the_plan_and_changes_nothing(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "0", "--older-than", "99999d")
    row = _log(user, datetime(2031, 1, 5, tzinfo=UTC))
    before = {table: _names(table) for table in (LOG, SNAPSHOT)}

    out = _prune("--now", "2031-06-15T00:00:00+00:00", "--ahead", "1", "--older-than", "90d", "--dry-run")

    assert f"{LOG}: would drop {LOG}_p203101" in out
    assert f"{LOG}: would create {LOG}_p203107" in out
    assert {table: _names(table) for table in (LOG, SNAPSHOT)} == before
    assert ReconciliationLog.objects.filter(pk=row.pk).exists()


def test_log_updates_are_refused_on_every_partition_including_new_ones(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "0", "--older-than", "99999d")
    in_new_partition = _log(user, datetime(2031, 1, 5, tzinfo=UTC))
    in_default = _log(user, datetime(2045, 1, 5, tzinfo=UTC))
    in_current_month = _log(user, datetime.now(UTC))

    for table, pk in ((LOG, in_new_partition.pk), (LOG, in_default.pk), (LOG, in_current_month.pk)):
        # raw SQL: past the ORM's own refusal
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET sync_id = %s WHERE id = %s", [uuid.uuid4(), pk])


def test_a_sync_row_is_unique_per_account_and_sync_id_across_partitions(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "1", "--older-than", "99999d")
    sync_id = uuid.uuid4()
    _log(user, datetime(2031, 1, 5, tzinfo=UTC), sync_id=sync_id, event_type="sync")

    # the same sync in another month's partition is refused like the unique constraint it replaces
    duplicate = "reconciliation_reconciliationlog_one_sync_row_per_sync"
    with pytest.raises(IntegrityError, match=duplicate), transaction.atomic():
        _log(user, datetime(2031, 2, 5, tzinfo=UTC), sync_id=sync_id, event_type="sync")
    # other event types of the same sync are not sync rows: allowed
    _log(user, datetime(2031, 2, 5, tzinfo=UTC), sync_id=sync_id, event_type="match")
    # and an equity snapshot's (account, sync_id) is unique too
    snapshot = EquitySnapshotFactory.create(user=user)
    with pytest.raises(IntegrityError, match="guards_equitysnapshot_unique_account_sync"), transaction.atomic():
        EquitySnapshotFactory.create(user=user, sync_id=snapshot.sync_id)


def test_the_uniqueness_triggers_always_plan_an_index_scan():
    # A session's cached plan made while a partition was empty would scan it sequentially ever after:
    # a bulk INSERT into an empty partition then reads the whole partition per row (docs/performance.md).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, proconfig FROM pg_proc WHERE proname IN (%s, %s) ORDER BY proname",
            [f"{SNAPSHOT}_unique_sync", f"{LOG}_unique_sync"],
        )
        rows = cursor.fetchall()
    assert rows == [
        (f"{SNAPSHOT}_unique_sync", ["enable_seqscan=off"]),
        (f"{LOG}_unique_sync", ["enable_seqscan=off"]),
    ]


def test_the_admin_row_estimate_sums_the_partitions(user):
    _prune("--now", "2031-01-10T00:00:00+00:00", "--ahead", "1", "--older-than", "99999d")
    ReconciliationLog.objects.bulk_create(
        [
            ReconciliationLog(
                user=user,
                account=default_account(user),
                event_type="match",
                created_at=datetime(2031, m, 5, tzinfo=UTC),
            )
            for m in (1, 1, 1, 2, 2)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {LOG}")
    # 3 rows in January's partition + 2 in February's (the parent itself holds none)
    assert estimated_row_count(ReconciliationLog) == 5


def test_prune_logs_refuses_a_retention_below_one_day():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="at least 1d"):
        _prune("--older-than", "0d")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_migration_keeps_existing_rows_and_ids_both_ways(user):
    from django.db.migrations.executor import MigrationExecutor

    before_partitioning = [("reconciliation", "0006_lifecycle_events")]
    latest = [("reconciliation", "0008_account_sync_count_backfill")]
    executor = MigrationExecutor(connection)
    executor.migrate(before_partitioning)
    try:
        # given a plain table holding a sync row from June 2025 (raw SQL: the models are the newer state)
        assert not is_partitioned(connection, LOG)
        account = default_account(user)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {LOG} (user_id, account_id, sync_id, event_type, status, symbol, side, "
                "divergence_reason, close_reason, message, details, created_at) VALUES "
                "(%s, %s, %s, 'sync', 'success', '', '', '', '', '', '{}', '2025-06-15T12:00:00Z') RETURNING id",
                [user.pk, account.pk, uuid.uuid4()],
            )
            (old_id,) = cursor.fetchone()

        # when migrating forward
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

        # then the row kept its id in June 2025's partition, ids continue after it, and the backfill counted it
        assert is_partitioned(connection, LOG)
        assert _partition_of(ReconciliationLog, old_id) == f"{LOG}_p202506"
        newer = _log(user, datetime(2025, 6, 16, tzinfo=UTC))
        assert newer.pk > old_id
        account.refresh_from_db()
        assert account.sync_count == 1

        # and back: a plain table with both rows and their ids
        executor = MigrationExecutor(connection)
        executor.migrate(before_partitioning)
        assert not is_partitioned(connection, LOG)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id FROM {LOG} ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == [old_id, newer.pk]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
