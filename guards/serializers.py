"""guards serializers: thresholds (GET/PATCH) and alert episodes."""

from __future__ import annotations

from rest_framework import serializers

from accounts.fields import MoneyModelSerializer, MoneyOutputField
from accounts.serializers import AccountNameSerializer
from guards.models import CONFIG_FIELDS, DrawdownAlert, GuardConfig, Level, MarketAlert
from guards.rule_serializers import validate_by_model_clean
from tradingsite.api import price_decimal, rounded_decimal


class GuardConfigSerializer(MoneyModelSerializer):
    """The user's guard thresholds; every threshold is PATCH-able (percent 0–100, money in the account currency).

    Validates exactly as ``GuardConfig.clean``: 0 < warning < critical ≤ 100 per pair and drawdown
    thresholds ≥ 1 (so 0.15 is never taken for 15 %), checked against the merged instance on PATCH.
    spread_warning_pct and spread_critical_pct are an account-wide ceiling in percent of bid; each symbol's
    own spread thresholds (pips, percent, or multiples of its median spread) are in guards/instruments/.
    """

    class Meta:
        model = GuardConfig
        fields = (*CONFIG_FIELDS, "updated_at")
        read_only_fields = ("updated_at",)

    def validate(self, attrs):
        return validate_by_model_clean(GuardConfig, instance=self.instance, names=CONFIG_FIELDS, attrs=attrs)


class GuardConfigAccountSerializer(AccountNameSerializer):
    """The optional ``server`` and ``login`` of a ``PATCH guards/config/`` body: the account to configure."""


ALERT_FIELDS = (
    "id",
    "level",
    "max_level",
    "value_pct",
    "max_value_pct",
    "threshold_pct",
    "opened_at",
    "escalated_at",
    "resolved_at",
    "sync_id",
    "created_at",
    "updated_at",
)


class DrawdownAlertSerializer(MoneyModelSerializer):
    """One drawdown episode: levels, worst value (percent), equity and peak (account currency)."""

    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = DrawdownAlert
        fields = (*ALERT_FIELDS, "equity", "peak_equity", "below_min_equity", "is_open")
        read_only_fields = fields


class MarketAlertSerializer(MoneyModelSerializer):
    """One market episode on a symbol: ``price_gap``, ``wide_spread`` or ``stale_quote`` (quote-currency prices)."""

    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = MarketAlert
        fields = (
            *ALERT_FIELDS,
            "symbol",
            "condition",
            "bid",
            "ask",
            "reference_price",
            "value_pips",
            "age_seconds",
            "is_open",
        )
        read_only_fields = fields


# --------------------------------------------------------------------------------------------
# guards/status/ and guards/alerts/ (read side)
# --------------------------------------------------------------------------------------------
class DrawdownStatusSerializer(serializers.Serializer):
    """The stored drawdown guard: money in the account currency (its currency digits), percentages 0–100
    (2 dp, half-up)."""

    level = serializers.CharField(read_only=True)
    equity = MoneyOutputField()
    balance = MoneyOutputField()
    peak_equity = MoneyOutputField()
    drawdown_pct = rounded_decimal()
    warning_pct = rounded_decimal()
    critical_pct = rounded_decimal()
    should_close_all = serializers.BooleanField(read_only=True)
    since = serializers.DateTimeField(read_only=True, allow_null=True, help_text="When the current level began.")


class MarketAlertStatusSerializer(serializers.Serializer):
    """One open market alert: prices in the quote currency, percentages 0–100 (2 dp, half-up)."""

    symbol = serializers.CharField(read_only=True)
    condition = serializers.ChoiceField(choices=MarketAlert.Condition.choices, read_only=True)
    level = serializers.CharField(read_only=True)
    value_pct = rounded_decimal()
    threshold_pct = rounded_decimal()
    bid = price_decimal(allow_null=True)
    ask = price_decimal(allow_null=True)
    reference_price = price_decimal(allow_null=True)
    should_close_positions = serializers.BooleanField(read_only=True)
    since = serializers.DateTimeField(read_only=True)


class AdverseMoveSerializer(serializers.Serializer):
    """The move of the largest net exposure that would reach stop-out, at the current margin and rates."""

    symbol = serializers.CharField(read_only=True)
    pips = rounded_decimal()
    price_move = price_decimal()


class MarginStatusSerializer(serializers.Serializer):
    """The margin guard: margin level and the broker's levels in percent (money-mode levels converted at
    the current margin), distance to stop-out in the account currency and in percent of equity.
    levels_source is "broker" when the sync sent margin_so_call/margin_so_so, else "default" (100 % / 50 %)."""

    level = serializers.CharField(read_only=True)
    margin_level_pct = rounded_decimal(allow_null=True)
    margin_call_level_pct = rounded_decimal(allow_null=True)
    stop_out_level_pct = rounded_decimal(allow_null=True)
    levels_source = serializers.CharField(read_only=True, allow_null=True)
    stop_out_equity = rounded_decimal(allow_null=True)
    distance_to_stop_out = rounded_decimal(allow_null=True)
    distance_to_stop_out_pct = rounded_decimal(allow_null=True)
    adverse_move = AdverseMoveSerializer(read_only=True, allow_null=True)
    should_close_all = serializers.BooleanField(read_only=True)


class RuleStatusSerializer(serializers.Serializer):
    """One loss rule after the latest sync: limit equity and distance to it (account currency, and percent
    of equity), the next reset of the trading day and the day's breach (critical, closes everything)."""

    name = serializers.CharField(read_only=True)
    kind = serializers.CharField(read_only=True)
    level = serializers.CharField(read_only=True)
    limit_equity = rounded_decimal(allow_null=True)
    distance = rounded_decimal(allow_null=True)
    distance_pct = rounded_decimal(allow_null=True)
    next_reset = serializers.DateTimeField(read_only=True, allow_null=True)
    breached_at = serializers.DateTimeField(read_only=True, allow_null=True)
    day_start_at = serializers.DateTimeField(read_only=True, allow_null=True)
    should_close_all = serializers.BooleanField(read_only=True)


class GuardStatusOutputSerializer(serializers.Serializer):
    """Body of ``GET guards/status/``; ``drawdown`` is null before the first sync."""

    system_status = serializers.ChoiceField(choices=["healthy", "warning", "critical", "stale", "idle"], read_only=True)
    any_positions_should_close = serializers.BooleanField(read_only=True)
    drawdown = DrawdownStatusSerializer(read_only=True, allow_null=True)
    market_alerts = MarketAlertStatusSerializer(many=True, read_only=True)
    margin = MarginStatusSerializer(read_only=True, allow_null=True)
    rules = RuleStatusSerializer(many=True, read_only=True)
    evaluated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class AlertQuerySerializer(serializers.Serializer):
    """Query string of ``GET guards/alerts/``; every parameter only narrows the user's history.

    ``kind`` picks one table; ``symbol`` and ``condition`` apply to market alerts only (giving either
    leaves drawdown episodes out); ``open=true`` keeps unresolved episodes; ``created_after`` is
    inclusive, ``created_before`` exclusive.
    """

    kind = serializers.ChoiceField(choices=["drawdown", "market"], required=False)
    level = serializers.ChoiceField(choices=Level.choices, required=False)
    open = serializers.BooleanField(required=False, allow_null=True, default=None)
    symbol = serializers.CharField(max_length=32, required=False)
    condition = serializers.ChoiceField(choices=MarketAlert.Condition.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
