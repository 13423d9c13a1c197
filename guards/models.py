"""Guards: per-user thresholds, equity history with peak and drawdown, and stateful alerts.

Percentages are 0–100 (15 means 15 %); money is in the account currency.
"""

from datetime import time
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from accounts.fields import MoneyField
from positions.models import PRICE

PCT: dict[str, Any] = {"max_digits": 7, "decimal_places": 4}
SPREAD_PIPS: dict[str, Any] = {"max_digits": 14, "decimal_places": 2}  # MarketAlert.value_pips
THRESHOLD: dict[str, Any] = {"max_digits": 6, "decimal_places": 3}


class Level(models.TextChoices):
    """Guard levels, ordered: ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


LEVEL_RANK: dict[str, int] = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}

# The user-settable thresholds of GuardConfig, in display order (selectors, services, API and admin use it).
CONFIG_FIELDS = (
    "drawdown_warning_pct",
    "drawdown_critical_pct",
    "min_equity",
    "gap_warning_pct",
    "gap_critical_pct",
    "spread_warning_pct",
    "spread_critical_pct",
    "quote_stale_seconds",
    "sync_stale_seconds",
    "drawdown_hysteresis_pct",
    "margin_warning_buffer_pct",
    "margin_critical_distance_pct",
    "margin_hysteresis_pct",
    "initial_capital",
)


class GuardConfig(models.Model):
    """One user's guard thresholds, created with these defaults on first use.

    Validation: 0 < warning < critical ≤ 100 for each pair, and drawdown thresholds ≥ 1 so that a
    fraction such as 0.15 is never taken for 15 %.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guard_configs")
    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="guard_config")
    drawdown_warning_pct = models.DecimalField(**THRESHOLD, default=Decimal("15"))
    drawdown_critical_pct = models.DecimalField(**THRESHOLD, default=Decimal("20"))
    min_equity = MoneyField(default=Decimal("100"), help_text="Below it the level is critical.")
    gap_warning_pct = models.DecimalField(**THRESHOLD, default=Decimal("5"))
    gap_critical_pct = models.DecimalField(**THRESHOLD, default=Decimal("10"))
    spread_warning_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("0.5"),
        help_text="Account-wide spread ceiling, percent of bid (per-symbol thresholds: guards/instruments/).",
    )
    spread_critical_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("1.0"),
        help_text="Account-wide spread ceiling, percent of bid (per-symbol thresholds: guards/instruments/).",
    )
    quote_stale_seconds = models.PositiveIntegerField(default=60)
    sync_stale_seconds = models.PositiveIntegerField(default=60)
    drawdown_hysteresis_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("1"),
        help_text=(
            "Percentage points a drawdown must fall below a threshold before its level is left "
            "(at most half the warning threshold is applied)."
        ),
    )
    margin_warning_buffer_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("10"),
        help_text="Margin-level points above the broker's margin-call level at which the margin guard warns.",
    )
    margin_critical_distance_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("20"),
        help_text="Margin-level points above the broker's stop-out level at which the margin guard is critical.",
    )
    margin_hysteresis_pct = models.DecimalField(
        **THRESHOLD,
        default=Decimal("5"),
        help_text="Margin-level points the margin level must rise past a threshold before its level is left.",
    )
    initial_capital = MoneyField(
        null=True,
        blank=True,
        help_text="Initial account size the loss rules measure from (prop-firm challenges); empty = no rules.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    PAIRS = (
        ("drawdown_warning_pct", "drawdown_critical_pct"),
        ("gap_warning_pct", "gap_critical_pct"),
        ("spread_warning_pct", "spread_critical_pct"),
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(drawdown_warning_pct__gte=1)
                & Q(drawdown_warning_pct__lt=F("drawdown_critical_pct"))
                & Q(drawdown_critical_pct__lte=100),
                name="%(app_label)s_%(class)s_drawdown_thresholds",
            ),
            models.CheckConstraint(
                condition=Q(gap_warning_pct__gt=0)
                & Q(gap_warning_pct__lt=F("gap_critical_pct"))
                & Q(gap_critical_pct__lte=100),
                name="%(app_label)s_%(class)s_gap_thresholds",
            ),
            models.CheckConstraint(
                condition=Q(spread_warning_pct__gt=0)
                & Q(spread_warning_pct__lt=F("spread_critical_pct"))
                & Q(spread_critical_pct__lte=100),
                name="%(app_label)s_%(class)s_spread_thresholds",
            ),
            models.CheckConstraint(condition=Q(min_equity__gte=0), name="%(app_label)s_%(class)s_min_equity_gte_0"),
        ]

    def __str__(self) -> str:
        return f"guards of user {self.user_id}"

    def clean(self) -> None:
        """Check every warning/critical pair: 0 < warning < critical ≤ 100; drawdown warning ≥ 1."""
        errors: dict[str, str] = {}
        for warning_field, critical_field in self.PAIRS:
            warning, critical = getattr(self, warning_field), getattr(self, critical_field)
            if warning is None or critical is None:
                continue
            if warning <= 0:
                errors[warning_field] = "Must be greater than 0 (percent, 0–100)."
            elif warning >= critical:
                errors[warning_field] = f"Must be less than {critical_field} ({critical})."
            if critical > 100:
                errors[critical_field] = "Must be at most 100 (percent, 0–100)."
        if self.drawdown_warning_pct is not None and 0 < self.drawdown_warning_pct < 1:
            errors["drawdown_warning_pct"] = (
                "Thresholds are percentages (15 means 15 %); values below 1 look like fractions and are rejected."
            )
        if self.drawdown_critical_pct is not None and self.drawdown_critical_pct < 1:
            errors["drawdown_critical_pct"] = (
                "Thresholds are percentages (20 means 20 %); values below 1 look like fractions and are rejected."
            )
        if self.min_equity is not None and self.min_equity < 0:
            errors["min_equity"] = "Must be zero or more (account currency)."
        for name in ("quote_stale_seconds", "sync_stale_seconds"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                errors[name] = "Must be at least 1 second (0 would make every quote or sync stale)."
        for name in ("drawdown_hysteresis_pct", "margin_warning_buffer_pct", "margin_critical_distance_pct",
                     "margin_hysteresis_pct"):  # fmt: skip
            if getattr(self, name) is not None and getattr(self, name) < 0:
                errors[name] = "Must be zero or more (percentage points)."
        if self.initial_capital is not None and self.initial_capital <= 0:
            errors["initial_capital"] = "Must be greater than 0 (account currency), or empty."
        if errors:
            raise ValidationError(errors)


INDEX: dict[str, Any] = {"max_digits": 24, "decimal_places": 12}


class GuardState(models.Model):
    """One account's persistent drawdown reference: the cash-flow-adjusted equity index and its peak.

    The index chains time-weighted returns between syncs (``guards.cashflow``): deposits and
    withdrawals never move it, so they never move the drawdown. The first snapshot starts it at
    equity / max(balance, equity) with peak 1. ``peak_equity`` is the peak expressed in today's money
    (equity × index_peak / index): the equity at which the drawdown would be 0. The admin's "reset peak
    equity" action sets the index peak to the current index through ``guards.services``.
    ``balance`` is the previous sync's, for the balance continuity check.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guard_states")
    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="guard_state")
    peak_equity = MoneyField()
    peak_equity_at = models.DateTimeField()
    peak_reset_at = models.DateTimeField(null=True, blank=True)
    equity_index = models.DecimalField(**INDEX, default=Decimal("1"), help_text="Cash-flow-adjusted equity index.")
    equity_index_peak = models.DecimalField(**INDEX, default=Decimal("1"), help_text="Highest index since reset.")
    margin_guard_level = models.CharField(
        max_length=8, choices=Level.choices, default=Level.OK, help_text="Margin guard level after the latest sync."
    )
    margin_at_or_under_stop_out = models.BooleanField(
        default=False, help_text="The latest margin level was at or under the broker's stop-out level."
    )
    index_equity = MoneyField(null=True, blank=True, help_text="Equity at the index's last step.")
    balance = MoneyField(null=True, blank=True, help_text="Balance of the previous sync.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(peak_equity__gte=0), name="%(app_label)s_%(class)s_peak_gte_0"),
        ]

    def __str__(self) -> str:
        return f"peak {self.peak_equity} (user {self.user_id})"


class EquitySnapshot(models.Model):
    """The account as one sync saw it (MT5 ``account_info()``), with the guard's peak and drawdown."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="equity_snapshots", db_index=False
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="equity_snapshots", db_index=False
    )
    sync_id = models.UUIDField()
    broker_time = models.DateTimeField()
    login = models.BigIntegerField(null=True, blank=True, help_text="MT5 account number.")
    currency = models.CharField(max_length=8)
    balance = MoneyField()
    equity = MoneyField()
    margin = MoneyField(default=Decimal("0"))
    margin_free = MoneyField(default=Decimal("0"))
    peak_equity = MoneyField()
    drawdown_pct = models.DecimalField(
        **PCT, help_text="(index peak − index) / index peak × 100 on the cash-flow-adjusted equity index."
    )
    cash_flow = MoneyField(default=Decimal("0"), help_text="Balance operations since the last sync.")
    equity_index = models.DecimalField(**INDEX, default=Decimal("1"), help_text="Cash-flow-adjusted equity index.")
    drawdown_level = models.CharField(max_length=8, choices=Level.choices, default=Level.OK)
    open_positions = models.PositiveIntegerField(default=0)
    margin_level_pct = models.DecimalField(
        max_digits=20, decimal_places=2, null=True, blank=True, help_text="Equity / margin × 100; null = no margin."
    )
    margin_guard_level = models.CharField(max_length=8, choices=Level.choices, default=Level.OK)
    margin_details = models.JSONField(
        null=True, blank=True, help_text="The margin guard's measure: levels, distance to stop-out, adverse move."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "sync_id"], name="%(app_label)s_%(class)s_unique_account_sync"),
            models.CheckConstraint(condition=Q(peak_equity__gte=0), name="%(app_label)s_%(class)s_peak_gte_0"),
        ]
        indexes = [
            models.Index(fields=["user", "account", "created_at", "id"], name="equity_account_created"),
            # The admin changelist: newest first over every account, and by drawdown level (its one filter).
            models.Index(fields=["created_at", "id"], name="equity_created"),
            models.Index(fields=["drawdown_level", "created_at", "id"], name="equity_level_created"),
        ]

    def __str__(self) -> str:
        return f"{self.broker_time:%Y-%m-%d %H:%M:%S} equity {self.equity} {self.currency}"


