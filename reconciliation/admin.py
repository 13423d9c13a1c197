"""Reconciliation admin: the append-only log, browsable at a million rows (SPEC §8, PITFALLS §7).

Operators open it when a trader reports "my position vanished" and must find the story in seconds.
Everything here is chosen so that a changelist page runs a fixed, small number of index-friendly
queries whatever the table size:

- read-only for everyone, superusers included (no add/change/delete, no ``delete_selected``);
- :class:`LargeTablePaginator`: no ``COUNT(*)`` over the table — an estimate from ``pg_class``
  when unfiltered, otherwise a count bounded by ``LIMIT`` and, on PostgreSQL, by a statement
  timeout (then the planner's estimate); ``show_full_result_count = False``;
- filters on choice/boolean columns and a date range (no ``date_hierarchy``, no FK filters, no facets);
- search by exact ticket, symbol prefix or exact username (no ``icontains`` across joins);
- explicit ``list_select_related``, sorting only by time, ``details``/``message`` deferred on the list;
- a streaming CSV export of the filtered rows, as an action and as a changelist button.

The shared pieces (:class:`ReadOnlyModelAdmin`, :class:`LargeTablePaginator`) are reused by the
positions and guards admins.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from reconciliation.models import ReconciliationLog

# ---------------------------------------------------------------------------------------------
# Shared building blocks
# ---------------------------------------------------------------------------------------------


def estimated_row_count(model: type[Model], *, using: str = "default") -> int | None:
    """Return PostgreSQL's estimate of the number of rows in ``model``'s table, or None.

    Same arithmetic as the planner: ``reltuples / relpages × current pages`` (pages from
    ``pg_relation_size / block_size``), so rows inserted since the last ANALYZE are mostly counted.
    None on other databases or when the table was never analyzed (``reltuples = -1``, PG 14+).
    One indexed catalog lookup, independent of table size.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT CASE
                     WHEN c.reltuples < 0 THEN NULL
                     WHEN c.relpages = 0 THEN c.reltuples
                     ELSE c.reltuples / c.relpages
                          * (pg_relation_size(c.oid) / current_setting('block_size')::integer)
                   END
            FROM pg_class c
            WHERE c.oid = to_regclass(%s)
            """,
            [connection.ops.quote_name(model._meta.db_table)],
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
    """A paginator that never runs an unbounded ``COUNT(*)`` (PITFALLS §7).

    - Unfiltered queryset on PostgreSQL: :func:`estimated_row_count` (``is_estimate`` = True) when
      the estimate is at least ``count_limit``; smaller tables are counted exactly.
    - Otherwise a bounded count, ``SELECT COUNT(*) FROM (SELECT id … LIMIT count_limit + 1)``: it
      stops after ``count_limit`` matching rows; past it the count is reported as ``count_limit``
      and ``is_capped`` is True (the template shows "10,000+").
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
            bounded = limited.count()  # a small table: counting it is cheap
        else:
            bounded = self._timed_count(limited)
        if bounded is None:
            bounded = planner_row_estimate(queryset) or 0
            self.is_estimate = True
        if bounded > self.count_limit:
            self.is_capped = True
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

    template = "admin/reconciliation/date_range_filter.html"
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

    def expected_parameters(self) -> list[str]:
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

    def choices(self, changelist: ChangeList) -> Iterator[dict]:
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


# ---------------------------------------------------------------------------------------------
# Streaming CSV export
# ---------------------------------------------------------------------------------------------

#: (CSV header, ORM path) of the exported columns, in order.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("created_at", "created_at"),
    ("username", "user__username"),
    ("user_id", "user_id"),
    ("event_type", "event_type"),
    ("status", "status"),
    ("sync_id", "sync_id"),
    ("position_id", "position_id"),
    ("ticket", "ticket"),
    ("symbol", "symbol"),
    ("side", "side"),
    ("volume", "volume"),
    ("price_open", "price_open"),
    ("price_current", "price_current"),
    ("matched", "matched"),
    ("divergence_reason", "divergence_reason"),
    ("slippage_pips", "slippage_pips"),
    ("close_reason", "close_reason"),
    ("close_price", "close_price"),
    ("realized_pnl", "realized_pnl"),
    ("duration_ms", "duration_ms"),
    ("broker_time", "broker_time"),
    ("message", "message"),
    ("details", "details"),
)
CSV_CHUNK_ROWS = 2000
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A write-only file whose ``write`` returns the line, for ``csv.writer`` in a generator."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: Any) -> Any:
    """One cell: times ISO 8601 UTC, Decimals as exact strings, JSON compact, None empty.

    Free text starting with ``= + - @`` is prefixed with ``'`` so a spreadsheet never evaluates a
    log message as a formula (CSV injection); numbers are not text and are left alone.
    """
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def iter_log_csv(queryset: QuerySet) -> Iterator[str]:
    """Yield the CSV lines (header first) of ``queryset``'s log rows, newest first.

    Reads with ``.iterator(chunk_size=2000)`` — a server-side cursor on PostgreSQL — so memory stays
    flat whatever the number of rows; nothing is accumulated.
    """
    writer = csv.writer(_Echo())
    yield writer.writerow([header for header, _ in CSV_COLUMNS])
    rows = (
        queryset.order_by("-created_at", "-id")
        .values_list(*(orm_path for _, orm_path in CSV_COLUMNS))
        .iterator(chunk_size=CSV_CHUNK_ROWS)
    )
    for row in rows:
        yield writer.writerow([_csv_cell(value) for value in row])


