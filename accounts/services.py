"""accounts services: find or create the account a sync names, lock it, and store its latest figures.

An account is identified by (user, trade server, login). A sync naming an unseen (server, login) of
the user creates the account; nothing is inherited from the user's other accounts (peak, quotes,
positions, guard config all start afresh).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from accounts.models import Account
from accounts.selectors import account_resolve
from tradingsite.db import WriteBatch

# account_info() fields copied onto the account by every sync (money in the account currency).
SYNC_FIELDS = ("balance", "equity", "margin", "margin_free", "credit", "margin_level")
DESCRIPTIVE_FIELDS = ("name", "company", "currency", "currency_digits", "margin_mode", "leverage", "server_utc_offset")


def account_get_or_create(*, user_id: int, server: str, login: int, defaults: dict[str, Any] | None = None) -> Account:
    """Return the user's account (``server``, ``login``), creating it with ``defaults`` when unseen.

    A concurrent creation of the same account is absorbed (the unique (user, server, login)
    constraint fails inside a savepoint and the existing row is read).
    """
    found = Account.objects.filter(user_id=user_id, server=server, login=login).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Account.objects.create(user_id=user_id, server=server, login=login, **(defaults or {}))
    except IntegrityError:
        return Account.objects.get(user_id=user_id, server=server, login=login)


def account_lock(account: Account) -> Account:
    """Lock the account row for the rest of the transaction (serializes the account's syncs) and return
    it freshly read. On SQLite the IMMEDIATE transaction already serializes writers."""
    queryset = Account.objects.filter(pk=account.pk)
    if connection.features.has_select_for_update:
        # FOR NO KEY UPDATE: serializes writers of the account without blocking inserts that reference it
        # (their foreign-key checks take FOR KEY SHARE, which only FOR UPDATE would conflict with).
        queryset = queryset.select_for_update(no_key=True)
    return queryset.get()


def account_for_sync(*, user_id: int, info: dict[str, Any]) -> Account:
    """Find or create the account a sync's ``account`` object names, lock it, and return it.

    ``info`` is the validated ``account_info()`` dict (``server``, ``login``, ``currency`` …). A new
    account takes its descriptive fields from ``info``; an existing one keeps them until
    :func:`account_apply_sync` stores the sync's values.
    """
    defaults = {name: info[name] for name in DESCRIPTIVE_FIELDS if info.get(name) is not None}
    account = account_get_or_create(user_id=user_id, server=info["server"], login=info["login"], defaults=defaults)
    return account_lock(account)


def account_apply_sync(account: Account, *, info: dict[str, Any], broker_time: datetime, now: datetime) -> None:
    """Copy one sync's ``account_info()`` figures onto ``account`` in memory (saved by :func:`account_save`).

    Money is quantized to the account's ``currency_digits`` (taken from this sync when it sends them).
    """
    for name in DESCRIPTIVE_FIELDS:
        if info.get(name) is not None:
            setattr(account, name, info[name])
    for name in SYNC_FIELDS:
        value = info.get(name)
        setattr(account, name, account.quantize(value) if name != "margin_level" else value)
    account.broker_time = broker_time
    account.last_sync_at = now


def account_save(account: Account, *, writes: WriteBatch) -> None:
    """Queue in ``writes`` the UPDATE of the account's descriptive fields, latest figures and sync count."""
    writes.update(
        account, [*DESCRIPTIVE_FIELDS, *SYNC_FIELDS, "broker_time", "last_sync_at", "sync_count", "updated_at"]
    )


def account_for_write(
    *, user_id: int, account_id: int | None = None, server: str | None = None, login: int | None = None
) -> Account:
    """Return the account a write request names: ``account_id`` (one of the user's accounts, else
    ``Http404``), or (``server``, ``login``) — created when unseen, its currency filled by its first
    sync — or, naming neither, the user's single account.

    Raises ``ValidationError`` on ``account`` (→ 400) when the user has several accounts or none
    and the request names none.
    """
    if account_id is None and server and login:
        return account_get_or_create(user_id=user_id, server=server, login=login)
    ref = account_resolve(user_id=user_id, account=account_id)
    if ref is None:
        raise ValidationError(
            {"account": "No account yet: name it with server and login (as the sync worker reports them)."}
        )
    return Account.objects.get(user_id=user_id, pk=ref["id"])
