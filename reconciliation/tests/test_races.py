"""Races on PostgreSQL between a user's first sync and a registration or a first guards/config read (issue 15).

Before: the sync locked the user row FOR UPDATE, which conflicts with the FOR KEY SHARE lock every
insert referencing the user takes for its foreign-key check; the sync then waited on the other
transaction's insert (same ticket, or the one-config-per-user row): a deadlock, answered 503. Now every
writer locks the user row FOR NO KEY UPDATE first (one lock order), create-on-first-use rows are
inserted ON CONFLICT DO NOTHING, a deadlock or serialization failure is retried once, and a registration
arriving after the broker reported its ticket adopts the broker-first row.
"""

import threading
from decimal import Decimal as D

import pytest
from django.db import connection
from rest_framework.test import APIClient

from conftest import access_token_for
from guards.models import GuardConfig
from positions.models import Position
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import (
    POSITIONS_URL,
    SYNC_URL,
    Clock,
    broker_position,
    register_payload,
    sync_payload,
)

ROUNDS = 8  # users, each racing once: CI-sized (before the fix most rounds ended in a 503)


def race(calls: list) -> list[int]:
    """Run each ``(method, url, body, token)`` in its own thread from one barrier; return the statuses in order."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index, method, url, body, token):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait(timeout=10)
            response = getattr(client, method)(url, body, format="json") if body is not None else client.get(url)
            statuses[index] = response.status_code
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert None not in statuses, statuses  # every thread answered within the join timeout
    return [status for status in statuses if status is not None]


def make_users(django_user_model, count):
    return [django_user_model.objects.create_user(username=f"racer{i}", password="x") for i in range(count)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_registration_racing_the_first_sync_of_its_ticket_always_lands(django_user_model):
    clock = Clock()
    for user in make_users(django_user_model, ROUNDS):
        token = access_token_for(user)
        # the bot registers ticket 1 at 1.09500 while the worker reports it filled at 1.09530 (3 pips)
        sync = sync_payload(broker_time=clock.tick(), positions=[broker_position(1, price_open="1.09530")])
        statuses = race([("post", POSITIONS_URL, register_payload(1), token), ("post", SYNC_URL, sync, token)])
        assert statuses == [201, 201], (user.username, statuses)
        # whichever came first, one row: the bot's (requested price recorded), open at the broker's fill
        position = Position.objects.get(user=user, ticket=1)
        assert (position.origin, position.status) == ("bot", "open")
        assert (position.requested_price, position.price_open) == (D("1.09500"), D("1.09530"))
        # the next sync re-evaluates against the bot's intent: (1.09530 − 1.09500) / 0.0001 = 3 pips of
        # entry slippage (> 2), and no longer unexpected_at_broker
        again = sync_payload(broker_time=clock.tick(), positions=[broker_position(1, price_open="1.09530")])
        assert race([("post", SYNC_URL, again, token)]) == [201]
        position.refresh_from_db()
        assert (position.divergence_reasons, position.matched) == (["entry_slippage"], False)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_first_guards_config_read_racing_the_first_sync_never_fails(django_user_model):
    clock = Clock()
    for user in make_users(django_user_model, ROUNDS):
        token = access_token_for(user)
        sync = sync_payload(broker_time=clock.tick())
        statuses = race([("get", "/api/v1/guards/config/", None, token), ("post", SYNC_URL, sync, token)])
        assert statuses == [200, 201], (user.username, statuses)
        assert GuardConfig.objects.filter(user=user).count() == 1
        assert ReconciliationLog.objects.filter(user=user, event_type="sync").count() == 1


# ---------------------------------------------------------------------------------------------
# The same rules without threads (both backends)
# ---------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_registration_after_the_broker_reported_the_ticket_adopts_the_row(auth_client, user):
    clock = Clock()
    sync = sync_payload(broker_time=clock.tick(), positions=[broker_position(1, price_open="1.09530")])
    assert auth_client.post(SYNC_URL, sync, format="json").status_code == 201
    assert Position.objects.get(user=user, ticket=1).divergence_reasons == ["unexpected_at_broker"]
    # the bot's registration arrives late: adopted (was a 400 "already registered", unexpected forever)
    response = auth_client.post(POSITIONS_URL, register_payload(1), format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["origin"], response.json()["requested_price"]) == ("bot", "1.09500000")
    assert Position.objects.filter(user=user, ticket=1).count() == 1
    # the next sync: unexpected_at_broker resolved, entry slippage (1.09530 − 1.09500) / 0.0001 = 3.00 pips opened
    sync = sync_payload(broker_time=clock.tick(), positions=[broker_position(1, price_open="1.09530")])
    summary = auth_client.post(SYNC_URL, sync, format="json").json()
    assert (summary["counts"]["divergences_resolved"], summary["counts"]["divergences_opened"]) == (1, 1)
    resolved = ReconciliationLog.objects.get(user=user, event_type="divergence_resolved")
    opened = ReconciliationLog.objects.filter(user=user, event_type="divergence").latest("id")
    assert resolved.divergence_reason == "unexpected_at_broker"
    assert (opened.divergence_reason, opened.slippage_pips) == ("entry_slippage", D("3.00"))


@pytest.mark.django_db
def test_a_registration_of_a_bot_ticket_or_another_symbol_is_still_refused(auth_client, user):
    clock = Clock()
    sync = sync_payload(broker_time=clock.tick(), positions=[broker_position(1, price_open="1.09530")])
    auth_client.post(SYNC_URL, sync, format="json")
    # the broker's ticket 1 is EURUSD: a registration naming GBPUSD is not that position
    response = auth_client.post(
        POSITIONS_URL, register_payload(1, symbol="GBPUSD", requested_price="1.25"), format="json"
    )
    assert response.status_code == 400 and list(response.json()) == ["ticket"]
    assert auth_client.post(POSITIONS_URL, register_payload(1), format="json").status_code == 201
    # registered twice: the second is refused as before
    response = auth_client.post(POSITIONS_URL, register_payload(1), format="json")
    assert response.status_code == 400 and list(response.json()) == ["ticket"]


class _Aborted(Exception):
    def __init__(self, sqlstate):
        self.sqlstate = sqlstate


def _failing(sqlstate, failures):
    from django.db import OperationalError

    calls = []

    def func():
        calls.append(1)
        if len(calls) <= failures:
            error = OperationalError("aborted")
            error.__cause__ = _Aborted(sqlstate)
            raise error
        return len(calls)

    return func, calls


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlock_or_serialization_failure_is_retried_once(sqlstate):
    from django.db import OperationalError

    from tradingsite.db import retry_conflict_once

    func, calls = _failing(sqlstate, failures=1)
    assert retry_conflict_once(func)() == 2  # second attempt succeeded
    func, calls = _failing(sqlstate, failures=2)
    with pytest.raises(OperationalError):
        retry_conflict_once(func)()
    assert len(calls) == 2  # once, not forever


def test_other_database_errors_are_not_retried():
    from django.db import OperationalError

    from tradingsite.db import retry_conflict_once

    func, calls = _failing("55P03", failures=1)  # lock_timeout: answered 429 by the API, never retried here
    with pytest.raises(OperationalError):
        retry_conflict_once(func)()
    assert len(calls) == 1
