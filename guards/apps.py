from django.apps import AppConfig


class GuardsConfig(AppConfig):
    """Risk guards: drawdown from peak equity, price gaps, wide spreads and stale quotes."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "guards"
