from django.apps import AppConfig


class PositionsConfig(AppConfig):
    """Ledger of broker positions, instruments, latest quotes and valuation."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "positions"

    def ready(self) -> None:
        """Register the app's hot read for write-through warming after each write (SPEC §7)."""
        from positions.selectors import warm_open_positions
        from tradingsite.caching import register_user_read_warmer

        register_user_read_warmer(warm_open_positions)
