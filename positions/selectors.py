"""positions selectors: reads of the ledger, scoped to one user and one of its accounts (keyword-only,
``user_id`` first, then ``account_id``; ``account_id`` None = every account of the user, which only the
history and a user with no account yet use).

:func:`open_positions` is a hot read (``GET positions/open/``): it returns plain, picklable data
through the per-user data cache (``OPEN_POSITIONS``, declared with :func:`tradingsite.caching.cached_read`). The
reconciliation status takes its ``open_positions_count`` from the same cached result, so the two
endpoints always agree.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from accounts.selectors import account_latest_figures, each_account
from positions import valuation
from positions.models import Deal, Instrument, Position, Quote
from tradingsite.caching import cached_read

_OPEN_FIELDS = (
    "id",
    "ticket",
    "symbol",
    "side",
    "volume",
    "price_open",
    "price_current",
    "sl",
    "tp",
    "swap",
    "profit",
    "matched",
    "divergence_reasons",
    "opened_at",
    "last_synced_at",
)


def _scoped(queryset: Any, *, user_id: int, account_id: int | None = None) -> QuerySet[Any]:
    queryset = queryset.filter(user_id=user_id)
    return queryset if account_id is None else queryset.filter(account_id=account_id)


def position_history(*, user_id: int, account_id: int | None = None) -> QuerySet[Position]:
    """Return the account's ledger rows (pending, open, closed), newest first on (``created_at``, ``id``).

    ``GET positions/`` narrows it with ``positions.filters.PositionFilter`` (status, symbol).
    """
    return _scoped(Position.objects, user_id=user_id, account_id=account_id).order_by("-created_at", "-id")


def open_position_list(*, user_id: int, account_id: int | None = None, symbol: str | None = None) -> QuerySet[Position]:
    """Return the account's open positions (status ``open``), newest opened first, optionally for one symbol.

    The one definition of "open" behind ``positions/open/`` and the status counts.
    """
    positions = _scoped(Position.objects, user_id=user_id, account_id=account_id).filter(status=Position.Status.OPEN)
    if symbol:
        positions = positions.filter(symbol=symbol.strip().upper())
    return positions.order_by(F("opened_at").desc(nulls_last=True), "-id")


INSTRUMENT_FIELDS = (
    "symbol",
    "pip_size",
    "contract_size",
    "currency_base",
    "currency_profit",
    "trade_calc_mode",
    "trade_tick_value",
    "trade_tick_size",
)


def quote_rates(
    *, user_id: int, account_id: int | None, instruments: dict[str, dict[str, Any]]
) -> list[valuation.Rate]:
    """Return the account's latest quotes as conversion rates (``valuation.Rate``: symbol, currency_base,
    currency_profit, mid), matched to the instruments of the account's trade server (``instruments``
    known already, the others read here). Quotes of symbols with no spec are skipped. 1–2 queries."""
    quotes = list(_scoped(Quote.objects, user_id=user_id, account_id=account_id).values_list("symbol", "bid", "ask"))
    missing = {symbol for symbol, _, _ in quotes} - set(instruments)
    specs = {**(instrument_specs(account_id=account_id, symbols=missing) if missing else {}), **instruments}
    return [
        valuation.Rate(
            symbol=symbol,
            base=specs[symbol]["currency_base"].upper(),
            profit=specs[symbol]["currency_profit"].upper(),
            mid=valuation.mid(bid=bid, ask=ask),
        )
        for symbol, bid, ask in sorted(quotes)
        if symbol in specs
    ]


def account_instruments(*, account_id: int, symbols: set[str] | None = None) -> dict[str, Instrument]:
    """Return ``{symbol: Instrument}`` for the account: its own row (posted in its syncs), else the shipped
    default; every symbol the account can see when ``symbols`` is None. 1 query (none for an empty set)."""
    if symbols is not None and not symbols:
        return {}
    rows = Instrument.objects.filter(Q(account_id=account_id) | Q(account__isnull=True))
    if symbols is not None:
        rows = rows.filter(symbol__in=symbols)
    # Defaults first, so the account's own row (if any) replaces it.
    return {i.symbol: i for i in sorted(rows, key=lambda i: i.account_id is not None)}


def instrument_specs(*, account_id: int | None, symbols: set[str]) -> dict[str, dict[str, Any]]:
    """Return ``{symbol: {"symbol", "pip_size", "contract_size", "currency_base", "currency_profit",
    "trade_calc_mode", "trade_tick_value", "trade_tick_size"}}`` for the account: its own instrument row
    (posted in its syncs), else the shipped default. 1 query."""
    rows = Instrument.objects.filter(Q(account_id=account_id) | Q(account__isnull=True), symbol__in=symbols).values(
        "account_id", *INSTRUMENT_FIELDS
    )
    # Defaults first, so the account's own row (if any) replaces it.
    return {row["symbol"]: row for row in sorted(rows, key=lambda row: row["account_id"] is not None)}


def open_positions(*, user_id: int, account_id: int | None = None, symbol: str | None = None) -> dict[str, Any]:
    """Return the user's open positions valued in the account currency, through the data cache.

    Shape (Decimals unrounded; rendering rounds half-up to 2 dp)::

        {"count": int, "currency": str | None, "total_unrealized_pnl": Decimal,
         "total_unrealized_pnl_pct": Decimal | None, "unvalued_positions": int, "as_of": datetime,
         "positions": [{"id", "ticket", "symbol", "side", "volume", "broker_side", "broker_volume",
                        "price_open", "price_current", "sl", "tp", "swap", "profit", "unrealized_pnl",
                        "unrealized_pnl_pct", "pnl_pips", "valuation_reason", "rate_path", "matched",
                        "divergence_reasons", "opened_at", "last_synced_at"}, ...]}

    ``unrealized_pnl`` is in the account currency (``currency``, the Account row as the latest sync left it);
    ``None`` when no conversion rate exists, and such positions are counted in ``unvalued_positions``.
    ``total_unrealized_pnl_pct`` is total / latest equity × 100, ``None`` before the account's first sync.
    ``as_of`` is the time of this call (cached entries outlive seconds; the generation keeps them fresh).
    """
    symbol = symbol.strip().upper() if symbol else None
    data = OPEN_POSITIONS.get(user_id=user_id, account_id=account_id, symbol=symbol)
    # Everything else changes only with a write (which bumps the generation); the time is the read's.
    return {**data, "as_of": timezone.now()}


def compute_open_positions(*, user_id: int, account_id: int | None = None, symbol: str | None = None) -> dict[str, Any]:
    """Compute :func:`open_positions` from the database (no cache): 2–4 queries.

    Positions (1) and the account's latest figures (1); when there are positions, their instruments (1);
    the account's quotes (1, +1 for the specs of quoted symbols no position holds) only when a quote
    currency differs from the account currency. Each position is valued as the broker holds it
    (``valuation.broker_holding``); ``valuation_reason`` says why one is unvalued (``spec_missing``,
    ``calc_mode_unsupported``, ``no_rate``, ``no_price``) and ``rate_path`` which quotes converted it.
    """
    rows = list(
        open_position_list(user_id=user_id, account_id=account_id, symbol=symbol).values(
            *_OPEN_FIELDS, "divergence_details"
        )
    )
    account = account_latest_figures(user_id=user_id, account_id=account_id)
    currency = account["currency"] if account else None
    instruments = instrument_specs(account_id=account_id, symbols={row["symbol"] for row in rows}) if rows else {}
    needs_rates = any(item["currency_profit"].upper() != (currency or "").upper() for item in instruments.values())
    rates = (
        quote_rates(user_id=user_id, account_id=account_id, instruments=instruments) if needs_rates and currency else []
    )

    positions = []
    for row in rows:
        instrument: Any = instruments.get(row["symbol"], {})
        held_side, held_volume = valuation.broker_holding(
            side=row["side"], volume=row["volume"], divergence_details=row.pop("divergence_details")
        )
        value = valuation.value_position(
            side=held_side,
            volume=held_volume,
            price_open=row["price_open"],
            price_current=row["price_current"],
            pip_size=instrument.get("pip_size"),
            contract_size=instrument.get("contract_size"),
            quote_currency=instrument.get("currency_profit"),
            account_currency=currency,
            rates=rates,
            calc_mode=instrument.get("trade_calc_mode"),
            tick_value=instrument.get("trade_tick_value"),
            tick_size=instrument.get("trade_tick_size"),
        )
        positions.append(
            {
                **row,
                "broker_side": held_side,
                "broker_volume": held_volume,
                "unrealized_pnl": value.unrealized_pnl,
                "unrealized_pnl_pct": value.pnl_pct,
                "pnl_pips": value.pnl_pips,
                "valuation_reason": value.reason,
                "rate_path": value.rate_path,
            }
        )
    summary = valuation.totals(
        values=(position["unrealized_pnl"] for position in positions),
        equity=account["equity"] if account else None,
    )
    return {
        "count": len(positions),
        "currency": currency,
        "total_unrealized_pnl": summary.total_unrealized_pnl,
        "total_unrealized_pnl_pct": summary.total_unrealized_pnl_pct,
        "unvalued_positions": summary.unvalued_positions,
        "as_of": timezone.now(),
        "positions": positions,
    }


# The hot read behind GET positions/open/ (page label, data key, metrics label and write-through warming:
# the unfiltered book of each account, which the reconciliation status also reads).
OPEN_POSITIONS = cached_read("positions:open", warm_params=each_account)(compute_open_positions)


def deal_list(*, user_id: int, account_id: int | None) -> QuerySet[Deal]:
    """Return the account's deals (trades and balance operations), newest first on (``time``, ``id``).

    ``GET deals/`` narrows it with ``positions.filters.DealFilter`` (symbol, type, entry, position_id).
    """
    return _scoped(Deal.objects, user_id=user_id, account_id=account_id).order_by("-time", "-id")


def position_deals(*, user_id: int, position_id: int) -> QuerySet[Deal]:
    """Return the deals booked on one of the user's ledger positions, oldest first (a 404 is the caller's
    when the position is not the user's)."""
    return Deal.objects.filter(user_id=user_id, position_id=position_id).order_by("time", "id")


