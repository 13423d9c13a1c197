"""The streams phase of ``make bench`` (issue 14): do the hot reads move with 1,000 event streams open?

    python bench/run_benchmark.py --only streams        # this phase alone
    python bench/run_benchmark.py --skip-streams        # everything else

With the read and write pools already up (caching on), it starts the event stream's server as
deployed (``docker-compose.yml`` service ``stream``: ``uvicorn tradingsite.asgi:application
--workers 2``) and:

1. **without** — ``wrk`` against each hot read (the same closed-loop measure as the saturation runs:
   ``--wrk-connections`` connections for ``--wrk-seconds``, after a 3 s warm-up);
2. opens ``--streams`` SSE streams (``GET /api/v1/events/stream/``, an async httpx client in a
   thread of this process) spread round-robin over the seeded users, all resuming after the newest
   log row; measures the stream server's CPU, the benchmark database's PostgreSQL transactions and
   the Redis server's commands over ``--stream-idle-s`` of idleness (nothing is written then);
3. **with** — the same wrk runs while the streams stay open;
4. posts one sync per user (through the write pool), waits until every stream has its user's new
   rows and at least one heartbeat, closes the streams, and checks each stream received exactly its
   own user's new rows (ids and order, read back from PostgreSQL): a row of another user is a leak;
5. **without again** — the wrk runs once more.

Verdict per hot read and figure (req/s, p95, p99): ``n/a`` when the two without-runs differ by more
than ``TOLERANCE`` of their mean (the machine is too noisy to judge), else ``PASS`` when the
with-streams figure is no more than ``TOLERANCE`` worse than that mean (req/s at least 90 % of it,
p95/p99 at most 110 %; better is never a miss), else ``MISS``. Deliveries are ``PASS`` or ``FAIL``.
The pure parts (comparison, noise gate, delivery check, table) are unit-tested in
``bench/tests/test_streams.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness as h
from bench import results as r

TOLERANCE = 0.10  # "unchanged": within 10 % of the mean of the two runs without streams (issue 14)
STREAM_PATH = "/api/v1/events/stream/"
LOG_TABLE = "reconciliation_reconciliationlog"
ACCOUNT_TABLE = "accounts_account"
# (figure, key in parse_wrk's result, higher is better)
FIGURES = (("req/s", "rps", True), ("p95", "p95", False), ("p99", "p99", False))
RUNS = ("without", "with", "without again")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The phase's options on ``run_benchmark.py``'s parser."""
    parser.add_argument("--only", choices=("streams",), help="run only this phase (with the setup it needs)")
    parser.add_argument("--skip-streams", action="store_true", help="skip the streams phase")
    parser.add_argument("--streams", type=int, default=1000, help="SSE streams opened in the streams phase")
    parser.add_argument("--stream-workers", type=int, default=2, help="uvicorn workers (docker-compose.yml: 2)")
    parser.add_argument("--stream-idle-s", type=int, default=30, help="seconds of idle streams for the CPU figure")
    parser.add_argument(
        "--stream-heartbeat-s", type=float, default=15.0, help="SSE_HEARTBEAT_S of the stream server (default 15)"
    )


# ------------------------------------------------------------------------------------------------
# Pure parts (bench/tests/test_streams.py)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """One figure of one hot read across the three runs, with the noise gate and the verdict."""

    without: float | None
    with_streams: float | None
    without_again: float | None
    higher_is_better: bool
    tolerance: float = TOLERANCE

    @property
    def baseline(self) -> float | None:
        """Mean of the two runs without streams."""
        if self.without is None or self.without_again is None:
            return None
        return (self.without + self.without_again) / 2

    @property
    def noise(self) -> float | None:
        """|without − without again| / their mean: how far two identical runs disagree."""
        base = self.baseline
        if base is None or base <= 0 or self.without is None or self.without_again is None:
            return None
        return abs(self.without - self.without_again) / base

    @property
    def ratio(self) -> float | None:
        """with-streams / baseline."""
        base = self.baseline
        if base is None or base <= 0 or self.with_streams is None:
            return None
        return self.with_streams / base

    @property
    def verdict(self) -> str:
        """``n/a`` (a figure missing, or noise > tolerance), ``PASS`` (not worse by more than the
        tolerance), else ``MISS``."""
        noise, ratio = self.noise, self.ratio
        if noise is None or ratio is None or noise > self.tolerance:
            return "n/a"
        if self.higher_is_better:
            return "PASS" if ratio >= 1 - self.tolerance else "MISS"
        return "PASS" if ratio <= 1 + self.tolerance else "MISS"


