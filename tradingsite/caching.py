"""Caching policy shared by every app: key builders, per-user generations, the selector cache, the
hot-read declarations (:func:`cached_read`, warmed through after writes), the page cache decorator.
All cache keys are built here and in :mod:`tradingsite.generations` (Zulip's ``*_cache_key``
discipline). Nothing here knows a domain: apps declare their hot reads.

Two layers, both per user (docs/read-api.md, "Caching"):

1. **Page** — :func:`page_cached` wraps a viewset handler in Django's ``cache_page(API_CACHE_TTL_S)``
   (5 s, fixed from the miss), so DRF has already authenticated and throttled the request when the
   cache is consulted on a miss, and varies on ``Accept``, ``Authorization`` and ``Cookie``.
   Only 200s are stored (Django's rule). A stored page records the generation its data was read
   under (:data:`tradingsite.generations.PAGE_GENERATION_ATTR`) and is served only while that
   generation is current: once a write's data is published the next read makes a new page (from
   the warmed data), so a write shows as soon as its warm is stored, not up to a page TTL later.
   A hit with a bearer token is answered earlier, from the same entry, by
   :class:`tradingsite.page_hit.PageHitMiddleware` after the same token checks.
2. **Data** — :func:`cached_data` stores plain data (dicts, lists, strings; never model instances
   or querysets) under a key made of namespace, user id, the user's *generation* and the
   parameters. Every write to a user's data calls :func:`bump_and_warm_user` in
   ``transaction.on_commit``: one INCR starts a new generation (the old keys simply expire), the
   registered hot reads are computed and stored under it (write-through) — by the process's
   background :class:`Warmer` after the write's answer when ``CACHE_WARM_IN_BACKGROUND`` is on —
   and only then is the generation **published** (:mod:`tradingsite.generations`): readers keep
   reading the previous generation's entries, which are whole, until every new entry is stored,
   so no read meets the gap between the bump and the warm and computes. No ``KEYS``, ``SCAN`` or
   ``delete_pattern`` anywhere on a request path.

The data layer's TTL (``API_DATA_TTL_S``, default 5 s, never below the page TTL) counts from the
computation (a hit does not extend it): an entry computed on a miss lives 80–100 % of it (jittered so
keys made together do not expire together), a warmed one 100–120 %, so writes every TTL seconds (the
sync cadence) keep replacing entries before they expire. Freshness comes from the generation in
the key, not from the TTL: an entry is never served after a newer generation is published, and a
published generation expires with the page TTL, so a warm that never publishes (its process died)
holds readers on the previous entries for at most that long. Every time-dependent field (``as_of``,
"stale" statuses, ages, 24-hour windows) is computed at read time from cached facts.
The TTL bounds memory and how long an entry can outlive a *lost* invalidation. A bump that Redis
does not take (unreachable, breaker open) is queued per process in :data:`pending_invalidations`
and replayed as soon as Redis answers again, so a missed invalidation is not lost; only a process
that dies with bumps queued leaves them to the TTL. Active users are re-warmed by every sync; the
page layer shields the data layer, which is read at most once per page TTL per (user, endpoint).
``API_CACHE_TTL_S`` = 0 turns both layers off.

Concurrent misses on one key compute once: a per-process lock (threads) plus a short cross-process
lease taken with ``cache.add``. When the cache is unavailable every function degrades to computing
from the database, and warming does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.utils.cache import patch_vary_headers
from django_redis.exceptions import ConnectionInterrupted

from tradingsite.generations import (
    PAGE_GENERATION_ATTR,
    generation_cache_key,
    published_cache_key,
    readers_generation,
    request_generation,
)
from tradingsite.metrics import SQL_QUERIES
from tradingsite.observability import record_cache, record_compute, register_page_cached_view
from tradingsite.page_hit import cache_page

T = TypeVar("T")
logger = logging.getLogger("tradingsite.cache")

_MISSING = object()
GENERATION_TIMEOUT_S = 24 * 3600
LEASE_TIMEOUT_S = 2
# How long a miss waits for another process's computation of the same key before computing itself: a
# hot read computes in a few ms, so a longer wait only makes tails (issue 13: waits of up to 1 s seen).
LEASE_WAIT_S = 0.1
LEASE_POLL_S = 0.005
PAGE_VARY_HEADERS = ("Accept", "Authorization", "Cookie")


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------
def data_cache_key(namespace: str, *, user_id: int, generation: int, params: Mapping[str, Any] | None = None) -> str:
    """Key of one selector result: namespace, user id, generation and a digest of the parameters."""
    items = sorted((str(k), str(v)) for k, v in (params or {}).items() if v is not None and v != "")
    digest = hashlib.blake2b(repr(items).encode(), digest_size=8).hexdigest() if items else "-"
    return f"data:{namespace}:u{int(user_id)}:g{generation}:{digest}"


def lease_cache_key(key: str) -> str:
    """Key of the short lease that lets one process recompute ``key``."""
    return f"lease:{key}"


# --------------------------------------------------------------------------------------------
# Generations (tradingsite.generations: latest and published)
# --------------------------------------------------------------------------------------------
# Redis: INCR the latest generation (created from the time in ms when absent: a counter evicted from Redis
# never comes back with a value older keys were written under) and hold readers on the published one for
# another published TTL — publishing the previous generation when nothing is published (NX) — so they stay
# on the entries they have until the warm publishes the new one. KEYS: latest, published; ARGV: now in ms,
# published TTL in ms, latest TTL in s.
_BUMP_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return tonumber(ARGV[1])
end
local generation = redis.call('INCR', KEYS[1])
if not redis.call('SET', KEYS[2], generation - 1, 'NX', 'PX', ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return generation
"""
# Redis: publish ARGV[1] unless a newer generation is published already. Publishing the latest generation
# holds readers on it for the published TTL; publishing one that is already behind the latest (a slow warm
# of an earlier write) keeps the TTL the latest write gave the hold (KEEPTTL), and never publishes at all when
# nothing is published (readers are then on the latest already: moving them back would show older data after
# newer). KEYS: published, latest; ARGV: the generation, the published TTL in ms.
_PUBLISH_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]))
local latest = tonumber(redis.call('GET', KEYS[2]))
local generation = tonumber(ARGV[1])
if latest ~= nil and generation < latest then
  if current ~= nil and generation > current then
    redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
    return 1
  end
  return 0
