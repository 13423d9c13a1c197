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
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar, cast

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections
from django.db.models import AutoField, Field, Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery, UpdateQuery

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


class UserInactive(Exception):
    """The user a write names is deactivated or gone (the view answers 401, as the database-checked JWT
    authentication would): raised by a writer that authenticated statelessly and read ``is_active``
    in the row it locks."""


def lock_active_user_row(user_id: int) -> None:
    """:func:`lock_user_row`, reading ``is_active`` in the same statement: raises :class:`UserInactive`
    when the user is deactivated or does not exist (nothing has been written yet)."""
    users = get_user_model().objects.filter(pk=user_id)
    if connection.features.has_select_for_update:
        users = users.select_for_update(no_key=True)
    if not users.values_list("is_active", flat=True).first():
        raise UserInactive(user_id)


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


class WriteBatch:
    """Writes of one transaction whose results nobody reads back, sent to the database together.

    :meth:`insert` (``bulk_create``, optionally an upsert) and :meth:`update` (``save(update_fields=…)``)
    compile each write with Django's own SQL compilers, exactly the statement the ORM call would send;
    :meth:`execute` sends them. On PostgreSQL the writes travel as **one statement**, every write but
    the last a data-modifying ``WITH`` clause (``WITH w0 AS (UPDATE …), w1 AS (INSERT …) INSERT …``:
    PostgreSQL's "Data-Modifying Statements in WITH", https://www.postgresql.org/docs/current/queries-with.html),
    so a sync's five or six writes cost one round trip. All run on one snapshot and none sees another's
    effect, so only independent writes belong in one batch: no two on the same row, none that needs a
    row another inserts (call :meth:`execute` first, then write the dependent rows). Other databases get
    the statements one by one. No signals are sent and no RETURNING is read (an inserted row gets no pk).
    """

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def insert(
        self,
        model: type[Model],
        objs: Iterable[Model],
        *,
        unique_fields: Sequence[str] = (),
        update_fields: Sequence[str] = (),
    ) -> None:
        """Queue ``model.objects.bulk_create(objs)``; with ``update_fields``, the upsert
        ``bulk_create(update_conflicts=True, unique_fields=…, update_fields=…)``."""
        rows = list(objs)
        if not rows:
            return
        opts = model._meta
        unique = [opts.get_field(opts.pk.name if name == "pk" else name) for name in unique_fields]
        update = [opts.get_field(name) for name in update_fields]
        model._default_manager.using(self.using)._prepare_for_bulk_create(rows)  # type: ignore[attr-defined]
        fields = [field for field in opts.concrete_fields if not field.generated]
        with_pk = [row for row in rows if row.pk is not None]
        without_pk = [row for row in rows if row.pk is None]
        for group, group_fields in (
            (with_pk, fields),
            (without_pk, [field for field in fields if not isinstance(field, AutoField)]),
        ):
            if not group:
                continue
            size = max(connections[self.using].ops.bulk_batch_size(group_fields, group), 1)
            for start in range(0, len(group), size):
                query = InsertQuery(
                    model, on_conflict=OnConflict.UPDATE if update else None, update_fields=update, unique_fields=unique
                )
                query.insert_values(group_fields, group[start : start + size])
                self.statements.extend(query.get_compiler(using=self.using).as_sql())
            for row in group:
                row._state.adding, row._state.db = False, self.using

    def update(self, obj: Model, fields: Sequence[str]) -> None:
        """Queue ``obj.save(update_fields=fields)`` (``auto_now`` fields among them take the current time)."""
        opts = obj._meta
        columns = [cast(Field, opts.get_field(name)) for name in fields]
        values: list[Any] = [(field, None, field.pre_save(obj, False)) for field in columns]
        query = cast(
            UpdateQuery, type(obj)._default_manager.using(self.using).filter(pk=obj.pk).query.chain(UpdateQuery)
        )
        query.add_update_fields(values)
        self.statements.append(query.get_compiler(using=self.using).as_sql())

    def execute(self) -> None:
        """Send the queued writes (one statement on PostgreSQL) and empty the batch."""
        statements, self.statements = self.statements, []
        if not statements:
            return
        database = connections[self.using]
        with database.cursor() as cursor:
            if database.vendor == "postgresql" and len(statements) > 1:
                *first, (last, _) = statements
                clauses = ", ".join(f"w{number} AS ({sql})" for number, (sql, _) in enumerate(first))
                cursor.execute(f"WITH {clauses} {last}", [param for _, params in statements for param in params])
            else:
                for sql, params in statements:
                    cursor.execute(sql, params)
