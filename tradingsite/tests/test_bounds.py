"""Bounds on one request and one user (issue 15): chunked bodies, syncs in flight, database lock waits."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError, connection, connections
from django.test import override_settings

from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import SYNC_URL, Clock, sync_payload
from tradingsite import throttling
from tradingsite.api import LockTimeout, exception_handler, is_lock_timeout
from tradingsite.throttling import sync_slot


def test_a_chunked_body_without_content_length_is_a_411_and_writes_nothing(auth_client, user):
    # given a valid sync body sent with Transfer-Encoding: chunked and no Content-Length (an empty
    # CONTENT_LENGTH is what the WSGI server passes then; Django would read the body as empty: a 400)
    body = sync_payload(broker_time=Clock().tick())
    # when
    response = auth_client.post(SYNC_URL, body, format="json", HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="")
    # then 411 Length Required with a JSON body that says what to do, and nothing written
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    assert not ReconciliationLog.objects.filter(user=user).exists()


def test_a_body_with_content_length_and_a_transfer_encoding_header_is_read(auth_client, user):
    # given the same body with its Content-Length (the test client sets it) and a chunked header
    response = auth_client.post(
        SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json", HTTP_TRANSFER_ENCODING="chunked"
    )
    # then it is read and accepted as usual
    assert response.status_code == 201, response.content


# --------------------------------------------------------------------------------------------
# Syncs of one user in flight
# --------------------------------------------------------------------------------------------
@override_settings(SYNC_MAX_IN_FLIGHT=2, SYNC_IN_FLIGHT_RETRY_AFTER_S=3)
def test_past_the_in_flight_bound_a_sync_is_a_429_with_retry_after_and_other_users_are_not_affected(
    auth_client, other_client, user
):
    # given two syncs of the user being processed (their slots held)
    with sync_slot(user.pk), sync_slot(user.pk):
        # when a third arrives, then 429 with Retry-After: 3 (the setting) and nothing written
        response = auth_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json")
        assert response.status_code == 429, response.content
        assert response["Retry-After"] == "3"
        assert response.json()["detail"].startswith("Too many syncs of this account in flight; retry shortly.")
        assert not ReconciliationLog.objects.filter(user=user).exists()
        # and another user's sync worker is served
        assert other_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json").status_code == 201
    # then once one of them finished, the user's sync is accepted again
    assert auth_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json").status_code == 201


@override_settings(SYNC_MAX_IN_FLIGHT=1)
def test_a_sync_slot_is_given_back_when_the_sync_fails(auth_client):
    # given a sync that fails validation (400) inside ... then the next one is not refused as in flight
    assert auth_client.post(SYNC_URL, {"broker_time": "not a time"}, format="json").status_code == 400
    assert auth_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json").status_code == 201


@override_settings(SYNC_MAX_IN_FLIGHT=1)
def test_the_in_flight_bound_holds_in_process_memory_while_redis_is_skipped(monkeypatch, user):
    # given the Redis breaker open: the counter lives in the per-process cache
    monkeypatch.setattr(throttling, "_redis_is_skipped", lambda: True)
    with sync_slot(user.pk), pytest.raises(throttling.SyncsInFlight), sync_slot(user.pk):
        pass
    # and after the block the slot is free again
    with sync_slot(user.pk):
        pass


# --------------------------------------------------------------------------------------------
# Lock waits: 429 + Retry-After, never "database unavailable"
# --------------------------------------------------------------------------------------------
def test_a_lock_timeout_maps_to_429_with_retry_after_and_a_lost_connection_stays_503():
    class LockNotAvailable(Exception):
        sqlstate = "55P03"

    lock_error = OperationalError("canceling statement due to lock timeout")
    lock_error.__cause__ = LockNotAvailable()
    assert is_lock_timeout(lock_error)
    assert is_lock_timeout(OperationalError("database is locked"))  # SQLite's busy timeout
    response = exception_handler(lock_error, {})
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response.data["detail"] == LockTimeout.default_detail
    lost = exception_handler(OperationalError("server closed the connection unexpectedly"), {})
    assert lost.status_code == 503


@pytest.mark.postgres
@pytest.mark.django_db
def test_every_postgresql_connection_carries_the_lock_timeout_setting():
    # DB_LOCK_TIMEOUT_MS defaults to 3000 (settings.py) → PostgreSQL reports "3s"
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "3s"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # restores the shipped instruments
def test_a_sync_waiting_on_a_lock_past_the_bound_is_a_429_not_a_503(auth_client, user):
    # given another session holding auth_user in EXCLUSIVE mode: plain reads (authentication) pass,
    # every row lock on a user (a sync's first step, and the FK checks of its inserts) waits
    holder = connections.create_connection("default")
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE auth_user IN EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")  # the test's bound; the setting's is checked above
        # when the user's sync arrives
        started = time.monotonic()
        response = auth_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick()), format="json")
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    # then 429 with Retry-After and a message about the account, after about the bound, and nothing written
    assert response.status_code == 429, response.content
    assert response["Retry-After"] == "1"
    assert response.json()["detail"] == LockTimeout.default_detail
    assert elapsed < 5
    assert not ReconciliationLog.objects.filter(user=user).exists()
