"""Throttles and their failure policy when Redis is unavailable.

DRF's throttles keep their request history in the cache and, with django-redis ignoring
connection errors, would read an empty history and let everything through (fail open,
PITFALLS §2.8). Ours use the ``throttle`` cache alias while Redis answers and fall back to a
**per-process in-memory window** when it does not (circuit breaker open or the read fails):

* login (``auth/token/``) stays available during a Redis outage and is still rate-limited,
  each gunicorn worker counting on its own (limits become at most ``workers ×`` looser);
* nothing fails closed, so a cache outage never locks traders or the sync worker out.
"""

from __future__ import annotations

import hashlib

from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

_LOCAL = None


def _local_cache():
    from django.core.cache.backends.locmem import LocMemCache

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


class FallbackCacheThrottle(SimpleRateThrottle):
    """``SimpleRateThrottle`` on the ``throttle`` alias, falling back to process memory when Redis is down."""

    @property
    def cache(self):  # type: ignore[override]
        if _redis_is_skipped():
            return _local_cache()
        return caches["throttle"]


class AuthIpThrottle(FallbackCacheThrottle):
    """Token requests per client IP (``THROTTLE_AUTH_IP``, default 30/min)."""

    scope = "auth_ip"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class AuthUsernameThrottle(FallbackCacheThrottle):
    """Token requests per submitted username (``THROTTLE_AUTH_USERNAME``, default 10/min): slows password guessing
    on one account from many IPs."""

    scope = "auth_username"

    def get_cache_key(self, request, view):
        username = request.data.get("username") if hasattr(request, "data") and isinstance(request.data, dict) else None
        if not username or not isinstance(username, str):
            return None
        # Hashed: usernames may hold characters that are not valid in cache keys (and should not sit in Redis).
        digest = hashlib.blake2b(username.strip().lower().encode(), digest_size=16).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


class SyncThrottle(FallbackCacheThrottle):
    """Sync posts per authenticated user (``THROTTLE_SYNC``, default 120/min: one every 0.5 s)."""

    scope = "sync"

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": str(request.user.pk)}
