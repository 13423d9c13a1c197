"""Locust load for tradingsite: dashboard readers and MT5 sync workers with real JWTs (issue 7; docs/performance.md).

Two user classes, one account each (``demo001`` … as created by ``manage.py seed_demo``):

* :class:`DashboardUser` reads the three hot endpoints — ``reconciliation/status/``, ``positions/open/``,
  ``guards/status/`` — in a 5:3:2 mix with 0.5–2 s between calls, a stable ``Accept`` header, and counts
  every non-200 (and every body that is not the expected shape, or shows another account's tickets)
  as a failure.
* :class:`SyncWorkerUser` plays the worker next to an MT5 terminal: every 10 s it posts a realistic
  snapshot (``account_info()``/``positions_get()``/``symbol_info_tick()`` fields, see README "API") with a
  strictly increasing ``broker_time``, so cache invalidation happens under load. After each 201 it
  checks that the sync becomes visible on the reads within 5 s (the freshness promise) and records the
  lag as a custom request type ``VISIBLE`` (``sync visible: <endpoint>``), failed when over 5 s.

Credentials: with ``TS_TOKENS_FILE`` (written by ``manage.py mint_tokens``) users take pre-minted
tokens, so no PBKDF2 login storm pollutes the figures (password hashing is deliberately slow); otherwise each
account logs in once through ``auth/token/`` with ``DEMO_PASSWORD``. Access tokens are refreshed through
``auth/token/refresh/`` shortly before they expire (and after a 401); a refused refresh falls back
to a login. The dashboard user and the sync worker of one account share the credentials (one
refresh per account and process), and read through the same token, hence the same page-cache key.

Runs (see docs/performance.md). Locust is a dev requirement: run ``python3 scripts/dev.py setup --dev``
first (``scripts/dev.py run`` installs only the runtime pins)::

    # headless, CSV + HTML, 100 readers + 100 sync workers, warm-up discarded
    TS_TOKENS_FILE=bench-results/locust-tokens.json TS_DASHBOARD_USERS=100 TS_SYNC_WORKERS=100 TS_WARMUP_S=10 \\
      locust -f locustfile.py --headless -u 200 -r 100 -t 70s --host http://127.0.0.1:8000 \\
      --csv bench-results/run --html bench-results/run.html
    # master + workers (one machine: --processes 2; across hosts: --master --expect-workers N / --worker)
    locust -f locustfile.py --master --expect-workers 2 --headless -u 200 -r 50 -t 5m --host http://lb:8000
    locust -f locustfile.py --worker --master-host 10.0.0.5          # on each load host

Environment (all optional):

=========================  ===================================================================
``TS_TOKENS_FILE``         mint_tokens JSON; without it, users log in with ``DEMO_PASSWORD``
``DEMO_PASSWORD``          password of the demo users (default ``demo-pass-2026``)
``TS_USER_PREFIX``         username prefix (default ``demo``); ``TS_ACCOUNTS`` accounts (default 100)
``TS_DASHBOARD_USERS``     fixed number of DashboardUsers (default: by weight, half of ``-u``)
``TS_SYNC_WORKERS``        fixed number of SyncWorkerUsers (default: by weight, half of ``-u``)
``TS_SYNC_INTERVAL_S``     seconds between a worker's snapshots (default 10)
``TS_WRITE_HOST``          base URL for the writes (syncs, registrations) when a write pool serves them
                          apart from the reads (deploy/nginx.conf routes by method); default ``--host``
``TS_VISIBILITY``          ``rotate`` (each sync checked on one read, in turn; default), ``all``, ``off``
``TS_VISIBILITY_DEADLINE_S``  freshness contract (default 5)
``TS_WARMUP_S``            reset the statistics this many seconds after the start (warm-up discarded)
``TS_METRICS_SNAPSHOT``    path prefix: save ``/metrics`` at the start of measurement and at the end
``TS_REQUEST_LOG``         path prefix: every request as a CSV line (per process), for per-phase stats
``TS_LOCUST_WORKERS``      worker-process count, if it differs from ``--expect-workers``/``--processes``
``TS_FORWARDED_PROTO``     send ``X-Forwarded-Proto`` (e.g. ``https`` behind an SSL-redirecting config)
=========================  ===================================================================

Accounts are spread over processes without coordination: process ``w`` of ``W`` takes accounts
``w, w+W, w+2W, …``, so each sync worker owns its account as long as workers are started with the
right ``--expect-workers`` (or ``TS_LOCUST_WORKERS``). This file imports only Locust, the standard
library and the Django-free payload builder ``tradingsite/sync_payload.py`` (the docker compose Locust
services mount it next to this file), so the Locust image runs it without the service's requirements.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from urllib.request import Request, urlopen

import gevent
from gevent.lock import Semaphore
from locust import FastHttpUser, between, events, task
from locust.exception import RescheduleTask
from locust.runners import WorkerRunner

from tradingsite import sync_payload as mt5

API = "/api/v1/"
STATUS_PATH = API + "reconciliation/status/"
OPEN_PATH = API + "positions/open/"
GUARDS_PATH = API + "guards/status/"
SYNC_PATH = API + "reconciliation/syncs/"
REGISTER_PATH = API + "positions/"
TOKEN_PATH = API + "auth/token/"
REFRESH_PATH = API + "auth/token/refresh/"
HOT_PATHS = (STATUS_PATH, OPEN_PATH, GUARDS_PATH)
VISIBILITY_TYPE = "VISIBLE"


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


TOKENS_FILE = os.environ.get("TS_TOKENS_FILE", "")
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "demo-pass-2026")
USER_PREFIX = os.environ.get("TS_USER_PREFIX", "demo")
ACCOUNTS = _env_int("TS_ACCOUNTS", 100)
SYNC_INTERVAL_S = _env_float("TS_SYNC_INTERVAL_S", 10.0)
WRITE_HOST = os.environ.get("TS_WRITE_HOST", "").rstrip("/")
VISIBILITY_MODE = os.environ.get("TS_VISIBILITY", "rotate").lower()
VISIBILITY_DEADLINE_S = _env_float("TS_VISIBILITY_DEADLINE_S", 5.0)
VISIBILITY_GIVE_UP_S = VISIBILITY_DEADLINE_S + 5.0  # keep polling a late sync to record its real lag
WARMUP_S = _env_float("TS_WARMUP_S", 0.0)
METRICS_SNAPSHOT = os.environ.get("TS_METRICS_SNAPSHOT", "")
REQUEST_LOG = os.environ.get("TS_REQUEST_LOG", "")
REFRESH_MARGIN_S = _env_float("TS_REFRESH_MARGIN_S", 60.0)
READ_HEADERS = {"Accept": "application/json"}
if os.environ.get("TS_FORWARDED_PROTO"):
    READ_HEADERS["X-Forwarded-Proto"] = os.environ["TS_FORWARDED_PROTO"]
WRITE_HEADERS = {**READ_HEADERS, "Content-Type": "application/json"}

# Synthetic tickets of the sync workers: TICKET_BASE + account × 100 + k. Far above real MT5 tickets
# of the seeded data, so a reader can tell that a ticket in this range belongs to another account.
TICKET_BASE = 9_100_000_000
TICKETS_PER_ACCOUNT = 100
STATUS_VALUES = {"healthy", "warning", "stale", "idle"}
SYSTEM_STATUS_VALUES = {"healthy", "warning", "critical", "stale", "idle"}


# ------------------------------------------------------------------------------------------------
# Pure helpers (unit-tested in tests/load/test_locustfile.py)
# ------------------------------------------------------------------------------------------------
def jwt_expiry(token: str) -> float | None:
    """Return the ``exp`` claim (epoch seconds) of a JWT without verifying it; None if unreadable."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return float(json.loads(base64.urlsafe_b64decode(payload))["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


