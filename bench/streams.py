"""The streams phase of ``make bench`` (issue 14): do the hot reads move with 1,000 event streams open?

    python bench/run_benchmark.py --only streams        # this phase alone
    python bench/run_benchmark.py --skip-streams        # everything else

With the read and write pools already up (caching on), it starts the event stream's server as
deployed (``docker-compose.yml`` service ``stream``: ``uvicorn tradingsite.asgi:application
--workers 2``) and keeps it up through the phase. Then:

1. **Interleaved runs.** ``without``, then ``--stream-rounds`` (4) times ``with, without``: each run
   with the streams open lies between two without. Each run is ``wrk`` against each hot read (the same
   closed-loop measure as the saturation runs: ``--wrk-connections`` connections for
   ``--wrk-seconds``, after a 3 s warm-up). The hot reads' order rotates from run to run, so no read
   is always the first one after the streams open or close. Before a "with" run, ``--streams`` SSE
   streams (``GET /api/v1/events/stream/``, an async httpx client in a thread of this process) open,
   spread round-robin over the seeded users; they close after it. Every run starts ``SETTLE_S`` after
   its streams opened or closed. Per run and read it records wrk's req/s, p95 and p99 and the read
   pool's own CPU per request (``CPU ms/read``: the gunicorn read pool's utime + stime over the
   measured seconds / wrk's requests), which the other processes on the box do not move unless the
   service itself pays for the streams; and the CPU of the stream server and of this harness.
2. **Idle streams.** The streams open once more; it measures the stream server's CPU, the benchmark
   database's PostgreSQL transactions and the Redis server's commands over ``--stream-idle-s`` of
   idleness (nothing is written then).
3. **Deliveries.** It posts one sync per user (through the write pool), waits until every stream has
   its user's new rows and at least one heartbeat, closes the streams, and checks each stream received
   exactly its own user's new rows (ids and order, read back from PostgreSQL): a row of another user
   is a leak.

Verdict per hot read and figure (:class:`Effect`): each run with the streams is divided by the mean of
the two runs without around it (a drift of the machine over the phase cancels out); the geometric mean
of these ratios is the effect, and its one-sided 95 % confidence bound on the worse side (Student's t
on the log ratios) is the worst the runs allow. ``PASS`` when that bound is within ``TOLERANCE`` (req/s
at least 90 % of without; p95, p99 and CPU per read at most 110 %), ``MISS`` when even the bound on the
better side is beyond it, else ``n/a`` (the runs disagree too much for their number to tell). The
three reads pooled (per run with streams, the geometric mean of the reads' ratios) give the phase's
"hot reads unchanged" verdict, which is also a MISS when one read alone misses. Deliveries are
``PASS`` or ``FAIL``; a stream that closed during a run fails the phase. The pure parts (schedule,
paired ratios, bounds, verdicts, delivery check, tables) are unit-tested in ``bench/tests/test_streams.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
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

TOLERANCE = 0.10  # "unchanged": within 10 % of the median of the runs without streams (issue 14)
SETTLE_S = 5.0  # between the streams opening or closing and a run's warm-up
STREAM_PATH = "/api/v1/events/stream/"
LOG_TABLE = "reconciliation_reconciliationlog"
ACCOUNT_TABLE = "accounts_account"
# (figure, key in a run's result per read, higher is better)
FIGURES = (("req/s", "rps", True), ("p95", "p95", False), ("p99", "p99", False), ("CPU ms/read", "cpu_ms", False))
WITHOUT, WITH = "without", "with"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The phase's options on ``run_benchmark.py``'s parser."""
    parser.add_argument("--only", choices=("streams",), help="run only this phase (with the setup it needs)")
    parser.add_argument("--skip-streams", action="store_true", help="skip the streams phase")
    parser.add_argument("--streams", type=int, default=1000, help="SSE streams opened in the streams phase")
    parser.add_argument(
        "--stream-rounds", type=int, default=4, help="runs with the streams open, each between two without (default 4)"
    )
    parser.add_argument("--stream-workers", type=int, default=2, help="uvicorn workers (docker-compose.yml: 2)")
    parser.add_argument("--stream-idle-s", type=int, default=30, help="seconds of idle streams for the CPU figure")
    parser.add_argument(
        "--stream-heartbeat-s", type=float, default=15.0, help="SSE_HEARTBEAT_S of the stream server (default 15)"
    )