end
if current == nil or generation > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_GENERATION_LOCK = threading.Lock()  # the same two steps for a cache without scripts (the in-process one)


def _published_ttl_s() -> float:
    # How long a published generation holds readers after the last write or publish: the page TTL, so a warm
    # that never finished (its process died) holds readers on older data no longer than a page lives after
    # the user's last write. Renewed by each bump: a publish that comes more than one TTL after the previous
    # one (a sync every TTL seconds plus the warm's duration) would otherwise leave a gap in which readers
    # move to the unwarmed latest generation and compute.
    return max(float(settings.API_CACHE_TTL_S), 1.0)


def _script_runner() -> Callable[..., Any] | None:
    """django-redis's ``run_script`` of :class:`tradingsite.cache_backend.CircuitBreakerClient`, or None
    for a cache without it (the in-process cache of the embedded default and the tests)."""
    return getattr(getattr(cache, "client", None), "run_script", None)


def user_generation(user_id: int) -> int | None:
    """The generation the user's readers use (:func:`tradingsite.generations.readers_generation`: the
    published one while a warm is under way, else the latest), creating the counter if absent; None
    when the cache is down. One round trip (MGET) when the counter exists.
    """
    key, published_key = generation_cache_key(user_id), published_cache_key(user_id)
    found = cache.get_many([key, published_key])
    generation = readers_generation(found.get(key), found.get(published_key))
    if generation is None:
        cache.add(key, int(time.time() * 1000), timeout=GENERATION_TIMEOUT_S)
        generation = cache.get(key)
    return generation


def latest_generation(user_id: int) -> int | None:
    """The user's latest generation (the last write's), published or not; None when absent or the cache is down."""
    return cache.get(generation_cache_key(user_id))


