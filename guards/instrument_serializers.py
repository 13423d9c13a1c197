"""guards instrument serializers: each instrument's effective pip, tolerances and spread thresholds
(``GET guards/instruments/``) and an account's overrides of one symbol (``PATCH guards/instruments/{symbol}/``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from guards.instruments import SETTING_FIELDS
from guards.models import InstrumentGuardSetting
from guards.rule_serializers import validate_by_model_clean
from tradingsite.api import price_decimal


def ratio(**kwargs: Any) -> serializers.DecimalField:
    """A read-only figure (pips, percent, a multiple) rendered with 4 decimal places."""
    return serializers.DecimalField(max_digits=None, decimal_places=4, read_only=True, **kwargs)


class ToleranceOutputSerializer(serializers.Serializer):
    """One tolerance: max(floor, spread_multiple × the median spread). floor_unit: pips (of the instrument)
    or pct (percent of price); source: override (the account set the floor) or default. at_price and
    at_price_pips: the tolerance at the reference price (price units, pips), null before a quote."""

    floor_unit = serializers.CharField()
    floor = ratio()
    spread_multiple = ratio()
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field; DRF's metaclass moves it off the class
    at_price = price_decimal(allow_null=True)
    at_price_pips = ratio(allow_null=True)


class SpreadThresholdOutputSerializer(serializers.Serializer):
    """The spread thresholds in force: unit pips, pct (of bid) or median_multiple; source override, median
    (3 × / 6 × the rolling median) or class_default."""

    unit = serializers.CharField()
    warning = ratio()
    critical = ratio()
    source = serializers.CharField()  # type: ignore[assignment]  # a declared field; DRF's metaclass moves it off the class


class InstrumentSettingSerializer(serializers.ModelSerializer):
    """The account's overrides of one symbol; null (or spread_unit "") = the default.

    pip_size: price units. entry/stop tolerance floors: pips (of the instrument's pip) or pct (percent of
    price); when both are set, pips win. spread_unit pips, pct or median_multiple with 0 < spread_warning <
    spread_critical.
    """

    class Meta:
        model = InstrumentGuardSetting
        fields = SETTING_FIELDS
        extra_kwargs = {"spread_unit": {"allow_blank": True, "allow_null": True}}

    def validate(self, attrs):
        if attrs.get("spread_unit") is None and "spread_unit" in attrs:
            attrs["spread_unit"] = ""
        return validate_by_model_clean(InstrumentGuardSetting, instance=self.instance, names=SETTING_FIELDS,
                                       attrs=attrs)  # fmt: skip


class InstrumentGuardSerializer(serializers.Serializer):
    """One instrument's effective guard rules and where each comes from (override or default). pip_size,
    the tolerances and the spread thresholds are null for a symbol with overrides whose specs (and pip) the
    service does not know yet."""

    symbol = serializers.CharField()
    asset_class = serializers.CharField(help_text="fx, metal, index or crypto.")
    pip_size = price_decimal(allow_null=True)
    pip_size_source = serializers.CharField(
        allow_null=True, help_text="override (the account's) or instrument (the pip rule)."
    )
    reference_price = price_decimal(allow_null=True, help_text="Mid of the latest quote; null before one.")
    entry_tolerance = ToleranceOutputSerializer(allow_null=True)
    stop_tolerance = ToleranceOutputSerializer(allow_null=True)
    spread_thresholds = SpreadThresholdOutputSerializer(allow_null=True)
    median_spread = price_decimal(allow_null=True, help_text="Median of the recent spreads, price units.")
    median_spread_pips = ratio(allow_null=True)
    spread_samples = serializers.IntegerField(help_text="Spreads in the rolling window.")
    median_in_use = serializers.BooleanField(help_text="Enough spreads are known for the median to apply.")
    override = InstrumentSettingSerializer(allow_null=True, help_text="The account's overrides, null when none.")
