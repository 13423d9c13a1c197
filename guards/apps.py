from django.apps import AppConfig


class GuardsConfig(AppConfig):
    """Risk guards: drawdown from peak equity, price gaps, wide spreads and stale quotes."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "guards"

    def ready(self) -> None:
        """Register the app's hot read for write-through warming after each write (SPEC §7)."""
        from guards.selectors import warm_guard_status
        from tradingsite.caching import register_user_read_warmer

        register_user_read_warmer(warm_guard_status)
