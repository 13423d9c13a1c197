"""Reconciliation of one snapshot around the position lifecycle: pure functions, no database, no HTTP.

:func:`reconcile` takes an account's ledger rows (``Position`` instances), the broker's positions and
the new trade deals of one sync (validated dicts, see ``reconciliation.serializers``) and the
instruments; it mutates the ledger rows in memory and returns what to write: rows to update, rows to
create and the log rows of the *transitions* (a divergence that persists is logged once when it
appears and once when it resolves).

Positions are keyed by ``POSITION_IDENTIFIER`` (``identifier``; deals name it ``position_id``); the
ticket is a displayed alias that may change. What the broker did on the position's life is a lifecycle
event, logged as such and never a divergence (``positions.lifecycle``): ``partial_close``,
``position_increased`` (netting), a reversal (a ``close`` with its realized P&L plus a new position on
the other side), ``ticket_changed``, ``reappeared_at_broker`` (a position closed by inference because
an empty or partial snapshot left it out, seen again: restored). Divergences stay for what the bot did
not ask for: ``side_mismatch``, ``partial_fill`` of the entry or ``volume_mismatch``, and
``entry_slippage`` (measured when the entry is first seen and kept while the position is open);
``sl_mismatch``/``tp_mismatch`` (each sync, against the stops the bot registered or declared);
``unexpected_at_broker`` and ``missing_at_broker``.

Price tolerances are instrument-aware (``guards.tolerances.InstrumentGuard``, handed in as ``tolerances``
by symbol): entry and SL/TP tolerance = max(floor, 1.5 × the symbol's rolling median spread), the floor
in pips for FX (2 entry, 1 stop) and a percent of price for metals, indices and crypto, per-account
overrides applied (``docs/guards.md``). A symbol with an instrument but no entry in ``tolerances`` gets
the defaults without a median. Volume is compared to the instrument's volume step. Pips = price
difference / the instrument's pip (``positions.pips``, or the account's override); lots are ``Decimal``
with 2 dp. A symbol without an instrument compares stops and volume exactly and skips the entry slippage.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from guards.instruments import guard_for
from guards.margin import is_inferred_stop_out
from guards.tolerances import InstrumentGuard
from positions.lifecycle import ENTRY_IN, Kind, Lifecycle, deal_money, deal_order_key, opposite, replay
from positions.models import Instrument, Position
from reconciliation.models import SLIPPAGE_PIPS, ReconciliationLog
from tradingsite.bounds import fits

PIPS_QUANTUM = Decimal("0.01")
DEFAULT_VOLUME_STEP = Decimal("0.01")
ZERO = Decimal("0")

Reason = ReconciliationLog.DivergenceReason
Event = ReconciliationLog.EventType
LogStatus = ReconciliationLog.Status
CloseReason = Position.CloseReason

# MT5 ENUM_DEAL_REASON → close reason. 0 client, 1 mobile, 2 web, 3 expert, 4 SL, 5 TP, 6 stop out.
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
# Measured on the entry (first sighting) and kept while the position is open.
ENTRY_REASONS = (Reason.SIDE_MISMATCH, Reason.PARTIAL_FILL, Reason.VOLUME_MISMATCH, Reason.ENTRY_SLIPPAGE)
TRADE_DEAL_TYPES = frozenset({0, 1, "buy", "sell", None})


def s(value: Any) -> str | None:
    """Render a Decimal (or anything) for JSON ``details``: str, None stays None."""
    return None if value is None else str(value)


def pips(*, price_delta: Decimal, pip_size: Decimal) -> Decimal:
    """Return ``price_delta / pip_size`` rounded half-up to 0.01 pip (``pip_size`` from the instrument)."""
    return (price_delta / pip_size).quantize(PIPS_QUANTUM, rounding=ROUND_HALF_UP)


def close_reason_for_deal(reason: int | None) -> str:
    """Map an MT5 deal ``reason`` to a close reason; unknown reasons → ``closed_externally``."""
    if reason is None:
        return CloseReason.CLOSED_EXTERNALLY
    return DEAL_REASON_TO_CLOSE_REASON.get(reason, CloseReason.CLOSED_EXTERNALLY)


# --------------------------------------------------------------------------------------------
# Comparison of one known position
# --------------------------------------------------------------------------------------------
def _rules(symbol: str, instrument: Instrument | None, tolerance: InstrumentGuard | None) -> InstrumentGuard | None:
    """The tolerances handed in, else the instrument's defaults (no median, no override), else None."""
    return tolerance if tolerance is not None else guard_for(symbol, instrument)


def _tolerance_details(tolerance: Decimal, pip: Decimal) -> dict[str, str | None]:
    """The tolerance of a comparison for ``details``: in pips of the instrument and in price units."""
    return {"tolerance_pips": s(pips(price_delta=tolerance, pip_size=pip)), "tolerance": f"{tolerance.normalize():f}"}


