from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    """Broker sync ingestion, reconciliation against the ledger, and the append-only log."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "reconciliation"

    def ready(self) -> None:
        """Register the app's hot read for write-through warming after each write (SPEC §7)."""
        from reconciliation.selectors import warm_reconciliation_status
        from tradingsite.caching import register_user_read_warmer

        register_user_read_warmer(warm_reconciliation_status)
