"""The lifecycle of one MT5 position, rebuilt from its deals: pure Python, no database, no HTTP.

A position is identified by its ``POSITION_IDENTIFIER`` (the ticket of the order that opened it; deals
carry it as ``position_id``). The position's ticket is only a displayed alias that the broker may change
(for example when it re-opens positions to charge swaps), so nothing here looks at it.

Deals are dicts shaped like MT5's ``history_deals_get()`` rows (validated by the sync serializer):
``ticket``, ``position_id``, ``type`` (0 buy, 1 sell, or "buy"/"sell"), ``entry`` (``ENUM_DEAL_ENTRY``:
0 IN, 1 OUT, 2 INOUT, 3 OUT_BY), ``volume`` (lots), ``price`` (quote currency), ``profit``, ``swap``,
``commission``, ``fee`` (account currency), ``time`` and ``reason``. Missing money keys count as 0.

Events (MQL5 reference, ``ENUM_DEAL_ENTRY`` and ``POSITION_IDENTIFIER``):

* ``opened``: the first IN deal; side = the deal's type, price_open = the deal's price.
* ``increased``: another IN deal on the open position (netting accounts); price_open becomes the
  volume-weighted average ``(v₁·p₁ + v₂·p₂) / (v₁ + v₂)``, rounded half-up to 8 decimals.
* ``partial_close``: an OUT/OUT_BY deal with a volume below the open volume; the rest stays open.
* ``closed``: an OUT/OUT_BY deal for the whole open volume (or more).
* ``reversed``: an INOUT deal (netting): it closes this lifecycle for the open volume, with its realized
  P&L booked, and starts a new lifecycle on the deal's side with the remainder ``deal volume − open
  volume`` at the deal's price (the new lifecycle's first event is ``opened`` by the same deal).

Realized P&L of a lifecycle = Σ over ALL its deals of profit + swap + commission + fee (entry deals
usually carry commission and fee, exit deals profit and swap). The INOUT deal's money belongs to the
lifecycle it closes. A close seen without any deal (the position vanished from ``positions_get()``) is
``close_inferred``: the last seen profit + swap + commission of the position is added and the close is
flagged ``inferred``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ENTRY_IN = 0
ENTRY_OUT = 1
ENTRY_INOUT = 2
ENTRY_OUT_BY = 3
CLOSING_ENTRIES = frozenset({ENTRY_OUT, ENTRY_OUT_BY})

# ENUM_DEAL_TYPE 0 BUY, 1 SELL: the only deal types that belong to a position.
TRADE_DEAL_TYPES = {0: "buy", 1: "sell", "buy": "buy", "sell": "sell"}

BUY = "buy"
SELL = "sell"
ZERO = Decimal("0")
PRICE_QUANTUM = Decimal("0.00000001")  # positions.models.PRICE: 8 decimal places


class Kind:
    """Event kinds of a lifecycle (strings, stored in log rows)."""

    OPENED = "opened"
    INCREASED = "increased"
    PARTIAL_CLOSE = "partial_close"
    CLOSED = "closed"
    REVERSED = "reversed"


def deal_side(deal: Mapping[str, Any]) -> str:
    """Return "buy"/"sell" for a trade deal (``type`` 0/1 or "buy"/"sell"); ValueError for anything else."""
    try:
        return TRADE_DEAL_TYPES[deal["type"]]
    except (KeyError, TypeError):
        raise ValueError(f"deal {deal.get('ticket')} is not a buy/sell deal (type {deal.get('type')!r})") from None


def opposite(side: str) -> str:
    """The other side: buy ↔ sell."""
    return SELL if side == BUY else BUY


def deal_money(deal: Mapping[str, Any]) -> Decimal:
    """profit + swap + commission + fee of one deal, in the account currency (missing keys = 0)."""
    return sum((deal.get(key) or ZERO for key in ("profit", "swap", "commission", "fee")), ZERO)


def deal_order_key(deal: Mapping[str, Any]) -> tuple:
    """Sort key of deals: by time (None first), then ticket (MT5 deal tickets grow with time)."""
    time = deal.get("time")
    return (time is not None, time or datetime.min, deal["ticket"])


@dataclass(frozen=True)
class LifecycleEvent:
    """One step of a lifecycle: ``kind`` (see ``Kind``), the deal that caused it (None when inferred),
    the open volume before and after (lots), price_open after (quote currency), the money of this deal
    and the lifecycle's realized P&L after it (account currency)."""

    kind: str
    deal_ticket: int | None
    side: str
    volume_before: Decimal
    volume_after: Decimal
    price_open: Decimal | None
    deal_pnl: Decimal
    realized_pnl: Decimal
    inferred: bool = False


