"""Admin plumbing shared by every app: read-only model admins, a paginator for large tables, a date-range filter.

- :class:`ReadOnlyModelAdmin`: view only, superusers included, for append-only or service-owned tables.
- :class:`LargeTablePaginator`: never an unbounded ``COUNT(*)``; an estimate or a bounded count,
  which the changelist templates (``templates/admin/``) show as "about N" or "10,000+".
- :class:`DateRangeFilter`: from/to dates plus quick links on a ``DateTimeField``, an index range scan.

The apps' own admins (``reconciliation/admin.py``, ``positions/admin.py``, ``guards/admin.py``) build on these.

The admin site itself: "View site" leads to the API root (the service has no other home page), and
the app sidebar is off so a changelist with its filter panel fits a 1366-pixel-wide screen (the
app list stays on the admin index and in the breadcrumbs). The layout CSS is
``tradingsite/static/tradingsite/admin.css``, loaded by ``templates/admin/base_site.html``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.urls import reverse_lazy
from django.utils import timezone
from django.utils.functional import cached_property

admin.site.site_url = cast(str, reverse_lazy("api-root"))  # resolved when a page renders it
admin.site.enable_nav_sidebar = False


def estimated_row_count(model: type[Model], *, using: str = "default") -> int | None:
    """Return PostgreSQL's estimate of the number of rows in ``model``'s table, or None.

    Same arithmetic as the planner: ``reltuples / relpages × current pages`` (pages from
    ``pg_relation_size / block_size``), so rows inserted since the last ANALYZE are mostly counted.
    A partitioned table (``tradingsite.partitions``) holds no rows itself: the estimate is the sum over
    its leaf partitions (``pg_partition_tree``). None on other databases or when no table was ever
    analyzed (``reltuples = -1``, PG 14+). A few indexed catalog lookups, independent of table size.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT sum(CASE
                         WHEN c.reltuples < 0 THEN NULL
                         WHEN c.relpages = 0 THEN c.reltuples
                         ELSE c.reltuples / c.relpages
                              * (pg_relation_size(c.oid) / current_setting('block_size')::integer)
                       END)
            FROM pg_class c
            WHERE c.oid = to_regclass(%s) AND c.relkind <> 'p'
               OR c.oid IN (SELECT relid FROM pg_partition_tree(to_regclass(%s)) WHERE isleaf)
            """,
            [connection.ops.quote_name(model._meta.db_table)] * 2,
        )
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    return round(row[0])


QUERY_CANCELED = "57014"  # PostgreSQL SQLSTATE of a statement stopped by statement_timeout


def planner_row_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows ``queryset`` returns (``EXPLAIN (FORMAT JSON)`` "Plan Rows").

    One planning round trip, no execution; None on other databases. Used when an exact count
    would take too long; the planner's figure comes from the column statistics (``pg_stats``).
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class LargeTablePaginator(Paginator):
    """A paginator that never runs an unbounded ``COUNT(*)``.

    - Unfiltered queryset on PostgreSQL: :func:`estimated_row_count` (``is_estimate`` = True) when
      the estimate is at least ``count_limit``; smaller tables are counted exactly.
    - Otherwise a bounded count, ``SELECT COUNT(*) FROM (SELECT id … LIMIT count_limit + 1)``: it
      stops after ``count_limit`` matching rows; past it the count is reported as ``count_limit``,
      ``is_capped`` is True and ``estimate`` holds the planner's estimate of all matching rows
      (PostgreSQL, when above the cap): the templates show "about N" or "more than 10,000",
      never a bare "10000 results".
    - On PostgreSQL the bounded count also runs under ``SET LOCAL statement_timeout =
      count_timeout_ms``: a rare filter value (say 0.1 % of rows) cannot reach the limit early and
      would scan the whole table, so past the timeout the count becomes the planner's estimate
      (:func:`planner_row_estimate`, ``is_estimate`` = True). Either way the count's cost does not
      grow with the table.

    ``count_limit`` defaults to 10,000 rows = 100 pages of 100, deep enough for page 50.
    """

    count_limit = 10_000
    count_timeout_ms = 30

    def __init__(self, *args: Any, count_limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if count_limit is not None:
            self.count_limit = count_limit
        self.is_estimate = False
        self.is_capped = False
        self.estimate: int | None = None  # when capped: the planner's estimate of all matching rows, if above the cap

    @cached_property
    def count(self) -> int:
        """Estimated, bounded or exact number of rows; see the class docstring."""
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        limited = queryset.order_by().values("pk")[: self.count_limit + 1]
        if not queryset.query.where and not queryset.query.distinct:
            estimate = estimated_row_count(queryset.model, using=queryset.db)
            if estimate is not None and estimate >= self.count_limit:
                self.is_estimate = True
                return estimate
            bounded: int | None = limited.count()  # a small table: counting it is cheap
        else:
            bounded = self._timed_count(limited)
        if bounded is None:
            bounded = planner_row_estimate(queryset) or 0
            self.is_estimate = True
        if bounded > self.count_limit:
            self.is_capped = True
            # For the "about N" the templates show; pagination stays within the first count_limit rows.
            estimate = planner_row_estimate(queryset)
            self.estimate = estimate if estimate is not None and estimate > self.count_limit else None
            return self.count_limit
        return bounded

    def _timed_count(self, limited: QuerySet) -> int | None:
        """``limited.count()`` under ``statement_timeout``; None when PostgreSQL cancelled it.

        The timeout is ``SET LOCAL`` inside a transaction of our own, so it ends with it. Inside a
        caller's transaction (tests, ``ATOMIC_REQUESTS``) the caller's settings are left alone and
        the count is only bounded by its ``LIMIT``. Other databases: a plain bounded count.
        """
        connection = connections[limited.db]
        if connection.vendor != "postgresql" or not self.count_timeout_ms or connection.in_atomic_block:
            return limited.count()
        try:
            with transaction.atomic(using=limited.db):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{self.count_timeout_ms}ms"])
                return limited.count()
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                raise
            return None


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """A ModelAdmin that can view but never add, change or delete — superusers included.

    For append-only or service-owned tables (reconciliation log, equity snapshots, alerts,
    positions): every write goes through the services, so the admin only browses. The change URL
    still answers GET with the read-only detail page; a POST to it, and any add or delete URL, is
    403 (Django's ``PermissionDenied``). ``delete_selected`` is removed from the actions.
    """

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class DateRangeFilter(admin.FieldListFilter):
    """A from/to date filter for a DateTimeField, plus quick links (no ``date_hierarchy``).

    Query parameters ``<field>_from`` and ``<field>_to`` are ISO dates (``2026-11-30``), both
    inclusive, in UTC: ``field >= from 00:00`` and ``field < (to + 1 day) 00:00``, an index range
    scan on ``created_at``. An ISO datetime is also accepted and used as is. A value that does not
    parse is reported by the admin as an invalid filter (``?e=1``).
    """

    template = "admin/date_range_filter.html"
    quick_links = (("Today", 0), ("Past 7 days", 6), ("Past 30 days", 29))

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.param_from = f"{field_path}_from"
        self.param_to = f"{field_path}_to"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.value_from = self._last(self.used_parameters.get(self.param_from))
        self.value_to = self._last(self.used_parameters.get(self.param_to))

    @staticmethod
    def _last(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            value = value[-1] if value else ""
        return str(value or "").strip()

    def expected_parameters(self) -> list[str | None]:
        return [self.param_from, self.param_to]

    @staticmethod
    def _parse(value: str, *, end: bool) -> datetime:
        """``2026-11-30`` → 2026-11-30 00:00 UTC (``end``: 2026-12-01 00:00, exclusive bound)."""
        try:
            day = date.fromisoformat(value)
        except ValueError:
            moment = datetime.fromisoformat(value)
            return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time.min, tzinfo=UTC)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        try:
            if self.value_from:
                queryset = queryset.filter(**{f"{self.field_path}__gte": self._parse(self.value_from, end=False)})
            if self.value_to:
                queryset = queryset.filter(**{f"{self.field_path}__lt": self._parse(self.value_to, end=True)})
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[Any]:
        today = timezone.now().astimezone(UTC).date()
        own = [self.param_from, self.param_to]
        yield {
            "selected": not (self.value_from or self.value_to),
            "query_string": changelist.get_query_string(remove=own),
            "display": "Any date",
        }
        for label, days_back in self.quick_links:
            start = (today - timedelta(days=days_back)).isoformat()
            yield {
                "selected": self.value_from == start and self.value_to == today.isoformat(),
                "query_string": changelist.get_query_string({self.param_from: start, self.param_to: today.isoformat()}),
                "display": label,
            }
        # The from/to form: every other current parameter travels as a hidden input.
        hidden = [(key, value) for key, value in changelist.params.items() if key not in own]
        yield {
            "form": True,
            "param_from": self.param_from,
            "param_to": self.param_to,
            "value_from": self.value_from,
            "value_to": self.value_to,
            "hidden": hidden,
        }
