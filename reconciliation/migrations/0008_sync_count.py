"""``SyncCount``: the per-account number of sync rows, kept by a trigger on the log's inserts.

The status read counted the account's sync rows on every computation (``COUNT(*)`` over its whole
history); the trigger keeps the number instead. The table is filled from the existing rows in the same
transaction as the trigger is created, with the log locked against inserts meanwhile.
"""

import django.db.models.deletion
from django.db import migrations, models

LOG = "reconciliation_reconciliationlog"
COUNT = "reconciliation_synccount"

POSTGRES = [
    f"LOCK TABLE {LOG} IN SHARE MODE",
    f"""
    CREATE FUNCTION {COUNT}_add() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {COUNT} (account_id, total_syncs) VALUES (NEW.account_id, 1)
        ON CONFLICT (account_id) DO UPDATE SET total_syncs = {COUNT}.total_syncs + 1;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE TRIGGER {COUNT}_add AFTER INSERT ON {LOG}
        FOR EACH ROW WHEN (NEW.event_type = 'sync') EXECUTE FUNCTION {COUNT}_add()
    """,
]
SQLITE = [
    f"""
    CREATE TRIGGER {COUNT}_add AFTER INSERT ON {LOG} WHEN NEW.event_type = 'sync'
    BEGIN
        INSERT INTO {COUNT} (account_id, total_syncs) VALUES (NEW.account_id, 1)
        ON CONFLICT (account_id) DO UPDATE SET total_syncs = total_syncs + 1;
    END
    """,
]
BACKFILL = (
    f"INSERT INTO {COUNT} (account_id, total_syncs) "
    f"SELECT account_id, COUNT(*) FROM {LOG} WHERE event_type = 'sync' GROUP BY account_id"
)


def forwards(apps, schema_editor):
    statements = POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE
    for statement in [*statements, BACKFILL]:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {COUNT}_add" + (f" ON {LOG}" if schema_editor.connection.vendor == "postgresql" else ""))
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {COUNT}_add()")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_one_account_per_user"),
        ("reconciliation", "0007_partition_log"),
    ]

    operations = [
        migrations.CreateModel(
            name="SyncCount",
            fields=[
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="sync_count",
                        serialize=False,
                        to="accounts.account",
                    ),
                ),
                ("total_syncs", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