DEMO_SERVER = "Demo-Server"  # seed_demo's trade server
ACCOUNTS_PATH = API + "accounts/"


def account_login(index: int) -> int:
    """MT5 login of account ``index`` (0-based): seed_demo's first account of user ``index + 1``."""
    return 5_020_001 + index


def account_query(client, credentials, login: int) -> str:
    """``?account=<id>`` for the user's account with ``login`` on the demo server (from ``GET accounts/``),
    or "" when it does not exist yet (the first sync creates it; a single account is the default)."""
    with client.get(
        ACCOUNTS_PATH, headers=credentials.auth_headers(READ_HEADERS), name="[setup] " + ACCOUNTS_PATH,
        catch_response=True,
    ) as response:  # fmt: skip
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}")
            return ""
        response.success()
        rows = response.json()
    for row in rows if isinstance(rows, list) else []:
        if row.get("login") == login and row.get("server") == DEMO_SERVER:
            return f"?account={row['id']}"
    return ""


def account_username(index: int, prefix: str = USER_PREFIX) -> str:
    """Username of account ``index`` (0-based): 0 → ``demo001``."""
    return f"{prefix}{index + 1:03d}"


def account_for(local_index: int, worker_index: int, worker_count: int, accounts: int) -> int:
    """Account of the ``local_index``-th user of a class in process ``worker_index`` of ``worker_count``.

    Interleaves processes (w, w+W, w+2W, …) so that, with users spread evenly over processes, no two
    users of one class share an account until every account is taken; wraps around after that.
    """
    return (local_index * max(1, worker_count) + max(0, worker_index)) % max(1, accounts)


