"""Guards: per-user thresholds, equity history with peak and drawdown, and stateful alerts (SPEC §1, §5).

Percentages are 0–100 (15 means 15 %); money is in the account currency.
"""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from accounts.fields import MoneyField
from positions.models import PRICE

PCT = {"max_digits": 7, "decimal_places": 4}
THRESHOLD = {"max_digits": 6, "decimal_places": 3}


class Level(models.TextChoices):
    """Guard levels, ordered: ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


LEVEL_RANK = {Level.OK: 0, Level.WARNING: 1, Level.CRITICAL: 2}

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
    spread_warning_pct = models.DecimalField(**THRESHOLD, default=Decimal("0.5"))
    spread_critical_pct = models.DecimalField(**THRESHOLD, default=Decimal("1.0"))
    quote_stale_seconds = models.PositiveIntegerField(default=60)
    sync_stale_seconds = models.PositiveIntegerField(default=60)
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
        if errors:
            raise ValidationError(errors)


class GuardState(models.Model):
    """One user's persistent peak equity (SPEC §5): max of every equity seen since the last reset.

    Starts at max(balance, equity) on the first snapshot; the admin's "reset peak equity" action sets
    it to the current equity through ``guards.services``.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guard_states")
    account = models.OneToOneField("accounts.Account", on_delete=models.CASCADE, related_name="guard_state")
    peak_equity = MoneyField()
    peak_equity_at = models.DateTimeField()
    peak_reset_at = models.DateTimeField(null=True, blank=True)
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
    drawdown_pct = models.DecimalField(**PCT, help_text="(peak − equity) / peak × 100.")
    drawdown_level = models.CharField(max_length=8, choices=Level.choices, default=Level.OK)
    open_positions = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "sync_id"], name="%(app_label)s_%(class)s_unique_account_sync"),
            models.CheckConstraint(condition=Q(peak_equity__gte=0), name="%(app_label)s_%(class)s_peak_gte_0"),
        ]
        indexes = [models.Index(fields=["user", "account", "created_at", "id"], name="equity_account_created")]

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
    value_pips = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True, help_text="Spreads.")
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
