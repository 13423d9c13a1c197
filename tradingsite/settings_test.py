"""Test settings: the project settings with fast hashing and per-run cache isolation.

The database and cache still come from the environment: unset → SQLite + in-process cache;
``DATABASE_URL`` / ``REDIS_URL`` → the real servers (tests marked ``postgres`` / ``redis`` need them).
"""

import os

# Hermetic: a developer's .env (written by `dev.py run`) never reaches the tests; the database and
# cache come from the real environment only (CI and `make test-services` set them explicitly).
os.environ.setdefault("DJANGO_DOTENV", "off")
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
# The production 0.1 s Redis socket timeout opens the circuit breaker (and so misses the cache) when a
# loaded test machine stalls a reply; tests of the timeout itself set 0.1 s explicitly
# (conftest.redis_cache_settings), every other test gets a margin that load cannot eat.
os.environ.setdefault("REDIS_SOCKET_TIMEOUT_S", "0.5")

from tradingsite.settings import *  # noqa: E402,F403
from tradingsite.settings import CACHES, LOGGING  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Separate cache keyspaces per test run so a shared Redis never serves another run's entries.
_run = os.environ.get("TEST_CACHE_NAMESPACE", str(os.getpid()))
for _alias in CACHES.values():
    _alias["KEY_PREFIX"] = f"{_alias['KEY_PREFIX']}:test{_run}"

# Warm inside the writing request's on_commit: a background thread could not see a test's transaction.
# Tests of the background warmer itself override it (tradingsite/tests/test_warmer.py).
CACHE_WARM_IN_BACKGROUND = False

LOGGING["root"]["level"] = os.environ.get("TEST_LOG_LEVEL", "WARNING")
