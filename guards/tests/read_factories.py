"""Factories for read-side tests: equity snapshots, configs and alert episodes written directly (no sync)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import factory

from accounts.tests.factories import account_of
from guards.models import DrawdownAlert, EquitySnapshot, GuardConfig, Level, MarketAlert


class EquitySnapshotFactory(factory.django.DjangoModelFactory):
    """A USD account at 10,000 equity, its peak, 0 % drawdown (override per test)."""

    class Meta:
        model = EquitySnapshot

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
