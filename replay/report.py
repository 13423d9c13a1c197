"""Scoring a replay: the service's answers (read back over the API) against the tool's ground truth.

* **Divergences**: every ``divergence`` log row is a (ticket, reason) pair; the truth is the set of pairs the
  injected faults cause (``FaultInjector.expected_divergences``). Precision = true positives / rows reported
  (a duplicate row is a false positive), recall = true positives / expected, per reason.
* **Closes**: every closed ledger position against the broker's closing deal: reason (mapping),
  close price and realized P&L (profit + swap + commission) to the cent.
* **Alerts**: the tool's own evaluation over the snapshots it posted (drawdown from its own
  equity/peak, price gap between consecutive quotes, spread) gives the expected episodes; an episode is
  identified by the sync that opened it, and matched with the service's alerts by ``sync_id``.
* **Equity**: the tool's independent peak/drawdown series against the service's (each sync's summary, and
  ``guards/status/`` at the end): final equity, peak, max drawdown (money and percent). Drawdown is taken
  on the cash-flow-adjusted equity index (``docs/deals.md``): r = (equity − flow) / previous equity − 1, the
  index chained × (1 + r) to 12 decimals, so deposits and withdrawals never move it; the peak in money is
  equity × peak index / index.
* **Lifecycle events** (partial close, declared SL seen, netting increase and reversal): (ticket, kind)
  pairs from the log against the engine's ``events``; **closes** per lifecycle (a netting reversal closes
  one and opens the next under the same ticket).

Figures: money in the account currency (Decimal, 2 dp), percentages 0–100.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from replay.broker import CLOSE_REASON_BY_DEAL_REASON, Deal, money
from replay.engine import SyncRecord, iso

PCT4 = Decimal("0.0001")
INDEX_QUANTUM = Decimal("1E-12")
WIPE_OUT_FRACTION = Decimal("0.01")  # docs/deals.md: a drawdown of 99 % or more by losses is a wipe-out
CONDITIONS = ("drawdown", "price_gap", "wide_spread", "stale_quote")
LEVEL_RANK = {"ok": 0, "warning": 1, "critical": 2}


def pct4(value: Decimal) -> Decimal:
    """Round a percentage half-up to 4 dp (the precision tradingsite stores, ``guards.models.PCT``)."""
    return value.quantize(PCT4, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Thresholds:
    """The user's guard thresholds (``GuardConfig``), percent 0–100 and money."""

    drawdown_warning_pct: Decimal = Decimal("15")
    drawdown_critical_pct: Decimal = Decimal("20")
    min_equity: Decimal = Decimal("100")
    gap_warning_pct: Decimal = Decimal("5")
    gap_critical_pct: Decimal = Decimal("10")
    spread_warning_pct: Decimal = Decimal("0.5")
    spread_critical_pct: Decimal = Decimal("1.0")
    drawdown_hysteresis_pct: Decimal = Decimal("1")

    @classmethod
    def from_config(cls, config: dict) -> Thresholds:
        """Build from the JSON of ``GET guards/config/`` (missing keys keep the service defaults)."""
        names = cls.__dataclass_fields__
        return cls(**{name: Decimal(str(config[name])) for name in names if config.get(name) is not None})


# ---------------------------------------------------------------------------------------------------- scoring
def precision_recall(expected: set, reported: list) -> dict:
    """Score ``reported`` items (a list: duplicates count as false positives) against the ``expected`` set.

    Returns counts and ``precision``/``recall`` (None when undefined: nothing reported / nothing expected).
    """
    seen: set = set()
    true_positive = 0
    false_positives = []
    for item in reported:
        if item in expected and item not in seen:
            true_positive += 1
            seen.add(item)
        else:
            false_positives.append(item)
    missed = sorted(expected - seen, key=str)
    return {
        "expected": len(expected),
        "reported": len(reported),
        "true_positives": true_positive,
        "false_positives": len(false_positives),
        "false_negatives": len(missed),
        "precision": round(true_positive / len(reported), 4) if reported else None,
        "recall": round(true_positive / len(expected), 4) if expected else None,
        "unexpected_items": [_plain(i) for i in false_positives[:20]],
        "missed_items": [_plain(i) for i in missed[:20]],
    }


def _plain(item):
    return list(item) if isinstance(item, tuple) else item


def perfect(score: dict) -> bool:
    """True when nothing was missed and nothing extra was reported."""
    return score["false_positives"] == 0 and score["false_negatives"] == 0


