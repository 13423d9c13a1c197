"""Two syncs of one user at the same moment on PostgreSQL serialize on the user's row."""

import threading
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from conftest import access_token_for
from guards.models import EquitySnapshot
from positions.models import Position
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, sync_payload


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
    token = access_token_for(user)
    barrier = threading.Barrier(len(payloads))
    statuses: list[int] = []
    errors: list[BaseException] = []

    def post(payload):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=10)
            statuses.append(client.post(SYNC_URL, payload, format="json").status_code)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own real connection

    threads = [threading.Thread(target=post, args=(p,)) for p in payloads]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then: both accepted, one after the other
    assert not errors
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
    token = access_token_for(user)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def post():
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=10)
            statuses.append(client.post(SYNC_URL, payload, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then: one creates (201), the other replays (200); one sync row, one snapshot
    assert sorted(statuses) == [200, 201]
    assert ReconciliationLog.objects.filter(user=user, event_type="sync").count() == 1
    assert EquitySnapshot.objects.filter(user=user).count() == 1