def _write_bump(user_id: int) -> int | None:
    """INCR the user's latest generation and hold readers on the published one (see ``_BUMP_SCRIPT``);
    the new generation once the cache has it, None when the write failed (Redis unreachable or the
    breaker open)."""
    key, published_key = generation_cache_key(user_id), published_cache_key(user_id)
    started = int(time.time() * 1000)
    run_script = _script_runner()
    if run_script is not None:
        try:
            return int(
                run_script(
                    _BUMP_SCRIPT,
                    [key, published_key],
                    [started, int(_published_ttl_s() * 1000), GENERATION_TIMEOUT_S],
                )
            )
        except ConnectionInterrupted:
            return None
    with _GENERATION_LOCK:
        try:
            generation = cache.incr(key)
        except ValueError:  # no counter yet: nothing of this user can be cached under it; start a new one
            if cache.add(key, started, timeout=GENERATION_TIMEOUT_S):
                return started
            # A reader created it meanwhile and may have read the database before this write committed and
            # cached under it: move past it, as the script does when the counter exists.
            generation = cache.incr(key)
        if not cache.add(published_key, generation - 1, timeout=_published_ttl_s()):
            cache.touch(published_key, timeout=_published_ttl_s())
        return generation


def publish_generation(user_id: int, generation: int) -> None:
    """Point the user's readers at ``generation`` (its hot reads are stored), unless a newer one is
    published already (see ``_PUBLISH_SCRIPT``: an earlier write's publish never extends the hold the
    latest write set, and never moves readers back). A failure is ignored: the published counter then
    expires within the page TTL."""
    key, published_key = generation_cache_key(user_id), published_cache_key(user_id)
    run_script = _script_runner()
    if run_script is not None:
        with contextlib.suppress(ConnectionInterrupted):
            run_script(_PUBLISH_SCRIPT, [published_key, key], [int(generation), int(_published_ttl_s() * 1000)])
        return
    with _GENERATION_LOCK:
        current, latest = cache.get(published_key), cache.get(key)
        if latest is not None and generation < latest:
            if current is not None and generation > current:
                cache.incr(published_key, int(generation) - current)  # in place: the entry keeps its expiry
            return
        if current is None or generation > current:
            cache.set(published_key, int(generation), timeout=_published_ttl_s())


def _bump(user_id: int) -> int | None:
    """:func:`_write_bump`, queueing the user in :data:`pending_invalidations` when the cache did not take it."""
    generation = _write_bump(user_id)
    if generation is not None:
        pending_invalidations.discard(user_id)  # a later successful bump supersedes a queued one
    else:
        pending_invalidations.add(user_id)
    return generation


def bump_user_generation(user_id: int) -> int | None:
    """Invalidate every data-layer entry of the user at once (INCR, then publish the new generation) and
    return the new generation (None when Redis did not take it). Call from ``transaction.on_commit``.
    A write whose hot reads are warmed uses :func:`bump_and_warm_user` instead, which publishes only
    once the warm is stored.

    A bump that cannot be written (Redis down, breaker open) is not lost: the user is queued in
    :data:`pending_invalidations`, which replays it as soon as Redis answers again.
    """
    generation = _bump(user_id)
    if generation is not None:
        publish_generation(user_id, generation)
    return generation


REPLAY_INTERVAL_S = 0.25


