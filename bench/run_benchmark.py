#!/usr/bin/env python
"""The performance benchmark (issues 7 and 13): one command, one table, one JSON file.

    make bench            # = .venv/bin/python bench/run_benchmark.py

On the local PostgreSQL and Redis it creates a throwaway database, migrates, seeds 100 users
(``seed_demo``), mints their tokens (``mint_tokens``), starts gunicorn with the production config
(``gunicorn.conf.py``, DEBUG off, DB_POOL=true, Prometheus multi-process dir of its own) on
127.0.0.1, and runs in one go:

1. **scenario** — Locust headless, 100 dashboard users + 100 sync workers, 10 s warm-up (statistics
   reset) then 60 s measured; first with caching, then (gunicorn restarted with API_CACHE_TTL_S=0)
   without;
2. **saturation** — ``wrk`` (50 connections, 15 s each, rotating the 100 users' tokens) against
   ``/healthz`` (the bare-Django floor) and each hot endpoint, with caching.
3. **streams** (issue 14, ``bench/streams.py``) — the hot reads under wrk in interleaved runs without
   and with 1,000 SSE streams open on the stream server (uvicorn), the read pool's CPU per read in
   each, the idle streams' CPU, and a check that every stream got exactly its own user's events
   (``--only streams``, ``--skip-streams``).

Latency comes from Locust and wrk; requests, statuses, cache hits, SQL statements and Redis
commands come from the service's own ``/metrics`` counters (deltas over the measured window).
It prints one table, the CPU share of every process group (gunicorn, PostgreSQL, Redis, Locust, wrk,
everything else on the box), the ratios and a PASS/MISS line per target, and writes
``bench-results/bench-<UTC time>.json`` plus Locust's CSV/HTML and the logs in
``bench-results/<UTC time>/``. Exit code 0 whatever the verdicts (the table is the result);
non-zero only when the benchmark itself could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h  # noqa: E402
from bench import results as r  # noqa: E402
from bench import streams  # noqa: E402

TARGETS = {
    "p95_ms": 10.0,
    "p99_ms": 25.0,
    "hit_rate": 0.98,
    "sql_per_read": 0.02,
    "sql_per_sync": 12.8,  # issue 13: half of the 25.7 statements a sync cost before
    "sql_reduction": 0.98,
    "floor_ratio": 0.60,
    "visibility_s": 5.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    parser.add_argument("--db-name", default=os.environ.get("BENCH_DB_NAME", "ts_bench"))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--users", type=int, default=100, help="seeded users = dashboard users = sync workers")
    parser.add_argument("--seed-syncs", type=int, default=3, help="syncs per user in seed_demo (small)")
    parser.add_argument("--warmup", type=int, default=10, help="seconds discarded before measuring")
    parser.add_argument("--duration", type=int, default=60, help="measured seconds per scenario")
    parser.add_argument("--wrk-seconds", type=int, default=15)
    parser.add_argument("--wrk-connections", type=int, default=50)
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("BENCH_GUNICORN_WORKERS", "0")), help="0: gunicorn.conf.py"
    )
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("BENCH_GUNICORN_THREADS", "0")), help="0: gunicorn.conf.py"
    )
    parser.add_argument("--locust-processes", type=int, default=0, help="0 = one Locust process (enough here)")
    parser.add_argument(
        "--write-workers", type=int, default=1, help="workers of the write pool (deploy/nginx.conf); 0 = one pool"
    )
    parser.add_argument("--write-threads", type=int, default=4)
    parser.add_argument("--sync-interval", type=float, default=5.0, help="seconds between a worker's syncs")
    parser.add_argument(
        "--data-ttls", default="5,60", help="API_DATA_TTL_S values, one cached scenario each (the first is the default)"
    )
    parser.add_argument("--skip-peer", action="store_true", help="skip the reference peer (bench/peer.py)")
    parser.add_argument("--peer-workers", type=int, default=0, help="uvicorn workers of the peer; 0 = cores")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--skip-uncached", action="store_true")
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument("--skip-profile", action="store_true", help="skip the in-process pyinstrument profile")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database afterwards")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a short run that proves every phase works (10 users, 3 s warm-up, 10 s scenarios, 3 s wrk, "
        "100 streams in one round): no figures",
    )
    streams.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.users, args.warmup, args.duration, args.wrk_seconds = min(args.users, 10), 3, 10, 3
        args.streams, args.stream_rounds, args.stream_idle_s = min(args.streams, 100), 1, 5
    if args.only == "streams":  # the setup, then the streams phase alone
        args.skip_uncached = args.skip_profile = args.skip_peer = True
        args.data_ttls = args.data_ttls.split(",")[0]
    return args


def gunicorn_defaults() -> tuple[int, int]:
    """Workers and threads gunicorn.conf.py picks when GUNICORN_WORKERS/GUNICORN_THREADS are unset."""
    namespace: dict = {}
    names = ("GUNICORN_WORKERS", "GUNICORN_THREADS", "PROMETHEUS_MULTIPROC_DIR")
    env_backup = {k: os.environ.pop(k) for k in names if k in os.environ}
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = scratch  # the config only reads it here
        try:
            exec(compile((h.ROOT / "gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"), namespace)
        finally:
            for name in names:
                os.environ.pop(name, None)
            os.environ.update(env_backup)
    return int(namespace.get("workers", 1)), int(namespace.get("threads", 1))


def run_scenario(
    label: str, gunicorn: h.Pools, args, run_dir: Path, tokens_json: Path, cores: int, cpu: h.CpuMonitor
) -> dict:
    """One Locust scenario; returns Locust rows, /metrics deltas, CPU shares and the request log."""
    prefix = run_dir / f"scenario-{label}"
    h.say(
        f"scenario {label}: {args.users} dashboard users + {args.users} sync workers, "
        f"{args.warmup} s warm-up + {args.duration} s measured"
    )
    run = h.start_locust(
        host=gunicorn.base_url,
        prefix=prefix,
        tokens_file=tokens_json,
        dashboard_users=args.users,
        sync_workers=args.users,
        run_time_s=args.warmup + args.duration,
        warmup_s=args.warmup,
        processes=args.locust_processes,
        request_log=True,
        write_host=gunicorn.write_url if gunicorn.write else None,
        sync_interval_s=args.sync_interval,
    )
    cpu.set_root("gunicorn", gunicorn.read.pid)
    cpu.set_root("gunicorn-write", gunicorn.write.pid if gunicorn.write else None)
    cpu.set_root("locust", run.process.pid)
    if not run.wait_for(run.start_metrics, args.warmup + 60):
        run.stop()
        raise SystemExit(f"Locust did not start measuring; see {run.log_path}")
    cpu_start = cpu.sample()
    workers_before = gunicorn.worker_pids()
    run.wait_for(run.end_metrics, args.duration + 120)
    cpu_end = cpu.sample()
    recycled = len(workers_before - gunicorn.worker_pids())
    run.process.wait(timeout=120)
    stats_path = Path(f"{prefix}_stats.csv")
    if not stats_path.exists():
        raise SystemExit(f"Locust wrote no statistics; see {run.log_path}")
    start_text, end_text = run.start_metrics.read_text(), run.end_metrics.read_text()
    started_at = float(start_text.split()[2]) if start_text.startswith("# ts_scraped_at") else 0.0
    ended_at = float(end_text.split()[2]) if end_text.startswith("# ts_scraped_at") else time.time()
    delta = r.counters_delta(
        r.view_counters(r.parse_prometheus(end_text)), r.view_counters(r.parse_prometheus(start_text))
    )
    logged = []
    for path in run.request_logs():
        with path.open() as handle:
            logged.extend(r.parse_request_log(handle))
    return {
        "locust": r.parse_locust_stats_csv(stats_path.read_text()),
        "metrics": delta,
        "window_s": ended_at - started_at,
        "started_at": started_at,
        "ended_at": ended_at,
        "requests": logged,
        "cpu": cpu_end.usage_since(cpu_start, cores),
        "workers_recycled": recycled,
    }


def run_saturation(
    gunicorn: h.Pools, args, wrk: str, tokens_txt: Path, cores: int, cpu: h.CpuMonitor, peer: h.Peer | None = None
) -> dict:
    """wrk against /healthz and each hot endpoint — of the service, then of the reference peer right after
    (``peer:<path>`` keys) — and the /metrics deltas per target."""
    out = {}
    targets = [(path, gunicorn.base_url) for path in (h.HEALTHZ, *h.HOT_PATHS)]
    if peer is not None:
        targets = [t for path in (h.HEALTHZ, *h.HOT_PATHS) for t in ((path, gunicorn.base_url), (path, peer.base_url))]
    for path, base in targets:
        key = path if base == gunicorn.base_url else f"peer:{path}"
        url = base + path
        tokens = None if path == h.HEALTHZ else tokens_txt
        h.run_wrk(wrk, url, tokens_txt=tokens, seconds=3, connections=args.wrk_connections)  # warm-up
        before = r.view_counters(r.parse_prometheus(h.scrape(gunicorn.base_url)))
        h.say(f"saturation: wrk -c{args.wrk_connections} -d{args.wrk_seconds}s {url}")
        cpu.set_root("locust", None)
        cpu.set_root("peer", peer.pid if peer else None)
        cpu_start = cpu.sample()
        workers_before = gunicorn.worker_pids()
        result = h.run_wrk(wrk, url, tokens_txt=tokens, seconds=args.wrk_seconds, connections=args.wrk_connections)
        cpu_end = cpu.sample()
        recycled = len(workers_before - gunicorn.worker_pids())
        after = r.view_counters(r.parse_prometheus(h.scrape(gunicorn.base_url)))
        try:
            figures = r.parse_wrk(result.stdout)
        except ValueError:
            figures = {"error": (result.stdout + result.stderr)[-500:]}
        if key != path:
            after = before  # the peer has no /metrics
        out[key] = {
            "wrk": figures,
            "metrics": r.counters_delta(after, before),
            "cpu": cpu_end.usage_since(cpu_start, cores),
            "workers_recycled": recycled,
            "raw": result.stdout,
        }
    return out


def run_profile(env: dict[str, str], run_dir: Path, users: int) -> dict | None:
    """In-process CPU cost per request (hits and misses) and pyinstrument call trees (profile_hot_path.py)."""
    h.say("profile: in-process hits and misses with pyinstrument")
    profile_env = {**env, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="ts-bench-prof-")}
    with (run_dir / "profile.log").open("w") as log:
        done = subprocess.run(
            [
                sys.executable,
                str(h.ROOT / "bench" / "profile_hot_path.py"),
                "--users",
                str(users),
                "--out",
                str(run_dir),
            ],
            cwd=h.ROOT,
            env=profile_env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        h.say(f"profile failed ({done.returncode}); see {run_dir / 'profile.log'}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def start_peer(
    env: dict[str, str], args, run_dir: Path, release: str, gunicorn: h.Pools, tokens_txt: Path, cores: int
) -> h.Peer | None:
    """Prime Redis with the service's own answers (each token × hot path, as served now) and start the
    reference peer on them; None (with a note) when its bench-only dependencies are missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        h.say("reference peer skipped: pip install -r bench/requirements.txt")
        return None
    from bench.peer import peer_key

    prefix = f"peer:{release}"
    client = h.redis_client(args.redis_url, timeout_s=5)
    for token in tokens_txt.read_text().split():
        for path in h.HOT_PATHS:
            status, _headers, body = h.http(
                gunicorn.base_url + path, {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            )
            if status == 200:
                client.set(peer_key(prefix, path, token), body, ex=3600)
    peer = h.Peer(env, run_dir / "peer.log", args.peer_workers or cores, args.redis_url, prefix)
    h.say(f"reference peer (bench/peer.py, uvicorn x {args.peer_workers or cores}) on {peer.base_url}")
    peer.start()
    return peer


def redis_footprint(redis_url: str, release: str, users: int) -> dict:
    keys, size = h.redis_keys_memory(redis_url, f"ts:{release}*")
    return {"keys": keys, "bytes": size, "bytes_per_user": size / users if users else None}


def pg_connections(database_url: str, db_name: str) -> int | None:
    try:
        return int(h.pg_scalar(database_url, f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db_name}'"))
    except Exception:
        return None


# ------------------------------------------------------------------------------------------------
# Figures, targets, table
# ------------------------------------------------------------------------------------------------
def endpoint_rows(scenario: dict, views: dict[str, str]) -> dict[str, dict]:
    """Per hot endpoint and for the sync endpoint: Locust latency + /metrics ratios."""
    rows = {}
    window = (scenario["started_at"], scenario["ended_at"])
    for path in (*h.HOT_PATHS, h.SYNC_PATH):
        locust = scenario["locust"].get(path, {})
        counters = scenario["metrics"].get(views[path], r.ViewCounters())
        # Percentiles from the request log: the same response times Locust measured, unrounded.
        times = [q.response_ms for q in scenario["requests"] if q.name == path and window[0] <= q.started < window[1]]
        rows[path] = {
            "rps": locust.get("rps"),
            "requests": locust.get("requests"),
            "failures": locust.get("failures"),
            "p50": r.percentile(times, 50),
            "p95": r.percentile(times, 95),
            "p99": r.percentile(times, 99),
            "max": max(times) if times else locust.get("max"),
            "server_requests": counters.requests,
            "non_200": counters.non_ok,
            "hit_rate": counters.hit_rate(),
            "page_hit_rate": counters.page_hit_rate(),
            "sql_per_request": counters.sql_per_request(),
            "redis_per_request": counters.redis_per_request(),
        }
    warmer = scenario["metrics"].get("cache-warmer")  # tradingsite.caching.WARMER_VIEW: warming off the request
    syncs = rows[h.SYNC_PATH]["server_requests"]
    if warmer is not None and warmer.sql and syncs:
        rows["background warmer, per sync"] = {"sql_per_request": warmer.sql / syncs}
    reads = r.total_counters(scenario["metrics"], [views[p] for p in h.HOT_PATHS])
    read_times = [
        q.response_ms
        for q in scenario["requests"]
        if q.request_type == "GET"
        and q.name in h.HOT_PATHS
        and scenario["started_at"] <= q.started < scenario["ended_at"]
    ]
    rows["all reads"] = {
        "rps": sum((scenario["locust"].get(p, {}).get("rps") or 0.0) for p in h.HOT_PATHS),
        "requests": sum((scenario["locust"].get(p, {}).get("requests") or 0.0) for p in h.HOT_PATHS),
        "failures": sum((scenario["locust"].get(p, {}).get("failures") or 0.0) for p in h.HOT_PATHS),
        "p50": r.percentile(read_times, 50),
        "p95": r.percentile(read_times, 95),
        "p99": r.percentile(read_times, 99),
        "max": max(read_times) if read_times else None,
        "server_requests": reads.requests,
        "non_200": reads.non_ok,
        "hit_rate": reads.hit_rate(),
        "page_hit_rate": reads.page_hit_rate(),
        "sql_per_request": reads.sql_per_request(),
        "redis_per_request": reads.redis_per_request(),
    }
    return rows


def visibility_rows(scenario: dict) -> dict[str, dict]:
    return {
        name: row
        for name, row in scenario["locust"].items()
        if row.get("type") == "VISIBLE" or name.startswith("sync visible")
    }


def saturation_rows(saturation: dict, views: dict[str, str]) -> dict[str, dict]:
    rows = {}
    for path, data in saturation.items():
        wrk = data["wrk"]
        bare = path.removeprefix("peer:")
        view = "healthz" if bare == h.HEALTHZ else views[bare]
        counters = data["metrics"].get(view, r.ViewCounters())
        rows[path] = {
            "rps": wrk.get("rps"),
            "requests": wrk.get("requests"),
            "failures": (wrk.get("errors") or 0.0) + counters.non_ok if "rps" in wrk else None,
            "p50": wrk.get("p50"),
            "p95": wrk.get("p95"),
            "p99": wrk.get("p99"),
            "max": wrk.get("max"),
            "server_requests": counters.requests,
            "non_200": counters.non_ok,
            "hit_rate": counters.hit_rate(),
            "page_hit_rate": counters.page_hit_rate(),
            "sql_per_request": counters.sql_per_request(),
            "redis_per_request": counters.redis_per_request(),
            "cpu": data["cpu"],
            "workers_recycled": data["workers_recycled"],
        }
    return rows


def evaluate(result: dict) -> list[r.Check]:
    checks: list[r.Check] = []
    cached = result["scenario"].get("cached")
    uncached = result["scenario"].get("uncached")
    if cached:
        rows = cached["endpoints"]
        total_failures = sum(
            row.get("failures") or 0.0
            for name, row in cached["locust"].items()
            if name != "Aggregated" and row.get("type") != "VISIBLE"  # late syncs are judged below
        )
        checks.append(r.check("scenario cached: 0 failed HTTP requests", total_failures, 0, fmt="{:.0f}"))
        for path in h.HOT_PATHS:
            checks.append(
                r.check(
                    f"cached p95 <= {TARGETS['p95_ms']:.0f} ms {path}",
                    rows[path]["p95"],
                    TARGETS["p95_ms"],
                    fmt="{:.0f} ms",
                )
            )
            checks.append(
                r.check(
                    f"cached p99 <= {TARGETS['p99_ms']:.0f} ms {path}",
                    rows[path]["p99"],
                    TARGETS["p99_ms"],
                    fmt="{:.0f} ms",
                )
            )
        checks.append(
            r.check(
                f"SQL statements per sync <= {TARGETS['sql_per_sync']} (half of 25.7)",
                rows[h.SYNC_PATH]["sql_per_request"],
                TARGETS["sql_per_sync"],
                fmt="{:.1f}",
            )
        )
        reads = rows["all reads"]
        checks.append(
            r.check("cached hit rate >= 98 % (reads)", reads["hit_rate"], TARGETS["hit_rate"], op=">=", fmt="{:.1%}")
        )
        checks.append(
            r.check(
                "cached SQL per read request <= 0.02", reads["sql_per_request"], TARGETS["sql_per_read"], fmt="{:.3f}"
            )
        )
        vis = cached["visibility"]
        vis_count = sum(row["requests"] for row in vis.values())
        vis_fail = sum(row["failures"] for row in vis.values())
        worst = max((row["max"] or 0.0) for row in vis.values()) / 1000.0 if vis else None
        checks.append(
            r.Check(
                "every sync visible on the reads within 5 s",
                None if not vis_count else vis_fail == 0,
                f"{vis_count - vis_fail:.0f}/{vis_count:.0f} checks in time, slowest {worst:.2f} s"
                if vis_count
                else "no sync checked",
            )
        )
    if cached and uncached:
        on = cached["endpoints"]["all reads"]["sql_per_request"]
        off = uncached["endpoints"]["all reads"]["sql_per_request"]
        reduction = None if on is None or not off else 1.0 - on / off
        checks.append(
            r.check(
                "SQL per read reduced >= 98 % (caching off -> on)",
                reduction,
                TARGETS["sql_reduction"],
                op=">=",
                fmt="{:.1%}",
            )
        )
    saturation = result.get("saturation")
    if saturation:
        floor = saturation.get(h.HEALTHZ, {}).get("rps")
        for path in h.HOT_PATHS:
            row = saturation.get(path, {})
            ratio = row.get("rps") / floor if floor and row.get("rps") else None
            checks.append(
                r.check(f"saturation {path} >= 60 % of /healthz", ratio, TARGETS["floor_ratio"], op=">=", fmt="{:.0%}")
            )
            checks.append(r.check(f"saturation {path} 0 errors", row.get("failures"), 0, fmt="{:.0f}"))
            peer = saturation.get(f"peer:{path}", {}).get("rps")
            checks.append(
                r.check(
                    f"saturation {path} >= 1.0x the reference peer (goal)",
                    row.get("rps") / peer if peer and row.get("rps") else None,
                    1.0,
                    op=">=",
                    fmt="{:.2f}x",
                )
            )
    for label, scenario in result["scenario"].items():
        if label.startswith("cached data TTL"):
            reads = scenario["endpoints"]["all reads"]
            checks.append(
                r.check(f"{label}: hit rate >= 98 %", reads["hit_rate"], TARGETS["hit_rate"], op=">=", fmt="{:.1%}")
            )
            checks.append(
                r.check(
                    f"{label}: SQL per read <= 0.02", reads["sql_per_request"], TARGETS["sql_per_read"], fmt="{:.3f}"
                )
            )
    return checks


def render(result: dict, checks: list[r.Check]) -> str:
    headers = [
        "run",
        "endpoint",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "fail",
        "hit %",
        "page hit %",
        "SQL/req",
        "Redis/req",
    ]
    lines = []
    rows = []

    def add(run: str, name: str, row: dict) -> None:
        rows.append(
            [
                run,
                name,
                r.fmt_num(row.get("rps"), 1),
                r.fmt_num(row.get("p50"), 1),
                r.fmt_num(row.get("p95"), 1),
                r.fmt_num(row.get("p99"), 1),
                r.fmt_num(row.get("max"), 0),
                r.fmt_num(row.get("failures"), 0),
                r.fmt_num(row.get("hit_rate"), 1, percent=True),
                r.fmt_num(row.get("page_hit_rate"), 1, percent=True),
                r.fmt_num(row.get("sql_per_request"), 3),
                r.fmt_num(row.get("redis_per_request"), 2),
            ]
        )

    for label, scenario in result["scenario"].items():
        for name, row in scenario["endpoints"].items():
            add(f"scenario {label}", name.replace("/api/v1/", ""), row)
        for name, row in scenario["visibility"].items():
            rows.append(
                [
                    f"scenario {label}",
                    name.replace("/api/v1/", "") + " (lag)",
                    r.fmt_num(row.get("rps"), 1),
                    r.fmt_num(row.get("p50"), 0),
                    r.fmt_num(row.get("p95"), 0),
                    r.fmt_num(row.get("p99"), 0),
                    r.fmt_num(row.get("max"), 0),
                    r.fmt_num(row.get("failures"), 0),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    for path, row in result.get("saturation", {}).items():
        add("saturation wrk", path.replace("/api/v1/", ""), row)
    lines.append(r.render_table(headers, rows))
    lines.append("")
    for label, scenario in result["scenario"].items():
        if scenario:
            lines.append(
                f"CPU during scenario {label}: {h.describe_cpu(scenario['cpu'], int(result['machine']['cores']))}"
                f"; gunicorn workers recycled (max_requests): {scenario['workers_recycled']}"
            )
    for path, row in result.get("saturation", {}).items():
        lines.append(
            f"CPU during wrk {path}: {h.describe_cpu(row['cpu'], int(result['machine']['cores']))}"
            f"; gunicorn workers recycled (max_requests): {row['workers_recycled']}"
        )
    ratios = result.get("ratios", {})
    if ratios:
        lines.append("")
        lines.append("ratios:")
        for name, value in ratios.items():
            lines.append(f"  {name}: {value}")
    lines.append("")
    lines.append("targets (issue 7):")
    for item in checks:
        lines.append(f"  {item.verdict}  {item.target}: {item.measured}")
    return "\n".join(lines)


def compute_ratios(result: dict) -> dict[str, str]:
    ratios = {}
    saturation = result.get("saturation", {})
    floor = saturation.get(h.HEALTHZ, {}).get("rps")
    peer_floor = saturation.get(f"peer:{h.HEALTHZ}", {}).get("rps")
    if floor and peer_floor:
        ratios["throughput /healthz / peer /healthz"] = f"{floor:.0f} / {peer_floor:.0f} = {floor / peer_floor:.2f}x"
    for path in h.HOT_PATHS:
        rps = saturation.get(path, {}).get("rps")
        peer = saturation.get(f"peer:{path}", {}).get("rps")
        if floor and rps:
            text = f"{rps:.0f} / {floor:.0f} = {rps / floor:.0%}"
            if peer:
                text += f"; / peer {peer:.0f} = {rps / peer:.2f}x (the service's /healthz: "
                text += f"{floor / peer_floor:.2f}x the peer's)" if peer_floor else "n/a)"
            ratios[f"throughput {path} / /healthz"] = text
    cached = result["scenario"].get("cached")
    uncached = result["scenario"].get("uncached")
    if cached and uncached:
        for name in (*h.HOT_PATHS, "all reads"):
            on = cached["endpoints"][name]["sql_per_request"]
            off = uncached["endpoints"][name]["sql_per_request"]
            if on is not None and off:
                ratios[f"SQL/request cached / uncached {name}"] = (
                    f"{on:.3f} / {off:.2f} = {on / off:.1%} (reduction {1 - on / off:.1%})"
                )
    return ratios


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    out_dir = h.ROOT / args.out
    run_dir = out_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "setup.log"
    if not h.pg_accepting(args.pg_url):
        raise SystemExit(f"PostgreSQL is not accepting connections at {args.pg_url}")
    if not h.redis_alive(args.redis_url):
        raise SystemExit(f"Redis does not answer at {args.redis_url}")
    wrk = None if args.skip_saturation and args.only != "streams" else h.ensure_wrk()
    if not args.skip_saturation and not wrk:
        h.say("wrk is not available: saturation is skipped (apt-get install wrk)")

    release = f"bench-{run_id}"
    database_url = h.recreate_database(args.pg_url, args.db_name)
    prom_dir = Path(tempfile.mkdtemp(prefix="ts-bench-prom-"))
    bind = f"127.0.0.1:{h.free_port()}"
    env = h.app_env(
        database_url=database_url,
        redis_url=args.redis_url,
        release=release,
        bind=bind,
        prom_dir=prom_dir,
        cache_ttl_s=5,
        workers=args.workers,
        threads=args.threads,
    )
    cores = int(os.cpu_count() or 1)
    conf_workers, conf_threads = gunicorn_defaults()
    result: dict = {
        "run_id": run_id,
        "started_at": started.isoformat(timespec="seconds"),
        "command": "python bench/run_benchmark.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": h.machine_info(database_url, args.redis_url),
        "config": {
            "gunicorn": f"{args.workers or conf_workers} gthread workers x {args.threads or conf_threads} threads "
            "(gunicorn.conf.py), DB_POOL=true",
            "users": args.users,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "wrk": f"-t1 -c{args.wrk_connections} -d{args.wrk_seconds}s",
            "locust_processes": args.locust_processes or 1,
        },
        "scenario": {},
    }
    gunicorn = None
    peer = None
    data_ttls = [int(v) for v in args.data_ttls.split(",") if v.strip()]
    env["API_DATA_TTL_S"] = str(data_ttls[0])
    result["config"]["pools"] = (
        f"read pool + write pool of {args.write_workers} x {args.write_threads} at nice 10"
        if args.write_workers
        else "one pool"
    )
    result["config"]["sync_interval_s"] = args.sync_interval
    result["config"]["data_ttls"] = data_ttls
    cpu = h.CpuMonitor()
    try:
        h.say(f"database {args.db_name}: migrate, seed_demo --users {args.users}, mint_tokens")
        h.manage(env, "migrate", "--noinput", log=log)
        h.manage(
            env, "seed_demo", "--users", str(args.users), "--syncs", str(args.seed_syncs), "--seed", "2026", log=log
        )
        tokens_json = run_dir / "tokens.json"
        h.manage(
            env,
            "mint_tokens",
            "--users",
            str(args.users),
            "--output",
            str(tokens_json),
            "--access-lifetime-s",
            "7200",
            log=log,
        )
        # wrk sends one URL for every token: only users with a single account (a user holding several,
        # seed_demo's demo004, is answered 400 "choose one with ?account=" without the parameter).
        tokens_txt = run_dir / "tokens.txt"
        tokens_txt.write_text(
            "\n".join(
                entry["access"]
                for entry in json.loads(tokens_json.read_text())["users"]
                if len(entry.get("accounts", [])) <= 1
            )
            + "\n"
        )
        views = h.resolve_view_names(env, [*h.HOT_PATHS, h.SYNC_PATH])
        result["views"] = views

        gunicorn = h.Pools(env, run_dir, "cached", args.write_workers, args.write_threads)
        h.say(f"gunicorn (caching on) on {bind}, writes on {gunicorn.write_url}")
        gunicorn.start()
        first_token = tokens_txt.read_text().split()[0]
        for path in h.HOT_PATHS:
            status, _hdrs, body = h.http(
                gunicorn.base_url + path, {"Authorization": f"Bearer {first_token}", "Accept": "application/json"}
            )
            if status != 200:
                raise SystemExit(f"preflight GET {path} answered {status}: {body[:300]!r}")
        if args.only != "streams":
            scenario = run_scenario("cached", gunicorn, args, run_dir, tokens_json, cores, cpu)
            result["redis_footprint"] = redis_footprint(args.redis_url, release, args.users)
            result["pg_connections"] = pg_connections(database_url, args.db_name)
            result["scenario"]["cached"] = scenario
        if wrk and not args.skip_peer:
            peer = start_peer(env, args, run_dir, release, gunicorn, tokens_txt, cores)
        if wrk and args.only != "streams" and not args.skip_saturation:
            saturation = run_saturation(gunicorn, args, wrk, tokens_txt, cores, cpu, peer)
            result["saturation_raw"] = {p: d["raw"] for p, d in saturation.items()}
            result["saturation"] = saturation_rows(saturation, views)
        if peer is not None:
            peer.stop()
            peer = None
        if not args.skip_streams:
            result["streams"] = streams.run_phase(
                env=env, args=args, run_dir=run_dir, pools=gunicorn, wrk=wrk, tokens_json=tokens_json,
                tokens_txt=tokens_txt, database_url=database_url,
            )  # fmt: skip
        gunicorn.stop()
        gunicorn = None

        for ttl in data_ttls[1:]:
            label = f"cached data TTL {ttl} s"
            gunicorn = h.Pools(
                {**env, "API_DATA_TTL_S": str(ttl)}, run_dir, f"ttl{ttl}", args.write_workers, args.write_threads
            )
            h.say(f"gunicorn restarted with API_DATA_TTL_S={ttl}")
            gunicorn.start()
            result["scenario"][label] = run_scenario(f"ttl{ttl}", gunicorn, args, run_dir, tokens_json, cores, cpu)
            gunicorn.stop()
            gunicorn = None

        if not args.skip_uncached:
            env_off = {**env, "API_CACHE_TTL_S": "0"}
            gunicorn = h.Pools(env_off, run_dir, "uncached", args.write_workers, args.write_threads)
            h.say("gunicorn restarted with API_CACHE_TTL_S=0 (caching off)")
            gunicorn.start()
            result["scenario"]["uncached"] = run_scenario("uncached", gunicorn, args, run_dir, tokens_json, cores, cpu)
            gunicorn.stop()
            gunicorn = None
        if not args.skip_profile:
            result["profile"] = run_profile(env, run_dir, args.users)
    finally:
        cpu.stop()
        if peer is not None:
            peer.stop()
        if gunicorn is not None:
            gunicorn.stop()
        if not args.keep_db:
            try:
                h.drop_database(args.pg_url, args.db_name)
            except Exception as exc:  # report, never mask the real error
                h.say(f"could not drop {args.db_name}: {exc!r}")

    for scenario in result["scenario"].values():
        scenario["endpoints"] = endpoint_rows(scenario, result["views"])
        for name, row in scenario["locust"].items():
            row["name"] = name
        scenario["visibility"] = visibility_rows(scenario)
        scenario["sql_per_s"] = sum(c.sql for c in scenario["metrics"].values()) / max(1e-6, scenario["window_s"])
        scenario["redis_commands_per_s"] = sum(c.redis for c in scenario["metrics"].values()) / max(
            1e-6, scenario["window_s"]
        )
        scenario["requests"] = len(scenario["requests"])  # the raw log stays in the run folder
    result["ratios"] = compute_ratios(result)
    checks = evaluate(result)
    result["checks"] = checks
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    machine = result["machine"]
    header = (
        f"tradingsite benchmark {result['started_at']} — {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['memory']} RAM, PostgreSQL {machine['postgresql']}, Redis {machine['redis']}, "
        f"Python {machine['python']}\n"
        f"service: {result['config']['gunicorn']}; load: Locust (1 process, same machine), "
        f"wrk {result['config']['wrk']} "
        f"(same machine): everything shares the {machine['cores']} cores, see the CPU lines\n"
    )
    extra = []
    for label, scenario in result["scenario"].items():
        extra.append(
            f"scenario {label}: {scenario['sql_per_s']:.0f} SQL statements/s, "
            f"{scenario['redis_commands_per_s']:.0f} Redis commands/s "
            f"over {scenario['window_s']:.0f} s"
        )
    if result.get("redis_footprint"):
        fp = result["redis_footprint"]
        extra.append(
            f"Redis working set at the end of the cached scenario: {fp['keys']} keys, {fp['bytes'] / 1024:.0f} KiB, "
            f"{fp['bytes_per_user'] / 1024:.1f} KiB per active user"
        )
    if result.get("pg_connections") is not None:
        extra.append(
            f"PostgreSQL connections to {args.db_name} at the end of the cached scenario: {result['pg_connections']}"
        )
    for mode, rows in (result.get("profile") or {}).items():
        extra.append(
            f"in-process {({'hit': 'page-cache hits', 'miss': 'misses', 'floor': 'floor'})[mode]} "
            "(one thread, CPU of the Django process per request): "
            + ", ".join(
                f"{path.replace('/api/v1/', '')} {row['cpu_us_per_request'] / 1000:.2f} ms "
                f"= {row['requests_per_s_per_core']} req/s per core"
                for path, row in rows.items()
            )
        )
    busiest = max(
        [s["cpu"].get("other", 0.0) for s in result["scenario"].values()]
        + [row["cpu"].get("other", 0.0) for row in result.get("saturation", {}).values()],
        default=0.0,
    )
    if busiest > 25.0:
        extra.append(
            f"WARNING: other processes used up to {busiest:.0f}% CPU (of {100 * cores}%) during the measurements: "
            "the figures understate what this machine does when the benchmark has it to itself."
        )
    text = header + "\n" + render(result, checks) + "\n\n" + "\n".join(extra)
    text += "\n\n" + streams.render_phase(result.get("streams")) + f"\n\nfiles: {run_dir}"
    print(text)
    (run_dir / "table.txt").write_text(text + "\n")
    json_path = out_dir / f"bench-{run_id}.json"
    json_path.write_text(json.dumps(r.as_jsonable(result), indent=1, default=str))
    print(f"json: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
