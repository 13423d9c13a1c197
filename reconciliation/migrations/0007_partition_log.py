"""Partition the reconciliation log by month on PostgreSQL (``tradingsite.partitions``); nothing on SQLite.

Runs in the migration's one transaction: the rows are copied into the partitioned table and the old
table is dropped, so a failure leaves the table as it was. The model's state does not change: Django
keeps ``id`` as the pk and the idempotency ``UniqueConstraint`` (enforced by a trigger on PostgreSQL).
"""

from django.db import migrations
from django.utils import timezone

from tradingsite.partitions import PartitionSpec, partition_table, unpartition_table

SPEC = PartitionSpec(
    table="reconciliation_reconciliationlog",
    unique_name="reconciliation_reconciliationlog_one_sync_row_per_sync",
    unique_columns=("account_id", "sync_id"),
    unique_condition="NEW.event_type = 'sync'",
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
                f'CREATE UNIQUE INDEX "{SPEC.unique_name}" ON "{SPEC.table}" '
                "(account_id, sync_id) WHERE event_type = 'sync'"
            ),
        )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_one_account_per_user"),
        ("reconciliation", "0006_lifecycle_events"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
