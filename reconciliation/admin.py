"""Reconciliation admin: the append-only log, browsable at a million rows.

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

The shared pieces (:class:`~tradingsite.admin.ReadOnlyModelAdmin`, :class:`~tradingsite.admin.LargeTablePaginator`,
:class:`~tradingsite.admin.DateRangeFilter`) live in :mod:`tradingsite.admin`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from reconciliation.models import (
    LOG_CLOSE_FIELDS,
    LOG_EVENT_FIELDS,
    LOG_FIELDS,
    LOG_POSITION_FIELDS,
    LOG_SYNC_FIELDS,
    ReconciliationLog,
)
from tradingsite.admin import DateRangeFilter, LargeTablePaginator, ReadOnlyModelAdmin

# ---------------------------------------------------------------------------------------------
# Streaming CSV export
# ---------------------------------------------------------------------------------------------

#: (CSV header, ORM path) of the exported columns, in order: the keys, then every recorded column.
CSV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "id"),
    ("created_at", "created_at"),
    ("username", "user__username"),
    ("user_id", "user_id"),
    ("position_id", "position_id"),
    *((name, name) for name in LOG_FIELDS),
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


#: The detail page's sections (title, fields): the recorded columns in their groups, around the computed ones.
DETAIL_SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Event", ("time", "user", *LOG_EVENT_FIELDS, "message", "story_link")),
    ("Position", ("position_link", *LOG_POSITION_FIELDS)),
    ("Close", LOG_CLOSE_FIELDS),
    ("Sync", LOG_SYNC_FIELDS),
    ("Details: expected vs actual", ("details_table", "details_json")),
)


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
    fieldsets = tuple((title, {"fields": fields}) for title, fields in DETAIL_SECTIONS)
    readonly_fields = tuple(name for _title, fields in DETAIL_SECTIONS for name in fields)

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
        sync_params: dict[str, Any] = {"user__id__exact": obj.user_id, "sync_id": obj.sync_id}
        query = urlencode(sync_params)
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