def combine(verdicts: list[str]) -> str:
    """One verdict for several: FAIL > MISS > n/a > PASS (an empty list is n/a)."""
    for worst in ("FAIL", "MISS", "n/a"):
        if worst in verdicts:
            return worst
    return "PASS" if verdicts else "n/a"


def compare_runs(runs: dict[str, dict[str, dict]], paths: list[str], tolerance: float = TOLERANCE) -> dict:
    """``{path: {figure: Comparison}}`` from ``{run: {path: parse_wrk result}}`` (runs as in RUNS)."""
    out: dict[str, dict[str, Comparison]] = {}
    for path in paths:
        out[path] = {
            name: Comparison(
                without=runs.get(RUNS[0], {}).get(path, {}).get(key),
                with_streams=runs.get(RUNS[1], {}).get(path, {}).get(key),
                without_again=runs.get(RUNS[2], {}).get(path, {}).get(key),
                higher_is_better=higher,
                tolerance=tolerance,
            )
            for name, key, higher in FIGURES
        }
    return out


@dataclass
class StreamRecord:
    """What one open stream saw: status, heartbeats and the event ids, in arrival order."""

    user_id: int
    status: int | None = None
    heartbeats: int = 0
    event_ids: list[int] = field(default_factory=list)
    error: str | None = None


@dataclass
class DeliveryReport:
    """Every stream against the rows its user got: exact ids and order, heartbeats, no leak."""

    streams: int
    connected: int
    exact: int
    with_heartbeat: int
    leaks: int  # rows of another user received, over all streams
    missing: int  # the user's rows not received, over all streams
    unexpected: int  # duplicates or rows out of order, over all streams
    examples: list[str]

    @property
    def verdict(self) -> str:
        """PASS when every stream connected, got exactly its user's rows and a heartbeat; else FAIL."""
        ok = self.streams > 0 and self.connected == self.exact == self.with_heartbeat == self.streams
        return "PASS" if ok and not self.leaks else "FAIL"


def check_deliveries(records: list[StreamRecord], owner_of: dict[int, int]) -> DeliveryReport:
    """Compare each stream's ids with its user's rows (``owner_of``: row id → user id, every row
    written after the streams' start)."""
    expected: dict[int, list[int]] = {}
    for row_id in sorted(owner_of):
        expected.setdefault(owner_of[row_id], []).append(row_id)
    connected = exact = with_heartbeat = leaks = missing = unexpected = 0
    examples: list[str] = []
    for index, record in enumerate(records):
        connected += record.status == 200
        with_heartbeat += record.heartbeats > 0
        own = expected.get(record.user_id, [])
        foreign = [i for i in record.event_ids if owner_of.get(i, record.user_id) != record.user_id]
        leaks += len(foreign)
        missing += len(set(own) - set(record.event_ids))
        mine = [i for i in record.event_ids if i not in foreign]
        unexpected += (len(mine) - len(set(mine))) + len(set(mine) - set(own))  # duplicates + strays
        if record.event_ids == own:
            exact += 1
        elif len(examples) < 5:
            examples.append(f"stream {index} (user {record.user_id}): got {record.event_ids[:10]}, want {own[:10]}")
    return DeliveryReport(len(records), connected, exact, with_heartbeat, leaks, missing, unexpected, examples)


