"""``manage.py bench_admin``: time the reconciliation-log changelist on a large table.

Run against PostgreSQL after ``generate_logs`` (the target is "every page under 300 ms with a
fixed, small number of queries on 1,000,000 rows")::

    export DJANGO_DEBUG=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/ts_c_bench
    .venv/bin/python manage.py migrate
    .venv/bin/python manage.py generate_logs --rows 1000000 --users 100 --seed 1 --batch 10000
    .venv/bin/python manage.py bench_admin --repeat 7

Each page is requested in-process through Django's test ``Client`` as a logged-in superuser (the
whole stack: middleware, session, admin, template rendering), once to warm up and then
``--repeat`` times. Printed per page: server time median / max (ms), SQL queries per request
(``CaptureQueriesContext``), SQL time median (ms), this process's CPU time median (ms: template
rendering and Python, less sensitive than wall time to other load on the machine) and the rows on
the page. The load average is printed with the figures. A benchmark prints
figures; it asserts nothing. The exact row count is measured once, outside the timings.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import time
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from guards.models import EquitySnapshot
from reconciliation.models import ReconciliationLog

TARGET_MS = 300.0
#: Fixed ceiling on SQL statements per changelist request, BEGIN/COMMIT of the timed count included.
QUERY_BUDGET = 10


@dataclass
class PageResult:
    """Figures of one benchmarked page."""

    name: str
    query: str
    times_ms: list[float]
    sql_ms: list[float]
    queries: list[int]
    cpu_ms: list[float]
    rows: int
    result_count: str

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)


class Command(BaseCommand):
    help = "Time the reconciliation-log admin changelist (default, filtered, ticket search, page 50, ...)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repeat", type=int, default=5, help="Timed requests per page (after one warm-up).")
        parser.add_argument("--username", default="bench-admin", help="Superuser to log in as (created if missing).")
        parser.add_argument("--core-only", action="store_true", help="Only the four pages the target is set for.")
        parser.add_argument("--explain", action="store_true", help="Print EXPLAIN ANALYZE of each page's SQL.")
        parser.add_argument(
            "--snapshots",
            action="store_true",
            help="Time the equity-snapshot changelist instead (data: bench/equity_snapshots.sql).",
        )

    def handle(self, *args, **options) -> None:
        # The per-request JSON access line would drown the figures.
        logging.getLogger("tradingsite.request").setLevel(logging.WARNING)
        client = Client()
        client.force_login(self._superuser(options["username"]))
        self.model: type[models.Model]
        if options["snapshots"]:
            self.model, self.changelist = EquitySnapshot, "admin:guards_equitysnapshot_changelist"
            pages = self._snapshot_pages()
        else:
            self.model, self.changelist = ReconciliationLog, "admin:reconciliation_reconciliationlog_changelist"
            pages = self._pages(core_only=options["core_only"])
        total = self.model.objects.count()
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        self.stdout.write(
            f"{self.model._meta.verbose_name} rows: {total:,} · database: {connection.vendor} · "
            f"{options['repeat']} timed requests per page after 1 warm-up · load average {load} "
            f"on {os.cpu_count()} CPUs"
        )
        results = [self._bench(client, name, query, options["repeat"], options["explain"]) for name, query in pages]
        self._report(results, total)

    # -- set-up -------------------------------------------------------------------------------
    def _superuser(self, username: str):
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model(username=username, is_staff=True, is_superuser=True)
            user.set_unusable_password()
            user.save()
        return user

    def _pages(self, *, core_only: bool) -> list[tuple[str, str]]:
        """(name, query string) of each page; the searched ticket/user/date come from the data."""
        middle = ReconciliationLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
        sample = (
            ReconciliationLog.objects.filter(pk__gte=middle // 2, ticket__isnull=False)
            .order_by("pk")
            .values("ticket", "user__username", "created_at")
            .first()
        ) or {"ticket": 0, "user__username": "nobody", "created_at": None}
        pages = [
            ("default (newest first)", ""),
            ("filter event_type=divergence", "?event_type__exact=divergence"),
            (f"search ticket {sample['ticket']}", f"?q={sample['ticket']}"),
            ("page 50", "?p=50"),
        ]
        if core_only:
            return pages
        created = sample["created_at"]
        day = created.date().isoformat() if isinstance(created, datetime) else "2026-11-01"
        return [
            *pages,
            ("filter event_type=divergence, page 50", "?event_type__exact=divergence&p=50"),
            ("filter reason=side_mismatch (rare)", "?divergence_reason__exact=side_mismatch"),
            ("filter status=failed (rare)", "?status__exact=failed"),
            ("filter matched=no", "?matched__exact=0"),
            (f"date range {day}..{day}", f"?created_at_from={day}&created_at_to={day}"),
            ("search symbol EURUSD", "?q=EURUSD"),
            (f"search user {sample['user__username']}", f"?q={sample['user__username']}"),
        ]

    def _snapshot_pages(self) -> list[tuple[str, str]]:
        """The equity-snapshot changelist: newest first, by drawdown level, deep page, one user."""
        username = EquitySnapshot.objects.order_by("-id").values_list("user__username", flat=True).first() or "nobody"
        return [
            ("default (newest first)", ""),
            ("filter drawdown_level=critical", "?drawdown_level__exact=critical"),
            ("filter drawdown_level=warning, page 50", "?drawdown_level__exact=warning&p=50"),
            ("page 50", "?p=50"),
            (f"search user {username}", f"?q={username}"),
        ]

    # -- measuring ----------------------------------------------------------------------------
    def _bench(self, client: Client, name: str, query: str, repeat: int, explain: bool) -> PageResult:
        url = reverse(self.changelist) + query
        response = client.get(url)  # warm-up: caches, connection, plans
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        times_ms, sql_ms, queries, cpu_ms = [], [], [], []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as captured:
                started, cpu_started = time.perf_counter(), time.process_time()
                response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                cpu_ms.append((time.process_time() - cpu_started) * 1000)
            times_ms.append(elapsed)
            queries.append(len(captured.captured_queries))
            sql_ms.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
        html = response.content.decode()
        rows = html.count('name="_selected_action"')
        paginator_html = html[html.find('<p class="paginator">') :]
        match = re.search(r"(about [\d,]+|[\d,]+\+?) \w[\w ]*", paginator_html)
        shown = match.group(1) if match else "?"
        if explain:
            self._explain(captured.captured_queries)
        return PageResult(name, query, times_ms, sql_ms, queries, cpu_ms, rows, shown)

    def _explain(self, captured: list[dict]) -> None:
        if connection.vendor != "postgresql":
            return
        with connection.cursor() as cursor:
            for item in captured:
                sql = item["sql"]
                if not sql.lstrip().upper().startswith("SELECT") or "set_config" in sql:
                    continue
                if self.model._meta.db_table not in sql and "pg_class" not in sql:
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = "\n".join(f"      {line}" for (line,) in cursor.fetchall())
                self.stdout.write(f"    SQL: {sql[:300]}\n{plan}")

    # -- output -------------------------------------------------------------------------------
    def _report(self, results: list[PageResult], total: int) -> None:
        header = (
            f"{'page':44} {'median ms':>9} {'max ms':>8} {'queries':>8} {'SQL ms':>7} {'py CPU ms':>9} {'rows':>5}"
            "  count shown"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for r in results:
            q = f"{min(r.queries)}" if min(r.queries) == max(r.queries) else f"{min(r.queries)}-{max(r.queries)}"
            self.stdout.write(
                f"{r.name[:44]:44} {r.median_ms:9.1f} {r.max_ms:8.1f} {q:>8} "
                f"{statistics.median(r.sql_ms):7.1f} {statistics.median(r.cpu_ms):9.1f} {r.rows:5d}  {r.result_count}"
            )
        worst = max(results, key=lambda r: r.max_ms)
        low, high = min(min(r.queries) for r in results), max(max(r.queries) for r in results)
        verdict = "met" if worst.max_ms < TARGET_MS and high <= QUERY_BUDGET else "NOT met"
        self.stdout.write(
            f"\nrows={total:,}; slowest page max {worst.max_ms:.1f} ms ({worst.name}); "
            f"queries per page {low}-{high} (budget {QUERY_BUDGET}; a count stopped by its timeout adds one EXPLAIN); "
            f"target <{TARGET_MS:.0f} ms: {verdict}"
        )
