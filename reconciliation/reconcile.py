"""Reconciliation rules of SPEC §3 as pure functions: no database, no HTTP.

:func:`reconcile` takes the user's ledger rows (``Position`` instances, pending or open), the broker's
positions and closing deals of one sync (validated dicts, see ``reconciliation.serializers``) and the
instruments, mutates the ledger rows in memory and returns what to write: rows to update, rows to
create (``origin=broker``) and the log rows of the *transitions* (a divergence that persists is
logged once when it appears and once when it resolves).

Tolerances come from the instrument (SPEC §3): entry price 2 pips, SL/TP 1 pip, volume to the
instrument's volume step. Pips = price difference / ``pip_size``; lots are ``Decimal`` with 2 dp.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from positions.models import Instrument, Position
from reconciliation.models import ReconciliationLog

ENTRY_TOLERANCE_PIPS = Decimal("2")
STOP_TOLERANCE_PIPS = Decimal("1")
PIPS_QUANTUM = Decimal("0.01")

Reason = ReconciliationLog.DivergenceReason
Event = ReconciliationLog.EventType
LogStatus = ReconciliationLog.Status
CloseReason = Position.CloseReason

# MT5 DEAL_ENTRY_OUT = 1, DEAL_ENTRY_OUT_BY = 3: the deals that close (part of) a position.
CLOSING_ENTRIES = frozenset({1, 3})

# SPEC §2: MT5 deal reason → close reason. 0 client, 1 mobile, 2 web, 3 expert, 4 SL, 5 TP, 6 stop out.
DEAL_REASON_TO_CLOSE_REASON = {
    0: CloseReason.CLOSED_MANUALLY,
    1: CloseReason.CLOSED_MANUALLY,
    2: CloseReason.CLOSED_MANUALLY,
    3: CloseReason.CLOSED_BY_BOT,
    4: CloseReason.SL_HIT,
    5: CloseReason.TP_HIT,
    6: CloseReason.STOP_OUT,
}

# Order in which reasons are listed (and logged) for one position.
REASON_ORDER = [
    Reason.UNEXPECTED_AT_BROKER,
    Reason.MISSING_AT_BROKER,
    Reason.SIDE_MISMATCH,
    Reason.PARTIAL_FILL,
    Reason.VOLUME_MISMATCH,
    Reason.ENTRY_SLIPPAGE,
    Reason.SL_MISMATCH,
    Reason.TP_MISMATCH,
]


def s(value: Any) -> str | None:
    """Render a Decimal (or anything) for JSON ``details``: str, None stays None."""
    return None if value is None else str(value)


def pips(*, price_delta: Decimal, pip_size: Decimal) -> Decimal:
    """Return ``price_delta / pip_size`` rounded half-up to 0.01 pip (SPEC §1 pip rule gives ``pip_size``)."""
    return (price_delta / pip_size).quantize(PIPS_QUANTUM, rounding=ROUND_HALF_UP)


def close_reason_for_deal(reason: int) -> str:
    """Map an MT5 deal ``reason`` to a close reason (SPEC §2); unknown reasons → ``closed_externally``."""
    return DEAL_REASON_TO_CLOSE_REASON.get(reason, CloseReason.CLOSED_EXTERNALLY)


# --------------------------------------------------------------------------------------------
# Comparison of one known position (SPEC §3 "Known ticket")
# --------------------------------------------------------------------------------------------
def _stop_divergence(*, expected: Decimal | None, actual: Decimal | None, pip_size: Decimal) -> dict[str, Any] | None:
    """Return the details of an SL/TP divergence, or None when they agree within 1 pip (None = no stop)."""
    if expected is None and actual is None:
        return None
    if expected is not None and actual is not None:
        delta = actual - expected
        if abs(delta) <= STOP_TOLERANCE_PIPS * pip_size:
            return None
        delta_pips = pips(price_delta=delta, pip_size=pip_size)
    else:
        delta_pips = None
    return {
        "expected": s(expected),
        "actual": s(actual),
        "delta_pips": s(delta_pips),
        "tolerance_pips": s(STOP_TOLERANCE_PIPS),
    }


def compare(*, ledger: Position, broker: dict[str, Any], instrument: Instrument) -> dict[str, dict[str, Any]]:
    """Return ``{reason: details}`` for every divergence of a bot position from its broker position.

    Reasons (SPEC §3): ``side_mismatch``; ``partial_fill`` (broker volume below the bot's, in whole
    volume steps) or ``volume_mismatch`` (above), with ``delta_lots`` = actual − expected;
    ``entry_slippage`` when |price_open − requested_price| > 2 pips, with signed ``delta_pips`` =
    (price_open − requested_price) / pip_size and ``adverse`` (filled worse than requested for the
    side); ``sl_mismatch``/``tp_mismatch`` when the stops differ by more than 1 pip or one is missing.
    An empty dict means matched.
    """
    reasons: dict[str, dict[str, Any]] = {}
    pip_size = instrument.pip_size
    if broker["type"] != ledger.side:
        reasons[Reason.SIDE_MISMATCH] = {"expected": ledger.side, "actual": broker["type"]}

    step = instrument.volume_step
    expected_steps = (ledger.volume / step).to_integral_value(rounding=ROUND_HALF_UP)
    actual_steps = (broker["volume"] / step).to_integral_value(rounding=ROUND_HALF_UP)
    if actual_steps != expected_steps:
        reason = Reason.PARTIAL_FILL if actual_steps < expected_steps else Reason.VOLUME_MISMATCH
        reasons[reason] = {
            "expected": s(ledger.volume),
            "actual": s(broker["volume"]),
            "delta_lots": s(broker["volume"] - ledger.volume),
            "volume_step": s(step),
        }

    if ledger.requested_price is not None:
        delta = broker["price_open"] - ledger.requested_price
        if abs(delta) > ENTRY_TOLERANCE_PIPS * pip_size:
            direction = 1 if broker["type"] == Position.Side.BUY else -1
            reasons[Reason.ENTRY_SLIPPAGE] = {
                "expected": s(ledger.requested_price),
                "actual": s(broker["price_open"]),
                "delta_pips": s(pips(price_delta=delta, pip_size=pip_size)),
                "tolerance_pips": s(ENTRY_TOLERANCE_PIPS),
                # A buy filled higher, or a sell filled lower, than requested is worse for the trader.
                "adverse": direction * delta > 0,
            }

    sl = _stop_divergence(expected=ledger.sl, actual=broker["sl"], pip_size=pip_size)
    if sl is not None:
        reasons[Reason.SL_MISMATCH] = sl
    tp = _stop_divergence(expected=ledger.tp, actual=broker["tp"], pip_size=pip_size)
    if tp is not None:
        reasons[Reason.TP_MISMATCH] = tp
    return reasons


def infer_close_reason(*, position: Position, instrument: Instrument) -> tuple[str, dict[str, Any]]:
    """Infer why an open position vanished without a closing deal (SPEC §3).

    ``tp_hit`` when the last seen price had reached the take profit within 1 pip (buy: price ≥ tp − 1 pip;
    sell: price ≤ tp + 1 pip), ``sl_hit`` likewise for the stop loss (buy: price ≤ sl + 1 pip; sell:
    price ≥ sl − 1 pip), else ``closed_externally``. The stops are the broker's last seen ones (the
    ledger's unless an ``sl_mismatch``/``tp_mismatch`` recorded different actual values).
    """
    price = position.price_current
    tolerance = STOP_TOLERANCE_PIPS * instrument.pip_size
    details = position.divergence_details or {}
    sl = position.sl
    tp = position.tp
    if Reason.SL_MISMATCH in (position.divergence_reasons or []):
        actual = details.get(Reason.SL_MISMATCH, {}).get("actual")
        sl = Decimal(actual) if actual is not None else None
    if Reason.TP_MISMATCH in (position.divergence_reasons or []):
        actual = details.get(Reason.TP_MISMATCH, {}).get("actual")
        tp = Decimal(actual) if actual is not None else None
    info = {"last_price": s(price), "sl": s(sl), "tp": s(tp), "tolerance_pips": s(STOP_TOLERANCE_PIPS)}
    if price is None:
        return CloseReason.CLOSED_EXTERNALLY, info
    buy = position.side == Position.Side.BUY
    if tp is not None and (price >= tp - tolerance if buy else price <= tp + tolerance):
        return CloseReason.TP_HIT, info
    if sl is not None and (price <= sl + tolerance if buy else price >= sl - tolerance):
        return CloseReason.SL_HIT, info
    return CloseReason.CLOSED_EXTERNALLY, info


# --------------------------------------------------------------------------------------------
# The whole snapshot
# --------------------------------------------------------------------------------------------
@dataclass
class ReconcileOutcome:
    """What one snapshot changes: rows to write, log rows, and the summary parts."""

    updated: list[Position] = field(default_factory=list)
    created: list[Position] = field(default_factory=list)
    logs: list[ReconciliationLog] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    divergences: list[dict[str, Any]] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)
    opened_reasons: list[str] = field(default_factory=list)
    open_symbols: set[str] = field(default_factory=set)
    open_count: int = 0


def _log(
    *, user_id: int, sync_id: uuid.UUID, event_type: str, status: str, position: Position, **fields: Any
) -> ReconciliationLog:
    return ReconciliationLog(
        user_id=user_id,
        sync_id=sync_id,
        event_type=event_type,
        status=status,
        position=position,
        ticket=position.ticket,
        symbol=position.symbol,
        side=position.side,
        volume=position.volume,
        price_open=position.price_open,
        price_current=position.price_current,
        **fields,
    )


def _ordered(reasons) -> list[str]:
    return [r for r in REASON_ORDER if r in reasons]


def reconcile(
    *,
    user_id: int,
    sync_id: uuid.UUID,
    broker_time: datetime,
    ledger: list[Position],
    broker_positions: list[dict[str, Any]],
    deals: list[dict[str, Any]],
    instruments: dict[str, Instrument],
    sync_stale_seconds: int,
) -> ReconcileOutcome:
    """Reconcile one successful snapshot (``positions`` known, possibly ``[]``) against the ledger (SPEC §3).

    ``ledger``: the user's pending/open rows plus any row whose ticket the broker reports; mutated
    in place. ``broker_positions``/``deals``: validated dicts. ``instruments``: by symbol, covering
    every ledger and broker symbol. Returns the rows to update/create, the transition log rows and
    the summary parts (counts, active divergences with deltas, closes).
    """
    out = ReconcileOutcome()
    counts: defaultdict[str, int] = defaultdict(int)
    new_reasons: dict[int, set[str]] = defaultdict(set)
    by_ticket = {p.ticket: p for p in ledger}
    seen: set[int] = set()
    closing_deals: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for deal in deals:
        if deal["entry"] in CLOSING_ENTRIES:
            closing_deals[deal["position_id"]].append(deal)

    def log(event_type, status, position, **fields):
        out.logs.append(
            _log(user_id=user_id, sync_id=sync_id, event_type=event_type, status=status, position=position, **fields)
        )

    def transition(position: Position, current: dict[str, dict[str, Any]]) -> None:
        """Log appeared/resolved reasons, then store the current state on the row."""
        previous = set(position.divergence_reasons or [])
        now = set(current)
        remaining_matched = not now
        for reason in _ordered(now - previous):
            details = current[reason]
            slippage = details.get("delta_pips") if reason == Reason.ENTRY_SLIPPAGE else None
            log(
                Event.DIVERGENCE,
                LogStatus.WARNING,
                position,
                matched=False,
                divergence_reason=reason,
                slippage_pips=Decimal(slippage) if slippage is not None else None,
                message=f"{reason} on {position.symbol} #{position.ticket}",
                details={"reason": reason, **details},
            )
            counts["divergences_opened"] += 1
            out.opened_reasons.append(reason)
            new_reasons[position.ticket].add(reason)
        for reason in _ordered(previous - now):
            log(
                Event.DIVERGENCE_RESOLVED,
                LogStatus.SUCCESS,
                position,
                matched=remaining_matched,
                divergence_reason=reason,
                message=f"{reason} resolved on {position.symbol} #{position.ticket}",
                details={"reason": reason, "was": (position.divergence_details or {}).get(reason)},
            )
            counts["divergences_resolved"] += 1
        position.divergence_reasons = _ordered(now)
        position.divergence_details = current
        position.matched = not now

    for row in broker_positions:
        ticket = row["ticket"]
        seen.add(ticket)
        instrument = instruments[row["symbol"]]
        position = by_ticket.get(ticket)
        if position is not None and position.status == Position.Status.CLOSED:
            counts["ignored_closed"] += 1  # MT5 tickets are never reused; a closed row stays closed
            continue
        if position is None:
            position = Position(
                user_id=user_id,
                ticket=ticket,
                symbol=row["symbol"],
                side=row["type"],
                volume=row["volume"],
                requested_price=None,
                price_open=row["price_open"],
                price_current=row["price_current"],
                sl=row["sl"],
                tp=row["tp"],
                swap=row["swap"],
                commission=row["commission"],
                profit=row["profit"],
                origin=Position.Origin.BROKER,
                status=Position.Status.OPEN,
                opened_at=row["time"] or broker_time,
                last_synced_at=broker_time,
                matched=False,
                divergence_reasons=[],
                divergence_details={},
            )
            out.created.append(position)
            counts["created_from_broker"] += 1
            transition(
                position,
                {
                    Reason.UNEXPECTED_AT_BROKER: {
                        "expected": None,
                        "actual": {
                            "side": row["type"],
                            "volume": s(row["volume"]),
                            "price_open": s(row["price_open"]),
                            "sl": s(row["sl"]),
                            "tp": s(row["tp"]),
                        },
                    }
                },
            )
        else:
            first_seen = position.status == Position.Status.PENDING
            if position.origin == Position.Origin.BROKER:
                # The ledger mirrors a position the bot never asked for; it stays unexpected until it closes.
                position.volume = row["volume"]
                position.sl = row["sl"]
                position.tp = row["tp"]
                current: dict[str, dict[str, Any]] = {
                    Reason.UNEXPECTED_AT_BROKER: (position.divergence_details or {}).get(
                        Reason.UNEXPECTED_AT_BROKER, {"expected": None}
                    )
                }
            else:
                current = compare(ledger=position, broker=row, instrument=instrument)
            position.price_open = row["price_open"]
            position.price_current = row["price_current"]
            position.swap = row["swap"]
            position.commission = row["commission"]
            position.profit = row["profit"]
            position.last_synced_at = broker_time
            if first_seen:
                position.status = Position.Status.OPEN
                position.opened_at = row["time"] or broker_time
            transition(position, current)
            if first_seen and not current:
                log(
                    Event.MATCH,
                    LogStatus.SUCCESS,
                    position,
                    matched=True,
                    message=f"{position.symbol} #{position.ticket} confirmed at the broker",
                    details={"requested_price": s(position.requested_price), "price_open": s(position.price_open)},
                )
                counts["confirmed"] += 1
            elif first_seen:
                counts["confirmed"] += 1
            out.updated.append(position)
        counts["matched"] += int(position.matched)

    for position in ledger:
        if position.ticket in seen or position.status == Position.Status.CLOSED:
            continue
        deals_of_position = closing_deals.get(position.ticket)
        if deals_of_position:
            _close_from_deals(position, deals_of_position, broker_time=broker_time, log=log, out=out)
            counts["closed"] += 1
        elif position.status == Position.Status.OPEN:
            _close_inferred(position, instruments[position.symbol], broker_time=broker_time, log=log, out=out)
            counts["closed"] += 1
        elif position.status == Position.Status.PENDING:
            age = (broker_time - position.created_at).total_seconds()
            reasons = position.divergence_reasons or []
            if Reason.MISSING_AT_BROKER not in reasons and age >= sync_stale_seconds:
                current = dict(position.divergence_details or {})
                current[Reason.MISSING_AT_BROKER] = {
                    "expected": {
                        "side": position.side,
                        "volume": s(position.volume),
                        "requested_price": s(position.requested_price),
                    },
                    "actual": None,
                    "registered_at": position.created_at.isoformat(),
                    "absent_seconds": int(age),
                    "sync_stale_seconds": sync_stale_seconds,
                }
                transition(position, current)
                out.updated.append(position)
                counts["missing_at_broker"] += 1

    for position in [*ledger, *out.created]:
        if position.status == Position.Status.OPEN:
            out.open_count += 1
            out.open_symbols.add(position.symbol)
        if position.status != Position.Status.CLOSED:
            for reason in position.divergence_reasons or []:
                out.divergences.append(
                    {
                        "ticket": position.ticket,
                        "symbol": position.symbol,
                        "reason": reason,
                        "new": reason in new_reasons[position.ticket],
                        **(position.divergence_details or {}).get(reason, {}),
                    }
                )
    counts["positions_seen"] = len(broker_positions)
    out.counts = {
        key: counts[key]
        for key in (
            "positions_seen",
            "matched",
            "confirmed",
            "created_from_broker",
            "divergences_opened",
            "divergences_resolved",
            "missing_at_broker",
            "closed",
            "ignored_closed",
        )
    }
    return out


def _close(position: Position, *, closed_at: datetime, price, reason: str, pnl) -> list[str]:
    open_reasons = list(position.divergence_reasons or [])
    position.status = Position.Status.CLOSED
    position.closed_at = closed_at
    position.close_price = price
    position.close_reason = reason
    position.realized_pnl = pnl
    position.last_synced_at = max(filter(None, [position.last_synced_at, closed_at]))
    # A closed position has no active divergence; the close row records the ones it had.
    position.divergence_reasons = []
    return open_reasons


def _close_from_deals(position, deals, *, broker_time, log, out: ReconcileOutcome) -> None:
    """Close ``position`` from its closing deals (SPEC §2): reason, price and time of the last one,
    realized P&L = Σ (profit + swap + commission) of all of them, in the account currency."""
    deals = sorted(deals, key=lambda d: (d["time"] or broker_time, d["ticket"]))
    last = deals[-1]
    pnl = sum((d["profit"] + d["swap"] + d["commission"] for d in deals), Decimal("0"))
    reason = close_reason_for_deal(last["reason"])
    had = _close(position, closed_at=last["time"] or broker_time, price=last["price"], reason=reason, pnl=pnl)
    # The ledger's last view of the position is the close itself, not the previous snapshot's.
    position.price_current = last["price"]
    position.profit = sum((d["profit"] for d in deals), Decimal("0"))
    position.swap = sum((d["swap"] for d in deals), Decimal("0"))
    details = {
        "source": "deal",
        "deal_tickets": [d["ticket"] for d in deals],
        "deal_reason": last["reason"],
        "profit": s(sum((d["profit"] for d in deals), Decimal("0"))),
        "swap": s(sum((d["swap"] for d in deals), Decimal("0"))),
        "commission": s(sum((d["commission"] for d in deals), Decimal("0"))),
        "divergences_at_close": had,
    }
    _close_log(position, reason=reason, details=details, log=log, out=out)


def _close_inferred(position, instrument, *, broker_time, log, out: ReconcileOutcome) -> None:
    """Close ``position`` without a deal (SPEC §3): at broker_time, the last seen price and profit."""
    reason, details = infer_close_reason(position=position, instrument=instrument)
    had = _close(position, closed_at=broker_time, price=position.price_current, reason=reason, pnl=position.profit)
    _close_log(
        position,
        reason=reason,
        details={"source": "inferred", **details, "divergences_at_close": had},
        log=log,
        out=out,
    )


def _close_log(position, *, reason, details, log, out: ReconcileOutcome) -> None:
    status = LogStatus.WARNING if reason in (CloseReason.STOP_OUT, CloseReason.CLOSED_EXTERNALLY) else LogStatus.SUCCESS
    log(
        Event.CLOSE,
        status,
        position,
        matched=position.matched,
        close_reason=reason,
        close_price=position.close_price,
        realized_pnl=position.realized_pnl,
        message=f"{position.symbol} #{position.ticket} closed: {reason}",
        details=details,
    )
    out.updated.append(position)
    out.closed.append(
        {
            "ticket": position.ticket,
            "symbol": position.symbol,
            "close_reason": reason,
            "close_price": s(position.close_price),
            "realized_pnl": s(position.realized_pnl),
            "source": details["source"],
        }
    )