class PendingInvalidations:
    """The generation bumps of this process that Redis did not take, replayed when it answers again.

    While Redis fails, nothing new can be cached, but entries written before the failure (data under
    the old generation, pages) are still there when Redis comes back; without the bump a worker
    would serve them until their TTL. A daemon thread (started on the first queued bump, ending
    when the queue is empty) pings Redis every ``REPLAY_INTERVAL_S`` s past the circuit breaker,
    and on the first answer closes this process's breaker and writes the queued bumps, so a missed
    invalidation takes effect within about ``REPLAY_INTERVAL_S`` of Redis answering. Pages stored in
    that interval from the old generation live at most the page TTL (5 s). Only a process that dies
    with bumps queued loses them; then the data TTL (``API_DATA_TTL_S``, 5 s by default) bounds them.
    Thread-safe; one instance per process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: set[int] = set()
        self._thread: threading.Thread | None = None

    def add(self, user_id: int) -> None:
        """Queue ``user_id``'s bump and make sure the replay thread runs."""
        with self._lock:
            self._users.add(int(user_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cache-invalidation-replay", daemon=True)
                self._thread.start()
        logger.warning(
            "cache invalidation queued: Redis did not take the generation bump",
            extra={"event": "cache_invalidation_queued", "user": user_id},
        )

    def discard(self, user_id: int) -> None:
        """Forget ``user_id``'s queued bump (a newer bump reached Redis)."""
        if self._users:
            with self._lock:
                self._users.discard(int(user_id))

    def users(self) -> set[int]:
        """The user ids whose bumps are queued (a copy)."""
        with self._lock:
            return set(self._users)

    def replay(self) -> int:
        """Write every queued bump once; return how many are still queued (their write failed again)."""
        for user_id in self.users():
            generation = _write_bump(user_id)
            if generation is not None:
                publish_generation(user_id, generation)
                self.discard(user_id)
        with self._lock:
            return len(self._users)

    def _run(self) -> None:
        while True:
            time.sleep(REPLAY_INTERVAL_S)
            with self._lock:
                if not self._users:
                    self._thread = None
                    return
            if not _redis_answers():
                continue
            try:
                remaining = self.replay()
            except Exception:  # never let the thread die with bumps queued
                logger.warning("cache invalidation replay failed", exc_info=True)
                continue
            logger.warning(
                "cache invalidations replayed", extra={"event": "cache_invalidation_replayed", "remaining": remaining}
            )


def _redis_answers() -> bool:
    """Ping Redis past the circuit breaker; on an answer close the breaker (Redis is back). True for
    a cache that is not Redis (it cannot fail)."""
    client = getattr(cache, "client", None)
    if client is None or not hasattr(client, "get_client"):
        return True
    try:
        client.get_client(write=True).ping()
    except Exception:
        return False
    from tradingsite.cache_backend import breaker

    breaker.record_success()
    return True


pending_invalidations = PendingInvalidations()


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


def _jittered(ttl: float) -> float:
    # Expire between 80 % and 100 % of the TTL so keys made together do not expire together.
    return ttl * random.uniform(0.8, 1.0)


def _warm_lifetime(ttl: float) -> float:
    # A warmed entry lives 100–120 % of the TTL: warmed by a write every TTL seconds (the sync cadence
    # equal to the 5 s TTL), it is then still there when the next write replaces it, instead of leaving
    # a gap of up to 20 % of each cycle with no entry (a jitter of 80–100 % did).
    return ttl * random.uniform(1.0, 1.2)


def data_ttl() -> float:
    """The data layer's TTL in seconds, from computation: ``API_DATA_TTL_S``, never below the page TTL
    (see the module docstring); 0 when caching is off (``API_CACHE_TTL_S`` = 0)."""
    page_ttl = settings.API_CACHE_TTL_S
    if page_ttl <= 0:
        return 0
    return max(getattr(settings, "API_DATA_TTL_S", 5), page_ttl)


# The generation :func:`warm_user_reads` stores under while it runs (None otherwise): lookups then use it
# instead of the readers' generation and are not counted as request cache events.
_warm_generation: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "tradingsite_cache_warm_generation", default=None
)
# While a page-cached handler computes a miss: the generations its data lookups used (the page records
# the oldest, :data:`tradingsite.generations.PAGE_GENERATION_ATTR`).
_page_generations: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "tradingsite_page_generations", default=None
)


