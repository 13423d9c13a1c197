"""``GET /api/v1/events/stream/`` (Server-Sent Events): resume, live delivery, per-user isolation.

The async path is driven through Django's ASGI test client (``AsyncClient``) as uvicorn would run
it; the WSGI path (runserver, the browser test's live server) through the ordinary client. Streams
end after ``SSE_MAX_S`` (a fraction of a second here), so every read is bounded.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient, Client, override_settings

from conftest import access_token_for
from notifications import stream
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, sync_payload

STREAM = "/api/v1/events/stream/"
FAST = {"SSE_POLL_S": 0.05, "SSE_HEARTBEAT_S": 0.2, "SSE_MAX_S": 0.6}
pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def parse(text: str) -> list[dict]:
    """SSE messages of ``text``: ``{"id": int | None, "data": str, "comment": bool}`` per block."""
    messages = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
        messages.append(
            {
                "id": int(fields["id"]) if "id" in fields else None,
                "data": fields.get("data"),
                "comment": block[0] == ":",
            }
        )
    return messages


def event_ids(text: str) -> list[int]:
    return [m["id"] for m in parse(text) if m["id"] is not None]


def read_stream(headers: dict, *, query: str = "", during=None) -> str:
    """The whole stream (it ends after SSE_MAX_S) through the ASGI handler; ``during()`` runs once it is open."""

    async def go() -> str:
        response = await AsyncClient().get(STREAM + query, headers=headers)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "text/event-stream"
        chunks = []
        async for chunk in response.streaming_content:  # type: ignore[attr-defined]  # a streaming response
            chunks.append(chunk.decode())
            if during is not None and len(chunks) == 1:  # the first chunk (retry:) means the stream is open
                await sync_to_async(during)()
        return "".join(chunks)

    return async_to_sync(go)()


def bearer(user) -> dict:
    return {"Authorization": f"Bearer {access_token_for(user)}"}


# Transactional tests start from an empty database (no seeded instruments): the sync sends the spec.
EURUSD = {"symbol": "EURUSD", "trade_contract_size": "100000", "digits": 5, "point": "0.00001",
          "currency_base": "EUR", "currency_profit": "USD"}  # fmt: skip


def post_syncs(client, clock: Clock, count: int, ticket: int) -> None:
    for i in range(count):
        positions = [broker_position(ticket)] if i == 0 else []
        body = {**sync_payload(broker_time=clock.tick(), positions=positions), "symbols": [EURUSD]}
        response = client.post(SYNC_URL, body, format="json")
        assert response.status_code == 201, response.content


def ids_of(user) -> list[int]:
    return list(ReconciliationLog.objects.filter(user=user).order_by("pk").values_list("pk", flat=True))


@override_settings(**FAST)
def test_resume_returns_exactly_the_events_missed(user, auth_client):
    # given six log rows (3 syncs: a divergence, its close, sync rows) of which the client saw three
    post_syncs(auth_client, Clock(), 3, ticket=5001)
    rows = ids_of(user)
    assert len(rows) >= 5
    seen = rows[2]
    # when it reconnects with Last-Event-ID
    text = read_stream({**bearer(user), "Last-Event-ID": str(seen)})
    # then it receives exactly the rows after that id, in order, each once
    assert event_ids(text) == rows[3:]
    assert text.startswith("retry: 2000\n\n")
    # and ?last_event_id= does the same on a first connection; no id at all starts after the newest row
    assert event_ids(read_stream(bearer(user), query=f"?last_event_id={rows[0]}")) == rows[1:]
    assert event_ids(read_stream(bearer(user))) == []


@override_settings(**FAST)
def test_new_rows_arrive_while_connected_and_heartbeats_keep_it_open(user, auth_client):
    before = set(ids_of(user))
    text = read_stream(bearer(user), during=lambda: post_syncs(auth_client, Clock(), 2, ticket=5002))
    new = [pk for pk in ids_of(user) if pk not in before]
    assert new and event_ids(text) == new
    assert any(m["comment"] for m in parse(text))  # ": heartbeat" within SSE_HEARTBEAT_S of silence


@override_settings(**FAST)
def test_user_a_never_sees_user_b_events(user, other_user, auth_client, other_client):
    clock = Clock()
    post_syncs(auth_client, clock, 2, ticket=700101)
    post_syncs(other_client, clock, 2, ticket=700101)  # same ticket, another user
    # from the very beginning (Last-Event-ID: 0), each stream carries only its user's rows
    assert event_ids(read_stream({**bearer(user), "Last-Event-ID": "0"})) == ids_of(user)
    assert event_ids(read_stream({**bearer(other_user), "Last-Event-ID": "0"})) == ids_of(other_user)
    # and live: Bob's syncs while Alice is connected send Alice nothing
    text = read_stream(
        {**bearer(user), "Last-Event-ID": str(ids_of(user)[-1])}, during=lambda: post_syncs(other_client, clock, 1, 1)
    )
    assert event_ids(text) == []


@override_settings(**FAST)
def test_session_login_and_the_wsgi_path_stream_too(user, auth_client):
    post_syncs(auth_client, Clock(), 1, ticket=5003)
    rows = ids_of(user)
    client = Client()
    client.force_login(user)
    response = client.get(STREAM, headers={"Last-Event-ID": "0"})
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert event_ids(b"".join(response.streaming_content).decode()) == rows


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}])
def test_without_valid_credentials_it_is_a_json_401(headers):
    response = Client().get(STREAM, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_deactivated_user_cannot_open_a_stream_with_a_still_valid_token(user):
    token = bearer(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert Client().get(STREAM, headers=token).status_code == 401
    session = Client()
    session.force_login(user)
    assert session.get(STREAM).status_code == 401


@override_settings(SSE_POLL_S=0.05, SSE_HEARTBEAT_S=10, SSE_MAX_S=3600)
def test_a_bearer_stream_ends_when_its_token_expires(user):
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=0.5))
    started = time.monotonic()
    text = read_stream({"Authorization": f"Bearer {token}"})
    assert time.monotonic() - started < 5  # not SSE_MAX_S: the token's 0.5 s (+ JWT leeway on validation)
    assert text.startswith("retry:")


@pytest.mark.redis
@override_settings(SSE_POLL_S=5, SSE_HEARTBEAT_S=5, SSE_MAX_S=1.5)
def test_with_redis_a_commit_wakes_the_stream_at_once(user, auth_client):
    # With Redis the stream waits on the user's channel (up to SSE_HEARTBEAT_S = 5 s here, no polling):
    # the rows posted at ~0 s can only arrive before the stream's 1.5 s end if the publish woke it.
    started = time.monotonic()
    text = read_stream(bearer(user), during=lambda: post_syncs(auth_client, Clock(), 1, ticket=5004))
    assert event_ids(text) == ids_of(user)
    assert time.monotonic() - started < 5


def test_read_stream_helper_parses_blocks():
    text = "retry: 2000\n\nid: 7\ndata: {}\n\n: heartbeat\n\n"
    assert parse(text) == [
        {"id": None, "data": None, "comment": False},
        {"id": 7, "data": "{}", "comment": False},
        {"id": None, "data": None, "comment": True},
    ]
    assert asyncio.iscoroutinefunction(read_stream) is False


class LiveSubscription:
    """A bus subscription that stays subscribed and never receives a message (an idle user)."""

    live = True

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        return None

    async def wait(self, timeout: float) -> bool:
        await asyncio.sleep(timeout)
        return False


def count_reads(monkeypatch) -> list[str]:
    """Replace the stream's database gateway (every read goes through ``_in_pool``) by a counting one."""
    from notifications import stream

    calls: list[str] = []
    real = stream._in_pool

    def counting(function, **kwargs):
        calls.append(function.__name__)
        return real(function, **kwargs)

    monkeypatch.setattr(stream, "_in_pool", counting)
    monkeypatch.setattr(stream, "Subscription", LiveSubscription)
    return calls


