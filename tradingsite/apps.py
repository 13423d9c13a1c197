from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TradingsiteConfig(AppConfig):
    """Project plumbing shared by every app (no models)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "tradingsite"

    def ready(self) -> None:
        """Import every app's ``selectors`` module, so the hot reads they declare with
        ``tradingsite.caching.cached_read`` are registered for write-through warming in any process
        (a web worker, a management command) without a line in each app (as the admin autodiscovers
        ``admin`` modules)."""
        autodiscover_modules("selectors")
