"""notifications admin: endpoints (secret hidden) and the delivery outbox with a retry action for dead letters."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.models import WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints per user; the secret is never displayed (the owner saw it once through the API)."""

    list_display = ("id", "user", "url", "min_level", "active", "created_at")
    list_filter = ("active", "min_level")
    search_fields = ("url", "user__username")
    raw_id_fields = ("user",)
    readonly_fields = ("created_at", "updated_at")
    exclude = ("secret",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The outbox: every delivery with its attempts; filter ``status = dead`` for the dead letters."""

    list_display = (
        "id",
        "endpoint",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
    )
    list_filter = ("status", "event_type")
    search_fields = ("endpoint__url", "endpoint__user__username")
    ordering = ("-id",)
    actions = ("retry",)
    list_select_related = ("endpoint",)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry the selected dead deliveries")
    def retry(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = services.delivery_retry(delivery_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} dead deliveries queued again.", messages.SUCCESS)
