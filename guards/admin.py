"""Guards admin: editable thresholds, the peak-equity reset action, read-only history.

- ``GuardConfig``: editable; the form validates exactly as the API does (the model's ``clean`` and
  check constraints via ``full_clean``), and the save goes through ``guards.services.guard_config_update``.
- ``GuardState``: read-only, with the "Reset peak equity" action (also offered on ``GuardConfig``),
  which calls :func:`guards.services.peak_equity_reset` — the service writes the ``guard`` log row.
- ``EquitySnapshot``, ``DrawdownAlert``, ``MarketAlert``: read-only, bounded pagination.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from guards import services
from guards.models import CONFIG_FIELDS, DrawdownAlert, EquitySnapshot, GuardConfig, GuardState, MarketAlert
from positions.admin import SymbolFilter
from tradingsite.admin import LargeTablePaginator, ReadOnlyModelAdmin

RESET_PERMISSION = "guards.change_guardstate"


def reset_peak_equity_for(request: HttpRequest, account_ids: Iterable[int]) -> tuple[int, list[str]]:
    """Reset the peak equity of each account through :func:`guards.services.peak_equity_reset`.

    ``actor`` is ``"admin:<operator username>"`` so the ``guard`` log row says who did it. Accounts
    are processed in id order, each in the service's own transaction. Returns (number reset, error
    messages); an account the service refuses (e.g. no equity seen yet) is reported, not raised.
    """
    actor = f"admin:{request.user.get_username()}"
    done, errors = 0, []
    for account_id in sorted(set(account_ids)):
        try:
            services.peak_equity_reset(account_id=account_id, actor=actor)
        except (ValidationError, ObjectDoesNotExist) as exc:
            detail = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            errors.append(f"account {account_id}: {detail or 'nothing to reset'}")
        else:
            done += 1
    return done, errors


class ResetPeakEquityMixin(admin.ModelAdmin):
    """Adds the "Reset peak equity" action, allowed to users holding ``guards.change_guardstate``."""

    def has_reset_peak_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESET_PERMISSION)

    @admin.action(
        description="Reset peak equity to current equity (writes a guard log row)", permissions=["reset_peak"]
    )
    def reset_peak_equity(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        """First an intermediate page naming the accounts and their current peaks; the reset runs only when
        the operator confirms it there (``post=yes``), as Django's own "delete selected" does."""
        if request.POST.get("post") != "yes":
            selected = list(queryset.select_related("user", "account").order_by("user_id", "account_id"))
            peaks = dict(
                GuardState.objects.filter(account_id__in=[obj.account_id for obj in selected]).values_list(
                    "account_id", "peak_equity"
                )
            )
            context = {
                **self.admin_site.each_context(request),
                "title": "Reset peak equity?",
                "opts": self.model._meta,
                "rows": [(obj.pk, f"{obj.user} — {obj.account}", peaks.get(obj.account_id)) for obj in selected],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/guards/reset_peak_equity_confirmation.html", context)
        done, errors = reset_peak_equity_for(request, queryset.values_list("account_id", flat=True))
        if done:
            self.message_user(request, f"Peak equity reset for {done} account(s).", messages.SUCCESS)
        for error in errors:
            self.message_user(request, f"Peak equity not reset for {error}", messages.ERROR)
        return None


@admin.register(GuardConfig)
class GuardConfigAdmin(ResetPeakEquityMixin, admin.ModelAdmin):
    """Per-account thresholds, editable. Validation = the API's: 0 < warning < critical ≤ 100, drawdown ≥ 1."""

    list_display = ("user", "account", *CONFIG_FIELDS, "updated_at")
    list_select_related = ("user", "account")
    search_fields = ("=user__username",)
    raw_id_fields = ("account",)
    readonly_fields = ("user", "updated_at")
    actions = ("reset_peak_equity",)

    def get_readonly_fields(self, request: HttpRequest, obj: GuardConfig | None = None) -> tuple[str, ...]:
        # A config belongs to one account for life: the account is chosen on add only, the user follows it.
        return ("user", "account", "updated_at") if obj is not None else ("user", "updated_at")

    def save_model(self, request: HttpRequest, obj: GuardConfig, form, change: bool) -> None:
        """Save through :func:`guards.services.guard_config_update`, as ``PATCH guards/config/`` does.

        The form has already run the model's ``full_clean`` (``GuardConfig.clean`` and the check
        constraints), so invalid thresholds never get here; the service validates again, writes, and
        bumps the user's cache generation so ``guards/status/`` shows the new thresholds at once.
        """
        fields = {name: form.cleaned_data[name] for name in CONFIG_FIELDS if name in form.cleaned_data}
        saved = services.guard_config_update(user_id=obj.account.user_id, account_id=obj.account_id, **fields)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at
        obj._state.adding = False


@admin.register(GuardState)
class GuardStateAdmin(ResetPeakEquityMixin, ReadOnlyModelAdmin):
    """Each account's persistent peak equity; changed only by syncs and the reset action."""

    list_display = ("user", "account", "peak_equity", "peak_equity_at", "peak_reset_at", "updated_at")
    list_select_related = ("user", "account")
    search_fields = ("=user__username",)
    raw_id_fields = ("user", "account")
    actions = ("reset_peak_equity",)


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(ReadOnlyModelAdmin):
    """Equity history per sync (read-only)."""

    list_display = (
        "broker_time",
        "user",
        "currency",
        "balance",
        "equity",
        "peak_equity",
        "drawdown_pct",
        "drawdown_level",
        "open_positions",
    )
    list_filter = ("drawdown_level",)
    list_select_related = ("user",)
    search_fields = ("=user__username",)
    raw_id_fields = ("user",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    ordering = ("-created_at", "-id")
    sortable_by = ("broker_time",)


class OpenAlertFilter(admin.SimpleListFilter):
    """Open (``resolved_at`` is null) or resolved episodes."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class AlertAdmin(ReadOnlyModelAdmin):
    """Shared read-only admin of the stateful alerts (one row per episode).

    The list's "level now" column reads "resolved (was critical)" for a closed episode, so a
    resolved alert never reads as a current critical one; ``max_level`` keeps the worst level seen.
    """

    @admin.display(description="level now", ordering="level")
    def level_now(self, obj: DrawdownAlert | MarketAlert) -> str:
        if obj.resolved_at is not None:
            return f"resolved (was {obj.level})"
        return obj.level

    list_select_related = ("user",)
    search_fields = ("=user__username",)
    raw_id_fields = ("user",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = LargeTablePaginator
    ordering = ("-created_at", "-id")


@admin.register(DrawdownAlert)
class DrawdownAlertAdmin(AlertAdmin):
    """Drawdown episodes (read-only)."""

    list_display = (
        "opened_at",
        "user",
        "level_now",
        "max_level",
        "value_pct",
        "max_value_pct",
        "threshold_pct",
        "equity",
        "peak_equity",
        "below_min_equity",
        "escalated_at",
        "resolved_at",
    )
    list_filter = (OpenAlertFilter, "level", "max_level", "below_min_equity")


@admin.register(MarketAlert)
class MarketAlertAdmin(AlertAdmin):
    """Price-gap, spread and stale-quote episodes per symbol (read-only)."""

    list_display = (
        "opened_at",
        "user",
        "symbol",
        "condition",
        "level_now",
        "max_level",
        "value_pct",
        "threshold_pct",
        "bid",
        "ask",
        "reference_price",
        "escalated_at",
        "resolved_at",
    )
    list_filter = (OpenAlertFilter, "condition", "level", SymbolFilter)


# Loss rules and per-instrument guard settings live in their own module (registered on import).
from guards import rule_admin  # noqa: E402, F401
