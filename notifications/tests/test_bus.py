"""The bus hub: one Redis pub/sub connection and one resync query per stream process, whatever the
number of open streams; its failure and reconnect paths.

Streams are driven through ``_aevents`` (the async stream) in one event loop, as uvicorn runs them
in one worker. Tests marked ``redis`` use the real Redis of ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.test import override_settings

from notifications import bus, stream
from notifications.tests.test_stream import ids_of, post_syncs
from reconciliation.tests.factories import Clock

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def pubsub_connections() -> list[dict]:
    """The connections to our Redis database that are in pub/sub mode (CLIENT LIST)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    try:
        return [c for c in client.client_list() if int(c["db"]) == db and int(c["sub"]) + int(c["psub"]) > 0]
    finally:
        client.close()


def counting(monkeypatch) -> tuple[list[str], list[list[int]]]:
    """Count the streams' own reads (every one goes through ``stream._in_pool``) and the hub's resync
    queries (``bus.newest_event_ids``, with the users asked for)."""
    reads: list[str] = []
    resyncs: list[list[int]] = []
    real_in_pool, real_newest = stream._in_pool, getattr(bus, "newest_event_ids", None)

    def in_pool(function, **kwargs):
        reads.append(function.__name__)
        return real_in_pool(function, **kwargs)

    def newest(*, user_ids):
        resyncs.append(sorted(user_ids))
        return real_newest(user_ids=user_ids)

    monkeypatch.setattr(stream, "_in_pool", in_pool)
    monkeypatch.setattr(bus, "newest_event_ids", newest, raising=False)  # raising: runs on the old bus too
    return reads, resyncs


async def consume(user_id: int, after_id: int, lifetime_s: float, received: list[int]) -> None:
    async for chunk in stream._aevents(user_id, after_id, lifetime_s):
        if chunk.startswith("id:"):
            received.append(int(chunk.split("\n")[0][4:]))


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def newest_id(user) -> int:
    return (ids_of(user) or [0])[-1]


@pytest.mark.redis
@override_settings(SSE_HEARTBEAT_S=30, SSE_RESYNC_S=60, SSE_POLL_S=30)
def test_streams_of_two_users_share_one_redis_connection_and_get_only_their_own_events(
    user, other_user, auth_client, other_client, monkeypatch
):
    # The old Subscription opened a Redis connection per stream: 8 here (1,000 for 1,000 streams).
    reads, _ = counting(monkeypatch)
    clock = Clock()
    post_syncs(auth_client, clock, 1, ticket=8001)
    post_syncs(other_client, clock, 1, ticket=8001)
    users = [user] * 4 + [other_user] * 4
    starts = {u.pk: newest_id(u) for u in (user, other_user)}
    before = len(pubsub_connections())

    async def scenario() -> tuple[int, list[list[int]], dict[int, list[int]]]:
        received: list[list[int]] = [[] for _ in users]
        tasks = [
            asyncio.ensure_future(consume(u.pk, starts[u.pk], 4.0, got)) for u, got in zip(users, received, strict=True)
        ]
        await until(lambda: len(reads) == len(users))  # every stream subscribed, then drained (nothing new)
        opened = len(pubsub_connections()) - before
        await sync_to_async(post_syncs)(auth_client, clock, 1, ticket=8002)
        await sync_to_async(post_syncs)(other_client, clock, 1, ticket=8002)
        wanted = {u.pk: [pk for pk in await sync_to_async(ids_of)(u) if pk > starts[u.pk]] for u in (user, other_user)}
        await until(lambda: all(got == wanted[u.pk] for u, got in zip(users, received, strict=True)))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return opened, received, wanted

    opened, received, wanted = async_to_sync(scenario)()
    assert opened == 1
    assert wanted[user.pk] and wanted[other_user.pk]
    assert received == [wanted[user.pk]] * 4 + [wanted[other_user.pk]] * 4