class AlertBase(models.Model):
    """Fields shared by the stateful alerts: one row per episode (open → escalate → resolve)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    level = models.CharField(max_length=8, choices=Level.choices)
    max_level = models.CharField(max_length=8, choices=Level.choices, help_text="Highest level in the episode.")
    value_pct = models.DecimalField(**PCT, help_text="Latest measured value, percent.")
    max_value_pct = models.DecimalField(**PCT, help_text="Worst value in the episode, percent.")
    threshold_pct = models.DecimalField(**THRESHOLD, help_text="Threshold of the current level, percent.")
    opened_at = models.DateTimeField()
    escalated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    sync_id = models.UUIDField(help_text="The sync that opened the episode.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class DrawdownAlert(AlertBase):
    """A drawdown episode: opened at the warning threshold (or below min equity), resolved below it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drawdown_alerts", db_index=False
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="drawdown_alerts", db_index=False
    )
    equity = MoneyField()
    peak_equity = MoneyField()
    below_min_equity = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(resolved_at__isnull=True),
                name="%(app_label)s_%(class)s_one_open_per_account",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "account", "created_at", "id"], name="ddalert_account_created"),
            models.Index(fields=["user", "account", "resolved_at"], name="ddalert_account_resolved"),
        ]

    def __str__(self) -> str:
        return f"drawdown {self.level} {self.value_pct} % (user {self.user_id})"


