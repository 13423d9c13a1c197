"""Factories for read-side tests: equity snapshots, configs and alert episodes written directly (no sync)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import factory

from accounts.models import Account
from accounts.tests.factories import account_of
from guards.models import DrawdownAlert, EquitySnapshot, GuardConfig, Level, MarketAlert


def account_as_synced(snapshot: EquitySnapshot) -> None:
    """Write ``snapshot``'s figures on its ``Account`` row, as the sync that writes a snapshot does
    (``accounts.services.account_apply_sync``), unless the account already shows a later sync.

    Readers take the account's currency and equity from the Account row (``positions/open/``) or from
    the snapshots (``guards/status``, ``history``): a fixture that writes one must write both.
    """
    account = Account.objects.get(pk=snapshot.account_id)
    if account.last_sync_at is not None and account.last_sync_at > snapshot.created_at:
        return
    figures = {"currency": snapshot.currency, "balance": snapshot.balance, "equity": snapshot.equity,
               "margin": snapshot.margin, "margin_free": snapshot.margin_free, "broker_time": snapshot.broker_time,
               "last_sync_at": snapshot.created_at}  # fmt: skip
    Account.objects.filter(pk=account.pk).update(**figures)


class EquitySnapshotFactory(factory.django.DjangoModelFactory):
    """A USD account at 10,000 equity, its peak, 0 % drawdown (override per test); the account row shows
    the same figures (:func:`account_as_synced`)."""

    class Meta:
        model = EquitySnapshot

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        snapshot = super()._create(model_class, *args, **kwargs)
        account_as_synced(snapshot)
        return snapshot

    account = factory.LazyAttribute(account_of)

    sync_id = factory.LazyFunction(uuid.uuid4)
    broker_time = factory.LazyFunction(lambda: datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    currency = "USD"
    balance = Decimal("10000.00")
    equity = Decimal("10000.00")
    peak_equity = Decimal("10000.00")
    drawdown_pct = Decimal("0")
    drawdown_level = Level.OK


class GuardConfigFactory(factory.django.DjangoModelFactory):
    """A user's thresholds at the defaults."""

    class Meta:
        model = GuardConfig
        django_get_or_create = ("user", "account")

    account = factory.LazyAttribute(account_of)


class DrawdownAlertFactory(factory.django.DjangoModelFactory):
    """An open warning episode at 15 % (8,500 against a 10,000 peak)."""

    class Meta:
        model = DrawdownAlert

    account = factory.LazyAttribute(account_of)

    level = Level.WARNING
    max_level = Level.WARNING
    value_pct = Decimal("15")
    max_value_pct = Decimal("15")
    threshold_pct = Decimal("15")
    opened_at = factory.LazyFunction(lambda: datetime(2026, 11, 30, 9, 30, tzinfo=UTC))
    sync_id = factory.LazyFunction(uuid.uuid4)
    equity = Decimal("8500.00")
    peak_equity = Decimal("10000.00")


class MarketAlertFactory(factory.django.DjangoModelFactory):
    """An open price-gap warning on XAUUSD: 1950.00 → 2049.50 is 5.10 %."""

    class Meta:
        model = MarketAlert

    account = factory.LazyAttribute(account_of)

    symbol = "XAUUSD"
    condition = MarketAlert.Condition.PRICE_GAP
    level = Level.WARNING
    max_level = Level.WARNING
    value_pct = Decimal("5.1026")
    max_value_pct = Decimal("5.1026")
    threshold_pct = Decimal("5")
    bid = Decimal("2049.40")
    ask = Decimal("2049.60")
    reference_price = Decimal("1950.00")
    opened_at = factory.LazyFunction(lambda: datetime(2026, 11, 30, 9, 45, tzinfo=UTC))
    sync_id = factory.LazyFunction(uuid.uuid4)
