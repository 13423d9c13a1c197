"""Build the body of ``POST /api/v1/reconciliation/syncs/`` as an MT5 sync worker sends it.

One builder for every producer of sync payloads (tests, the replay harness, the Locust load test,
``seed_demo``, ``scripts/demo_feed.py``, the benchmark), so the shape lives in one place. No Django
import: the Locust file and the replay harness use it without settings.

Each function returns the JSON-ready dict of one MT5 call, in MT5's field names (the MetaTrader 5
Python API: https://www.mql5.com/en/docs/python_metatrader5 — ``account_info()``, ``positions_get()``,
``history_deals_get()``, ``symbol_info_tick()``, ``symbol_info()``):

* money, prices and volumes are given as ``Decimal`` (or ``int``, or an already formatted ``str``) and
  written as decimal strings, never floats: the serializer reads strings exactly
  (``reconciliation.serializers.FiniteDecimalField``);
* ``type`` of a position is MT5's ``POSITION_TYPE_BUY`` 0 / ``POSITION_TYPE_SELL`` 1 ("buy"/"sell"
  are accepted and written as 0/1);
* ``sl``/``tp`` of None are written as "0", MT5's "no stop";
* times are an aware ``datetime`` (written as ISO 8601 with ``Z``: a UTC instant, not shifted again
  by the service) or MT5's epoch seconds as an ``int`` (the trade server's clock: the service shifts
  them by the account's ``server_utc_offset``); a ``str`` is passed through.

Optional MT5 fields are written only when given, so the serializer's documented defaults apply.
What the endpoint accepts is ``reconciliation.serializers.SyncInputSerializer`` (docs/architecture.md,
"The write path of a sync").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Number = Decimal | int | str
"""A money amount, price or volume: a ``Decimal``, an ``int`` or a decimal string (never a float)."""
BrokerTime = datetime | int | str
"""An aware ``datetime`` (UTC instant), MT5 epoch seconds (server clock) or an ISO 8601 string."""
Side = int | str
"""A position's side: MT5's 0 (buy) / 1 (sell), or "buy"/"sell"."""

POSITION_TYPE = {0: 0, 1: 1, "buy": 0, "sell": 1}
"""MT5 ``ENUM_POSITION_TYPE``: 0 buy, 1 sell."""


def wire_number(value: Number) -> str:
    """``value`` as a decimal string ("1.09500", "-0.40"); floats are refused (binary fractions are not money)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"expected Decimal, int or str, got {type(value).__name__}")
    return str(value)


