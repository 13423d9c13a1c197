"""The event bus between writers and open event streams: Redis pub/sub when ``REDIS_URL`` is set.

Writer side: a writer calls :func:`publish` after its transaction commits (``outbox_enqueue``
registers it with ``transaction.on_commit``): one ``PUBLISH <prefix>:events:<user id> 1`` per user,
pipelined. The message carries no data, only "look again". A Redis error never fails the writer:
it is logged, and the streams' resync still delivers every row.

Stream side: one :class:`Hub` per process (per event loop; recreated after a fork or a loop
change, closed when its last stream leaves) holds ONE ``redis.asyncio`` pub/sub connection for
all the process's open streams, however many. Each stream registers a :class:`Subscription` with
it; a message for user U sets the wake-up event of every open stream of U, and the stream reads
its new rows from the database.

- **One PSUBSCRIBE** ``<prefix>:events:*`` per process rather than a SUBSCRIBE per user: a stream
  that opens needs no round trip to Redis once the hub is live (1,000 streams reconnecting at once
  after ``SSE_MAX_S`` cost no command), there is no subscribe/unsubscribe race between a user's last
  stream closing and the next one opening, and exactness rests on a single confirmation. The price
  is that every stream process receives every user's publish (one small message per committed sync
  per process) and drops those of users it has no stream for with a dict lookup; Redis matches one
  pattern per subscriber connection, so a PUBLISH costs it O(stream processes). ``bench/bus_cost.py``
  measures that price (figures in docs/performance.md, "Idle streams").
- **Exactness.** :meth:`Subscription.__aenter__` returns only after the hub has read Redis's
  confirmation of the PSUBSCRIBE (or failed), and the stream reads the database after that. A
  writer publishes after its commit, so a row committed after a read always wakes the stream.
- **One resync per process.** Every ``SSE_RESYNC_S`` the hub runs ONE query
  (:func:`notifications.selectors.newest_event_ids`) for every user with an open stream here, in
  the thread pool, and wakes only the streams whose last sent id is below their user's newest row:
  a publish that Redis lost is made good within ``SSE_RESYNC_S``; an idle stream makes no query.
- **Failure.** If the hub's connection fails (or cannot be made), every stream wakes at once and
  polls the database every ``SSE_POLL_S`` (:attr:`Subscription.live` is False); the hub tries to
  reconnect every ``SSE_POLL_S`` (one connection attempt per process, against the streams' own
  polls), and once the new PSUBSCRIBE is confirmed wakes every stream once more (messages may have
  been lost meanwhile), after which they are live again.
- A hung Redis (the connection stays open, nothing arrives) is not detected: the hub stays "live",
  so its resync still delivers every row within ``SSE_RESYNC_S``.
- Without Redis (``REDIS_URL`` empty, the embedded default) there is no connection: publishing does
  nothing and the streams poll every ``SSE_POLL_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from notifications.selectors import newest_event_ids

logger = logging.getLogger("tradingsite.notifications.bus")
_client = None
_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def channel(user_id: int) -> str:
    """The pub/sub channel of one user's events: ``<cache key prefix>:events:<user id>``."""
    return f"{settings.CACHE_KEY_PREFIX}:events:{user_id}"


def _redis():
    global _client
    if _client is None:
        import redis

        timeout = settings.REDIS_SOCKET_TIMEOUT_S
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    return _client


def publish(user_ids: Iterable[int]) -> None:
    """Wake the streams of ``user_ids`` (one PUBLISH each, pipelined); a no-op without Redis."""
    if not settings.REDIS_URL:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for user_id in user_ids:
            pipe.publish(channel(user_id), b"1")
        pipe.execute()
    except Exception as exc:  # the write has committed; streams still poll
        logger.warning("event bus publish failed: %s", type(exc).__name__)


def in_pool(function, **kwargs):
    """Run a read in the default thread pool and release that thread's connection (or return it to the
    psycopg pool) afterwards: open streams and the hub hold no database connection between reads."""

    def run():
        try:
            return function(**kwargs)
        finally:
            connection.close()

    return sync_to_async(run, thread_sensitive=False)()


