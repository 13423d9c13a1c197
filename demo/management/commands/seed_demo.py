"""``manage.py seed_demo``: demo users driven through registrations and syncs by the real service functions.

Example (100 users × 200 syncs, deterministic for a seed)::

    DJANGO_DEBUG=1 .venv/bin/python manage.py seed_demo --users 100 --syncs 200 --seed 42

Creates the superuser ``admin`` (password ``DEMO_ADMIN_PASSWORD``, default "admin-demo-pass") and
users ``demo001`` … (one shared password ``DEMO_PASSWORD``, default "demo-pass-2026"). Each user gets
a GBP, USD or EUR account on the trade server "Demo-Server" (``demo004`` two accounts, in two
currencies) and a simulated MT5 terminal per account: seeded random-walk prices for the traded
symbols plus the conversion pairs its account currency needs, a bot that registers positions with
``positions.services.position_register``, and a broker that fills, modifies and closes them. Every
snapshot is built as the worker posts it (``Terminal.snapshot``, ``tradingsite.sync_payload``), validated
by the endpoint's ``SyncInputSerializer`` and goes through ``reconciliation.services.sync_ingest_batch``
(the function behind ``sync_ingest``: the same rules, the user's state read once per batch of up to 20
syncs) — no row of a position, log, quote, snapshot or alert is inserted directly. Scheduled events
give every kind of row: entry slippage (both directions), partial fills, SL changes at the broker, manual
trades unknown to the bot, a pending order that never fills (``missing_at_broker``), closes by
SL/TP/bot/manual deals and closes inferred without a deal, drawdown episodes (warning and critical),
price gaps, wide spreads and stale quotes.

The simulated broker clock ends at the moment the command starts (5 s between syncs), and
``django.utils.timezone.now`` follows it while a user is seeded, so registration times, log times
and broker times line up as if the worker had been running. Each user is seeded in one transaction:
a second run skips users that already exist (and still prints the logins).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandParser
from django.db import reset_queries, transaction
from django.utils import timezone

from accounts.services import account_get_or_create
from guards.sessions import default_calendar
from positions.models import Instrument
from positions.services import position_register
from reconciliation.serializers import SyncInputSerializer
from reconciliation.services import sync_ingest_batch
from tradingsite import sync_payload as mt5

SYNC_INTERVAL = timedelta(seconds=5)
DEMO_SERVER = "Demo-Server"
# The demo user (by number) who holds two accounts: a second terminal in another currency, another login.
TWO_ACCOUNTS_INDEX = 4
MAX_BATCH = 20  # syncs ingested together at most (100 s of the simulated clock)
TRADED = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "EURGBP"]
# Conversion pairs so every P&L currency (USD, JPY, GBP) converts into GBP, USD and EUR accounts.
QUOTED = [*TRADED, "GBPJPY", "EURJPY"]
START_MID = {
    "EURUSD": "1.09500",
    "GBPUSD": "1.26900",
    "USDJPY": "150.000",
    "XAUUSD": "1950.00",
    "EURGBP": "0.86300",
    "GBPJPY": "190.400",
    "EURJPY": "164.300",
}
STEP_VOLATILITY = {"XAUUSD": 0.0005}  # relative σ per 5 s step; FX default below
FX_STEP_VOLATILITY = 0.00015
# Usual spreads in pips (gold: pips of 0.10, positions.pips), near FXCM's published averages
# (https://www.fxcm.com/au/accounts/spread-costs/: EUR/USD 1.3, GBP/USD 1.5, USD/JPY 1.3, EUR/GBP 2.2,
# GBP/JPY 2.8, EUR/JPY 2.1, XAU/USD 0.36 = 3.6 gold pips), so the per-symbol spread thresholds stay quiet.
NORMAL_SPREAD_PIPS = {"EURUSD": 1, "GBPUSD": 1.2, "USDJPY": 1, "XAUUSD": 2.5, "EURGBP": 1.5, "GBPJPY": 2.5, "EURJPY": 2}
# The showcase's widened gold spread: 12 pips (1.20) is a warning (class default 10 pips, or 4.8 × a 2.5-pip
# median), 30 pips (3.00) critical (20 pips, or 12 × the median).
WIDE_SPREAD_PIPS, CRITICAL_SPREAD_PIPS = Decimal("12"), Decimal("30")
VOLUMES = ["0.10", "0.20", "0.50", "1.00"]
CURRENCIES = ["GBP", "USD", "EUR"]
MT5_REASON_CLIENT, MT5_REASON_EXPERT, MT5_REASON_SL, MT5_REASON_TP = 0, 3, 4, 5
TABLES = [
    ("auth", "User"),
    ("accounts", "Account"),
    ("positions", "Position"),
    ("positions", "Quote"),
    ("reconciliation", "ReconciliationLog"),
    ("guards", "EquitySnapshot"),
    ("guards", "GuardConfig"),
    ("guards", "GuardState"),
    ("guards", "DrawdownAlert"),
    ("guards", "MarketAlert"),
]


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@dataclass
class BrokerPosition:
    """One position as the simulated MT5 terminal holds it."""

    ticket: int
    symbol: str
    side: str
    volume: Decimal
    price_open: Decimal
    sl: Decimal | None
    tp: Decimal | None
    opened: datetime
    close_after: int
    swap: Decimal = Decimal("0")
    manual: bool = False


@dataclass
class Order:
    """A registration waiting to be filled at the next snapshot, and how the broker will fill it."""

    ticket: int
    symbol: str
    side: str
    volume: Decimal
    price: Decimal
    sl: Decimal | None
    tp: Decimal | None
    fill: str  # "exact", "slippage", "partial", "never"


@dataclass
class Terminal:
    """A user's simulated MT5 terminal and broker account, deterministic for (seed, user number)."""

    rng: random.Random
    index: int
    currency: str
    instruments: dict[str, Instrument]
    syncs: int
    mids: dict[str, Decimal] = field(default_factory=dict)
    spreads: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[int, BrokerPosition] = field(default_factory=dict)
    orders: list[Order] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)  # MT5 history_deals_get() rows not yet sent
    balance: Decimal = Decimal("10000.00")
    next_ticket: int = 700001
    next_deal: int = 5000001
    orders_placed: int = 0
    login: int = 0  # MT5 login; 0 = the default 5020000 + index

    @property
    def account_login(self) -> int:
        return self.login or 5020000 + self.index

    # --- market -----------------------------------------------------------------------------
    def move_prices(self, step: int) -> None:
        for symbol in QUOTED:
            inst = self.instruments[symbol]
            mid = self.mids.get(symbol, Decimal(START_MID[symbol]))
            sigma = STEP_VOLATILITY.get(symbol, FX_STEP_VOLATILITY)
            mid *= Decimal(str(1 + self.rng.gauss(0, sigma)))
            if symbol == "XAUUSD" and self.index % 5 == 0 and step == int(self.syncs * 0.75):
                mid *= Decimal("1.06")  # a 6 % gap on gold: a price_gap warning
            self.mids[symbol] = _q(mid, inst.digits)
            spread = Decimal(str(NORMAL_SPREAD_PIPS[symbol])) * inst.pip_size
            if symbol == "XAUUSD" and self.index % 3 == 0 and 0.3 * self.syncs <= step < 0.3 * self.syncs + 6:
                # a widening spread: a warning, critical for every sixth user
                spread = (CRITICAL_SPREAD_PIPS if self.index % 6 == 0 else WIDE_SPREAD_PIPS) * inst.pip_size
            self.spreads[symbol] = _q(spread, inst.digits)

    def bid_ask(self, symbol: str) -> tuple[Decimal, Decimal]:
        inst = self.instruments[symbol]
        half = self.spreads[symbol] / 2
        bid = _q(self.mids[symbol] - half, inst.digits)
        return bid, max(bid, _q(bid + self.spreads[symbol], inst.digits))

    def exit_price(self, position: BrokerPosition) -> Decimal:
        bid, ask = self.bid_ask(position.symbol)
        return bid if position.side == "buy" else ask

    def rate(self, ccy: str) -> Decimal | None:
        """Units of account currency per unit of ``ccy``, from the mids (direct or inverse pair)."""
        if ccy == self.currency:
            return Decimal("1")
        if f"{ccy}{self.currency}" in self.mids:
            return self.mids[f"{ccy}{self.currency}"]
        if f"{self.currency}{ccy}" in self.mids:
            return 1 / self.mids[f"{self.currency}{ccy}"]
        return None

    def profit(self, position: BrokerPosition, price: Decimal) -> Decimal:
        inst = self.instruments[position.symbol]
        direction = 1 if position.side == "buy" else -1
        quote_pnl = direction * (price - position.price_open) * position.volume * inst.contract_size
        return _q(quote_pnl * (self.rate(inst.currency_profit) or Decimal("0")), 2)

    # --- bot and broker -----------------------------------------------------------------------
    def maybe_order(self, step: int) -> Order | None:
        if step == 3 and self.index % 10 == 2:
            fill = "never"  # a registration the broker never fills → missing_at_broker after 60 s
        elif len(self.positions) + len(self.orders) < 4 and self.rng.random() < 0.08:
            roll = self.rng.random()
            fill = "slippage" if roll < 0.12 else "partial" if roll < 0.2 else "exact"
            if self.orders_placed == 0 and self.index % 4 in (2, 3):
                fill = "slippage" if self.index % 4 == 2 else "partial"  # every user's first order: one of each
        else:
            return None
        self.orders_placed += 1
        symbol = self.rng.choice(TRADED)
        inst = self.instruments[symbol]
        side = self.rng.choice(["buy", "sell"])
        bid, ask = self.bid_ask(symbol)
        price = ask if side == "buy" else bid
        distance = price * Decimal(str(self.rng.uniform(0.0012, 0.003)))
        direction = 1 if side == "buy" else -1
        sl = _q(price - direction * distance, inst.digits)
        tp = _q(price + direction * distance * Decimal(str(self.rng.uniform(0.8, 1.6))), inst.digits)
        volume = Decimal(self.rng.choice(VOLUMES[:3] if symbol == "XAUUSD" else VOLUMES))
        order = Order(self.next_ticket, symbol, side, volume, price, sl, tp, fill)
        self.next_ticket += 1
        return order

    def fill_orders(self, now: datetime) -> None:
        for order in self.orders:
            if order.fill == "never":
                continue
            inst = self.instruments[order.symbol]
            price, volume = order.price, order.volume
            if order.fill == "slippage":  # 3–6 pips either way
                price += self.rng.choice([-1, 1]) * self.rng.randint(3, 6) * inst.pip_size
            elif order.fill == "exact":
                price += self.rng.randint(-1, 1) * inst.point
            if order.fill == "partial":
                volume = max(inst.volume_min, _q(volume / 2, 2))
                if volume == order.volume:
                    volume = order.volume + inst.volume_step  # a 0.01-lot order cannot be halved: over-fill it
            self.positions[order.ticket] = BrokerPosition(
                order.ticket, order.symbol, order.side, volume, price, order.sl, order.tp, now,
                close_after=self.rng.randint(25, 90),
            )  # fmt: skip
        self.orders = [o for o in self.orders if o.fill == "never"]

    def manual_trade(self, step: int, now: datetime) -> None:
        """Every fourth user trades by hand once: a position the bot never registered, closed by hand later."""
        if self.index % 4 != 1 or step != int(self.syncs * 0.2):
            return
        symbol = "XAUUSD"
        bid, ask = self.bid_ask(symbol)
        ticket = 900000 + self.index
        self.positions[ticket] = BrokerPosition(
            ticket, symbol, "sell", Decimal("0.10"), bid, None, None, now, close_after=int(self.syncs * 0.25),
            manual=True,
        )  # fmt: skip

    def modify_stops(self, step: int) -> None:
        """Every third user's broker moves a stop loss for a while (sl_mismatch appears, then resolves)."""
        if self.index % 3 != 1 or not self.positions:
            return
        target = self.positions[min(self.positions)]
        if target.manual or target.sl is None:
            return
        inst = self.instruments[target.symbol]
        if step == int(self.syncs * 0.6):
            direction = 1 if target.side == "buy" else -1
            target.sl -= direction * 10 * inst.pip_size  # 10 pips further away
        elif step == int(self.syncs * 0.65):
            target.sl += (1 if target.side == "buy" else -1) * 10 * inst.pip_size

    def close_positions(self, step: int, now: datetime) -> None:
        for ticket, position in list(self.positions.items()):
            price = self.exit_price(position)
            buy = position.side == "buy"
            reason = None
            if position.sl is not None and (price <= position.sl if buy else price >= position.sl):
                reason, price = MT5_REASON_SL, position.sl
            elif position.tp is not None and (price >= position.tp if buy else price <= position.tp):
                reason, price = MT5_REASON_TP, position.tp
            elif (now - position.opened) >= SYNC_INTERVAL * position.close_after:
                reason = MT5_REASON_CLIENT if position.manual or self.rng.random() < 0.25 else MT5_REASON_EXPERT
            if reason is None:
                continue
            profit = self.profit(position, price)
            self.balance += profit + position.swap
            del self.positions[ticket]
            if self.rng.random() < 0.1 and not position.manual:
                continue  # the worker missed the deal: the service infers the close from the last price
            self.deals.append(
                mt5.deal(
                    ticket=self.next_deal, order=0, position_id=ticket, entry=1, reason=reason,
                    symbol=position.symbol, price=price, volume=position.volume, profit=profit, swap=position.swap,
                    commission=Decimal("0"), fee=Decimal("0"), magic=0, comment="", time=now,
                )
            )  # fmt: skip
            self.next_deal += 1

    def drawdown_shock(self, step: int) -> Decimal:
        """A floating loss that dips and recovers: warning (16 %) every fourth user, critical (23 %) every eighth."""
        if self.index % 4 != 0:
            return Decimal("0")
        start, end = int(self.syncs * 0.4), int(self.syncs * 0.55)
        if not start <= step < end:
            return Decimal("0")
        depth = Decimal("0.23") if self.index % 8 == 0 else Decimal("0.16")
        middle = (start + end) / 2
        shape = Decimal(str(max(0.0, 1 - abs(step - middle) / ((end - start) / 2) * 0.6)))
        return -_q(self.balance * depth * shape, 2)

    def snapshot(self, step: int, now: datetime) -> dict[str, Any]:
        """The sync body the terminal's worker posts at ``now`` (``tradingsite.sync_payload``, JSON-ready)."""
        positions = []
        floating = Decimal("0")
        for position in self.positions.values():
            price = self.exit_price(position)
            profit = self.profit(position, price)
            if step % 60 == 0:
                position.swap -= Decimal("0.25")
            floating += profit + position.swap
            positions.append(
                mt5.position(
                    ticket=position.ticket, identifier=position.ticket, symbol=position.symbol, type=position.side,
                    volume=position.volume, price_open=position.price_open, price_current=price, sl=position.sl,
                    tp=position.tp, swap=position.swap, profit=profit, time=position.opened,
                )
            )  # fmt: skip
        equity = _q(self.balance + floating + self.drawdown_shock(step), 2)
        stale_symbol = "EURGBP" if self.index % 7 == 0 and 0.5 * self.syncs <= step < 0.5 * self.syncs + 3 else None
        quotes = []
        for symbol in QUOTED:
            bid, ask = self.bid_ask(symbol)
            tick_time = now - timedelta(seconds=120) if symbol == stale_symbol else now
            quotes.append(mt5.tick(symbol=symbol, bid=bid, ask=ask, time=tick_time))
        account = mt5.account_info(
            login=self.account_login, server=DEMO_SERVER, currency=self.currency, balance=_q(self.balance, 2),
            equity=equity, credit=Decimal("0"),
        )  # fmt: skip
        payload = mt5.sync_body(
            sync_id=uuid.UUID(int=self.rng.getrandbits(128), version=4), broker_time=now, account=account,
            positions=positions, quotes=quotes, deals=self.deals,
        )  # fmt: skip
        self.deals = []
        return payload