@pytest.mark.redis
@override_settings(SSE_HEARTBEAT_S=30, SSE_RESYNC_S=1.0, SSE_POLL_S=30)
def test_idle_streams_make_one_resync_query_per_period_for_the_whole_process(user, other_user, monkeypatch):
    # 6 idle streams of 2 users for 1.6 s with SSE_RESYNC_S = 1 s: each stream reads once (its
    # drain), and the process makes ONE resync query (at 1 s) for both users. The old streams each
    # re-read the log every 0.5-1 s themselves: 6 more reads and no shared query.
    reads, resyncs = counting(monkeypatch)

    async def scenario() -> None:
        await asyncio.gather(*(consume(u.pk, 0, 1.6, []) for u in [user, other_user] * 3))

    async_to_sync(scenario)()
    assert reads == ["_rows"] * 6
    assert resyncs == [sorted([user.pk, other_user.pk])]


@pytest.mark.redis
@override_settings(SSE_HEARTBEAT_S=30, SSE_RESYNC_S=0.5, SSE_POLL_S=30)
def test_a_lost_publish_is_made_good_by_the_shared_resync(user, other_user, auth_client, monkeypatch):
    # Every publish is lost: the rows committed while the streams are open still arrive, read once
    # by the streams of that user when the hub's resync finds them (not by the other user's stream).
    reads, resyncs = counting(monkeypatch)
    monkeypatch.setattr(bus, "publish", lambda user_ids: None)
    start = newest_id(user)

    async def scenario() -> tuple[list[int], list[int], list[int], float]:
        mine: list[int] = []
        other: list[int] = []
        tasks = [asyncio.ensure_future(consume(user.pk, start, 4.0, mine)),
                 asyncio.ensure_future(consume(other_user.pk, 0, 4.0, other))]  # fmt: skip
        await until(lambda: len(reads) == 2)
        await sync_to_async(post_syncs)(auth_client, Clock(), 1, ticket=8003)
        committed = time.monotonic()
        wanted = [pk for pk in await sync_to_async(ids_of)(user) if pk > start]
        await until(lambda: mine == wanted)
        lag_s = time.monotonic() - committed
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return mine, wanted, other, lag_s

    mine, wanted, other, lag_s = async_to_sync(scenario)()
    assert wanted and mine == wanted and other == []
    assert lag_s < 2.0  # within SSE_RESYNC_S (0.5 s) and the read, not a heartbeat (30 s)
    assert reads == ["_rows"] * 3  # two drains, then one read of the woken stream
    assert len(resyncs) >= 1


@pytest.mark.redis
@override_settings(SSE_POLL_S=0.3)
def test_a_failed_hub_wakes_every_stream_at_once_and_after_its_reconnect_once_more(user, other_user):
    import redis.asyncio as aioredis

    async def scenario() -> tuple[list[float], list[bool], list[float], list[bool], int]:
        async with contextlib.AsyncExitStack() as stack:
            subscriptions = [await stack.enter_async_context(bus.Subscription(u.pk)) for u in (user, user, other_user)]
            assert all(s.live for s in subscriptions)
            (hub_connection,) = await sync_to_async(pubsub_connections)()
            started = time.monotonic()
            killer = aioredis.Redis.from_url(settings.REDIS_URL)
            await killer.client_kill_filter(_id=hub_connection["id"])
            await killer.aclose()
            # every stream wakes at once (not after its 15 s wait) and from now on polls
            woke = await asyncio.gather(*(s.wait(15.0) for s in subscriptions))
            failed_after = [time.monotonic() - started] * len(woke) if all(woke) else []
            down = [s.live for s in subscriptions]
            # the hub reconnects after SSE_POLL_S and wakes each stream once more (messages were lost)
            woke = await asyncio.gather(*(s.wait(15.0) for s in subscriptions))
            back_after = [time.monotonic() - started] * len(woke) if all(woke) else []
            up = [s.live for s in subscriptions]
            return failed_after, down, back_after, up, bus.hub().connections

    failed_after, down, back_after, up, connections = async_to_sync(scenario)()
    assert len(failed_after) == 3 and failed_after[0] < 1.0
    assert down == [False, False, False]
    assert len(back_after) == 3 and 0.3 <= back_after[0] < 3.0
    assert up == [True, True, True]
    assert connections == 2  # the first one and the reconnect


