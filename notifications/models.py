"""Notifications: per-user webhook endpoints and the outbox of deliveries written with each event.

A ``WebhookDelivery`` row is the outbox: it is inserted in the same transaction as the
``ReconciliationLog`` row it announces (``services.outbox_enqueue``), so an event that commits always
has its deliveries and a rolled-back sync has none. The worker (``manage.py deliver_webhooks``)
delivers them per endpoint in event (log row id) order, retrying with exponential backoff and
dead-lettering after ``WEBHOOK_MAX_ATTEMPTS`` failures.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reconciliation.models import ReconciliationLog

# Log row status, in increasing severity: an endpoint receives events at or above its minimum level.
LEVELS = tuple(ReconciliationLog.Status.values)  # success, warning, failed


def level_rank(level: str) -> int:
    """Severity rank of a log row status (``success`` 0 < ``warning`` 1 < ``failed`` 2)."""
    return LEVELS.index(level)


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """A URL of the user's that receives signed POSTs for the user's events.

    ``event_types`` filters by log event type (an empty list means every type); ``min_level`` by the
    log row's status (``success`` < ``warning`` < ``failed``). ``secret`` signs every delivery; the
    API shows it once, when the endpoint is created.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500, help_text="http(s) URL that receives the POSTs.")
    secret = models.CharField(max_length=64, default=new_secret, editable=False)
    event_types = models.JSONField(default=list, blank=True, help_text="Log event types to send; empty: all.")
    min_level = models.CharField(
        max_length=7, choices=ReconciliationLog.Status.choices, default=ReconciliationLog.Status.SUCCESS
    )
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at", "id"], name="webhook_user_created")]

    def __str__(self) -> str:
        return f"{self.url} ({self.user_id})"

    def wants(self, event_type: str, status: str) -> bool:
        """True when this endpoint is active and its filters accept an event of ``event_type`` and ``status``."""
        if not self.active:
            return False
        if self.event_types and event_type not in self.event_types:
            return False
        return level_rank(status) >= level_rank(self.min_level)


class WebhookDelivery(models.Model):
    """One event to deliver to one endpoint (the outbox row), and its delivery attempts.

    ``pending`` until a 2xx answer (``delivered``) or ``WEBHOOK_MAX_ATTEMPTS`` failures (``dead``).
    ``event_id`` is the log row id: deliveries of an endpoint go out in ``event_id`` order.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.BigIntegerField(help_text="The reconciliation log row id (the event's id).")
    event_type = models.CharField(max_length=20)
    payload = models.JSONField(help_text="The JSON body POSTed, as built when the event committed.")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["endpoint_id", "event_id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_one_delivery_per_event"),
        ]
        indexes = [
            # The worker: the head of each endpoint's pending queue.
            models.Index(fields=["endpoint", "event_id"], condition=Q(status="pending"), name="webhook_pending_queue"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_id} → {self.endpoint_id} ({self.status})"
