from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data and admin benchmark commands; no models."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "demo"
