"""Reconciliation: the append-only audit trail of every sync, match, divergence and close."""

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.fields import MoneyField
from positions.models import PRICE, VOLUME

SLIPPAGE_PIPS: dict[str, Any] = {"max_digits": 12, "decimal_places": 2}  # ReconciliationLog.slippage_pips


class AppendOnlyError(Exception):
    """Raised when code tries to update or delete a row of an append-only table."""


class AppendOnlyQuerySet(models.QuerySet):
    """QuerySet whose bulk ``update`` and ``delete`` raise :class:`AppendOnlyError`."""

    def update(self, **kwargs):
        raise AppendOnlyError("ReconciliationLog is append-only: rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError("ReconciliationLog is append-only: rows cannot be deleted.")

    delete.queryset_only = True  # type: ignore[attr-defined]


class ReconciliationLog(models.Model):
    """One event of the reconciliation trail; inserted once, never updated or deleted by the app.

    Exactly one ``sync`` row per accepted sync, unique per (user, sync_id); its ``details`` hold the
    sync's response summary, which an idempotent replay returns. Other rows are written on
    transitions only: ``match`` when a position is first confirmed, ``divergence`` when a reason
    appears, ``divergence_resolved`` when it clears, ``close`` when a position closes, and the lifecycle
    events (``partial_close``, ``position_increased``, ``reversed``, ``ticket_changed``,
    ``reappeared_at_broker``, ``sl_updated``, ``tp_updated``) when the broker shows them.
    """

    class EventType(models.TextChoices):
        SYNC = "sync"
        MATCH = "match"
        DIVERGENCE = "divergence"
        DIVERGENCE_RESOLVED = "divergence_resolved"
        CLOSE = "close"
        GUARD = "guard"
        ERROR = "error"
        # Lifecycle events (what the broker did on the position's life; not divergences).
        PARTIAL_CLOSE = "partial_close"
        POSITION_INCREASED = "position_increased"
        REVERSED = "reversed"
        TICKET_CHANGED = "ticket_changed"
        REAPPEARED = "reappeared_at_broker"
        SL_UPDATED = "sl_updated"
        TP_UPDATED = "tp_updated"

    class Status(models.TextChoices):
        SUCCESS = "success"
        WARNING = "warning"
        FAILED = "failed"

    class DivergenceReason(models.TextChoices):
        SIDE_MISMATCH = "side_mismatch"
        PARTIAL_FILL = "partial_fill"
        VOLUME_MISMATCH = "volume_mismatch"
        ENTRY_SLIPPAGE = "entry_slippage"
        SL_MISMATCH = "sl_mismatch"
        TP_MISMATCH = "tp_mismatch"
        UNEXPECTED_AT_BROKER = "unexpected_at_broker"
        MISSING_AT_BROKER = "missing_at_broker"
        UNEXPLAINED_BALANCE_CHANGE = "unexplained_balance_change"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reconciliation_logs", db_index=False
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="reconciliation_logs", db_index=False
    )
    sync_id = models.UUIDField(default=uuid.uuid4, help_text="The sync that produced this row.")
    event_type = models.CharField(max_length=20, choices=EventType.choices)
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.SUCCESS)
    # RESTRICT: a position with log rows cannot be deleted on its own; deleting the user removes both.
    position = models.ForeignKey(
        "positions.Position", on_delete=models.RESTRICT, null=True, blank=True, related_name="logs"
    )
    ticket = models.BigIntegerField(null=True, blank=True)
    symbol = models.CharField(max_length=32, blank=True)
    side = models.CharField(max_length=4, blank=True)
    volume = models.DecimalField(**VOLUME, null=True, blank=True)
    price_open = models.DecimalField(**PRICE, null=True, blank=True)
    price_current = models.DecimalField(**PRICE, null=True, blank=True)
    matched = models.BooleanField(null=True, blank=True)
    divergence_reason = models.CharField(max_length=32, choices=DivergenceReason.choices, blank=True)
    slippage_pips = models.DecimalField(**SLIPPAGE_PIPS, null=True, blank=True)
    close_reason = models.CharField(max_length=20, blank=True)
    close_price = models.DecimalField(**PRICE, null=True, blank=True)
    realized_pnl = MoneyField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Sync rows: processing time.")
    broker_time = models.DateTimeField(null=True, blank=True, help_text="Sync rows: the snapshot's broker time.")
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Expected vs actual values; sync summary.")
    created_at = models.DateTimeField(default=timezone.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "sync_id"],
                condition=Q(event_type="sync"),
                name="%(app_label)s_%(class)s_one_sync_row_per_sync",
            ),
        ]
        indexes = [
            # logs/ cursor pagination and recent_events: (user, account, created_at, id).
            models.Index(fields=["user", "account", "created_at", "id"], name="reclog_account_created"),
            # status counts and event-type filters: (user, account, event_type, created_at).
            models.Index(fields=["user", "account", "event_type", "created_at"], name="reclog_account_event_created"),
            # ticket filter and a position's story: (user, account, ticket).
            models.Index(fields=["user", "account", "ticket"], name="reclog_account_ticket"),
            # Exceptions to "indexes start with user", for the admin only: the admin is
            # staff-only and deliberately not user-scoped, so its changelist
            # orders all users' rows newest first, pages with OFFSET and filters date ranges across
            # users — without this index every admin page sorts the whole table (~0.9 s at 1M rows).
            models.Index(fields=["created_at", "id"], name="reclog_created"),
            # ...and its ticket search spans users ("my position 700101 vanished"); partial, so the
            # sync rows (most of the table, ticket NULL) cost nothing.
            models.Index(fields=["ticket"], condition=Q(ticket__isnull=False), name="reclog_ticket"),
            # ...and its first filter, event type across users: the page walks this index and the
            # bounded count is an index-only scan (~2 ms for 10,001 entries instead of a ~25-100 ms
            # table scan at 1M rows).
            models.Index(fields=["event_type", "created_at", "id"], name="reclog_event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event_type} {self.ticket or ''}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("ReconciliationLog is append-only: rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("ReconciliationLog is append-only: rows cannot be deleted.")


# The log's recorded columns, declared once, in groups, in the order every listing shows them. The API
# serializer, the admin's detail page, the CSV export and ``generate_logs`` compose their column lists
# from these (adding a column to the model means adding it here; each then shows it). The keys around
# them (id, user, account, position, created_at) are added by each consumer where it needs them.
LOG_EVENT_FIELDS = ("sync_id", "event_type", "status")
LOG_POSITION_FIELDS = (
    "ticket",
    "symbol",
    "side",
    "volume",
    "price_open",
    "price_current",
    "matched",
    "divergence_reason",
    "slippage_pips",
)
LOG_CLOSE_FIELDS = ("close_reason", "close_price", "realized_pnl")
LOG_SYNC_FIELDS = ("duration_ms", "broker_time")
LOG_TEXT_FIELDS = ("message", "details")
LOG_FIELDS = (*LOG_EVENT_FIELDS, *LOG_POSITION_FIELDS, *LOG_CLOSE_FIELDS, *LOG_SYNC_FIELDS, *LOG_TEXT_FIELDS)
"""Every column a log row records, without its keys (id, user, account, position, created_at)."""
