"""Caching policy shared by every app: key builders, per-user generations, the selector cache and
the page cache decorator. All cache keys are built here (Zulip's ``*_cache_key`` discipline).

Two layers, both per user and both ``API_CACHE_TTL_S`` seconds (SPEC §7):

1. **Page** — :func:`page_cached` wraps a viewset handler in Django's ``cache_page``, so DRF has
   already authenticated and throttled the request when the cache is consulted (PITFALLS §1.1),
   and varies on ``Accept``, ``Authorization`` and ``Cookie``. Only 200s are stored (Django's rule).
2. **Data** — :func:`cached_data` stores plain data (dicts, lists, strings; never model instances
   or querysets) under a key made of namespace, user id, the user's *generation* and the
   parameters. A sync calls :func:`bump_user_generation` in ``transaction.on_commit``: one INCR
   invalidates every data key of that user at once; the old keys simply expire. No ``KEYS``,
   ``SCAN`` or ``delete_pattern`` anywhere on a request path (PITFALLS §2.4).

Concurrent misses on one key compute once: a per-process lock (threads) plus a short cross-process
lease taken with ``cache.add`` (PITFALLS §3.2 technique 2). When the cache is unavailable every
function degrades to computing from the database.
"""

from __future__ import annotations

import functools
import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_page

from tradingsite.observability import record_cache, register_page_cached_view

T = TypeVar("T")

_MISSING = object()
GENERATION_TIMEOUT_S = 24 * 3600
LEASE_TIMEOUT_S = 2
LEASE_WAIT_S = 1.0
PAGE_VARY_HEADERS = ("Accept", "Authorization", "Cookie")


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------
def generation_cache_key(user_id: int) -> str:
    """Key of the user's cache generation counter."""
    return f"gen:u{int(user_id)}"


def data_cache_key(namespace: str, *, user_id: int, generation: int, params: Mapping[str, Any] | None = None) -> str:
    """Key of one selector result: namespace, user id, generation and a digest of the parameters."""
    items = sorted((str(k), str(v)) for k, v in (params or {}).items() if v is not None and v != "")
    digest = hashlib.blake2b(repr(items).encode(), digest_size=8).hexdigest() if items else "-"
    return f"data:{namespace}:u{int(user_id)}:g{generation}:{digest}"


def lease_cache_key(key: str) -> str:
    """Key of the short lease that lets one process recompute ``key``."""
    return f"lease:{key}"


# --------------------------------------------------------------------------------------------
# Generations
# --------------------------------------------------------------------------------------------
def user_generation(user_id: int) -> int | None:
    """Return the user's cache generation, creating it if absent; None when the cache is down.

    A new counter starts from the current time in ms, so a counter evicted from Redis never comes
    back with a value that older keys were written under.
    """
    key = generation_cache_key(user_id)
    generation = cache.get(key)
    if generation is None:
        cache.add(key, int(time.time() * 1000), timeout=GENERATION_TIMEOUT_S)
        generation = cache.get(key)
    return generation


def bump_user_generation(user_id: int) -> None:
    """Invalidate every data-layer entry of the user (one INCR). Call from ``transaction.on_commit``."""
    key = generation_cache_key(user_id)
    try:
        result = cache.incr(key)
    except ValueError:  # no counter yet: nothing of this user can be cached under it
        cache.add(key, int(time.time() * 1000), timeout=GENERATION_TIMEOUT_S)
        return
    if result is None:  # django-redis swallowed a connection error; entries expire within the TTL
        return