def render_phase(phase: dict | None) -> str:
    """The phase's table (req/s, p95, p99 per hot read and run, ratio, noise, verdict) and its lines."""
    if not phase:
        return ""
    if phase.get("skipped"):
        return f"streams phase skipped: {phase['skipped']}"
    headers = ["hot read", "figure", *RUNS, "with / without", "noise", "verdict"]
    rows = []
    for path, figures in phase["comparisons"].items():
        for name, c in figures.items():
            digits = 0 if name == "req/s" else 2
            rows.append(
                [
                    path.replace("/api/v1/", ""),
                    name if name == "req/s" else f"{name} ms",
                    r.fmt_num(c["without"], digits),
                    r.fmt_num(c["with_streams"], digits),
                    r.fmt_num(c["without_again"], digits),
                    r.fmt_num(c["ratio"], 1, percent=True),
                    r.fmt_num(c["noise"], 1, percent=True),
                    c["verdict"],
                ]
            )
    lines = [f"streams phase: {phase['streams']} SSE streams open during the 'with' run", r.render_table(headers, rows)]
    idle = phase.get("idle") or {}
    if idle:
        lines.append(
            f"idle streams over {idle['seconds']:.0f} s: stream server CPU {idle['cpu_percent']:.1f} % of one core "
            f"({idle['cpu_s']:.2f} s), PostgreSQL transactions {idle['pg_xacts']}, "
            f"Redis commands {idle['redis_commands']} (the whole Redis server's: other clients' included)"
        )
    busy = phase.get("with_cpu") or {}
    if busy:
        lines.append(
            f"during the 'with' run ({busy['seconds']:.0f} s of wrk): stream server CPU "
            f"{busy['stream_server_percent']:.1f} % of one core, this harness (the streams' clients) "
            f"{busy['harness_percent']:.1f} %: both on the cores the reads were measured on"
        )
    d = phase["deliveries"]
    lines.append(
        f"deliveries: {d['exact']}/{d['streams']} streams got exactly their user's rows, "
        f"{d['with_heartbeat']}/{d['streams']} saw a heartbeat, {d['connected']} connected, "
        f"leaks {d['leaks']}, missing {d['missing']}, unexpected {d['unexpected']}, "
        f"{phase.get('rows_written', 0)} rows written by {phase.get('syncs_posted', 0)} syncs "
        f"(HTTP statuses {phase.get('sync_statuses', {})})"
    )
    lines.extend(f"  {example}" for example in d.get("examples", []))
    lines.append(f"  {d['verdict']}  every stream got exactly its own user's events and heartbeats")
    lines.append(
        f"  {phase['verdict_reads']}  hot reads unchanged with {phase['streams']} streams open "
        f"(within {TOLERANCE:.0%} of the mean of the two runs without; n/a = those differ by more)"
    )
    lines.append(f"  {phase['verdict']}  streams phase")
    return "\n".join(lines)


def parse_sse_line(line: str, record: StreamRecord) -> None:
    """Account one line of an event stream: ``: heartbeat`` comments and ``id:`` fields."""
    if line.startswith(":"):
        record.heartbeats += "heartbeat" in line
    elif line.startswith("id:"):
        with contextlib.suppress(ValueError):
            record.event_ids.append(int(line[3:].strip()))


# ------------------------------------------------------------------------------------------------
# Processes and clients
# ------------------------------------------------------------------------------------------------
class StreamServer(h.Served):
    """The event stream's ASGI server as ``docker-compose.yml`` runs it (uvicorn, ``tradingsite.asgi``)."""

    name = "the stream server (uvicorn)"

    def __init__(self, env: dict[str, str], log_path: Path, workers: int, heartbeat_s: float) -> None:
        self.port = h.free_port()
        self.workers = workers
        stream_env = {**env, "ASGI_STREAM_SERVER": "true", "SSE_HEARTBEAT_S": str(heartbeat_s)}
        super().__init__(stream_env, log_path, f"http://127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "tradingsite.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers), "--no-access-log",
            "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip

    def cpu_ticks(self) -> int:
        """utime + stime ticks of the server and its workers, from /proc."""
        if not self.pid:
            return 0
        table = h.proc_table()
        return sum(table[pid][2] for pid in h._descendants(table, self.pid))


