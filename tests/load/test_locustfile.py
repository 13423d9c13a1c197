"""locustfile.py: imports as Locust imports it, 5:3:2 read mix, and its pure helpers.

The real import runs in a subprocess (Locust monkey-patches the standard library with gevent on
import, which must not happen inside the test process). The helpers are imported here with
``LOCUST_SKIP_MONKEY_PATCH`` set, which only skips that patching.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

import locustfile as lf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_locustfile_imports_under_locust_and_mixes_reads_5_3_2():
    # given the locustfile imported the way `locust -f` does (gevent patching on)
    code = (
        "import json, locustfile as lf\n"
        "d = lf.DashboardUser\n"
        "names = [t.__name__ for t in d.tasks]\n"
        "print(json.dumps({'mix': {n: names.count(n) for n in set(names)},"
        " 'wait': [d.wait_time(None) for _ in range(200)],"
        " 'sync_tasks': [t.__name__ for t in lf.SyncWorkerUser.tasks]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    # when
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # then the three hot reads are weighted 5:3:2 and calls are 0.5-2 s apart
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["mix"] == {"reconciliation_status": 5, "positions_open": 3, "guards_status": 2}
    assert all(0.5 <= w <= 2.0 for w in data["wait"])
    assert data["sync_tasks"] == ["sync"]


def _jwt(payload: dict) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}.signature"


def test_sync_worker_keeps_its_own_cadence_from_its_first_snapshot(monkeypatch):
    # given a worker whose previous snapshot started at t = 100 s (monotonic clock)
    worker = lf.SyncWorkerUser.__new__(lf.SyncWorkerUser)
    worker.next_sync_at = 100.0 + lf.SYNC_INTERVAL_S  # set when that snapshot started
    # when the snapshot and its visibility checks took 3.5 s, then it waits 10 − 3.5 = 6.5 s
    monkeypatch.setattr(lf.time, "monotonic", lambda: 103.5)
    assert worker.wait_time() == pytest.approx(6.5)
    # and a snapshot that overran its slot is followed at once
    monkeypatch.setattr(lf.time, "monotonic", lambda: 111.0)
    assert worker.wait_time() == 0.0


def test_jwt_expiry_reads_the_exp_claim_without_the_key():
    assert lf.jwt_expiry(_jwt({"exp": 1764496805, "user_id": 7})) == 1764496805.0
    assert lf.jwt_expiry("not-a-jwt") is None
    assert lf.jwt_expiry(_jwt({"user_id": 7})) is None


def test_credentials_refresh_when_the_token_expires_within_the_margin(monkeypatch):
    # given a token expiring in 30 s and a 60 s refresh margin
    now = 1_800_000_000.0
    monkeypatch.setattr(lf.time, "time", lambda: now)
    credentials = lf.Credentials(0, "demo001", access=_jwt({"exp": now + 30}), refresh="r")
    calls = []
    monkeypatch.setattr(credentials, "_refresh", lambda client: calls.append("refresh") or True)
    # when the user asks for a fresh token, then it refreshes once
    credentials.ensure_fresh(client=None)
    assert calls == ["refresh"]
    # and a token valid for another hour is used as it is
    credentials.access = _jwt({"exp": now + 3600})
    credentials.ensure_fresh(client=None)
    assert calls == ["refresh"]


def test_accounts_interleave_over_locust_processes_without_collisions():
    # 100 accounts, 2 processes with 50 users each: process 0 takes 0,2,4..., process 1 takes 1,3,5...
    taken = [lf.account_for(i, w, 2, 100) for w in (0, 1) for i in range(50)]
    assert sorted(taken) == list(range(100))
    assert lf.account_for(0, 0, 1, 100) == 0 and lf.account_for(100, 0, 1, 100) == 0  # wraps after 100
    assert lf.account_username(0) == "demo001" and lf.account_username(99) == "demo100"


def test_open_positions_check_flags_another_accounts_ticket():
    mine = lf.synthetic_ticket(7, 1)  # 9_100_000_000 + 7 × 100 + 1 = 9_100_000_701
    theirs = lf.synthetic_ticket(8, 0)  # 9_100_000_800
    assert mine == 9_100_000_701 and lf.ticket_owner(mine) == 7
    assert lf.ticket_owner(700101) is None  # a seeded, real-looking ticket: not ours to judge
    good = {"count": 2, "positions": [{"ticket": mine}, {"ticket": 700101}]}
    assert lf.check_open_body(good, 7) is None
    bad = {"count": 2, "positions": [{"ticket": mine}, {"ticket": theirs}]}
    assert lf.check_open_body(bad, 7) == "ticket 9100000800 of account 8 shown to account 7"
    assert lf.check_open_body({"count": 3, "positions": []}, 7) == "count 3 != 0 positions"


def test_status_and_guard_checks_accept_the_spec_shapes_only():
    assert lf.check_status_body({"status": "healthy", "total_syncs": 3}) is None
    assert lf.check_status_body({"status": "ok", "total_syncs": 3}) == "unexpected status 'ok'"
    assert lf.check_status_body([]) == "body is not a JSON object"
    assert lf.check_guards_body({"system_status": "idle", "market_alerts": []}) is None
    assert lf.check_guards_body({"system_status": "idle"}) == "market_alerts missing"


def test_broker_time_strictly_increases_even_when_the_clock_does_not():
    earlier = datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC)
    assert lf.next_broker_time(earlier, now=earlier) == earlier + timedelta(milliseconds=1)
    assert lf.next_broker_time(earlier, now=earlier + timedelta(seconds=10)) == earlier + timedelta(seconds=10)
    assert lf.broker_time_iso(earlier) == "2026-11-30T10:00:05.000Z"


def test_snapshot_is_an_mt5_shaped_payload_whose_equity_adds_up():
    account = lf.SyntheticAccount(3, opened_at=1764496805)
    payload, expected = account.snapshot(datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC))
    assert payload["broker_time"] == "2026-11-30T10:00:05.000Z"
    assert [p["symbol"] for p in payload["positions"]] == ["XAUUSD", "EURUSD", "USDJPY"]
    assert [p["type"] for p in payload["positions"]] == [0, 1, 0]
    assert [p["ticket"] for p in payload["positions"]] == [9_100_000_300, 9_100_000_301, 9_100_000_302]
    assert {q["symbol"] for q in payload["quotes"]} == {"XAUUSD", "EURUSD", "USDJPY", "GBPUSD"}
    for quote in payload["quotes"]:
        assert Decimal(quote["ask"]) > Decimal(quote["bid"]) > 0
    xau = payload["positions"][0]
    # XAUUSD buy 0.10 lot × 100 oz: profit = (price_current − price_open) × 0.10 × 100 in USD
    assert Decimal(xau["profit"]) == (Decimal(xau["price_current"]) - Decimal(xau["price_open"])) * 10
    # equity = balance (10,000 + 3 × 10) + Σ profit
    total = sum(Decimal(p["profit"]) for p in payload["positions"])
    assert Decimal(payload["account"]["balance"]) == Decimal("10030.00")
    assert Decimal(payload["account"]["equity"]) == Decimal("10030.00") + total == expected["equity"]
    assert expected["price_current"] == Decimal(xau["price_current"])
    # the next snapshot moves the price, so the reads can tell which snapshot they show
    _payload2, expected2 = account.snapshot(datetime(2026, 11, 30, 10, 0, 15, tzinfo=UTC))
    assert expected2["price_current"] != expected["price_current"]
    assert expected2["sync_id"] != expected["sync_id"]


def test_snapshot_money_is_in_the_account_currency():
    gbp = lf.SyntheticAccount(3, currency="GBP", opened_at=1764496805)
    payload, expected = gbp.snapshot(datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC))
    assert payload["account"]["currency"] == "GBP"
    gbpusd = next(Decimal(q["bid"]) for q in payload["quotes"] if q["symbol"] == "GBPUSD")
    xau = payload["positions"][0]
    # XAUUSD profit in USD = Δprice × 0.10 × 100, then USD → GBP divides by the GBPUSD bid
    usd = (Decimal(xau["price_current"]) - Decimal(xau["price_open"])) * 10
    assert Decimal(xau["profit"]) == (usd / gbpusd).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert lf.SyntheticAccount(3, currency="CHF").currency == "USD"  # unknown: priced as USD


def test_registrations_match_the_snapshot_entries_and_take_profits():
    account = lf.SyntheticAccount(3)
    payload, _ = account.snapshot(datetime(2026, 11, 30, 10, 0, 5, tzinfo=UTC))
    registered = {row["ticket"]: row for row in account.registrations()}
    for position in payload["positions"]:
        row = registered[position["ticket"]]
        assert row["requested_price"] == position["price_open"]
        assert row["tp"] == position["tp"]
        assert row["side"] == ("buy" if position["type"] == 0 else "sell")


def test_visibility_is_judged_per_endpoint():
    expected = {
        "sync_id": "s-2",
        "ticket": 9_100_000_300,
        "price_current": Decimal("1955.75"),
        "equity": Decimal("10052.50"),
    }
    status_with_ids = {"total_syncs": 1, "recent_events": [{"sync_id": "s-1"}, {"sync_id": "s-2"}]}
    assert lf.is_visible(lf.STATUS_PATH, status_with_ids, expected, min_total_syncs=9)
    assert not lf.is_visible(lf.STATUS_PATH, {"total_syncs": 4, "recent_events": [{"sync_id": "s-1"}]}, expected, 5)
    assert lf.is_visible(lf.STATUS_PATH, {"total_syncs": 5, "recent_events": []}, expected, 5)
    positions = {"positions": [{"ticket": 9_100_000_300, "price_current": "1955.75000"}]}
    assert lf.is_visible(lf.OPEN_PATH, positions, expected, None)
    assert not lf.is_visible(
        lf.OPEN_PATH, {"positions": [{"ticket": 9_100_000_300, "price_current": "1955.70"}]}, expected, None
    )
    assert lf.is_visible(lf.GUARDS_PATH, {"drawdown": {"equity": "10052.5"}}, expected, None)
    assert not lf.is_visible(lf.GUARDS_PATH, {"drawdown": None}, expected, None)
