#!/usr/bin/env python
"""The chaos run (issues 8 and 15): Redis and PostgreSQL failures under a 100-user Locust load.

    make chaos                      # = .venv/bin/python bench/chaos.py  (private Redis + PostgreSQL)
    python bench/chaos.py --shared  # against the machine's own Redis :6379 and cluster 15/main

Same set-up as the benchmark (throwaway database, migrate, seed_demo, mint_tokens, gunicorn with
the production config on 127.0.0.1), then one Locust scenario (100 dashboard users + sync workers)
during which, after a baseline:

(a) Redis is stopped (``redis-cli shutdown nosave``) for 20 s, then started again;
(b) Redis is paused with ``CLIENT PAUSE 20000 ALL`` (it accepts connections and does not answer);
(c) PostgreSQL is restarted (``pg_ctlcluster --skip-systemctl-redirect 15 <cluster> restart``);
(d) a Redis blip during a sync (issue 15): one user outside the Locust load posts a sync, then Redis is
    paused (``CLIENT PAUSE 1500 ALL``) and the user posts a sync with another equity; from the moment
    Redis answers again ``guards/status`` is polled every 100 ms until it shows the new equity: the
    staleness printed is that delay (target ≤ 5 s, "every read shows a sync within 5 s").

Per phase it reports requests, 5xx, transport errors, p50/p95/max, SQL per request (from
``/metrics``), and for (c) the time from PostgreSQL accepting connections again to the first
successful database-backed answer (a probe reading ``reconciliation/logs/``, uncached, every
100 ms, and the first sync accepted by Locust), whether gunicorn's workers survived, and the longest
request. Targets: 0 5xx in (a) and (b), p95 ≤ 50 ms in (b); (c) recovers by itself within 5 s
without restarting gunicorn, no request longer than 5 s. It prints PASS/MISS per target and
writes ``bench-results/chaos-<UTC time>.json``.

**Isolation.** By default the run brings its own Redis (a ``redis-server`` on a free port) and its
own PostgreSQL cluster (``pg_createcluster 15 tschaos``, dropped afterwards), so nobody else's
tests on this machine lose their Redis or database. ``--shared`` uses the machine's instances
with exactly the commands above. Either way every outage is bounded: Redis is started again and
PostgreSQL brought back in ``finally`` (also on errors, Ctrl-C and SIGTERM), and a detached
watchdog started before each outage restores the service even if this script is killed.
``CLIENT PAUSE`` needs no undo (Redis ends the pause itself; ``CLIENT UNPAUSE`` would itself wait).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h  # noqa: E402
from bench import results as r  # noqa: E402
from tradingsite import sync_payload as mt5  # noqa: E402

PG_VERSION = "15"
SHARED_REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
    "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]  # fmt: skip
PROBE_PATH = "/api/v1/reconciliation/logs/"
GUARDS_PATH = "/api/v1/guards/status/"
ACCOUNTS_PATH = "/api/v1/accounts/"
BLIP_PAUSE_MS = 1500


def post_json(url: str, body: dict, headers: dict[str, str], timeout_s: float = 10.0) -> int:
    """POST ``body`` as JSON; the status (0 when the connection failed)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def blip_during_sync(services, base_url: str, token: str, deadline_s: float = 15.0) -> dict:
    """Phase (d): a sync stored while Redis is paused, and how long after Redis answers again
    ``guards/status`` keeps showing the previous sync, counted from the later of Redis answering and the
    sync's answer (seconds; None if not shown within ``deadline_s``)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def body(equity: str, broker_time: datetime) -> dict:
        account = mt5.account_info(login=login, server=server, currency=currency, balance=equity,
                                   equity=equity)  # fmt: skip
        return mt5.sync_body(broker_time=broker_time, account=account, positions=[])

    def shown_equity() -> str | None:
        status, _headers, raw = h.http(f"{base_url}{GUARDS_PATH}?account={account_id}", headers)
        if status != 200:
            return None
        drawdown = json.loads(raw).get("drawdown") or {}
        return drawdown.get("equity")

    # The user's own (seeded) account: a sync naming another login would open a second account, and the
    # reads without ?account= would then answer 400 ("choose an account").
    status, _headers, raw = h.http(base_url + ACCOUNTS_PATH, headers)
    listed = json.loads(raw) if status == 200 else {}
    accounts = listed.get("results", listed) if isinstance(listed, dict) else listed
    if accounts:
        account_id, login, server = accounts[0]["id"], accounts[0]["login"], accounts[0]["server"]
        currency = accounts[0]["currency"]
    else:  # no account yet: the first sync opens it
        account_id, login, server, currency = "", 5099999, "Demo-Server", "USD"
    now = datetime.now(UTC).replace(microsecond=0)
    first = post_json(base_url + h.SYNC_PATH, body("10000.00", now - timedelta(seconds=2)), headers)
    if account_id == "":
        status, _headers, raw = h.http(base_url + ACCOUNTS_PATH, headers)
        listed = json.loads(raw) if status == 200 else {}
        accounts = listed.get("results", listed) if isinstance(listed, dict) else listed
        account_id = accounts[0]["id"] if accounts else ""
    for _ in range(100):  # the first sync visible (and its page cached) before the blip
        if shown_equity() == "10000.00":
            break
        time.sleep(0.1)
    services.pause_redis(BLIP_PAUSE_MS)
    paused_at = time.monotonic()
    second = post_json(base_url + h.SYNC_PATH, body("8000.00", now - timedelta(seconds=1)), headers, timeout_s=60)
    sync_s = time.monotonic() - paused_at
    time.sleep(max(0.0, BLIP_PAUSE_MS / 1000 + 0.05 - (time.monotonic() - paused_at)))
    # from when Redis answers again, or from the sync's answer if that came later (a loaded machine)
    answered_at = time.monotonic()
    staleness = None
    while time.monotonic() - answered_at < deadline_s:
        if shown_equity() == "8000.00":
            staleness = time.monotonic() - answered_at
            break
        time.sleep(0.1)
    return {"first_sync": first, "blip_sync": second, "blip_sync_s": sync_s, "staleness_s": staleness}


@dataclass
class Services:
    """Where Redis and PostgreSQL run, and how to stop/start/restart them."""

    redis_port: int
    redis_start: list[str]
    pg_port: int
    pg_cluster: str
    private: bool
    redis_db: int = 0
    tmp: Path | None = None
    watchdogs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{self.redis_db}"

    @property
    def pg_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}"

    # --- Redis -----------------------------------------------------------------------------
    def redis_cli(self, *args: str, timeout_s: float = 5) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def start_redis(self) -> None:
        if h.redis_alive(self.redis_url):
            return
        subprocess.run(self.redis_start, check=True, capture_output=True, timeout=10)
        deadline = time.monotonic() + 10
        while not h.redis_alive(self.redis_url) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop_redis(self) -> None:
        self.redis_cli("shutdown", "nosave")

    def pause_redis(self, ms: int) -> None:
        self.redis_cli("client", "pause", str(ms), "all")

    # --- PostgreSQL --------------------------------------------------------------------------
    def pg_ctl(self, action: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.pg_cluster, action],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def ensure_pg(self) -> None:
        if not h.pg_accepting(self.pg_url):
            self.pg_ctl("start")

    # --- watchdogs ---------------------------------------------------------------------------
    def watchdog(self, after_s: float, check: str, repair: str) -> None:
        """Detached shell: after ``after_s``, run ``repair`` unless ``check`` succeeds (survives our death)."""
        script = f"sleep {after_s:.0f}; {check} >/dev/null 2>&1 || {repair} >/dev/null 2>&1"
        self.watchdogs.append(subprocess.Popen(["sh", "-c", script], start_new_session=True))

    def cancel_watchdogs(self) -> None:
        for process in self.watchdogs:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # our own detached shell (and its sleep) only
        self.watchdogs.clear()

    def redis_watchdog(self, after_s: float) -> None:
        check = f"redis-cli -h 127.0.0.1 -p {self.redis_port} ping"
        self.watchdog(after_s, check, shlex.join(self.redis_start))

    def pg_watchdog(self, after_s: float) -> None:
        check = f"pg_isready -h 127.0.0.1 -p {self.pg_port}"
        repair = shlex.join(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.pg_cluster, "start"])
        self.watchdog(after_s, check, repair)

    # --- life cycle ---------------------------------------------------------------------------
    @classmethod
    def private_instances(cls) -> Services:
        tmp = Path(tempfile.mkdtemp(prefix="ts-chaos-"))
        redis_port, pg_port = h.free_port(), h.free_port()
        start = [
            "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
            "--appendonly", "no", "--dir", str(tmp), "--logfile", str(tmp / "redis.log"),
        ]  # fmt: skip
        services = cls(
            redis_port=redis_port, redis_start=start, pg_port=pg_port, pg_cluster="tschaos", private=True, tmp=tmp
        )
        h.say(f"private Redis on :{redis_port}, private PostgreSQL cluster {PG_VERSION}/tschaos on :{pg_port}")
        services.start_redis()
        subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, "tschaos"], capture_output=True, check=False)
        created = subprocess.run(
            ["pg_createcluster", PG_VERSION, "tschaos", "--port", str(pg_port), "--start",
             "--", "--auth-host=trust", "--auth-local=trust"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if created.returncode != 0:
            services.teardown()
            raise SystemExit(f"pg_createcluster failed: {created.stderr[-1500:]}")
        return services

    @classmethod
    def shared_instances(cls, redis_db: int) -> Services:
        return cls(
            redis_port=6379,
            redis_start=SHARED_REDIS_START,
            pg_port=5432,
            pg_cluster="main",
            private=False,
            redis_db=redis_db,
        )

    def restore(self) -> None:
        """Bring Redis and PostgreSQL back if either is down (idempotent; used in every exit path)."""
        try:
            self.start_redis()
        except Exception as exc:
            h.say(f"could not start Redis: {exc!r}")
        try:
            self.ensure_pg()
        except Exception as exc:
            h.say(f"could not start PostgreSQL: {exc!r}")

    def teardown(self) -> None:
        self.cancel_watchdogs()
        if self.private:
            self.redis_cli("shutdown", "nosave")
            subprocess.run(["pg_dropcluster", "--stop", PG_VERSION, self.pg_cluster], capture_output=True, check=False)


class Probe(threading.Thread):
    """GET a database-backed, uncached URL every 100 ms; remember when each answer came and its status."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = headers
        self.samples: list[tuple[float, float, int]] = []  # (started epoch, seconds, status)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.time()
            status, _hdrs, _body = h.http(self.url, self.headers, timeout_s=10)
            self.samples.append((started, time.time() - started, status))
            self._stop_event.wait(0.1)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)

    def first_ok_after(self, moment: float) -> float | None:
        return next((s for s, _d, status in self.samples if s >= moment and status == 200), None)