class StreamFleet:
    """``count`` SSE streams held open by an asyncio loop in a thread of this process (httpx)."""

    def __init__(self, url: str, credentials: list[tuple[int, str]], count: int, after_id: int) -> None:
        self.url = f"{url}?last_event_id={after_id}"
        self.records = [StreamRecord(user_id=credentials[i % len(credentials)][0]) for i in range(count)]
        self.tokens = [credentials[i % len(credentials)][1] for i in range(count)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stream-fleet", daemon=True)
        self.tasks: list[asyncio.Task] = []
        self.client: Any = None  # an httpx.AsyncClient once opened (httpx is a bench-only package)

    async def _one(self, index: int, gate: asyncio.Semaphore) -> None:
        import httpx

        record = self.record_at(index)
        headers = {"Authorization": f"Bearer {self.tokens[index]}", "Accept": "text/event-stream"}
        released = False
        await gate.acquire()
        try:
            assert self.client is not None
            async with self.client.stream("GET", self.url, headers=headers) as response:
                record.status = response.status_code
                async for line in response.aiter_lines():
                    if not released:  # the first line ("retry: …") means the stream is set up
                        gate.release()
                        released = True
                    parse_sse_line(line, record)
        except (httpx.HTTPError, OSError) as exc:
            record.error = type(exc).__name__
        finally:
            if not released:
                gate.release()

    def record_at(self, index: int) -> StreamRecord:
        """What stream ``index`` has seen so far."""
        return self.records[index]

    async def _open_all(self, concurrency: int) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, read=None, pool=None),
            limits=httpx.Limits(max_connections=len(self.records) + 10, max_keepalive_connections=0),
        )
        gate = asyncio.Semaphore(concurrency)
        self.tasks = [asyncio.ensure_future(self._one(i, gate)) for i in range(len(self.records))]

    def start(self, timeout_s: float, concurrency: int = 50) -> int:
        """Open every stream (``concurrency`` being set up at once); wait until each answered its first
        line or ended, at most ``timeout_s``; return the number of streams open."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open_all(concurrency), self.loop).result(30)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(rec.status is not None or rec.error for rec in self.records):
                break
            time.sleep(0.5)
        return self.open_count()

    def open_count(self) -> int:
        """Streams answered 200 and still open."""
        return sum(
            1 for rec, task in zip(self.records, self.tasks, strict=True) if rec.status == 200 and not task.done()
        )

    def wait(self, done, timeout_s: float) -> bool:
        """Poll ``done(records)`` every 0.2 s for at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.records):
                return True
            time.sleep(0.2)
        return bool(done(self.records))

    def stop(self) -> None:
        """Cancel every stream, close the client, stop the loop's thread."""

        async def close() -> None:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            if self.client is not None:
                await self.client.aclose()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _wrk_all(wrk: str, base_url: str, tokens_txt: Path, args, label: str) -> dict[str, dict]:
    out = {}
    for path in h.HOT_PATHS:
        url = base_url + path
        h.run_wrk(wrk, url, tokens_txt=tokens_txt, seconds=3, connections=args.wrk_connections)  # warm-up
        h.say(f"streams phase ({label}): wrk -c{args.wrk_connections} -d{args.wrk_seconds}s {url}")
        result = h.run_wrk(wrk, url, tokens_txt=tokens_txt, seconds=args.wrk_seconds, connections=args.wrk_connections)
        try:
            out[path] = r.parse_wrk(result.stdout)
        except ValueError:
            out[path] = {"error": (result.stdout + result.stderr)[-500:]}
    return out


