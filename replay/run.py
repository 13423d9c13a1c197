"""One replay end to end: read bars, set the guard thresholds, drive the accounts, read back, score, write.

Three MT5 accounts of the same user (same trade server, distinct logins), replayed one after the other
over the same bars; every read-back names its account with ``?account=`` (``GET accounts/`` gives the ids):

* ``main`` (``login``, hedging): the SMA bot with the injected faults, plus partial closes at 1R with the
  SL trailed to break-even and declared, a deposit and a withdrawal, a manual NAS100 trade without specs,
  syncs during weekends, and MT5 times on the server's clock (UTC+2/UTC+3, the offset sent);
* ``netting`` (``login`` + 1, netting, the first ``netting_bars`` bars): increases, partial closes, reversals
  (INOUT) and closes, every deal reported with a commission;
* ``stop_out`` (``login`` + 2, 1:``stop_out_leverage``, the first ``stop_out_bars`` bars): the bot sized to
  80 % of the equity as margin, no SL: the broker stops positions out (deals of reason 6), every
  ``stop_out_delay_every``-th deal delivered one snapshot late.

Outputs in ``out/``: ``summary.json`` (what is printed), ``ground_truth.json`` (faults, events, expected
divergences, closes and alert episodes per account), ``equity.csv`` (main account, tool vs service per
sync) and ``equity.png`` (the chart).
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
from replay.broker import CLOSE_REASON_BY_DEAL_REASON, SPECS, Broker, new_york_close_offset
from replay.client import ApiError, Client
from replay.engine import Engine, NettingScript, iso
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
    scenarios: bool = True  # partial closes, trailing SL, cash flows, NAS100, weekend syncs (main account)
    server_time: bool = True  # MT5 times on the server's clock, UTC+2/UTC+3, the offset sent
    netting_account: bool = True
    netting_bars: int = 600
    stop_out_account: bool = True
    stop_out_bars: int | None = 1500  # None: every bar
    stop_out_leverage: int = 500
    stop_out_balance: Decimal = Decimal("1000.00")
    stop_out_delay_every: int = 2  # every n-th stop-out deal reaches the service one sync late


REPLAY_SERVER = "Replay-Server"
EVENT_KINDS = ("partial_close", "sl_updated", "position_increased", "reversed")
CASH_FLOW_KINDS = ("deposit", "withdrawal")
ACCOUNT_DIVERGENCES = ("unexplained_balance_change",)


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


@dataclass
class AccountRun:
    """One replayed account: its name in the summary, its engine (broker, faults, truth) and, after the run,
    the service's id for it, its thresholds and what was read back."""

    name: str
    engine: Engine
    account_id: int | None = None
    thresholds: report.Thresholds = field(default_factory=report.Thresholds)
    config: dict = field(default_factory=dict)
    readback: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)


def _main_engine(options: Options, bars, spec, sink, thresholds, probe) -> Engine:
    broker = Broker(spec=spec, balance=options.balance, login=options.login, server=REPLAY_SERVER)
    if options.server_time:
        broker.utc_offset = new_york_close_offset
    scenario: dict = {}
    if options.scenarios:
        broker.extra_specs = {"NAS100": SPECS["NAS100"]}
        n = len(bars)
        scenario = {
            "partial_close_at_r": True,
            "weekend_syncs": True,
            "cash_flows": {int(n * 0.3): Decimal("2500.00"), int(n * 0.6): Decimal("-1500.00")} if n >= 20 else {},
            "manual_symbol_trade": (int(n * 0.45), int(n * 0.45) + 12) if n >= 40 else None,
            "probe": probe,
        }
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
    return Engine(
        bars=bars,
        broker=broker,
        bot=bot,
        faults=faults,
        sink=sink,
        default_spread_points=options.default_spread_points,
        spread_warning_pct=thresholds.spread_warning_pct,
        **scenario,
    )


