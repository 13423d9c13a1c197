"""positions selectors: reads of the ledger, scoped to one user and one of its accounts (keyword-only,
``user_id`` first, then ``account_id``; ``account_id`` None = every account of the user, which only the
history and a user with no account yet use).

:func:`open_positions` is a hot read (``GET positions/open/``): it returns plain, picklable data
through the per-user data cache (:func:`tradingsite.caching.cached_data`, SPEC §7). The
reconciliation status takes its ``open_positions_count`` from the same cached result, so the two
endpoints always agree (SPEC §6).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import F, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from accounts.models import Account
from accounts.selectors import account_ids
from guards.models import EquitySnapshot
from positions import valuation
from positions.models import Deal, Instrument, Position, Quote
from tradingsite.caching import cached_data

OPEN_POSITIONS_NAMESPACE = "positions.open"

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


def _scoped(queryset: QuerySet, *, user_id: int, account_id: int | None = None) -> QuerySet:
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


def latest_account(*, user_id: int, account_id: int | None = None) -> dict[str, Any] | None:
    """Return ``{"currency", "equity", "balance", "created_at"}`` of the account's latest equity snapshot, or None."""
    return (
        _scoped(EquitySnapshot.objects, user_id=user_id, account_id=account_id)
        .order_by("-created_at", "-id")
        .values("currency", "equity", "balance", "created_at")
        .first()
    )


def quote_mids(*, user_id: int, account_id: int | None = None) -> dict[str, Decimal]:
    """Return ``{symbol: mid}`` of the account's latest quotes (quote currency per unit of base)."""
    return {
        symbol: valuation.mid(bid=bid, ask=ask)
        for symbol, bid, ask in _scoped(Quote.objects, user_id=user_id, account_id=account_id).values_list(
            "symbol", "bid", "ask"
        )
    }


def instrument_specs(*, account_id: int | None = None, symbols: set[str]) -> dict[str, dict[str, Any]]:
    """Return ``{symbol: {"symbol", "pip_size", "contract_size", "currency_profit", …}}`` for the account's
    trade server: the server's own instrument row, else the shipped default (server blank). 1 query."""
    server_rows = Account.objects.filter(pk=account_id).values("server")[:1]
    rows = Instrument.objects.filter(Q(server="") | Q(server=Subquery(server_rows)), symbol__in=symbols).values(
        "server", "symbol", "pip_size", "contract_size", "currency_profit"
    )
    # Defaults first, so the server's own row (if any) replaces it.
    return {row["symbol"]: row for row in sorted(rows, key=lambda row: row["server"] != "")}


def open_positions(*, user_id: int, account_id: int | None = None, symbol: str | None = None) -> dict[str, Any]:
    """Return the user's open positions valued in the account currency (SPEC §4, §6), through the data cache.

    Shape (Decimals unrounded; rendering rounds half-up to 2 dp)::

        {"count": int, "currency": str | None, "total_unrealized_pnl": Decimal,
         "total_unrealized_pnl_pct": Decimal | None, "unvalued_positions": int, "as_of": datetime,
         "positions": [{"id", "ticket", "symbol", "side", "volume", "price_open", "price_current", "sl",
                        "tp", "swap", "profit", "unrealized_pnl", "unrealized_pnl_pct", "pnl_pips",
                        "matched", "divergence_reasons", "opened_at", "last_synced_at"}, ...]}

    ``unrealized_pnl`` is in the account currency (``currency``, from the latest equity snapshot);
    ``None`` when no conversion rate exists, and such positions are counted in ``unvalued_positions``.
    ``total_unrealized_pnl_pct`` is total / latest equity × 100, ``None`` before the first snapshot.
    ``as_of`` is the time of this call (cached entries outlive seconds; the generation keeps them fresh).
    """
    symbol = symbol.strip().upper() if symbol else None
    data = cached_data(
        OPEN_POSITIONS_NAMESPACE,
        user_id=user_id,
        params={"account": account_id, "symbol": symbol},
        compute=lambda: compute_open_positions(user_id=user_id, account_id=account_id, symbol=symbol),
        view="positions:open",
    )
    # Everything else changes only with a write (which bumps the generation); the time is the read's.
    return {**data, "as_of": timezone.now()}


def warm_open_positions(user_id: int) -> None:
    """Write-through warmer (``tradingsite.caching.register_user_read_warmer``): the unfiltered
    :func:`open_positions` of each of the user's accounts, the key ``positions/open/`` and the
    reconciliation status read."""
    for account_id in account_ids(user_id=user_id):
        open_positions(user_id=user_id, account_id=account_id)


def compute_open_positions(*, user_id: int, account_id: int | None = None, symbol: str | None = None) -> dict[str, Any]:
    """Compute :func:`open_positions` from the database (no cache): 2–4 queries.

    Positions (1) and the latest equity snapshot (1); when there are positions, their instruments (1);
    the user's quotes (1) only when a quote currency differs from the account currency.
    """
    rows = list(open_position_list(user_id=user_id, account_id=account_id, symbol=symbol).values(*_OPEN_FIELDS))
    account = latest_account(user_id=user_id, account_id=account_id)
    currency = account["currency"] if account else None
    instruments = instrument_specs(account_id=account_id, symbols={row["symbol"] for row in rows}) if rows else {}
    needs_rates = any(item["currency_profit"].upper() != (currency or "").upper() for item in instruments.values())
    mids = quote_mids(user_id=user_id, account_id=account_id) if needs_rates and currency else {}

    positions = []
    for row in rows:
        instrument = instruments.get(row["symbol"], {})
        value = valuation.value_position(
            side=row["side"],
            volume=row["volume"],
            price_open=row["price_open"],
            price_current=row["price_current"],
            pip_size=instrument.get("pip_size"),
            contract_size=instrument.get("contract_size"),
            quote_currency=instrument.get("currency_profit"),
            account_currency=currency,
            mids=mids,
        )
        positions.append(
            {
                **row,
                "unrealized_pnl": value.unrealized_pnl,
                "unrealized_pnl_pct": value.pnl_pct,
                "pnl_pips": value.pnl_pips,
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


def deal_list(*, user_id: int, account_id: int | None) -> QuerySet[Deal]:
    """Return the account's deals (trades and balance operations), newest first on (``time``, ``id``).

    ``GET deals/`` narrows it with ``positions.filters.DealFilter`` (symbol, type, entry, position_id).
    """
    return _scoped(Deal.objects, user_id=user_id, account_id=account_id).order_by("-time", "-id")


def position_deals(*, user_id: int, position_id: int) -> QuerySet[Deal]:
    """Return the deals booked on one of the user's ledger positions, oldest first (a 404 is the caller's
    when the position is not the user's)."""
    return Deal.objects.filter(user_id=user_id, position_id=position_id).order_by("time", "id")


def realized_pnl(*, user_id: int, account_id: int) -> Decimal:
    """The account's realized P&L: Σ profit + swap + commission + fee over its buy/sell deals (account
    currency; balance operations are cash flows, not P&L)."""
    money = F("profit") + F("swap") + F("commission") + F("fee")
    total = (
        Deal.objects.filter(user_id=user_id, account_id=account_id, type__in=[Deal.Type.BUY, Deal.Type.SELL])
        .aggregate(total=Sum(money))
        .get("total")
    )
    return total if total is not None else Decimal("0")