def score_by_key(expected: set[tuple], reported: list[tuple], keys) -> dict[str, dict]:
    """``precision_recall`` per key, where items are (id, key) pairs."""
    return {
        key: precision_recall({i for i in expected if i[1] == key}, [i for i in reported if i[1] == key])
        for key in sorted(set(keys) | {i[1] for i in expected} | {i[1] for i in reported})
    }


# ---------------------------------------------------------------------------------------------------- equity
def equity_series(syncs: list[SyncRecord]) -> list[dict]:
    """The tool's independent index, peak and drawdown after each posted snapshot (``docs/deals.md``).

    The first snapshot starts from max(balance, equity) (a floating loss at the start is a drawdown from
    the balance); then index ×= (equity − flow) / previous equity, rounded half-up to 12 decimals (kept
    while the previous equity is ≤ 0, never below 0); a deposit while the index is at or under 1 % of its
    peak (wiped out) restarts index and peak index at 1; peak index = running max; drawdown_pct = (peak −
    index) / peak × 100 (4 dp; ``drawdown_exact`` unrounded, for the levels); peak (money) = equity ×
    peak index / index to the cent (the previous one while equity or index is ≤ 0).
    """
    series = []
    index = peak_index = Decimal("1")
    start: Decimal | None = None
    peak: Decimal | None = None
    for record in syncs:
        restart = False
        if start is None:
            start = max(record.balance, record.equity)
            peak = max(record.balance, record.equity, Decimal("0.00"))
        elif record.flow > 0 and index <= peak_index * WIPE_OUT_FRACTION:
            restart = True  # a refill of a wiped-out account: the index restarts at it
            index = peak_index = Decimal("1")
            peak = money(max(record.equity, Decimal("0")))
        if start > 0 and not restart:
            index = (index * (record.equity - record.flow) / start).quantize(INDEX_QUANTUM, rounding=ROUND_HALF_UP)
            index = max(index, Decimal("0"))
        peak_index = max(peak_index, index)
        start = record.equity
        if index > 0 and record.equity > 0:
            peak = money(record.equity * peak_index / index)
        exact = (peak_index - index) / peak_index * 100 if peak_index > 0 else Decimal("0")
        series.append(
            {
                "sync_id": record.sync_id,
                "time": record.broker_time,
                "balance": record.balance,
                "equity": record.equity,
                "peak": peak,
                "drawdown_pct": pct4(exact),
                "drawdown_exact": exact,
                "drawdown_money": peak - record.equity,
                "index": index,
            }
        )
    return series


def equity_summary(series: list[dict]) -> dict:
    """Final equity/balance/peak/drawdown and the maxima of drawdown in percent and money."""
    if not series:
        return {}
    last = series[-1]
    return {
        "final_equity": last["equity"],
        "final_balance": last["balance"],
        "peak_equity": last["peak"],
        "final_drawdown_pct": last["drawdown_pct"],
        "max_drawdown_pct": max(p["drawdown_pct"] for p in series),
        "max_drawdown_money": max(p["drawdown_money"] for p in series),
    }


def service_series(syncs: list[SyncRecord]) -> list[dict]:
    """The service's equity/peak/drawdown after each sync, from the ``guards.drawdown`` part of its 201 summary."""
    series = []
    for record in syncs:
        drawdown = (record.response or {}).get("guards", {}).get("drawdown") or {}
        if not drawdown:
            continue
        equity, peak = Decimal(drawdown["equity"]), Decimal(drawdown["peak_equity"])
        series.append(
            {
                "sync_id": record.sync_id,
                "time": record.broker_time,
                "balance": Decimal(drawdown["balance"]),
                "equity": equity,
                "peak": peak,
                "drawdown_pct": Decimal(drawdown["drawdown_pct"]),
                "drawdown_money": peak - equity,
                "level": drawdown.get("level"),
            }
        )
    return series