class MarketAlert(AlertBase):
    """A market-condition episode on one symbol: price gap, wide spread or stale quote."""

    class Condition(models.TextChoices):
        PRICE_GAP = "price_gap"
        WIDE_SPREAD = "wide_spread"
        STALE_QUOTE = "stale_quote"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="market_alerts", db_index=False
    )
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="market_alerts", db_index=False
    )
    symbol = models.CharField(max_length=32)
    condition = models.CharField(max_length=12, choices=Condition.choices)
    bid = models.DecimalField(**PRICE, null=True, blank=True)
    ask = models.DecimalField(**PRICE, null=True, blank=True)
    reference_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="Previous mid (gaps).")
    value_pips = models.DecimalField(**SPREAD_PIPS, null=True, blank=True, help_text="Spreads.")
    age_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Stale quotes: quote age at broker time."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "symbol", "condition"],
                condition=Q(resolved_at__isnull=True),
                name="%(app_label)s_%(class)s_one_open_per_symbol_condition",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "account", "created_at", "id"], name="mktalert_account_created"),
            models.Index(fields=["user", "account", "resolved_at", "symbol"], name="mktalert_account_resolved"),
        ]

    def __str__(self) -> str:
        return f"{self.condition} {self.symbol} {self.level} (user {self.user_id})"