# --------------------------------------------------------------------------------------------
# Data layer
# --------------------------------------------------------------------------------------------
class _KeyLocks:
    """One lock per cache key being computed in this process, created on demand and dropped when idle.

    Per key rather than striped: a computation that reads another cached key inside (the status
    reads the open positions) can then never wait on a lock it or a peer already holds for an
    unrelated key, so nested ``cached_data`` calls cannot deadlock.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # key → [lock, number of holders and waiters]

    @contextmanager
    def hold(self, key: str, timeout: float) -> Iterator[bool]:
        """Hold ``key``'s lock for the block; yields False when it could not be had within ``timeout`` s
        (the block then runs unlocked rather than wait longer)."""
        with self._mutex:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        acquired = entry[0].acquire(timeout=timeout)
        try:
            yield acquired
        finally:
            if acquired:
                entry[0].release()
            with self._mutex:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


_KEY_LOCKS = _KeyLocks()


def _jittered(ttl: int) -> float:
    # Expire between 80 % and 100 % of the TTL so keys made together do not expire together,
    # and no entry outlives the freshness contract.
    return ttl * random.uniform(0.8, 1.0)


def cached_data(
    namespace: str,
    *,
    user_id: int,
    compute: Callable[[], T],
    params: Mapping[str, Any] | None = None,
    view: str | None = None,
) -> T:
    """Return ``compute()`` through the per-user data cache.

    ``compute`` must return plain, picklable data. ``params`` are every input of the computation
    besides the user. Returns a fresh computation when caching is off (``API_CACHE_TTL_S`` = 0) or
    the cache is unreachable.
    """
    ttl = settings.API_CACHE_TTL_S
    label = view or namespace
    if ttl <= 0:
        return compute()
    generation = user_generation(user_id)
    if generation is None:
        record_cache("data", label, hit=False)
        return compute()
    key = data_cache_key(namespace, user_id=user_id, generation=generation, params=params)
    value = cache.get(key, _MISSING)
    if value is not _MISSING:
        record_cache("data", label, hit=True)
        return value
    record_cache("data", label, hit=False)
    # Single flight: threads of this process queue on the key; other processes see the lease.
    with _KEY_LOCKS.hold(key, timeout=LEASE_TIMEOUT_S):
        # Always look again: a thread of this process may have filled the key since our first read,
        # whether or not we had to wait for the lock (it may have released it just before we came).
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            return value
        lease = lease_cache_key(key)
        # Never longer than the shortest life of the value it guards (80 % of the TTL, see _jittered),
        # so a later miss on the same key never finds a stale lease.
        leased = cache.add(lease, 1, timeout=min(LEASE_TIMEOUT_S, ttl * 0.8))
        if leased is False:  # None = the cache failed: compute at once rather than wait on a dead lease
            # Another process is computing: wait briefly for its result, then compute anyway.
            deadline = time.monotonic() + LEASE_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.02)
                value = cache.get(key, _MISSING)
                if value is not _MISSING:
                    return value
        try:
            value = compute()
        except BaseException:
            if leased:
                cache.delete(lease)  # let another process try at once rather than wait on a failed lease
            raise
        # The lease is left to expire: a process whose read just missed the value then finds the lease
        # taken and waits for the value instead of computing it a second time.
        cache.set(key, value, timeout=_jittered(ttl))
        return value


# --------------------------------------------------------------------------------------------
# Page layer
# --------------------------------------------------------------------------------------------
def page_cached(view_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a viewset/APIView handler method with ``cache_page(API_CACHE_TTL_S)``.

    Applied to the handler (not ``as_view()``), so authentication, permissions and throttles run
    on every hit. The TTL is read per request, so tests and ``API_CACHE_TTL_S=0`` take effect
    without re-importing. ``view_name`` is the route name, used to count hits and misses.
    """
    register_page_cached_view(view_name)

    def decorator(method: Callable[..., Any]) -> Callable[..., Any]:
        def run_handler(django_request, *args, view_self, drf_request, **kwargs):
            # Runs only on a page-cache miss; cache_page keys on django_request (DRF wraps it).
            record_cache("page", view_name, hit=False)
            response = method(view_self, drf_request, *args, **kwargs)
            patch_vary_headers(response, PAGE_VARY_HEADERS)
            return response

        by_ttl: dict[int, Callable[..., Any]] = {}

        @functools.wraps(method)
        def wrapper(self, request, *args, **kwargs):
            ttl = settings.API_CACHE_TTL_S
            if ttl <= 0:
                return method(self, request, *args, **kwargs)
            cached_handler = by_ttl.get(ttl)
            if cached_handler is None:
                cached_handler = by_ttl.setdefault(ttl, cache_page(ttl)(run_handler))
            return cached_handler(request._request, *args, view_self=self, drf_request=request, **kwargs)

        return wrapper

    return decorator