def compare_equity(tool: list[dict], service: list[dict], guards_status: dict | None) -> dict:
    """Compare the tool's figures with the service's, to the cent (money) and to 4 dp (percent)."""
    tool_summary = equity_summary(tool)
    service_summary = equity_summary(service) if service else {}
    final = (guards_status or {}).get("drawdown") or {}
    if final:  # the read API's view at the end wins for the final figures
        service_summary = {
            **service_summary,
            "final_equity": Decimal(final["equity"]),
            "final_balance": Decimal(final["balance"]),
            "peak_equity": Decimal(final["peak_equity"]),
            "final_drawdown_pct": Decimal(final["drawdown_pct"]),
        }
    by_id = {p["sync_id"]: p for p in service}
    mismatches = []
    for point in tool:
        other = by_id.get(point["sync_id"])
        if other is None:
            continue
        if (other["equity"], other["peak"], other["drawdown_pct"]) != (
            point["equity"],
            point["peak"],
            point["drawdown_pct"],
        ):
            mismatches.append(
                {
                    "time": iso(point["time"]),
                    "tool": [str(point["equity"]), str(point["peak"]), str(point["drawdown_pct"])],
                    "service": [str(other["equity"]), str(other["peak"]), str(other["drawdown_pct"])],
                }
            )
    keys = ("final_equity", "peak_equity", "final_drawdown_pct", "max_drawdown_pct", "max_drawdown_money")
    differences = {
        k: str(service_summary[k] - _at_precision_of(tool_summary[k], service_summary[k]))
        for k in keys
        if k in service_summary and k in tool_summary
    }
    equal = (
        bool(service_summary)
        and all(k in service_summary for k in keys)
        and all(Decimal(v) == 0 for v in differences.values())
        and not mismatches
        and len(service) == len(tool)
    )
    return {
        "tool": {k: str(v) for k, v in tool_summary.items()},
        "service": {k: str(v) for k, v in service_summary.items()},
        "differences": differences,
        "syncs_compared": len(service),
        "per_sync_mismatches": len(mismatches),
        "first_mismatches": mismatches[:10],
        "equal": equal,
    }


def _at_precision_of(value: Decimal, rendered: Decimal) -> Decimal:
    """``value`` rounded half-up to the decimals ``rendered`` shows (guards/status/ renders percent with 2 dp)."""
    exponent = rendered.as_tuple().exponent
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP) if exponent < 0 else value


# ---------------------------------------------------------------------------------------------------- alerts
@dataclass
class Episode:
    """An expected alert episode: opened by ``sync_id`` at ``opened_at``, worst ``max_level``, ``source`` tag."""

    condition: str
    sync_id: str
    opened_at: datetime
    max_level: str
    source: str
    resolved_at: datetime | None = None


def _levels_to_episodes(condition: str, points: list[tuple[SyncRecord, str, str]]) -> list[Episode]:
    episodes, current = [], None
    for record, level, source in points:
        if level != "ok":
            if current is None:
                current = Episode(condition, record.sync_id, record.broker_time, level, source)
                episodes.append(current)
            elif LEVEL_RANK[level] > LEVEL_RANK[current.max_level]:
                current.max_level = level
        elif current is not None:
            current.resolved_at = record.broker_time
            current = None
    return episodes


def expected_alerts(
    syncs: list[SyncRecord], tool: list[dict], thresholds: Thresholds, injected_spread_syncs: set[str]
) -> list[Episode]:
    """Evaluate independently over the posted snapshots and return the expected episodes.

    Drawdown: critical from the critical threshold or equity < min_equity, warning from the warning
    threshold, on the exact index drawdown; a level is left only ``min(drawdown_hysteresis_pct, warning / 2)``
    points below its threshold (``docs/guards.md``, drawdown levels). Gap: |mid − previous mid| / previous
    mid × 100, warning from / critical from. Spread: (ask − bid) / bid × 100, warning *above* the warning
    threshold, critical from the critical one. While the market is open quotes carry the sync's broker time,
    and while it is closed no quote is stale (``docs/guards.md``, sessions): no stale-quote episode is expected.
    """
    t = thresholds
    drawdown, gaps, spreads = [], [], []
    previous_mid = None
    band = min(t.drawdown_hysteresis_pct, t.drawdown_warning_pct / 2)
    open_level: str | None = None
    for record, point in zip(syncs, tool, strict=True):
        if record.equity < t.min_equity:
            level = "critical"
        else:
            level = level_with_band(
                point["drawdown_exact"], t.drawdown_warning_pct, t.drawdown_critical_pct, open_level, band
            )
        open_level = level if level != "ok" else None
        drawdown.append((record, level, "equity"))
        mid = (record.bid + record.ask) / 2
        if previous_mid is not None:
            gap = abs(mid - previous_mid) / previous_mid * 100
            level = "critical" if gap >= t.gap_critical_pct else "warning" if gap >= t.gap_warning_pct else "ok"
            gaps.append((record, level, "weekend_gap" if record.after_gap else "intraday_move"))
        previous_mid = mid
        spread = (record.ask - record.bid) / record.bid * 100
        # the replayed symbol's per-symbol override in percent of bid (replay.run sets it): levels inclusive
        level = "critical" if spread >= t.spread_critical_pct else "warning" if spread >= t.spread_warning_pct else "ok"
        spreads.append((record, level, "injected" if record.sync_id in injected_spread_syncs else "data"))
    return [
        *_levels_to_episodes("drawdown", drawdown),
        *_levels_to_episodes("price_gap", gaps),
        *_levels_to_episodes("wide_spread", spreads),
    ]


