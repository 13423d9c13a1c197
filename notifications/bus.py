"""The event bus between writers and open event streams: Redis pub/sub when ``REDIS_URL`` is set.

A writer calls :func:`publish` after its transaction commits (``outbox_enqueue`` registers it with
``transaction.on_commit``); a stream subscribed to the user's channel wakes up and reads the new
log rows from the database (the message carries no data, only "look again"). Without Redis
(the embedded default) publishing does nothing and streams poll the database every
``SSE_POLL_S``. A Redis error never fails the writer: it is logged, and the streams' resync
(every ``SSE_RESYNC_S``; every ``SSE_POLL_S`` once a stream's own subscription failed) still
delivers every row.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings

logger = logging.getLogger("tradingsite.notifications.bus")
_client = None


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


class Subscription:
    """An asyncio subscription to one user's channel; :meth:`wait` returns on a message or a timeout.

    Without Redis, or after a Redis error, :meth:`wait` just sleeps ``timeout`` (the stream then
    polls the database).
    """

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.pubsub: Any = None
        self.client: Any = None

    @property
    def live(self) -> bool:
        """True while subscribed to Redis (a commit wakes :meth:`wait`); False without Redis or after an error."""
        return self.pubsub is not None

    async def __aenter__(self) -> Subscription:
        if settings.REDIS_URL:
            try:
                import redis.asyncio as aioredis

                self.client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
                self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                await self.pubsub.subscribe(channel(self.user_id))
            except Exception as exc:
                logger.warning("event bus subscribe failed: %s", type(exc).__name__)
                self.pubsub = None
        return self

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True when a message arrived (new rows may be there) or the
        subscription just failed (rows committed meanwhile could not wake the stream: read at once)."""
        import asyncio

        if self.pubsub is not None:
            try:
                message = await self.pubsub.get_message(timeout=timeout)
                return message is not None
            except Exception as exc:
                logger.warning("event bus wait failed: %s", type(exc).__name__)
                self.pubsub = None
                return True  # the bus can no longer wake the stream: read now, then poll (not after the timeout)
        await asyncio.sleep(timeout)
        return False

    async def __aexit__(self, *exc_info) -> None:
        for closable in (self.pubsub, self.client):
            if closable is not None:
                with contextlib.suppress(Exception):  # closing a broken connection
                    await closable.aclose()
