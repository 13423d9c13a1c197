"""The bus subscription's failure path: a stream whose Redis subscription breaks reads at once, then polls."""

import asyncio
import time

from notifications.bus import Subscription


class BrokenPubSub:
    async def get_message(self, timeout: float):
        raise ConnectionError("Redis went away")


def test_a_failed_wait_wakes_the_stream_at_once_and_leaves_it_polling():
    subscription = Subscription(user_id=1)
    subscription.pubsub = BrokenPubSub()
    started = time.monotonic()
    woke = asyncio.run(subscription.wait(15.0))  # a heartbeat interval
    # True at once (a row committed while Redis failed could not wake it), not after sleeping out the 15 s
    assert woke is True
    assert time.monotonic() - started < 1.0
    assert subscription.live is False  # from now on the stream polls the database every SSE_POLL_S
