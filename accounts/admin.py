"""accounts admin: operators see every account and may correct its trade server's UTC offset and names."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest

from accounts.models import Account
from tradingsite.caching import bump_and_warm_user


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """MT5 accounts. Editable: name, company, margin mode, leverage, currency digits and the trade
    server's UTC offset (minutes); the identity (user, server, login) and the synced figures are read-only."""

    list_display = (
        "id",
        "user",
        "server",
        "login",
        "currency",
        "equity",
        "balance",
        "server_utc_offset",
        "last_sync_at",
    )
    list_select_related = ("user",)
    list_filter = ("server",)
    search_fields = ("=user__username", "=login", "server")
    raw_id_fields = ("user",)
    readonly_fields = (
        "balance",
        "equity",
        "margin",
        "margin_free",
        "credit",
        "margin_level",
        "broker_time",
        "last_sync_at",
        "sync_count",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> tuple[str, ...]:
        identity = ("user", "server", "login", "currency") if obj is not None else ()
        return (*identity, *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: Account, form, change: bool) -> None:
        """Save, then refresh the owner's cached reads (the offset and digits change what they show).

        An edit writes only the fields the operator changed (``form.changed_data``): the row was read at
        the start of the request, and a full-row save would write back the balance, equity and sync
        count of that moment over a sync that committed since. An edit that changes nothing writes nothing.
        """
        if change:
            fields = [name for name in form.changed_data if name not in self.get_readonly_fields(request, obj)]
            if not fields:
                return
            obj.save(update_fields=[*fields, "updated_at"])
        else:
            super().save_model(request, obj, form, change)
        user_id = obj.user_id
        transaction.on_commit(lambda: bump_and_warm_user(user_id))
