"""notifications selectors: the user's webhook endpoints and the event rows a stream sends."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import WebhookDelivery, WebhookEndpoint
from reconciliation.models import ReconciliationLog


def endpoint_list(*, user_id: int) -> QuerySet[WebhookEndpoint]:
    """The user's webhook endpoints, newest first."""
    return WebhookEndpoint.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def delivery_list(*, user_id: int) -> QuerySet[WebhookDelivery]:
    """Deliveries to the user's endpoints (joined through the endpoint's owner)."""
    return WebhookDelivery.objects.filter(endpoint__user_id=user_id)


def events_after(*, user_id: int, after_id: int, limit: int) -> list[ReconciliationLog]:
    """The user's log rows with ``id > after_id``, oldest first, at most ``limit`` (a stream's next batch).

    Log ids only grow, and one user's syncs are serialized by the sync service's user lock, so a
    row committed after a reader passed ``after_id`` always has a larger id: resuming from the last
    id seen misses nothing.
    """
    return list(ReconciliationLog.objects.filter(user_id=user_id, pk__gt=after_id).order_by("pk")[:limit])


def latest_event_id(*, user_id: int) -> int:
    """The id of the user's newest log row, 0 when none (where a stream without ``Last-Event-ID`` starts)."""
    return ReconciliationLog.objects.filter(user_id=user_id).order_by("-pk").values_list("pk", flat=True).first() or 0
