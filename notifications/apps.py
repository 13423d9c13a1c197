from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Notifications: signed webhooks (an outbox written with each event) and the live event stream."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
