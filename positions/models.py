"""Positions: instruments, the platform's ledger of broker positions, and each user's latest quotes.

Units: prices in the instrument's quote currency (``currency_profit``), volumes in lots (step 0.01),
money in the account currency, times aware UTC. Field names follow MT5's Python API
(``positions_get()``: ticket, symbol, volume, price_open, price_current, sl, tp, swap, profit).
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from accounts.fields import MoneyField
from tradingsite.appendonly import AppendOnlyModel

PRICE: dict[str, Any] = {"max_digits": 20, "decimal_places": 8}
VOLUME: dict[str, Any] = {"max_digits": 12, "decimal_places": 2}


class Instrument(models.Model):
    """One tradable symbol and its MT5 contract specification (``symbol_info()``).

    Contract sizes are broker-specific, and a trade server's name is only what a worker claims, so
    specs posted in a sync are stored for the posting ``account`` (its trade ``server`` recorded) and
    only that account uses them: one tenant can never change another's numbers. Rows without an
    account are the shipped defaults, the fallback when an account has no row of its own.

    ``sessions`` are the symbol's trade sessions as the sync's ``symbol_info()`` sent them (MQL5
    ``SymbolInfoSessionTrade``: ``[{"day_of_week": 0–6 (0 = Sunday), "from": s, "to": s}, …]``, seconds
    on the trade server's clock). They live here, on the per-account spec, because they are a property of
    the broker's trade server (one broker closes DE40 22:00–23:00 server time, another at other hours, and
    the server's clock is the account's), like the contract size; being on the spec row, they are read
    with the specs in the sync's one instrument query. Null: not sent (the guards use an operator's
    override or the default calendar of the symbol's class, ``guards.sessions``).
    """

    class CalcMode(models.IntegerChoices):
        """MT5 ``SYMBOL_TRADE_CALC_MODE`` (``trade_calc_mode``)."""

        FOREX = 0, "forex"
        FUTURES = 1, "futures"
        CFD = 2, "CFD"
        CFD_INDEX = 3, "CFD index"
        CFD_LEVERAGE = 4, "CFD leverage"
        FOREX_NO_LEVERAGE = 5, "forex no leverage"
        EXCH_STOCKS = 32, "exchange stocks"
        EXCH_FUTURES = 33, "exchange futures"
        EXCH_FUTURES_FORTS = 34, "exchange futures FORTS"
        EXCH_BONDS = 37, "exchange bonds"
        EXCH_STOCKS_MOEX = 38, "exchange stocks MOEX"
        EXCH_BONDS_MOEX = 39, "exchange bonds MOEX"
        SERV_COLLATERAL = 64, "collateral"

    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="instruments",
        help_text="The account whose sync posted this spec; empty = shipped default for every account.",
    )
    server = models.CharField(
        max_length=64, blank=True, default="", help_text="MT5 trade server the spec came from; blank for defaults."
    )
    symbol = models.CharField(max_length=32, help_text="Upper case, e.g. EURUSD.")
    description = models.CharField(max_length=100, blank=True)
    contract_size = models.DecimalField(max_digits=20, decimal_places=4, help_text="Units per lot.")
    digits = models.PositiveSmallIntegerField(help_text="Decimals in a quote.")
    point = models.DecimalField(max_digits=20, decimal_places=10, help_text="Smallest price step.")
    pip_size = models.DecimalField(max_digits=20, decimal_places=10, help_text="Price change of one pip.")
    currency_base = models.CharField(max_length=8)
    currency_profit = models.CharField(max_length=8, help_text="Quote currency: P&L is computed in it.")
    volume_step = models.DecimalField(**VOLUME, default=Decimal("0.01"), help_text="Lots.")
    volume_min = models.DecimalField(**VOLUME, default=Decimal("0.01"), help_text="Lots.")
    trade_calc_mode = models.PositiveSmallIntegerField(
        choices=CalcMode.choices, default=CalcMode.FOREX, help_text="MT5 SYMBOL_TRADE_CALC_MODE."
    )
    trade_tick_value = models.DecimalField(
        max_digits=26, decimal_places=10, null=True, blank=True, help_text="Value of one tick for one lot (futures)."
    )
    trade_tick_size = models.DecimalField(
        max_digits=20, decimal_places=10, null=True, blank=True, help_text="Price change of one tick (futures)."
    )
    sessions = models.JSONField(
        null=True,
        blank=True,
        help_text="MQL5 trade sessions [{day_of_week 0-6 (0 = Sunday), from, to}] in seconds of server time.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server", "symbol"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "symbol"],
                condition=Q(account__isnull=False),
                name="%(app_label)s_%(class)s_unique_account_symbol",
            ),
            models.UniqueConstraint(
                fields=["symbol"], condition=Q(account__isnull=True), name="%(app_label)s_%(class)s_unique_default"
            ),
            models.CheckConstraint(condition=Q(symbol=Upper("symbol")), name="%(app_label)s_%(class)s_symbol_upper"),
            models.CheckConstraint(condition=Q(contract_size__gt=0), name="%(app_label)s_%(class)s_contract_size_gt_0"),
            models.CheckConstraint(condition=Q(point__gt=0), name="%(app_label)s_%(class)s_point_gt_0"),
            models.CheckConstraint(condition=Q(pip_size__gt=0), name="%(app_label)s_%(class)s_pip_size_gt_0"),
            models.CheckConstraint(condition=Q(volume_step__gt=0), name="%(app_label)s_%(class)s_volume_step_gt_0"),
        ]

    def __str__(self) -> str:
        return self.symbol


class Position(models.Model):
    """The platform's ledger row for one MT5 position (``ticket`` is unique per user).

    Lifecycle: ``pending`` (registered by the bot) → ``open`` (confirmed at the broker) → ``closed``.
    Positions first seen at the broker are created ``open`` with ``origin=broker``. ``matched`` and
    ``divergence_reasons`` hold the current reconciliation state.
    """

    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Origin(models.TextChoices):
        BOT = "bot"
        BROKER = "broker"

    class Status(models.TextChoices):
        PENDING = "pending"
        OPEN = "open"
        CLOSED = "closed"

    class CloseReason(models.TextChoices):
        SL_HIT = "sl_hit"
        TP_HIT = "tp_hit"
        STOP_OUT = "stop_out"
        CLOSED_MANUALLY = "closed_manually"
        CLOSED_BY_BOT = "closed_by_bot"
        CLOSED_EXTERNALLY = "closed_externally"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions", db_index=False
    )
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="positions", db_index=False)
    ticket = models.BigIntegerField(help_text="MT5 position ticket: the displayed alias, which the broker may change.")
    identifier = models.BigIntegerField(
        help_text="MT5 POSITION_IDENTIFIER: the position's stable identity; its deals name it position_id."
    )
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=Side.choices)
    volume = models.DecimalField(**VOLUME, help_text="Lots.")
    requested_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="Entry the bot asked for.")
    price_open = models.DecimalField(**PRICE, null=True, blank=True, help_text="Broker fill.")
    price_current = models.DecimalField(**PRICE, null=True, blank=True)
    sl = models.DecimalField(**PRICE, null=True, blank=True, help_text="Stop loss; null = none.")
    tp = models.DecimalField(**PRICE, null=True, blank=True, help_text="Take profit; null = none.")
    swap = MoneyField(default=Decimal("0"), help_text="Account currency.")
    commission = MoneyField(default=Decimal("0"), help_text="Account currency.")
    profit = MoneyField(default=Decimal("0"), help_text="Broker-reported, account currency.")
    origin = models.CharField(max_length=6, choices=Origin.choices, default=Origin.BOT)
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_price = models.DecimalField(**PRICE, null=True, blank=True)
    close_reason = models.CharField(max_length=20, choices=CloseReason.choices, blank=True)
    realized_pnl = MoneyField(
        null=True,
        blank=True,
        help_text="Account currency: the sum of profit + swap + commission + fee over the position's deals.",
    )
    realized_pnl_inferred = models.BooleanField(
        default=False,
        help_text="The close was inferred without a deal: realized P&L adds the last seen profit + swap + commission.",
    )
    declared_stops = models.JSONField(
        default=dict,
        blank=True,
        help_text="Stops the bot declared that the broker does not show yet: {name: {value, previous, at}}.",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    matched = models.BooleanField(default=False)
    divergence_reasons = models.JSONField(default=list, blank=True, help_text="Active divergence reasons.")
    divergence_details = models.JSONField(default=dict, blank=True, help_text="Per reason: expected, actual, deltas.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One live row per ticket and per identifier: a netting reversal closes one lifecycle and
            # opens the next under the same identifier (and ticket).
            models.UniqueConstraint(
                fields=["account", "ticket"],
                condition=~Q(status="closed"),
                name="%(app_label)s_%(class)s_unique_account_live_ticket",
            ),
            models.UniqueConstraint(
                fields=["account", "identifier"],
                condition=~Q(status="closed"),
                name="%(app_label)s_%(class)s_unique_account_live_identifier",
            ),
            models.CheckConstraint(condition=Q(volume__gt=0), name="%(app_label)s_%(class)s_volume_gt_0"),
            models.CheckConstraint(
                condition=Q(requested_price__isnull=True) | Q(requested_price__gt=0),
                name="%(app_label)s_%(class)s_requested_price_gt_0",
            ),
            models.CheckConstraint(
                condition=Q(price_open__isnull=True) | Q(price_open__gt=0),
                name="%(app_label)s_%(class)s_price_open_gt_0",
            ),
            models.CheckConstraint(
                condition=Q(price_current__isnull=True) | Q(price_current__gt=0),
                name="%(app_label)s_%(class)s_price_current_gt_0",
            ),
            models.CheckConstraint(condition=Q(sl__isnull=True) | Q(sl__gt=0), name="%(app_label)s_%(class)s_sl_gt_0"),
            models.CheckConstraint(condition=Q(tp__isnull=True) | Q(tp__gt=0), name="%(app_label)s_%(class)s_tp_gt_0"),
            models.CheckConstraint(
                condition=Q(close_price__isnull=True) | Q(close_price__gt=0),
                name="%(app_label)s_%(class)s_close_price_gt_0",
            ),
        ]
        indexes = [
            # positions/open/ and the status counts: (user, account, status[, symbol]).
            models.Index(fields=["user", "account", "status", "symbol"], name="position_account_status_symbol"),
            # positions/ history, newest first.
            models.Index(fields=["user", "account", "created_at", "id"], name="position_account_created"),
        ]

    def __str__(self) -> str:
        return f"{self.ticket} {self.symbol} {self.side} {self.volume}"

    def save(self, *args, **kwargs):
        if self.identifier is None:
            self.identifier = self.ticket  # MT5: the identifier is the ticket of the order that opened it
        super().save(*args, **kwargs)

    @property
    def direction(self) -> int:
        """+1 for a buy, −1 for a sell (d in the P&L formulas of docs/domain.md)."""
        return 1 if self.side == self.Side.BUY else -1


class Quote(models.Model):
    """The latest accepted quote of one symbol for one user (``symbol_info_tick()``), from the syncs.

    Used to value positions (conversion rates) and as the previous quote of the price-gap
    guard. One row per (user, symbol), updated in place by each sync.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quotes", db_index=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="quotes", db_index=False)
    symbol = models.CharField(max_length=32)
    bid = models.DecimalField(**PRICE)
    ask = models.DecimalField(**PRICE)
    time = models.DateTimeField(help_text="Broker time of the tick.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="%(app_label)s_%(class)s_unique_account_symbol"),
            models.CheckConstraint(condition=Q(bid__gt=0), name="%(app_label)s_%(class)s_bid_gt_0"),
            models.CheckConstraint(condition=Q(ask__gte=models.F("bid")), name="%(app_label)s_%(class)s_ask_gte_bid"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.bid}/{self.ask}"

    @property
    def mid(self) -> Decimal:
        """(bid + ask) / 2, in the quote currency."""
        return (self.bid + self.ask) / 2

    def is_newer_than(self, time: datetime, *, broker_time: datetime) -> bool:
        """True when this stored quote should be kept over a tick stamped ``time`` in a sync taken at
        ``broker_time``: it is newer, and not stamped after that sync's own clock. A stored quote from
        the future (a wrong server-time offset, since corrected) is never "newer": otherwise it would
        freeze the symbol, every later tick dropped and the gap reference never updated."""
        return time < self.time <= broker_time


class Deal(AppendOnlyModel):
    """One MT5 deal (``history_deals_get()``), stored once per (account, ticket) and never changed.

    Trade deals (type 0 buy, 1 sell) belong to a position: ``position_identifier`` is MT5's
    ``DEAL_POSITION_ID`` and ``position`` the ledger lifecycle it was booked on. Balance operations
    (types 2–12 and 15–17: deposits, withdrawals, credit, charges, corrections, bonuses, commissions,
    interest, dividends, tax) carry ``position_identifier`` 0 and no position. Money (profit, swap,
    commission, fee) in the account currency; volume in lots; price in the quote currency; ``time`` in UTC.
    """

    class Entry(models.IntegerChoices):
        """MT5 ``ENUM_DEAL_ENTRY``."""

        IN = 0, "in"
        OUT = 1, "out"
        INOUT = 2, "inout"
        OUT_BY = 3, "out_by"

    class Type(models.IntegerChoices):
        """MT5 ``ENUM_DEAL_TYPE``."""

        BUY = 0, "buy"
        SELL = 1, "sell"
        BALANCE = 2, "balance"
        CREDIT = 3, "credit"
        CHARGE = 4, "charge"
        CORRECTION = 5, "correction"
        BONUS = 6, "bonus"
        COMMISSION = 7, "commission"
        COMMISSION_DAILY = 8, "commission_daily"
        COMMISSION_MONTHLY = 9, "commission_monthly"
        COMMISSION_AGENT_DAILY = 10, "commission_agent_daily"
        COMMISSION_AGENT_MONTHLY = 11, "commission_agent_monthly"
        INTEREST = 12, "interest"
        BUY_CANCELED = 13, "buy_canceled"
        SELL_CANCELED = 14, "sell_canceled"
        DIVIDEND = 15, "dividend"
        DIVIDEND_FRANKED = 16, "dividend_franked"
        TAX = 17, "tax"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deals", db_index=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="deals", db_index=False)
    position = models.ForeignKey(
        Position, on_delete=models.CASCADE, null=True, blank=True, related_name="deals", help_text="Ledger lifecycle."
    )
    ticket = models.BigIntegerField(help_text="MT5 deal ticket.")
    order = models.BigIntegerField(default=0, help_text="MT5 order ticket that produced the deal.")
    position_identifier = models.BigIntegerField(default=0, help_text="MT5 DEAL_POSITION_ID; 0 for balance operations.")
    symbol = models.CharField(max_length=32, blank=True)
    type = models.PositiveSmallIntegerField(choices=Type.choices)
    entry = models.PositiveSmallIntegerField(choices=Entry.choices, default=Entry.IN)
    reason = models.PositiveSmallIntegerField(default=0, help_text="MT5 ENUM_DEAL_REASON.")
    volume = models.DecimalField(**VOLUME, default=Decimal("0"), help_text="Lots.")
    price = models.DecimalField(**PRICE, default=Decimal("0"), help_text="Quote currency.")
    profit = MoneyField(default=Decimal("0"), help_text="Account currency.")
    swap = MoneyField(default=Decimal("0"), help_text="Account currency.")
    commission = MoneyField(default=Decimal("0"), help_text="Account currency.")
    fee = MoneyField(default=Decimal("0"), help_text="Account currency.")
    magic = models.BigIntegerField(default=0, help_text="Expert Advisor id (0 = manual).")
    comment = models.CharField(max_length=64, blank=True)
    time = models.DateTimeField(help_text="UTC.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-time", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "ticket"], name="%(app_label)s_%(class)s_unique_account_ticket"),
            models.CheckConstraint(condition=Q(volume__gte=0), name="%(app_label)s_%(class)s_volume_gte_0"),
            models.CheckConstraint(condition=Q(price__gte=0), name="%(app_label)s_%(class)s_price_gte_0"),
        ]
        indexes = [
            # deals/ cursor pagination, newest first.
            models.Index(fields=["user", "account", "time", "id"], name="deal_account_time"),
            # a position's deals.
            models.Index(fields=["account", "position_identifier"], name="deal_account_identifier"),
        ]

    def __str__(self) -> str:
        return f"deal {self.ticket} {self.get_type_display()} {self.get_entry_display()} {self.volume}"

    @property
    def money(self) -> Decimal:
        """profit + swap + commission + fee, in the account currency."""
        return self.profit + self.swap + self.commission + self.fee