# ENUM_DEAL_TYPE: buy/sell are trades; 13/14 (canceled buy/sell) neither trade nor cash; the rest
# (2–12, 15–17) are balance operations (docs/deals.md, "Deals").
TRADE_DEAL_TYPES = (Deal.Type.BUY, Deal.Type.SELL)
NOT_CASH_FLOW_TYPES = (*TRADE_DEAL_TYPES, Deal.Type.BUY_CANCELED, Deal.Type.SELL_CANCELED)
CLOSING_DEAL_ENTRIES = (Deal.Entry.OUT, Deal.Entry.INOUT, Deal.Entry.OUT_BY)


def deal_totals(
    *, user_id: int, account_id: int | None, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """Sum the account's deals whose ``time`` is in [start, end) (a bound left None is open), in one query.

    Returns ``{"profit", "swap", "commission", "fee", "realized_pnl", "cash_flow", "trade_deals",
    "closing_deals"}``: the money columns summed over the trading deals (buy/sell; entries with their
    commission and fee, partial and full closes, reversals), ``realized_pnl`` = profit + swap +
    commission + fee of those (docs/deals.md "Realized P&L": Σ over all deals of a position, so over
    an account its trading deals); ``cash_flow`` = Σ money of the balance operations (deposits +,
    withdrawals −, charges, corrections, bonuses, interest …; docs/deals.md "Deals"); the counts of
    trading deals and of closing ones (entry out, inout, out_by). Money in the account currency,
    unrounded ``Decimal`` (0 when there is no deal). ``account_id`` None (the user has no account
    yet) reads the user's deals, which are none.
    """
    deals = _scoped(Deal.objects, user_id=user_id, account_id=account_id)
    if start is not None:
        deals = deals.filter(time__gte=start)
    if end is not None:
        deals = deals.filter(time__lt=end)
    trade = Q(type__in=TRADE_DEAL_TYPES)
    money = F("profit") + F("swap") + F("commission") + F("fee")
    # the aliases differ from the column names: an alias named like a column would shadow it in ``money``
    sums = deals.aggregate(
        total_profit=Sum("profit", filter=trade),
        total_swap=Sum("swap", filter=trade),
        total_commission=Sum("commission", filter=trade),
        total_fee=Sum("fee", filter=trade),
        total_realized_pnl=Sum(money, filter=trade),
        total_cash_flow=Sum(money, filter=~Q(type__in=NOT_CASH_FLOW_TYPES)),
        total_trade_deals=Count("id", filter=trade),
        total_closing_deals=Count("id", filter=trade & Q(entry__in=CLOSING_DEAL_ENTRIES)),
    )
    return {name.removeprefix("total_"): Decimal("0") if value is None else value for name, value in sums.items()}


def realized_pnl(*, user_id: int, account_id: int) -> Decimal:
    """The account's realized P&L: Σ profit + swap + commission + fee over its buy/sell deals (account
    currency; balance operations are cash flows, not P&L). See :func:`deal_totals`."""
    total: Decimal = deal_totals(user_id=user_id, account_id=account_id)["realized_pnl"]
    return total
