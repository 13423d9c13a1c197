"""Two syncs of one user at the same moment on PostgreSQL serialize on the user's row."""

import threading
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.models import Account
from conftest import access_token_for
from guards.models import EquitySnapshot, GuardState
from positions.models import Position
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, sync_payload


def post_at_once(token: str, payloads: list[dict]) -> list[int]:
    """POST each payload to the sync endpoint from its own thread (its own real database connection), all
    released together by a barrier; return the statuses. A thread that raised fails the test."""
    barrier = threading.Barrier(len(payloads))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def post(payload: dict) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=10)
            statuses.append(client.post(SYNC_URL, payload, format="json").status_code)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own real connection

    threads = [threading.Thread(target=post, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    return statuses


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # restores the shipped instruments
def test_concurrent_syncs_of_one_user_serialize_and_both_land(user):
    # given two different syncs with the same broker time, both reporting the same manual trade
    t = Clock().tick()
    manual = broker_position(900, symbol="XAUUSD", volume="0.10", price_open="1950.00")
    payloads = [
        sync_payload(
            broker_time=t, sync_id=uuid.uuid4(), positions=[manual], equity=equity,
            quotes=[quote("XAUUSD", "1950.00", "1950.30")],
        )
        for equity in ("10000.00", "9990.00")
    ]  # fmt: skip
    # when they are posted at the same moment
    statuses = post_at_once(access_token_for(user), payloads)
    # then: both accepted, one after the other
    assert sorted(statuses) == [201, 201]
    assert ReconciliationLog.objects.filter(user=user, event_type="sync").count() == 2
    assert EquitySnapshot.objects.filter(user=user).count() == 2
    # the manual trade was created once and logged once: the second sync saw the first one's row
    assert Position.objects.filter(user=user, ticket=900, origin="broker").count() == 1
    assert ReconciliationLog.objects.filter(user=user, event_type="divergence", ticket=900).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # restores the shipped instruments
def test_concurrent_replays_of_one_sync_id_write_one_sync(user):
    # given the same sync posted twice at the same moment (a worker retry racing the original)
    payload = sync_payload(broker_time=Clock().tick(), positions=[])
    statuses = post_at_once(access_token_for(user), [payload, payload])
    # then: one creates (201), the other replays (200); one sync row, one snapshot
    assert sorted(statuses) == [200, 201]
    assert ReconciliationLog.objects.filter(user=user, event_type="sync").count() == 1
    assert EquitySnapshot.objects.filter(user=user).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # restores the shipped instruments
@override_settings(SYNC_MAX_IN_FLIGHT=3)
def test_concurrent_syncs_of_a_synced_account_each_see_the_last_ones_rows(user):
    # given an account that has synced once (so each sync locks user, account, guard config and state in
    # one statement), then three syncs at the same broker time with different equity, at the same moment
    clock = Clock()
    token = access_token_for(user)
    first = APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert first.post(SYNC_URL, sync_payload(broker_time=clock.tick(), positions=[]), format="json").status_code == 201
    t = clock.tick()
    payloads = [
        sync_payload(broker_time=t, positions=[], equity=equity) for equity in ("10010.00", "9990.00", "10020.00")
    ]
    statuses = post_at_once(token, payloads)
    # then all three land, one after the other, and each read the rows the one before it wrote: the
    # account's counter is 1 + 3 = 4 (a stale account row would have lost an increment), its equity is
    # the last committed sync's, and the guard state's index equity is that same figure
    assert sorted(statuses) == [201, 201, 201]
    account = Account.objects.get(user=user)
    last = EquitySnapshot.objects.filter(user=user).latest("id")
    assert account.sync_count == ReconciliationLog.objects.filter(user=user, event_type="sync").count() == 4
    assert account.equity == last.equity
    assert GuardState.objects.get(account=account).index_equity == last.equity
