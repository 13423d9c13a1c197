from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    """Broker sync ingestion, reconciliation against the ledger, and the append-only log."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "reconciliation"
