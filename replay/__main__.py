"""CLI: ``python -m replay --csv EURUSD.csv --base-url http://127.0.0.1:8000 --username demo001 --password …``.

Prints the summary (and writes it as JSON with the ground truth, the per-sync equity CSV and the chart into
``--out``). Exit status 0 when every check passed, 1 when a score or the equity comparison is off, 2 on an
error (bad CSV, refused request, non-fresh account). The password may come from ``REPLAY_PASSWORD``.
"""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from replay.bars import FORMATS, BarFormatError
from replay.client import ApiError
from replay.run import Options, ReplayError, format_summary, run

# CLI flag → GuardConfig field PATCHed through guards/config/ before the replay (percent 0–100).
CONFIG_FLAGS = (
    "gap_warning_pct",
    "gap_critical_pct",
    "spread_warning_pct",
    "spread_critical_pct",
    "drawdown_warning_pct",
    "drawdown_critical_pct",
)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number ≥ 0")
    return value


def parser() -> argparse.ArgumentParser:
    """The argument parser (defaults suit backtesting's EURUSD.csv)."""
    p = argparse.ArgumentParser(prog="python -m replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, required=True, help="bars: plain time,Open,High,Low,Close,Volume or MT5 export")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="auto")
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--username", required=True)
    p.add_argument("--password", default=os.environ.get("REPLAY_PASSWORD"), help="or REPLAY_PASSWORD")
    p.add_argument("--symbol", default="EURUSD")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--fault-rate", type=float, default=0.02, help="probability per bar of a new bar fault")
    p.add_argument("--entry-fault-rate", type=float, default=0.2, help="probability per entry of slippage/partial fill")
    p.add_argument("--balance", type=_decimal, default=Decimal("10000.00"), help="starting balance (USD)")
    p.add_argument("--lots", type=_decimal, default=Decimal("0.50"))
    p.add_argument("--sl-pips", type=int, default=30)
    p.add_argument("--tp-pips", type=int, default=60)
    p.add_argument("--fast", type=int, default=10, help="fast SMA period (bars)")
    p.add_argument("--slow", type=int, default=30, help="slow SMA period (bars)")
    p.add_argument("--spread-points", type=int, default=10, help="spread for bars without a spread column")
    p.add_argument("--limit", type=int, default=None, help="replay only the first N bars")
    p.add_argument("--gap-warning-pct", type=_decimal, default=Decimal("0.4"), help="PATCHed so weekend gaps alert")
    p.add_argument("--gap-critical-pct", type=_decimal, default=Decimal("1.0"))
    p.add_argument("--spread-warning-pct", type=_decimal, default=Decimal("0.05"))
    p.add_argument("--spread-critical-pct", type=_decimal, default=Decimal("0.1"))
    p.add_argument("--drawdown-warning-pct", type=_decimal, default=None)
    p.add_argument("--drawdown-critical-pct", type=_decimal, default=None)
    p.add_argument("--no-config", action="store_true", help="leave the user's guard thresholds as they are")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--no-scenarios",
        action="store_true",
        help="main account without partial closes, trailing SL, cash flows, the NAS100 trade and weekend syncs",
    )
    p.add_argument("--no-server-time", action="store_true", help="MT5 times in UTC instead of the server's clock")
    p.add_argument("--no-netting-account", action="store_true")
    p.add_argument("--netting-bars", type=int, default=600, help="bars the netting account trades")
    p.add_argument("--no-stop-out-account", action="store_true")
    p.add_argument("--stop-out-bars", type=int, default=1500, help="bars of the stop-out account (0: all)")
    p.add_argument("--leverage", type=int, default=500, help="the stop-out account's leverage (1:N)")
    p.add_argument("--stop-out-balance", type=_decimal, default=Decimal("1000.00"))
    p.add_argument("--out", type=Path, default=Path("replay-results"))
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 all checks passed, 1 a check failed, 2 an error)."""
    args = parser().parse_args(argv)
    if not args.password:
        print("error: --password (or REPLAY_PASSWORD) is required", file=sys.stderr)
        return 2
    config = {} if args.no_config else {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    options = Options(
        csv=args.csv,
        base_url=args.base_url,
        username=args.username,
        password=args.password,
        fmt=args.fmt,
        symbol=args.symbol,
        seed=args.seed,
        fault_rate=args.fault_rate,
        entry_fault_rate=args.entry_fault_rate,
        balance=args.balance,
        lots=args.lots,
        sl_pips=args.sl_pips,
        tp_pips=args.tp_pips,
        fast=args.fast,
        slow=args.slow,
        default_spread_points=args.spread_points,
        limit=args.limit,
        out=args.out,
        config=config,
        chart=not args.no_chart,
        quiet=args.quiet,
        scenarios=not args.no_scenarios,
        server_time=not args.no_server_time,
        netting_account=not args.no_netting_account,
        netting_bars=args.netting_bars,
        stop_out_account=not args.no_stop_out_account,
        stop_out_bars=args.stop_out_bars or None,
        stop_out_leverage=args.leverage,
        stop_out_balance=args.stop_out_balance,
    )
    try:
        summary = run(options)
    except (BarFormatError, ReplayError, ApiError, FileNotFoundError, ValueError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