def _stop_divergence(
    *, expected: Decimal | None, actual: Decimal | None, rules: InstrumentGuard | None
) -> dict[str, Any] | None:
    """Return the details of an SL/TP divergence, or None when they agree within the stop tolerance
    (``rules.stop`` at the expected stop; exact without rules); None = no stop on either side."""
    if expected is None and actual is None:
        return None
    delta_pips = None
    reference = expected if expected is not None else actual
    tolerance = rules.stop(reference) if rules is not None and reference is not None else ZERO
    if expected is not None and actual is not None:
        delta = actual - expected
        if abs(delta) <= tolerance:
            return None
        delta_pips = pips(price_delta=delta, pip_size=rules.pip) if rules is not None else None
    return {
        "expected": s(expected),
        "actual": s(actual),
        "delta_pips": s(delta_pips),
        **(_tolerance_details(tolerance, rules.pip) if rules is not None else {"tolerance_pips": None}),
    }


def compare_stops(
    *,
    ledger: Position,
    broker: dict[str, Any],
    instrument: Instrument | None,
    tolerance: InstrumentGuard | None = None,
) -> dict[str, dict[str, Any]]:
    """``sl_mismatch``/``tp_mismatch`` when the broker's stops differ from the ledger's by more than the
    stop tolerance (``tolerance``, else the instrument's defaults), or one side has none."""
    rules = _rules(ledger.symbol, instrument, tolerance)
    reasons: dict[str, dict[str, Any]] = {}
    sl = _stop_divergence(expected=ledger.sl, actual=broker["sl"], rules=rules)
    if sl is not None:
        reasons[Reason.SL_MISMATCH] = sl
    tp = _stop_divergence(expected=ledger.tp, actual=broker["tp"], rules=rules)
    if tp is not None:
        reasons[Reason.TP_MISMATCH] = tp
    return reasons


def compare(
    *,
    ledger: Position,
    broker: dict[str, Any],
    instrument: Instrument | None,
    tolerance: InstrumentGuard | None = None,
) -> dict[str, dict[str, Any]]:
    """Return ``{reason: details}`` for every divergence of a bot position from its broker position.

    Reasons: ``side_mismatch``; ``partial_fill`` (broker volume below the bot's, in whole volume steps)
    or ``volume_mismatch`` (above), with ``delta_lots`` = actual − expected; ``entry_slippage`` when
    |price_open − requested_price| > the entry tolerance at the requested price (``tolerance``, else the
    instrument's defaults), with signed ``delta_pips`` = (price_open − requested_price) / pip and
    ``adverse`` (filled worse than requested for the side); ``sl_mismatch``/``tp_mismatch`` when the stops
    differ by more than the stop tolerance or one is missing. An empty dict means matched.
    """
    reasons: dict[str, dict[str, Any]] = {}
    if broker["type"] != ledger.side:
        reasons[Reason.SIDE_MISMATCH] = {"expected": ledger.side, "actual": broker["type"]}

    step = instrument.volume_step if instrument is not None else DEFAULT_VOLUME_STEP
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

    rules = _rules(ledger.symbol, instrument, tolerance) if instrument is not None else None
    if ledger.requested_price is not None and rules is not None:
        delta = broker["price_open"] - ledger.requested_price
        allowed = rules.entry(ledger.requested_price)
        if abs(delta) > allowed:
            direction = 1 if broker["type"] == Position.Side.BUY else -1
            reasons[Reason.ENTRY_SLIPPAGE] = {
                "expected": s(ledger.requested_price),
                "actual": s(broker["price_open"]),
                "delta_pips": s(pips(price_delta=delta, pip_size=rules.pip)),
                **_tolerance_details(allowed, rules.pip),
                # A buy filled higher, or a sell filled lower, than requested is worse for the trader.
                "adverse": direction * delta > 0,
            }
    reasons.update(compare_stops(ledger=ledger, broker=broker, instrument=instrument, tolerance=tolerance))
    return reasons


def infer_close_reason(
    *, position: Position, instrument: Instrument | None, tolerance: InstrumentGuard | None = None
) -> tuple[str, dict[str, Any]]:
    """Infer why an open position vanished without a closing deal.

    ``tp_hit`` when the last seen price had reached the take profit within the stop tolerance t at the
    last price (``tolerance``, else the instrument's defaults; buy: price ≥ tp − t; sell: price ≤ tp + t),
    ``sl_hit`` likewise for the stop loss (buy: price ≤ sl + t; sell: price ≥ sl − t), else
    ``closed_externally``. The stops are the broker's last seen ones (the ledger's unless an
    ``sl_mismatch``/``tp_mismatch`` recorded different actual values).
    """
    price = position.price_current
    rules = _rules(position.symbol, instrument, tolerance) if instrument is not None else None
    allowed = rules.stop(price) if rules is not None and price is not None else ZERO
    details = position.divergence_details or {}
    sl = position.sl
    tp = position.tp
    if Reason.SL_MISMATCH in (position.divergence_reasons or []):
        actual = details.get(Reason.SL_MISMATCH, {}).get("actual")
        sl = Decimal(actual) if actual is not None else None
    if Reason.TP_MISMATCH in (position.divergence_reasons or []):
        actual = details.get(Reason.TP_MISMATCH, {}).get("actual")
        tp = Decimal(actual) if actual is not None else None
    info = {"last_price": s(price), "sl": s(sl), "tp": s(tp),
            **(_tolerance_details(allowed, rules.pip) if rules is not None else {"tolerance_pips": None})}  # fmt: skip
    if price is None:
        return CloseReason.CLOSED_EXTERNALLY, info
    buy = position.side == Position.Side.BUY
    if tp is not None and (price >= tp - allowed if buy else price <= tp + allowed):
        return CloseReason.TP_HIT, info
    if sl is not None and (price <= sl + allowed if buy else price >= sl - allowed):
        return CloseReason.SL_HIT, info
    return CloseReason.CLOSED_EXTERNALLY, info