def _netting_engine(options: Options, bars, spec, sink) -> Engine:
    broker = Broker(
        spec=spec,
        balance=Decimal("5000.00"),
        login=options.login + 1,
        server=REPLAY_SERVER,
        netting=True,
        entry_deals=True,
        commission_per_lot=Decimal("-7.00"),
        utc_offset=new_york_close_offset if options.server_time else None,
    )
    return Engine(
        bars=bars[: options.netting_bars],
        broker=broker,
        bot=SmaCrossBot(fast=options.fast, slow=options.slow),
        faults=FaultInjector(seed=options.seed, bar_rate=0, entry_rate=0),
        sink=sink,
        default_spread_points=options.default_spread_points,
        netting=NettingScript(),
    )


def _stop_out_engine(options: Options, bars, spec, sink) -> Engine:
    broker = Broker(
        spec=spec,
        balance=options.stop_out_balance,
        login=options.login + 2,
        server=REPLAY_SERVER,
        leverage=options.stop_out_leverage,
        utc_offset=new_york_close_offset if options.server_time else None,
    )
    bot = SmaCrossBot(fast=options.fast, slow=options.slow, sl_pips=options.sl_pips, tp_pips=options.tp_pips)
    bot.use_sl = False
    return Engine(
        bars=bars[: options.stop_out_bars] if options.stop_out_bars else bars,
        broker=broker,
        bot=bot,
        faults=FaultInjector(seed=options.seed, bar_rate=0, entry_rate=0),
        sink=sink,
        default_spread_points=options.default_spread_points,
        stop_outs=True,
        delay_every=options.stop_out_delay_every,
        top_up_below=options.stop_out_balance / 2,
        top_up_to=options.stop_out_balance,
    )


