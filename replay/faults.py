"""Fault injection from a seeded RNG, and the ground truth of what tradingsite should report for each fault.

Kinds, and what the service can see of each:

=================  =====================================================  ==========================================
kind               what happens at the simulated broker                   expected at tradingsite
=================  =====================================================  ==========================================
entry_slippage     the bot's entry fills 3–10 pips (signed) away from     divergence ``entry_slippage`` on the ticket
                   the requested price (tolerance is 2 pips)              (signed ``slippage_pips``)
partial_fill       the entry fills only 30–90 % of the requested lots     divergence ``partial_fill`` on the ticket
manual_close       a bot position is closed at the terminal (deal         close with ``closed_manually``
                   reason 0 client, 1 mobile or 2 web)
manual_trade       a trade is opened at the terminal, unknown to the      divergence ``unexpected_at_broker``; its
                   bot (magic 0), and closed there a few bars later       later close is ``closed_manually``
sltp_change        a bot position's SL or TP is moved 5–20 pips at the    divergence ``sl_mismatch``/``tp_mismatch``
                   broker (tolerance is 1 pip)
wide_spread        the spread at one sync widens symmetrically around     a ``wide_spread`` market alert (the mid,
                   the mid to 1.5–4 × the spread warning threshold        hence the gap guard, is unchanged)
=================  =====================================================  ==========================================

Real weekend gaps in the data are not faults: they stay as they are, and the gap guard's expected alerts are
computed independently from the quotes posted (``replay.report``).

Faults are drawn per bar (``bar_rate``: probability that a new bar fault is queued at each bar) and per entry
(``entry_rate``). A queued bar fault waits until it is applicable (a bot position to close or modify, a quote
whose widened spread would not cross a stop). ``schedule``/``entry_schedule`` force faults at given bars/entries
(used by the tests to inject exactly one of each kind).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

ENTRY_SLIPPAGE = "entry_slippage"
PARTIAL_FILL = "partial_fill"
MANUAL_CLOSE = "manual_close"
MANUAL_TRADE = "manual_trade"
SLTP_CHANGE = "sltp_change"
WIDE_SPREAD = "wide_spread"

ENTRY_KINDS = (ENTRY_SLIPPAGE, PARTIAL_FILL)
BAR_KINDS = (MANUAL_CLOSE, MANUAL_TRADE, SLTP_CHANGE, WIDE_SPREAD)
ALL_KINDS = ENTRY_KINDS + BAR_KINDS

# Divergence reasons the service can report; any reported reason outside the ground truth is a
# false positive.
DIVERGENCE_REASONS = (
    "side_mismatch",
    "partial_fill",
    "volume_mismatch",
    "entry_slippage",
    "sl_mismatch",
    "tp_mismatch",
    "unexpected_at_broker",
    "missing_at_broker",
)


@dataclass
class Fault:
    """One injected fault: where (bar index, broker time, ticket), what was done, and what the service should show.

    ``expected`` is one of ``{"divergence": reason}``, ``{"close_reason": reason}``, ``{"alert": condition}``.
    """

    kind: str
    bar: int
    time: datetime
    ticket: int | None
    expected: dict
    details: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        """Plain-JSON form (time as ISO 8601 UTC)."""
        data = asdict(self)
        data["time"] = self.time.isoformat().replace("+00:00", "Z")
        return data


class FaultInjector:
    """Seeded source of faults and of their parameters (same seed + same bars → same faults)."""

    def __init__(
        self,
        *,
        seed: int = 7,
        bar_rate: float = 0.02,
        entry_rate: float = 0.2,
        schedule: dict[int, list[str]] | None = None,
        entry_schedule: dict[int, str] | None = None,
    ) -> None:
        if not 0 <= bar_rate <= 1 or not 0 <= entry_rate <= 1:
            raise ValueError("fault rates are probabilities in [0, 1]")
        for kinds in (schedule or {}).values():
            unknown = set(kinds) - set(BAR_KINDS)
            if unknown:
                raise ValueError(f"unknown bar fault kinds {sorted(unknown)}; expected {BAR_KINDS}")
        if set((entry_schedule or {}).values()) - set(ENTRY_KINDS):
            raise ValueError(f"entry faults must be one of {ENTRY_KINDS}")
        self.rng = random.Random(seed)
        self.bar_rate = bar_rate
        self.entry_rate = entry_rate
        self.schedule = schedule or {}
        self.entry_schedule = entry_schedule or {}
        self.pending: list[str] = []
        self.faults: list[Fault] = []

    # ------------------------------------------------------------------ drawing
    def new_bar(self, index: int) -> None:
        """Queue this bar's faults: the scheduled ones, then maybe one drawn at ``bar_rate``."""
        self.pending.extend(self.schedule.get(index, ()))
        if self.bar_rate and self.rng.random() < self.bar_rate:
            self.pending.append(self.rng.choice(BAR_KINDS))

    def due(self, kind: str) -> bool:
        """True when a fault of ``kind`` is queued."""
        return kind in self.pending

    def done(self, kind: str) -> None:
        """Mark one queued fault of ``kind`` as applied."""
        self.pending.remove(kind)

    def entry_fault(self, entry_number: int) -> str | None:
        """Return the fault for the bot's ``entry_number``-th entry (1-based), or None."""
        if entry_number in self.entry_schedule:
            return self.entry_schedule[entry_number]
        if self.entry_rate and self.rng.random() < self.entry_rate:
            return self.rng.choice(ENTRY_KINDS)
        return None

    def slippage_pips(self) -> int:
        """Signed slippage in whole pips, 3–10 either way (beyond the 2-pip entry tolerance)."""
        return self.rng.randint(3, 10) * self.rng.choice((-1, 1))

    def partial_volume(self, requested: Decimal, step: Decimal) -> Decimal:
        """A filled volume of 30–90 % of ``requested``, on the volume step, at least one step, below requested."""
        filled = (requested * Decimal(str(round(self.rng.uniform(0.3, 0.9), 2))) / step).to_integral_value(
            rounding=ROUND_DOWN
        ) * step
        return min(max(filled, step), requested - step)

    def pick(self, items: list):
        """Choose one of ``items`` (for the position a fault hits)."""
        return self.rng.choice(items)

    def sltp_change(self) -> tuple[str, int]:
        """Return (``"sl"`` or ``"tp"``, signed move in pips, 5–20 either way; beyond the 1-pip tolerance)."""
        return self.rng.choice(("sl", "tp")), self.rng.randint(5, 20) * self.rng.choice((-1, 1))

    def spread_factor(self) -> Decimal:
        """Widened spread as a multiple (1.5–4) of the spread warning threshold."""
        return Decimal(str(round(self.rng.uniform(1.5, 4.0), 2)))

    def manual_trade(self) -> tuple[str, Decimal, int, int]:
        """Return (side, lots, bars held 2–24, MT5 close reason 0/1/2) of a trade placed at the terminal."""
        return (
            self.rng.choice(("buy", "sell")),
            self.rng.choice((Decimal("0.05"), Decimal("0.10"), Decimal("0.20"), Decimal("0.50"))),
            self.rng.randint(2, 24),
            self.rng.choice((0, 1, 2)),
        )

    def manual_close_reason(self) -> int:
        """MT5 deal reason of a manual close: 0 client, 1 mobile or 2 web (all map to ``closed_manually``)."""
        return self.rng.choice((0, 1, 2))

    # ------------------------------------------------------------------ ground truth
    def record(self, fault: Fault) -> Fault:
        """Add an applied fault to the ground truth."""
        self.faults.append(fault)
        return fault

    def counts(self) -> dict[str, int]:
        """Injected faults by kind (every kind listed, zeros included)."""
        counts = dict.fromkeys(ALL_KINDS, 0)
        for fault in self.faults:
            counts[fault.kind] += 1
        return counts

    def expected_divergences(self) -> set[tuple[int, str]]:
        """The (ticket, reason) pairs the service must report as divergences, and nothing else."""
        return {(f.ticket, f.expected["divergence"]) for f in self.faults if "divergence" in f.expected}
