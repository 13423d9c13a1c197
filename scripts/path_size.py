"""Size of the write path and the read path: project files and functions one request passes through.

Runs two requests through Django's test client on a throwaway database and counts the distinct
``(file, function)`` pairs the interpreter enters under the repository (``sys.setprofile`` and
``threading.setprofile``, so work handed to a thread started during the request counts too),
leaving out tests, this script and the virtual environment:

(a) ``POST reconciliation/syncs/`` with one open position (after one warm-up sync of the same
    position, so first-sync-only work and module imports are not counted);
(b) ``GET positions/open/`` with both cache layers empty (a miss: ``cache.clear()`` first).

Usage (development settings and a scratch SQLite file; the database is created and migrated)::

    DJANGO_DEBUG=1 DATABASE_URL=sqlite:////tmp/path_size.sqlite3 .venv/bin/python scripts/path_size.py

It prints one row per request and, with ``--detail``, the functions per file.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXCLUDED_PARTS = {"tests", ".venv", "scripts", "migrations"}


def _in_project(filename: str) -> str | None:
    """The repository-relative path of ``filename`` when it is project code, else None."""
    if not os.path.isabs(filename):  # "<string>", "<frozen abc>": generated or built-in code
        return None
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except (ValueError, OSError):
        return None
    if EXCLUDED_PARTS.intersection(relative.parts) or relative.name == "conftest.py":
        return None
    return relative.as_posix()


def measure(call: Callable[[], Any]) -> tuple[Any, set[tuple[str, str]]]:
    """Run ``call`` under a profiler; return its result and the project ``(file, function)`` pairs entered."""
    seen: set[tuple[str, str]] = set()
    names: dict[str, str | None] = {}

    def profiler(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        filename = code.co_filename
        if filename not in names:
            names[filename] = _in_project(filename)
        relative = names[filename]
        if relative is not None:
            seen.add((relative, code.co_qualname if hasattr(code, "co_qualname") else code.co_name))

    threading.setprofile(profiler)
    sys.setprofile(profiler)
    try:
        result = call()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return result, seen


def _sync_body(broker_time: datetime, price: str) -> dict[str, Any]:
    """An MT5-shaped sync: account_info(), one EURUSD buy of 1.00 lot (ticket 1001), its quote."""
    from tradingsite import sync_payload as mt5

    return mt5.sync_body(
        broker_time=broker_time,
        account=mt5.account_info(
            login=5021337, server="Demo-Server", currency="USD", balance="10000.00", equity="10010.00", margin="0"
        ),
        positions=[
            mt5.position(
                ticket=1001,
                identifier=1001,
                symbol="EURUSD",
                type=0,
                volume="1.00",
                price_open="1.09500",
                price_current=price,
                profit="10.00",
            )
        ],  # fmt: skip
        quotes=[mt5.tick(symbol="EURUSD", bid=price, time=broker_time)],
    )


def main() -> int:
    """Set up a scratch database, run the two requests, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detail", action="store_true", help="list the functions per file")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username=f"path-size-{uuid.uuid4().hex[:8]}")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    json = "application/json"
    registration = {
        "ticket": 1001,
        "symbol": "EURUSD",
        "side": "buy",
        "volume": "1.00",
        "requested_price": "1.09500",
        "server": "Demo-Server",
        "login": 5021337,
    }
    clock = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    def post_sync(body: dict[str, Any]):
        response = client.post("/api/v1/reconciliation/syncs/", body, content_type=json)
        if response.status_code not in (200, 201):
            raise SystemExit(f"sync answered {response.status_code}: {response.content[:500]!r}")
        return response

    def get_open():
        response = client.get("/api/v1/positions/open/")
        if response.status_code != 200:
            raise SystemExit(f"positions/open answered {response.status_code}: {response.content[:500]!r}")
        return response

    response = client.post("/api/v1/positions/", registration, content_type=json)
    if response.status_code != 201:
        raise SystemExit(f"registration answered {response.status_code}: {response.content[:500]!r}")
    post_sync(_sync_body(clock, "1.09510"))  # warm-up: first sync of the account, imports
    get_open()  # warm-up read
    body = _sync_body(clock + timedelta(seconds=5), "1.09520")  # built by the worker, before the request
    _, write_path = measure(lambda: post_sync(body))
    cache.clear()
    _, read_path = measure(get_open)

    print(f"{'request':<44} {'files':>5} {'functions':>9}")
    for label, pairs in (
        ("(a) POST reconciliation/syncs/, 1 position", write_path),
        ("(b) GET positions/open/, cache miss", read_path),
    ):
        files = {name for name, _ in pairs}
        print(f"{label:<44} {len(files):>5} {len(pairs):>9}")
        if args.detail:
            by_file: dict[str, list[str]] = defaultdict(list)
            for name, function in sorted(pairs):
                by_file[name].append(function)
            for name, functions in by_file.items():
                print(f"    {name} ({len(functions)}): {', '.join(functions)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