def synthetic_ticket(account: int, k: int) -> int:
    """The ``k``-th synthetic position ticket of ``account`` (see TICKET_BASE)."""
    return TICKET_BASE + account * TICKETS_PER_ACCOUNT + k


def ticket_owner(ticket: int) -> int | None:
    """Account that owns a synthetic ticket, or None for tickets outside the synthetic range."""
    offset = int(ticket) - TICKET_BASE
    if offset < 0 or offset >= TICKETS_PER_ACCOUNT * 100_000:
        return None
    return offset // TICKETS_PER_ACCOUNT


def check_status_body(body: object) -> str | None:
    """Return why a ``reconciliation/status/`` body is wrong, or None when it has the documented shape."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if body.get("status") not in STATUS_VALUES:
        return f"unexpected status {body.get('status')!r}"
    if not isinstance(body.get("total_syncs"), int):
        return "total_syncs missing or not an integer"
    return None


def check_open_body(body: object, account: int | None) -> str | None:
    """Return why a ``positions/open/`` body is wrong: bad shape, or a ticket of another account."""
    if not isinstance(body, dict) or not isinstance(body.get("positions"), list):
        return "positions list missing"
    positions = body["positions"]
    if isinstance(body.get("count"), int) and body["count"] != len(positions):
        return f"count {body['count']} != {len(positions)} positions"
    for row in positions:
        try:
            owner = ticket_owner(int(row["ticket"]))
        except (KeyError, TypeError, ValueError):
            return "position without an integer ticket"
        if account is not None and owner is not None and owner != account:
            return f"ticket {row['ticket']} of account {owner} shown to account {account}"
    return None


def check_guards_body(body: object) -> str | None:
    """Return why a ``guards/status/`` body is wrong, or None when it has the documented shape."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    if body.get("system_status") not in SYSTEM_STATUS_VALUES:
        return f"unexpected system_status {body.get('system_status')!r}"
    if not isinstance(body.get("market_alerts"), list):
        return "market_alerts missing"
    return None


