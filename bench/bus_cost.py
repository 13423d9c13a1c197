#!/usr/bin/env python
"""The price of the stream hub's one PSUBSCRIBE: CPU a stream process spends on publishes for users it has
no stream for (``notifications.bus``: every process receives every user's publish and drops the others')::

    DJANGO_DEBUG=true REDIS_URL=redis://127.0.0.1:6379/<db> python bench/bus_cost.py --messages 20000

Opens one stream subscription (a hub with its pub/sub connection), pipelines ``--messages`` publishes to
500 other users' channels and then one to its own user, and waits until that last one wakes it (Redis
delivers in order, so all the others were received and dropped by then). Prints the hub's CPU per message:
this process's CPU time less the publishing thread's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
OWN_USER = 999_999_999


async def measure(messages: int) -> tuple[float, float]:
    """(hub CPU s, publisher CPU s) for ``messages`` publishes to other users, then one to ours."""
    import redis
    from django.conf import settings

    from notifications import bus

    publisher_cpu: list[float] = []

    def publish() -> None:
        started = time.thread_time()
        pipe = redis.Redis.from_url(settings.REDIS_URL).pipeline(transaction=False)
        for i in range(messages):
            pipe.publish(bus.channel(1_000_000 + i % 500), b"1")
        pipe.publish(bus.channel(OWN_USER), b"1")
        pipe.execute()
        publisher_cpu.append(time.thread_time() - started)

    async with bus.Subscription(OWN_USER) as subscription:
        if not subscription.live:
            raise SystemExit("the hub is not connected: set REDIS_URL to a reachable Redis")
        started = time.process_time()
        sending = asyncio.ensure_future(asyncio.to_thread(publish))
        while not await subscription.wait(5.0):
            pass
        await sending
        total = time.process_time() - started
    return total - publisher_cpu[0], publisher_cpu[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    import django

    django.setup()
    hub_cpu, publisher_cpu = asyncio.run(measure(args.messages))
    print(
        f"{args.messages} publishes for users without a stream here: hub CPU {hub_cpu:.3f} s, "
        f"{1e6 * hub_cpu / args.messages:.1f} us a message (publisher thread {publisher_cpu:.3f} s, not counted)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