# ------------------------------------------------------------------------------------------------
# Pure parts (bench/tests/test_streams.py)
# ------------------------------------------------------------------------------------------------
def schedule(rounds: int) -> list[str]:
    """The runs' states: ``without``, then ``rounds`` times ``with, without`` (each run with the streams
    open lies between two without, so a drift of the machine over the phase cancels out)."""
    return [WITHOUT, *[state for _ in range(max(rounds, 1)) for state in (WITH, WITHOUT)]]


def path_order(paths: list[str] | tuple[str, ...], index: int) -> list[str]:
    """The hot reads in run ``index``'s order: rotated by one per run, so each read takes each place."""
    shift = index % len(paths) if paths else 0
    return [*paths[shift:], *paths[:shift]]


# One-sided 95 % quantiles of Student's t by degrees of freedom (NIST/SEMATECH e-Handbook of Statistical
# Methods, table 1.3.6.7.2, column 0.95); a df between two rows takes the smaller row's (larger) value.
T95_ONE_SIDED = {
    1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
    12: 1.782, 15: 1.753, 20: 1.725, 30: 1.697,
}  # fmt: skip


def t95(df: int) -> float:
    """One-sided 95 % quantile of Student's t with ``df`` degrees of freedom (conservative between rows)."""
    if df < 1:
        return math.inf
    return T95_ONE_SIDED[max(row for row in T95_ONE_SIDED if row <= df)]


def paired_ratios(runs: list[dict], path: str, key: str) -> list[float | None]:
    """``with / mean(without before, without after)`` for each run with the streams (None when a figure
    is missing): each ratio compares a run with its two neighbours, so a drift of the machine over the
    phase cancels out."""
    out: list[float | None] = []
    for index, run in enumerate(runs):
        if run["state"] != WITH or index == 0 or index == len(runs) - 1:
            continue
        before, after = runs[index - 1], runs[index + 1]
        if before["state"] != WITHOUT or after["state"] != WITHOUT:
            continue
        values = [r_["reads"].get(path, {}).get(key) for r_ in (run, before, after)]
        if any(v is None for v in values) or values[1] + values[2] <= 0:
            out.append(None)
        else:
            out.append(values[0] / ((values[1] + values[2]) / 2))
    return out


def _geometric_mean(values: tuple[float | None, ...]) -> float | None:
    """exp(mean(log v)); None when a value is missing or not positive."""
    if not values or any(v is None or v <= 0 for v in values):
        return None
    return math.exp(statistics.fmean(math.log(v) for v in values if v is not None))