@dataclass
class Lifecycle:
    """State of one position lifecycle: side, open volume (lots), average price_open (quote currency),
    realized P&L so far (account currency), the deals applied, the events and the close.

    Build an empty one with ``Lifecycle(identifier=…)`` (first deal opens it), or from a ledger row's
    current state to apply the deals of a new sync incrementally.
    """

    identifier: int
    side: str | None = None
    volume: Decimal = ZERO
    price_open: Decimal | None = None
    realized_pnl: Decimal = ZERO
    status: str = "open"
    deal_tickets: list[int] = field(default_factory=list)
    events: list[LifecycleEvent] = field(default_factory=list)
    closed_at: datetime | None = None
    close_price: Decimal | None = None
    close_deal_reason: int | None = None
    inferred: bool = False

    @property
    def is_open(self) -> bool:
        """True until a closing deal (or an inferred close) ends the lifecycle."""
        return self.status == "open"

    def _event(self, kind: str, deal: Mapping[str, Any] | None, before: Decimal, money: Decimal) -> LifecycleEvent:
        event = LifecycleEvent(
            kind=kind,
            deal_ticket=None if deal is None else deal["ticket"],
            side=self.side,
            volume_before=before,
            volume_after=self.volume,
            price_open=self.price_open,
            deal_pnl=money,
            realized_pnl=self.realized_pnl,
            inferred=deal is None,
        )
        self.events.append(event)
        return event

    def _close(self, deal: Mapping[str, Any]) -> None:
        self.status = "closed"
        self.volume = ZERO
        self.closed_at = deal.get("time")
        self.close_price = deal.get("price")
        self.close_deal_reason = deal.get("reason")

    def apply(self, deal: Mapping[str, Any]) -> Lifecycle | None:
        """Apply one trade deal of this identifier; return the new lifecycle a reversal starts, else None.

        Raises ValueError for a deal of another identifier, a non-trade deal, or a deal after the close
        (except a reversal, which is applied to the lifecycle it closes).
        """
        if deal["position_id"] != self.identifier:
            raise ValueError(f"deal {deal['ticket']} belongs to position {deal['position_id']}, not {self.identifier}")
        if not self.is_open:
            raise ValueError(f"deal {deal['ticket']} arrives after position {self.identifier} closed")
        side = deal_side(deal)
        entry = deal["entry"]
        volume = deal.get("volume") or ZERO
        money = deal_money(deal)
        before = self.volume
        self.deal_tickets.append(deal["ticket"])
        self.realized_pnl += money
        if entry == ENTRY_IN:
            if self.side is None or before == 0:
                self.side = side
                self.volume = volume
                self.price_open = deal["price"]
                self._event(Kind.OPENED, deal, before, money)
            else:
                total = before + volume
                self.price_open = ((before * self.price_open + volume * deal["price"]) / total).quantize(
                    PRICE_QUANTUM, rounding=ROUND_HALF_UP
                )
                self.volume = total
                self._event(Kind.INCREASED, deal, before, money)
            return None
        if self.side is None:
            # A closing deal for a position whose opening deal was never seen: it closed a position on
            # the other side of the deal, of at least the deal's volume.
            self.side = opposite(side)
            before = volume
        if entry in CLOSING_ENTRIES:
            if volume < before:
                self.volume = before - volume
                self._event(Kind.PARTIAL_CLOSE, deal, before, money)
            else:
                self._close(deal)
                self._event(Kind.CLOSED, deal, before, money)
            return None
        if entry == ENTRY_INOUT:
            remainder = volume - before
            self._close(deal)
            self._event(Kind.REVERSED, deal, before, money)
            if remainder <= 0:
                return None
            successor = Lifecycle(identifier=self.identifier)
            successor.deal_tickets.append(deal["ticket"])
            successor.side = side
            successor.volume = remainder
            successor.price_open = deal["price"]
            successor._event(Kind.OPENED, deal, ZERO, ZERO)
            return successor
        raise ValueError(f"deal {deal['ticket']} has unknown entry {entry!r}")

    def close_inferred(
        self,
        *,
        profit: Decimal,
        swap: Decimal,
        commission: Decimal,
        time: datetime | None = None,
        price: Decimal | None = None,
    ) -> LifecycleEvent:
        """Close without a deal: realized P&L += the position's last seen profit + swap + commission.

        Used when the position left ``positions_get()`` and no closing deal names it; the event and the
        lifecycle are flagged ``inferred``.
        """
        money = profit + swap + commission
        before = self.volume
        self.realized_pnl += money
        self.status = "closed"
        self.volume = ZERO
        self.closed_at = time
        self.close_price = price
        self.inferred = True
        return self._event(Kind.CLOSED, None, before, money)


def replay(identifier: int, deals: Iterable[Mapping[str, Any]], *, start: Lifecycle | None = None) -> list[Lifecycle]:
    """Apply the trade deals of one position identifier in time order; return its lifecycles, oldest first.

    ``start``: the lifecycle as the ledger knows it, else an empty one; ``deals`` are then the deals not
    applied to it yet (a re-sent deal whose ticket is in ``start.deal_tickets`` is skipped, and so are deals
    of other identifiers). A reversal ends one
    lifecycle and continues with the next, so the list has more than one element only after an INOUT.
    """
    current = start if start is not None else Lifecycle(identifier=identifier)
    lifecycles = [current]
    known = set(current.deal_tickets)
    for deal in sorted(deals, key=deal_order_key):
        if deal["position_id"] != identifier or deal["ticket"] in known:
            continue
        if not current.is_open:
            # MT5 never re-opens a closed identifier on its own; a deal after the close starts a new one.
            current = Lifecycle(identifier=identifier)
            lifecycles.append(current)
        successor = current.apply(deal)
        known.add(deal["ticket"])
        if successor is not None:
            current = successor
            lifecycles.append(current)
    return lifecycles
