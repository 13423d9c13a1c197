"""Throttles, the password-form limit and the per-user in-flight sync bound, with their Redis failure policy.

Counting is **atomic**: each limit is a fixed-window counter, one cache key per (scope, client, window),
created with ``add`` and counted with ``incr`` (one Redis ``INCRBY`` inside django-redis's Lua script;
``LocMemCache.incr`` holds the cache's lock). Of any number of concurrent requests in one window,
exactly ``limit`` see a count ≤ limit. DRF's ``SimpleRateThrottle`` reads the history, decides, then
writes it back, so concurrent requests all read the same history and all pass; ours only reuse its
rate parsing (``"10/min"`` → 10 per 60 s) and ``Retry-After`` plumbing.

Failure policy: the counters live in the ``throttle`` cache alias while Redis answers and in a
**per-process in-memory cache** when it does not (circuit breaker open or the call fails):

* login stays available during a Redis outage and is still rate-limited, each gunicorn worker
  counting on its own (limits become at most ``workers ×`` looser);
* nothing fails closed, so a cache outage never locks traders or the sync worker out.

Every password form shares the same two limits (:func:`password_attempt_wait`): ``auth/token/``,
the browsable API's ``/api-auth/login/`` and ``/admin/login/``. Every attempt counts, right or wrong,
so a correct password past the limit is refused too, superusers included.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger("tradingsite.throttling")

_LOCAL: LocMemCache | None = None


def _local_cache() -> LocMemCache:
    """The per-process fallback cache (created on first use)."""
    global _LOCAL
    if _LOCAL is None:
        _LOCAL = LocMemCache("tradingsite-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 10000}})
    return _LOCAL


def _redis_is_skipped() -> bool:
    try:
        from tradingsite.cache_backend import breaker
    except Exception:  # django-redis not configured (embedded default)
        return False
    return breaker.state == "open"


def _shared_cache() -> BaseCache:
    return _local_cache() if _redis_is_skipped() else caches["throttle"]


def _add_and_incr(cache: BaseCache, key: str, delta: int, timeout: int) -> int | None:
    """``cache.add(key, 0)`` then ``cache.incr(key, delta)``; None when the cache did not answer."""
    for _attempt in range(2):  # the key may expire between add and incr: create it again once
        cache.add(key, 0, timeout=timeout)
        try:
            value = cache.incr(key, delta)
        except ValueError:
            continue
        return value  # django-redis with IGNORE_EXCEPTIONS answers None when Redis failed
    return None


def counter_add(key: str, delta: int, timeout: int) -> int:
    """Add ``delta`` to the counter ``key`` (created at 0 with ``timeout`` seconds) and return the new value.

    Shared cache first; the per-process cache when Redis is skipped or does not answer.
    """
    value = _add_and_incr(_shared_cache(), key, delta, timeout)
    if value is None:
        value = _add_and_incr(_local_cache(), key, delta, timeout)
    return value if value is not None else 0


def window_hit(key: str, limit: int, duration: int) -> tuple[bool, int]:
    """Count one request in the current fixed window of ``duration`` seconds.

    Returns ``(allowed, retry_after_s)``: allowed while the window's count is ≤ ``limit``;
    ``retry_after_s`` is the time left in the window (≥ 1).
    """
    now = int(time.time())
    start = now - now % duration
    count = counter_add(f"{key}:w{start}", 1, duration + 1)
    return count <= limit, max(start + duration - now, 1)


class AtomicWindowThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle`` rates (``scope`` in ``DEFAULT_THROTTLE_RATES``) counted by :func:`window_hit`."""

    _wait: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        allowed, self._wait = window_hit(key, self.num_requests, self.duration)
        return allowed

    def wait(self) -> float | None:
        return self._wait


def username_digest(username: str) -> str:
    """The throttle identity of a username: case- and space-insensitive, hashed.

    Hashed because usernames may hold characters that are not valid in cache keys (and should not sit in Redis).
    """
    return hashlib.blake2b(username.strip().lower().encode(), digest_size=16).hexdigest()


class AuthIpThrottle(AtomicWindowThrottle):
    """Password attempts per client IP (``THROTTLE_AUTH_IP``, default 30/min), on every password form."""

    scope = "auth_ip"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthUsernameThrottle(AtomicWindowThrottle):
    """Password attempts per submitted username (``THROTTLE_AUTH_USERNAME``, default 10/min), on every
    password form: slows password guessing on one account from many IPs."""

    scope = "auth_username"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        data = getattr(request, "data", None)
        if data is None:
            data = getattr(request, "POST", {})
        username = data.get("username") if hasattr(data, "get") else None
        if not username or not isinstance(username, str):
            return None
        return self.cache_format % {"scope": self.scope, "ident": username_digest(username)}


class SyncThrottle(AtomicWindowThrottle):
    """Sync posts per authenticated user (``THROTTLE_SYNC``, default 120/min: one every 0.5 s)."""

    scope = "sync"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": str(request.user.pk)}


def password_attempt_wait(request: HttpRequest) -> int | None:
    """Count one password attempt of ``request`` (a form POST) against the per-IP and per-username limits.

    Returns None when both allow it, else the seconds to wait (``Retry-After``). Both counters are
    incremented on every attempt, exactly as on ``auth/token/``.
    """
    waits = []
    for throttle in (AuthIpThrottle(), AuthUsernameThrottle()):
        if not throttle.allow_request(request, None):
            waits.append(throttle.wait() or 1)
    return int(max(waits)) if waits else None


def throttle_password_form(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a Django login view (admin, browsable API): a POST past the limits is a 429 page with ``Retry-After``."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            wait = password_attempt_wait(request)
            if wait is not None:
                logger.warning("password form throttled", extra={"event": "login_throttled", "path": request.path})
                response = render(request, "tradingsite/login_throttled.html", {"retry_after": wait}, status=429)
                response["Retry-After"] = str(wait)
                return response
        return view(request, *args, **kwargs)

    return wrapped


# --------------------------------------------------------------------------------------------
# Syncs of one user in flight
# --------------------------------------------------------------------------------------------
class SyncsInFlight(exceptions.Throttled):
    """429: the user already has ``SYNC_MAX_IN_FLIGHT`` syncs being processed."""

    default_detail = "Too many syncs of this account in flight; retry shortly."
    default_code = "syncs_in_flight"


@contextmanager
def sync_slot(user_id: int) -> Iterator[None]:
    """Hold one of the user's ``SYNC_MAX_IN_FLIGHT`` sync slots for the duration of the block.

    A counter per user in the shared cache (per process while Redis is down), incremented on entry
    and decremented on exit; past the bound the block is not entered and :class:`SyncsInFlight`
    (429, ``Retry-After: SYNC_IN_FLIGHT_RETRY_AFTER_S``) is raised. The key lives
    ``SYNC_IN_FLIGHT_TTL_S`` from its creation, so a slot leaked by a killed worker frees itself.
    """
    limit = settings.SYNC_MAX_IN_FLIGHT
    key = f"throttle_sync_in_flight_{user_id}"
    ttl = settings.SYNC_IN_FLIGHT_TTL_S
    if counter_add(key, 1, ttl) > limit:
        counter_add(key, -1, ttl)
        raise SyncsInFlight(wait=settings.SYNC_IN_FLIGHT_RETRY_AFTER_S)
    try:
        yield
    finally:
        if counter_add(key, -1, ttl) < 0:  # the key expired while in flight: do not leave a negative count
            counter_add(key, 1, ttl)
