"""Factories for read-side tests: reconciliation log rows written directly (no sync)."""

from __future__ import annotations

import uuid

import factory
from django.db.models import F

from accounts.models import Account
from accounts.tests.factories import account_of
from reconciliation.models import ReconciliationLog


class ReconciliationLogFactory(factory.django.DjangoModelFactory):
    """A successful ``sync`` row that took 12 ms (override ``event_type`` etc. per test)."""

    class Meta:
        model = ReconciliationLog
        skip_postgeneration_save = True  # the log is append-only

    account = factory.LazyAttribute(account_of)

    sync_id = factory.LazyFunction(uuid.uuid4)
    event_type = ReconciliationLog.EventType.SYNC
    status = ReconciliationLog.Status.SUCCESS
    duration_ms = 12
    message = "sync accepted"

    @factory.post_generation
    def count_sync(obj, create, extracted, **kwargs):  # noqa: N805 - factory_boy passes the object
        """A sync row is written by a sync, which also counts it on its account (``Account.sync_count``)."""
        if create and obj.event_type == ReconciliationLog.EventType.SYNC:
            Account.objects.filter(pk=obj.account_id).update(sync_count=F("sync_count") + 1)