def validated_sync(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` validated by the sync endpoint's serializer (what ``sync_ingest`` receives from the view)."""
    serializer = SyncInputSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@contextmanager
def simulated_clock(clock: list[datetime]) -> Iterator[None]:
    """Make ``django.utils.timezone.now`` return ``clock[0]`` (the simulated broker time) inside the block.

    Every service and ``auto_now``/``auto_now_add`` field reads the time through ``timezone.now``; the
    services take no ``now`` argument, so the command rebinds that one function while it replays a
    user's history (one thread: the command's), and restores it on the way out.
    """
    real_now = timezone.now
    timezone.now = lambda: clock[0]
    try:
        yield
    finally:
        timezone.now = real_now


def last_fx_open(at: datetime) -> datetime:
    """The latest instant at or before ``at`` when the FX market was open (``guards.sessions``' default
    calendar), in 15-minute steps: the demo history ends there, so data seeded on a weekend ends at
    Friday's close, as a real account's would, instead of ticking through a closed market."""
    calendar = default_calendar("EURUSD")
    moment = at
    for _ in range(4 * 24 * 4):  # a weekend is at most about 2.5 days
        if calendar.is_open(moment):
            return moment
        moment -= timedelta(minutes=15)
    return at


class Command(BaseCommand):
    help = "Create demo users (demo001…) and drive each through registrations and syncs via the service functions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, default=100, help="demo users (default 100)")
        parser.add_argument("--syncs", type=int, default=200, help="syncs per user, 5 s apart (default 200)")
        parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
        parser.add_argument("--prefix", default="demo", help="username prefix (default demo → demo001…)")

    def handle(self, *args: Any, users: int, syncs: int, seed: int, prefix: str, **options: Any) -> None:
        started = time.perf_counter()
        before = self.row_counts()
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo-pass")
        demo_password = os.environ.get("DEMO_PASSWORD", "demo-pass-2026")
        self.ensure_admin(admin_password)
        instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=QUOTED)}
        missing = sorted(set(QUOTED) - set(instruments))
        if missing:
            raise SystemExit(f"missing instruments {missing}: run migrate first")
        User = get_user_model()
        usernames = [f"{prefix}{n:03d}" for n in range(1, users + 1)]
        existing = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
        # One hash for the shared demo password: hashing it per user would dominate the run time.
        password_hash = make_password(demo_password)
        end = last_fx_open(timezone.now().replace(microsecond=0))
        seeded = 0
        for index, username in enumerate(usernames, start=1):
            if username in existing:
                continue
            self.seed_user(username, index, password_hash, instruments, syncs=syncs, seed=seed, end=end)
            seeded += 1
            # DJANGO_DEBUG=1 (needed outside pytest) records SQL statements (Django keeps the last 9,000): drop them.
            reset_queries()
        elapsed = time.perf_counter() - started
        after = self.row_counts()
        self.report(users, seeded, syncs, elapsed, before, after, usernames, admin_password, demo_password)

    def ensure_admin(self, password: str) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser(username="admin", email="admin@example.com", password=password)

    @transaction.atomic
    def seed_user(
        self,
        username: str,
        index: int,
        password_hash: str,
        instruments: dict[str, Instrument],
        *,
        syncs: int,
        seed: int,
        end: datetime,
    ) -> None:
        """Create one demo user and replay its terminal through ``syncs`` snapshots ending at ``end``."""
        User = get_user_model()
        rng = random.Random(f"{seed}:{index}")  # by position, so any --prefix replays the same terminals
        terminals = [
            Terminal(rng=rng, index=index, currency=CURRENCIES[index % 3], instruments=instruments, syncs=syncs)
        ]
        if index == TWO_ACCOUNTS_INDEX:
            terminals.append(
                Terminal(
                    rng=random.Random(f"{seed}:{index}:second"), index=index, currency=CURRENCIES[(index + 1) % 3],
                    instruments=instruments, syncs=syncs, login=5030000 + index,
                )
            )  # fmt: skip
        clock = [end - SYNC_INTERVAL * syncs]
        with simulated_clock(clock):
            user = User.objects.create(username=username, password=password_hash, email=f"{username}@example.com")
            accounts = [
                account_get_or_create(
                    user_id=user.pk, server=DEMO_SERVER, login=terminal.account_login,
                    defaults={"currency": terminal.currency},
                )
                for terminal in terminals
            ]  # fmt: skip
            backlog: list[dict[str, Any]] = []
            for step in range(1, syncs + 1):
                clock[0] += SYNC_INTERVAL
                now = clock[0]
                for terminal, account in zip(terminals, accounts, strict=True):
                    terminal.move_prices(step)
                    terminal.close_positions(step, now)
                    terminal.fill_orders(now)
                    terminal.manual_trade(step, now)
                    terminal.modify_stops(step)
                    backlog.append(terminal.snapshot(step, now))
                    order = terminal.maybe_order(step)
                    if order is not None:
                        # The bot registers right after this sync (registered_at = now); the broker fills it at
                        # the next one. Registering before the backlog below is ingested changes nothing: a
                        # pending row is only judged by syncs at least sync_stale_seconds after it.
                        position_register(
                            user_id=user.pk, account=account, ticket=order.ticket, symbol=order.symbol,
                            side=order.side, volume=order.volume, requested_price=order.price, sl=order.sl,
                            tp=order.tp,
                        )  # fmt: skip
                        terminal.orders.append(order)
                # Up to MAX_BATCH syncs go in as one backlog (sync_ingest_batch: the same rules, the user's
                # state read and written once); their log rows carry the time of the batch's last sync.
                if len(backlog) >= MAX_BATCH * len(terminals) or step == syncs:
                    sync_ingest_batch(user_id=user.pk, batch=[validated_sync(body) for body in backlog])
                    backlog = []

    @staticmethod
    def row_counts() -> dict[str, int]:
        return {name: apps.get_model(app, name).objects.count() for app, name in TABLES}

    def report(self, users, seeded, syncs, elapsed, before, after, usernames, admin_password, demo_password) -> None:
        out = self.stdout
        out.write(f"seed_demo: {seeded} users seeded ({users - seeded} already there), {syncs} syncs each, "
                  f"{elapsed:.1f} s")  # fmt: skip
        out.write("rows per table (total, +created by this run):")
        for name, total in after.items():
            out.write(f"  {name:<18} {total:>9}  (+{total - before[name]})")
        out.write(f"admin login: admin / {admin_password}  (/admin/)")
        if usernames:
            out.write(f"demo login:  {usernames[0]} / {demo_password}  (… {usernames[-1]}, same password)")
