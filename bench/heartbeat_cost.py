#!/usr/bin/env python
"""What an idle stream costs the stream server: CPU per heartbeat, end to end (uvicorn, Django's ASGI
handler, ``notifications.stream``, ``notifications.bus``)::

    .venv/bin/python bench/heartbeat_cost.py                  # 1,000 streams, a heartbeat every 1 s, 20 s

On the local PostgreSQL and Redis (``--pg-url``, ``--redis-url``) it creates a throwaway database, seeds
``--users`` users, starts the stream server as ``docker-compose.yml`` runs it (``uvicorn
tradingsite.asgi:application --workers 2``) with ``SSE_HEARTBEAT_S`` = ``--heartbeat-s``, opens
``--streams`` streams (``bench/streams.py``'s client), and over ``--seconds`` of idleness (nothing is
written) counts the heartbeats the clients received, the server's CPU (utime + stime of the uvicorn
master and workers, from /proc) and its wake-ups (voluntary context switches of all its threads). Prints
CPU per heartbeat, the server's share of a core and its wake-ups a second. ``--server-root`` serves the
streams from another checkout (a before/after comparison in the same minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h  # noqa: E402
from bench import streams as s  # noqa: E402


def wakeups(root: int | None) -> int:
    """Voluntary context switches (a thread went to sleep and was woken) of ``root`` and its descendants,
    every thread counted, from /proc."""
    total = 0
    for pid in h._descendants(h.proc_table(), root) if root else ():
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
            except OSError:
                continue
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db-name", default="ts_heartbeat")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--heartbeat-s", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--server-root", type=Path, default=h.ROOT, help="serve the streams from this checkout (a before/after run)"
    )
    args = parser.parse_args(argv)

    run_dir = Path(tempfile.mkdtemp(prefix="ts-heartbeat-"))
    database_url = h.recreate_database(args.pg_url, args.db_name)
    env = h.app_env(
        database_url=database_url, redis_url=args.redis_url, release="heartbeat-cost",
        bind=f"127.0.0.1:{h.free_port()}", prom_dir=Path(tempfile.mkdtemp(prefix="ts-heartbeat-prom-")),
    )  # fmt: skip
    log = run_dir / "manage.log"
    h.manage(env, "migrate", "--noinput", log=log)
    h.manage(env, "seed_demo", "--users", str(args.users), "--syncs", "1", "--seed", "2026", log=log)
    tokens = run_dir / "tokens.json"
    h.manage(env, "mint_tokens", "--users", str(args.users), "--output", str(tokens), log=log)
    credentials = [(int(u["user_id"]), u["access"]) for u in json.loads(tokens.read_text())["users"]]
    server = s.StreamServer(env, run_dir / "stream-server.log", 2, args.heartbeat_s, app_dir=args.server_root)
    fleet = None
    try:
        server.start()
        fleet = s._open_fleet(server, credentials, args.streams, database_url)
        time.sleep(max(3.0, 2 * args.heartbeat_s))  # every stream past its first heartbeat
        beats, ticks, woke = sum(r.heartbeats for r in fleet.records), server.cpu_ticks(), wakeups(server.pid)
        started = time.monotonic()
        time.sleep(args.seconds)
        seconds = time.monotonic() - started
        cpu_s = (server.cpu_ticks() - ticks) / h.CLOCK_TICKS
        woke = wakeups(server.pid) - woke
        beats = sum(r.heartbeats for r in fleet.records) - beats
        still_open = fleet.open_count()
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
        h.drop_database(args.pg_url, args.db_name)
    per_beat_us = 1e6 * cpu_s / beats if beats else float("nan")
    print(
        f"{args.server_root}: {still_open}/{args.streams} streams open, {beats} heartbeats in {seconds:.1f} s "
        f"(SSE_HEARTBEAT_S={args.heartbeat_s:g}): stream server CPU {cpu_s:.2f} s = "
        f"{100 * cpu_s / seconds:.1f} % of one core, {per_beat_us:.0f} us a heartbeat, "
        f"{woke / seconds:.0f} wake-ups a second"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
