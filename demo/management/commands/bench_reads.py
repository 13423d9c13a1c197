"""``manage.py bench_reads``: time the three hot reads on a miss (both cache layers empty) on a large log.

Run against PostgreSQL after ``generate_logs`` (users ``logs-user-001`` …, whose accounts own the rows)::

    export DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/ts_c_bench REDIS_URL=redis://127.0.0.1:6379/4
    .venv/bin/python manage.py generate_logs --rows 1000000 --users 100 --seed 1 --end now
    .venv/bin/python manage.py bench_reads --users 20 --repeat 3

For each of ``--users`` users and each hot read (``reconciliation/status/``, ``positions/open/``,
``guards/status/``) the cache is cleared (``cache.clear()``: the whole cache database, so point
``REDIS_URL`` at a database of your own) and the read is requested in-process through Django's test
``Client`` with the user's JWT, ``--repeat`` times. Printed per read: median and max server time (ms),
SQL statements per request and SQL time median (ms), with the row count and the load average. With
``--explain`` the SQL of the last request of each read is shown with ``EXPLAIN (ANALYZE, BUFFERS)``,
which shows the partitions each query reads. A benchmark prints figures; it asserts nothing.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from reconciliation.models import ReconciliationLog

HOT_READS = ("/api/v1/reconciliation/status/", "/api/v1/positions/open/", "/api/v1/guards/status/")


class Command(BaseCommand):
    help = "Time the three hot reads with the cache cleared before each request (a miss) on a large log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=20, help="Users to read as (default 20).")
        parser.add_argument("--repeat", type=int, default=3, help="Misses per user and read (default 3).")
        parser.add_argument("--user-prefix", default="logs-user-", help="Username prefix (default logs-user-).")
        parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the SQL of each read.")

    def handle(self, *args, **options) -> None:
        logging.getLogger("tradingsite.request").setLevel(logging.WARNING)
        users = list(
            get_user_model()
            .objects.filter(username__startswith=options["user_prefix"])
            .order_by("username")[: options["users"]]
        )
        if not users:
            raise CommandError(f"No users named {options['user_prefix']}…: run generate_logs first.")
        client = Client()
        tokens = {user.pk: f"Bearer {AccessToken.for_user(user)}" for user in users}
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        rows = ReconciliationLog.objects.count()
        self.stdout.write(
            f"log rows: {rows:,} · {len(users)} users × {options['repeat']} misses per read · database: "
            f"{connection.vendor} · load average {load} on {os.cpu_count()} CPUs"
        )
        header = f"{'read (miss)':34} {'median ms':>9} {'max ms':>8} {'statements':>10} {'SQL ms':>7}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for path in HOT_READS:
            times_ms, sql_ms, statements = [], [], []
            last: list[dict] = []
            for user in users:
                for _ in range(options["repeat"]):
                    cache.clear()
                    with CaptureQueriesContext(connection) as captured:
                        started = time.perf_counter()
                        response = client.get(path, HTTP_AUTHORIZATION=tokens[user.pk], HTTP_ACCEPT="application/json")
                        times_ms.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise CommandError(f"{path} as {user.username} answered {response.status_code}")
                    last = captured.captured_queries
                    statements.append(len(last))
                    sql_ms.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
            self.stdout.write(
                f"{path:34} {statistics.median(times_ms):9.1f} {max(times_ms):8.1f} "
                f"{statistics.median(statements):10.0f} {statistics.median(sql_ms):7.1f}"
            )
            if options["explain"]:
                self._explain(last)
        self.stdout.write(f"load average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    def _explain(self, queries: list[dict]) -> None:
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            for item in queries:
                sql = item["sql"]
                if not sql.lstrip().upper().startswith("SELECT"):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
                plan = "\n".join(f"      {line}" for (line,) in cursor.fetchall())
                self.stdout.write(f"    SQL: {sql[:200]}\n{plan}")