class LossRule(models.Model):
    """One loss rule of an account (``guards.loss_rules``): equity may not fall to anchor − loss amount.

    The definition (kind, anchor, basis, amount or percent, reset time and IANA time zone, inclusive)
    is validated by ``guards.loss_rules.LossRule.errors``; the state fields are the rule's memory
    between syncs and the latest result is stored for ``guards/status``. ``preset``/``source`` name
    the firm preset a rule came from and its published source.
    """

    class Kind(models.TextChoices):
        DAILY_LOSS = "daily_loss"
        MAX_LOSS = "max_loss"

    class Anchor(models.TextChoices):
        INITIAL_CAPITAL = "initial_capital"
        DAY_START = "day_start"
        HIGHEST_EOD_BALANCE = "highest_eod_balance"

    class Basis(models.TextChoices):
        BALANCE = "balance"
        EQUITY = "equity"
        MAX_BALANCE_EQUITY = "max_balance_equity"

    class PercentOf(models.TextChoices):
        INITIAL_CAPITAL = "initial_capital"
        ANCHOR = "anchor"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="loss_rules")
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    anchor = models.CharField(max_length=20, choices=Anchor.choices)
    basis = models.CharField(max_length=20, choices=Basis.choices, default=Basis.BALANCE)
    amount = MoneyField(null=True, blank=True, help_text="Loss amount in the account currency (or use percent).")
    percent = models.DecimalField(**THRESHOLD, null=True, blank=True, help_text="Loss amount in percent (0–100).")
    percent_of = models.CharField(max_length=16, choices=PercentOf.choices, default=PercentOf.INITIAL_CAPITAL)
    reset_time = models.TimeField(default=time(0, 0), help_text="Start of the trading day on the time zone's clock.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA time zone, e.g. Europe/Prague.")
    inclusive = models.BooleanField(default=False, help_text="Equity at the limit is already a breach.")
    warning_remaining_pct = models.DecimalField(
        **THRESHOLD, default=Decimal("20"), help_text="Warning when at most this share of the loss amount is left."
    )
    enabled = models.BooleanField(default=True)
    preset = models.CharField(max_length=32, blank=True, help_text="Preset this rule came from, if any.")
    source = models.TextField(blank=True, help_text="Where the preset's figures come from.")
    # State between syncs (guards.loss_rules.RuleState).
    day_start_at = models.DateTimeField(null=True, blank=True)
    day_start_balance = MoneyField(null=True, blank=True)
    day_start_equity = MoneyField(null=True, blank=True)
    highest_eod_balance = MoneyField(null=True, blank=True)
    last_balance = MoneyField(null=True, blank=True)
    last_equity = MoneyField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True, help_text="Breach in the current trading day.")
    # Latest result (guards/status rules[]).
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.OK)
    limit_equity = MoneyField(null=True, blank=True)
    distance = MoneyField(null=True, blank=True, help_text="Equity − limit equity at the latest sync.")
    distance_pct = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    next_reset = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    STATE_FIELDS = (
        "day_start_at", "day_start_balance", "day_start_equity", "highest_eod_balance", "last_balance",
        "last_equity", "breached_at",
    )  # fmt: skip
    RESULT_FIELDS = ("level", "limit_equity", "distance", "distance_pct", "next_reset", "evaluated_at")

    class Meta:
        ordering = ["account", "kind", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(amount__isnull=False) & Q(percent__isnull=True))
                | (Q(amount__isnull=True) & Q(percent__isnull=False)),
                name="%(app_label)s_%(class)s_amount_xor_percent",
            ),
            models.CheckConstraint(
                condition=Q(percent__isnull=True) | (Q(percent__gt=0) & Q(percent__lte=100)),
                name="%(app_label)s_%(class)s_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(amount__isnull=True) | Q(amount__gt=0), name="%(app_label)s_%(class)s_amount_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(warning_remaining_pct__gte=0) & Q(warning_remaining_pct__lte=100),
                name="%(app_label)s_%(class)s_warning_remaining_range",
            ),
        ]
        indexes = [models.Index(fields=["user", "account"], name="lossrule_user_account")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, account {self.account_id})"

    def as_rule(self):
        """The pure ``guards.loss_rules.LossRule`` of this row."""
        from guards import loss_rules

        return loss_rules.LossRule(
            name=self.name, kind=self.kind, anchor=self.anchor, basis=self.basis, amount=self.amount,
            percent=self.percent, percent_of=self.percent_of, reset_time=self.reset_time, timezone=self.timezone,
            inclusive=self.inclusive, warning_remaining_pct=self.warning_remaining_pct, source=self.source,
        )  # fmt: skip

    def as_state(self):
        """The pure ``guards.loss_rules.RuleState`` of this row."""
        from guards import loss_rules

        return loss_rules.RuleState(**{name: getattr(self, name) for name in self.STATE_FIELDS})

    def clean(self) -> None:
        """Validate the definition as ``guards.loss_rules.LossRule.errors`` does."""
        errors = self.as_rule().errors()
        if errors:
            raise ValidationError(errors)


