"""guards serializers: thresholds (GET/PATCH) and alert episodes (SPEC §5, §6)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from guards.models import DrawdownAlert, GuardConfig, MarketAlert
from guards.services import CONFIG_FIELDS


class GuardConfigSerializer(serializers.ModelSerializer):
    """The user's guard thresholds; every threshold is PATCH-able (percent 0–100, money in the account currency).

    Validates exactly as ``GuardConfig.clean``: 0 < warning < critical ≤ 100 per pair and drawdown
    thresholds ≥ 1 (so 0.15 is never taken for 15 %), checked against the merged instance on PATCH.
    """

    class Meta:
        model = GuardConfig
        fields = (*CONFIG_FIELDS, "updated_at")
        read_only_fields = ("updated_at",)

    def validate(self, attrs):
        candidate = (
            GuardConfig(**{name: getattr(self.instance, name) for name in CONFIG_FIELDS})
            if self.instance
            else GuardConfig()
        )
        for name, value in attrs.items():
            setattr(candidate, name, value)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


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


class DrawdownAlertSerializer(serializers.ModelSerializer):
    """One drawdown episode: levels, worst value (percent), equity and peak (account currency)."""

    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = DrawdownAlert
        fields = (*ALERT_FIELDS, "equity", "peak_equity", "below_min_equity", "is_open")
        read_only_fields = fields


class MarketAlertSerializer(serializers.ModelSerializer):
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
