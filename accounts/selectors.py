"""accounts selectors: which account a request means, and the user's accounts list.

Every read endpoint takes ``?account=<id>``: the id must be one of the requesting user's accounts
(another user's id, or an id that does not exist, is a 404 — never a 403, so ids reveal nothing).
Without the parameter the user's single account is meant; a user with several accounts gets a 400
that lists them; a user with no account yet (no sync so far) reads empty data.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import Account
from tradingsite.caching import cached_data

ACCOUNT_LIST_FIELDS = ("id", "server", "login", "currency")
ACCOUNT_REF_FIELDS = (*ACCOUNT_LIST_FIELDS, "currency_digits")
ACCOUNT_REFS_NAMESPACE = "accounts.refs"


def account_list(*, user_id: int) -> QuerySet[Account]:
    """Return the user's accounts, ordered by (server, login)."""
    return Account.objects.filter(user_id=user_id).order_by("server", "login", "id")


def account_refs(*, user_id: int) -> list[dict[str, Any]]:
    """Return the user's accounts as ``[{"id", "server", "login", "currency", "currency_digits"}, …]``
    through the per-user data cache (no SQL on a hit; a new account comes with a write, which bumps
    the user's generation)."""
    return cached_data(
        ACCOUNT_REFS_NAMESPACE,
        user_id=user_id,
        compute=lambda: list(account_list(user_id=user_id).values(*ACCOUNT_REF_FIELDS)),
        view="accounts:refs",
    )


def account_resolve(*, user_id: int, account: Any = None, field: str = "account") -> dict[str, Any] | None:
    """Return the account a request names as ``{"id", "server", "login", "currency", "currency_digits"}``,
    or None when the user has no account yet (no sync so far).

    ``account`` is the raw ``?account=`` value (an id, or None/"" when absent). Raises ``Http404``
    when it is not an integer id of one of the user's accounts, and ``ValidationError`` on ``field``
    (→ 400) when it is absent and the user has several accounts; the message lists them.
    """
    refs = account_refs(user_id=user_id)
    if account not in (None, ""):
        try:
            account_id = int(str(account).strip())
        except (TypeError, ValueError):
            raise Http404("No such account.") from None
        for ref in refs:
            if ref["id"] == account_id:
                return ref
        raise Http404("No such account.")
    if not refs:
        return None
    if len(refs) == 1:
        return refs[0]
    raise ValidationError({field: [several_accounts_message(refs)]})


def several_accounts_message(refs: list[dict[str, Any]]) -> str:
    """The 400 message for a user with several accounts who named none: lists id, server, login, currency."""
    listed = "; ".join(f"id {ref['id']}: {ref['server']} login {ref['login']} ({ref['currency']})" for ref in refs)
    return f"You hold several accounts: choose one with ?account=<id> ({listed})."


def account_ids(*, user_id: int) -> list[int]:
    """Return the ids of the user's accounts (cache warmers warm each), from :func:`account_refs`."""
    return [ref["id"] for ref in account_refs(user_id=user_id)]


def each_account(user_id: int) -> list[dict[str, Any]]:
    """``[{"account_id": id}, …]`` for each of the user's accounts: the ``warm_params`` of a hot read
    that is per account (``tradingsite.caching.cached_read``)."""
    return [{"account_id": account_id} for account_id in account_ids(user_id=user_id)]


class AccountFigures(TypedDict):
    """An account's currency, equity and balance (account currency) as its latest sync left them."""

    currency: str
    equity: Decimal | None
    balance: Decimal | None
    last_sync_at: datetime | None


def account_latest_figures(*, user_id: int, account_id: int | None = None) -> AccountFigures | None:
    """Return ``{"currency", "equity", "balance", "last_sync_at"}`` of the account as its latest sync left
    it, or None before its first sync (1 query).

    Every accepted sync writes these on the ``Account`` row (``accounts.services.account_apply_sync``,
    money in the account currency, quantized to its ``currency_digits``). ``account_id`` None: the
    user's most recently synced account.
    """
    accounts = Account.objects.filter(user_id=user_id, last_sync_at__isnull=False)
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    return accounts.order_by("-last_sync_at", "-id").values("currency", "equity", "balance", "last_sync_at").first()


DEFAULT_SYNC_STALE_SECONDS = 60  # guards.models.GuardConfig.sync_stale_seconds's default


def account_overview(*, user_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Return the user's accounts for ``GET accounts/`` (1 query), ordered by (server, login).

    Each row: the descriptive fields, the latest sync's figures (money quantized to the account's
    ``currency_digits``), ``margin_mode`` as a name, ``sync_age_seconds`` and ``status``: ``idle``
    before the first sync, ``stale`` when the last sync is older than the account's
    ``sync_stale_seconds`` (its guard config; 60 s before one exists), else ``live``.
    """
    now = now or timezone.now()
    rows = account_list(user_id=user_id).annotate(stale_after=F("guard_config__sync_stale_seconds"))
    result = []
    for account in rows:
        age = int((now - account.last_sync_at).total_seconds()) if account.last_sync_at else None
        stale_after = account.stale_after or DEFAULT_SYNC_STALE_SECONDS
        if age is None:
            status = "idle"
        elif age > stale_after:
            status = "stale"
        else:
            status = "live"
        row = {name: getattr(account, name) for name in OVERVIEW_FIELDS}
        for name in MONEY_FIELDS:
            row[name] = account.quantize(row[name])
        row["margin_mode"] = Account.MarginMode(account.margin_mode).name.lower()
        result.append({**row, "sync_age_seconds": max(age, 0) if age is not None else None, "status": status})
    return result


OVERVIEW_FIELDS = (
    "id",
    "server",
    "login",
    "name",
    "company",
    "currency",
    "currency_digits",
    "margin_mode",
    "leverage",
    "server_utc_offset",
    "balance",
    "equity",
    "margin",
    "margin_free",
    "credit",
    "margin_level",
    "broker_time",
    "last_sync_at",
)
MONEY_FIELDS = ("balance", "equity", "margin", "margin_free", "credit")
