"""Valuation of open positions (SPEC §4): pure functions over ``Decimal``, no database, no I/O.

Units: prices in the instrument's quote currency (``Instrument.currency_profit``), volumes in lots,
contract sizes in units per lot, pips in the instrument's ``pip_size``, percentages 0–100, money in
the account currency unless a name says ``quote``. Nothing here rounds: rounding half-up to 2 dp
happens only when rendering (:func:`render_2dp`, and the output serializers).

Formulas (SPEC §4), with d = +1 for a buy and −1 for a sell:

* ``pnl_pips = d × (price_current − price_open) / pip_size``
* ``unrealized_pnl_pct = d × (price_current − price_open) / price_open × 100``
* quote-currency P&L ``= d × (price_current − price_open) × volume × contract_size``
* account-currency P&L: unchanged when quote = account currency; else divided by the mid of
  ACCOUNT/QUOTE (e.g. GBPUSD for USD P&L in a GBP account) or multiplied by the mid of
  QUOTE/ACCOUNT. No rate → ``None`` (the position is *unvalued*); a rate of 1.0 is never assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def direction(side: str) -> int:
    """Return SPEC §4's d: +1 for ``"buy"``, −1 for ``"sell"``. Raises ``ValueError`` otherwise."""
    if side == "buy":
        return 1
    if side == "sell":
        return -1
    raise ValueError(f"unknown side {side!r}")


def pnl_pips(*, side: str, price_open: Decimal, price_current: Decimal, pip_size: Decimal) -> Decimal:
    """Return the move in pips, positive when the position gains (SPEC §4).

    EURUSD sell 1.0950 → 1.0945 with pip 0.0001: −1 × (−0.0005) / 0.0001 = 5 pips.
    """
    return direction(side) * (price_current - price_open) / pip_size


def pnl_pct(*, side: str, price_open: Decimal, price_current: Decimal) -> Decimal:
    """Return the move in percent of the entry price (0–100 scale), positive when the position gains (SPEC §4).

    XAUUSD buy 1950.50 → 1955.75: 5.25 / 1950.50 × 100 = 0.2691… %.
    """
    return direction(side) * (price_current - price_open) / price_open * HUNDRED


def quote_pnl(
    *, side: str, price_open: Decimal, price_current: Decimal, volume: Decimal, contract_size: Decimal
) -> Decimal:
    """Return the unrealized P&L in the instrument's quote currency (SPEC §4).

    ``volume`` in lots, ``contract_size`` in units per lot. XAUUSD buy 0.10 lot of 100 oz,
    1950.50 → 1955.75: 5.25 × 0.10 × 100 = 52.50 USD.
    """
    return direction(side) * (price_current - price_open) * volume * contract_size


def mid(*, bid: Decimal, ask: Decimal) -> Decimal:
    """Return (bid + ask) / 2 in the quote currency."""
    return (bid + ask) / 2


def convert_to_account(
    *, amount: Decimal, quote_currency: str, account_currency: str | None, mids: Mapping[str, Decimal]
) -> Decimal | None:
    """Convert ``amount`` from ``quote_currency`` to ``account_currency`` with the user's latest mids (SPEC §4).

    ``mids`` maps an upper-case symbol (e.g. ``"GBPUSD"``) to its latest mid. Returns ``amount``
    unchanged when the currencies are equal; ``amount / mid(ACCOUNT+QUOTE)`` when that pair is
    quoted, else ``amount × mid(QUOTE+ACCOUNT)``; ``None`` when the account currency is unknown or
    neither pair has a usable (positive) rate. Never assumes a rate of 1.0.

    USDJPY P&L of 50,000 JPY in a USD account with USDJPY mid 150.50: 50,000 / 150.50 = 332.225… USD.
    """
    if not account_currency or not quote_currency:
        return None
    account, quote = account_currency.upper(), quote_currency.upper()
    if account == quote:
        return amount
    direct = mids.get(account + quote)
    if direct is not None and direct > 0:
        return amount / direct
    inverse = mids.get(quote + account)
    if inverse is not None and inverse > 0:
        return amount * inverse
    return None


@dataclass(frozen=True)
class PositionValue:
    """The valuation of one open position; every field is ``None`` when it cannot be computed.

    ``pnl_pips`` in pips, ``pnl_pct`` in percent (0–100), ``quote_pnl`` in the quote currency,
    ``unrealized_pnl`` in the account currency (``None`` = unvalued: no price, no instrument or no rate).
    """

    pnl_pips: Decimal | None
    pnl_pct: Decimal | None
    quote_pnl: Decimal | None
    unrealized_pnl: Decimal | None


def value_position(
    *,
    side: str,
    volume: Decimal,
    price_open: Decimal | None,
    price_current: Decimal | None,
    pip_size: Decimal | None,
    contract_size: Decimal | None,
    quote_currency: str | None,
    account_currency: str | None,
    mids: Mapping[str, Decimal],
) -> PositionValue:
    """Value one position (SPEC §4). Instrument fields are ``None`` when the symbol has no ``Instrument`` row."""
    if price_open is None or price_current is None or price_open <= 0:
        return PositionValue(None, None, None, None)
    pct = pnl_pct(side=side, price_open=price_open, price_current=price_current)
    pips = (
        pnl_pips(side=side, price_open=price_open, price_current=price_current, pip_size=pip_size) if pip_size else None
    )
    if contract_size is None or quote_currency is None:
        return PositionValue(pips, pct, None, None)
    in_quote = quote_pnl(
        side=side, price_open=price_open, price_current=price_current, volume=volume, contract_size=contract_size
    )
    in_account = convert_to_account(
        amount=in_quote, quote_currency=quote_currency, account_currency=account_currency, mids=mids
    )
    return PositionValue(pips, pct, in_quote, in_account)


@dataclass(frozen=True)
class Totals:
    """Portfolio totals (SPEC §4): ``total_unrealized_pnl`` in the account currency over valued positions,
    ``total_unrealized_pnl_pct`` = total / equity × 100 (``None`` without an equity), ``unvalued_positions``
    = positions whose account-currency P&L is ``None``."""

    total_unrealized_pnl: Decimal
    total_unrealized_pnl_pct: Decimal | None
    unvalued_positions: int


def totals(*, values: Iterable[Decimal | None], equity: Decimal | None) -> Totals:
    """Sum the valued positions' account-currency P&L and relate it to the latest equity (SPEC §4)."""
    total = Decimal(0)
    unvalued = 0
    for value in values:
        if value is None:
            unvalued += 1
        else:
            total += value
    pct = total / equity * HUNDRED if equity else None
    return Totals(total, pct, unvalued)


def render_2dp(value: Decimal | None) -> Decimal | None:
    """Round half-up to 2 decimal places, for rendering only (STYLE: money rounds only when shown)."""
    if value is None:
        return None
    return value.quantize(CENT, rounding=ROUND_HALF_UP)
