"""Partition the equity snapshots by month on PostgreSQL (``tradingsite.partitions``); nothing on SQLite.

Runs in the migration's one transaction: the rows are copied into the partitioned table and the old
table is dropped, so a failure leaves the table as it was. The model's state does not change: Django
keeps ``id`` as the pk and the (account, sync_id) ``UniqueConstraint`` (enforced by a trigger on PostgreSQL).
"""

from django.db import migrations
from django.utils import timezone

from tradingsite.partitions import PartitionSpec, partition_table, unpartition_table

SPEC = PartitionSpec(
    table="guards_equitysnapshot",
    unique_name="guards_equitysnapshot_unique_account_sync",
    unique_columns=("account_id", "sync_id"),
    unique_condition=None,
    append_only=False,  # not declared append-only by the application (a snapshot row is never updated by it)
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        partition_table(schema_editor.connection, SPEC, now=timezone.now())


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        unpartition_table(
            schema_editor.connection,
            SPEC,
            unique_sql=(
                f'ALTER TABLE "{SPEC.table}" ADD CONSTRAINT "{SPEC.unique_name}" UNIQUE (account_id, sync_id)'
            ),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_one_account_per_user"),
        ("guards", "0008_symbol_spread"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