def level_with_band(value: Decimal, warning: Decimal, critical: Decimal, previous: str | None, band: Decimal) -> str:
    """The drawdown level after ``value`` (percent) given the open episode's level ``previous``: a higher level
    at once, a lower one only as far as the value is more than ``band`` below each threshold left."""
    level = "critical" if value >= critical else "warning" if value >= warning else "ok"
    if previous is None or LEVEL_RANK[level] >= LEVEL_RANK[previous]:
        return level
    current = previous
    while LEVEL_RANK[current] > LEVEL_RANK[level]:
        threshold = critical if current == "critical" else warning
        if not value < threshold - band:
            break
        current = "warning" if current == "critical" else "ok"
    return current


def alert_condition(alert: dict) -> str:
    """The kind of one ``guards/alerts/`` item: its ``condition``, else ``kind``, else drawdown."""
    return alert.get("condition") or alert.get("kind") or "drawdown"


def score_alerts(expected: list[Episode], service_alerts: list[dict]) -> dict:
    """Per condition, (opening sync_id, condition) pairs: expected episodes against the service's alerts."""
    truth = {(e.sync_id, e.condition) for e in expected}
    reported = [(str(a.get("sync_id")), alert_condition(a)) for a in service_alerts]
    levels = {}
    by_pair = {(e.sync_id, e.condition): e for e in expected}
    level_mismatches = []
    for alert in service_alerts:
        episode = by_pair.get((str(alert.get("sync_id")), alert_condition(alert)))
        if episode is not None and alert.get("max_level") and alert["max_level"] != episode.max_level:
            level_mismatches.append(
                {
                    "condition": episode.condition,
                    "opened_at": iso(episode.opened_at),
                    "expected": episode.max_level,
                    "service": alert["max_level"],
                }
            )
        levels.setdefault(alert_condition(alert), Counter())[alert.get("max_level") or alert.get("level")] += 1
    return {
        "service_by_kind": dict(Counter(alert_condition(a) for a in service_alerts)),
        "service_by_kind_and_level": {k: dict(v) for k, v in levels.items()},
        "expected_by_kind": dict(Counter(e.condition for e in expected)),
        "expected_by_source": dict(Counter(f"{e.condition}:{e.source}" for e in expected)),
        "precision_recall": score_by_key(truth, reported, CONDITIONS[:3]),
        "max_level_mismatches": level_mismatches[:20],
    }


# ---------------------------------------------------------------------------------------------------- closes
def expected_lifecycles(deals: list[Deal]) -> list[dict]:
    """The closed lifecycles of the broker's positions from its trade deals, in order: each ends at a deal
    marked ``final`` (a full close or an INOUT reversal) and gathers the position's deals since the previous
    one. Realized P&L = Σ (profit + swap + commission) of those deals (the INOUT's to the lifecycle it
    closes); close reason and price from the final deal; ``k`` numbers the lifecycles of one ticket."""
    pending: dict[int, list[Deal]] = defaultdict(list)
    counts: Counter = Counter()
    lifecycles = []
    for deal in deals:
        if not deal.is_trade:
            continue
        pending[deal.position_id].append(deal)
        if deal.final:
            group = pending.pop(deal.position_id)
            lifecycles.append(
                {
                    "ticket": deal.position_id,
                    "k": counts[deal.position_id],
                    "close_reason": CLOSE_REASON_BY_DEAL_REASON.get(deal.reason, "closed_externally"),
                    "deal_reason": deal.reason,
                    "close_price": deal.price,
                    "realized_pnl": sum((d.realized for d in group), Decimal("0.00")),
                    "time": deal.time,
                }
            )
            counts[deal.position_id] += 1
    return lifecycles