def cached_data(
    namespace: str,
    *,
    user_id: int,
    compute: Callable[[], T],
    params: Mapping[str, Any] | None = None,
    view: str | None = None,
    is_valid: Callable[[T], bool] | None = None,
) -> T:
    """Return ``compute()`` through the per-user data cache.

    ``compute`` must return plain, picklable data. ``params`` are every input of the computation
    besides the user. Entries live :func:`data_ttl` seconds from their computation.
    ``is_valid(value)``, when given, can reject a cached value that time alone has made unusable
    (it is then recomputed and replaced as on a miss); it must not query anything. Returns a fresh
    computation when caching is off (``API_CACHE_TTL_S`` = 0) or the cache is unreachable.
    """
    ttl = data_ttl()
    label = view or namespace
    warm_generation = _warm_generation.get()
    warming = warm_generation is not None
    if ttl <= 0:
        record_compute()
        return compute()
    if warming:
        generation: int | None = warm_generation
    else:
        known = request_generation.get()  # read by the fast path with the page (tradingsite.page_hit)
        generation = known[1] if known is not None and known[0] == int(user_id) else user_generation(user_id)
    page_generations = _page_generations.get()
    if page_generations is not None and generation is not None and not warming:
        page_generations.append(generation)
    if generation is None:
        if not warming:
            record_cache("data", label, hit=False)
            record_compute()
        return compute()
    key = data_cache_key(namespace, user_id=user_id, generation=generation, params=params)

    def usable(value: Any) -> bool:
        return value is not _MISSING and (is_valid is None or is_valid(value))

    value = cache.get(key, _MISSING)
    if usable(value):
        if not warming:
            record_cache("data", label, hit=True)
        return value
    if not warming:
        record_cache("data", label, hit=False)
    # Single flight: threads of this process queue on the key; other processes see the lease.
    with _KEY_LOCKS.hold(key, timeout=LEASE_TIMEOUT_S):
        # Always look again: a thread of this process may have filled the key since our first read,
        # whether or not we had to wait for the lock (it may have released it just before we came).
        value = cache.get(key, _MISSING)
        if usable(value):
            return value
        lease = lease_cache_key(key)
        # Never longer than the shortest life of the value it guards (80 % of the TTL, see _jittered),
        # so a later miss on the same key never finds a stale lease.
        leased = cache.add(lease, 1, timeout=min(LEASE_TIMEOUT_S, ttl * 0.8))
        if leased is False:  # None = the cache failed: compute at once rather than wait on a dead lease
            # Another process is computing: wait briefly for its result, then compute anyway.
            deadline = time.monotonic() + LEASE_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(LEASE_POLL_S)
                value = cache.get(key, _MISSING)
                if usable(value):
                    return value
        if not warming:
            record_compute()
        try:
            value = compute()
        except BaseException:
            if leased:
                cache.delete(lease)  # let another process try at once rather than wait on a failed lease
            raise
        # The lease is left to expire: a process whose read just missed the value then finds the lease
        # taken and waits for the value instead of computing it a second time.
        cache.set(key, value, timeout=_warm_lifetime(ttl) if warming else _jittered(ttl))
        return value


# --------------------------------------------------------------------------------------------
# Write-through: warm the hot reads of a user after a write
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedRead:
    """One hot read, declared once with :func:`cached_read` beside its computation.

    ``route`` (the URL name, e.g. ``"positions:open"``) is everything's name: the page-cache label
    (:func:`page_cached` takes the read itself), the data-cache namespace and the metrics label.
    ``compute(user_id=…, **params)`` computes the plain data from the database; ``warm_params(user_id)``
    lists the parameter sets written through after each of the user's writes (e.g. one per account);
    ``after`` names the reads whose cached data this one's computation reads, which are warmed first.
    """

    route: str
    compute: Callable[..., Any]
    warm_params: Callable[[int], Iterable[Mapping[str, Any]]]
    after: tuple[str, ...] = ()

    def get(self, *, user_id: int, is_valid: Callable[[Any], bool] | None = None, **params: Any) -> Any:
        """The data for ``user_id`` and ``params`` through the data cache (:func:`cached_data`)."""
        return cached_data(
            self.route,
            user_id=user_id,
            params=params,
            compute=lambda: self.compute(user_id=user_id, **params),
            view=self.route,
            is_valid=is_valid,
        )

    def warm(self, user_id: int) -> None:
        """Compute and store every parameter set of :attr:`warm_params` under the current generation."""
        for params in self.warm_params(user_id):
            self.get(user_id=user_id, **params)


_CACHED_READS: dict[str, CachedRead] = {}


