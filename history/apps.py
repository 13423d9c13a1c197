from django.apps import AppConfig


class HistoryConfig(AppConfig):
    """History: the equity curve, realized P&L per day and trade statistics (read only, no models)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "history"
