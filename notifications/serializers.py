"""notifications serializers: webhook endpoints (the secret appears once, in the create response)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import serializers

from notifications.models import WebhookEndpoint
from reconciliation.models import ReconciliationLog

ENDPOINT_FIELDS: tuple[str, ...] = (
    "id",
    "url",
    "event_types",
    "min_level",
    "active",
    "description",
    "created_at",
    "updated_at",
)


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """A webhook endpoint of the user's: where events are POSTed and which ones.

    event_types: log event types to send (sync, match, divergence, divergence_resolved, close, guard,
    error); an empty list sends every type. min_level: the lowest log status sent (success < warning <
    failed). The signing secret is never shown here; it is returned once, when the endpoint is created.
    """

    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=ReconciliationLog.EventType.choices),
        max_length=len(ReconciliationLog.EventType.choices),
        required=False,
        help_text="Event types to send; empty: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = ENDPOINT_FIELDS
        read_only_fields: tuple[str, ...] = ("id", "created_at", "updated_at")

    def validate_url(self, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise serializers.ValidationError("Only http and https URLs.")
        if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
            return value
        host = (parts.hostname or "").lower()
        if host == "localhost" or host.endswith(".localhost"):
            raise serializers.ValidationError("Loopback and private addresses are refused.")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return value
        if not address.is_global:
            raise serializers.ValidationError("Loopback and private addresses are refused.")
        return value

    def validate_event_types(self, value: list[str]) -> list[str]:
        return sorted(set(value))

    def validate(self, attrs):
        user_id = self.context["user_id"]
        if (
            self.instance is None
            and WebhookEndpoint.objects.filter(user_id=user_id).count() >= settings.WEBHOOK_MAX_ENDPOINTS
        ):
            raise serializers.ValidationError(f"At most {settings.WEBHOOK_MAX_ENDPOINTS} endpoints per user.")
        return attrs


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The create response: the endpoint and its signing ``secret``, shown this once only."""

    secret = serializers.CharField(read_only=True, help_text="Signing secret; store it now, it is not shown again.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = (*ENDPOINT_FIELDS, "secret")
        read_only_fields = (*WebhookEndpointSerializer.Meta.read_only_fields, "secret")