def cached_read(
    route: str, *, warm_params: Callable[[int], Iterable[Mapping[str, Any]]], after: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], CachedRead]:
    """Declare the decorated ``compute(user_id=…, **params)`` as the hot read ``route`` (see
    :class:`CachedRead`) and register it for write-through warming. Declaring a route twice replaces it
    (a module re-import). Selector modules are imported at start-up (``TradingsiteConfig.ready``), so a
    declaration is all an app writes."""

    def declare(compute: Callable[..., Any]) -> CachedRead:
        read = CachedRead(route=route, compute=compute, warm_params=warm_params, after=tuple(after))
        _CACHED_READS[route] = read
        return read

    return declare


def cached_reads_in_warm_order() -> list[CachedRead]:
    """The declared reads, each after the reads it names in ``after`` (a topological order; ties by
    route name). Raises ``ImproperlyConfigured`` for an unknown dependency or a cycle."""
    ordered: list[CachedRead] = []
    state: dict[str, str] = {}

    def visit(route: str, path: tuple[str, ...]) -> None:
        if state.get(route) == "done":
            return
        if route not in _CACHED_READS:
            raise ImproperlyConfigured(f"cached read {path[-1]!r} depends on {route!r}, which is not declared")
        if state.get(route) == "visiting":
            raise ImproperlyConfigured(f"cached reads depend on each other in a cycle: {' → '.join((*path, route))}")
        state[route] = "visiting"
        for dependency in _CACHED_READS[route].after:
            visit(dependency, (*path, route))
        state[route] = "done"
        ordered.append(_CACHED_READS[route])

    for route in sorted(_CACHED_READS):
        visit(route, ())
    return ordered


def warm_user_reads(user_id: int, generation: int | None = None) -> None:
    """Compute and store every declared hot read of the user under ``generation`` (default: the latest),
    in dependency order (:func:`cached_reads_in_warm_order`), then publish it
    (:func:`publish_generation`): readers move to the new entries only once they are all stored.

    Does nothing when caching is off or the cache is unreachable (no computation whose result could
    not be stored). A failing read is logged and skipped (readers then compute it on their miss):
    warming runs after the write committed and must never turn a successful write into an error.
    The generation is published even then, so a failed warm never holds readers on older data.
    """
    if data_ttl() <= 0 or not _CACHED_READS:
        return
    if generation is None:
        generation = latest_generation(user_id) or user_generation(user_id)  # the latest, created if absent
        if generation is None:
            return
    token = _warm_generation.set(generation)
    try:
        for read in cached_reads_in_warm_order():
            try:
                read.warm(user_id)
            except Exception:
                logger.warning(
                    "cache warm failed", exc_info=True, extra={"event": "cache_warm_failed", "view": read.route}
                )
    finally:
        _warm_generation.reset(token)
        publish_generation(user_id, generation)


