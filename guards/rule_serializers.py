"""guards rule serializers: an account's loss rules and the firm presets (guards/rules/)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.money import MONEY
from guards import loss_rules
from guards.models import LossRule
from guards.rule_services import RULE_FIELDS
from tradingsite.api import rounded_decimal


def validate_by_model_clean(model, *, instance, names, attrs):
    """Run ``model.clean`` on the instance's ``names`` merged with ``attrs`` (a PATCH is checked whole);
    Django field errors become a DRF 400. Returns ``attrs``."""
    candidate = model(**{name: getattr(instance, name) for name in names}) if instance else model()
    for name, value in attrs.items():
        setattr(candidate, name, value)
    try:
        candidate.clean()
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.message_dict) from exc
    return attrs


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", "example": "17:00:00"})
class LocalTimeField(serializers.TimeField):
    """A time of day on the rule's own clock (HH:MM[:SS]); no UTC offset, the rule's time zone gives it."""


STATE_OUTPUT_FIELDS = ("day_start_at", "day_start_balance", "highest_eod_balance", "breached_at")
RESULT_OUTPUT_FIELDS = ("level", "limit_equity", "distance", "distance_pct", "next_reset", "evaluated_at")


class LossRuleSerializer(serializers.ModelSerializer):
    """One loss rule: equity may not fall to (or, when inclusive, reach) anchor − loss amount.

    kind: daily_loss or max_loss. anchor: initial_capital, day_start (the value at the last reset, by
    basis: balance, equity or max_balance_equity) or highest_eod_balance. Give exactly one of amount
    (account currency) and percent (0–100, of the initial capital or of the anchor: percent_of).
    reset_time and timezone (IANA, e.g. Europe/Prague) start each trading day. The state and result
    fields are read-only: the latest sync's limit equity, distance (money and percent of equity),
    next reset and the current trading day's breach.
    """

    distance_pct = rounded_decimal(allow_null=True)
    reset_time = LocalTimeField(required=False, help_text="Start of the trading day on the time zone's clock.")

    class Meta:
        model = LossRule
        fields = ("id", *RULE_FIELDS, "preset", "source", *STATE_OUTPUT_FIELDS, *RESULT_OUTPUT_FIELDS, "updated_at")
        read_only_fields = ("id", "preset", "source", *STATE_OUTPUT_FIELDS, *RESULT_OUTPUT_FIELDS, "updated_at")

    def validate(self, attrs):
        return validate_by_model_clean(LossRule, instance=self.instance, names=RULE_FIELDS, attrs=attrs)


class PresetApplySerializer(serializers.Serializer):
    """Body of ``POST guards/rules/presets/``: the preset's key and the account's initial capital."""

    preset = serializers.ChoiceField(choices=sorted(loss_rules.PRESETS))
    initial_capital = serializers.DecimalField(
        **MONEY, required=False, min_value=Decimal("0.00000001"), help_text="Account currency, greater than 0."
    )


class PresetRuleSerializer(serializers.Serializer):
    """One rule of a preset, with the published source of its figures."""

    name = serializers.CharField()
    kind = serializers.CharField()
    anchor = serializers.CharField()
    basis = serializers.CharField()
    percent = serializers.DecimalField(max_digits=6, decimal_places=3, allow_null=True)
    percent_of = serializers.CharField()
    reset_time = LocalTimeField()
    timezone = serializers.CharField()
    inclusive = serializers.BooleanField()
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field; DRF's metaclass moves it off the class


class PresetSerializer(serializers.Serializer):
    """A firm preset: its key and rules."""

    preset = serializers.CharField()
    rules = PresetRuleSerializer(many=True)
