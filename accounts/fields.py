"""Money fields: columns that hold any account's ``currency_digits`` (0 … 8), shown without padding.

The column keeps 8 decimals (``accounts.models.MONEY``) so a BTC-denominated balance 0.12345678 is
stored exactly. Read back, a value is shown with its significant decimals but never fewer than 2
(10000.00000000 → 10000.00, 0.12345678 → 0.12345678), so 2-digit accounts read as before. Where the
account is known, :func:`render_money` quantizes to its ``currency_digits``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.money import MONEY, quantize_money

TWO_PLACES = Decimal("0.01")


def trim_money(value: Decimal | None) -> Decimal | None:
    """Drop trailing zeros beyond the second decimal (10000.00000000 → 10000.00; 0.12345678 stays)."""
    if value is None or not value.is_finite():
        return value
    normalized = value.normalize()
    if normalized.as_tuple().exponent >= -2:  # type: ignore[operator]
        return value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP)
    return normalized


def render_money(value: Decimal | None, digits: int | None = None) -> str | None:
    """Money as a string: quantized to ``digits`` (the account's ``currency_digits``) when given, else
    trimmed by :func:`trim_money`; None stays None."""
    if value is None:
        return None
    shown = quantize_money(value, digits) if digits is not None else trim_money(value)
    return format(shown, "f")


class MoneyField(models.DecimalField):
    """A money column (``MONEY``: 26 digits, 8 decimals) whose values read back trimmed (see :func:`trim_money`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MONEY["max_digits"])
        kwargs.setdefault("decimal_places", MONEY["decimal_places"])
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Decimal | None:
        if value is None:
            return None
        return trim_money(value if isinstance(value, Decimal) else Decimal(str(value)))

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, "django.db.models.DecimalField", args, kwargs


@extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
class MoneyOutputField(serializers.Field):
    """A read-only money value rendered as a string: the account's ``currency_digits`` when the serializer
    context names them (``context["currency_digits"]``), else trimmed to its significant decimals (≥ 2)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        digits = self.context.get("currency_digits") if self.parent is not None else None
        return render_money(value if isinstance(value, Decimal) else Decimal(str(value)), digits)


class MoneyDecimalField(serializers.DecimalField):
    """A ``MoneyField``'s serializer field: parses like DRF's ``DecimalField`` (≤ 8 decimals), renders
    like :class:`MoneyOutputField` (the account's ``currency_digits`` from the context, else trimmed)."""

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        digits = self.context.get("currency_digits") if self.parent is not None else None
        return render_money(value if isinstance(value, Decimal) else Decimal(str(value)), digits)


class MoneyModelSerializer(serializers.ModelSerializer):
    """A ``ModelSerializer`` whose ``MoneyField`` columns use :class:`MoneyDecimalField`."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, MoneyField: MoneyDecimalField}
