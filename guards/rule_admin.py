"""Admin of loss rules and per-instrument guard settings (editable; the forms validate as the API does), and
the rolling spread windows (read-only).

A loss rule's definition is validated by its model's ``clean`` (= ``guards.loss_rules.LossRule.errors``);
its state and latest result are read-only here. The "Apply preset" actions replace an account's preset
rules through ``guards.rule_services.loss_rules_apply_preset`` (the account's initial capital must be set).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from guards import loss_rules
from guards.models import InstrumentGuardSetting, LossRule, SymbolSpread
from guards.rule_services import loss_rules_apply_preset
from tradingsite.admin import ReadOnlyModelAdmin


def _apply_preset_action(preset: str):
    def apply(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
        for user_id, account_id in sorted(set(queryset.values_list("user_id", "account_id"))):
            try:
                loss_rules_apply_preset(user_id=user_id, account_id=account_id, preset=preset)
            except ValidationError as exc:
                modeladmin.message_user(request, f"account {account_id}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"account {account_id}: {preset} applied.", messages.SUCCESS)

    apply.__name__ = f"apply_{preset}"
    return admin.action(description=f"Apply preset {preset} to the selected rules' accounts")(apply)


@admin.register(LossRule)
class LossRuleAdmin(admin.ModelAdmin):
    """Per-account loss rules: definition editable, state and latest result read-only."""

    list_display = ("name", "user", "account", "kind", "anchor", "basis", "amount", "percent", "reset_time",
                    "timezone", "enabled", "level", "limit_equity", "breached_at", "preset")  # fmt: skip
    list_filter = ("kind", "level", "enabled", "preset")
    list_select_related = ("user", "account")
    search_fields = ("=user__username", "=account__login", "name")
    raw_id_fields = ("user", "account")
    readonly_fields = ("preset", "source", *LossRule.STATE_FIELDS, *LossRule.RESULT_FIELDS, "created_at",
                       "updated_at")  # fmt: skip
    actions = [_apply_preset_action(name) for name in sorted(loss_rules.PRESETS)]


@admin.register(InstrumentGuardSetting)
class InstrumentGuardSettingAdmin(admin.ModelAdmin):
    """Per-account, per-symbol pip size, tolerances, spread thresholds and sessions (empty = default)."""

    list_display = ("symbol", "user", "account", "pip_size", "entry_tolerance_pips", "entry_tolerance_pct",
                    "spread_unit", "spread_warning", "spread_critical", "updated_at")  # fmt: skip
    list_select_related = ("user", "account")
    search_fields = ("=user__username", "=account__login", "symbol")
    raw_id_fields = ("user", "account")
    readonly_fields = ("updated_at",)


@admin.register(SymbolSpread)
class SymbolSpreadAdmin(ReadOnlyModelAdmin):
    """Each account's rolling spread window per symbol (written by the syncs only): samples and median."""

    list_display = ("symbol", "user", "account", "samples", "median", "point", "updated_at")
    list_select_related = ("user", "account")
    search_fields = ("=user__username", "=account__login", "symbol")
