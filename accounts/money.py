"""Money precision and account bounds shared by the models, fields and services (no Django models here)."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# Money columns hold up to 8 decimals (a BTC-denominated account reports 0.12345678) and 18 integer
# digits; values are quantized to the account's ``currency_digits`` where they enter and are shown.
MONEY: dict[str, Any] = {"max_digits": 26, "decimal_places": 8}
MAX_CURRENCY_DIGITS = 8
MAX_LOGIN = 2**63 - 1  # the BIGINT column's upper bound
# MT5 trade servers run from UTC−12:00 to UTC+14:00; the offset is in minutes.
MIN_UTC_OFFSET_MINUTES = -12 * 60
MAX_UTC_OFFSET_MINUTES = 14 * 60


def money_quantum(digits: int) -> Decimal:
    """Return the smallest money step of an account with ``digits`` currency digits (2 → 0.01)."""
    return Decimal(1).scaleb(-digits)


def quantize_money(value: Decimal | None, digits: int) -> Decimal | None:
    """Round ``value`` half-up to ``digits`` decimals (MT5's ``ACCOUNT_CURRENCY_DIGITS``); None stays None."""
    if value is None:
        return None
    return value.quantize(money_quantum(digits), rounding=ROUND_HALF_UP)
