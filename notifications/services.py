"""notifications services: the outbox written with each event, and the webhook delivery worker.

``outbox_enqueue`` is called by the sync service right after it inserts its log rows, inside the
same transaction: a ``WebhookDelivery`` per (matching endpoint, event) commits or rolls back with
the event, and after commit the users' event streams are woken (``notifications.bus``).

``deliver_due`` is one pass of the worker: for each endpoint with pending deliveries, the oldest
pending one (lowest log row id) is tried when due; on success the next follows, on failure the
endpoint's queue waits for the retry, so a receiver sees its events in order. Delivery is at least
once: a receiver that answered 2xx after a timeout on our side sees a retry with the same
``Tradingsite-Delivery`` id and event ``id``.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from notifications import bus
from notifications.models import WebhookDelivery, WebhookEndpoint
from notifications.signing import SIGNATURE_HEADER, signature_header
from reconciliation.models import ReconciliationLog
from reconciliation.serializers import ReconciliationLogSerializer

logger = logging.getLogger("tradingsite.notifications")


def event_payload(row: ReconciliationLog) -> dict:
    """The JSON body of an event: ``{"id", "type", "level", "created_at", "data"}``.

    ``id`` is the log row id (increasing per user, the SSE ``id`` too), ``type`` its event type,
    ``level`` its status (success/warning/failed), ``data`` the row as ``reconciliation/logs/{id}/``
    renders it.
    """
    data = ReconciliationLogSerializer(row).data
    return {
        "id": row.pk,
        "type": row.event_type,
        "level": row.status,
        "created_at": data["created_at"],
        "data": json.loads(json.dumps(data)),
    }


def outbox_enqueue(log_rows: Iterable[ReconciliationLog]) -> int:
    """Write one pending ``WebhookDelivery`` per (log row, active endpoint of its user that wants it).

    Call inside the transaction that inserted ``log_rows`` (their ids must be set): the deliveries
    commit with them. Also wakes the users' event streams once the transaction commits. One query
    for the endpoints, one bulk insert when any matches. Returns the number of deliveries written.
    """
    rows = [row for row in log_rows if row.pk is not None]
    user_ids = sorted({row.user_id for row in rows})
    if not user_ids:
        return 0
    transaction.on_commit(lambda: bus.publish(user_ids))
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(user_id__in=user_ids, active=True).order_by("pk"):
        endpoints.setdefault(endpoint.user_id, []).append(endpoint)
    if not endpoints:
        return 0
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            endpoint=endpoint,
            event_id=row.pk,
            event_type=row.event_type,
            payload=event_payload(row),
            next_attempt_at=now,
            created_at=now,
        )
        for row in sorted(rows, key=lambda r: r.pk)
        for endpoint in endpoints.get(row.user_id, ())
        if endpoint.wants(row.event_type, row.status)
    ]
    WebhookDelivery.objects.bulk_create(deliveries)
    return len(deliveries)


# --------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendResult:
    """Outcome of one POST: ``ok`` on a 2xx; ``status_code`` when the receiver answered; ``error`` text."""

    ok: bool
    status_code: int | None = None
    error: str = ""


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> SendResult:
    """POST ``body`` to ``url`` with ``headers``; any non-2xx answer, refusal or timeout is a failure."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # http(s) only: validated URL
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return SendResult(ok=200 <= response.status < 300, status_code=response.status)
    except urllib.error.HTTPError as exc:
        return SendResult(ok=False, status_code=exc.code, error=f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return SendResult(ok=False, error=str(getattr(exc, "reason", exc))[:300])


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failures: base × 2^(attempts−1), capped.

    With the defaults (``WEBHOOK_BACKOFF_BASE_S`` 5, ``WEBHOOK_BACKOFF_CAP_S`` 3600): 5, 10, 20, 40,
    80 s, …, one hour at most; a receiver down for a minute is retried 75 s after the first failure.
    """
    base = settings.WEBHOOK_BACKOFF_BASE_S
    return timedelta(seconds=min(base * 2 ** (attempts - 1), settings.WEBHOOK_BACKOFF_CAP_S))


@dataclass
class DeliveryStats:
    """Counts of one :func:`deliver_due` pass."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0


Sender = Callable[[str, bytes, dict[str, str], float], SendResult]


def deliver_due(*, now: Callable[[], datetime] = timezone.now, send: Sender = post_json, per_endpoint: int = 100):
    """One worker pass: deliver each endpoint's due pending deliveries in event order.

    ``now`` is the clock (injectable for tests), ``send`` the HTTP POST. Per endpoint, at most
    ``per_endpoint`` deliveries; the queue stops at the first failure, which is retried after
    :func:`backoff` and dead-lettered at ``WEBHOOK_MAX_ATTEMPTS`` (a dead delivery no longer blocks
    the queue). On PostgreSQL each endpoint is locked (``SKIP LOCKED``) while it is worked on, so
    several workers never send the same delivery twice concurrently. Returns :class:`DeliveryStats`.
    """
    stats = DeliveryStats()
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    endpoint_ids = sorted(set(pending.filter(next_attempt_at__lte=now()).values_list("endpoint_id", flat=True)))
    skip_locked = connection.features.has_select_for_update_skip_locked
    for endpoint_id in endpoint_ids:
        # SQLite has no row locks: no transaction there, or the HTTP call would hold the write lock.
        with transaction.atomic() if skip_locked else nullcontext():
            endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True)
            if skip_locked:
                endpoints = endpoints.select_for_update(skip_locked=True)
            endpoint = endpoints.first()
            if endpoint is None:
                continue
            queue = pending.filter(endpoint_id=endpoint_id).order_by("event_id")[:per_endpoint]
            for delivery in queue:
                if delivery.next_attempt_at > now():
                    break  # the head waits for its retry; later events wait behind it
                delivered = _attempt(endpoint, delivery, now(), send, stats)
                if not delivered and delivery.status != WebhookDelivery.Status.DEAD:
                    break
    return stats


