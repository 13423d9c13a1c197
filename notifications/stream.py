"""``GET /api/v1/events/stream/``: the user's events as Server-Sent Events, resumable by log row id.

Each event is one reconciliation log row (syncs, matches, divergences and their resolution, closes,
guard level changes), sent as it commits::

    id: <log row id>
    data: {"id": …, "type": "divergence", "level": "warning", "created_at": …, "data": {…}}

followed by a blank line; ``: heartbeat`` comment lines every ``SSE_HEARTBEAT_S`` of silence (the
HTML standard's advice for proxies that drop idle connections is "every 15 seconds or so", its default)
keep proxies from closing an idle stream; under ASGI they fall on a tick the worker's streams share
(:func:`next_heartbeat`). A client that reconnects with ``Last-Event-ID: <id>`` (browsers' EventSource
does this by itself) first receives every row after that id, so a reconnect misses nothing; the
first connection may pass ``?last_event_id=`` instead, else it starts after the newest row.

Authentication: ``Authorization: Bearer <JWT>`` (checked against the database; the stream ends when
the token expires) or the session cookie (the dashboard's EventSource); anything else, or a
deactivated user, is a JSON 401. Only the requesting user's rows are ever read.

Served by an async view: under an ASGI server (uvicorn, ``deploy/``) an open stream is a coroutine
registered with its process's bus hub (``notifications.bus``: one Redis pub/sub connection and one
resync timer per process, whatever the number of streams), not a thread. It reads the database only
when the hub wakes it: a writer's publish for its user, or the hub's one resync query per
``SSE_RESYNC_S`` found a row newer than the last id it sent (a lost message). Heartbeats cost no
query, so an idle stream costs a timer and no query of its own. Without Redis, or while the hub's
connection is down, it re-reads the database every ``SSE_POLL_S``. Under WSGI (``runserver``, the
test live server) the same view streams from a thread, polling. A stream ends after ``SSE_MAX_S``;
the client reconnects and resumes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Iterator

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from notifications.bus import Subscription, in_pool
from notifications.selectors import events_after, latest_event_id
from notifications.services import event_payload
from tradingsite.authentication import DatabaseJWTAuthentication

BATCH = 200


def format_event(row) -> str:
    """One SSE message for a log row: ``id:`` the row id, ``data:`` its JSON payload, a blank line."""
    return f"id: {row.pk}\ndata: {json.dumps(event_payload(row), separators=(',', ':'))}\n\n"


def _authenticate(request: HttpRequest) -> tuple[int, float] | None:
    """(user id, seconds the stream may last) for an active user, else None. Runs in a pool thread.

    ``Authorization: Bearer <access token>`` is checked against the database (a deactivated or
    deleted user is refused) and the stream ends when the token expires; otherwise the session
    (the dashboard's EventSource) and ``SSE_MAX_S``.
    """
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        auth = DatabaseJWTAuthentication()
        try:
            token = auth.get_validated_token(header.split(" ", 1)[1].encode())
            user = auth.get_user(token)
        except (AuthenticationFailed, InvalidToken, TokenError, TypeError, ValueError):
            return None
        request.user = user  # what the access log reads
        return int(user.pk), min(settings.SSE_MAX_S, max(float(token["exp"]) - time.time(), 0.0))
    user = request.user
    return (int(user.pk), settings.SSE_MAX_S) if user.is_authenticated and user.is_active else None


def _start_id(request: HttpRequest) -> int | None:
    """The id to resume after: ``Last-Event-ID`` header, else ``?last_event_id=``; None when absent or invalid."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    try:
        value = int(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < 2**63 else None


def _rows(user_id: int, after_id: int) -> list:
    return events_after(user_id=user_id, after_id=after_id, limit=BATCH)


_in_pool = in_pool  # every read of a stream goes through here (tests count them)


HEARTBEAT_TICKS = 15  # ticks per SSE_HEARTBEAT_S: heartbeats fall on ticks of 1 s at the default 15 s


def next_heartbeat(now: float) -> float:
    """When a stream silent since ``now`` (``time.monotonic()`` seconds) sends its heartbeat: the first
    tick at least ``SSE_HEARTBEAT_S`` later, ticks being multiples of ``SSE_HEARTBEAT_S /
    HEARTBEAT_TICKS`` (1 s at the default 15 s). So the idle streams of one worker wake together, once a
    tick, instead of each on its own timer: a thousand streams cost the worker about one wake-up a second
    instead of about seventy. The heartbeat comes at most one tick (1/15 of the interval) late."""
    interval = settings.SSE_HEARTBEAT_S
    tick = interval / HEARTBEAT_TICKS
    return math.ceil((now + interval) / tick) * tick


async def _aevents(user_id: int, after_id: int, lifetime_s: float) -> AsyncIterator[str]:
    """The async stream: drain rows after ``after_id``, then wait on the bus hub; read again only when
    the hub wakes it (a publish, its shared resync, a failure or a reconnect), and send heartbeats
    without a query.

    Exact: the hub's subscription is confirmed before the first read, and a writer publishes after
    its commit, so a row committed after a read always wakes the stream once more. Without Redis (or
    while the hub is down) ``wait`` only times out and the stream reads every ``SSE_POLL_S``.
    """
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    now = time.monotonic()
    deadline = now + lifetime_s
    async with Subscription(user_id) as subscription:
        subscription.last_id = after_id
        read_due = now  # drain at once
        beat_due = next_heartbeat(now)
        while now < deadline:
            if now >= read_due:
                rows = await _in_pool(_rows, user_id=user_id, after_id=after_id)
                for row in rows:
                    yield format_event(row)
                    after_id = subscription.last_id = row.pk
                now = time.monotonic()
                if rows:
                    beat_due = next_heartbeat(now)  # a heartbeat only after silence
                    if len(rows) == BATCH:
                        continue
                read_due = deadline if subscription.live else now + settings.SSE_POLL_S
            # the timeout from the clock now, not from before the last send: the streams due at one tick
            # then fire at that tick together
            woke = await subscription.wait(max(min(read_due, beat_due, deadline) - time.monotonic(), 0.0))
            now = time.monotonic()
            if woke:
                read_due = now
            elif not subscription.live:
                read_due = min(read_due, now + settings.SSE_POLL_S)  # the hub is down: poll from now on
            if now >= beat_due and now < deadline:
                beat_due = next_heartbeat(now)
                yield ": heartbeat\n\n"


def _events(user_id: int, after_id: int, lifetime_s: float) -> Iterator[str]:
    """The same stream for a WSGI server: a thread polls the database every ``SSE_POLL_S``."""
    yield f"retry: {settings.SSE_RETRY_MS}\n\n"
    deadline = time.monotonic() + lifetime_s
    idle = 0.0
    while time.monotonic() < deadline:
        rows = _rows(user_id, after_id)
        for row in rows:
            yield format_event(row)
            after_id = row.pk
        if len(rows) == BATCH:
            continue
        idle = 0.0 if rows else idle + settings.SSE_POLL_S
        if idle >= settings.SSE_HEARTBEAT_S:
            idle = 0.0
            yield ": heartbeat\n\n"
        time.sleep(settings.SSE_POLL_S)


async def event_stream(request: HttpRequest):
    """The SSE endpoint (see the module docstring): 200 ``text/event-stream``, or a JSON 401/405."""
    if request.method != "GET":
        return JsonResponse({"detail": f'Method "{request.method}" not allowed.'}, status=405)
    authenticated = await _in_pool(_authenticate, request=request)
    if authenticated is None:
        response = JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    user_id, lifetime_s = authenticated
    after_id = _start_id(request)
    if after_id is None:
        after_id = await _in_pool(latest_event_id, user_id=user_id)
    stream = _aevents if isinstance(request, ASGIRequest) else _events
    events = stream(user_id, after_id, lifetime_s)
    streaming = StreamingHttpResponse(events, content_type="text/event-stream")
    streaming["Cache-Control"] = "no-cache"
    streaming["X-Accel-Buffering"] = "no"  # nginx: pass each event through at once
    return streaming
