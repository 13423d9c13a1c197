"""Liveness and readiness probes.

``/healthz`` does no I/O: it answers as long as the process serves requests.
``/readyz`` checks the database and the cache and reports each as ``ok``, ``degraded`` or ``down``.
The cache check talks to Redis directly with the configured 0.1 s socket timeouts (bypassing the
circuit breaker, so it tells the truth), which keeps the answer under 1 s even when Redis accepts
connections and never replies. The service can serve from the database alone, so readiness is
503 only when the database is down.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest, JsonResponse

SLOW_CHECK_MS = 250.0


def healthz(request: HttpRequest) -> JsonResponse:
    """Process alive: no database, no cache."""
    return JsonResponse({"status": "ok"})


def _timed(check) -> dict[str, object]:
    started = time.perf_counter()
    try:
        detail = check() or {}
    except Exception as exc:  # the probe reports failures; it never raises
        return {"status": "down", "error": type(exc).__name__, "latency_ms": _ms_since(started)}
    latency = _ms_since(started)
    return {"status": "degraded" if latency > SLOW_CHECK_MS else "ok", "latency_ms": latency, **detail}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _check_database() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


def _check_cache() -> dict[str, object]:
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.startswith("django_redis"):
        from django_redis import get_redis_connection

        from tradingsite.cache_backend import breaker

        get_redis_connection("default").ping()
        return {"backend": "redis", "circuit": breaker.state}
    cache = caches["default"]
    cache.set("readyz", 1, timeout=5)
    if cache.get("readyz") != 1:
        raise RuntimeError("cache round trip failed")
    return {"backend": backend.rsplit(".", 1)[-1]}


def readyz(request: HttpRequest) -> JsonResponse:
    """Database and cache state; 200 while the database answers, 503 otherwise."""
    checks = {"database": _timed(_check_database), "cache": _timed(_check_cache)}
    if checks["cache"]["status"] == "ok" and checks["cache"].get("circuit") not in (None, "closed"):
        checks["cache"]["status"] = "degraded"
    states = {check["status"] for check in checks.values()}
    overall = "down" if checks["database"]["status"] == "down" else ("ok" if states == {"ok"} else "degraded")
    return JsonResponse({"status": overall, "checks": checks}, status=503 if overall == "down" else 200)