def _attempt(endpoint: WebhookEndpoint, delivery: WebhookDelivery, at: datetime, send: Sender, stats) -> bool:
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "tradingsite-webhooks/1",
        "Tradingsite-Event": delivery.event_type,
        "Tradingsite-Delivery": str(delivery.pk),
        SIGNATURE_HEADER: signature_header(endpoint.secret, int(at.timestamp()), body),
    }
    result = send(endpoint.url, body, headers, settings.WEBHOOK_TIMEOUT_S)
    delivery.attempts += 1
    delivery.last_attempt_at = at
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error[:300]
    if result.ok:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = at
        stats.delivered += 1
    elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.DEAD
        stats.dead += 1
        logger.warning("webhook delivery %s dead after %s attempts", delivery.pk, delivery.attempts)
    else:
        delivery.next_attempt_at = at + backoff(delivery.attempts)
        stats.failed += 1
    delivery.save(
        update_fields=[
            "attempts",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return result.ok


def delivery_retry(*, delivery_ids: Iterable[int], now: datetime | None = None) -> int:
    """Put dead deliveries back in their queue (pending, attempts 0, due now); the admin's "Retry" action."""
    return WebhookDelivery.objects.filter(pk__in=list(delivery_ids), status=WebhookDelivery.Status.DEAD).update(
        status=WebhookDelivery.Status.PENDING, attempts=0, next_attempt_at=now or timezone.now(), last_error=""
    )


def endpoint_create(*, user_id: int, **fields) -> WebhookEndpoint:
    """Create an endpoint for the user with a fresh secret.

    ``fields``: url, event_types, min_level, active, description (validated by the serializer).
    """
    return WebhookEndpoint.objects.create(user_id=user_id, **fields)


def endpoint_update(*, endpoint: WebhookEndpoint, **fields) -> WebhookEndpoint:
    """Update the given fields of the user's endpoint (its secret never changes here)."""
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint
