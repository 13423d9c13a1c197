"""The cost of one sync: SQL statements and milliseconds per ``POST reconciliation/syncs/``.

Runs N syncs of the load test's shape (``locustfile.py``: one account, three registered positions —
XAUUSD buy 0.10, EURUSD sell 1.00, USDJPY buy 0.50 —, four quotes, the prices walking a few points
per sync) through the real view (Django's test client, real transactions, no test savepoints) against
the database of ``DATABASE_URL`` (migrated first; a fresh user each run) and the cache of
``REDIS_URL``, and prints per sync:

* ``request``: the statements the request ran in its own thread (``execute_wrapper`` on every
  connection; PostgreSQL's implicit ``BEGIN`` and the ``COMMIT`` are connection calls, not statements,
  and are listed apart: +2 per sync), and its wall time in ms (median, p95);
* ``warmer``: the statements the background cache warmer ran for those syncs in its own threads
  (``tradingsite.caching.warmer``; on a tree without it the warming runs inside the request and is part
  of the request's figures), and its time per warm.

Usage (PostgreSQL and Redis as the service runs; use your own database and Redis DB)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tradingsite_perf REDIS_URL=redis://127.0.0.1:6379/3 \\
      .venv/bin/python scripts/sync_cost.py --syncs 200

``--statements`` lists the statements of the last sync. Figures go in docs/performance.md with the
command and the load average (``os.getloadavg``, printed).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.harness import SYNC_PATH  # noqa: E402  (the repository root is on the path from here)
from bench.results import percentile  # noqa: E402

# symbol: digits, contract size, start mid, spread in points (the locustfile's INSTRUMENTS)
INSTRUMENTS = {
    "XAUUSD": (2, Decimal(100), Decimal("1950.50"), 30),
    "EURUSD": (5, Decimal(100000), Decimal("1.09500"), 10),
    "USDJPY": (3, Decimal(100000), Decimal("150.000"), 12),
    "GBPUSD": (5, Decimal(100000), Decimal("1.26930"), 15),
}
# symbol, MT5 type (0 buy, 1 sell), lots (the locustfile's BOOK)
BOOK = (("XAUUSD", 0, Decimal("0.10")), ("EURUSD", 1, Decimal("1.00")), ("USDJPY", 0, Decimal("0.50")))
SERVER = "Demo-Server"


def _q(value: Decimal, digits: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


class Account:
    """The synthetic account: registrations, then one snapshot per sync with prices one step further."""

    def __init__(self, login: int) -> None:
        self.login = login
        self.mids = {symbol: spec[2] for symbol, spec in INSTRUMENTS.items()}
        self.opens = dict(self.mids)
        self.step = 0

    def registrations(self) -> list[dict[str, Any]]:
        return [
            {
                "ticket": 900_000 + k,
                "symbol": symbol,
                "side": "buy" if mt5_type == 0 else "sell",
                "volume": str(lots),
                "requested_price": str(self.opens[symbol]),
                "server": SERVER,
                "login": self.login,
            }
            for k, (symbol, mt5_type, lots) in enumerate(BOOK)
        ]

    def snapshot(self, broker_time: datetime) -> dict[str, Any]:
        from tradingsite import sync_payload as mt5

        self.step += 1
        direction = 1 if self.step % 4 < 2 else -1  # a small back-and-forth walk
        quotes, positions, asks = [], [], {}
        for symbol, (digits, _size, _start, spread) in INSTRUMENTS.items():
            point = Decimal(1).scaleb(-digits)
            self.mids[symbol] = _q(self.mids[symbol] + direction * 3 * point, digits)
            asks[symbol] = _q(self.mids[symbol] + spread * point, digits)
            quotes.append(mt5.tick(symbol=symbol, bid=self.mids[symbol], ask=asks[symbol], time=broker_time))
        profit_total = Decimal("0.00")
        for k, (symbol, mt5_type, lots) in enumerate(BOOK):
            digits, size = INSTRUMENTS[symbol][0], INSTRUMENTS[symbol][1]
            current = self.mids[symbol] if mt5_type == 0 else asks[symbol]
            pnl = (1 if mt5_type == 0 else -1) * (current - self.opens[symbol]) * lots * size
            profit = _q(pnl if symbol.endswith("USD") else pnl / current, 2)
            profit_total += profit
            positions.append(
                mt5.position(
                    ticket=900_000 + k, symbol=symbol, type=mt5_type, volume=lots, price_open=self.opens[symbol],
                    price_current=current, profit=profit,
                )
            )  # fmt: skip
        balance = Decimal("10000.00")
        return mt5.sync_body(
            broker_time=broker_time,
            account=mt5.account_info(
                login=self.login, server=SERVER, currency="USD", balance=balance, equity=balance + profit_total,
                margin=Decimal("1500.00"),
            ),
            positions=positions,
            quotes=quotes,
        )  # fmt: skip


class StatementCounter:
    """Counts the statements of every database connection per thread (request thread vs warmer threads),
    and keeps the SQL of the thread named ``keep_thread`` while ``keep`` is set."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.keep: list[str] | None = None
        self.keep_thread = threading.current_thread().name

    def __call__(self, execute, sql, params, many, context):
        name = threading.current_thread().name
        with self.lock:
            self.counts[name] += 1
            if self.keep is not None and name == self.keep_thread:
                self.keep.append(sql)
        return execute(sql, params, many, context)

    def take(self) -> tuple[int, int]:
        """(statements of the request thread, statements of every other thread) since the last call."""
        with self.lock:
            own = self.counts.pop(self.keep_thread, 0)
            others = sum(self.counts.values())
            self.counts.clear()
        return own, others


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--syncs", type=int, default=200, help="measured syncs (default 200)")
    parser.add_argument("--warmup", type=int, default=5, help="syncs before the measurement (default 5)")
    parser.add_argument("--statements", action="store_true", help="list the statements of the last sync")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("THROTTLE_SYNC", "1000000/min")  # the per-user rate is not what is measured
    # Production settings (DEBUG off: no query log) with throwaway keys for the test client's host.
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("JWT_SIGNING_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.backends.signals import connection_created
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    from tradingsite import caching

    counter = StatementCounter()

    def install(sender, connection, **kwargs):
        # First in the list: Django's execute_wrapper() blocks (the access log's, the warmer's) push and
        # pop at the end of it, so a connection opened inside one of them must not put ours last.
        if counter not in connection.execute_wrappers:
            connection.execute_wrappers.insert(0, counter)

    connection_created.connect(install, weak=False)
    call_command("migrate", verbosity=0)
    install(None, connection)
    warmer = getattr(caching, "warmer", None)  # absent on trees that warm inside the request

    user = get_user_model().objects.create(username=f"sync-cost-{uuid.uuid4().hex[:8]}")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    account = Account(login=7_000_000 + user.pk)
    for row in account.registrations():
        response = client.post("/api/v1/positions/", row, content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(f"registration answered {response.status_code}: {response.content[:300]!r}")
    clock = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5 * (args.syncs + args.warmup + 10))

    def wait_for_warmer() -> float:
        if warmer is None:
            return 0.0
        started = time.perf_counter()
        warmer.join(timeout=10)
        return time.perf_counter() - started

    request_sql: list[int] = []
    warmer_sql: list[int] = []
    request_ms: list[float] = []
    warm_ms: list[float] = []
    for n in range(args.warmup + args.syncs):
        clock += timedelta(seconds=5)
        body = account.snapshot(clock)  # built by the worker, before the request
        measured = n >= args.warmup
        last = n == args.warmup + args.syncs - 1
        wait_for_warmer()
        counter.take()
        counter.keep = [] if last and args.statements else None
        started = time.perf_counter()
        response = client.post(SYNC_PATH, body, content_type="application/json")
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise SystemExit(f"sync answered {response.status_code}: {response.content[:300]!r}")
        warmed_in = wait_for_warmer()
        own, others = counter.take()
        if measured:
            request_sql.append(own)
            warmer_sql.append(others)
            request_ms.append(elapsed * 1000)
            warm_ms.append(warmed_in * 1000)
        if counter.keep is not None:
            kept, counter.keep = counter.keep, None
            print(f"statements of the last sync's request ({len(kept)}):")
            for number, sql in enumerate(kept, 1):
                print(f"  {number:2d}. {sql[:160]}")

    background = warmer is not None and getattr(settings, "CACHE_WARM_IN_BACKGROUND", False)
    print(
        f"{args.syncs} syncs (3 positions, 4 quotes), database {connection.vendor}, "
        f"cache {'redis' if settings.REDIS_URL else 'in-process'}, data TTL {caching.data_ttl()} s, "
        f"warming {'in a background warmer' if background else 'inside the request'}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'':<34} {'mean':>7} {'median':>7} {'p95':>7} {'max':>7}")
    rows: list[tuple[str, list[float]]] = [
        ("request: SQL statements per sync", [float(n) for n in request_sql]),
        ("request: ms per sync", request_ms),
    ]
    if background:
        rows += [
            ("warmer: SQL statements per sync", [float(n) for n in warmer_sql]),
            ("warmer: ms per warm (wait)", warm_ms),
        ]
    for label, floats in rows:
        print(
            f"{label:<34} {statistics.fmean(floats):7.1f} {statistics.median(floats):7.1f} "
            f"{percentile(floats, 95) or 0.0:7.1f} {max(floats):7.1f}"
        )
    print("(+2 per sync not counted above: the transaction's BEGIN and COMMIT)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
