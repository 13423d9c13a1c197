"""``generate_logs``: the requested number of rows, deterministically, over the requested users."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import Account
from demo.management.commands.generate_logs import COLUMNS, LogGenerator
from reconciliation.models import ReconciliationLog

pytestmark = pytest.mark.django_db

END = datetime(2026, 11, 30, tzinfo=UTC)


def _stored_rows() -> list[tuple]:
    fields = [c for c in COLUMNS if c != "user_id"]
    return list(ReconciliationLog.objects.order_by("created_at", "id").values_list("user__username", *fields))


def test_generate_logs_creates_the_requested_rows_and_users(capsys):
    # when generating 500 rows over 4 users, 120 per batch
    call_command("generate_logs", rows=500, users=4, seed=3, batch=120, skip_checks=True)

    # then there are 500 rows over exactly those 4 users, each sync row unique per (user, sync_id)
    usernames = [f"logs-user-00{i}" for i in range(1, 5)]
    assert ReconciliationLog.objects.count() == 500
    assert sorted(set(ReconciliationLog.objects.values_list("user__username", flat=True))) == usernames
    assert get_user_model().objects.filter(username__in=usernames, password__startswith="!").count() == 4
    kinds = Counter(ReconciliationLog.objects.values_list("event_type", flat=True))
    assert kinds["sync"] > 250  # "log by transition": most rows are sync rows
    assert {"match", "divergence", "close"} <= set(kinds)
    assert "Inserted 500 log rows for 4 users" in capsys.readouterr().out


def test_generate_logs_is_deterministic():
    # given the same arguments twice
    def stream() -> list[dict]:
        return list(LogGenerator(rows=300, user_ids=[7, 8, 9], seed=11, days=42, end=END))

    first, second = stream(), stream()
    other_seed = list(LogGenerator(rows=300, user_ids=[7, 8, 9], seed=12, days=42, end=END))

    # then the streams are equal row for row, a different seed differs, and times rise within 42 days
    assert first == second
    assert first != other_seed
    times = [row["created_at"] for row in first]
    assert times == sorted(times)
    assert END - timedelta(days=42) <= times[0] < times[-1] <= END


def test_generate_logs_stores_exactly_the_generated_stream():
    # when generating through the command
    call_command("generate_logs", rows=200, users=2, seed=5, batch=64, skip_checks=True)

    # then the stored rows equal the in-memory stream for the same arguments
    users = dict(get_user_model().objects.values_list("pk", "username"))
    expected_ids = sorted(users)
    # each user's rows belong to the one account the command gave it
    accounts = dict(Account.objects.values_list("user_id", "pk"))
    assert sorted(accounts) == expected_ids
    stream = LogGenerator(rows=200, user_ids=expected_ids, seed=5, days=42, end=END, account_ids=accounts)
    expected = [(users[row["user_id"]], *(row[c] for c in COLUMNS if c != "user_id")) for row in stream]
    assert _stored_rows() == expected


def test_generate_logs_refuses_to_duplicate_a_seed():
    # given a generated seed
    call_command("generate_logs", rows=20, users=2, seed=5, batch=10, skip_checks=True)

    # when the same seed is generated again
    with pytest.raises(CommandError, match="already exist"):
        call_command("generate_logs", rows=20, users=2, seed=5, batch=10, skip_checks=True)

    # then nothing was added
    assert ReconciliationLog.objects.count() == 20


def test_generate_logs_keeps_each_accounts_sync_count(capsys):
    # given 300 generated rows over 3 users (each user's one bench account)
    call_command("generate_logs", rows=300, users=3, seed=5, batch=100, skip_checks=True)
    # then every account's counter (reconciliation/status's total_syncs) equals its sync rows, as a sync keeps it
    sync_rows = Counter(
        ReconciliationLog.objects.filter(event_type=ReconciliationLog.EventType.SYNC).values_list(
            "account_id", flat=True
        )
    )
    counters = dict(Account.objects.filter(pk__in=sync_rows).values_list("pk", "sync_count"))
    assert len(counters) == 3 and sum(sync_rows.values()) > 150
    assert counters == dict(sync_rows)