@dataclass(frozen=True)
class Effect:
    """What the open streams did to one figure: the paired ratios (with / the neighbours without), their
    geometric mean, and the one-sided 95 % confidence bounds of that mean (Student's t on the log
    ratios) — ``worst`` on the side where the figure is worse, ``best`` on the other.

    Verdict: ``PASS`` when even the worst bound is within ``tolerance`` (req/s ≥ 90 % of without; p95,
    p99 and CPU per read ≤ 110 %); ``MISS`` when even the best bound is beyond it; ``n/a`` otherwise (the
    runs disagree too much for so few of them to tell) or with fewer than two ratios.
    """

    ratios: tuple[float | None, ...]
    higher_is_better: bool
    tolerance: float = TOLERANCE

    def _logs(self) -> list[float] | None:
        if not self.ratios or any(v is None or v <= 0 for v in self.ratios):
            return None
        return [math.log(v) for v in self.ratios if v is not None]

    @property
    def estimate(self) -> float | None:
        """Geometric mean of the ratios."""
        return _geometric_mean(self.ratios)

    def _bound(self, worse: bool) -> float | None:
        logs = self._logs()
        if not logs or len(logs) < 2:
            return None
        half_width = t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
        sign = -1 if self.higher_is_better == worse else 1
        return math.exp(statistics.fmean(logs) + sign * half_width)

    @property
    def worst(self) -> float | None:
        """The one-sided 95 % bound on the worse side (lower for req/s, upper for latency and CPU)."""
        return self._bound(worse=True)

    @property
    def best(self) -> float | None:
        """The one-sided 95 % bound on the better side."""
        return self._bound(worse=False)

    @property
    def verdict(self) -> str:
        """``PASS``, ``MISS`` or ``n/a`` (class docstring)."""
        worst, best = self.worst, self.best
        if worst is None or best is None:
            return "n/a"
        if self.higher_is_better:
            return "PASS" if worst >= 1 - self.tolerance else "MISS" if best < 1 - self.tolerance else "n/a"
        return "PASS" if worst <= 1 + self.tolerance else "MISS" if best > 1 + self.tolerance else "n/a"


def combine(verdicts: list[str]) -> str:
    """One verdict for several: FAIL > MISS > n/a > PASS (an empty list is n/a)."""
    for worst in ("FAIL", "MISS", "n/a"):
        if worst in verdicts:
            return worst
    return "PASS" if verdicts else "n/a"


POOLED = "the three reads"


def run_values(runs: list[dict], path: str, key: str, state: str) -> list[float | None]:
    """One figure of one read in each run of ``state``, in run order."""
    return [run["reads"].get(path, {}).get(key) for run in runs if run["state"] == state]


def compare_runs(runs: list[dict], paths: list[str], tolerance: float = TOLERANCE) -> dict[str, dict[str, Effect]]:
    """``{path: {figure: Effect}}`` from the runs (``{"state": "without" | "with", "reads": {path:
    figures}}``, figures as in :data:`FIGURES`), plus ``POOLED``: per run with streams, the geometric mean
    of the reads' ratios."""
    out: dict[str, dict[str, Effect]] = {}
    for path in paths:
        out[path] = {
            name: Effect(tuple(paired_ratios(runs, path, key)), higher, tolerance) for name, key, higher in FIGURES
        }
    # One ratio per run with streams, the reads' geometric mean: the three reads of one run share the
    # machine's state, so they are not three independent samples.
    out[POOLED] = {
        name: Effect(
            tuple(
                _geometric_mean(per_run) for per_run in zip(*(out[path][name].ratios for path in paths), strict=True)
            ),
            higher,
            tolerance,
        )
        for name, _key, higher in FIGURES
    }
    return out


def comparisons_json(runs: list[dict], comparisons: dict[str, dict[str, Effect]]) -> dict:
    """The comparisons as the JSON file keeps them and :func:`render_phase` prints them: per read (and
    ``POOLED``) and figure, the runs' values by state, the paired ratios, the estimate, the bounds and
    the verdict."""
    keys = {name: key for name, key, _higher in FIGURES}
    return {
        path: {
            name: {
                "without": run_values(runs, path, keys[name], WITHOUT) if path != POOLED else [],
                "with_streams": run_values(runs, path, keys[name], WITH) if path != POOLED else [],
                "ratios": list(effect.ratios),
                "estimate": effect.estimate,
                "worst": effect.worst,
                "best": effect.best,
                "verdict": effect.verdict,
            }
            for name, effect in figures.items()
        }
        for path, figures in comparisons.items()
    }


