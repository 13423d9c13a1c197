from django.apps import AppConfig


class TradingsiteConfig(AppConfig):
    """Project plumbing shared by every app (no models)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tradingsite"