def as_decimal(value: object) -> Decimal | None:
    """``Decimal(value)`` for strings and numbers, None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def broker_time_iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, as the sync endpoint accepts it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_broker_time(previous: datetime | None, now: datetime | None = None) -> datetime:
    """Current time, but always at least 1 ms after ``previous``: broker_time strictly increases."""
    now = now or datetime.now(UTC)
    if previous is not None and now <= previous:
        return previous + timedelta(milliseconds=1)
    return now


def _q(value: Decimal, digits: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


# symbol: digits, contract size (units per lot), start mid, spread in points, max step in points
INSTRUMENTS = {
    "XAUUSD": (2, Decimal(100), Decimal("1950.50"), 30, 25),
    "EURUSD": (5, Decimal(100000), Decimal("1.09500"), 10, 6),
    "USDJPY": (3, Decimal(100000), Decimal("150.000"), 12, 8),
    "GBPUSD": (5, Decimal(100000), Decimal("1.26930"), 15, 6),
}
# The account's positions: symbol, MT5 type (0 buy, 1 sell), lots, take-profit distance in points.
BOOK = (
    ("XAUUSD", 0, Decimal("0.10"), 5000),
    ("EURUSD", 1, Decimal("1.00"), 1000),
    ("USDJPY", 0, Decimal("0.50"), 1000),
)


class SyntheticAccount:
    """An MT5 account whose quotes walk randomly; produces snapshots and what they should show.

    Deterministic per account (seeded RNG). Position 0 (XAUUSD) changes price on every snapshot, so
    its ``price_current`` and the account ``equity`` identify the latest snapshot on the reads.
    """

    def __init__(self, account: int, *, currency: str = "USD", opened_at: int | None = None) -> None:
        self.account = account
        self.currency = currency if currency in ("USD", "GBP", "EUR", "JPY") else "USD"
        self.rng = random.Random(1_000_003 * (account + 1))
        self.login = account_login(account)
        self.balance = Decimal("10000.00") + Decimal(account * 10)
        self.opened_at = opened_at if opened_at is not None else int(time.time()) - 3600
        self.mids = {symbol: spec[2] for symbol, spec in INSTRUMENTS.items()}
        self.opens: dict[str, Decimal] = {}
        for symbol, _type, _lots, _tp in BOOK:  # fixed entry per account, a few points off the start
            digits = INSTRUMENTS[symbol][0]
            point = Decimal(1).scaleb(-digits)
            self.opens[symbol] = _q(INSTRUMENTS[symbol][2] + point * self.rng.randint(-50, 50), digits)

    def registrations(self) -> list[dict]:
        """``POST positions/`` bodies the bot sends before the broker reports the positions."""
        rows = []
        for k, (symbol, mt5_type, lots, tp_points) in enumerate(BOOK):
            digits = INSTRUMENTS[symbol][0]
            point = Decimal(1).scaleb(-digits)
            direction = 1 if mt5_type == 0 else -1
            rows.append(
                {
                    "ticket": synthetic_ticket(self.account, k),
                    "symbol": symbol,
                    "side": "buy" if mt5_type == 0 else "sell",
                    "volume": str(lots),
                    "requested_price": str(self.opens[symbol]),
                    "sl": None,
                    "tp": str(_q(self.opens[symbol] + direction * point * tp_points, digits)),
                    "server": DEMO_SERVER,
                    "login": self.login,
                }
            )
        return rows

    def usd_to_account(self, amount: Decimal, bids: dict[str, Decimal]) -> Decimal:
        """Convert USD into the account currency with this snapshot's bids (GBPUSD, EURUSD, USDJPY)."""
        if self.currency == "GBP":
            return amount / bids["GBPUSD"]
        if self.currency == "EUR":
            return amount / bids["EURUSD"]
        if self.currency == "JPY":
            return amount * bids["USDJPY"]
        return amount

    def _step(self) -> None:
        for symbol, (digits, _size, _start, _spread, max_step) in INSTRUMENTS.items():
            point = Decimal(1).scaleb(-digits)
            move = self.rng.randint(1, max_step) * self.rng.choice((-1, 1))
            # mean-reverting towards the start so a long run never walks into a take-profit
            if abs(self.mids[symbol] - INSTRUMENTS[symbol][2]) > point * max_step * 40:
                move = -abs(move) if self.mids[symbol] > INSTRUMENTS[symbol][2] else abs(move)
            self.mids[symbol] = _q(self.mids[symbol] + point * move, digits)

    def snapshot(self, broker_time: datetime) -> tuple[dict, dict]:
        """Advance the quotes and return ``(payload, expected)`` for one sync.

        ``expected`` holds ``sync_id``, ``ticket`` and ``price_current`` of position 0, and ``equity``:
        what ``reconciliation/status/``, ``positions/open/`` and ``guards/status/`` show once visible.
        """
        self._step()
        epoch = int(broker_time.timestamp())
        quotes, positions = [], []
        bids: dict[str, Decimal] = {}
        asks: dict[str, Decimal] = {}
        for symbol, (digits, _size, _start, spread, _step) in INSTRUMENTS.items():
            point = Decimal(1).scaleb(-digits)
            bids[symbol] = self.mids[symbol]
            asks[symbol] = _q(self.mids[symbol] + point * spread, digits)
            quotes.append(mt5.tick(symbol=symbol, bid=bids[symbol], ask=asks[symbol], time=epoch))
        total_profit = Decimal("0.00")
        margin = Decimal("0.00")
        for k, (symbol, mt5_type, lots, tp_points) in enumerate(BOOK):
            digits, size = INSTRUMENTS[symbol][0], INSTRUMENTS[symbol][1]
            point = Decimal(1).scaleb(-digits)
            direction = 1 if mt5_type == 0 else -1
            current = bids[symbol] if mt5_type == 0 else asks[symbol]  # a buy closes at bid, a sell at ask
            quote_pnl = direction * (current - self.opens[symbol]) * lots * size  # in the quote currency
            pnl_usd = quote_pnl if symbol.endswith("USD") else quote_pnl / current  # USDJPY: JPY → USD
            profit = _q(self.usd_to_account(pnl_usd, bids), 2)
            notional_usd = lots * size * (current if symbol.endswith("USD") else 1)
            margin += _q(self.usd_to_account(notional_usd / 100, bids), 2)  # 1:100 leverage
            total_profit += profit
            positions.append(
                mt5.position(
                    ticket=synthetic_ticket(self.account, k), symbol=symbol, type=mt5_type, volume=lots,
                    price_open=self.opens[symbol], price_current=current,
                    tp=_q(self.opens[symbol] + direction * point * tp_points, digits), swap=Decimal("0.00"),
                    commission=Decimal("0.00"), profit=profit, time=self.opened_at,
                )
            )  # fmt: skip
        equity = self.balance + total_profit
        payload = mt5.sync_body(
            broker_time=broker_time_iso(broker_time),
            account=mt5.account_info(
                login=self.login, server=DEMO_SERVER, currency=self.currency, balance=self.balance, equity=equity,
                margin=margin,
            ),
            positions=positions,
            quotes=quotes,
        )  # fmt: skip
        sync_id = payload["sync_id"]
        expected = {
            "sync_id": sync_id,
            "ticket": positions[0]["ticket"],
            "price_current": Decimal(positions[0]["price_current"]),
            "equity": equity,
        }
        return payload, expected