def _post_sync(write_url: str, token: str, account: tuple[int, str, str]) -> int:
    """One sync of ``account`` (login, server, currency) with positions unknown: its status code."""
    from tradingsite import sync_payload as mt5

    login, server, currency = account
    body = mt5.sync_body(
        account=mt5.account_info(login=login, server=server, currency=currency, balance="10000.00", equity="10000.00"),
        broker_time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        positions=None,
    )
    request = urllib.request.Request(
        write_url + h.SYNC_PATH,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _pg_rows(database_url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        return list(conn.execute(sql).fetchall())


def _redis_commands(redis_url: str) -> int:
    return int(h.redis_client(redis_url, timeout_s=5).info("stats")["total_commands_processed"])


def _pg_xacts(database_url: str, db_name: str) -> int:
    rows = _pg_rows(
        database_url, f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db_name}'"
    )
    return int(rows[0][0])


def run_phase(
    *, env: dict[str, str], args, run_dir: Path, pools: h.Pools, wrk: str | None, tokens_json: Path, tokens_txt: Path,
    database_url: str,
) -> dict:  # fmt: skip
    """The whole phase (module docstring); returns the JSON-able result that :func:`render_phase` prints."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        h.say("streams phase skipped: pip install -r bench/requirements.txt (httpx)")
        return {"skipped": "httpx is not installed (bench/requirements.txt)"}
    if not wrk:
        return {"skipped": "wrk is not available"}
    users = json.loads(tokens_json.read_text())["users"]
    credentials = [(int(u["user_id"]), u["access"]) for u in users]
    runs: dict[str, dict] = {}
    server = StreamServer(env, run_dir / "stream-server.log", args.stream_workers, args.stream_heartbeat_s)
    fleet: StreamFleet | None = None
    phase: dict = {"streams": args.streams, "stream_workers": args.stream_workers}
    try:
        runs["without"] = _wrk_all(wrk, pools.base_url, tokens_txt, args, "without streams")
        h.say(
            f"stream server: uvicorn tradingsite.asgi:application --workers {args.stream_workers} on {server.base_url}"
        )
        server.start()
        after_id = int(_pg_rows(database_url, f"SELECT coalesce(max(id), 0) FROM {LOG_TABLE}")[0][0])
        fleet = StreamFleet(server.base_url + STREAM_PATH, credentials, args.streams, after_id)
        opened_at = time.monotonic()
        h.say(f"opening {args.streams} streams for {len(credentials)} users")
        open_now = fleet.start(timeout_s=max(60.0, args.streams / 10))
        phase["open_s"] = time.monotonic() - opened_at
        phase["opened"] = open_now
        h.say(f"{open_now}/{args.streams} streams open in {phase['open_s']:.1f} s")
        # The last streams subscribe after their first line, and a PostgreSQL (15+) backend flushes its
        # statistics up to 10 s after going idle: without this wait the opening's own transactions (each
        # stream's authentication and first read) are counted as the idle streams'.
        time.sleep(12)
        xacts, commands, ticks = (
            _pg_xacts(database_url, args.db_name),
            _redis_commands(args.redis_url),
            server.cpu_ticks(),
        )
        started = time.monotonic()
        h.say(f"idle streams: measuring the stream server for {args.stream_idle_s} s")
        time.sleep(args.stream_idle_s)
        seconds = time.monotonic() - started
        cpu_s = (server.cpu_ticks() - ticks) / h.CLOCK_TICKS
        phase["idle"] = {
            "seconds": seconds,
            "streams_open": fleet.open_count(),
            "cpu_s": cpu_s,
            "cpu_percent": 100.0 * cpu_s / seconds,
            "pg_xacts": _pg_xacts(database_url, args.db_name) - xacts,
            "redis_commands": _redis_commands(args.redis_url) - commands - 1,  # less this INFO
            "heartbeat_s": args.stream_heartbeat_s,
        }
        # What the open streams cost while the reads are measured: the stream server's CPU, and this process's
        # (the 1,000 client streams' asyncio loop runs here, on the same cores as wrk and gunicorn).
        ticks, own, started = server.cpu_ticks(), os.times(), time.monotonic()
        runs["with"] = _wrk_all(wrk, pools.base_url, tokens_txt, args, f"{args.streams} streams open")
        seconds, own_after = time.monotonic() - started, os.times()
        phase["with_cpu"] = {
            "seconds": seconds,
            "stream_server_percent": 100.0 * (server.cpu_ticks() - ticks) / h.CLOCK_TICKS / seconds,
            "harness_percent": 100.0 * ((own_after.user - own.user) + (own_after.system - own.system)) / seconds,
        }
        phase["open_after_with"] = fleet.open_count()
        accounts = {
            int(user_id): (int(login), server_name, currency)
            for user_id, login, server_name, currency in _pg_rows(
                database_url,
                f"SELECT DISTINCT ON (user_id) user_id, login, server, currency FROM {ACCOUNT_TABLE} "
                "ORDER BY user_id, id",
            )
        }
        statuses = [
            _post_sync(pools.write_url, token, accounts[user_id])
            for user_id, token in credentials
            if user_id in accounts
        ]
        phase["syncs_posted"] = len(statuses)
        phase["sync_statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
        owner_of = {
            int(row_id): int(user_id)
            for row_id, user_id in _pg_rows(database_url, f"SELECT id, user_id FROM {LOG_TABLE} WHERE id > {after_id}")
        }
        phase["rows_written"] = len(owner_of)
        wanted: dict[int, int] = {}
        for user_id in owner_of.values():
            wanted[user_id] = wanted.get(user_id, 0) + 1
        fleet.wait(lambda recs: all(len(x.event_ids) >= wanted.get(x.user_id, 0) for x in recs), 20)
        fleet.wait(lambda recs: all(x.heartbeats > 0 for x in recs), args.stream_heartbeat_s + 10)
        time.sleep(1)  # a leaked or duplicated row would arrive now
        report = check_deliveries(fleet.records, owner_of)
        phase["errors"] = sorted({rec.error for rec in fleet.records if rec.error})
        fleet.stop()
        fleet = None
        server.stop()
        runs["without again"] = _wrk_all(wrk, pools.base_url, tokens_txt, args, "without streams again")
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
    comparisons = compare_runs(runs, list(h.HOT_PATHS))
    phase["runs"] = runs
    phase["comparisons"] = {
        path: {
            name: {
                "without": c.without,
                "with_streams": c.with_streams,
                "without_again": c.without_again,
                "ratio": c.ratio,
                "noise": c.noise,
                "verdict": c.verdict,
            }
            for name, c in figures.items()
        }
        for path, figures in comparisons.items()
    }
    phase["verdict_reads"] = combine([c.verdict for figures in comparisons.values() for c in figures.values()])
    # a check over no new rows proves nothing: every sync must have been accepted and written rows
    syncs_ok = bool(phase["rows_written"]) and set(phase["sync_statuses"]) <= {"200", "201"}
    verdict = report.verdict if syncs_ok else "FAIL"
    phase["deliveries"] = {**report.__dict__, "verdict": verdict, "syncs_ok": syncs_ok}
    phase["verdict"] = combine([phase["verdict_reads"], "FAIL" if verdict == "FAIL" else "PASS"])
    return phase
