from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """MT5 trading accounts: the unit every position, quote, snapshot, guard and log row belongs to."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