def is_visible(path: str, body: object, expected: dict, min_total_syncs: int | None) -> bool:
    """Whether a read body already reflects the sync described by ``expected``.

    status: the sync's id among ``recent_events`` (when events carry ``sync_id``), else
    ``total_syncs`` ≥ ``min_total_syncs``; positions/open: position 0's ``price_current``;
    guards/status: ``drawdown.equity``.
    """
    if not isinstance(body, dict):
        return False
    if path == STATUS_PATH:
        events_ = body.get("recent_events") or []
        ids = [event.get("sync_id") for event in events_ if isinstance(event, dict) and "sync_id" in event]
        if ids and expected["sync_id"] in ids:
            return True
        return (
            min_total_syncs is not None
            and isinstance(body.get("total_syncs"), int)
            and (body["total_syncs"] >= min_total_syncs)
        )
    if path == OPEN_PATH:
        for row in body.get("positions") or []:
            if isinstance(row, dict) and row.get("ticket") == expected["ticket"]:
                return as_decimal(row.get("price_current")) == expected["price_current"]
        return False
    if path == GUARDS_PATH:
        drawdown = body.get("drawdown")
        return isinstance(drawdown, dict) and as_decimal(drawdown.get("equity")) == expected["equity"]
    return False


# Seconds between visibility polls. A stored page is replaced as soon as newer data is published (it records
# the generation of its data), so the poll does not wait for the page's TTL: the lag it measures is the write
# path's (201 → warm published), to within this interval.
VISIBILITY_POLL_S = 0.2


# ------------------------------------------------------------------------------------------------
# Credentials shared by the users of one account in this process
# ------------------------------------------------------------------------------------------------
class VisibilityError(Exception):
    """A sync was not visible on a read endpoint within the freshness deadline."""