class Warmer:
    """A small per-process thread pool that warms users' hot reads off the writing request.

    :meth:`submit` queues a user with the generation the write just set; a worker thread (at most
    ``CACHE_WARM_THREADS``, started on first use and again after a fork) takes the user and warms
    (:func:`warm_user_reads`) the user's **latest** generation — a later write's, if one came since — and
    publishes it, unless that generation is published already (then the warm is dropped). One queued warm
    per user: a second submit before the first started only raises its generation. A warm runs on the
    thread's own database connection,
    returned after each warm (``close_old_connections``, as Django does around a request).
    Thread-safe; one instance per process (:data:`warmer`).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queued: dict[int, int] = {}  # user id → generation it was submitted for, in submission order
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._pid = 0
        self.dropped = 0  # warms skipped because a newer generation was current (read by tests)

    def submit(self, user_id: int, generation: int) -> None:
        """Queue a warm of ``user_id``'s hot reads for ``generation`` (the value the write's bump set)."""
        with self._cond:
            self._start_threads()
            self._queued[int(user_id)] = max(generation, self._queued.get(int(user_id), generation))
            self._cond.notify()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or running; False when ``timeout`` s passed first (tests, scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queued or self._running:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _start_threads(self) -> None:
        if self._pid != os.getpid():  # a forked worker inherits the list, not the threads
            self._pid, self._threads, self._running = os.getpid(), [], 0
        self._threads = [t for t in self._threads if t.is_alive()]
        wanted = max(1, int(getattr(settings, "CACHE_WARM_THREADS", 2)))
        while len(self._threads) < wanted:
            thread = threading.Thread(target=self._run, name=f"cache-warmer-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self) -> None:
        from django.db import close_old_connections

        while True:
            with self._cond:
                while not self._queued:
                    self._cond.wait()
                user_id = next(iter(self._queued))
                generation = self._queued.pop(user_id)
                self._running += 1
            try:
                latest = latest_generation(user_id)
                published = cache.get(published_cache_key(user_id))
                # Warm the latest generation, not the one queued: a newer write's warm may be queued behind
                # this one or in another process, and if every warm waited for a newer one, none would publish
                # while the writes go on. The latest was read before this warm's database reads, so its
                # entries include every write up to it.
                target = max(generation, latest or generation)
                if published is not None and published >= target:
                    self.dropped += 1  # already warmed and published by another warm: nothing to do
                else:
                    close_old_connections()
                    _warm_counted(user_id, target)
            except Exception:  # never let a warm kill the thread
                logger.warning("cache warm failed", exc_info=True, extra={"event": "cache_warm_failed"})
            finally:
                close_old_connections()
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


warmer = Warmer()

# The metrics label of the background warmer's SQL statements (``tradingsite_sql_queries_total``): the
# statements a write's request no longer runs, so the benchmark can still report them per write.
WARMER_VIEW = "cache-warmer"


def _warm_counted(user_id: int, generation: int) -> None:
    """:func:`warm_user_reads` with its SQL statements counted under :data:`WARMER_VIEW`."""
    from django.db import connection

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(count):
            warm_user_reads(user_id, generation)
    finally:
        if statements:
            SQL_QUERIES.labels(view=WARMER_VIEW).inc(statements)


def bump_and_warm_user(user_id: int) -> None:
    """After a write to the user's data: start a new generation (:func:`_write_bump`, readers held on the
    published one), write the hot reads through under it and publish it (:func:`warm_user_reads`) — in
    this process's background :data:`warmer` when ``CACHE_WARM_IN_BACKGROUND`` is on (the default: the
    writing request returns without computing the reads), else here. Readers never meet the gap between
    the bump and the stored entries: they keep reading the previous generation's entries until the new
    ones are all there. Call from ``transaction.on_commit`` — the one place every service uses, so no
    write can forget either half."""
    generation = _bump(user_id)
    if generation is None:
        return
    if data_ttl() <= 0:
        publish_generation(user_id, generation)
    elif getattr(settings, "CACHE_WARM_IN_BACKGROUND", False):
        warmer.submit(user_id, generation)
    else:
        warm_user_reads(user_id, generation)


# --------------------------------------------------------------------------------------------
# Page layer
# --------------------------------------------------------------------------------------------
def page_cached(read: CachedRead | str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a viewset/APIView handler method with ``cache_page(API_CACHE_TTL_S)``.

    Applied to the handler (not ``as_view()``), so authentication, permissions and throttles run
    on every hit. The TTL is read per request, so tests and ``API_CACHE_TTL_S=0`` take effect
    without re-importing. ``read`` is the declared :class:`CachedRead` (or its route name), whose route
    labels the hits and misses.
    """
    view_name = read.route if isinstance(read, CachedRead) else read
    register_page_cached_view(view_name)

    def decorator(method: Callable[..., Any]) -> Callable[..., Any]:
        def run_handler(django_request, *args, view_self, drf_request, **kwargs):
            # Runs only on a page-cache miss; cache_page keys on django_request (DRF wraps it).
            record_cache("page", view_name, hit=False)
            generations: list[int] = []
            token = _page_generations.set(generations)
            try:
                response = method(view_self, drf_request, *args, **kwargs)
            finally:
                _page_generations.reset(token)
            if generations:  # the page is as current as the oldest data it was made from
                setattr(response, PAGE_GENERATION_ATTR, min(generations))
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
