"""Factories for read-side tests: reconciliation log rows written directly (no sync)."""

from __future__ import annotations

import uuid

import factory

from accounts.tests.factories import account_of
from reconciliation.models import ReconciliationLog


class ReconciliationLogFactory(factory.django.DjangoModelFactory):
    """A successful ``sync`` row that took 12 ms (override ``event_type`` etc. per test)."""

    class Meta:
        model = ReconciliationLog

    account = factory.LazyAttribute(account_of)

    sync_id = factory.LazyFunction(uuid.uuid4)
    event_type = ReconciliationLog.EventType.SYNC
    status = ReconciliationLog.Status.SUCCESS
    duration_ms = 12
    message = "sync accepted"
