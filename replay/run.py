"""One replay end to end: read bars, set the guard thresholds, drive the account, read back, score, write.

Outputs in ``out/``: ``summary.json`` (what is printed), ``ground_truth.json`` (faults, expected divergences,
closes and alert episodes), ``equity.csv`` (tool vs service per sync) and ``equity.png`` (the chart).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from replay import report
from replay.bars import read_bars
from replay.bot import SmaCrossBot
from replay.broker import CLOSE_REASON_BY_DEAL_REASON, SPECS, Broker
from replay.client import ApiError, Client
from replay.engine import Engine, iso
from replay.faults import ALL_KINDS, DIVERGENCE_REASONS, ENTRY_SLIPPAGE, MANUAL_CLOSE, FaultInjector

# Injected kind → what the service shows for it.
OBSERVED_AS = {
    "entry_slippage": "divergence entry_slippage",
    "partial_fill": "divergence partial_fill",
    "manual_trade": "divergence unexpected_at_broker",
    "sltp_change": "divergence sl_mismatch / tp_mismatch",
    "manual_close": "close reason closed_manually (bot positions)",
    "wide_spread": "wide_spread market alert",
}


class ReplayError(RuntimeError):
    """A replay that cannot start or continue (bad input, a non-fresh account, a refused request)."""


@dataclass
class Options:
    """Everything one replay needs (the CLI's flags). Money in the account currency, percent 0–100."""

    csv: Path
    base_url: str
    username: str
    password: str
    fmt: str = "auto"
    symbol: str = "EURUSD"
    seed: int = 7
    fault_rate: float = 0.02
    entry_fault_rate: float = 0.2
    balance: Decimal = Decimal("10000.00")
    lots: Decimal = Decimal("0.50")
    sl_pips: int = 30
    tp_pips: int = 60
    fast: int = 10
    slow: int = 30
    default_spread_points: int = 10
    login: int = 5021337
    limit: int | None = None
    out: Path = Path("replay-results")
    config: dict = field(default_factory=dict)  # GuardConfig fields to PATCH before the replay
    schedule: dict[int, list[str]] | None = None
    entry_schedule: dict[int, str] | None = None
    chart: bool = True
    quiet: bool = False


REPLAY_SERVER = "Replay-Server"


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(message, file=sys.stderr, flush=True)


def _optional(client: Client, method: str, path: str, body: dict | None = None):
    """A call whose endpoint may not exist yet on an older service: None on 404/405."""
    try:
        return client.call(method, path, body)
    except ApiError as error:
        if error.status in (404, 405):
            return None
        raise


def run(options: Options) -> dict:
    """Replay ``options.csv`` against the service and return the summary (also written to ``options.out``).

    Raises ``ReplayError`` when the account already has positions or syncs (a replay needs a fresh user:
    its 2017 broker times would be refused with 409 after newer syncs, and old rows would pollute the
    scores), and ``replay.bars.BarFormatError`` for a malformed CSV.
    """
    if options.chart:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ReplayError(
                "the chart needs matplotlib (requirements-dev.txt): install it, or pass --no-chart"
            ) from None
    bars = read_bars(options.csv, options.fmt)
    if options.limit:
        bars = bars[: options.limit]
    spec = SPECS.get(options.symbol.upper())
    if spec is None:
        raise ReplayError(f"unknown symbol {options.symbol}; supported: {', '.join(SPECS)}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)

    client = Client(options.base_url, username=options.username, password=options.password)
    client.login()
    existing = client.call("GET", "positions/?page_size=1")
    logs = _optional(client, "GET", "reconciliation/logs/?page_size=1")
    if existing.get("results") or (logs and logs.get("results")):
        raise ReplayError(
            f"user {options.username} already has positions or reconciliation logs: replay needs a fresh account "
            "(create another user, or reset the database)"
        )
    account = {"server": REPLAY_SERVER, "login": options.login}  # the account the broker's syncs name
    if options.config:
        client.call("PATCH", "guards/config/", {**{k: str(v) for k, v in options.config.items()}, **account})
    config = _optional(client, "GET", "guards/config/") or {}
    thresholds = report.Thresholds.from_config(config)
    _say(options, f"replaying {len(bars)} bars of {spec.symbol} from {options.csv} as {options.username}")
    _say(options, f"guard thresholds: {config or 'service defaults'}")

    broker = Broker(spec=spec, balance=options.balance, login=options.login, server=REPLAY_SERVER)
    bot = SmaCrossBot(
        fast=options.fast, slow=options.slow, lots=options.lots, sl_pips=options.sl_pips, tp_pips=options.tp_pips
    )
    faults = FaultInjector(
        seed=options.seed,
        bar_rate=options.fault_rate,
        entry_rate=options.entry_fault_rate,
        schedule=options.schedule,
        entry_schedule=options.entry_schedule,
    )
    engine = Engine(
        bars=bars,
        broker=broker,
        bot=bot,
        faults=faults,
        sink=client,
        default_spread_points=options.default_spread_points,
        spread_warning_pct=thresholds.spread_warning_pct,
        progress=lambda done, total: _say(options, f"  {done}/{total} bars, {len(engine.syncs)} syncs"),
    )
    try:
        engine.run()
    except ApiError as error:
        failed = out / "failed_request.json"
        failed.write_text(json.dumps({"error": str(error), "status": error.status, "body": error.body}, indent=2))
        raise ReplayError(
            f"the service refused a request at sync {len(engine.syncs) + 1}: {error} (see {failed})"
        ) from error

    _say(options, "reading back divergences, positions and alerts")
    started = time.perf_counter()
    divergence_source = "reconciliation/logs/?event_type=divergence"
    try:
        divergence_rows = list(client.pages("reconciliation/logs/", {"event_type": "divergence", "page_size": 200}))
    except ApiError as error:
        if error.status != 404:
            raise
        # An older service without the log endpoint: the divergences each sync's 201 summary reported as new.
        divergence_source = "sync responses (reconciliation/logs/ answered 404)"
        divergence_rows = [
            {"ticket": d["ticket"], "divergence_reason": d["reason"], "slippage_pips": d.get("delta_pips")}
            for record in engine.syncs
            for d in record.response.get("divergences", [])
            if d.get("new")
        ]
    closed = list(client.pages("positions/", {"status": "closed", "page_size": 200}))
    still_open = list(client.pages("positions/", {"status": "open", "page_size": 200}))
    pending = list(client.pages("positions/", {"status": "pending", "page_size": 200}))
    guards_status = _optional(client, "GET", "guards/status/")
    alerts_available = True
    try:
        alerts = list(client.pages("guards/alerts/", {"page_size": 200}))
    except ApiError as error:
        if error.status != 404:
            raise
        alerts, alerts_available = [], False
    readback_s = time.perf_counter() - started
    client.close()

    summary, truth = score(
        options=options,
        engine=engine,
        thresholds=thresholds,
        divergence_rows=divergence_rows,
        closed=closed,
        still_open=still_open,
        pending=pending,
        guards_status=guards_status,
        alerts=alerts if alerts_available else None,
    )
    summary["http"] = {**client.stats, "readback_s": round(readback_s, 2)}
    summary["divergence_source"] = divergence_source
    summary["config"] = {k: str(v) for k, v in config.items() if k != "updated_at"}

    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, default=str))
    summary["ground_truth"] = str(out / "ground_truth.json")
    _write_equity_csv(out / "equity.csv", truth["_tool_series"], truth["_service_series"])
    summary["equity_csv"] = str(out / "equity.csv")
    if options.chart:
        markers = [(a.opened_at, a.condition) for a in truth["_expected_episodes"]]
        if alerts_available:
            by_sync = {r.sync_id: r.broker_time for r in engine.syncs}
            markers = [
                (by_sync[str(a["sync_id"])], report.alert_condition(a))
                for a in alerts
                if str(a.get("sync_id")) in by_sync
            ]
        chart = report.draw_chart(
            out / "equity.png",
            truth["_tool_series"],
            truth["_service_series"],
            markers,
            thresholds,
            f"{spec.symbol} replay of {options.csv.name}: {len(bars)} bars, seed {options.seed} "
            "(markers: alerts opened)",
        )
        summary["chart"] = str(chart)
    for key in [k for k in truth if k.startswith("_")]:
        del truth[key]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["summary_json"] = str(out / "summary.json")
    return summary