def reads_verdict(comparisons: dict[str, dict[str, Effect]]) -> str:
    """The pooled figures' verdicts, and MISS if any one read's figure is a MISS on its own."""
    pooled = [effect.verdict for effect in comparisons[POOLED].values()]
    own = [effect.verdict for path, figures in comparisons.items() if path != POOLED for effect in figures.values()]
    return combine([*pooled, "MISS" if "MISS" in own else "PASS"])


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
    """The phase's table (per hot read and figure: the runs' values, the paired estimate, its worst
    bound and verdict; then the three reads pooled), one line per run and the idle and delivery lines."""
    if not phase:
        return ""
    if phase.get("skipped"):
        return f"streams phase skipped: {phase['skipped']}"
    headers = ["hot read", "figure", "runs without", "runs with", "with / without", "worst (95 %)", "verdict"]
    rows = []
    for path, figures in phase["comparisons"].items():
        for name, c in figures.items():
            digits = 0 if name == "req/s" else 2
            unit = "" if name in ("req/s", "CPU ms/read") else " ms"
            rows.append(
                [
                    path.replace("/api/v1/", ""),
                    f"{name}{unit}",
                    " / ".join(r.fmt_num(v, digits) for v in c["without"]),
                    " / ".join(r.fmt_num(v, digits) for v in c["with_streams"]),
                    r.fmt_num(c["estimate"], 1, percent=True),
                    r.fmt_num(c["worst"], 1, percent=True),
                    c["verdict"],
                ]
            )
    runs = phase.get("runs") or []
    lines = [
        f"streams phase: {len(runs)} runs, in this order: {', '.join(run['state'] for run in runs)} "
        f"({phase['streams']} SSE streams open during each 'with' run; the reads' order rotates per run)",
        "with / without = geometric mean of each run with / the mean of the runs just before and after it; "
        "worst (95 %) = its one-sided 95 % confidence bound on the worse side",
        r.render_table(headers, rows),
    ]
    if runs:
        lines.append(render_runs(runs))
    for index, run in enumerate(runs, 1):
        cpu = run.get("cpu") or {}
        if not cpu:
            continue
        open_text = f", {run['open_before']} → {run['open_after']} streams open" if run["state"] == WITH else ""
        lines.append(
            f"run {index} ({run['state']}{open_text}): stream server {cpu['stream_server_percent']:.1f} % of one "
            f"core, this harness (the streams' clients) {cpu['harness_percent']:.1f} %, over {cpu['seconds']:.0f} s "
            "of wrk on the same cores"
        )
    idle = phase.get("idle") or {}
    if idle:
        lines.append(
            f"idle streams over {idle['seconds']:.0f} s: stream server CPU {idle['cpu_percent']:.1f} % of one core "
            f"({idle['cpu_s']:.2f} s), PostgreSQL transactions {idle['pg_xacts']}, "
            f"Redis commands {idle['redis_commands']} (the whole Redis server's: other clients' included)"
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
        f"(the three reads pooled, each figure's worst bound within {TOLERANCE:.0%}; n/a = the runs disagree "
        "too much to tell; MISS also when one read alone is worse by more even at its best bound)"
    )
    lines.append(f"  {phase['verdict']}  streams phase")
    return "\n".join(lines)


def render_runs(runs: list[dict]) -> str:
    """One row per run and read: req/s, the read pool's CPU per read, the share answered from a stored
    page and computed, SQL per read (what to look at when a figure moves)."""
    headers = ["run", "state", "hot read", "req/s", "CPU ms/read", "from page", "computed", "SQL/read"]
    rows = []
    for index, run in enumerate(runs, 1):
        for path in run.get("order") or list(run["reads"]):
            f = run["reads"].get(path, {})
            rows.append(
                [
                    str(index),
                    run["state"],
                    path.replace("/api/v1/", ""),
                    r.fmt_num(f.get("rps"), 0),
                    r.fmt_num(f.get("cpu_ms"), 2),
                    r.fmt_num(f.get("served_page"), 1, percent=True),
                    r.fmt_num(f.get("served_compute"), 2, percent=True),
                    r.fmt_num(f.get("sql_per_read"), 3),
                ]
            )
    return r.render_table(headers, rows)


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

    def __init__(
        self, env: dict[str, str], log_path: Path, workers: int, heartbeat_s: float, app_dir: Path = h.ROOT
    ) -> None:  # fmt: skip
        self.port = h.free_port()
        self.workers = workers
        self.app_dir = app_dir  # the checkout whose code it serves (another one for a before/after run)
        stream_env = {**env, "ASGI_STREAM_SERVER": "true", "SSE_HEARTBEAT_S": str(heartbeat_s)}
        super().__init__(stream_env, log_path, f"http://127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "tradingsite.asgi:application", "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(self.workers), "--no-access-log",
            "--timeout-graceful-shutdown", "5", "--app-dir", str(self.app_dir),
        ]  # fmt: skip

    def cpu_ticks(self) -> int:
        """utime + stime ticks of the server and its workers, from /proc."""
        return h.tree_ticks(self.pid)


