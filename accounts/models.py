"""Accounts: one MT5 trading account of a user, identified by (user, trade server, login).

Every position, quote, equity snapshot, guard state and config, alert and reconciliation log row
belongs to one account; the ``user`` foreign key stays on those rows so scoping by user remains by
construction. Field names follow MT5's Python API ``account_info()`` (login, server, name, company,
currency, currency_digits, margin_mode, leverage, balance, equity, margin, margin_free, credit,
margin_level). Money is in the account currency, quantized to ``currency_digits`` decimals.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.fields import MoneyField
from accounts.money import (
    MAX_CURRENCY_DIGITS,
    MAX_UTC_OFFSET_MINUTES,
    MIN_UTC_OFFSET_MINUTES,
    quantize_money,
)


class Account(models.Model):
    """One MT5 trading account of a user (``account_info()``), with the latest figures of its syncs.

    Unique per (user, server, login): the same login on another trade server is another account,
    and two users may monitor the same (server, login) independently (nothing is shared). The
    figures ``balance`` … ``broker_time`` are the latest sync's, so reads need not join snapshots.
    """

    class MarginMode(models.IntegerChoices):
        """MT5 ``ACCOUNT_MARGIN_MODE``."""

        RETAIL_NETTING = 0, "retail netting"
        EXCHANGE = 1, "exchange"
        RETAIL_HEDGING = 2, "retail hedging"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="accounts")
    server = models.CharField(max_length=64, help_text="MT5 trade server name, e.g. MetaQuotes-Demo.")
    login = models.BigIntegerField(help_text="MT5 account number (1 … 2^63 − 1).")
    name = models.CharField(max_length=128, blank=True, help_text="Client name as the broker reports it.")
    company = models.CharField(max_length=128, blank=True, help_text="Broker company.")
    currency = models.CharField(max_length=8, help_text="Deposit currency, e.g. USD.")
    currency_digits = models.PositiveSmallIntegerField(
        default=2, help_text="Decimals of money in the deposit currency (0 … 8)."
    )
    margin_mode = models.PositiveSmallIntegerField(
        choices=MarginMode.choices, default=MarginMode.RETAIL_HEDGING, help_text="MT5 ACCOUNT_MARGIN_MODE."
    )
    leverage = models.PositiveIntegerField(null=True, blank=True, help_text="Account leverage, e.g. 100 for 1:100.")
    server_utc_offset = models.SmallIntegerField(
        default=0,
        help_text=(
            "Offset of the trade server's clock from UTC in minutes (e.g. 120 for UTC+2). MT5 stamps "
            "position, deal and quote times in server time; this offset turns them into UTC."
        ),
    )
    balance = MoneyField(null=True, blank=True, help_text="Latest sync.")
    equity = MoneyField(null=True, blank=True, help_text="Latest sync.")
    margin = MoneyField(null=True, blank=True, help_text="Latest sync.")
    margin_free = MoneyField(null=True, blank=True, help_text="Latest sync.")
    credit = MoneyField(null=True, blank=True, help_text="Latest sync.")
    margin_level = models.DecimalField(
        max_digits=20, decimal_places=2, null=True, blank=True, help_text="Equity / margin × 100 (latest sync)."
    )
    broker_time = models.DateTimeField(null=True, blank=True, help_text="Broker time of the latest sync (UTC).")
    last_sync_at = models.DateTimeField(null=True, blank=True, help_text="When the latest sync was accepted.")
    sync_count = models.PositiveBigIntegerField(
        default=0,
        help_text="Accepted syncs of the account (one per sync log row), kept by each sync in its account UPDATE.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user", "server", "login"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "server", "login"], name="%(app_label)s_%(class)s_unique_user_server_login"
            ),
            models.CheckConstraint(condition=Q(login__gte=1), name="%(app_label)s_%(class)s_login_gte_1"),
            models.CheckConstraint(
                condition=Q(currency_digits__lte=MAX_CURRENCY_DIGITS),
                name="%(app_label)s_%(class)s_currency_digits_lte_8",
            ),
            models.CheckConstraint(
                condition=Q(server_utc_offset__gte=MIN_UTC_OFFSET_MINUTES)
                & Q(server_utc_offset__lte=MAX_UTC_OFFSET_MINUTES),
                name="%(app_label)s_%(class)s_server_utc_offset_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.login} @ {self.server} ({self.currency})"

    def quantize(self, value: Decimal | None) -> Decimal | None:
        """Round a money ``value`` to this account's ``currency_digits`` (half-up)."""
        return quantize_money(value, self.currency_digits)