def score(
    *,
    options: Options,
    engine: Engine,
    thresholds: report.Thresholds,
    divergence_rows: list[dict],
    closed: list[dict],
    still_open: list[dict],
    pending: list[dict],
    guards_status: dict | None,
    alerts: list[dict] | None,
) -> tuple[dict, dict]:
    """Compare what the service reported with the ground truth; return (summary, ground truth)."""
    broker, faults = engine.broker, engine.faults
    expected_divergences = faults.expected_divergences()
    reported_divergences = [(int(r["ticket"]), r["divergence_reason"]) for r in divergence_rows]
    divergence_scores = report.score_by_key(expected_divergences, reported_divergences, DIVERGENCE_REASONS)

    slippage_checks = []
    by_ticket_rows = {(int(r["ticket"]), r["divergence_reason"]): r for r in divergence_rows}
    for fault in faults.faults:
        if fault.kind == ENTRY_SLIPPAGE:
            row = by_ticket_rows.get((fault.ticket, ENTRY_SLIPPAGE)) or {}
            service = row.get("slippage_pips")
            slippage_checks.append(
                {
                    "ticket": fault.ticket,
                    "expected_pips": fault.details["slippage_pips"],
                    "service_pips": service,
                    "equal": service is not None and Decimal(service) == fault.details["slippage_pips"],
                }
            )

    closes = report.score_closes(broker.deals, closed)
    origin = {int(p["ticket"]): p.get("origin") for p in closed}
    manual_close_truth = {(f.ticket, "closed_manually") for f in faults.faults if f.kind == MANUAL_CLOSE}
    manual_close_reported = [
        (int(p["ticket"]), p["close_reason"])
        for p in closed
        if p.get("close_reason") == "closed_manually" and origin.get(int(p["ticket"])) == "bot"
    ]

    tool_series = report.equity_series(engine.syncs)
    service_series = report.service_series(engine.syncs)
    equity = report.compare_equity(tool_series, service_series, guards_status)
    injected_spread_syncs = {
        r.sync_id for r in engine.syncs for f in faults.faults if f.kind == "wide_spread" and f.time == r.broker_time
    }
    episodes = report.expected_alerts(engine.syncs, tool_series, thresholds, injected_spread_syncs)
    alert_scores = (
        report.score_alerts(episodes, alerts) if alerts is not None else {"unavailable": "guards/alerts/ answered 404"}
    )

    sl_tp = [(t, r) for t, r in expected_divergences if r in ("sl_mismatch", "tp_mismatch")]
    injected = {
        "entry_slippage": divergence_scores["entry_slippage"],
        "partial_fill": divergence_scores["partial_fill"],
        "manual_trade": divergence_scores["unexpected_at_broker"],
        "sltp_change": report.precision_recall(
            set(sl_tp), [p for p in reported_divergences if p[1] in ("sl_mismatch", "tp_mismatch")]
        ),
        "manual_close": report.precision_recall(manual_close_truth, manual_close_reported),
    }
    if alerts is not None:
        injected["wide_spread"] = alert_scores["precision_recall"]["wide_spread"]
    per_kind = {
        kind: {
            "observed_as": OBSERVED_AS[kind],
            "injected": faults.counts()[kind],
            **{k: s[k] for k in ("expected", "reported", "true_positives", "precision", "recall")},
        }
        for kind, s in injected.items()
    }

    broker_open = set(broker.positions)
    service_open = {int(p["ticket"]) for p in still_open}
    syncs = engine.syncs
    elapsed = engine.elapsed_s or 1e-9
    checks = {
        "divergences_exact": all(report.perfect(s) for s in divergence_scores.values()),
        "slippage_pips_exact": all(c["equal"] for c in slippage_checks),
        "closes_exact": all(report.perfect(s) for s in closes["precision_recall"].values())
        and closes["price_mismatches"] == 0
        and closes["pnl_mismatches"] == 0,
        "alerts_exact": alerts is not None
        and all(report.perfect(s) for s in alert_scores["precision_recall"].values())
        and not alert_scores["max_level_mismatches"],
        "equity_equal": equity["equal"],
        "open_positions_equal": broker_open == service_open and not pending,
        "every_injected_kind_perfect": all(report.perfect(s) for s in injected.values()),
    }
    summary = {
        "ok": all(checks.values()),
        "checks": checks,
        "csv": str(options.csv),
        "bars": len(engine.bars),
        "first_bar": iso(engine.bars[0].time),
        "last_bar": iso(engine.bars[-1].time),
        "seed": options.seed,
        "syncs_posted": len(syncs),
        "positions_registered": len(engine.registrations),
        "elapsed_s": round(elapsed, 2),
        "syncs_per_s": round(len(syncs) / elapsed, 1),
        "mean_sync_ms": round(engine.post_s / max(len(syncs), 1) * 1000, 2),
        "trades": {
            "bot_entries": engine.entries,
            "manual_trades": faults.counts()["manual_trade"],
            "closes_by_reason": dict(Counter(CLOSE_REASON_BY_DEAL_REASON[d.reason] for d in broker.deals)),
            "open_at_end": {"broker": len(broker_open), "service": len(service_open), "service_pending": len(pending)},
        },
        "faults_injected": faults.counts(),
        "injected_kinds": per_kind,
        "divergences_reported": dict(Counter(r for _, r in reported_divergences)),
        "divergences": divergence_scores,
        "slippage_pips": {"checked": len(slippage_checks), "equal": sum(c["equal"] for c in slippage_checks)},
        "closes": closes,
        "alerts": alert_scores,
        "equity": equity,
    }
    truth = {
        "options": {k: str(v) for k, v in vars(options).items() if k not in ("password", "schedule", "entry_schedule")},
        "faults": [f.as_json() for f in faults.faults],
        "expected_divergences": sorted([list(p) for p in expected_divergences]),
        "expected_closes": [
            {
                "ticket": d.position_id,
                "close_reason": CLOSE_REASON_BY_DEAL_REASON[d.reason],
                "deal_reason": d.reason,
                "close_price": str(d.price),
                "realized_pnl": str(d.realized),
                "time": iso(d.time),
            }
            for d in broker.deals
        ],
        "expected_alerts": [
            {
                "condition": e.condition,
                "sync_id": e.sync_id,
                "opened_at": iso(e.opened_at),
                "resolved_at": iso(e.resolved_at) if e.resolved_at else None,
                "max_level": e.max_level,
                "source": e.source,
            }
            for e in episodes
        ],
        "registrations": engine.registrations,
        "_tool_series": tool_series,
        "_service_series": service_series,
        "_expected_episodes": episodes,
    }
    assert set(ALL_KINDS) == set(per_kind) | ({"wide_spread"} if alerts is None else set())
    return summary, truth