CLIENT_NICE = 19  # the client streams' thread: the lowest CPU priority (StreamFleet)


class StreamFleet:
    """``count`` SSE streams held open by an asyncio loop in a thread of this process (httpx).

    The clients stand for browsers on other machines, whose CPU the service never pays. Here they share
    two cores with wrk and the service, so their thread runs at ``nice`` ``CLIENT_NICE`` (on Linux the
    nice value is per thread, setpriority(2)): it reads the streams with the CPU the measured processes
    leave idle, and its CPU is still printed. The stream server runs at the service's priority.
    """

    def __init__(self, url: str, credentials: list[tuple[int, str]], count: int, after_id: int) -> None:
        self.after_id = after_id  # every stream resumes after this log row
        self.url = f"{url}?last_event_id={after_id}"
        self.records = [StreamRecord(user_id=credentials[i % len(credentials)][0]) for i in range(count)]
        self.tokens = [credentials[i % len(credentials)][1] for i in range(count)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="stream-fleet", daemon=True)
        self.tasks: list[asyncio.Task] = []
        self.client: Any = None  # an httpx.AsyncClient once opened (httpx is a bench-only package)

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: the process's priority is left alone
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICE)
        self.loop.run_forever()

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


def _own_ticks() -> float:
    """This process's CPU (user + system) in clock ticks."""
    times = os.times()
    return (times.user + times.system) * h.CLOCK_TICKS


def _measure_run(
    wrk: str, pools: h.Pools, server: StreamServer, tokens_txt: Path, args, index: int, state: str
) -> dict:  # fmt: skip
    """One run: each hot read (in this run's rotated order) under wrk after a 3 s warm-up, with the read
    pool's CPU per request over the measured seconds; the stream server's and this harness's CPU over
    the run's measured seconds."""
    reads: dict[str, dict[str, Any]] = {}
    measured_s = server_ticks = own_ticks = 0.0
    order = path_order(h.HOT_PATHS, index)
    for path in order:
        url = pools.base_url + path
        h.run_wrk(wrk, url, tokens_txt=tokens_txt, seconds=3, connections=args.wrk_connections)  # warm-up
        h.say(f"streams phase, run {index + 1} ({state}): wrk -c{args.wrk_connections} -d{args.wrk_seconds}s {url}")
        counters0 = r.view_counters(r.parse_prometheus(h.scrape(pools.base_url)))
        pool0, server0, own0, started = h.tree_ticks(pools.read.pid), server.cpu_ticks(), _own_ticks(), time.monotonic()
        result = h.run_wrk(wrk, url, tokens_txt=tokens_txt, seconds=args.wrk_seconds, connections=args.wrk_connections)
        pool_ticks = h.tree_ticks(pools.read.pid) - pool0
        measured_s += time.monotonic() - started
        server_ticks += server.cpu_ticks() - server0
        own_ticks += _own_ticks() - own0
        delta = r.counters_delta(r.view_counters(r.parse_prometheus(h.scrape(pools.base_url))), counters0)
        counters = r.total_counters(delta, delta)  # every view: only this read was requested meanwhile
        try:
            figures = r.parse_wrk(result.stdout)
        except ValueError:
            reads[path] = {"error": (result.stdout + result.stderr)[-500:]}
            continue
        requests = figures["requests"]
        served = counters.served_page + counters.served_data + counters.served_compute
        reads[path] = {
            **figures,
            "cpu_ms": 1000.0 * pool_ticks / h.CLOCK_TICKS / requests if requests else None,
            # how the service answered (its /metrics over the same seconds): from a stored page, from the
            # data cache, computed; and the SQL statements per request
            "served_page": counters.served_page / served if served else None,
            "served_compute": counters.served_compute / served if served else None,
            "sql_per_read": counters.sql / counters.requests if counters.requests else None,
        }
    cpu = {
        "seconds": measured_s,
        "stream_server_percent": 100.0 * server_ticks / h.CLOCK_TICKS / measured_s if measured_s else 0.0,
        "harness_percent": 100.0 * own_ticks / h.CLOCK_TICKS / measured_s if measured_s else 0.0,
    }
    return {"state": state, "order": order, "reads": reads, "cpu": cpu}


