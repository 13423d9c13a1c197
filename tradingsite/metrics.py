"""Prometheus metrics (prometheus_client), exposed at ``/metrics``.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn.conf.py) so every worker writes its
samples to a shared directory and ``/metrics`` aggregates them, whichever worker answers.
Counters are the benchmark's source for cache hit rate and SQL queries per request.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

REQUEST_LATENCY = Histogram(
    "tradingsite_request_duration_seconds",
    "Request latency in seconds, per view (route name) and method.",
    ["view", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REQUESTS = Counter(
    "tradingsite_requests_total", "Requests answered, per view, method and status code.", ["view", "method", "status"]
)
SQL_QUERIES = Counter(
    "tradingsite_sql_queries_total", "SQL statements executed while serving requests, per view.", ["view"]
)
CACHE_EVENTS = Counter(
    "tradingsite_cache_events_total",
    "Cache lookups per layer (page = cache_page, data = selector cache) and result (hit/miss).",
    ["layer", "view", "result"],
)
READ_REQUESTS = Counter(
    "tradingsite_read_requests_total",
    "200 answers of the page-cached hot reads, per view and where they came from: page (cache_page hit), "
    "data (page miss, every data lookup hit, nothing computed) or compute (something computed from the "
    "database). Cache hit rate = (page + data) / all.",
    ["view", "served_from"],
)
REDIS_COMMANDS = Counter(
    "tradingsite_redis_commands_total",
    "Redis commands sent by the cache client while serving requests, per view.",
    ["view"],
)
DIVERGENCES = Counter("tradingsite_divergences_total", "Divergences opened by reconciliation, per reason.", ["reason"])
GUARD_TRANSITIONS = Counter(
    "tradingsite_guard_transitions_total",
    "Guard alert transitions (opened, escalated, resolved), per guard kind and level.",
    ["kind", "transition", "level"],
)
SYNCS = Counter("tradingsite_syncs_total", "Syncs processed, per outcome (created, replayed, rejected).", ["outcome"])


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve all metrics in the Prometheus text format (multi-process aware)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = DEFAULT_REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
