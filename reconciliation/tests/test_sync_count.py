"""``total_syncs`` comes from the trigger-kept ``SyncCount``, not from counting the account's log rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Account
from accounts.tests.factories import default_account
from reconciliation.models import ReconciliationLog, SyncCount
from reconciliation.selectors import compute_reconciliation_status

pytestmark = pytest.mark.django_db


def _rows(user, account, *event_types: str) -> None:
    ReconciliationLog.objects.bulk_create(
        [ReconciliationLog(user=user, account=account, event_type=event_type) for event_type in event_types]
    )


def test_the_trigger_counts_sync_rows_per_account(user):
    account = default_account(user)
    other = Account.objects.create(user=user, server="Other-Server", login=77, currency="USD")
    # 3 sync rows and 2 other rows on the first account, 1 sync row on the second
    _rows(user, account, "sync", "match", "sync", "divergence", "sync")
    _rows(user, other, "sync")

    assert SyncCount.objects.get(account=account).total_syncs == 3
    assert SyncCount.objects.get(account=other).total_syncs == 1
    # the status of one account, and of all the user's accounts (3 + 1)
    assert compute_reconciliation_status(user_id=user.id, account_id=account.pk)["total_syncs"] == 3
    assert compute_reconciliation_status(user_id=user.id)["total_syncs"] == 4


def test_the_status_never_counts_the_log(user):
    account = default_account(user)
    _rows(user, account, "sync", "sync")
    log_table = ReconciliationLog._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        status = compute_reconciliation_status(user_id=user.id, account_id=account.pk)

    assert status["total_syncs"] == 2
    counts_of_the_log = [
        q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and log_table in q["sql"]
    ]
    assert counts_of_the_log == []
