"""Process plumbing shared by ``bench/run_benchmark.py`` and ``bench/chaos.py``.

Creates the throwaway database, runs management commands with production settings, starts and stops
gunicorn (``gunicorn.conf.py``) on loopback, runs Locust headless, scrapes ``/metrics``, and samples
CPU per process group from ``/proc`` so the output can say what shared the two cores. Every process
started here is tracked by pid and stopped by pid (its own session/process group), never by name.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOT_PATHS = ("/api/v1/reconciliation/status/", "/api/v1/positions/open/", "/api/v1/guards/status/")
SYNC_PATH = "/api/v1/reconciliation/syncs/"
HEALTHZ = "/healthz"


def say(message: str) -> None:
    """Progress line on stderr (stdout carries the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tool(name: str) -> str:
    """Path of a console script of this virtualenv (gunicorn, locust), else from PATH."""
    candidate = BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install requirements-dev.txt into the virtualenv")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# PostgreSQL and Redis
# ------------------------------------------------------------------------------------------------
def pg_admin_execute(server_url: str, *statements: str) -> None:
    """Run statements on the ``postgres`` maintenance database of ``server_url`` (autocommit)."""
    import psycopg

    with psycopg.connect(f"{server_url.rstrip('/')}/postgres", autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


def recreate_database(server_url: str, name: str) -> str:
    """Drop (forcing out sessions) and create database ``name``; return its URL."""
    pg_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return f"{server_url.rstrip('/')}/{name}"


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` if it exists."""
    pg_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_scalar(database_url: str, sql: str, timeout_s: float = 3.0):
    """First column of the first row of ``sql`` (a short-lived connection)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=max(1, int(timeout_s))) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


def pg_accepting(server_url: str) -> bool:
    """True when PostgreSQL accepts a connection and answers ``SELECT 1``."""
    try:
        return pg_scalar(f"{server_url.rstrip('/')}/postgres", "SELECT 1", timeout_s=1) == 1
    except Exception:
        return False


def redis_client(url: str, timeout_s: float = 1.0):
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def redis_alive(url: str) -> bool:
    """True when Redis answers PING within a second."""
    try:
        return bool(redis_client(url).ping())
    except Exception:
        return False


def redis_keys_memory(url: str, match: str) -> tuple[int, int]:
    """``(keys, bytes)`` of the keys matching ``match`` (SCAN + MEMORY USAGE; benchmark only)."""
    client = redis_client(url, timeout_s=5)
    keys = 0
    total = 0
    for key in client.scan_iter(match=match, count=1000):
        usage = client.memory_usage(key, samples=0)
        if usage is not None:
            keys += 1
            total += usage
    return keys, total


# ------------------------------------------------------------------------------------------------
# The service
# ------------------------------------------------------------------------------------------------
def app_env(
    *,
    database_url: str,
    redis_url: str,
    release: str,
    bind: str,
    prom_dir: Path,
    cache_ttl_s: int = 5,
    workers: int | None = None,
    threads: int | None = None,
    data_ttl_s: int | None = None,
    pool: str = "all",
) -> dict[str, str]:
    """Environment of the service under test: production settings (DEBUG off) on loopback.

    Overrides anything a local ``.env`` might set. DB_POOL=true (psycopg pool), plain HTTP on
    loopback (DJANGO_SECURE_SSL_REDIRECT=false), fresh random keys per run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TS_", "GUNICORN_", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tradingsite.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "DB_POOL": "true",
            "REDIS_URL": redis_url,
            "RELEASE": release,
            "API_CACHE_TTL_S": str(cache_ttl_s),
            "GUNICORN_BIND": bind,
            "PROMETHEUS_MULTIPROC_DIR": str(prom_dir),
            "PYTHONUNBUFFERED": "1",
            "GUNICORN_POOL": pool,
        }
    )
    if data_ttl_s is not None:
        env["API_DATA_TTL_S"] = str(data_ttl_s)
    if workers:
        env["GUNICORN_WORKERS"] = str(workers)
    if threads:
        env["GUNICORN_THREADS"] = str(threads)
    return env


def manage(env: dict[str, str], *args: str, log: Path | None = None, timeout_s: float = 900) -> str:
    """Run ``manage.py <args>`` with ``env``; return stdout; raise SystemExit with the log on failure."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ manage.py {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def resolve_view_names(env: dict[str, str], paths: list[str]) -> dict[str, str]:
    """Route names (the ``view`` label of /metrics) of ``paths``, resolved by Django itself."""
    code = (
        "import json, sys, django; django.setup(); from django.urls import resolve\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    m = resolve(p); out[p] = m.view_name or m.route\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *paths], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise SystemExit(f"could not resolve {paths}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def http(url: str, headers: dict[str, str] | None = None, timeout_s: float = 5.0) -> tuple[int, dict, bytes]:
    """GET ``url``: ``(status, headers, body)``; status 0 when the connection failed."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read() if exc.fp else b""
    except (OSError, urllib.error.URLError):
        return 0, {}, b""


class Served:
    """A server process in its own process group, started and stopped by pid, ready when it answers
    ``/healthz``. Subclasses give ``name``, ``base_url`` and :meth:`command`."""

    name = "server"

    def __init__(self, env: dict[str, str], log_path: Path, base_url: str, nice: int = 0) -> None:
        self.env = env
        self.log_path = log_path
        self.base_url = base_url
        self.nice = nice
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 60) -> None:
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        self.process = subprocess.Popen(
            [*prefix, *self.command()],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if http(self.base_url + HEALTHZ, timeout_s=1)[0] == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not answer /healthz within {timeout_s} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout_s: float = 20) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # our own process group only
            self.process.wait(timeout=5)


class Gunicorn(Served):
    """gunicorn with the production config (``gunicorn.conf.py``)."""

    name = "gunicorn"

    def __init__(self, env: dict[str, str], log_path: Path, nice: int = 0) -> None:
        self.bind = env["GUNICORN_BIND"]
        super().__init__(env, log_path, f"http://{self.bind}", nice)

    def command(self) -> list[str]:
        return [tool("gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "tradingsite.wsgi:application"]

    def worker_pids(self) -> set[int]:
        """Current worker processes (children of the master)."""
        if not self.pid:
            return set()
        return {pid for pid, info in proc_table().items() if info[0] == self.pid}


class Pools:
    """The service as deployed (deploy/nginx.conf): a read pool for GET/HEAD and a write pool for every
    other method, sharing one Prometheus directory so either pool's ``/metrics`` counts both. The
    write pool runs at ``nice`` 10, as a lower CPU share would be given to it in production, so reads
    are scheduled first when both want a core. ``write_workers`` = 0: one pool serves everything."""

    def __init__(self, env: dict[str, str], run_dir: Path, label: str, write_workers: int, write_threads: int) -> None:
        read_env = {**env, "GUNICORN_POOL": "read" if write_workers else "all"}
        self.read = Gunicorn(read_env, run_dir / f"gunicorn-{label}.log")
        self.write = None
        if write_workers:
            write_env = {
                **env,
                "GUNICORN_POOL": "write",
                "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
                "GUNICORN_WORKERS": str(write_workers),
                "GUNICORN_THREADS": str(write_threads),
            }
            self.write = Gunicorn(write_env, run_dir / f"gunicorn-{label}-write.log", nice=10)

    @property
    def base_url(self) -> str:
        return self.read.base_url

    @property
    def write_url(self) -> str:
        return (self.write or self.read).base_url

    def start(self) -> None:
        self.read.start()  # first: it empties the shared metrics directory
        if self.write:
            self.write.start()

    def stop(self) -> None:
        for pool in (self.write, self.read):
            if pool:
                pool.stop()

    def worker_pids(self) -> set[int]:
        return self.read.worker_pids() | (self.write.worker_pids() if self.write else set())


class Peer(Served):
    """The reference peer (``bench/peer.py``) under uvicorn."""

    name = "the reference peer"

    def __init__(self, env: dict[str, str], log_path: Path, workers: int, redis_url: str, key_prefix: str) -> None:
        self.port = free_port()
        self.workers = workers
        peer_env = {**env, "PEER_REDIS_URL": redis_url, "PEER_KEY_PREFIX": key_prefix}
        super().__init__(peer_env, log_path, f"http://127.0.0.1:{self.port}")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "bench.peer:app", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.workers), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip


def scrape(base_url: str) -> str:
    """Text of ``/metrics`` (raises SystemExit when the service does not answer)."""
    status, _headers, body = http(base_url + "/metrics", timeout_s=10)
    if status != 200:
        raise SystemExit(f"/metrics answered {status}")
    return body.decode()


# ------------------------------------------------------------------------------------------------
# Locust
# ------------------------------------------------------------------------------------------------
@dataclass
class LocustRun:
    """A headless Locust run; ``prefix`` names its CSV/HTML/metrics/request-log files."""

    process: subprocess.Popen
    prefix: Path
    log_path: Path

    @property
    def start_metrics(self) -> Path:
        return Path(f"{self.prefix}-metrics-start.prom")

    @property
    def end_metrics(self) -> Path:
        return Path(f"{self.prefix}-metrics-end.prom")

    def request_logs(self) -> list[Path]:
        return sorted(self.prefix.parent.glob(f"{self.prefix.name}-requests-*.csv"))

    def wait_for(self, path: Path, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists():
                return True
            if self.process.poll() is not None:
                return path.exists()
            time.sleep(0.1)
        return False

    def stop(self, timeout_s: float = 30) -> None:
        """Ask Locust to stop (SIGTERM: it stops users, writes CSV/HTML, exits)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_locust(
    *,
    host: str,
    prefix: Path,
    tokens_file: Path,
    dashboard_users: int,
    sync_workers: int,
    run_time_s: int,
    warmup_s: int,
    spawn_rate: int = 100,
    write_host: str | None = None,
    sync_interval_s: float | None = None,
    processes: int = 0,
    request_log: bool = False,
    extra_env: dict[str, str] | None = None,
) -> LocustRun:
    """Start ``locust --headless`` on ``locustfile.py`` with pre-minted tokens; returns at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
    env.update(
        {
            "TS_TOKENS_FILE": str(tokens_file),
            "TS_DASHBOARD_USERS": str(dashboard_users),
            "TS_SYNC_WORKERS": str(sync_workers),
            "TS_WARMUP_S": str(warmup_s),
            "TS_METRICS_SNAPSHOT": f"{prefix}-metrics-",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if write_host:
        env["TS_WRITE_HOST"] = write_host
    if sync_interval_s:
        env["TS_SYNC_INTERVAL_S"] = str(sync_interval_s)
    if request_log:
        env["TS_REQUEST_LOG"] = f"{prefix}-requests-"
    env.update(extra_env or {})
    users = dashboard_users + sync_workers
    command = [
        tool("locust"),
        "-f",
        str(ROOT / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{run_time_s}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
    ]
    if processes:
        command += ["--processes", str(processes)]
    log_path = Path(f"{prefix}-locust.log")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    return LocustRun(process=process, prefix=prefix, log_path=log_path)


# ------------------------------------------------------------------------------------------------
# wrk
# ------------------------------------------------------------------------------------------------
def ensure_wrk() -> str | None:
    """Path of ``wrk``; installs Debian's package when missing and we are root. None if unavailable."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("wrk missing: apt-get install -y wrk")
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    return shutil.which("wrk")


def run_wrk(
    wrk: str, url: str, *, tokens_txt: Path | None, seconds: int, connections: int, threads: int = 1
) -> subprocess.CompletedProcess:
    """One closed-loop wrk run with ``bench/wrk/rotate_tokens.lua``."""
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench" / "wrk" / "rotate_tokens.lua"),
        url,
    ]
    if tokens_txt is not None:
        command += ["--", str(tokens_txt)]
    return subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)


# ------------------------------------------------------------------------------------------------
# CPU accounting from /proc
# ------------------------------------------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_table() -> dict[int, tuple[int, str, int]]:
    """``{pid: (ppid, comm, utime+stime ticks)}`` for every process readable in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                raw = handle.read()
        except OSError:
            continue
        comm = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw[raw.rfind(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]))
    return table


def tree_ticks(root: int | None) -> int:
    """utime + stime ticks of ``root`` and its descendants (a server's master and workers), from /proc."""
    if not root:
        return 0
    table = proc_table()
    return sum(table[pid][2] for pid in _descendants(table, root))


def _descendants(table: dict[int, tuple[int, str, int]], root: int) -> set[int]:
    found = {root} if root in table else set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _comm, _ticks) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def _busy_ticks() -> tuple[int, int, int]:
    """``(busy, total, irq + softirq)`` ticks of all CPUs since boot (guest columns are inside user)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values), values[5] + values[6]


def _children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (user + system)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuTotals:
    """Cumulative CPU ticks per process group up to one moment (see :class:`CpuMonitor`)."""

    at: float
    groups: dict[str, float]
    busy: int
    irq: int
    children_s: float

    def usage_since(self, earlier: CpuTotals, cores: int) -> dict[str, float]:
        """Percent of ONE core per group between ``earlier`` and this moment (100 % = one core busy).

        ``wrk+tools``: our child processes that finished in between (wrk, redis-cli; from rusage);
        ``kernel irq``: interrupt/softirq time (loopback networking); ``other``: everything else that
        ran (other users of the machine); ``idle``: what was left.
        """
        elapsed = max(1e-6, self.at - earlier.at)
        usage: dict[str, float] = {}
        for name, ticks in self.groups.items():
            usage[name] = 100.0 * (ticks - earlier.groups.get(name, 0.0)) / CLOCK_TICKS / elapsed
        finished = 100.0 * (self.children_s - earlier.children_s) / elapsed
        if finished >= 0.5:
            usage["wrk+tools"] = finished
        usage["kernel irq"] = 100.0 * (self.irq - earlier.irq) / CLOCK_TICKS / elapsed
        busy = 100.0 * (self.busy - earlier.busy) / CLOCK_TICKS / elapsed
        usage["other"] = max(0.0, busy - sum(usage.values()))
        usage["idle"] = max(0.0, 100.0 * cores - busy)
        return usage


class CpuMonitor:
    """Polls /proc every ``interval_s`` and adds up CPU ticks per group: the roots' process trees
    (gunicorn master + workers, Locust), PostgreSQL and Redis server processes, this harness.

    Polling (rather than two snapshots) keeps the CPU of processes that exit in between — gunicorn
    recycles workers after ``max_requests`` — up to the last poll. Roots can be changed (``set_root``).
    """

    def __init__(self, roots: dict[str, int | None] | None = None, interval_s: float = 0.5) -> None:
        self.roots: dict[str, int | None] = dict(roots or {})
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._totals: dict[str, float] = {}
        self._last: dict[int, tuple[str, int]] = {}
        self._primed = False
        self._stop = threading.Event()
        self._poll()
        self._thread = threading.Thread(target=self._run, name="cpu-monitor", daemon=True)
        self._thread.start()

    def set_root(self, name: str, pid: int | None) -> None:
        with self._lock:
            self.roots[name] = pid
            self._totals.setdefault(name, 0.0)

    def _classify(self, table: dict[int, tuple[int, str, int]]) -> dict[int, str]:
        groups: dict[int, str] = {}
        for name, root in self.roots.items():
            if root:
                for pid in _descendants(table, root):
                    groups.setdefault(pid, name)
        groups.setdefault(os.getpid(), "harness")
        for pid, (_ppid, comm, _ticks) in table.items():
            if pid not in groups and comm in ("postgres", "redis-server"):
                groups[pid] = "postgres" if comm == "postgres" else "redis"
        return groups

    def _poll(self) -> None:
        table = proc_table()
        with self._lock:
            groups = self._classify(table)
            for name in [*self.roots, "harness", "postgres", "redis"]:
                self._totals.setdefault(name, 0.0)
            for pid, name in groups.items():
                ticks = table[pid][2]
                previous = self._last.get(pid)
                if previous is not None:
                    self._totals[name] += max(0, ticks - previous[1])
                elif self._primed:
                    self._totals[name] += ticks  # born since the last poll: all of its time is new
            self._last = {pid: (name, table[pid][2]) for pid, name in groups.items()}
            self._primed = True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._poll()
            except Exception:  # a vanished /proc entry mid-read: next poll
                continue

    def sample(self) -> CpuTotals:
        """Totals up to now (polls once more first)."""
        self._poll()
        busy, _total, irq = _busy_ticks()
        with self._lock:
            return CpuTotals(time.monotonic(), dict(self._totals), busy, irq, _children_cpu_s())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def describe_cpu(usage: dict[str, float], cores: int) -> str:
    """One line: 'gunicorn 120 %, postgres 30 %, … of 200 %'."""
    parts = [f"{name} {value:.0f}%" for name, value in usage.items() if value >= 0.5 or name == "idle"]
    return ", ".join(parts) + f" (of {100 * cores}% = {cores} cores)"


# ------------------------------------------------------------------------------------------------
# Machine
# ------------------------------------------------------------------------------------------------
def machine_info(database_url: str, redis_url: str) -> dict[str, str]:
    """Cores, CPU model, memory, PostgreSQL and Redis versions, Python."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    try:
        pg = str(pg_scalar(database_url, "SHOW server_version"))
    except Exception:
        pg = "?"
    try:
        rv = redis_client(redis_url).info("server").get("redis_version", "?")
    except Exception:
        rv = "?"
    return {
        "cores": str(os.cpu_count() or 1),
        "cpu": model,
        "memory": memory,
        "postgresql": pg,
        "redis": str(rv),
        "python": platform.python_version(),
    }
