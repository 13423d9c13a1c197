from django.apps import AppConfig


class PositionsConfig(AppConfig):
    """Ledger of broker positions, instruments, latest quotes and valuation."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "positions"
