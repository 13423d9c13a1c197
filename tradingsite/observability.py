"""Request context, JSON-lines logging and per-request metrics.

Every log line is one JSON object carrying the request id: the incoming ``X-Request-ID`` when it is
well formed, else a generated one, returned in the ``X-Request-ID`` response header. Each request
also gets one access line with user id, method, path, status, duration and cache outcome, and feeds
the Prometheus counters in :mod:`tradingsite.metrics` (latency, SQL statements, cache events,
Redis commands).
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import pythonjsonlogger.json
from django.db import connection
from django.http import HttpRequest, HttpResponse

from tradingsite.metrics import (
    CACHE_EVENTS,
    READ_REQUESTS,
    REDIS_COMMANDS,
    REQUEST_LATENCY,
    REQUESTS,
    SQL_QUERIES,
)
from tradingsite.middleware import SyncAndAsyncMiddleware

access_logger = logging.getLogger("tradingsite.request")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class RequestState:
    """Mutable per-request counters, reachable from anywhere through :func:`current`."""

    request_id: str = "-"
    user_id: str | None = None
    sql_queries: int = 0
    redis_commands: int = 0
    cache: list[str] = field(default_factory=list)  # e.g. ["page:hit"], ["data:miss"]
    computed: bool = False  # a cached read had to be computed from the database


_state: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar("tradingsite_request", default=None)


def current() -> RequestState | None:
    """Return the state of the request being served by this thread, or None outside a request."""
    return _state.get()


def count_redis_command() -> None:
    """Count one Redis command for the current request (called by the cache client)."""
    state = _state.get()
    if state is not None:
        state.redis_commands += 1


def record_cache(layer: str, view: str, hit: bool) -> None:
    """Record a cache lookup of ``layer`` ("page" or "data") for metrics and the access log."""
    result = "hit" if hit else "miss"
    CACHE_EVENTS.labels(layer=layer, view=view, result=result).inc()
    state = _state.get()
    if state is not None:
        state.cache.append(f"{layer}:{result}")


def record_compute() -> None:
    """Mark the current request as having computed a cached read (a data-layer miss, or caching off)."""
    state = _state.get()
    if state is not None:
        state.computed = True


def read_served_from(*, response: HttpResponse, state: RequestState) -> str:
    """Classify a page-cached read: ``page`` (served by cache_page, which sets ``Age`` on its hits,
    Django 5.2), ``compute`` (something was computed from the database), else ``data`` (page miss
    answered wholly from data-layer hits)."""
    if "Age" in response:
        return "page"
    return "compute" if state.computed else "data"


def _route_name(request: HttpRequest) -> str:
    fast = request.__dict__.get("page_hit_view")  # answered by tradingsite.page_hit before URL resolution
    if fast is not None:
        return fast
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unresolved"
    return match.view_name or match.route or "unnamed"


def _user_id(request: HttpRequest) -> str | None:
    # Read what authentication already set; never trigger a session lookup here.
    user = request.__dict__.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


class RequestContextMiddleware(SyncAndAsyncMiddleware):
    """Outermost middleware: request id, SQL counting, access log line and request metrics.

    Sync and async capable: under ASGI (the event stream's uvicorn) an async view runs without a
    thread per request. There SQL runs in pool threads, so ``sql_queries`` counts nothing.
    """

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        state, token = self._start(request)
        started = time.perf_counter()

        def count_sql(execute, sql, params, many, context):
            state.sql_queries += 1
            return execute(sql, params, many, context)

        try:
            with connection.execute_wrapper(count_sql):
                response = self.get_response(request)
            return self._finish(request, response, state, started)
        finally:
            _state.reset(token)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        state, token = self._start(request)
        started = time.perf_counter()
        try:
            response = await self.get_response(request)
            return self._finish(request, response, state, started)
        finally:
            _state.reset(token)

    @staticmethod
    def _start(request: HttpRequest) -> tuple[RequestState, contextvars.Token]:
        incoming = request.headers.get("X-Request-ID", "")
        state = RequestState(request_id=incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex)
        token = _state.set(state)
        request.request_id = state.request_id  # type: ignore[attr-defined]  # read by views and tests
        return state, token

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponse, state: RequestState, started: float) -> HttpResponse:
        duration = time.perf_counter() - started
        view = _route_name(request)
        state.user_id = _user_id(request)
        served_from = None
        if view in _PAGE_CACHED_VIEWS:
            if "Age" in response:
                # cache_page sets Age only on responses it served from the cache (Django 5.2).
                record_cache("page", view, hit=True)
            if response.status_code == 200:
                served_from = read_served_from(response=response, state=state)
                READ_REQUESTS.labels(view=view, served_from=served_from).inc()
        response["X-Request-ID"] = state.request_id
        REQUEST_LATENCY.labels(view=view, method=request.method).observe(duration)
        REQUESTS.labels(view=view, method=request.method, status=str(response.status_code)).inc()
        if state.sql_queries:
            SQL_QUERIES.labels(view=view).inc(state.sql_queries)
        if state.redis_commands:
            REDIS_COMMANDS.labels(view=view).inc(state.redis_commands)
        access_logger.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "event": "request",
                "method": request.method,
                "path": request.path,
                "view": view,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 3),
                "sql_queries": state.sql_queries,
                "redis_commands": state.redis_commands,
                "cache": ",".join(state.cache) or "-",
                "served_from": served_from or "-",
            },
        )
        return response


# Route names of the views wrapped in cache_page; registered by tradingsite.caching.page_cached.
_PAGE_CACHED_VIEWS: set[str] = set()


def register_page_cached_view(view_name: str) -> None:
    """Mark a route name as served through cache_page so its hits are counted."""
    _PAGE_CACHED_VIEWS.add(view_name)


def page_cached_views() -> frozenset[str]:
    """The route names registered with :func:`register_page_cached_view`."""
    return frozenset(_PAGE_CACHED_VIEWS)


class RequestContextFilter(logging.Filter):
    """Attach the current request id and user id to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = _state.get()
        record.request_id = state.request_id if state else getattr(record, "request_id", None)
        record.user_id = state.user_id if state else getattr(record, "user_id", None)
        return True


class RateLimitFilter(logging.Filter):
    """Let one record per (logger, message template) through every ``interval_s`` seconds.

    Used for the Redis-ignored-exception logger so an outage logs once per interval, not once per
    request. The number of suppressed records is added to the next one let through.
    """

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        self.interval_s = float(interval_s)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            record.suppressed = self._suppressed.pop(key, 0)
        return True


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line, through python-json-logger.

    Fields: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``message``, ``request_id`` and ``user_id``
    (null outside a request; set by :class:`RequestContextFilter`), every ``extra=`` key, and ``exc``
    (the formatted traceback) when the record carries an exception.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s %(request_id)s %(user_id)s",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exc"},
            timestamp="ts",
        )
