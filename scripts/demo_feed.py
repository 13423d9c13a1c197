#!/usr/bin/env python3
"""A demo that lives: keep posting MT5-shaped syncs for a few demo accounts through the real sync API.

    python3 scripts/demo_feed.py [--base-url http://127.0.0.1:8000] [--users 3] [--interval 3] [--seconds 0]

``scripts/dev.py run`` starts it next to the server. For each of demo001…demoNNN (``seed_demo``'s
users) it logs in over HTTP (JWT, refreshed by ``replay.client``), reads the account's open positions
back (``positions/open/``) and then, every ``--interval`` seconds, moves every price and posts a
sync: the positions at their new prices, quotes for every symbol (and the conversion pairs), equity =
balance + open profit. Prices follow a seeded random walk, or for EURUSD the real hourly bars of the
replay's CSV when ``--bars`` (or ``DEMO_BARS``) names the file (docs/replay.md says how to get it).

The first account (demo001) is the showcase: it also reports a position the bot never registered
(an ``unexpected_at_broker`` divergence that stays open) and a wide XAUUSD spread (a market alert that
stays open: the feed gives demo001's XAUUSD fixed spread thresholds in pips, ``PATCH guards/instruments/``),
so its dashboard shows a divergence, an alert and a live chart. Its login is printed at start.
Standard library, ``replay/`` and the payload builder ``tradingsite/sync_payload.py`` only; stops with its
parent process, or after ``--seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
import urllib.request
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay.bars import read_bars  # noqa: E402 - after the path set-up
from replay.client import Client  # noqa: E402
from tradingsite import sync_payload as mt5  # noqa: E402

START_MID = {"EURUSD": "1.09500", "GBPUSD": "1.26900", "USDJPY": "150.000", "XAUUSD": "1950.00",
             "EURGBP": "0.86300", "GBPJPY": "190.400", "EURJPY": "164.300"}  # fmt: skip
CONTRACT = {"XAUUSD": Decimal("100")}  # units per lot; FX 100,000
CURRENCIES = ["GBP", "USD", "EUR"]  # seed_demo: user N has CURRENCIES[N % 3] and login 5020000 + N
SHOWCASE_TICKET = 990001
# Usual spreads (quote currency), near FXCM's published averages (https://www.fxcm.com/au/accounts/spread-costs/):
# 1–2.5 pips on FX, 0.25 (2.5 gold pips of 0.10) on gold; the per-symbol spread thresholds stay quiet.
NORMAL_SPREAD = {"EURUSD": Decimal("0.00010"), "GBPUSD": Decimal("0.00012"), "USDJPY": Decimal("0.010"),
                 "XAUUSD": Decimal("0.25"), "EURGBP": Decimal("0.00015"), "GBPJPY": Decimal("0.025"),
                 "EURJPY": Decimal("0.020")}  # fmt: skip
# demo001's steady wide gold spread: 15 gold pips, between the fixed 10 / 20-pip thresholds the feed sets
# for it (PATCH guards/instruments/XAUUSD/): a warning that stays open (a median would learn it as normal).
SHOWCASE_GOLD_SPREAD = Decimal("1.50")
SHOWCASE_GOLD_THRESHOLDS = {"spread_unit": "pips", "spread_warning": "10", "spread_critical": "20"}


def digits(symbol: str) -> int:
    return 2 if symbol == "XAUUSD" else 3 if symbol.endswith("JPY") else 5


def q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


class Account:
    """One demo terminal: its positions, the mids it quotes, and its balance."""

    def __init__(self, client: Client, number: int, rng: random.Random, bars: list[Decimal], showcase: bool):
        self.client, self.number, self.rng, self.bars, self.showcase = client, number, rng, bars, showcase
        self.currency = CURRENCIES[number % 3]
        self.login = 5020000 + number
        opened = client.call("GET", "positions/open/")
        self.positions = opened["positions"]
        self.mids = {symbol: Decimal(mid) for symbol, mid in START_MID.items()}
        for row in self.positions:
            self.mids[row["symbol"]] = Decimal(row["price_current"] or row["price_open"])
        status = client.call("GET", "guards/status/")
        self.balance = Decimal(str((status.get("drawdown") or {}).get("balance") or "10000"))
        self.bar_index = 0
        if showcase:
            client.call("PATCH", "guards/instruments/XAUUSD/", SHOWCASE_GOLD_THRESHOLDS)
        if showcase and not any(row["ticket"] == SHOWCASE_TICKET for row in self.positions):
            mid = self.mids["EURUSD"]
            self.positions.append({"ticket": SHOWCASE_TICKET, "symbol": "EURUSD", "side": "buy", "volume": "0.30",
                                   "price_open": str(mid), "sl": None, "tp": None})  # fmt: skip
        self.scale = Decimal(1)
        if bars:
            self.scale = self.mids["EURUSD"] / bars[0]

    def move(self) -> None:
        """One step of every price: a seeded random walk (σ 0.03 % per step, gold 0.08 %), EURUSD from bars."""
        for symbol, mid in self.mids.items():
            sigma = 0.0008 if symbol == "XAUUSD" else 0.0003
            self.mids[symbol] = q(mid * Decimal(str(1 + self.rng.gauss(0, sigma))), digits(symbol))
        if self.bars:
            self.bar_index = (self.bar_index + 1) % len(self.bars)
            self.mids["EURUSD"] = q(self.bars[self.bar_index] * self.scale, 5)

    def usd_per(self, ccy: str) -> Decimal:
        """US dollars per unit of ``ccy`` (USD, EUR, GBP, JPY), from the quoted mids."""
        if ccy == "USD":
            return Decimal(1)
        return self.mids[f"{ccy}USD"] if f"{ccy}USD" in self.mids else 1 / self.mids[f"USD{ccy}"]

    def rate(self, ccy: str) -> Decimal:
        """Units of the account currency per unit of ``ccy``."""
        return self.usd_per(ccy) / self.usd_per(self.currency)

    def sync_body(self) -> dict:
        quotes, positions, profit_total = [], [], Decimal(0)
        for symbol, mid in self.mids.items():
            spread = (
                SHOWCASE_GOLD_SPREAD
                if (self.showcase and symbol == "XAUUSD")
                else NORMAL_SPREAD.get(symbol, mid * Decimal("0.0001"))
            )
            quotes.append(mt5.tick(symbol=symbol, bid=q(mid - spread / 2, digits(symbol)),
                                   ask=q(mid + spread / 2, digits(symbol))))  # fmt: skip
        for row in self.positions:
            symbol, mid = row["symbol"], self.mids[row["symbol"]]
            sign = 1 if row["side"] == "buy" else -1
            move = (mid - Decimal(row["price_open"])) * sign
            profit = q(
                move * Decimal(row["volume"]) * CONTRACT.get(symbol, Decimal(100000)) * self.rate(symbol[3:6]), 2
            )
            profit_total += profit
            positions.append(mt5.position(ticket=row["ticket"], symbol=symbol, type=row["side"], volume=row["volume"],
                                          price_open=row["price_open"], price_current=mid, sl=row.get("sl"),
                                          tp=row.get("tp"), profit=profit))  # fmt: skip
        equity = self.balance + profit_total
        account = mt5.account_info(login=self.login, server="Demo-Server",  # seed_demo's trade server
                                   currency=self.currency, balance=self.balance, equity=equity)  # fmt: skip
        return mt5.sync_body(broker_time=datetime.now(UTC), account=account, positions=positions, quotes=quotes)


def wait_for(base_url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base_url}/healthz", timeout=1).close()  # noqa: S310 - a local URL
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"demo feed: {base_url} did not answer within {seconds:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between syncs of an account")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: with the parent)")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--bars", default=os.environ.get("DEMO_BARS", ""), help="replay CSV for EURUSD prices")
    args = parser.parse_args(argv)
    password = os.environ.get("DEMO_PASSWORD", "demo-pass-2026")
    wait_for(args.base_url, 60)
    bars = [bar.close for bar in read_bars(args.bars)] if args.bars and Path(args.bars).exists() else []
    rng = random.Random(args.seed)
    accounts = []
    for number in range(1, args.users + 1):
        client = Client(args.base_url, username=f"demo{number:03d}", password=password, timeout=10)
        try:
            accounts.append(Account(client, number, random.Random(rng.random()), bars, showcase=number == 1))
        except Exception as error:  # e.g. fewer demo users seeded: feed the others
            print(f"demo feed: demo{number:03d} skipped: {error}", file=sys.stderr, flush=True)
    if not accounts or accounts[0].number != 1:
        sys.exit("demo feed: demo001 is not available (run seed_demo first)")
    source = f"EURUSD from {len(bars)} replay bars" if bars else "seeded random walk"
    showcase = f"demo001 (MT5 login {accounts[0].login})"
    print(f"==> demo feed: {len(accounts)} accounts every {args.interval:g} s ({source}); "
          f"live dashboard with a divergence and an alert: {showcase}", flush=True)  # fmt: skip
    parent, started = os.getppid(), time.monotonic()
    while os.getppid() == parent and not (args.seconds and time.monotonic() - started >= args.seconds):
        for account in accounts:
            account.move()
            try:
                account.client.post_sync(account.sync_body())
            except Exception as error:  # keep feeding the others; the service's answer is in the log line
                print(f"demo feed: demo{account.number:03d}: {error}", file=sys.stderr, flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C on `dev.py run` reaches the feed too
        main()