def run(options: Options) -> dict:
    """Replay ``options.csv`` against the service and return the summary (also written to ``options.out``).

    Raises ``ReplayError`` when the user already has positions or syncs (a replay needs a fresh user: its
    2017 broker times would be refused with 409 after newer syncs, and old rows would pollute the scores),
    and ``replay.bars.BarFormatError`` for a malformed CSV.
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
    if spec is None or spec.symbol == "NAS100":
        raise ReplayError(f"unknown symbol {options.symbol}; supported: {', '.join(s for s in SPECS if s != 'NAS100')}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)

    client = Client(options.base_url, username=options.username, password=options.password)
    client.login()
    if _has_data(client):
        raise ReplayError(
            f"user {options.username} already has positions or reconciliation logs: replay needs a fresh account "
            "(create another user, or reset the database)"
        )
    account = {"server": REPLAY_SERVER, "login": options.login}  # the account the broker's syncs name
    # creates the account (a user may hold others) with the thresholds asked for, if any
    client.call("PATCH", "guards/config/", {**{k: str(v) for k, v in (options.config or {}).items()}, **account})
    main_id = _account_ids(client).get(options.login)
    try:
        config = _optional(client, "GET", f"guards/config/?account={main_id}" if main_id else "guards/config/") or {}
    except ApiError as error:
        if error.status != 400:  # several accounts and ours not created yet: the defaults apply
            raise
        config = {}
    thresholds = report.Thresholds.from_config(config)
    # The tool scores spreads in percent of bid (report.expected_alerts): the service is given the same rule
    # for the replayed symbol, a per-symbol override in percent (its default would learn the rolling median).
    spread_override = {"spread_unit": "pct", "spread_warning": str(thresholds.spread_warning_pct),
                       "spread_critical": str(thresholds.spread_critical_pct)}  # fmt: skip
    client.call("PATCH", f"guards/instruments/{spec.symbol}/?account={main_id}", spread_override)
    _say(options, f"replaying {len(bars)} bars of {spec.symbol} from {options.csv} as {options.username}")
    _say(options, f"guard thresholds (main account): {config or 'service defaults'}")

    runs: list[AccountRun] = []
    probes: dict = {}

    def probe(kind: str, ticket: int) -> None:
        """Read how the service shows the spec-less position while it is open (positions/open/)."""
        account_id = _account_ids(client).get(options.login)
        body = _optional(client, "GET", f"positions/open/?account={account_id}") or {}
        row = next((p for p in body.get("positions", []) if int(p["ticket"]) == ticket), None)
        probes[kind] = {"ticket": ticket, "valuation_reason": (row or {}).get("valuation_reason"), "found": bool(row)}

    runs.append(AccountRun("main", _main_engine(options, bars, spec, client, thresholds, probe), probes=probes))
    if options.netting_account:
        runs.append(AccountRun("netting", _netting_engine(options, bars, spec, client)))
    if options.stop_out_account:
        runs.append(AccountRun("stop_out", _stop_out_engine(options, bars, spec, client)))
    for item in runs:
        engine = item.engine
        engine.progress = lambda done, total, name=item.name, e=engine: _say(
            options, f"  {name}: {done}/{total} bars, {len(e.syncs)} syncs"
        )
        try:
            engine.run()
        except ApiError as error:
            failed = out / "failed_request.json"
            failed.write_text(json.dumps({"error": str(error), "status": error.status, "body": error.body}, indent=2))
            raise ReplayError(
                f"the service refused a request at sync {len(engine.syncs) + 1} of account {item.name}: {error} "
                f"(see {failed})"
            ) from error

    _say(options, "reading back divergences, events, positions, deals and alerts per account")
    started = time.perf_counter()
    ids = _account_ids(client)
    accounts_listed = _optional(client, "GET", "accounts/") or []
    for item in runs:
        item.account_id = ids.get(item.engine.broker.login)
        item.readback = _read_back(client, item.account_id)
        item.config = item.readback.pop("config") or {}
        item.thresholds = report.Thresholds.from_config(item.config) if item.config else thresholds
    readback_s = time.perf_counter() - started
    client.close()

    per_account, truths = {}, {}
    for item in runs:
        per_account[item.name], truths[item.name] = score_account(options, item)
    main_summary, main_truth = per_account["main"], truths["main"]
    summary = {**main_summary, "accounts": per_account}
    summary["accounts_separate"] = _accounts_separate(runs, accounts_listed, options)
    summary["checks"] = {
        **{f"{name}.{k}": v for name, s in per_account.items() for k, v in s["checks"].items()},
        "accounts_separate": summary["accounts_separate"]["ok"],
    }
    summary["ok"] = all(summary["checks"].values())
    summary["http"] = {**client.stats, "readback_s": round(readback_s, 2)}
    summary["divergence_source"] = "reconciliation/logs/?event_type=divergence&account=<id>"
    summary["config"] = {k: str(v) for k, v in config.items() if k != "updated_at"}

    (out / "ground_truth.json").write_text(json.dumps(truths, indent=2, default=str))
    summary["ground_truth"] = str(out / "ground_truth.json")
    _write_equity_csv(out / "equity.csv", main_truth["_tool_series"], main_truth["_service_series"])
    summary["equity_csv"] = str(out / "equity.csv")
    if options.chart:
        engine = runs[0].engine
        alerts = runs[0].readback["alerts"]
        by_sync = {r.sync_id: r.broker_time for r in engine.syncs}
        markers = [
            (by_sync[str(a["sync_id"])], report.alert_condition(a)) for a in alerts if str(a.get("sync_id")) in by_sync
        ]
        chart = report.draw_chart(
            out / "equity.png",
            main_truth["_tool_series"],
            main_truth["_service_series"],
            markers,
            runs[0].thresholds,
            f"{spec.symbol} replay of {options.csv.name}: {len(bars)} bars, seed {options.seed} "
            "(main account; markers: alerts opened)",
        )
        summary["chart"] = str(chart)
    for truth in truths.values():
        for key in [k for k in truth if k.startswith("_")]:
            del truth[key]
    (out / "ground_truth.json").write_text(json.dumps(truths, indent=2, default=str))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    summary["summary_json"] = str(out / "summary.json")
    return summary


def _has_data(client: Client) -> bool:
    """True when any of the user's accounts (each named with ``?account=``: a user with several must name
    one) already has positions or reconciliation logs."""
    scopes = [f"&account={account_id}" for account_id in _account_ids(client).values()] or [""]
    for scope in scopes:
        existing = client.call("GET", f"positions/?page_size=1{scope}")
        logs = _optional(client, "GET", f"reconciliation/logs/?page_size=1{scope}")
        if existing.get("results") or (logs and logs.get("results")):
            return True
    return False


def _account_ids(client: Client) -> dict[int, int]:
    """login → the service's account id (``GET accounts/``)."""
    rows = _optional(client, "GET", "accounts/") or []
    rows = rows.get("results", []) if isinstance(rows, dict) else rows
    return {int(row["login"]): int(row["id"]) for row in rows}