def _open_fleet(server: StreamServer, credentials: list[tuple[int, str]], count: int, database_url: str) -> StreamFleet:
    """Open ``count`` streams resuming after the newest log row (wait at most ``max(60, count / 10)`` s)."""
    after_id = int(_pg_rows(database_url, f"SELECT coalesce(max(id), 0) FROM {LOG_TABLE}")[0][0])
    fleet = StreamFleet(server.base_url + STREAM_PATH, credentials, count, after_id)
    opened_at = time.monotonic()
    open_now = fleet.start(timeout_s=max(60.0, count / 10))
    h.say(f"{open_now}/{count} streams open in {time.monotonic() - opened_at:.1f} s")
    return fleet


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
    runs: list[dict] = []
    server = StreamServer(env, run_dir / "stream-server.log", args.stream_workers, args.stream_heartbeat_s)
    fleet: StreamFleet | None = None
    phase: dict = {"streams": args.streams, "stream_workers": args.stream_workers, "runs": runs}
    try:
        h.say(
            f"stream server: uvicorn tradingsite.asgi:application --workers {args.stream_workers} on {server.base_url}"
        )
        server.start()
        for index, state in enumerate(schedule(args.stream_rounds)):
            open_before = 0
            if state == WITH:
                h.say(f"opening {args.streams} streams for {len(credentials)} users")
                fleet = _open_fleet(server, credentials, args.streams, database_url)
                open_before = fleet.open_count()
            time.sleep(SETTLE_S)
            run = _measure_run(wrk, pools, server, tokens_txt, args, index, state)
            if fleet is not None:
                run["open_before"], run["open_after"] = open_before, fleet.open_count()
                fleet.stop()
                fleet = None
            runs.append(run)
        h.say(f"opening {args.streams} streams for {len(credentials)} users (idle figures and deliveries)")
        fleet = _open_fleet(server, credentials, args.streams, database_url)
        after_id = fleet.after_id
        phase["opened"] = fleet.open_count()
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
    finally:
        if fleet is not None:
            fleet.stop()
        server.stop()
    comparisons = compare_runs(runs, list(h.HOT_PATHS))
    phase["comparisons"] = comparisons_json(runs, comparisons)
    # a run whose streams did not all stay open did not measure what it says
    streams_held = all(run["open_before"] == run["open_after"] == args.streams for run in runs if run["state"] == WITH)
    phase["streams_held"] = streams_held
    phase["verdict_reads"] = reads_verdict(comparisons) if streams_held else "FAIL"
    # a check over no new rows proves nothing: every sync must have been accepted and written rows
    syncs_ok = bool(phase["rows_written"]) and set(phase["sync_statuses"]) <= {"200", "201"}
    verdict = report.verdict if syncs_ok else "FAIL"
    phase["deliveries"] = {**report.__dict__, "verdict": verdict, "syncs_ok": syncs_ok}
    phase["verdict"] = combine([phase["verdict_reads"], "FAIL" if verdict == "FAIL" else "PASS"])
    return phase