def _last_seen_money(position: Position) -> Decimal:
    """profit + swap + commission of the last snapshot: what an inferred close books."""
    return (position.profit or ZERO) + (position.swap or ZERO) + (position.commission or ZERO)


def broker_volume(position: Position) -> Decimal:
    """The volume the broker last showed (lots): the ``actual`` of a standing partial_fill/volume_mismatch,
    else the ledger's volume."""
    details = position.divergence_details or {}
    for reason in (Reason.PARTIAL_FILL, Reason.VOLUME_MISMATCH):
        if reason in (position.divergence_reasons or []) and details.get(reason, {}).get("actual") is not None:
            return Decimal(details[reason]["actual"])
    return position.volume


def _ordered(reasons) -> list[str]:
    return [r for r in REASON_ORDER if r in reasons]


# --------------------------------------------------------------------------------------------
# The whole snapshot
# --------------------------------------------------------------------------------------------
COUNT_KEYS = (
    "positions_seen",
    "matched",
    "confirmed",
    "created_from_broker",
    "divergences_opened",
    "divergences_resolved",
    "missing_at_broker",
    "closed",
    "ignored_closed",
    "partial_closes",
    "increased",
    "reversed",
    "reappeared",
    "ticket_changes",
)


@dataclass
class ReconcileOutcome:
    """What one snapshot changes: rows to write, log rows, the deal → position links, the summary parts."""

    updated: list[Position] = field(default_factory=list)
    created: list[Position] = field(default_factory=list)
    logs: list[ReconciliationLog] = field(default_factory=list)
    deal_positions: dict[int, Position] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    divergences: list[dict[str, Any]] = field(default_factory=list)
    closed: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    opened_reasons: list[str] = field(default_factory=list)
    open_symbols: set[str] = field(default_factory=set)
    open_count: int = 0


def _slippage_column(delta_pips: str | None) -> Decimal | None:
    """The ``slippage_pips`` column value of a divergence row: the signed pips, or None when they cannot
    fit ``numeric(12, 2)`` (10^10 pips and more: a mistyped requested price); the raw figure stays in
    the row's ``details["delta_pips"]``."""
    if delta_pips is None:
        return None
    value = Decimal(delta_pips)
    return value if fits(value, **SLIPPAGE_PIPS) else None


def reconcile(
    *,
    user_id: int,
    account_id: int | None = None,
    sync_id: uuid.UUID,
    broker_time: datetime,
    ledger: list[Position],
    broker_positions: list[dict[str, Any]] | None,
    deals: list[dict[str, Any]],
    instruments: dict[str, Instrument],
    sync_stale_seconds: int,
    last_margin_at_or_under_stop_out: bool = False,
    tolerances: Mapping[str, InstrumentGuard] | None = None,
) -> ReconcileOutcome:
    """Reconcile one snapshot against the account's ledger.

    ``ledger``: the account's pending/open rows plus any row whose identifier the broker or a deal
    reports; mutated in place. ``broker_positions``: validated dicts (``identifier`` set), or None when
    the worker could not read them (then only the deals are applied: closes and partial closes by
    deal, no absence rule). ``deals``: this sync's trade deals not stored before (validated dicts).
    ``instruments``: by symbol (a missing symbol is compared without tolerances). Returns the rows to
    update/create, the transition log rows, the deal → position links and the summary parts.
    ``last_margin_at_or_under_stop_out``: the account's previous sync measured a margin level at or
    under the broker's stop-out level (``GuardState.margin_at_or_under_stop_out``); an open position
    that vanishes without a deal then closes as ``stop_out``, inferred (``docs/guards.md``).
    ``tolerances``: each symbol's effective pip and entry/stop tolerances (``guards.instruments``: the
    rolling median spread and the account's overrides); a symbol absent from it gets its instrument's
    defaults.
    """
    return _Reconciler(
        user_id=user_id,
        account_id=account_id,
        sync_id=sync_id,
        broker_time=broker_time,
        ledger=ledger,
        instruments=instruments,
        sync_stale_seconds=sync_stale_seconds,
        last_margin_at_or_under_stop_out=last_margin_at_or_under_stop_out,
        tolerances=tolerances,
    ).run(broker_positions, deals)