def _write_equity_csv(path: Path, tool: list[dict], service: list[dict]) -> None:
    by_id = {p["sync_id"]: p for p in service}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "broker_time",
                "sync_id",
                "balance",
                "equity",
                "peak",
                "drawdown_pct",
                "service_equity",
                "service_peak",
                "service_drawdown_pct",
            ]
        )
        for p in tool:
            s = by_id.get(p["sync_id"], {})
            writer.writerow(
                [
                    iso(p["time"]),
                    p["sync_id"],
                    p["balance"],
                    p["equity"],
                    p["peak"],
                    p["drawdown_pct"],
                    s.get("equity", ""),
                    s.get("peak", ""),
                    s.get("drawdown_pct", ""),
                ]
            )


def _pr(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _score_line(name: str, s: dict) -> str:
    return (
        f"  {name:21} expected {s['expected']:4} reported {s['reported']:4}  "
        f"P {_pr(s['precision'])}  R {_pr(s['recall'])}"
    )


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def format_summary(summary: dict) -> str:
    """The printed form of the summary: headline figures and one line per injected kind."""
    closes, alerts, equity = summary["closes"], summary["alerts"], summary["equity"]
    lines = [
        f"replay {'OK' if summary['ok'] else 'FAILED'}: {summary['bars']} bars "
        f"({summary['first_bar']} → {summary['last_bar']}), seed {summary['seed']}",
        f"syncs posted {summary['syncs_posted']} in {summary['elapsed_s']} s = {summary['syncs_per_s']} syncs/s "
        f"(mean {summary['mean_sync_ms']} ms per sync); positions registered {summary['positions_registered']}",
        f"trades: {summary['trades']['bot_entries']} bot entries, {summary['trades']['manual_trades']} manual; "
        f"closes {_counts(summary['trades']['closes_by_reason'])}",
        "faults injected: " + ", ".join(f"{k} {v}" for k, v in summary["faults_injected"].items()),
        f"divergences reported: {_counts(summary['divergences_reported'])}",
        "per injected kind (precision / recall):",
    ]
    for kind, s in summary["injected_kinds"].items():
        lines.append(
            f"  {kind:15} injected {s['injected']:4}  expected {s['expected']:4}  reported {s['reported']:4}  "
            f"P {_pr(s['precision'])}  R {_pr(s['recall'])}   ({s['observed_as']})"
        )
    lines.append("per divergence reason (precision / recall):")
    lines += [_score_line(r, s) for r, s in summary["divergences"].items() if s["expected"] or s["reported"]]
    lines.append("closes by reason (precision / recall):")
    lines += [_score_line(r, s) for r, s in closes["precision_recall"].items()]
    lines.append(
        f"  close price mismatches {closes['price_mismatches']}, realized P&L mismatches {closes['pnl_mismatches']}"
    )
    if "precision_recall" in alerts:
        lines.append(
            f"alerts by kind (service): {_counts(alerts['service_by_kind'])}; "
            f"expected: {_counts(alerts['expected_by_source'])}"
        )
        lines += [_score_line(c, s) for c, s in alerts["precision_recall"].items()]
    else:
        lines.append(f"alerts: {alerts.get('unavailable')}")
    lines.append("equity (service vs tool):")
    for key in ("final_equity", "peak_equity", "final_drawdown_pct", "max_drawdown_pct", "max_drawdown_money"):
        lines.append(
            f"  {key:19} service {equity['service'].get(key, '-'):>12}  tool {equity['tool'].get(key, '-'):>12}"
        )
    lines.append(
        f"  per-sync mismatches {equity['per_sync_mismatches']} of {equity['syncs_compared']} compared; "
        f"equal: {equity['equal']}"
    )
    lines.append("checks: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in summary["checks"].items()))
    lines += [f"{key}: {summary[key]}" for key in ("chart", "summary_json", "ground_truth") if key in summary]
    return "\n".join(lines)
