"""Positions admin: the ledger (browsable, read-only) and the instrument table (editable) — for operators.

Ledger rows are written by the sync and the registration services only, so the admin browses them:
filters by status, symbol, origin and matched, and each row links to its reconciliation log rows.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from positions.models import Deal, Instrument, Position
from tradingsite.admin import LargeTablePaginator, ReadOnlyModelAdmin


class SymbolFilter(admin.SimpleListFilter):
    """Filter by symbol, offering the instrument table's symbols.

    The choices come from ``Instrument`` (a few dozen rows), not from ``SELECT DISTINCT symbol`` over
    the positions table, which Django's default ``AllValuesFieldListFilter`` would run.
    """

    title = "symbol"
    parameter_name = "symbol"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(symbol, symbol) for symbol in Instrument.objects.order_by("symbol").values_list("symbol", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(symbol=self.value())
        return queryset


@admin.register(Position)
class PositionAdmin(ReadOnlyModelAdmin):
    """The ledger, read-only; each row links to its reconciliation log rows (same user and ticket)."""

    list_display = (
        "ticket",
        "user",
        "symbol",
        "side",
        "volume",
        "status",
        "origin",
        "matched",
        "divergences",
        "price_open",
        "price_current",
        "profit",
        "opened_at",
        "closed_at",
        "log_link",
    )
    list_filter = ("status", SymbolFilter, "origin", "matched")
    search_fields = ("=ticket", "=user__username")
    search_help_text = "Ticket (exact) or username (exact)."
    list_select_related = ("user",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    ordering = ("-created_at", "-id")
    raw_id_fields = ("user",)
    # The detail page shows the reasons as words too (``divergences``), not the stored JSON list.
    exclude = ("divergence_reasons",)
    readonly_fields = ("divergences", "log_link")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """A number → ``ticket = n``; anything else → the user with exactly that username. No joins, no icontains."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(ticket=int(term)), False
        users = get_user_model().objects.filter(username=term).values("pk")
        return queryset.filter(user_id__in=users), False

    @admin.display(description="divergence reasons")
    def divergences(self, obj: Position) -> str:
        """The active divergence reasons as words ("entry slippage, sl mismatch"), not the stored JSON list."""
        return ", ".join(str(reason).replace("_", " ") for reason in obj.divergence_reasons or []) or "-"

    @admin.display(description="Log")
    def log_link(self, obj: Position) -> str:
        """Link to this position's reconciliation log rows: the log changelist filtered by user and ticket."""
        url = reverse("admin:reconciliation_reconciliationlog_changelist")
        query = urlencode({"user__id__exact": obj.user_id, "ticket": obj.ticket})
        return format_html('<a href="{}?{}">log rows</a>', url, query)


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    """The instrument table, editable: contract size, digits, point, pip size, currencies, volume step.

    The form runs the model's validation (``full_clean``) including the check constraints (symbol upper
    case, positive sizes), so a bad value is a form error, never a database error.
    """

    list_display = (
        "symbol",
        "description",
        "contract_size",
        "digits",
        "point",
        "pip_size",
        "currency_base",
        "currency_profit",
        "volume_step",
        "volume_min",
        "updated_at",
    )
    search_fields = ("^symbol",)
    ordering = ("symbol",)
    readonly_fields = ("updated_at",)


@admin.register(Deal)
class DealAdmin(ReadOnlyModelAdmin):
    """MT5 deals as the syncs stored them (append-only): trades and balance operations."""

    list_display = (
        "ticket",
        "user",
        "account",
        "time",
        "symbol",
        "type",
        "entry",
        "reason",
        "volume",
        "price",
        "profit",
        "swap",
        "commission",
        "fee",
        "position_identifier",
        "position",
    )
    list_filter = ("type", "entry")
    search_fields = ("=ticket", "=position_identifier")
    search_help_text = "Deal ticket or position identifier (exact)."
    list_select_related = ("user", "account")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    ordering = ("-time", "-id")
    raw_id_fields = ("user", "account", "position")
