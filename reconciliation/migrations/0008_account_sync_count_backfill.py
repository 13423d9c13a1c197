"""Fill ``Account.sync_count`` with each account's number of ``sync`` log rows (the status's
``total_syncs``, which reconciliation/status counted on every miss until the sync kept the counter)."""

from django.db import migrations
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_syncs(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    ReconciliationLog = apps.get_model("reconciliation", "ReconciliationLog")
    syncs = (
        ReconciliationLog.objects.filter(account=OuterRef("pk"), event_type="sync")
        .order_by()
        .values("account")
        .annotate(n=Count("pk"))
        .values("n")
    )
    Account.objects.update(sync_count=Coalesce(Subquery(syncs), 0))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_account_sync_count"),
        ("reconciliation", "0007_partition_log"),
    ]

    operations = [migrations.RunPython(count_syncs, migrations.RunPython.noop)]