def wire_time(value: BrokerTime) -> int | str:
    """An aware datetime → ISO 8601 UTC with ``Z``; MT5 epoch seconds (int) and strings unchanged."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a broker time datetime must be timezone-aware")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"expected datetime, int or str, got {type(value).__name__}")
    return value


def _position_type(side: Side) -> int:
    if isinstance(side, bool) or side not in POSITION_TYPE:
        raise ValueError(f"a position type is 0, 1, 'buy' or 'sell', not {side!r}")
    return POSITION_TYPE[side]


def _optional(row: dict[str, Any], numbers: dict[str, Number | None], plain: dict[str, Any]) -> dict[str, Any]:
    """Add the given optional fields to ``row``: ``numbers`` as decimal strings, ``plain`` as they are."""
    row.update({name: wire_number(value) for name, value in numbers.items() if value is not None})
    row.update({name: value for name, value in plain.items() if value is not None})
    return row


def account_info(
    *,
    login: int,
    server: str,
    currency: str,
    balance: Number,
    equity: Number,
    margin: Number = 0,
    margin_free: Number | None = None,
    credit: Number | None = None,
    currency_digits: int | None = None,
    leverage: int | None = None,
    margin_mode: int | None = None,
    server_utc_offset: int | None = None,
    margin_level: Number | None = None,
    margin_so_mode: int | None = None,
    margin_so_call: Number | None = None,
    margin_so_so: Number | None = None,
    name: str | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """MT5 ``account_info()``: money in the account currency; ``margin_free`` defaults to ``equity - margin``.

    ``server_utc_offset`` (minutes, e.g. 120 for UTC+2) is not an MT5 field: the worker adds it so the
    service can turn server-clock times into UTC. ``margin_level`` is in percent.
    """
    if margin_free is None:
        margin_free = Decimal(wire_number(equity)) - Decimal(wire_number(margin))
    row: dict[str, Any] = {
        "login": login,
        "server": server,
        "currency": currency,
        "balance": wire_number(balance),
        "equity": wire_number(equity),
        "margin": wire_number(margin),
        "margin_free": wire_number(margin_free),
    }
    return _optional(
        row,
        numbers={
            "credit": credit,
            "margin_level": margin_level,
            "margin_so_call": margin_so_call,
            "margin_so_so": margin_so_so,
        },
        plain={
            "currency_digits": currency_digits,
            "leverage": leverage,
            "margin_mode": margin_mode,
            "server_utc_offset": server_utc_offset,
            "margin_so_mode": margin_so_mode,
            "name": name,
            "company": company,
        },
    )


def position(
    *,
    ticket: int,
    symbol: str,
    type: Side,  # noqa: A002 - MT5's field name
    volume: Number,
    price_open: Number,
    price_current: Number | None = None,
    sl: Number | None = None,
    tp: Number | None = None,
    swap: Number = 0,
    commission: Number = 0,
    profit: Number = 0,
    time: BrokerTime | None = None,
    identifier: int | None = None,
    magic: int | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """One MT5 ``positions_get()`` row: volume in lots, prices in the quote currency, money in the account
    currency; ``price_current`` defaults to ``price_open``; ``identifier`` (the opening order's ticket)
    is left out unless given (the service then takes the ticket)."""
    row: dict[str, Any] = {
        "ticket": ticket,
        "symbol": symbol,
        "type": _position_type(type),
        "volume": wire_number(volume),
        "price_open": wire_number(price_open),
        "price_current": wire_number(price_current if price_current is not None else price_open),
        "sl": wire_number(sl) if sl is not None else "0",
        "tp": wire_number(tp) if tp is not None else "0",
        "swap": wire_number(swap),
        "commission": wire_number(commission),
        "profit": wire_number(profit),
    }
    return _optional(
        row,
        numbers={},
        plain={
            "identifier": identifier,
            "time": None if time is None else wire_time(time),
            "magic": magic,
            "comment": comment,
        },
    )


def deal(
    *,
    ticket: int,
    position_id: int = 0,
    type: int | None = None,  # noqa: A002 - MT5's field name
    entry: int = 0,
    reason: int = 0,
    symbol: str | None = None,
    price: Number = 0,
    volume: Number = 0,
    profit: Number = 0,
    swap: Number = 0,
    commission: Number = 0,
    fee: Number | None = None,
    order: int | None = None,
    magic: int | None = None,
    comment: str | None = None,
    time: BrokerTime | None = None,
) -> dict[str, Any]:
    """One MT5 ``history_deals_get()`` row.

    ``type`` (``ENUM_DEAL_TYPE``): 0 buy, 1 sell, 2 balance, …; None leaves it out (a trade deal's side then
    follows from its position). ``entry``: 0 in, 1 out, 2 inout, 3 out by. ``reason``: 0 client,
    3 expert, 4 SL, 5 TP, 6 stop out. A balance operation has ``position_id`` 0 and its amount in ``profit``.
    """
    row: dict[str, Any] = {
        "ticket": ticket,
        "position_id": position_id,
        "entry": entry,
        "reason": reason,
        "price": wire_number(price),
        "volume": wire_number(volume),
        "profit": wire_number(profit),
        "swap": wire_number(swap),
        "commission": wire_number(commission),
    }
    return _optional(
        row,
        numbers={"fee": fee},
        plain={
            "type": type,
            "symbol": symbol,
            "order": order,
            "magic": magic,
            "comment": comment,
            "time": None if time is None else wire_time(time),
        },
    )


def tick(*, symbol: str, bid: Number, ask: Number | None = None, time: BrokerTime | None = None) -> dict[str, Any]:
    """MT5 ``symbol_info_tick()`` and the symbol's name: bid and ask in the quote currency (ask defaults to bid)."""
    row: dict[str, Any] = {
        "symbol": symbol,
        "bid": wire_number(bid),
        "ask": wire_number(ask if ask is not None else bid),
    }
    return _optional(row, numbers={}, plain={"time": None if time is None else wire_time(time)})


def symbol_spec(
    *,
    symbol: str,
    trade_contract_size: Number,
    digits: int,
    point: Number,
    currency_base: str,
    currency_profit: str,
    volume_step: Number | None = None,
    volume_min: Number | None = None,
    trade_calc_mode: int | None = None,
    trade_tick_value: Number | None = None,
    trade_tick_size: Number | None = None,
    sessions: Iterable[dict[str, int]] | None = None,
) -> dict[str, Any]:
    """MT5 ``symbol_info()`` fields that describe an instrument (contract size in units per lot, point in price);
    ``sessions``: MQL5 ``SymbolInfoSessionTrade`` for each day and session index, ``[{"day_of_week": 0–6
    (0 = Sunday), "from": s, "to": s}]`` in seconds on the trade server's clock."""
    row: dict[str, Any] = {
        "symbol": symbol,
        "trade_contract_size": wire_number(trade_contract_size),
        "digits": digits,
        "point": wire_number(point),
        "currency_base": currency_base,
        "currency_profit": currency_profit,
    }
    return _optional(
        row,
        numbers={
            "volume_step": volume_step,
            "volume_min": volume_min,
            "trade_tick_value": trade_tick_value,
            "trade_tick_size": trade_tick_size,
        },
        plain={"trade_calc_mode": trade_calc_mode, "sessions": None if sessions is None else list(sessions)},
    )


def sync_body(
    *,
    account: dict[str, Any],
    broker_time: BrokerTime,
    positions: Iterable[dict[str, Any]] | None,
    quotes: Iterable[dict[str, Any]] = (),
    deals: Iterable[dict[str, Any]] = (),
    symbols: Iterable[dict[str, Any]] = (),
    sync_id: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """The whole sync body: ``account`` from :func:`account_info`, rows from :func:`position`, :func:`tick`,
    :func:`deal`, :func:`symbol_spec`.

    ``positions`` None sends ``null``: the worker could not read them ("unknown", nothing is judged
    missing); ``[]`` means the account is flat. ``sync_id`` (the idempotency key) defaults to a new
    UUID4; ``broker_time`` is when the worker read the terminal.
    """
    return {
        "sync_id": str(sync_id or uuid.uuid4()),
        "broker_time": wire_time(broker_time),
        "account": account,
        "positions": None if positions is None else list(positions),
        "quotes": list(quotes),
        "deals": list(deals),
        "symbols": list(symbols),
    }