def _sigterm(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", action="store_true", help="use the machine's Redis :6379 and cluster 15/main")
    parser.add_argument("--redis-db", type=int, default=5, help="Redis db number with --shared")
    parser.add_argument("--db-name", default="ts_chaos")
    parser.add_argument("--users", type=int, default=100, help="dashboard users (and seeded accounts)")
    parser.add_argument("--sync-workers", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--baseline", type=int, default=20)
    parser.add_argument("--outage", type=int, default=20, help="seconds of (a) Redis stopped and (b) paused")
    parser.add_argument("--recovery", type=int, default=15, help="seconds observed after (a) and (b)")
    parser.add_argument("--after-pg", type=int, default=20, help="seconds observed after PostgreSQL is back")
    parser.add_argument("--workers", type=int, default=0, help="0: gunicorn.conf.py's default")
    parser.add_argument("--threads", type=int, default=0, help="0: gunicorn.conf.py's default")
    parser.add_argument("--out", default="bench-results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = h.ROOT / args.out / f"chaos-{run_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "setup.log"
    services = Services.shared_instances(args.redis_db) if args.shared else Services.private_instances()
    gunicorn = None
    locust = None
    probe = None
    phases: list[dict] = []
    marks: dict[str, float] = {}
    metrics_at: dict[str, str] = {}
    cpu_at: dict[str, h.CpuTotals] = {}
    cpu = h.CpuMonitor()
    result: dict = {
        "run_id": run_id,
        "started_at": started.isoformat(timespec="seconds"),
        "mode": "shared" if args.shared else "private",
    }
    try:
        if not h.pg_accepting(services.pg_url) or not h.redis_alive(services.redis_url):
            raise SystemExit("PostgreSQL or Redis is not answering before the run")
        database_url = h.recreate_database(services.pg_url, args.db_name)
        release = f"chaos-{run_id}"
        env = h.app_env(
            database_url=database_url,
            redis_url=services.redis_url,
            release=release,
            bind=f"127.0.0.1:{h.free_port()}",
            prom_dir=Path(tempfile.mkdtemp(prefix="ts-chaos-prom-")),
            workers=args.workers,
            threads=args.threads,
        )
        result["machine"] = h.machine_info(database_url, services.redis_url)
        h.say(f"database {args.db_name}: migrate, seed_demo --users {args.users}, mint_tokens")
        h.manage(env, "migrate", "--noinput", log=log)
        # one user more than Locust drives: the blip phase (d) owns it
        h.manage(env, "seed_demo", "--users", str(args.users + 1), "--syncs", "2", "--seed", "2026", log=log)
        tokens_json = run_dir / "tokens.json"
        h.manage(env, "mint_tokens", "--users", str(args.users + 1), "--output", str(tokens_json), log=log)
        blip_token = json.loads(tokens_json.read_text())["users"][-1]["access"]
        locust_tokens = json.loads(tokens_json.read_text())
        locust_tokens["users"] = locust_tokens["users"][: args.users]
        tokens_json.write_text(json.dumps(locust_tokens))
        views = h.resolve_view_names(env, [*h.HOT_PATHS, h.SYNC_PATH])
        gunicorn = h.Gunicorn(env, run_dir / "gunicorn.log")
        gunicorn.start()
        token = json.loads(tokens_json.read_text())["users"][0]["access"]
        probe_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        probe_url = gunicorn.base_url + PROBE_PATH
        if h.http(probe_url, probe_headers)[0] != 200:
            probe_url = gunicorn.base_url + "/readyz"  # fall back to the readiness probe (SELECT 1)
            probe_headers = {}
        total = args.warmup + args.baseline + 2 * (args.outage + args.recovery) + args.after_pg + 140
        prefix = run_dir / "locust"
        locust = h.start_locust(
            host=gunicorn.base_url,
            prefix=prefix,
            tokens_file=tokens_json,
            dashboard_users=args.users,
            sync_workers=args.sync_workers,
            run_time_s=total,
            warmup_s=args.warmup,
            request_log=True,
        )
        cpu.set_root("gunicorn", gunicorn.pid)
        cpu.set_root("locust", locust.process.pid)
        if not locust.wait_for(locust.start_metrics, args.warmup + 60):
            raise SystemExit(f"Locust did not start; see {locust.log_path}")
        workers_before = gunicorn.worker_pids()

        def mark(name: str) -> None:
            marks[name] = time.time()
            metrics_at[name] = h.scrape(gunicorn.base_url)
            cpu_at[name] = cpu.sample()

        mark("baseline")
        h.say(f"baseline {args.baseline} s")
        time.sleep(args.baseline)

        mark("a_redis_stopped")
        h.say(f"(a) Redis stopped for {args.outage} s")
        services.redis_watchdog(args.outage + 15)
        services.stop_redis()
        time.sleep(args.outage)
        services.start_redis()
        mark("a_recovery")
        time.sleep(args.recovery)

        mark("b_redis_paused")
        h.say(f"(b) Redis CLIENT PAUSE {args.outage * 1000} ALL")
        services.pause_redis(args.outage * 1000)
        time.sleep(args.outage + 0.5)
        mark("b_recovery")
        time.sleep(args.recovery)

        mark("d_blip")
        h.say(f"(d) Redis CLIENT PAUSE {BLIP_PAUSE_MS} ALL during a sync")
        result["blip"] = blip_during_sync(services, gunicorn.base_url, blip_token)
        h.say(f"(d) {result['blip']}")
        mark("d_after")
        time.sleep(3)

        mark("c_pg_restart")
        h.say("(c) PostgreSQL restart")
        probe = Probe(probe_url, probe_headers)
        probe.start()
        services.pg_watchdog(60)
        restarted = services.pg_ctl("restart")
        deadline = time.monotonic() + 60
        while not h.pg_accepting(services.pg_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        marks["c_pg_accepting"] = time.time()
        result["pg_restart_output"] = (restarted.stdout + restarted.stderr)[-500:]
        time.sleep(args.after_pg)
        mark("end")
        probe.stop()
        workers_after = gunicorn.worker_pids()
        locust.stop()
        result["gunicorn_master_alive"] = gunicorn.process is not None and gunicorn.process.poll() is None
        result["gunicorn_workers_replaced"] = sorted(workers_before - workers_after)
    except KeyboardInterrupt:
        h.say("interrupted: restoring Redis and PostgreSQL")
        raise
    finally:
        cpu.stop()
        if probe is not None and probe.is_alive():
            probe.stop()
        services.restore()
        services.cancel_watchdogs()
        if locust is not None and locust.process.poll() is None:
            locust.stop()
        if gunicorn is not None:
            gunicorn.stop()
        try:
            h.drop_database(services.pg_url, args.db_name)
        except Exception as exc:
            h.say(f"could not drop {args.db_name}: {exc!r}")
        services.teardown()

    # ---------------------------------------------------------------- figures
    logged = []
    for path in locust.request_logs():
        with path.open() as handle:
            logged.extend(r.parse_request_log(handle))
    boundaries = [
        "baseline", "a_redis_stopped", "a_recovery", "b_redis_paused", "b_recovery", "d_blip", "d_after",
        "c_pg_restart", "end",
    ]  # fmt: skip
    labels = {
        "baseline": "baseline",
        "a_redis_stopped": "(a) Redis stopped",
        "a_recovery": "(a) after restart",
        "b_redis_paused": "(b) Redis paused",
        "b_recovery": "(b) after pause",
        "d_blip": "(d) Redis blip during a sync",
        "d_after": "(d) after the blip",
        "c_pg_restart": "(c) PostgreSQL restart",
    }
    api_views = [*(views[p] for p in h.HOT_PATHS), views[h.SYNC_PATH]]
    for start_name, end_name in zip(boundaries, boundaries[1:], strict=False):
        stats: dict[str, Any] = r.phase_stats(logged, marks[start_name], marks[end_name])
        delta = r.counters_delta(
            r.view_counters(r.parse_prometheus(metrics_at[end_name])),
            r.view_counters(r.parse_prometheus(metrics_at[start_name])),
        )
        api = r.total_counters(delta, api_views)
        reads = r.total_counters(delta, [views[p] for p in h.HOT_PATHS])
        stats.update(
            {
                "phase": labels[start_name],
                "seconds": marks[end_name] - marks[start_name],
                "sql_per_request": api.sql_per_request(),
                "server_5xx_by_metrics": api.server_errors,
                "read_hit_rate": reads.hit_rate(),
                "cpu": cpu_at[end_name].usage_since(cpu_at[start_name], int(result["machine"]["cores"])),
            }
        )
        phases.append(stats)
    accepting = marks["c_pg_accepting"]
    probe_ok = probe.first_ok_after(accepting) if probe else None
    sync_ok = r.first_success_after(logged, accepting, h.SYNC_PATH, status=201)
    recovery: dict[str, Any] = {
        "pg_restart_s": accepting - marks["c_pg_restart"],
        "probe": probe_url.replace(gunicorn.base_url, ""),
        "probe_first_ok_after_accepting_s": None if probe_ok is None else max(0.0, probe_ok - accepting),
        "first_sync_201_after_accepting_s": None if sync_ok is None else max(0.0, sync_ok - accepting),
        "probe_longest_s": max((d for _s, d, _st in probe.samples), default=None) if probe else None,
    }
    result.update({"phases": phases, "marks": marks, "recovery": recovery, "views": views})
    by_label = {p["phase"]: p for p in phases}
    c = by_label["(c) PostgreSQL restart"]
    checks = [
        r.check("(a) Redis stopped: 0 5xx", by_label["(a) Redis stopped"]["server_errors"], 0, fmt="{:.0f}"),
        r.check(
            "(a) Redis stopped: 0 transport errors", by_label["(a) Redis stopped"]["transport_errors"], 0, fmt="{:.0f}"
        ),
        r.check("(a) after restart: 0 5xx", by_label["(a) after restart"]["server_errors"], 0, fmt="{:.0f}"),
        r.check("(b) Redis paused: 0 5xx", by_label["(b) Redis paused"]["server_errors"], 0, fmt="{:.0f}"),
        r.check("(b) Redis paused: p95 <= 50 ms", by_label["(b) Redis paused"]["p95"], 50.0, fmt="{:.1f} ms"),
        r.check("(b) after pause: 0 5xx", by_label["(b) after pause"]["server_errors"], 0, fmt="{:.0f}"),
        r.check(
            "(c) first DB-backed 200 within 5 s of PostgreSQL accepting",
            recovery["probe_first_ok_after_accepting_s"],
            5.0,
            fmt="{:.2f} s",
        ),
        r.check(
            "(c) first sync 201 within 5 s of PostgreSQL accepting",
            recovery["first_sync_201_after_accepting_s"],
            5.0,
            fmt="{:.2f} s",
        ),
        r.check("(c) longest request <= 5 s", None if c["max"] is None else c["max"] / 1000.0, 5.0, fmt="{:.2f} s"),
        r.Check(
            "(c) gunicorn not restarted (master alive, no worker replaced)",
            result["gunicorn_master_alive"] and not result["gunicorn_workers_replaced"],
            f"master alive={result['gunicorn_master_alive']}, "
            f"workers replaced={len(result['gunicorn_workers_replaced'])}",
        ),
        r.check("(d) blip: the sync answered 201", 1.0 if result["blip"]["blip_sync"] == 201 else 0.0, 1.0, op=">=",
                fmt="{:.0f}"),
        r.check("(d) blip: the sync shown <= 5 s after Redis answered", result["blip"]["staleness_s"], 5.0,
                fmt="{:.2f} s"),
    ]  # fmt: skip
    result["checks"] = checks
    headers = [
        "phase",
        "s",
        "requests",
        "5xx",
        "transport err",
        "4xx",
        "p50 ms",
        "p95 ms",
        "max ms",
        "SQL/req",
        "read hit %",
    ]
    rows = [
        [
            p["phase"],
            r.fmt_num(p["seconds"], 0),
            r.fmt_num(p["requests"], 0),
            r.fmt_num(p["server_errors"], 0),
            r.fmt_num(p["transport_errors"], 0),
            r.fmt_num(p["client_errors"], 0),
            r.fmt_num(p["p50"], 1),
            r.fmt_num(p["p95"], 1),
            r.fmt_num(p["max"], 0),
            r.fmt_num(p["sql_per_request"], 2),
            r.fmt_num(p["read_hit_rate"], 1, percent=True),
        ]
        for p in phases
    ]
    machine = result["machine"]
    lines = [
        f"tradingsite chaos run {result['started_at']} — {machine['cores']} cores ({machine['cpu']}), PostgreSQL "
        f"{machine['postgresql']}, Redis {machine['redis']}; {result['mode']} Redis/PostgreSQL; gunicorn "
        f"{args.workers or 'default'}x{args.threads or 'default'} gthread, Locust {args.users} dashboard users + "
        f"{args.sync_workers} sync workers "
        "(all on the same machine)",
        "",
        r.render_table(headers, rows),
        "",
        f"(c) PostgreSQL restart took {recovery['pg_restart_s']:.2f} s; probe {recovery['probe']}: first 200 "
        f"{r.fmt_num(recovery['probe_first_ok_after_accepting_s'], 2)} s after accepting; first sync 201 "
        f"{r.fmt_num(recovery['first_sync_201_after_accepting_s'], 2)} s after accepting; longest probe "
        f"{r.fmt_num(recovery['probe_longest_s'], 2)} s",
        f"(d) Redis paused {BLIP_PAUSE_MS} ms during a sync: the sync answered {result['blip']['blip_sync']} in "
        f"{result['blip']['blip_sync_s']:.2f} s; guards/status showed it "
        f"{r.fmt_num(result['blip']['staleness_s'], 2)} s after Redis answered again (staleness)",
        "",
        *[f"CPU during {p['phase']}: {h.describe_cpu(p['cpu'], int(machine['cores']))}" for p in phases],
        "",
        "targets (issue 8, chaos):",
        *[f"  {item.verdict}  {item.target}: {item.measured}" for item in checks],
        "",
        f"files: {run_dir}",
    ]
    text = "\n".join(lines)
    print(text)
    (run_dir / "table.txt").write_text(text + "\n")
    json_path = h.ROOT / args.out / f"chaos-{run_id}.json"
    json_path.write_text(json.dumps(r.as_jsonable(result), indent=1, default=str))
    print(f"json: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
