"""Column bounds for derived numbers: what a ``DecimalField`` or an integer column can hold.

Input is bounded where it arrives (the serializers refuse it with a 400). A number the service
*derives* from valid input (a 1,000 % gap after a reverse split, a drawdown past 1,000 % on a
negative equity, a slippage of 10^10 pips on a mistyped requested price) is not the client's
error: it is stored clamped to the column's range (or as null) and the raw figure goes into the
row's ``details``, so one absurd tick never turns every later sync into a database error.
"""

from __future__ import annotations

from decimal import Decimal

INT32_MAX = 2**31 - 1  # PostgreSQL ``integer`` (Django's IntegerField / PositiveIntegerField)


def decimal_limit(*, max_digits: int, decimal_places: int) -> Decimal:
    """The largest magnitude a ``DecimalField(max_digits, decimal_places)`` holds: 10^(d−p) − 10^−p
    (``numeric(7, 4)`` → 999.9999)."""
    return Decimal(10) ** (max_digits - decimal_places) - Decimal(1).scaleb(-decimal_places)


def fits(value: Decimal, *, max_digits: int, decimal_places: int) -> bool:
    """True when ``value`` (already quantized to ``decimal_places``) fits the column."""
    return abs(value) <= decimal_limit(max_digits=max_digits, decimal_places=decimal_places)


def clamp_decimal(value: Decimal, *, max_digits: int, decimal_places: int) -> Decimal:
    """``value`` clamped into ±``decimal_limit`` (the sign kept), for a derived figure that must be stored."""
    limit = decimal_limit(max_digits=max_digits, decimal_places=decimal_places)
    return max(-limit, min(limit, value))
