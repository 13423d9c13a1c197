"""``manage.py deliver_webhooks``: the webhook worker (one pass every ``--interval`` seconds)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from notifications.services import deliver_due


class Command(BaseCommand):
    help = "Deliver pending webhook deliveries in event order, retrying with backoff; bounded by --loops/--seconds."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between passes (default 1).")
        parser.add_argument("--loops", type=int, default=0, help="Stop after this many passes (0: no limit).")
        parser.add_argument("--seconds", type=float, default=0, help="Stop after this many seconds (0: no limit).")
        parser.add_argument("--once", action="store_true", help="One pass, then exit (same as --loops 1).")

    def handle(self, *args, interval: float, loops: int, seconds: float, once: bool, **options):
        loops = 1 if once else loops
        started = time.monotonic()
        done = 0
        totals = {"delivered": 0, "failed": 0, "dead": 0}
        while True:
            stats = deliver_due()
            for name in totals:
                totals[name] += getattr(stats, name)
            done += 1
            if (loops and done >= loops) or (seconds and time.monotonic() - started >= seconds):
                break
            time.sleep(interval)
        self.stdout.write(
            f"passes={done} delivered={totals['delivered']} failed={totals['failed']} dead={totals['dead']}"
        )
