"""Factories for accounts: a user's MT5 account, and the default one read-side factories attach rows to."""

from __future__ import annotations

import factory

from accounts.models import Account

DEFAULT_SERVER = "MetaQuotes-Demo"
DEFAULT_LOGIN = 5021337  # the login reconciliation.tests.factories.account() reports


def default_account(user, *, currency: str = "USD") -> Account:
    """Return the user's account (MetaQuotes-Demo, 5021337), creating it in ``currency`` when absent: the
    same account a test sync with the default ``account()`` payload reaches."""
    account, _ = Account.objects.get_or_create(
        user=user, server=DEFAULT_SERVER, login=DEFAULT_LOGIN, defaults={"currency": currency}
    )
    return account


class AccountFactory(factory.django.DjangoModelFactory):
    """A USD account on MetaQuotes-Demo with a fresh login (override per test)."""

    class Meta:
        model = Account

    server = DEFAULT_SERVER
    login = factory.Sequence(lambda n: 9_000_000 + n)
    currency = "USD"


def account_of(obj) -> Account:
    """``factory.LazyAttribute`` helper: the default account of the row's ``user``."""
    return default_account(obj.user)