def log_csv_response(queryset: QuerySet) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` (text/csv attachment) streaming :func:`iter_log_csv`."""
    response = StreamingHttpResponse(iter_log_csv(queryset), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="reconciliation-logs-{stamp}.csv"'
    return response


# ---------------------------------------------------------------------------------------------
# ReconciliationLog admin
# ---------------------------------------------------------------------------------------------


class LogChangeList(ChangeList):
    """The log changelist: the large columns (``details``, ``message``) are not read for the list."""

    def get_queryset(self, request: HttpRequest, *args: Any, **kwargs: Any) -> QuerySet:
        return super().get_queryset(request, *args, **kwargs).defer("details", "message")


@admin.register(ReconciliationLog)
class ReconciliationLogAdmin(ReadOnlyModelAdmin):
    """Read-only audit trail; fast on a million rows (see the module docstring)."""

    list_display = (
        "time",
        "user",
        "event_type",
        "status",
        "symbol",
        "ticket",
        "matched",
        "divergence_reason",
        "slippage_pips",
    )
    list_display_links = ("time",)
    list_filter = (
        "event_type",
        "status",
        "divergence_reason",
        "matched",
        ("created_at", DateRangeFilter),
    )
    # Shown as the search box; the lookups themselves are in get_search_results.
    search_fields = ("=ticket", "^symbol", "=user__username")
    search_help_text = (
        "A number searches the ticket (exact); a word searches the symbol (prefix, e.g. EUR) or the username "
        "(exact). Prefix with ticket:, symbol: or user: to choose."
    )
    list_select_related = ("user",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    list_per_page = 100
    ordering = ("-created_at", "-id")
    sortable_by = ("time",)  # only the indexed order; other columns would sort the whole table
    raw_id_fields = ("user", "position")
    actions = ("export_csv",)
    fieldsets = (
        ("Event", {"fields": ("time", "user", "event_type", "status", "sync_id", "message", "story_link")}),
        (
            "Position",
            {
                "fields": (
                    "position_link",
                    "ticket",
                    "symbol",
                    "side",
                    "volume",
                    "price_open",
                    "price_current",
                    "matched",
                    "divergence_reason",
                    "slippage_pips",
                )
            },
        ),
        ("Close", {"fields": ("close_reason", "close_price", "realized_pnl")}),
        ("Sync", {"fields": ("broker_time", "duration_ms")}),
        ("Details: expected vs actual", {"fields": ("details_table", "details_json")}),
    )
    readonly_fields = (
        "time",
        "user",
        "event_type",
        "status",
        "sync_id",
        "message",
        "story_link",
        "position_link",
        "ticket",
        "symbol",
        "side",
        "volume",
        "price_open",
        "price_current",
        "matched",
        "divergence_reason",
        "slippage_pips",
        "close_reason",
        "close_price",
        "realized_pnl",
        "broker_time",
        "duration_ms",
        "details_table",
        "details_json",
    )

    # -- changelist ---------------------------------------------------------------------------
    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LogChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """Search on indexed columns only; never ``icontains``, never a join.

        - ``ticket:123`` or a bare number → ``ticket = 123`` (index ``reclog_ticket``);
        - ``symbol:EUR`` → ``symbol LIKE 'EUR%'`` (upper-cased: symbols are stored upper case);
        - ``user:alice`` → ``user_id IN (SELECT id FROM auth_user WHERE username = 'alice')``,
          which then walks the ``(user, created_at, id)`` index;
        - a bare word → that user's rows when a user has exactly this username, else a symbol prefix.
        Returns ``(queryset, False)``: no lookup here can duplicate rows.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        kind, _, value = term.partition(":")
        kind = kind.strip().lower()
        if value and kind in {"ticket", "symbol", "user"}:
            value = value.strip()
        else:
            kind, value = "", term
        users = get_user_model().objects.filter(username=value)
        if kind == "ticket" or (not kind and value.isdigit()):
            if not value.isdigit():
                return queryset.none(), False
            return queryset.filter(ticket=int(value)), False
        if kind == "symbol":
            return queryset.filter(symbol__startswith=value.upper()), False
        if kind == "user":
            return queryset.filter(user_id__in=users.values("pk")), False
        # A bare word: an exact username wins (one unique-index lookup), else it is a symbol prefix.
        # Resolving the user first keeps the main query a single-column filter instead of an OR.
        user_id = users.values_list("pk", flat=True).first()
        if user_id is not None:
            return queryset.filter(user_id=user_id), False
        return queryset.filter(symbol__startswith=value.upper()), False

    @admin.action(description="Export selected rows to CSV (streamed)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        """Stream the chosen rows as CSV. With "select all", that is every row of the current filter."""
        return log_csv_response(queryset)

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        export = path(
            "export-csv/",
            self.admin_site.admin_view(self.export_filtered_csv_view),
            name="{}_{}_export_csv".format(*info),
        )
        return [export, *super().get_urls()]

    def export_filtered_csv_view(self, request: HttpRequest) -> StreamingHttpResponse | HttpResponseRedirect:
        """``GET export-csv/?<changelist query>``: stream every row matching the changelist's filters and search.

        The changelist's "Export filtered rows (CSV)" button links here with its own query string,
        so what is exported is exactly what the operator is looking at, across all pages.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            changelist_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            return HttpResponseRedirect(f"{changelist_url}?e=1")
        return log_csv_response(changelist.queryset)

    @admin.display(description="Time (UTC)", ordering="created_at")
    def time(self, obj: ReconciliationLog) -> str:
        """``created_at`` to the millisecond in UTC: events of one sync are apart by milliseconds."""
        return obj.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    # -- detail page --------------------------------------------------------------------------
    @admin.display(description="Position")
    def position_link(self, obj: ReconciliationLog) -> str:
        """A link to the ledger position this row is about (positions admin), or "-"."""
        if obj.position_id is None:
            return "-"
        url = reverse("admin:positions_position_change", args=[obj.position_id])
        return format_html('<a href="{}">{}</a>', url, obj.position)

    @admin.display(description="Story")
    def story_link(self, obj: ReconciliationLog) -> str:
        """Links to the other rows of the same ticket (the position's story) and of the same sync."""
        changelist = reverse("admin:reconciliation_reconciliationlog_changelist")
        links = []
        if obj.ticket is not None:
            query = urlencode({"user__id__exact": obj.user_id, "ticket": obj.ticket})
            links.append((f"{changelist}?{query}", f"All events of ticket {obj.ticket}"))
        query = urlencode({"user__id__exact": obj.user_id, "sync_id": obj.sync_id})
        links.append((f"{changelist}?{query}", "All events of this sync"))
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="Expected vs actual")
    def details_table(self, obj: ReconciliationLog) -> str:
        """``details`` as an HTML table: one row per value, expected / actual / delta columns.

        Understands ``{"expected": {...}, "actual": {...}, "delta": {...}}``, the same shape nested
        per divergence reason (``{"entry_slippage": {"expected": ..., "actual": ...}}``), and falls
        back to a key / value table for anything else (e.g. a sync summary).
        """
        details = obj.details
        if not details:
            return "-"
        if not isinstance(details, dict):
            return _json_pre(details)
        sections = _expected_actual_sections(details)
        if sections:
            return format_html_join("", "{}", ((_expected_actual_table(title, part),) for title, part in sections))
        rows = ((key, _render_value(value)) for key, value in sorted(details.items()))
        return format_html(
            '<table class="details-table"><thead><tr><th>Key</th><th>Value</th></tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="Raw JSON")
    def details_json(self, obj: ReconciliationLog) -> str:
        """``details`` pretty-printed (sorted keys, 2-space indent)."""
        return _json_pre(obj.details)


def _json_pre(value: Any) -> str:
    return format_html(
        '<pre style="white-space: pre-wrap; margin: 0">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, default=str),
    )


def _render_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


_COMPARE_KEYS = ("expected", "actual")


def _expected_actual_sections(details: dict) -> list[tuple[str, dict]]:
    """Split ``details`` into (title, {"expected": …, "actual": …, …}) parts, or [] if not that shape."""
    if any(key in details for key in _COMPARE_KEYS):
        return [("", details)]
    sections = [
        (str(key), value)
        for key, value in details.items()
        if isinstance(value, dict) and any(k in value for k in _COMPARE_KEYS)
    ]
    return sorted(sections)


def _expected_actual_table(title: str, part: dict) -> str:
    expected, actual = part.get("expected"), part.get("actual")
    delta = part.get("delta", part.get("deltas"))
    if isinstance(expected, dict) or isinstance(actual, dict):
        expected = expected if isinstance(expected, dict) else {}
        actual = actual if isinstance(actual, dict) else {}
        delta = delta if isinstance(delta, dict) else {}
        keys = list(dict.fromkeys([*expected, *actual, *delta]))
        rows: Iterable = (
            (key, _render_value(expected.get(key)), _render_value(actual.get(key)), _render_value(delta.get(key)))
            for key in keys
        )
    else:
        rows = [("value", _render_value(expected), _render_value(actual), _render_value(delta))]
    extra = {k: v for k, v in part.items() if k not in {"expected", "actual", "delta", "deltas"}}
    caption = format_html("<caption>{}</caption>", title) if title else ""
    extra_html = format_html('<p class="help">{}</p>', json.dumps(extra, sort_keys=True, default=str)) if extra else ""
    return format_html(
        '<table class="details-table">{}<thead><tr><th>Field</th><th>Expected</th><th>Actual</th><th>Delta</th>'
        "</tr></thead><tbody>{}</tbody></table>{}",
        caption,
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        extra_html,
    )