def score_closes(deals: list[Deal], closed_positions: list[dict]) -> dict:
    """Each closed ledger position against its lifecycle's deals: reason, close price and realized P&L to the
    cent. A ticket's closed rows are taken in close order (k = 0, 1, … after netting reversals)."""
    lifecycles = expected_lifecycles(deals)
    truth = {(c["ticket"], c["k"], c["close_reason"]) for c in lifecycles}
    by_key = {(c["ticket"], c["k"]): c for c in lifecycles}
    ordered = sorted(closed_positions, key=lambda p: (int(p["ticket"]), p.get("closed_at") or "", p.get("id") or 0))
    seen: Counter = Counter()
    reported = []
    price_mismatches, pnl_mismatches = [], []
    for position in ordered:
        ticket = int(position["ticket"])
        k = seen[ticket]
        seen[ticket] += 1
        reported.append((ticket, k, position.get("close_reason")))
        expected = by_key.get((ticket, k))
        if expected is None:
            continue
        if position.get("close_price") is None or Decimal(position["close_price"]) != expected["close_price"]:
            price_mismatches.append(
                {
                    "ticket": ticket,
                    "k": k,
                    "expected": str(expected["close_price"]),
                    "service": position.get("close_price"),
                }
            )
        if position.get("realized_pnl") is None or Decimal(position["realized_pnl"]) != expected["realized_pnl"]:
            pnl_mismatches.append(
                {"ticket": ticket, "k": k, "expected": str(expected["realized_pnl"]),
                 "service": position.get("realized_pnl")}
            )  # fmt: skip
    return {
        "by_reason_expected": dict(Counter(r for *_, r in truth)),
        "by_reason_service": dict(Counter(r for *_, r in reported)),
        "precision_recall": {
            reason: precision_recall({i for i in truth if i[2] == reason}, [i for i in reported if i[2] == reason])
            for reason in sorted({i[2] for i in truth} | {str(i[2]) for i in reported})
        },
        "price_mismatches": len(price_mismatches),
        "pnl_mismatches": len(pnl_mismatches),
        "first_mismatches": (price_mismatches + pnl_mismatches)[:20],
    }


def expected_balance_residues(syncs: list[SyncRecord]) -> set[str]:
    """Sync ids whose balance change is not the money of their deals (more than one cent apart): the
    service's balance continuity check must log ``unexplained_balance_change`` there (``docs/deals.md``);
    it happens when a deal reaches the service one snapshot after the balance it moved."""
    ids, previous = set(), None
    for record in syncs:
        if previous is not None and abs(record.balance - previous - record.deal_money) > Decimal("0.01"):
            ids.add(record.sync_id)
        previous = record.balance
    return ids


# ---------------------------------------------------------------------------------------------------- chart
MARKERS = {
    "drawdown": ("v", "tab:red"),
    "price_gap": ("D", "tab:orange"),
    "wide_spread": ("^", "tab:purple"),
    "stale_quote": ("s", "tab:gray"),
}


def draw_chart(
    path: Path,
    tool: list[dict],
    service: list[dict],
    alerts: list[tuple[datetime, str]],
    thresholds: Thresholds,
    title: str,
) -> Path:
    """Write a PNG: equity and peak (top), drawdown % with the thresholds (bottom), markers where alerts opened.

    ``alerts``: (opened_at, condition) pairs; markers sit on the equity curve at that time.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [p["time"] for p in tool]
    equity = [float(p["equity"]) for p in tool]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    top.plot(times, equity, color="tab:blue", linewidth=0.9, label="equity (tool)")
    top.plot(times, [float(p["peak"]) for p in tool], color="tab:green", linewidth=1.0, label="peak equity (tool)")
    if service:
        top.plot(
            [p["time"] for p in service],
            [float(p["peak"]) for p in service],
            color="black",
            linewidth=0.8,
            linestyle=(0, (3, 3)),
            label="peak equity (service)",
        )
    by_time = dict(zip(times, equity, strict=True))
    grouped = defaultdict(list)
    for opened_at, condition in alerts:
        grouped[condition].append(opened_at)
    for condition, moments in sorted(grouped.items()):
        marker, color = MARKERS.get(condition, ("o", "tab:brown"))
        ys = [by_time.get(m, _nearest(tool, m)) for m in moments]
        top.scatter(
            moments, ys, marker=marker, color=color, s=36, zorder=3, label=f"{condition} alert opened ({len(moments)})"
        )
    top.set_ylabel("account currency")
    top.set_title(title)
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize=8)
    bottom.fill_between(
        times,
        [-float(p["drawdown_pct"]) for p in tool],
        0,
        color="tab:red",
        alpha=0.35,
        label="drawdown % (tool)",
    )
    if service:
        bottom.plot(
            [p["time"] for p in service],
            [-float(p["drawdown_pct"]) for p in service],
            color="black",
            linewidth=0.5,
            label="drawdown % (service)",
        )
    for value, style in ((thresholds.drawdown_warning_pct, "--"), (thresholds.drawdown_critical_pct, ":")):
        bottom.axhline(-float(value), color="tab:red", linestyle=style, linewidth=0.8)
    bottom.set_ylabel("drawdown %")
    bottom.grid(True, alpha=0.3)
    bottom.legend(loc="lower left", fontsize=8)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _nearest(tool: list[dict], moment: datetime) -> float:
    before = [p for p in tool if p["time"] <= moment]
    return float((before[-1] if before else tool[0])["equity"])
