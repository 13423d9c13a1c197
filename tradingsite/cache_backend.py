"""A per-process circuit breaker around django-redis's client.

django-redis with ``IGNORE_EXCEPTIONS`` turns a Redis failure into a cache miss, but each call still
waits for the socket timeout (about 100 ms here), and a cached request makes several calls
. After a failure this client stops calling Redis for ``REDIS_BREAKER_COOLDOWN_S``
seconds: every cache call fails at once with ``ConnectionInterrupted``, which django-redis's
``IGNORE_EXCEPTIONS`` turns into a miss, so requests fall through to the database without waiting.
After the cool-down one call is let through (half-open); success closes the breaker.

Source of the pattern: c2corg/v6_api PR #590 (skip Redis for N seconds per worker after a failure),
cited.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradingsite.observability import count_redis_command

logger = logging.getLogger("tradingsite.cache")


class BreakerOpen(Exception):
    """Raised (as the cause of ``ConnectionInterrupted``) while the breaker skips Redis."""


class CircuitBreaker:
    """Closed → open after a failure → half-open after ``cooldown_s`` → closed on success.

    Thread-safe; one instance per process (module global ``breaker``). ``state`` is one of
    ``"closed"``, ``"open"``, ``"half_open"``.
    """

    def __init__(self, cooldown_s: float) -> None:
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.failures = 0
        self.short_circuits = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at < self.cooldown_s:
            return "open"
        return "half_open"

    def allow(self) -> bool:
        """Return True if a Redis call may go out now."""
        if self._opened_at is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if time.monotonic() - self._opened_at >= self.cooldown_s and not self._trial_in_flight:
                self._trial_in_flight = True  # exactly one trial call while half-open
                return True
            self.short_circuits += 1
            return False

    def record_success(self) -> None:
        if self._opened_at is None:
            return
        with self._lock:
            if self._opened_at is not None:
                logger.warning(
                    "redis circuit closed",
                    extra={"event": "redis_circuit_closed", "open_for_s": round(time.monotonic() - self._opened_at, 3)},
                )
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self, exc: BaseException | None) -> None:
        with self._lock:
            self.failures += 1
            was_closed = self._opened_at is None
            self._opened_at = time.monotonic()
            self._trial_in_flight = False
        if was_closed:
            logger.warning(
                "redis circuit opened: cache calls skipped for %.1f s",
                self.cooldown_s,
                extra={"event": "redis_circuit_opened", "error": repr(getattr(exc, "__cause__", exc))},
            )

    def reset(self) -> None:
        """Close the breaker (tests and /readyz recovery)."""
        with self._lock:
            self._opened_at = None
            self._trial_in_flight = False


breaker = CircuitBreaker(cooldown_s=getattr(settings, "REDIS_BREAKER_COOLDOWN_S", 5.0))

# DefaultClient methods that are not Redis operations and must not be guarded.
_UNGUARDED = {
    "get_client",
    "get_client_with_index",
    "get_next_client_index",
    "connect",
    "disconnect",
    "decode",
    "encode",
    "make_key",
    "make_pattern",
    "close",
    "do_close_clients",
}


_local = threading.local()
_scripts: dict[tuple[int, str], Any] = {}  # (id of the redis-py client, Lua source) → registered Script
# What django-redis itself turns into ConnectionInterrupted (its _main_exceptions): a READONLY replica after a
# failover or an OOM refusal is a Redis that cannot take the write, like one that does not answer.
_REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, RedisResponseError, OSError)


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: DefaultClient, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "inside", False):  # nested call (add → set): the outer call already decided
            return method(self, *args, **kwargs)
        if not breaker.allow():
            raise ConnectionInterrupted(connection=None) from BreakerOpen("redis circuit open")
        _local.inside = True
        count_redis_command()
        try:
            result = method(self, *args, **kwargs)
        except ConnectionInterrupted as exc:
            breaker.record_failure(exc)
            raise
        finally:
            _local.inside = False
        breaker.record_success()
        return result

    return wrapper


class CircuitBreakerClient(DefaultClient):
    """django-redis ``DefaultClient`` whose every Redis operation goes through the process breaker."""

    def run_script(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run the Lua ``script`` (``EVALSHA``, loaded on first use) on ``keys`` (cache keys, prefixed and
        versioned here as every other call does) with ``args``; Redis errors raise
        ``ConnectionInterrupted``, as django-redis's own operations do."""
        client = self.get_client(write=True)
        try:
            registered = _scripts.get((id(client), script))
            if registered is None:
                registered = _scripts[(id(client), script)] = client.register_script(script)
            return registered(keys=[self.make_key(key) for key in keys], args=args, client=client)
        except _REDIS_ERRORS as exc:
            raise ConnectionInterrupted(connection=client) from exc


CircuitBreakerClient.run_script = _guard(CircuitBreakerClient.run_script)  # type: ignore[method-assign]

for _name in dir(DefaultClient):
    if _name.startswith("_") or _name in _UNGUARDED:
        continue
    _attr = getattr(DefaultClient, _name)
    if callable(_attr):
        setattr(CircuitBreakerClient, _name, _guard(_attr))
