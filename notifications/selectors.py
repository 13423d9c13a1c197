"""notifications selectors: the user's webhook endpoints and the event rows a stream sends."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import Account
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


def newest_event_ids(*, user_ids: Collection[int]) -> dict[int, int]:
    """{user id: id of that user's newest log row} for ``user_ids`` (users without a row are absent).

    One statement for all the users (the stream hub's resync): for each of their accounts a LATERAL
    ``ORDER BY created_at DESC, id DESC LIMIT 1`` on the ``(user, account, created_at, id)`` index,
    which reads one index entry per account and partition instead of all the user's rows; the
    maximum per user is taken here. The newest row by (created_at, id) is the one with the largest
    id: a sync's rows share one ``created_at`` and one user's syncs are serialized by its lock.
    """
    if not user_ids:
        return {}
    account_rows = ReconciliationLog.objects.filter(user_id=OuterRef("user_id"), account_id=OuterRef("pk"))
    newest = account_rows.order_by("-created_at", "-id").values("pk")[:1]
    found: dict[int, int] = {}
    rows = Account.objects.filter(user_id__in=list(user_ids)).order_by().annotate(newest=Subquery(newest))
    for user_id, row_id in rows.values_list("user_id", "newest"):
        if row_id is not None and row_id > found.get(user_id, 0):
            found[user_id] = row_id
    return found