def _release(waiter: asyncio.Future[None] | None) -> None:
    """End a :meth:`Subscription.wait` (its timer, or a wake) unless it has ended already."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Subscription:
    """One open stream's registration with the process's :class:`Hub` (an async context manager).

    :meth:`wait` returns True as soon as the stream should read: a publish for its user, the hub's
    resync found a newer row than :attr:`last_id`, or the hub's connection failed or came back.
    """

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.last_id = 0  # the id of the last row the stream sent; the stream keeps it current
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None  # what a pending wait() awaits
        self._hub: Hub | None = None

    @property
    def live(self) -> bool:
        """True while the hub is subscribed to Redis (a commit wakes :meth:`wait`); False without Redis
        or while the hub's connection is down (the stream then polls every ``SSE_POLL_S``)."""
        return self._hub is not None and self._hub.live

    def wake(self) -> None:
        """Make the pending or next :meth:`wait` return True."""
        self._woken = True
        _release(self._waiter)

    async def __aenter__(self) -> Subscription:
        self._hub = hub()
        try:
            await self._hub.join(self)  # returns once the PSUBSCRIBE is confirmed or has failed
        except BaseException:  # cancelled while waiting (the client went away): unregister
            await self._hub.leave(self)
            raise
        return self

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when woken (read now), False on the timeout."""
        if not self._woken:
            # One future and one timer, not asyncio.wait_for (before Python 3.12 a task of its own that
            # a timeout cancels): this runs once per heartbeat of every idle stream.
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(max(timeout, 0.0), _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        woken, self._woken = self._woken, False
        return woken

    async def __aexit__(self, *exc_info) -> None:
        if self._hub is not None:
            await self._hub.leave(self)


class Hub:
    """The process's one Redis pub/sub connection and resync timer, shared by all its open streams."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pid = os.getpid()
        self.streams: dict[int, set[Subscription]] = {}  # user id -> the user's open streams here
        self.live = False
        self.connections = 0  # Redis connections opened so far (one per successful or failed attempt)
        self.resyncs = 0  # resync queries run so far
        self._attempt: asyncio.Future[bool] | None = None  # the connection attempt under way, if any
        self._tasks: list[asyncio.Task] = []

    async def join(self, subscription: Subscription) -> None:
        """Register a stream; with Redis, return once the hub's PSUBSCRIBE is confirmed or has failed."""
        self.streams.setdefault(subscription.user_id, set()).add(subscription)
        if not settings.REDIS_URL:
            return
        if not self._tasks:
            self._attempt = self.loop.create_future()
            self._tasks = [self.loop.create_task(self._listen()), self.loop.create_task(self._resync_every())]
        if self._attempt is not None and not self._attempt.done():
            await asyncio.shield(self._attempt)

    async def leave(self, subscription: Subscription) -> None:
        """Unregister a stream; the last one to leave closes the hub (its connection and timers)."""
        users = self.streams.get(subscription.user_id, set())
        users.discard(subscription)
        if not users:
            self.streams.pop(subscription.user_id, None)
        if not self.streams:
            await self.close()

    async def close(self) -> None:
        """Cancel the listener and the resync timer (closing the connection); forget this hub."""
        if _hubs.get(self.loop) is self:
            del _hubs[self.loop]
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.live = False
        if self._attempt is not None and not self._attempt.done():
            self._attempt.set_result(False)  # nobody waits on a closed hub

    def _wake(self, user_id: int | None = None) -> None:
        """Wake every open stream of ``user_id``, or every open stream when None."""
        groups = self.streams.values() if user_id is None else [self.streams.get(user_id, set())]
        for group in groups:
            for subscription in group:
                subscription.wake()

    async def _listen(self) -> None:
        """Connect, PSUBSCRIBE, wake streams on messages; on a failure wake all and retry every SSE_POLL_S."""
        import redis.asyncio as aioredis

        pattern = channel(0)[:-1] + "*"
        reconnect = False
        while True:
            if self._attempt is None or self._attempt.done():
                self._attempt = self.loop.create_future()
            client: Any = None
            pubsub: Any = None
            try:
                client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
                self.connections += 1
                pubsub = client.pubsub()
                await pubsub.psubscribe(pattern)
                reply = await pubsub.get_message(timeout=max(settings.REDIS_SOCKET_TIMEOUT_S, 1.0))
                if reply is None or reply["type"] != "psubscribe":
                    raise ConnectionError("no PSUBSCRIBE confirmation")
                self.live = True
                self._attempt.set_result(True)
                if reconnect:
                    self._wake()  # messages may have been lost while down: every stream reads once
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        with contextlib.suppress(ValueError):
                            self._wake(int(message["channel"].rsplit(b":", 1)[1]))
                raise ConnectionError("pub/sub connection ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("event bus hub failed: %s", type(exc).__name__)
            finally:
                was_live, self.live = self.live, False
                for closable in (pubsub, client):
                    if closable is not None:
                        with contextlib.suppress(Exception):  # closing a broken connection
                            await closable.aclose()
            if not self._attempt.done():
                self._attempt.set_result(False)  # the streams waiting to join start polling
            if was_live:
                self._wake()  # the bus can no longer wake the streams: each reads now, then polls
            reconnect = True
            await asyncio.sleep(settings.SSE_POLL_S)

    async def _resync_every(self) -> None:
        """Every ``SSE_RESYNC_S`` while live: one :meth:`resync` for all the process's streams."""
        while True:
            await asyncio.sleep(settings.SSE_RESYNC_S)
            if self.live and self.streams:
                try:
                    await self.resync()
                except Exception as exc:  # the database is down: try again next period
                    logger.warning("event bus resync failed: %s", type(exc).__name__)

    async def resync(self) -> None:
        """ONE query for the newest log row of every user with an open stream here; wake the streams
        whose last sent id is below it (a publish was lost)."""
        self.resyncs += 1
        newest = await in_pool(newest_event_ids, user_ids=list(self.streams))
        for user_id, group in list(self.streams.items()):
            for subscription in group:
                if newest.get(user_id, 0) > subscription.last_id:
                    subscription.wake()


def hub() -> Hub:
    """The process's hub for the running event loop (uvicorn runs one per worker process), created on
    first use; a loop of its own gets its own hub (e.g. each test), and a forked child a new one."""
    loop = asyncio.get_running_loop()
    current = _hubs.get(loop)
    if current is None or current.pid != os.getpid():
        current = _hubs[loop] = Hub(loop)
    return current
