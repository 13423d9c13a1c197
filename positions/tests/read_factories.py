"""Factories for read-side tests: ledger rows and quotes written directly (no sync), one user at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import factory

from accounts.tests.factories import account_of
from positions.models import Position, Quote


class PositionFactory(factory.django.DjangoModelFactory):
    """An ``open`` EURUSD buy of 1.00 lot, 1.0950 → 1.0960, matched (override per test)."""

    class Meta:
        model = Position

    account = factory.LazyAttribute(account_of)

    ticket = factory.Sequence(lambda n: 700_000 + n)
    symbol = "EURUSD"
    side = Position.Side.BUY
    volume = Decimal("1.00")
    requested_price = Decimal("1.0950")
    price_open = Decimal("1.0950")
    price_current = Decimal("1.0960")
    profit = Decimal("100.00")
    origin = Position.Origin.BOT
    status = Position.Status.OPEN
    matched = True
    divergence_reasons = factory.LazyFunction(list)
    opened_at = factory.LazyFunction(lambda: datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    last_synced_at = factory.LazyFunction(lambda: datetime(2026, 11, 30, 10, 0, tzinfo=UTC))


class QuoteFactory(factory.django.DjangoModelFactory):
    """The user's latest quote of one symbol."""

    class Meta:
        model = Quote
        django_get_or_create = ("user", "account", "symbol")

    account = factory.LazyAttribute(account_of)

    symbol = "EURUSD"
    bid = Decimal("1.09590")
    ask = Decimal("1.09610")
    time = factory.LazyFunction(lambda: datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
