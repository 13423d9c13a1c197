"""Pure functions of the benchmark and chaos runs: parse what the tools print, compute, judge, render.

No I/O and no Django here, so ``bench/tests/test_results.py`` checks every function on
captured sample output:

* :func:`parse_prometheus` / :func:`view_counters` / :func:`counters_delta` — the service's own
  ``/metrics`` counters (the source of hit rate, SQL and Redis commands per request);
* :func:`parse_locust_stats_csv` — Locust's ``*_stats.csv`` (the source of latency);
* :func:`parse_wrk` — the ``WRK_JSON`` line printed by ``bench/wrk/rotate_tokens.lua``;
* :func:`phase_stats` — per-phase figures from the locustfile's request log (chaos run);
* :func:`check` / :func:`render_table` — targets (issue 7 and 8) and the one printed table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# ------------------------------------------------------------------------------------------------
# Prometheus text format
# ------------------------------------------------------------------------------------------------
_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([-+0-9.eEinfNa]+)(\s+\d+)?$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = tuple[tuple[str, str], ...]


def parse_prometheus(text: str) -> dict[tuple[str, Labels], float]:
    """Parse Prometheus text exposition into ``{(metric name, sorted label pairs): value}``.

    Comments and ``# HELP``/``# TYPE`` lines are skipped; ``_created`` samples are kept like any other.
    """
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE_RE.match(line)
        if not match:
            continue
        name, _, label_text, value = match.group(1), match.group(2), match.group(3) or "", match.group(4)
        labels = tuple(
            sorted((k, v.replace('\\"', '"').replace("\\\\", "\\")) for k, v in _LABEL_RE.findall(label_text))
        )
        try:
            samples[(name, labels)] = float(value)
        except ValueError:
            continue
    return samples


@dataclass
class ViewCounters:
    """Counters of one view (route name) from ``/metrics``; all are totals since the server started."""

    requests: float = 0.0
    ok: float = 0.0  # status 200/201
    non_ok: float = 0.0  # any other status
    server_errors: float = 0.0  # 5xx
    sql: float = 0.0
    redis: float = 0.0
    page_hit: float = 0.0
    page_miss: float = 0.0
    data_hit: float = 0.0
    data_miss: float = 0.0
    # tradingsite_read_requests_total{served_from}: how each 200 of a page-cached view was answered
    served_page: float = 0.0
    served_data: float = 0.0
    served_compute: float = 0.0
    duration_sum: float = 0.0
    by_status: dict[str, float] = field(default_factory=dict)

    def minus(self, other: ViewCounters) -> ViewCounters:
        statuses = set(self.by_status) | set(other.by_status)
        return ViewCounters(
            requests=self.requests - other.requests,
            ok=self.ok - other.ok,
            non_ok=self.non_ok - other.non_ok,
            server_errors=self.server_errors - other.server_errors,
            sql=self.sql - other.sql,
            redis=self.redis - other.redis,
            page_hit=self.page_hit - other.page_hit,
            page_miss=self.page_miss - other.page_miss,
            data_hit=self.data_hit - other.data_hit,
            data_miss=self.data_miss - other.data_miss,
            served_page=self.served_page - other.served_page,
            served_data=self.served_data - other.served_data,
            served_compute=self.served_compute - other.served_compute,
            duration_sum=self.duration_sum - other.duration_sum,
            by_status={s: self.by_status.get(s, 0.0) - other.by_status.get(s, 0.0) for s in statuses},
        )

    def plus(self, other: ViewCounters) -> ViewCounters:
        negated = ViewCounters().minus(other)
        return self.minus(negated)

    # --- derived figures -------------------------------------------------------------------
    def sql_per_request(self) -> float | None:
        return self.sql / self.requests if self.requests else None

    def redis_per_request(self) -> float | None:
        return self.redis / self.requests if self.requests else None

    def page_hit_rate(self) -> float | None:
        lookups = self.page_hit + self.page_miss
        return self.page_hit / lookups if lookups else None

    def data_hit_rate(self) -> float | None:
        lookups = self.data_hit + self.data_miss
        return self.data_hit / lookups if lookups else None

    def hit_rate(self) -> float | None:
        """Share of read requests answered from a cache layer: (served from page + from data) / all reads.

        From ``tradingsite_read_requests_total{served_from}`` (a request is "data" only when its page
        missed and every selector lookup hit, "compute" when anything was computed). Services that
        predate that counter fall back to :meth:`lookup_hit_rate`.
        """
        served = self.served_page + self.served_data + self.served_compute
        if served:
            return (self.served_page + self.served_data) / served
        return self.lookup_hit_rate()

    def lookup_hit_rate(self) -> float | None:
        """Share of cache lookups, both layers together, that hit: (page + data hits) / all lookups.

        A request looks up the page cache once and, on a page miss, one or more selector entries.
        """
        lookups = self.page_hit + self.page_miss + self.data_hit + self.data_miss
        if not lookups:
            return None
        return (self.page_hit + self.data_hit) / lookups


def view_counters(samples: Mapping[tuple[str, Labels], float]) -> dict[str, ViewCounters]:
    """Group the tradingsite counters of :func:`parse_prometheus` output by ``view`` label."""
    views: dict[str, ViewCounters] = {}

    def get(view: str) -> ViewCounters:
        return views.setdefault(view, ViewCounters())

    for (name, labels), value in samples.items():
        label = dict(labels)
        view = label.get("view")
        if view is None:
            continue
        if name == "tradingsite_requests_total":
            counters = get(view)
            status = label.get("status", "")
            counters.requests += value
            counters.by_status[status] = counters.by_status.get(status, 0.0) + value
            if status in ("200", "201"):
                counters.ok += value
            else:
                counters.non_ok += value
            if status.startswith("5"):
                counters.server_errors += value
        elif name == "tradingsite_sql_queries_total":
            get(view).sql += value
        elif name == "tradingsite_redis_commands_total":
            get(view).redis += value
        elif name == "tradingsite_cache_events_total":
            layer, result = label.get("layer"), label.get("result")
            attr = f"{layer}_{result}"
            if attr in ("page_hit", "page_miss", "data_hit", "data_miss"):
                counters = get(view)
                setattr(counters, attr, getattr(counters, attr) + value)
        elif name == "tradingsite_read_requests_total":
            attr = f"served_{label.get('served_from')}"
            if attr in ("served_page", "served_data", "served_compute"):
                counters = get(view)
                setattr(counters, attr, getattr(counters, attr) + value)
        elif name == "tradingsite_request_duration_seconds_sum":
            get(view).duration_sum += value
    return views


def counters_delta(after: Mapping[str, ViewCounters], before: Mapping[str, ViewCounters]) -> dict[str, ViewCounters]:
    """``after − before`` per view (views absent before count from zero)."""
    return {view: counters.minus(before.get(view, ViewCounters())) for view, counters in after.items()}


def total_counters(views: Mapping[str, ViewCounters], names: Iterable[str]) -> ViewCounters:
    """Sum of the counters of ``names`` (missing views count as zero)."""
    total = ViewCounters()
    for name in names:
        if name in views:
            total = total.plus(views[name])
    return total


def match_view(label_candidates: Iterable[str], path_keyword: str) -> str | None:
    """Pick the ``/metrics`` view label of an endpoint: exact route name, else one containing the keyword."""
    candidates = list(label_candidates)
    for candidate in candidates:
        if candidate == path_keyword:
            return candidate
    matches = [c for c in candidates if path_keyword in c]
    return min(matches, key=len) if matches else None


# ------------------------------------------------------------------------------------------------
# Locust and wrk output
# ------------------------------------------------------------------------------------------------
def _number(value: str) -> float | None:
    value = (value or "").strip()
    if value in ("", "N/A"):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def parse_locust_stats_csv(text: str) -> dict[str, dict[str, Any]]:
    """Rows of Locust's ``<prefix>_stats.csv`` keyed by name (``Aggregated`` included).

    Each row: ``type``, ``requests``, ``failures``, ``rps``, ``p50``, ``p95``, ``p99``, ``max``,
    ``avg`` (milliseconds; None when Locust printed N/A).
    """
    rows: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row.get("Name", "")
        rows[name] = {
            "type": row.get("Type", ""),
            "requests": _number(row.get("Request Count", "")) or 0.0,
            "failures": _number(row.get("Failure Count", "")) or 0.0,
            "rps": _number(row.get("Requests/s", "")),
            "p50": _number(row.get("50%", "")),
            "p95": _number(row.get("95%", "")),
            "p99": _number(row.get("99%", "")),
            "max": _number(row.get("Max Response Time", "")),
            "avg": _number(row.get("Average Response Time", "")),
        }
    return rows


def parse_wrk(text: str) -> dict[str, float]:
    """Figures of one wrk run from the ``WRK_JSON`` line of rotate_tokens.lua (latency in ms).

    Returns ``requests``, ``duration_s``, ``rps``, ``errors`` (socket errors + non-2xx/3xx),
    ``status_errors``, ``p50``, ``p90``, ``p95``, ``p99``, ``max``, ``mean``. Raises ValueError when
    the line is missing (wrk failed or ran without the script).
    """
    for line in text.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line[len("WRK_JSON ") :])
            duration_s = data["duration_us"] / 1e6
            errors = data["errors"]
            latency = data["latency_us"]
            return {
                "requests": float(data["requests"]),
                "duration_s": duration_s,
                "rps": data["requests"] / duration_s if duration_s else 0.0,
                "errors": float(sum(errors.values())),
                "status_errors": float(errors["status"]),
                "p50": latency["p50"] / 1000.0,
                "p90": latency["p90"] / 1000.0,
                "p95": latency["p95"] / 1000.0,
                "p99": latency["p99"] / 1000.0,
                "max": latency["max"] / 1000.0,
                "mean": latency["mean"] / 1000.0,
            }
    raise ValueError("no WRK_JSON line in wrk output (was it run with -s bench/wrk/rotate_tokens.lua?)")


# ------------------------------------------------------------------------------------------------
# Per-phase statistics from the locustfile's request log (TS_REQUEST_LOG)
# ------------------------------------------------------------------------------------------------
@dataclass
class LoggedRequest:
    """One line of the request log: started/ended (epoch s), type, name, response time, status, error."""

    started: float
    ended: float
    request_type: str
    name: str
    response_ms: float
    status: int
    error: str


def parse_request_log(lines: Iterable[str]) -> list[LoggedRequest]:
    """Parse ``end_epoch,type,name,response_ms,status,error`` lines; malformed lines are skipped."""
    out = []
    for line in lines:
        parts = line.rstrip("\n").split(",")
        if len(parts) < 6:
            continue
        try:
            ended, response_ms, status = float(parts[0]), float(parts[-3]), int(parts[-2])
        except ValueError:
            continue
        name = ",".join(parts[2:-3])
        out.append(LoggedRequest(ended - response_ms / 1000.0, ended, parts[1], name, response_ms, status, parts[-1]))
    return out


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0–100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def phase_stats(requests: Iterable[LoggedRequest], start: float, end: float) -> dict[str, float | None]:
    """Figures of the HTTP requests that *ended* in ``[start, end)`` (VISIBLE events excluded).

    Binning by the end attributes an answer to the phase in which it was observed: a request queued
    before a PostgreSQL restart that fails because of it counts in the restart phase.

    ``requests``, ``ok`` (2xx), ``server_errors`` (5xx), ``client_errors`` (4xx),
    ``transport_errors`` (no HTTP status: refused, reset, timeout), ``p50``/``p95``/``p99``/``max`` (ms).
    """
    selected = [r for r in requests if r.request_type != "VISIBLE" and start <= r.ended < end]
    times = [r.response_ms for r in selected]
    return {
        "requests": float(len(selected)),
        "ok": float(sum(1 for r in selected if 200 <= r.status < 300)),
        "server_errors": float(sum(1 for r in selected if r.status >= 500)),
        "client_errors": float(sum(1 for r in selected if 400 <= r.status < 500)),
        "transport_errors": float(sum(1 for r in selected if r.status == 0)),
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "max": max(times) if times else None,
    }


def first_success_after(
    requests: Iterable[LoggedRequest], moment: float, name_contains: str, status: int = 201
) -> float | None:
    """Epoch second at which the first request named like ``name_contains`` started after ``moment``
    and answered ``status``; None if none did."""
    starts = [r.started for r in requests if r.started >= moment and name_contains in r.name and r.status == status]
    return min(starts) if starts else None


# ------------------------------------------------------------------------------------------------
# Targets and the printed table
# ------------------------------------------------------------------------------------------------
@dataclass
class Check:
    """One target: PASS/MISS with the measured value (``n/a`` when it could not be measured)."""

    target: str
    passed: bool | None
    measured: str

    @property
    def verdict(self) -> str:
        return "n/a " if self.passed is None else ("PASS" if self.passed else "MISS")


def check(target: str, value: float | None, limit: float, *, op: str = "<=", fmt: str = "{:.3g}") -> Check:
    """Compare ``value`` with ``limit`` (``op`` is ``<=`` or ``>=``); None → not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Check(target, None, "not measured")
    passed = value <= limit if op == "<=" else value >= limit
    return Check(target, passed, fmt.format(value))


def fmt_num(value: float | None, digits: int = 1, *, percent: bool = False) -> str:
    """Table cell: ``-`` for None, a percentage or a number with ``digits`` decimals."""
    if value is None:
        return "-"
    if percent:
        return f"{value * 100:.{digits}f}%"
    return f"{value:.{digits}f}"


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others, one space-padded line per row."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = []
    for index, row in enumerate([headers, *rows]):
        cells = [str(cell).ljust(widths[0]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def as_jsonable(value):
    """Dataclasses (ViewCounters, Check) → dicts, recursively, for the JSON results file."""
    if hasattr(value, "__dataclass_fields__"):
        data = asdict(value)
        if isinstance(value, Check):
            data["verdict"] = value.verdict.strip()
        return data
    if isinstance(value, dict):
        return {str(k): as_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_jsonable(v) for v in value]
    return value