@override_settings(SSE_HEARTBEAT_S=30, SSE_POLL_S=0.1)
def test_without_a_reachable_redis_streams_wake_at_once_and_poll(user, closed_redis_url, monkeypatch):
    # Redis down from the start: the hub's connection fails, the stream is not live and reads every
    # SSE_POLL_S (0.1 s) over its 0.65 s: its drain plus about six polls, never a heartbeat's 30 s.
    reads, _ = counting(monkeypatch)
    with override_settings(REDIS_URL=closed_redis_url):
        async_to_sync(consume)(user.pk, 0, 0.65, [])
    assert 4 <= len(reads) <= 8, reads


@override_settings(REDIS_URL="", SSE_HEARTBEAT_S=30, SSE_POLL_S=0.1)
def test_without_redis_the_hub_opens_no_connection_and_streams_poll(user):
    async def scenario() -> tuple[bool, int, bool]:
        async with bus.Subscription(user.pk) as subscription:
            started = time.monotonic()
            woke = await subscription.wait(0.1)
            assert time.monotonic() - started >= 0.09
            return subscription.live, bus.hub().connections, woke

    assert async_to_sync(scenario)() == (False, 0, False)


def test_a_stream_cancelled_while_the_hub_subscribes_leaves_nothing_behind(user, hung_redis_url):
    # Redis accepts the connection and never confirms the PSUBSCRIBE: the stream waits in join; the
    # client goes away (the task is cancelled). The stream is unregistered and the hub closed.
    async def scenario() -> tuple[dict, bool]:
        subscription = bus.Subscription(user.pk)
        joining = asyncio.ensure_future(subscription.__aenter__())
        await asyncio.sleep(0.2)
        the_hub = bus.hub()
        assert the_hub.streams == {user.pk: {subscription}}
        joining.cancel()
        await asyncio.gather(joining, return_exceptions=True)
        return the_hub.streams, bus.hub() is the_hub

    with override_settings(REDIS_URL=hung_redis_url):
        streams, same_hub = async_to_sync(scenario)()
    assert streams == {}
    assert same_hub is False  # the hub closed with its last stream; the next stream gets a new one


def test_a_subscriptions_wait_returns_on_a_wake_or_its_timeout():
    # Subscription.wait without the hub (one future and one timer per wait: it runs once per heartbeat
    # of every idle stream). True when woken, before or during the wait; False on the timeout; one wait
    # consumes a wake; a wake after a cancelled wait is kept for the next.
    async def scenario() -> list:
        subscription = bus.Subscription(1)
        out = []
        subscription.wake()  # before the wait: it returns at once
        started = time.monotonic()
        out.append(await subscription.wait(5.0))
        out.append(time.monotonic() - started < 1.0)
        started = time.monotonic()
        out.append(await subscription.wait(0.05))  # the wake was consumed: a timeout now
        out.append(time.monotonic() - started >= 0.04)
        waiting = asyncio.ensure_future(subscription.wait(5.0))
        await asyncio.sleep(0.05)
        subscription.wake()  # during the wait
        out.append(await asyncio.wait_for(waiting, 1.0))
        waiting = asyncio.ensure_future(subscription.wait(5.0))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        subscription.wake()  # after a cancelled wait: no error, and the next wait sees it
        out.append(await asyncio.wait_for(subscription.wait(5.0), 1.0))
        return out

    assert asyncio.run(scenario()) == [True, True, False, True, True, True]