class InstrumentGuardSetting(models.Model):
    """Per-account, per-symbol guard overrides (``guards.tolerances``, ``guards.sessions``); empty = default.

    ``pip_size`` replaces the class pip (XAU 0.10, indices 1.0, …); the tolerances' floors are in pips
    (FX) or percent of price (metals, crypto, indices); spread thresholds are in ``spread_unit``;
    ``sessions`` are MQL5 trade sessions (``[{"day_of_week", "from", "to"}]``, seconds on the account's
    server clock) an operator sets for a symbol whose sync sends none: the stale-quote guard uses the
    sync's sessions (``positions.Instrument.sessions``) first, then this override, then the default
    calendar of the symbol's class (``guards.sessions``).
    """

    class SpreadUnit(models.TextChoices):
        PIPS = "pips"
        PCT = "pct"
        MEDIAN_MULTIPLE = "median_multiple"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="instrument_settings")
    symbol = models.CharField(max_length=32)
    pip_size = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    entry_tolerance_pips = models.DecimalField(**THRESHOLD, null=True, blank=True)
    entry_tolerance_pct = models.DecimalField(**PCT, null=True, blank=True, help_text="Percent of price.")
    stop_tolerance_pips = models.DecimalField(**THRESHOLD, null=True, blank=True)
    stop_tolerance_pct = models.DecimalField(**PCT, null=True, blank=True, help_text="Percent of price.")
    spread_unit = models.CharField(max_length=16, choices=SpreadUnit.choices, blank=True)
    spread_warning = models.DecimalField(**THRESHOLD, null=True, blank=True)
    spread_critical = models.DecimalField(**THRESHOLD, null=True, blank=True)
    sessions = models.JSONField(null=True, blank=True, help_text="MQL5 trade sessions in server time.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="%(app_label)s_%(class)s_unique_account_symbol"),
            models.CheckConstraint(
                condition=Q(pip_size__isnull=True) | Q(pip_size__gt=0), name="%(app_label)s_%(class)s_pip_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(spread_unit="")
                | (
                    Q(spread_warning__gt=0)
                    & Q(spread_critical__isnull=False)
                    & Q(spread_warning__lt=F("spread_critical"))
                ),
                name="%(app_label)s_%(class)s_spread_thresholds",
            ),
        ]
        indexes = [models.Index(fields=["user", "account"], name="instrset_user_account")]

    def __str__(self) -> str:
        return f"{self.symbol} guard settings (account {self.account_id})"

    def clean(self) -> None:
        """A spread unit needs 0 < warning < critical; the tolerances and pip size are positive when set;
        ``sessions`` when set are MQL5 trade sessions (``guards.sessions.session_errors``)."""
        from guards.sessions import session_errors  # guards.sessions → guards.tolerances → this module

        errors: dict[str, str] = {}
        if self.sessions is not None and (problems := session_errors(self.sessions)):
            errors["sessions"] = " ".join(problems)
        if self.spread_unit:
            if self.spread_warning is None or self.spread_warning <= 0:
                errors["spread_warning"] = "Must be greater than 0 when a spread unit is set."
            elif self.spread_critical is None or self.spread_warning >= self.spread_critical:
                errors["spread_critical"] = "Must be greater than spread_warning."
        for name in ("pip_size", "entry_tolerance_pips", "entry_tolerance_pct", "stop_tolerance_pips",
                     "stop_tolerance_pct"):  # fmt: skip
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                errors[name] = "Must be greater than 0, or empty for the default."
        if errors:
            raise ValidationError(errors)


class SymbolSpread(models.Model):
    """The recent spreads of one symbol on one account and their median (``guards.tolerances``).

    ``spreads`` keeps the last ``guards.tolerances.SPREAD_WINDOW`` spreads (ask − bid) as whole multiples
    of ``point`` (a JSON list of integers, oldest first: compact, and exact for MT5 quotes, whose prices are
    multiples of the point); ``median`` is their median in price units (quote currency), ``samples`` their
    count. Every sync upserts the rows of its quoted symbols in one statement; a change of the
    instrument's point starts the window again.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="symbol_spreads")
    symbol = models.CharField(max_length=32)
    point = models.DecimalField(max_digits=20, decimal_places=10, help_text="Price step the spreads count in.")
    spreads = models.JSONField(default=list, help_text="Recent spreads in points, oldest first.")
    samples = models.PositiveIntegerField(default=0, help_text="Spreads in the window.")
    median = models.DecimalField(**PRICE, null=True, blank=True, help_text="Median spread, price units.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "symbol"], name="%(app_label)s_%(class)s_unique_account_symbol"),
            models.CheckConstraint(condition=Q(point__gt=0), name="%(app_label)s_%(class)s_point_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} median spread {self.median} (account {self.account_id})"
