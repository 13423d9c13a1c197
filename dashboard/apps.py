from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The trader's dashboard at ``/``: server-rendered, updated live from the event stream."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "dashboard"