def _read_back(client: Client, account_id: int | None) -> dict:
    """Everything scored for one account, every request naming it with ``?account=``."""
    scope = {"account": account_id} if account_id is not None else {}

    def pages(path: str, **params) -> list[dict]:
        return list(client.pages(path, {**scope, "page_size": 200, **params}))

    events = {kind: pages("reconciliation/logs/", event_type=kind) for kind in (*EVENT_KINDS, "close")}
    query = f"?account={account_id}" if account_id is not None else ""
    return {
        "divergences": pages("reconciliation/logs/", event_type="divergence"),
        "events": events,
        "closed": pages("positions/", status="closed"),
        "open": pages("positions/", status="open"),
        "pending": pages("positions/", status="pending"),
        "cash_flows": pages("deals/", type=2),
        "guards_status": _optional(client, "GET", f"guards/status/{query}"),
        "alerts": pages("guards/alerts/"),
        "config": _optional(client, "GET", f"guards/config/{query}"),
        "account": next(
            (a for a in (_optional(client, "GET", "accounts/") or []) if account_id and int(a["id"]) == account_id),
            {},
        ),
    }


def _accounts_separate(runs: list[AccountRun], listed: list[dict], options: Options) -> dict:
    """Each account is its own: distinct ids, only its own tickets in its positions, and (nothing inherited)
    the thresholds PATCHed on the main account are not those of the others."""
    ids = [r.account_id for r in runs]
    tickets_ok = True
    for item in runs:
        own = {p.ticket for p in item.engine.broker.positions.values()} | {
            d.position_id for d in item.engine.broker.deals if d.is_trade
        }
        shown = {int(p["ticket"]) for key in ("closed", "open", "pending") for p in item.readback[key]}
        tickets_ok &= shown <= own
    main_config = runs[0].config
    inherited = [
        r.name
        for r in runs[1:]
        if options.config and all(str(r.config.get(k)) == str(main_config.get(k)) for k in options.config)
    ]
    ok = len(set(ids)) == len(runs) and None not in ids and tickets_ok and not inherited
    return {
        "ok": ok,
        "account_ids": dict(zip([r.name for r in runs], ids, strict=True)),
        "accounts_listed": len(listed),
        "own_tickets_only": tickets_ok,
        "config_inherited_by": inherited,
    }