class _Reconciler:
    """One snapshot's reconciliation state: the ledger by identifier, the log being written, the counts."""

    def __init__(
        self,
        *,
        user_id,
        account_id,
        sync_id,
        broker_time,
        ledger,
        instruments,
        sync_stale_seconds,
        last_margin_at_or_under_stop_out=False,
        tolerances=None,
    ):
        self.user_id, self.account_id, self.sync_id = user_id, account_id, sync_id
        self.last_margin_at_or_under_stop_out = last_margin_at_or_under_stop_out
        self.broker_time = broker_time
        self.ledger = ledger
        self.instruments = instruments
        self.tolerances = tolerances or {}
        self.sync_stale_seconds = sync_stale_seconds
        self.out = ReconcileOutcome()
        self.counts: dict[str, int] = defaultdict(int)
        self.new_reasons: dict[int, set[str]] = defaultdict(set)
        self.live = {p.identifier: p for p in ledger if p.status != Position.Status.CLOSED}
        self.closed: dict[int, Position] = {}
        for p in sorted((p for p in ledger if p.status == Position.Status.CLOSED), key=lambda p: p.pk or 0):
            self.closed[p.identifier] = p  # the latest closed lifecycle of an identifier

    # --- log rows -------------------------------------------------------------------------------
    def log(self, event_type: str, status: str, position: Position, **fields: Any) -> None:
        self.out.logs.append(
            ReconciliationLog(
                user_id=self.user_id,
                account_id=self.account_id,
                sync_id=self.sync_id,
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
        )

    def event(self, event_type: str, position: Position, message: str, details: dict[str, Any], **fields) -> None:
        """Log a lifecycle event (``success`` unless the caller says otherwise) and list it in the summary."""
        status = fields.pop("status", LogStatus.SUCCESS)
        self.log(event_type, status, position, matched=position.matched, message=message, details=details, **fields)
        self.out.events.append({"event": event_type, "identifier": position.identifier, "ticket": position.ticket})

    def transition(self, position: Position, current: dict[str, dict[str, Any]]) -> None:
        """Log appeared/resolved reasons, then store the current state on the row."""
        previous = set(position.divergence_reasons or [])
        now = set(current)
        for reason in _ordered(now - previous):
            details = current[reason]
            slippage = details.get("delta_pips") if reason == Reason.ENTRY_SLIPPAGE else None
            self.log(
                Event.DIVERGENCE,
                LogStatus.WARNING,
                position,
                matched=False,
                divergence_reason=reason,
                slippage_pips=_slippage_column(slippage),
                message=f"{reason} on {position.symbol} #{position.ticket}",
                details={"reason": reason, **details},
            )
            self.counts["divergences_opened"] += 1
            self.out.opened_reasons.append(reason)
            self.new_reasons[position.identifier].add(reason)
        for reason in _ordered(previous - now):
            self.log(
                Event.DIVERGENCE_RESOLVED,
                LogStatus.SUCCESS,
                position,
                matched=not now,
                divergence_reason=reason,
                message=f"{reason} resolved on {position.symbol} #{position.ticket}",
                details={"reason": reason, "was": (position.divergence_details or {}).get(reason)},
            )
            self.counts["divergences_resolved"] += 1
        position.divergence_reasons = _ordered(now)
        position.divergence_details = current
        position.matched = not now

    def touched(self, position: Position) -> None:
        if position.pk is not None and all(p is not position for p in self.out.updated):
            self.out.updated.append(position)

    # --- the run --------------------------------------------------------------------------------
    def run(self, broker_positions, deals) -> ReconcileOutcome:
        by_identifier: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for deal in sorted(deals, key=deal_order_key):
            if deal.get("position_id") and deal.get("type") in TRADE_DEAL_TYPES:
                by_identifier[deal["position_id"]].append(deal)
        seen: set[int] = set()
        for row in broker_positions or []:
            seen.add(row["identifier"])
            self._seen(row, by_identifier.pop(row["identifier"], []))
        for identifier, position in list(self.live.items()):
            if identifier in seen:
                continue
            position_deals = by_identifier.pop(identifier, [])
            if broker_positions is None:
                if position_deals:
                    self._apply_deals(position, position_deals, present=None)
            else:
                self._absent(position, position_deals)
        for identifier, position_deals in by_identifier.items():
            self._deals_only(identifier, position_deals)
        return self._summary(broker_positions)

    def _instrument(self, symbol: str) -> Instrument | None:
        return self.instruments.get(symbol)

    def _seen(self, row: dict[str, Any], deals: list[dict[str, Any]]) -> None:
        identifier = row["identifier"]
        position = self.live.get(identifier)
        if position is None:
            previous = self.closed.get(identifier)
            if previous is not None and previous.realized_pnl_inferred:
                position = self._reappeared(previous, row)
            elif previous is not None:
                self.counts["ignored_closed"] += 1  # closed by its deal: MT5 never re-opens an identifier
                return
        if position is None:
            self._created(row, deals)
            return
        if position.ticket != row["ticket"]:
            self.event(
                Event.TICKET_CHANGED,
                position,
                f"{position.symbol} position {identifier}: ticket #{position.ticket} → #{row['ticket']}",
                {"identifier": identifier, "old_ticket": position.ticket, "new_ticket": row["ticket"]},
            )
            position.ticket = row["ticket"]
            self.counts["ticket_changes"] += 1
        first_seen = position.status == Position.Status.PENDING
        if deals:
            reversed_from = position
            position = self._apply_deals(position, deals, present=row)
            if position is not reversed_from:
                position.sl, position.tp = row["sl"], row["tp"]  # a reversal's new position: the stops it has
        elif not first_seen and row["volume"] != broker_volume(position):
            self._volume_event(position, before=broker_volume(position), after=row["volume"], deal=None)
        self._refresh(position, row)
        if first_seen:
            position.status = Position.Status.OPEN
            position.opened_at = row["time"] or self.broker_time
            self.counts["confirmed"] += 1
        instrument = self._instrument(position.symbol)
        tolerance = self.tolerances.get(position.symbol)
        prior_details: dict[str, Any] = position.divergence_details or {}
        current: dict[str, dict[str, Any]]
        if position.origin == Position.Origin.BROKER:
            current = {Reason.UNEXPECTED_AT_BROKER: prior_details.get(Reason.UNEXPECTED_AT_BROKER, {"expected": None})}
            position.sl, position.tp = row["sl"], row["tp"]
        elif first_seen or Reason.UNEXPECTED_AT_BROKER in (position.divergence_reasons or []):
            # a bot row still carrying unexpected_at_broker was just adopted by a late registration
            # (positions.services.position_adopt): its entry is measured now, as on a first sighting
            current = compare(ledger=position, broker=row, instrument=instrument, tolerance=tolerance)
        else:
            current = {r: prior_details[r] for r in ENTRY_REASONS if r in (position.divergence_reasons or [])}
            current.update(compare_stops(ledger=position, broker=row, instrument=instrument, tolerance=tolerance))
        self._declared_stops(position, row, current)
        self._track_volume(position, row, current)
        self.transition(position, current)
        if first_seen and not current:
            self.log(
                Event.MATCH,
                LogStatus.SUCCESS,
                position,
                matched=True,
                message=f"{position.symbol} #{position.ticket} confirmed at the broker",
                details={"requested_price": s(position.requested_price), "price_open": s(position.price_open)},
            )
        self.touched(position)
        self.counts["matched"] += int(position.matched)

    @staticmethod
    def _track_volume(position: Position, row: dict[str, Any], current: dict[str, dict[str, Any]]) -> None:
        """The ledger's volume is the bot's (adjusted by the lifecycle's partial closes and increases) while
        an entry volume divergence stands, whose ``actual`` follows the broker; otherwise the broker's."""
        standing = [r for r in (Reason.PARTIAL_FILL, Reason.VOLUME_MISMATCH) if r in current]
        if not standing:
            position.volume = row["volume"]
            return
        for reason in standing:
            current[reason] = {
                **current[reason],
                "expected": s(position.volume),
                "actual": s(row["volume"]),
                "delta_lots": s(row["volume"] - position.volume),
            }

    def _refresh(self, position: Position, row: dict[str, Any]) -> None:
        position.price_open = row["price_open"]
        position.price_current = row["price_current"]
        position.swap = row["swap"]
        position.commission = row["commission"]
        position.profit = row["profit"]
        position.last_synced_at = self.broker_time

    def _declared_stops(self, position: Position, row: dict[str, Any], current: dict[str, dict[str, Any]]) -> None:
        """A stop the bot declared (``declared_stops``) and the broker now shows: log ``sl_updated``/
        ``tp_updated`` and forget the declaration. The mismatch, if any, resolves by the comparison."""
        declared = dict(position.declared_stops or {})
        for name, event_type in (("sl", Event.SL_UPDATED), ("tp", Event.TP_UPDATED)):
            if name not in declared:
                continue
            reason = Reason.SL_MISMATCH if name == "sl" else Reason.TP_MISMATCH
            if reason in current:
                continue  # not (yet) at the broker: the mismatch opens or stays until it is
            entry = declared.pop(name)
            self.event(
                event_type,
                position,
                f"{name} of {position.symbol} #{position.ticket} moved to {s(row[name])} as declared",
                {
                    "stop": name,
                    "declared": entry.get("value"),
                    "previous": entry.get("previous"),
                    "actual": s(row[name]),
                },
            )
        position.declared_stops = declared

    def _created(self, row: dict[str, Any], deals: list[dict[str, Any]]) -> None:
        """A position the bot never registered: created ``origin=broker`` with ``unexpected_at_broker``."""
        position = Position(
            user_id=self.user_id,
            account_id=self.account_id,
            ticket=row["ticket"],
            identifier=row["identifier"],
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
            opened_at=row["time"] or self.broker_time,
            last_synced_at=self.broker_time,
            matched=False,
            divergence_reasons=[],
            divergence_details={},
        )
        self.out.created.append(position)
        self.live[position.identifier] = position
        self.counts["created_from_broker"] += 1
        if deals:
            position = self._apply_deals(position, deals, present=row, fresh=True)
        actual = {k: s(row[k]) for k in ("volume", "price_open", "sl", "tp")}
        self.transition(
            position, {Reason.UNEXPECTED_AT_BROKER: {"expected": None, "actual": {"side": row["type"], **actual}}}
        )

    def _reappeared(self, position: Position, row: dict[str, Any]) -> Position:
        """Restore a position closed by inference (it left an empty or partial snapshot) that the broker
        shows again: open, its inferred realized P&L taken back, ``reappeared_at_broker`` logged."""
        was = {
            "closed_at": position.closed_at.isoformat() if position.closed_at else None,
            "close_reason": position.close_reason,
            "inferred_realized_pnl": s(position.realized_pnl),
        }
        position.realized_pnl = (position.realized_pnl or ZERO) - _last_seen_money(position)
        position.realized_pnl_inferred = False
        position.status = Position.Status.OPEN
        position.closed_at = position.close_price = None
        position.close_reason = ""
        position.divergence_reasons = list(position.divergence_details or {})
        position.divergence_reasons = [r for r in REASON_ORDER if r in position.divergence_reasons]
        self.live[position.identifier] = position
        self.closed.pop(position.identifier, None)
        self.counts["reappeared"] += 1
        self.event(
            Event.REAPPEARED,
            position,
            f"{position.symbol} #{position.ticket} is at the broker again: restored",
            {"identifier": position.identifier, "was": was, "ticket": row["ticket"]},
            status=LogStatus.WARNING,
        )
        return position

    # --- deals -------------------------------------------------------------------------------------
    def _typed(self, position: Position, deal: dict[str, Any]) -> dict[str, Any]:
        """A deal with its ``type``: a worker may omit it; an IN deal is on the position's side, an exit
        on the other one."""
        if deal.get("type") is not None:
            return deal
        side = position.side if deal["entry"] == ENTRY_IN else opposite(position.side)
        return {**deal, "type": side}

    def _apply_deals(self, position: Position, deals, *, present, fresh: bool = False) -> Position:
        """Apply this sync's deals of ``position`` through its lifecycle; return the row that is open now
        (a new one after a reversal). ``present``: the broker row (None = unknown, False = absent)."""
        opened = position.status == Position.Status.OPEN and not fresh
        typed = [self._typed(position, d) for d in deals]
        realized = position.realized_pnl or ZERO
        if opened:
            # Deals whose effect an earlier snapshot already showed book their money only.
            late = [d for d in typed if self._already_seen(position, d, present)]
            realized += sum((deal_money(d) for d in late), ZERO)
            for deal in late:
                self.out.deal_positions.setdefault(deal["ticket"], position)
            typed = [d for d in typed if d not in late]
        start = Lifecycle(
            identifier=position.identifier,
            side=position.side if opened else None,
            volume=broker_volume(position) if opened else ZERO,
            price_open=position.price_open if opened else None,
            realized_pnl=realized,
        )
        position.realized_pnl = realized
        current = position
        for index, lifecycle in enumerate(replay(position.identifier, typed, start=start)):
            if index:
                current = self._successor(current, lifecycle)
            for ticket in lifecycle.deal_tickets:
                self.out.deal_positions.setdefault(ticket, current)
            current.realized_pnl = lifecycle.realized_pnl
            exits = [d for d in typed if d["ticket"] in lifecycle.deal_tickets and d["entry"] != ENTRY_IN]
            for event in lifecycle.events:
                deal = next(d for d in typed if d["ticket"] == event.deal_ticket)
                if event.kind in (Kind.INCREASED, Kind.PARTIAL_CLOSE):
                    self._volume_event(current, before=event.volume_before, after=event.volume_after, deal=deal)
                elif event.kind == Kind.REVERSED:
                    self._close(current, lifecycle, deal=deal, exits=exits)
                    self.counts["reversed"] += 1
                elif event.kind == Kind.CLOSED and present:
                    # A late exit deal of a position still at the broker: a partial close already seen.
                    self._volume_event(current, before=event.volume_before, after=ZERO, deal=deal, late=True)
                elif event.kind == Kind.CLOSED:
                    self._close(current, lifecycle, deal=deal, exits=exits)
        self.touched(position)
        return current

    @staticmethod
    def _already_seen(position: Position, deal: dict[str, Any], present) -> bool:
        """A deal of an open position whose effect an earlier snapshot already showed: the opening IN deal
        (its order is the position's identifier — MT5's identifier is the opening order's ticket — or,
        without an order, the snapshot does not show the volume grow), or an exit deal arriving after the
        snapshot showed the volume fall (the snapshot still shows the same volume now)."""
        held = broker_volume(position)
        volume_unchanged = bool(present) and present["volume"] == held
        if deal["entry"] == ENTRY_IN:
            if deal.get("order"):
                return deal["order"] == position.identifier
            return not present or present["volume"] <= held
        return deal["entry"] in (1, 3) and volume_unchanged

    def _successor(self, previous: Position, lifecycle: Lifecycle) -> Position:
        """The new position a reversal opens: same identifier and ticket, the other side, the remainder."""
        position = Position(
            user_id=self.user_id,
            account_id=self.account_id,
            ticket=previous.ticket,
            identifier=previous.identifier,
            symbol=previous.symbol,
            side=lifecycle.side or opposite(previous.side),  # a reversal always has the deal's side
            volume=lifecycle.volume,
            requested_price=None,
            price_open=lifecycle.price_open,
            price_current=previous.price_current,
            origin=previous.origin,
            status=Position.Status.OPEN,
            opened_at=previous.closed_at or self.broker_time,
            last_synced_at=self.broker_time,
            matched=True,
            realized_pnl=ZERO,
            divergence_reasons=[],
            divergence_details={},
        )
        self.out.created.append(position)
        self.live[position.identifier] = position
        self.event(
            Event.REVERSED,
            position,
            f"{position.symbol} position {position.identifier} reversed to {position.side} {position.volume}",
            {"identifier": position.identifier, "previous_side": previous.side, "volume": s(position.volume),
             "price_open": s(position.price_open)},
        )  # fmt: skip
        return position

    def _volume_event(self, position: Position, *, before, after, deal, late: bool = False) -> None:
        """Log ``partial_close`` (volume fell) or ``position_increased`` (rose); ``deal`` None = seen in
        the snapshot only (``inferred``)."""
        kind = Event.PARTIAL_CLOSE if after < before else Event.POSITION_INCREASED
        self.counts["partial_closes" if kind == Event.PARTIAL_CLOSE else "increased"] += 1
        if not late:
            position.volume += after - before  # the bot's volume moves with the broker's
        details = {
            "identifier": position.identifier,
            "volume_before": s(before),
            "volume_after": s(after),
            "deal_ticket": deal["ticket"] if deal else None,
            "deal_price": s(deal["price"]) if deal else None,
            "realized_pnl": s(position.realized_pnl),
            "inferred": deal is None,
            "late_deal": late,
        }
        verb = "partially closed" if kind == Event.PARTIAL_CLOSE else "increased"
        self.event(
            kind,
            position,
            f"{position.symbol} #{position.ticket} {verb}: {s(before)} → {s(after)} lots",
            details,
            realized_pnl=position.realized_pnl,
        )

    def _close(self, position: Position, lifecycle: Lifecycle, *, deal: dict[str, Any], exits) -> None:
        """Close from the deal that ends the lifecycle; the row's last view is the close: the deal's price,
        and the profit and swap of this sync's exit deals."""
        reason = close_reason_for_deal(deal.get("reason"))
        position.price_current = deal["price"]
        position.profit = sum((d.get("profit") or ZERO for d in exits), ZERO)
        position.swap = sum((d.get("swap") or ZERO for d in exits), ZERO)
        self._closed(
            position,
            closed_at=deal.get("time") or self.broker_time,
            price=deal["price"],
            reason=reason,
            pnl=lifecycle.realized_pnl,
            details={"source": "deal", "deal_ticket": deal["ticket"], "deal_reason": deal.get("reason"),
                     "deal_tickets": list(lifecycle.deal_tickets)},
        )  # fmt: skip

    def _closed(self, position: Position, *, closed_at, price, reason, pnl, details, inferred: bool = False) -> None:
        had = list(position.divergence_reasons or [])
        position.status = Position.Status.CLOSED
        position.closed_at = closed_at
        position.close_price = price
        position.close_reason = reason
        position.realized_pnl = pnl
        position.realized_pnl_inferred = inferred
        position.last_synced_at = max(filter(None, [position.last_synced_at, closed_at]))
        position.divergence_reasons = []  # a closed position has no active divergence; the close row lists them
        self.live.pop(position.identifier, None)
        self.closed[position.identifier] = position
        self.counts["closed"] += 1
        status = (
            LogStatus.WARNING if reason in (CloseReason.STOP_OUT, CloseReason.CLOSED_EXTERNALLY) else LogStatus.SUCCESS
        )
        self.log(
            Event.CLOSE,
            status,
            position,
            matched=position.matched,
            close_reason=reason,
            close_price=price,
            realized_pnl=pnl,
            message=f"{position.symbol} #{position.ticket} closed: {reason}",
            details={**details, "realized_pnl_inferred": inferred, "divergences_at_close": had},
        )
        self.touched(position)
        self.out.closed.append(
            {
                "ticket": position.ticket,
                "identifier": position.identifier,
                "symbol": position.symbol,
                "close_reason": reason,
                "close_price": s(price),
                "realized_pnl": s(pnl),
                "realized_pnl_inferred": inferred,
                "source": details["source"],
            }
        )

    def _absent(self, position: Position, deals: list[dict[str, Any]]) -> None:
        """A live row the snapshot does not show: closed by its deals, closed by inference (``stop_out`` when
        the previous sync's margin level was at or under the stop-out level, else from the last price and
        stops), or missing."""
        if deals:
            position = self._apply_deals(position, deals, present=False)
            if position.status == Position.Status.CLOSED:
                return
        if position.status == Position.Status.OPEN:
            reason, info = infer_close_reason(
                position=position,
                instrument=self._instrument(position.symbol),
                tolerance=self.tolerances.get(position.symbol),
            )
            if is_inferred_stop_out(
                closed_with_deal=False, last_at_or_under_stop_out=self.last_margin_at_or_under_stop_out
            ):
                # The broker closes positions itself at its stop-out level (deals of reason 6): the margin
                # level of the previous sync was there, so that is the likeliest close; the price-based
                # guess stays in the details. The deal, when it arrives, settles reason and P&L.
                info = {**info, "stop_out_inferred": True, "price_based_reason": reason,
                        "last_margin_at_or_under_stop_out": True}  # fmt: skip
                reason = CloseReason.STOP_OUT
            self._closed(
                position,
                closed_at=self.broker_time,
                price=position.price_current,
                reason=reason,
                pnl=(position.realized_pnl or ZERO) + _last_seen_money(position),
                details={"source": "inferred", **info, "profit": s(position.profit), "swap": s(position.swap),
                         "commission": s(position.commission), "realized_from_deals": s(position.realized_pnl)},
                inferred=True,
            )  # fmt: skip
            return
        age = (self.broker_time - position.created_at).total_seconds()
        reasons = position.divergence_reasons or []
        if Reason.MISSING_AT_BROKER in reasons or age < self.sync_stale_seconds:
            return
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
            "sync_stale_seconds": self.sync_stale_seconds,
        }
        self.transition(position, current)
        self.touched(position)
        self.counts["missing_at_broker"] += 1

    def _deals_only(self, identifier: int, deals: list[dict[str, Any]]) -> None:
        """Deals of a position that is neither live nor at the broker: the exit of a position closed by
        inference (its realized P&L is settled from the deals), or a whole position opened and closed
        between two syncs (recorded as an unexpected, closed broker position)."""
        previous = self.closed.get(identifier)
        if previous is not None and previous.realized_pnl_inferred:
            inferred = previous.realized_pnl
            start = (previous.realized_pnl or ZERO) - _last_seen_money(previous)
            money = sum((deal_money(d) for d in deals), ZERO)
            last = deals[-1]
            for deal in deals:
                self.out.deal_positions.setdefault(deal["ticket"], previous)
            previous.close_reason = close_reason_for_deal(last.get("reason"))
            previous.close_price = last["price"]
            previous.closed_at = last.get("time") or previous.closed_at
            previous.realized_pnl = start + money
            previous.realized_pnl_inferred = False
            self.event(
                Event.CLOSE,
                previous,
                f"{previous.symbol} #{previous.ticket} close settled by its deal: {previous.close_reason}",
                {"source": "deal", "settles": "inferred", "inferred_realized_pnl": s(inferred),
                 "deal_tickets": [d["ticket"] for d in deals]},
                close_reason=previous.close_reason,
                close_price=previous.close_price,
                realized_pnl=previous.realized_pnl,
            )  # fmt: skip
            self.touched(previous)
            return
        if previous is not None:
            for deal in deals:
                self.out.deal_positions.setdefault(deal["ticket"], previous)
            return
        first = deals[0]
        deal_type = first.get("type")
        side: str | None = None
        if first["entry"] == ENTRY_IN:
            side = {0: "buy", 1: "sell"}.get(deal_type) if isinstance(deal_type, int) else deal_type
        position = Position(
            user_id=self.user_id,
            account_id=self.account_id,
            ticket=identifier,
            identifier=identifier,
            symbol=first.get("symbol") or "",
            side=side or Position.Side.BUY,
            volume=first.get("volume") or DEFAULT_VOLUME_STEP,
            price_open=first["price"],
            price_current=first["price"],
            origin=Position.Origin.BROKER,
            status=Position.Status.OPEN,
            opened_at=first.get("time") or self.broker_time,
            last_synced_at=self.broker_time,
            matched=False,
            divergence_reasons=[Reason.UNEXPECTED_AT_BROKER],
            divergence_details={Reason.UNEXPECTED_AT_BROKER: {"expected": None, "actual": {"from_deals": True}}},
        )
        self.out.created.append(position)
        self.counts["created_from_broker"] += 1
        self._apply_deals(position, deals, present=False, fresh=True)

    # --- summary --------------------------------------------------------------------------------
    def _summary(self, broker_positions) -> ReconcileOutcome:
        out = self.out
        for position in [*self.ledger, *out.created]:
            if position.status == Position.Status.OPEN:
                out.open_count += 1
                out.open_symbols.add(position.symbol)
            if position.status != Position.Status.CLOSED:
                for reason in position.divergence_reasons or []:
                    out.divergences.append(
                        {
                            "ticket": position.ticket,
                            "identifier": position.identifier,
                            "symbol": position.symbol,
                            "reason": reason,
                            "new": reason in self.new_reasons[position.identifier],
                            **(position.divergence_details or {}).get(reason, {}),
                        }
                    )
        self.counts["positions_seen"] = len(broker_positions or [])
        out.counts = {key: self.counts[key] for key in COUNT_KEYS}
        return out