class Credentials:
    """Access + refresh token of one account; refreshed once for every user of it in this process."""

    def __init__(self, index: int, username: str, access: str | None = None, refresh: str | None = None) -> None:
        self.index = index
        self.username = username
        self.access = access
        self.refresh = refresh
        self.lock = Semaphore()
        self._expiry_of: str | None = None
        self._expiry: float | None = None

    def expires_in(self) -> float:
        """Seconds until the access token expires; negative when there is none (or it is unreadable)."""
        if not self.access:
            return -1.0
        if self._expiry_of != self.access:  # decode each token once, not on every request
            self._expiry_of, self._expiry = self.access, jwt_expiry(self.access)
        return -1.0 if self._expiry is None else self._expiry - time.time()

    def auth_headers(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "Authorization": f"Bearer {self.access}"}

    def invalidate_access(self, access: str | None) -> None:
        """Forget the access token after a 401 (unless another user already replaced it)."""
        if access == self.access:
            self.access = None

    def ensure_fresh(self, client) -> None:
        """Refresh (or log in) when the access token expires within ``TS_REFRESH_MARGIN_S``."""
        if self.access and self.expires_in() > REFRESH_MARGIN_S:
            return
        with self.lock:
            if self.access and self.expires_in() > REFRESH_MARGIN_S:
                return  # another user of this account refreshed while we waited
            if self.refresh and self._refresh(client):
                return
            self._login(client)

    def _refresh(self, client) -> bool:
        with client.post(
            REFRESH_PATH, json={"refresh": self.refresh}, headers=WRITE_HEADERS, name=REFRESH_PATH, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"refresh HTTP {response.status_code}")
                self.refresh = None
                return False
            body = response.json()
            self.access = body["access"]
            self.refresh = body.get("refresh", self.refresh)  # rotation: the old one is now blacklisted
            response.success()
            return True

    def _login(self, client) -> None:
        with client.post(
            TOKEN_PATH,
            json={"username": self.username, "password": DEMO_PASSWORD},
            headers=WRITE_HEADERS,
            name=TOKEN_PATH,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login HTTP {response.status_code}")
                # back off (a 429 from the per-IP login throttle clears within a minute), then retry later
                gevent.sleep(random.uniform(2.0, 10.0))
                raise RescheduleTask()
            body = response.json()
            self.access, self.refresh = body["access"], body["refresh"]
            response.success()


_TOKEN_ENTRIES: list[dict] | None = None
_CREDENTIALS: dict[int, Credentials] = {}
_COUNTERS: dict[str, itertools.count] = {}


def _token_entries() -> list[dict]:
    global _TOKEN_ENTRIES
    if _TOKEN_ENTRIES is None:
        _TOKEN_ENTRIES = []
        if TOKENS_FILE:
            with open(TOKENS_FILE) as handle:
                _TOKEN_ENTRIES = json.load(handle)["users"]
    return _TOKEN_ENTRIES


def credentials_for(account: int) -> Credentials:
    """Credentials of ``account`` (0-based), from the tokens file or for a login on first use."""
    if account not in _CREDENTIALS:
        entries = _token_entries()
        if entries:
            entry = entries[account % len(entries)]
            _CREDENTIALS[account] = Credentials(account, entry["username"], entry["access"], entry["refresh"])
        else:
            _CREDENTIALS[account] = Credentials(account, account_username(account))
    return _CREDENTIALS[account]


def allocate_account(role: str, environment) -> int:
    """Next account for a user of ``role`` in this process (see :func:`account_for`)."""
    runner = environment.runner
    worker_index, worker_count = 0, 1
    if isinstance(runner, WorkerRunner):
        worker_index = max(0, runner.worker_index)
        options = environment.parsed_options
        worker_count = _env_int("TS_LOCUST_WORKERS", 0) or max(1, int(getattr(options, "expect_workers", 1) or 1))
    accounts = len(_token_entries()) or ACCOUNTS
    local = next(_COUNTERS.setdefault(role, itertools.count()))
    return account_for(local, worker_index, worker_count, accounts)


# ------------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------------
class DashboardUser(FastHttpUser):
    """A trader's dashboard: the three hot reads in a 5:3:2 mix, 0.5–2 s apart."""

    wait_time = between(0.5, 2)
    weight = 1
    fixed_count = _env_int("TS_DASHBOARD_USERS", 0)

    def on_start(self) -> None:
        self.account = allocate_account("dashboard", self.environment)
        self.credentials = credentials_for(self.account)
        self.credentials.ensure_fresh(self.client)
        self.account_query = account_query(self.client, self.credentials, account_login(self.account))

    def _read(self, path: str, check) -> None:
        self.credentials.ensure_fresh(self.client)
        access = self.credentials.access
        with self.client.get(
            path + self.account_query,
            headers=self.credentials.auth_headers(READ_HEADERS),
            name=path,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                if response.status_code == 401:
                    self.credentials.invalidate_access(access)
                response.failure(f"HTTP {response.status_code}")
                return
            try:
                body = response.json()
            except ValueError:
                response.failure("body is not JSON")
                return
            problem = check(body)
            if problem:
                response.failure(problem)
            else:
                response.success()

    @task(5)
    def reconciliation_status(self) -> None:
        self._read(STATUS_PATH, check_status_body)

    @task(3)
    def positions_open(self) -> None:
        self._read(OPEN_PATH, lambda body: check_open_body(body, self.account))

    @task(2)
    def guards_status(self) -> None:
        self._read(GUARDS_PATH, check_guards_body)


class SyncWorkerUser(FastHttpUser):
    """The sync worker of one MT5 account: a snapshot every ``TS_SYNC_INTERVAL_S`` (default 10 s)."""

    weight = 1
    fixed_count = _env_int("TS_SYNC_WORKERS", 0)

    def wait_time(self) -> float:
        """Until ``TS_SYNC_INTERVAL_S`` after the previous snapshot started (a fixed cadence per worker).

        Not Locust's ``constant_pacing``: that counts from the user's spawn, so the random start offset
        taken in ``on_start`` would be lost and every worker would post its second snapshot together.
        """
        return max(0.0, self.next_sync_at - time.monotonic())

    def on_start(self) -> None:
        self.account = allocate_account("sync", self.environment)
        self.credentials = credentials_for(self.account)
        self.book: SyntheticAccount | None = None
        self.syncs_posted = 0
        self.last_broker_time: datetime | None = None
        self.min_total_syncs: int | None = None
        self.next_sync_at = 0.0
        gevent.sleep(random.uniform(0, SYNC_INTERVAL_S))  # workers of a fleet do not post in lockstep
        self.credentials.ensure_fresh(self.client)
        self.account_query = account_query(self.client, self.credentials, account_login(self.account))
        self._read_initial_state()
        self.book = SyntheticAccount(self.account, currency=self._account_currency())
        self._register_positions(self.book)

    def _account_currency(self) -> str:
        """The account currency the service knows (from positions/open), USD before any snapshot."""
        with self.client.get(
            OPEN_PATH + self.account_query,
            headers=self.credentials.auth_headers(READ_HEADERS),
            name="[setup] " + OPEN_PATH,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return "USD"
            response.success()
            currency = response.json().get("currency")
        return currency if isinstance(currency, str) else "USD"

    def _read_initial_state(self) -> None:
        with self.client.get(
            STATUS_PATH + self.account_query,
            headers=self.credentials.auth_headers(READ_HEADERS),
            name="[setup] " + STATUS_PATH,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            body = response.json()
            response.success()
        if isinstance(body.get("total_syncs"), int):
            self.min_total_syncs = body["total_syncs"]
        last = body.get("last_sync_at")
        if isinstance(last, str):
            with contextlib.suppress(ValueError):
                self.last_broker_time = datetime.fromisoformat(last.replace("Z", "+00:00"))

    def _register_positions(self, book: SyntheticAccount) -> None:
        for row in book.registrations():
            with self.client.post(
                WRITE_HOST + REGISTER_PATH,
                data=json.dumps(row),
                headers=self.credentials.auth_headers(WRITE_HEADERS),
                name="[setup] " + REGISTER_PATH,
                catch_response=True,
            ) as response:
                # 201 registered; 400/409 when an earlier run registered the ticket already.
                if response.status_code in (201, 409) or (
                    response.status_code == 400 and "ticket" in (response.text or "")
                ):
                    response.success()
                else:
                    response.failure(f"HTTP {response.status_code}")

    @task
    def sync(self) -> None:
        if self.book is None:  # set-up failed (e.g. the service was down): try again next time
            self.book = SyntheticAccount(self.account, currency=self._account_currency())
        self.next_sync_at = time.monotonic() + SYNC_INTERVAL_S
        self.credentials.ensure_fresh(self.client)
        self.last_broker_time = next_broker_time(self.last_broker_time)
        payload, expected = self.book.snapshot(self.last_broker_time)
        with self.client.post(
            WRITE_HOST + SYNC_PATH,
            data=json.dumps(payload),
            headers=self.credentials.auth_headers(WRITE_HEADERS),
            name=SYNC_PATH,
            catch_response=True,
        ) as response:
            if response.status_code != 201:
                if response.status_code == 401:
                    self.credentials.invalidate_access(self.credentials.access)
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            response.success()
        accepted_at = time.monotonic()
        self.syncs_posted += 1
        if self.min_total_syncs is not None:
            self.min_total_syncs += 1
        if VISIBILITY_MODE == "off":
            return
        paths: tuple[str, ...]
        if VISIBILITY_MODE == "all":
            paths = HOT_PATHS
        else:
            paths = (HOT_PATHS[(self.syncs_posted - 1) % len(HOT_PATHS)],)
        greenlets = [gevent.spawn(self._await_visible, path, expected, accepted_at) for path in paths]
        gevent.joinall(greenlets)

    def _await_visible(self, path: str, expected: dict, accepted_at: float) -> None:
        """Poll ``path`` until it shows the sync; record the lag (from the 201) as a VISIBLE event."""
        deadline = accepted_at + VISIBILITY_DEADLINE_S - 0.02
        give_up = accepted_at + VISIBILITY_GIVE_UP_S
        polls = 0
        next_at = time.monotonic()
        deadline_polled = False
        while True:
            now = time.monotonic()
            if next_at > now:
                gevent.sleep(next_at - now)
            started = time.monotonic()
            deadline_polled = deadline_polled or started >= deadline
            polls += 1
            with self.client.get(
                path + getattr(self, "account_query", ""),
                headers=self.credentials.auth_headers(READ_HEADERS),
                name="[visibility poll] " + path,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"HTTP {response.status_code}")
                    body = None
                else:
                    response.success()
                    try:
                        body = response.json()
                    except ValueError:
                        body = None
            lag = started - accepted_at
            if is_visible(path, body, expected, self.min_total_syncs):
                late = lag > VISIBILITY_DEADLINE_S
                self._record_visibility(
                    path, lag, polls, VisibilityError(f"visible after {lag:.2f} s") if late else None
                )
                return
            if started >= give_up:
                self._record_visibility(
                    path, lag, polls, VisibilityError(f"not visible after {VISIBILITY_GIVE_UP_S:.0f} s")
                )
                return
            next_at = time.monotonic() + VISIBILITY_POLL_S
            if not deadline_polled and next_at > deadline:
                next_at = deadline  # always poll right at the deadline: the contract's yes/no

    def _record_visibility(self, path: str, lag_s: float, polls: int, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=VISIBILITY_TYPE,
            name=f"sync visible: {path}",
            response_time=lag_s * 1000.0,
            response_length=polls,
            exception=error,
            context={},
        )


# ------------------------------------------------------------------------------------------------
# Measurement hooks: warm-up, /metrics snapshots, per-request log (all opt-in through the env)
# ------------------------------------------------------------------------------------------------
def _save_metrics(environment, label: str) -> None:
    if not METRICS_SNAPSHOT or not environment.host:
        return
    target = f"{METRICS_SNAPSHOT}{label}.prom"
    try:
        with urlopen(Request(environment.host.rstrip("/") + "/metrics"), timeout=10) as response:
            text = response.read().decode()
    except OSError as exc:
        text = f"# scrape failed: {exc!r}\n"
    with open(target + ".tmp", "w") as handle:
        handle.write(f"# ts_scraped_at {time.time():.3f}\n{text}")
    os.replace(target + ".tmp", target)


def _end_warmup(environment) -> None:
    environment.runner.stats.reset_all()
    environment.runner.exceptions = {}
    _save_metrics(environment, "start")


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    if WARMUP_S > 0:
        gevent.spawn_later(WARMUP_S, _end_warmup, environment)
    else:
        _save_metrics(environment, "start")


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        _save_metrics(environment, "end")


_request_log = None


@events.request.add_listener
def _log_request(request_type, name, response_time, response_length, response=None, exception=None, **_kwargs):
    """Append ``end_epoch,type,name,response_ms,status,error`` for per-phase statistics (chaos run)."""
    global _request_log
    if not REQUEST_LOG:
        return
    if _request_log is None:
        _request_log = open(f"{REQUEST_LOG}{os.getpid()}.csv", "a", buffering=1 << 16)  # noqa: SIM115
    status = getattr(response, "status_code", 0) or 0
    error = "" if exception is None else type(exception).__name__
    _request_log.write(f"{time.time():.3f},{request_type},{name},{response_time:.2f},{status},{error}\n")


@events.quitting.add_listener
def _close_request_log(**_kwargs) -> None:
    if _request_log is not None:
        _request_log.flush()
