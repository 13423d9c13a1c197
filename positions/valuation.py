"""Valuation of open positions: pure functions over ``Decimal``, no database, no I/O.

Units: prices in the instrument's quote currency (``Instrument.currency_profit``), volumes in lots,
contract sizes in units per lot, pips in the instrument's ``pip_size``, percentages 0–100, money in
the account currency unless a name says ``quote``. Nothing here rounds: rounding half-up to 2 dp
happens only when rendering (:func:`render_2dp`, and the output serializers).

Formulas, with d = +1 for a buy and −1 for a sell:

* ``pnl_pips = d × (price_current − price_open) / pip_size``
* ``unrealized_pnl_pct = d × (price_current − price_open) / price_open × 100``
* quote-currency P&L ``= d × (price_current − price_open) × volume × contract_size`` (forex and CFD
  calculation modes); futures modes (MT5 ``SYMBOL_TRADE_CALC_MODE`` 1 futures, 33 exchange futures,
  34 FORTS futures): ``d × (price_current − price_open) / tick_size × tick_value × volume`` (MQL5
  reference, "Margin and profit calculation formulas"); other modes are left unvalued with a reason.
* account-currency P&L: unchanged when quote = account currency; else converted through the quoted
  instruments, matched by their ``currency_base``/``currency_profit`` (never by concatenated names, so
  ``GBPUSD.r`` works): one leg (an instrument B/P converts P → B by dividing by its mid, B → P by
  multiplying), else two legs through USD. No rate → ``None`` (the position is *unvalued*, reason
  ``no_rate``); a rate of 1.0 is never assumed. Every converted value carries its rate path.
* the position valued is the one the broker holds: its side and volume (a partial fill of 0.40 of a
  registered 1.00 is valued at 0.40); the bot's intent only feeds the divergences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def direction(side: str) -> int:
    """Return the d: +1 for ``"buy"``, −1 for ``"sell"``. Raises ``ValueError`` otherwise."""
    if side == "buy":
        return 1
    if side == "sell":
        return -1
    raise ValueError(f"unknown side {side!r}")


def pnl_pips(*, side: str, price_open: Decimal, price_current: Decimal, pip_size: Decimal) -> Decimal:
    """Return the move in pips, positive when the position gains.

    EURUSD sell 1.0950 → 1.0945 with pip 0.0001: −1 × (−0.0005) / 0.0001 = 5 pips.
    """
    return direction(side) * (price_current - price_open) / pip_size


def pnl_pct(*, side: str, price_open: Decimal, price_current: Decimal) -> Decimal:
    """Return the move in percent of the entry price (0–100 scale), positive when the position gains.

    XAUUSD buy 1950.50 → 1955.75: 5.25 / 1950.50 × 100 = 0.2691… %.
    """
    return direction(side) * (price_current - price_open) / price_open * HUNDRED


def quote_pnl(
    *, side: str, price_open: Decimal, price_current: Decimal, volume: Decimal, contract_size: Decimal
) -> Decimal:
    """Return the unrealized P&L in the instrument's quote currency.

    ``volume`` in lots, ``contract_size`` in units per lot. XAUUSD buy 0.10 lot of 100 oz,
    1950.50 → 1955.75: 5.25 × 0.10 × 100 = 52.50 USD.
    """
    return direction(side) * (price_current - price_open) * volume * contract_size


def mid(*, bid: Decimal, ask: Decimal) -> Decimal:
    """Return (bid + ask) / 2 in the quote currency."""
    return (bid + ask) / 2


@dataclass(frozen=True)
class Rate:
    """A quoted instrument usable for conversion: 1 ``base`` = ``mid`` ``profit`` (its ``currency_base`` and
    ``currency_profit``), e.g. GBPUSD.r: base GBP, profit USD, mid 1.25."""

    symbol: str
    base: str
    profit: str
    mid: Decimal


# Currencies tried as the middle of a two-leg conversion, in order.
PIVOTS = ("USD",)


def _leg(rates: Sequence[Rate], source: str, target: str) -> tuple[Rate, str] | None:
    """The quoted rate converting ``source`` → ``target``: (rate, "divide" | "multiply"). An instrument
    TARGET/SOURCE (divide by its mid) wins over SOURCE/TARGET (multiply), as MT5 quotes the major first."""
    usable = [rate for rate in rates if rate.mid > 0]
    for rate in usable:
        if rate.profit == source and rate.base == target:
            return rate, "divide"
    for rate in usable:
        if rate.base == source and rate.profit == target:
            return rate, "multiply"
    return None


def conversion_path(*, source: str, target: str, rates: Sequence[Rate]) -> list[tuple[Rate, str]] | None:
    """Return the legs converting ``source`` → ``target`` currency: ``[]`` when equal, one leg when an
    instrument links them, else two legs through a pivot (USD); None when no path exists."""
    source, target = source.upper(), target.upper()
    if source == target:
        return []
    direct = _leg(rates, source, target)
    if direct is not None:
        return [direct]
    for pivot in PIVOTS:
        if pivot in (source, target):
            continue
        first, second = _leg(rates, source, pivot), _leg(rates, pivot, target)
        if first is not None and second is not None:
            return [first, second]
    return None


def convert_to_account(
    *, amount: Decimal, quote_currency: str | None, account_currency: str | None, rates: Sequence[Rate]
) -> tuple[Decimal | None, list[dict[str, Any]]]:
    """Convert ``amount`` from ``quote_currency`` to ``account_currency`` with the account's quoted rates.

    Returns (value, rate path); (None, []) when a currency is unknown or no path exists. The path lists
    each leg as ``{"symbol", "mid", "operation"}`` (operation "divide" or "multiply").

    GBP account, 50,000 JPY, quotes USDJPY 150.00 and GBPUSD 1.25000: 50,000 / 150 = 333.33… USD, then
    / 1.25 = 266.67 GBP (path USDJPY divide, GBPUSD divide).
    """
    if not account_currency or not quote_currency:
        return None, []
    legs = conversion_path(source=quote_currency, target=account_currency, rates=rates)
    if legs is None:
        return None, []
    value = amount
    path = []
    for rate, operation in legs:
        value = value / rate.mid if operation == "divide" else value * rate.mid
        path.append({"symbol": rate.symbol, "mid": rate.mid, "operation": operation})
    return value, path


# MT5 SYMBOL_TRADE_CALC_MODE values (Instrument.CalcMode).
CONTRACT_MODES = frozenset({0, 2, 3, 4, 5, 32})  # forex, CFD (index, leverage), forex no leverage, stocks
FUTURES_MODES = frozenset({1, 33, 34})  # futures, exchange futures, FORTS futures: valued by tick value / size


def broker_holding(*, side: str, volume: Decimal, divergence_details: Mapping[str, Any] | None) -> tuple[str, Decimal]:
    """Return the (side, volume in lots) the broker holds for a ledger row.

    The ledger keeps the bot's intent; when the last sync showed a ``side_mismatch``, ``partial_fill``
    or ``volume_mismatch``, its ``actual`` value is what the broker holds (a 0.40 partial fill of a
    registered 1.00 → 0.40). Open P&L is computed from this, never from the intent.
    """
    details = divergence_details or {}
    held_side = (details.get("side_mismatch") or {}).get("actual") or side
    for reason in ("partial_fill", "volume_mismatch"):
        actual = (details.get(reason) or {}).get("actual")
        if actual is not None:
            return held_side, Decimal(str(actual))
    return held_side, volume


@dataclass(frozen=True)
class PositionValue:
    """The valuation of one open position; every field is ``None`` when it cannot be computed.

    ``pnl_pips`` in pips, ``pnl_pct`` in percent (0–100), ``quote_pnl`` in the quote currency,
    ``unrealized_pnl`` in the account currency (``None`` = unvalued), ``reason`` why it is unvalued
    (``no_price``, ``spec_missing``, ``calc_mode_unsupported``, ``no_rate``, ``out_of_range``; None when
    valued) and
    ``rate_path`` the conversion legs used (``[]`` when the quote currency is the account currency).
    """

    pnl_pips: Decimal | None
    pnl_pct: Decimal | None
    quote_pnl: Decimal | None
    unrealized_pnl: Decimal | None
    reason: str | None = None
    rate_path: list[dict[str, Any]] = field(default_factory=list)


# Figures at or beyond this magnitude are not shown (reason ``out_of_range``): the money columns hold
# 18 integer digits, and rendering them at 2 decimal places must stay inside the 28-digit decimal context.
VALUE_LIMIT = Decimal(10) ** 18


def _bounded(value: Decimal | None) -> Decimal | None:
    """``value``, or None when its magnitude is ``VALUE_LIMIT`` or more."""
    return None if value is None or abs(value) >= VALUE_LIMIT else value


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
    rates: Sequence[Rate] = (),
    calc_mode: int | None = 0,
    tick_value: Decimal | None = None,
    tick_size: Decimal | None = None,
) -> PositionValue:
    """Value one position as the broker holds it (``side``, ``volume``). Instrument fields are ``None``
    when the symbol has no ``Instrument`` row (reason ``spec_missing``).

    Futures modes (1, 33, 34) are valued by tick value / tick size (``tick_value`` is in the quote
    currency ``currency_profit``); a mode neither contract- nor futures-style is left unvalued
    (reason ``calc_mode_unsupported``) rather than guessed. A P&L of 10^18 or more (in the quote or the
    account currency; an absurd but valid position) is left unvalued with reason ``out_of_range``.
    """
    if price_open is None or price_current is None or price_open <= 0:
        return PositionValue(None, None, None, None, reason="no_price")
    pct = _bounded(pnl_pct(side=side, price_open=price_open, price_current=price_current))
    pips = _bounded(
        pnl_pips(side=side, price_open=price_open, price_current=price_current, pip_size=pip_size) if pip_size else None
    )
    if contract_size is None or not quote_currency:
        return PositionValue(pips, pct, None, None, reason="spec_missing")
    mode = calc_mode or 0
    if mode in FUTURES_MODES:
        if not tick_value or not tick_size:
            return PositionValue(pips, pct, None, None, reason="spec_missing")
        in_quote = direction(side) * (price_current - price_open) / tick_size * tick_value * volume
    elif mode in CONTRACT_MODES:
        in_quote = quote_pnl(
            side=side, price_open=price_open, price_current=price_current, volume=volume, contract_size=contract_size
        )
    else:
        return PositionValue(pips, pct, None, None, reason="calc_mode_unsupported")
    if _bounded(in_quote) is None:
        return PositionValue(pips, pct, None, None, reason="out_of_range")
    in_account, path = convert_to_account(
        amount=in_quote, quote_currency=quote_currency, account_currency=account_currency, rates=rates
    )
    if in_account is None:
        return PositionValue(pips, pct, in_quote, None, reason="no_rate")
    if _bounded(in_account) is None:
        return PositionValue(pips, pct, in_quote, None, reason="out_of_range")
    return PositionValue(pips, pct, in_quote, in_account, reason=None, rate_path=path)


@dataclass(frozen=True)
class Totals:
    """Portfolio totals: ``total_unrealized_pnl`` in the account currency over valued positions,
    ``total_unrealized_pnl_pct`` = total / equity × 100 (``None`` without an equity), ``unvalued_positions``
    = positions whose account-currency P&L is ``None``."""

    total_unrealized_pnl: Decimal
    total_unrealized_pnl_pct: Decimal | None
    unvalued_positions: int


def totals(*, values: Iterable[Decimal | None], equity: Decimal | None) -> Totals:
    """Sum the valued positions' account-currency P&L and relate it to the latest equity."""
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