def score_account(options: Options, item: AccountRun) -> tuple[dict, dict]:
    """Compare what the service reported for one account with the ground truth; return (summary, truth)."""
    engine, back, thresholds = item.engine, item.readback, item.thresholds
    broker, faults = engine.broker, engine.faults
    residue_syncs = report.expected_balance_residues(engine.syncs)
    expected_divergences = (
        faults.expected_divergences()
        | engine.extra_divergences
        | {(sync_id, "unexplained_balance_change") for sync_id in residue_syncs}
    )
    reported_divergences = [
        (int(r["ticket"]) if r.get("ticket") is not None else str(r.get("sync_id")), r["divergence_reason"])
        for r in back["divergences"]
    ]
    divergence_scores = report.score_by_key(
        expected_divergences, reported_divergences, (*DIVERGENCE_REASONS, *ACCOUNT_DIVERGENCES)
    )

    slippage_checks = []
    by_ticket_rows = {
        (int(r["ticket"]), r["divergence_reason"]): r for r in back["divergences"] if r.get("ticket") is not None
    }
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

    closed = back["closed"]
    closes = report.score_closes(broker.deals, closed)
    origin = {int(p["ticket"]): p.get("origin") for p in closed}
    manual_close_truth = {(f.ticket, "closed_manually") for f in faults.faults if f.kind == MANUAL_CLOSE}
    manual_close_reported = [
        (int(p["ticket"]), p["close_reason"])
        for p in closed
        if p.get("close_reason") == "closed_manually" and origin.get(int(p["ticket"])) == "bot"
    ]

    # lifecycle events and cash flows
    event_truth = {(e["ticket"], e["kind"]) for e in engine.events if e["kind"] in EVENT_KINDS}
    event_reported = [(int(r["ticket"]), kind) for kind in EVENT_KINDS for r in back["events"][kind]]
    event_scores = {
        kind: report.precision_recall(
            {i for i in event_truth if i[1] == kind}, [i for i in event_reported if i[1] == kind]
        )
        for kind in EVENT_KINDS
    }
    flow_truth = {(e["ticket"], e["kind"]) for e in engine.events if e["kind"] in CASH_FLOW_KINDS}
    flow_reported = [
        (int(d["ticket"]), "deposit" if Decimal(d["profit"]) > 0 else "withdrawal") for d in back["cash_flows"]
    ]
    cash_flow_scores = {
        kind: report.precision_recall(
            {i for i in flow_truth if i[1] == kind}, [i for i in flow_reported if i[1] == kind]
        )
        for kind in CASH_FLOW_KINDS
    }

    # stop-outs: every close the service inferred as stop_out must be a position the broker stopped out
    so_positions = {d.position_id for d in engine.stop_out_deals}
    delayed_positions = {d.position_id for d in engine.delayed_deals}
    inferred_rows = [
        r
        for r in back["events"]["close"]
        if r.get("close_reason") == "stop_out" and (r.get("details") or {}).get("source") == "inferred"
    ]
    inferred = [int(r["ticket"]) for r in inferred_rows]
    stop_outs = {
        "broker_stop_outs": len(engine.stop_out_deals),
        "deals_delivered_late": len(engine.delayed_deals),
        "service_inferred": len(inferred),
        "inferred_matching_a_reason_6_deal": sum(t in so_positions for t in inferred),
        "inferred_vs_late_deals": report.precision_recall(delayed_positions, inferred),
        "settled_by_deal": sum(
            1 for r in back["events"]["close"] if (r.get("details") or {}).get("settles") == "inferred"
        ),
    }

    # money: Σ realized and the balance, to the cent
    tool_realized = sum((d.realized for d in broker.deals if d.is_trade), Decimal("0.00"))
    service_realized = sum(
        (Decimal(p["realized_pnl"]) for k in ("closed", "open", "pending") for p in back[k] if p.get("realized_pnl")),
        Decimal("0.00"),
    )
    service_balance = back["account"].get("balance")
    money_check = {
        "realized_pnl": {"tool": str(tool_realized), "service": str(service_realized)},
        "balance": {"tool": str(broker.balance), "service": service_balance},
        "equal": tool_realized == service_realized
        and service_balance is not None
        and Decimal(service_balance) == broker.balance,
    }

    tool_series = report.equity_series(engine.syncs)
    service_series = report.service_series(engine.syncs)
    equity = report.compare_equity(tool_series, service_series, back["guards_status"])
    injected_spread_syncs = {
        r.sync_id for r in engine.syncs for f in faults.faults if f.kind == "wide_spread" and f.time == r.broker_time
    }
    episodes = report.expected_alerts(engine.syncs, tool_series, thresholds, injected_spread_syncs)
    alerts = back["alerts"]
    alert_scores = report.score_alerts(episodes, alerts)

    # sessions: no stale quote while the market is closed; the week's opening gap alerts
    weekend_ids = {r.sync_id for r in engine.syncs if r.moment == "weekend"}
    stale = [a for a in alerts if report.alert_condition(a) == "stale_quote"]
    monday_expected = {e.sync_id for e in episodes if e.condition == "price_gap" and e.source == "weekend_gap"}
    monday_reported = {
        str(a.get("sync_id")) for a in alerts if report.alert_condition(a) == "price_gap"
    } & monday_expected
    sessions = {
        "weekend_syncs": len(weekend_ids),
        "stale_quote_alerts": len(stale),
        "stale_quote_alerts_on_weekends": sum(str(a.get("sync_id")) in weekend_ids for a in stale),
        "monday_gap_alerts_expected": len(monday_expected),
        "monday_gap_alerts_service": len(monday_reported),
    }
    spec_missing = item.probes.get("spec_missing")

    sl_tp = [(t, r) for t, r in expected_divergences if r in ("sl_mismatch", "tp_mismatch")]
    injected = {
        "entry_slippage": divergence_scores["entry_slippage"],
        "partial_fill": divergence_scores["partial_fill"],
        "manual_trade": report.precision_recall(
            faults.expected_divergences() & {i for i in expected_divergences if i[1] == "unexpected_at_broker"},
            [p for p in reported_divergences if p[1] == "unexpected_at_broker" and p not in engine.extra_divergences],
        ),
        "sltp_change": report.precision_recall(
            set(sl_tp), [p for p in reported_divergences if p[1] in ("sl_mismatch", "tp_mismatch")]
        ),
        "manual_close": report.precision_recall(manual_close_truth, manual_close_reported),
        "wide_spread": alert_scores["precision_recall"]["wide_spread"],
    }
    per_kind = {
        kind: {
            "observed_as": OBSERVED_AS[kind],
            "injected": faults.counts()[kind],
            **{k: s[k] for k in ("expected", "reported", "true_positives", "precision", "recall")},
        }
        for kind, s in injected.items()
    }
    scenario_events = {**event_scores, **cash_flow_scores}

    broker_open = set(broker.positions)
    service_open = {int(p["ticket"]) for p in back["open"]}
    syncs = engine.syncs
    elapsed = engine.elapsed_s or 1e-9
    checks = {
        "divergences_exact": all(report.perfect(s) for s in divergence_scores.values()),
        "slippage_pips_exact": all(c["equal"] for c in slippage_checks),
        "closes_exact": all(report.perfect(s) for s in closes["precision_recall"].values())
        and closes["price_mismatches"] == 0
        and closes["pnl_mismatches"] == 0,
        "events_exact": all(report.perfect(s) for s in scenario_events.values()),
        "alerts_exact": all(report.perfect(s) for s in alert_scores["precision_recall"].values())
        and not alert_scores["max_level_mismatches"],
        "no_stale_quote_on_weekends": sessions["stale_quote_alerts_on_weekends"] == 0,
        "monday_gaps_alert": sessions["monday_gap_alerts_service"] == sessions["monday_gap_alerts_expected"],
        "stop_outs_inferred_exact": report.perfect(stop_outs["inferred_vs_late_deals"])
        and stop_outs["inferred_matching_a_reason_6_deal"] == stop_outs["service_inferred"],
        "realized_and_balance_equal": money_check["equal"],
        "equity_equal": equity["equal"],
        "open_positions_equal": broker_open == service_open and not back["pending"],
        "every_injected_kind_perfect": all(report.perfect(s) for s in injected.values()),
    }
    if spec_missing is not None:
        checks["spec_missing_shown"] = spec_missing.get("valuation_reason") == "spec_missing"
    summary = {
        "ok": all(checks.values()),
        "checks": checks,
        "account_id": item.account_id,
        "login": broker.login,
        "margin_mode": "netting" if broker.netting else "hedging",
        "leverage": broker.leverage,
        "csv": str(options.csv),
        "bars": len(engine.bars),
        "first_bar": iso(engine.bars[0].time),
        "last_bar": iso(engine.bars[-1].time),
        "seed": options.seed,
        "syncs_posted": len(syncs),
        "positions_registered": len(engine.registrations),
        "stops_declared": len([e for e in engine.events if e["kind"] == "sl_updated"]),
        "elapsed_s": round(elapsed, 2),
        "syncs_per_s": round(len(syncs) / elapsed, 1),
        "mean_sync_ms": round(engine.post_s / max(len(syncs), 1) * 1000, 2),
        "trades": {
            "bot_entries": engine.entries,
            "manual_trades": faults.counts()["manual_trade"],
            "closes_by_reason": dict(
                Counter(CLOSE_REASON_BY_DEAL_REASON[d.reason] for d in broker.deals if d.is_trade and d.final)
            ),
            "open_at_end": {
                "broker": len(broker_open),
                "service": len(service_open),
                "service_pending": len(back["pending"]),
            },
        },
        "faults_injected": faults.counts(),
        "injected_kinds": per_kind,
        "scenario_events": {k: {**s, "injected": s["expected"]} for k, s in scenario_events.items()},
        "divergences_reported": dict(Counter(r for _, r in reported_divergences)),
        "divergences": divergence_scores,
        "slippage_pips": {"checked": len(slippage_checks), "equal": sum(c["equal"] for c in slippage_checks)},
        "closes": closes,
        "alerts": alert_scores,
        "sessions": sessions,
        "stop_outs": stop_outs,
        "spec_missing": spec_missing,
        "money": money_check,
        "equity": equity,
    }
    truth = {
        "faults": [f.as_json() for f in faults.faults],
        "events": engine.events,
        "expected_divergences": sorted([list(p) for p in expected_divergences], key=str),
        "expected_closes": [
            {**c, "close_price": str(c["close_price"]), "realized_pnl": str(c["realized_pnl"]), "time": iso(c["time"])}
            for c in report.expected_lifecycles(broker.deals)
        ],
        "stop_out_deals": [
            {"ticket": d.ticket, "position_id": d.position_id, "late": d in engine.delayed_deals}
            for d in engine.stop_out_deals
        ],  # fmt: skip
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
    assert set(ALL_KINDS) == set(per_kind)
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


def _account_lines(name: str, a: dict) -> list[str]:
    """The printed block of one account."""
    closes, alerts, equity = a["closes"], a["alerts"], a["equity"]
    lines = [
        f"[{name}] login {a['login']} ({a['margin_mode']}, 1:{a['leverage']}), account id {a['account_id']}: "
        f"{a['bars']} bars, {a['syncs_posted']} syncs in {a['elapsed_s']} s = {a['syncs_per_s']} syncs/s "
        f"(mean {a['mean_sync_ms']} ms per sync); positions registered {a['positions_registered']}",
        f"  trades: {a['trades']['bot_entries']} entries, {a['trades']['manual_trades']} manual; "
        f"closes {_counts(a['trades']['closes_by_reason'])}",
    ]
    if any(a["faults_injected"].values()):
        lines.append("  faults injected: " + ", ".join(f"{k} {v}" for k, v in a["faults_injected"].items()))
        lines.append("  per injected kind (precision / recall):")
        for kind, s in a["injected_kinds"].items():
            lines.append(
                f"    {kind:15} injected {s['injected']:4}  expected {s['expected']:4}  reported {s['reported']:4}  "
                f"P {_pr(s['precision'])}  R {_pr(s['recall'])}   ({s['observed_as']})"
            )
    events = {k: s for k, s in a["scenario_events"].items() if s["expected"] or s["reported"]}
    if events:
        lines.append("  scenario events (precision / recall):")
        lines += ["  " + _score_line(k, s) for k, s in events.items()]
    lines.append(f"  divergences reported: {_counts(a['divergences_reported'])}")
    lines += ["  " + _score_line(r, s) for r, s in a["divergences"].items() if s["expected"] or s["reported"]]
    lines.append("  closes by reason (precision / recall), one per lifecycle:")
    lines += ["  " + _score_line(r, s) for r, s in closes["precision_recall"].items()]
    lines.append(
        f"    close price mismatches {closes['price_mismatches']}, realized P&L mismatches {closes['pnl_mismatches']}"
    )
    lines.append(
        f"  alerts by kind (service): {_counts(alerts['service_by_kind'])}; "
        f"expected: {_counts(alerts['expected_by_source'])}"
    )
    lines += ["  " + _score_line(c, s) for c, s in alerts["precision_recall"].items()]
    sessions = a["sessions"]
    lines.append(
        f"  sessions: {sessions['weekend_syncs']} weekend syncs, stale_quote alerts {sessions['stale_quote_alerts']} "
        f"(on weekends {sessions['stale_quote_alerts_on_weekends']}); Monday gap alerts "
        f"{sessions['monday_gap_alerts_service']} of {sessions['monday_gap_alerts_expected']} expected"
    )
    so = a["stop_outs"]
    if so["broker_stop_outs"] or so["service_inferred"]:
        late = so["inferred_vs_late_deals"]
        lines.append(
            f"  stop-outs: broker {so['broker_stop_outs']} (deals of reason 6), {so['deals_delivered_late']} delivered "
            f"one sync late; service inferred stop_out {so['service_inferred']}, matching a reason-6 deal "
            f"{so['inferred_matching_a_reason_6_deal']}, P {_pr(late['precision'])} R {_pr(late['recall'])} "
            f"against the late deals; settled by the deal {so['settled_by_deal']}"
        )
    if a.get("spec_missing"):
        lines.append(
            f"  spec-less NAS100 trade #{a['spec_missing']['ticket']}: valuation_reason "
            f"{a['spec_missing']['valuation_reason']} (guards ran on every sync)"
        )
    money = a["money"]
    lines.append(
        f"  money: realized P&L service {money['realized_pnl']['service']} tool {money['realized_pnl']['tool']}; "
        f"balance service {money['balance']['service']} tool {money['balance']['tool']}; equal: {money['equal']}"
    )
    lines.append("  equity (service vs tool):")
    for key in ("final_equity", "peak_equity", "final_drawdown_pct", "max_drawdown_pct", "max_drawdown_money"):
        lines.append(
            f"    {key:19} service {equity['service'].get(key, '-'):>12}  tool {equity['tool'].get(key, '-'):>12}"
        )
    lines.append(
        f"    per-sync mismatches {equity['per_sync_mismatches']} of {equity['syncs_compared']} compared; "
        f"equal: {equity['equal']}"
    )
    return lines


def format_summary(summary: dict) -> str:
    """The printed form of the summary: a headline, one block per account, the checks that failed."""
    accounts = summary.get("accounts") or {"main": summary}
    total_syncs = sum(a["syncs_posted"] for a in accounts.values())
    lines = [
        f"replay {'OK' if summary['ok'] else 'FAILED'}: {summary['bars']} bars "
        f"({summary['first_bar']} → {summary['last_bar']}), seed {summary['seed']}; "
        f"{len(accounts)} accounts, {total_syncs} syncs posted",
    ]
    for name, account in accounts.items():
        lines += _account_lines(name, account)
    separate = summary.get("accounts_separate")
    if separate:
        lines.append(
            f"accounts separate: {separate['ok']} (ids {separate['account_ids']}, own tickets only "
            f"{separate['own_tickets_only']}, thresholds inherited by {separate['config_inherited_by'] or 'none'})"
        )
    failed = [k for k, v in summary["checks"].items() if not v]
    lines.append(
        f"checks: {len(summary['checks']) - len(failed)} of {len(summary['checks'])} passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    lines += [f"{key}: {summary[key]}" for key in ("chart", "summary_json", "ground_truth") if key in summary]
    return "\n".join(lines)