def first_chunks(user_id: int, after_id: int, count: int) -> list[str]:
    from notifications.stream import _aevents

    async def go() -> list[str]:
        chunks = []
        async for chunk in _aevents(user_id, after_id, lifetime_s=30.0):
            chunks.append(chunk)
            if len(chunks) == count:
                break
        return chunks

    return async_to_sync(go)()


@override_settings(REDIS_URL="redis://bus.invalid:6379/0", SSE_HEARTBEAT_S=0.05, SSE_RESYNC_S=60)
def test_an_idle_stream_on_the_bus_sends_heartbeats_without_a_query(user, monkeypatch):
    # Subscribed to the bus and nothing published: one read at the start (the drain), then only
    # heartbeats. The old loop re-read the database before each heartbeat (1 + 3 reads here).
    calls = count_reads(monkeypatch)
    chunks = first_chunks(user.pk, 0, count=4)
    assert chunks == ["retry: 2000\n\n", ": heartbeat\n\n", ": heartbeat\n\n", ": heartbeat\n\n"]
    assert calls == ["_rows"]


# A lost publish made good by the resync: the hub's one resync query per process (test_bus.py).


@override_settings(SSE_HEARTBEAT_S=15)
def test_heartbeats_fall_on_the_workers_one_second_ticks():
    # 15 s of silence, rounded up to the next whole tick of 15 / 15 = 1 s: streams silent since any
    # moment of one second send their heartbeats at the same tick (one wake-up of the worker for all)
    assert stream.next_heartbeat(100.0) == 115.0
    assert stream.next_heartbeat(100.2) == 116.0
    assert stream.next_heartbeat(100.9) == 116.0
    assert stream.next_heartbeat(101.0) == 116.0
    # never earlier than the interval, at most one tick later
    for now in (0.0, 3.3, 1234.5678, 99999.01):
        assert now + 15 <= stream.next_heartbeat(now) < now + 16


@override_settings(SSE_HEARTBEAT_S=0.3)
def test_the_tick_scales_with_the_interval():
    # tick 0.3 / 15 = 0.02 s: 1.0 + 0.3 = 1.3 is on a tick; 1.005 + 0.3 = 1.305 → 1.32
    assert stream.next_heartbeat(1.0) == pytest.approx(1.3)
    assert stream.next_heartbeat(1.005) == pytest.approx(1.32)
