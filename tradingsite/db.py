"""One lock order for every writer of a user's data, and one retry of a transaction PostgreSQL aborted.

Every write path (a sync, a position registration, the first guard-config use) starts by locking
the user's row with ``SELECT … FOR NO KEY UPDATE``: writers of one user serialize on it, while the
``FOR KEY SHARE`` lock PostgreSQL takes for the foreign-key check of any insert referencing the user
is *not* blocked (``FOR UPDATE`` would block it, and the insert's transaction would then deadlock
with the sync waiting on that insert's row). PostgreSQL's explicit-locking chapter has the lock
conflict table.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.contrib.auth import get_user_model
from django.db import OperationalError, connection

logger = logging.getLogger(__name__)

# SQLSTATEs of a transaction PostgreSQL rolled back to break a cycle or a serialization conflict:
# retrying the whole transaction is the documented remedy.
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
RETRYABLE_SQLSTATES = frozenset({DEADLOCK_DETECTED, SERIALIZATION_FAILURE})

P = ParamSpec("P")
R = TypeVar("R")


def lock_user_row(user_id: int) -> None:
    """Lock the user's row ``FOR NO KEY UPDATE`` inside the caller's transaction (the first lock of every
    writer of the user's data). SQLite has no row locks: its IMMEDIATE transactions already serialize writers."""
    if connection.features.has_select_for_update:
        get_user_model().objects.select_for_update(no_key=True).filter(pk=user_id).values_list("pk", flat=True).get()


def is_retryable_conflict(exc: BaseException) -> bool:
    """True for a deadlock (40P01) or serialization failure (40001) that PostgreSQL resolved by aborting us."""
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


def retry_conflict_once(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` (which owns its transaction) again once when PostgreSQL aborted it as a deadlock victim
    or on a serialization failure; the second failure propagates. Outside a surrounding atomic block only:
    inside one, the outer transaction is already aborted and only its owner can retry."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OperationalError as exc:
            if connection.in_atomic_block or not is_retryable_conflict(exc):
                raise
            logger.warning("retrying %s after %s", func.__qualname__, getattr(exc.__cause__, "sqlstate", None))
            return func(*args, **kwargs)

    return wrapper
