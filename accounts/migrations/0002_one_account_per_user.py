"""Move existing rows into accounts: one account per user that has rows.

Rows written before accounts existed belonged to a user directly. Each such user gets one account
(server "migrated", login = the user's id, currency and latest figures from the user's latest
equity snapshot, else "USD"), and every row of the user is pointed at it. An operator may correct
the server and login in the admin; a worker's next sync under its real (server, login) starts a
new account, with nothing inherited.
"""

from django.db import migrations

OWNED = (
    ("positions", "Position"),
    ("positions", "Quote"),
    ("guards", "GuardConfig"),
    ("guards", "GuardState"),
    ("guards", "EquitySnapshot"),
    ("guards", "DrawdownAlert"),
    ("guards", "MarketAlert"),
    ("reconciliation", "ReconciliationLog"),
)


def forwards(apps, schema_editor):
    Account = apps.get_model("accounts", "Account")
    EquitySnapshot = apps.get_model("guards", "EquitySnapshot")
    models = [apps.get_model(app, name) for app, name in OWNED]
    user_ids = set()
    for model in models:
        user_ids.update(model.objects.filter(account__isnull=True).values_list("user_id", flat=True).distinct())
    for user_id in sorted(user_ids):
        latest = EquitySnapshot.objects.filter(user_id=user_id).order_by("-created_at", "-id").first()
        account, _ = Account.objects.get_or_create(
            user_id=user_id,
            server="migrated",
            login=user_id,
            defaults={
                "currency": latest.currency if latest else "USD",
                "balance": latest.balance if latest else None,
                "equity": latest.equity if latest else None,
                "margin": latest.margin if latest else None,
                "margin_free": latest.margin_free if latest else None,
                "broker_time": latest.broker_time if latest else None,
                "last_sync_at": latest.created_at if latest else None,
            },
        )
        for model in models:
            model.objects.filter(user_id=user_id, account__isnull=True).update(account_id=account.pk)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("positions", "0003_account_nullable_instrument_server"),
        ("guards", "0003_account_nullable"),
        ("reconciliation", "0004_account_nullable"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
