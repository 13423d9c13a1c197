"""Two traders with overlapping tickets and symbols, made through the real API and services.

Alice (``a``) and Bob (``b``) both hold tickets 700101 (XAUUSD), 700102 (EURUSD) and 700103 (GBPUSD,
unexpected at the broker), so filters by ticket or symbol cannot tell them apart by key. Their
*values* differ: every price, equity and threshold of one trader is a string that appears nowhere
in the other's data (``Trader.markers``), so a response that carries the other trader's data is
visible as text, JSON or HTML alike. Alice also has ticket 810001 (USDJPY), a ticket Bob never has.

Each trader: registers positions (``POST positions/`` → ``position_register``), posts two syncs
(``POST reconciliation/syncs/`` → ``sync_ingest``: matches, an ``sl_mismatch`` divergence, an
``unexpected_at_broker`` position, a close, quotes, equity snapshots, a wide-spread market alert and
a drawdown warning), and sets ``min_equity`` (``PATCH guards/config/``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import caches
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import DEFAULT_LOGIN, DEFAULT_SERVER
from conftest import access_token_for
from guards.models import DrawdownAlert, EquitySnapshot, MarketAlert
from positions.models import Deal, Position, Quote
from reconciliation.models import ReconciliationLog
from tradingsite import sync_payload as mt5


@dataclass
class Trader:
    """One user with data, a JWT client and the strings that identify its data."""

    user: User
    password: str
    client: APIClient
    token: str
    markers: list[str]
    sync_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def id(self) -> int:
        return self.user.pk

    @property
    def account_id(self) -> int:
        """The trader's account (both traders name the same (server, login); each has its own row)."""
        from accounts.models import Account

        return Account.objects.get(user_id=self.user.pk, **ACCOUNT).pk

    def ids(self, model) -> set[int]:
        """Primary keys of this trader's rows of ``model``."""
        return set(model.objects.filter(user_id=self.user.pk).values_list("pk", flat=True))


# Both traders monitor the same (server, login): two users' accounts never share anything but the key.
ACCOUNT: dict[str, Any] = {"server": DEFAULT_SERVER, "login": DEFAULT_LOGIN}


def _trader_data(p: dict[str, str], broker_time: datetime) -> tuple[dict, dict]:
    """The two sync bodies of a trader with prices ``p`` (field names)."""
    t1 = broker_time
    t2 = broker_time + timedelta(seconds=30)
    quotes1 = [
        mt5.tick(symbol="XAUUSD", bid=p["xau_current"], ask=p["xau_ask"], time=t1),
        mt5.tick(symbol="EURUSD", bid=p["eur_current"], ask=p["eur_ask"], time=t1),
        mt5.tick(symbol="GBPUSD", bid=p["gbp_open"], ask=p["gbp_ask"], time=t1),
    ]
    positions1 = [
        # matched: filled at the requested price, same stops
        mt5.position(ticket=700101, symbol="XAUUSD", type=0, volume=p["xau_volume"], price_open=p["xau_open"],
                     price_current=p["xau_current"], tp=p["xau_tp"], profit=p["xau_profit"]),
        # sl_mismatch: the broker's stop loss differs from the registered one by far more than 1 pip
        mt5.position(ticket=700102, symbol="EURUSD", type=1, volume=p["eur_volume"], price_open=p["eur_open"],
                     price_current=p["eur_current"], sl=p["eur_broker_sl"]),
        # unexpected_at_broker: never registered
        mt5.position(ticket=700103, symbol="GBPUSD", type="buy", volume=p["gbp_volume"], price_open=p["gbp_open"]),
    ]  # fmt: skip
    sync1 = mt5.sync_body(
        broker_time=t1,
        account=mt5.account_info(**ACCOUNT, currency="USD", balance=p["balance"], equity=p["equity1"]),
        positions=positions1,
        quotes=quotes1,
    )
    # second sync: EURUSD closed (absent) by its deal (SL), a zero-amount balance operation; equity down
    # ~16 % from the peak → drawdown warning
    deals2 = [
        mt5.deal(ticket=9100001, position_id=700102, type=0, entry=1, reason=4, symbol="EURUSD",
                 volume=p["eur_volume"], price=p["eur_current"], time=t2),
        mt5.deal(ticket=9100002, type=2, time=t2),
    ]  # fmt: skip
    sync2 = mt5.sync_body(
        broker_time=t2,
        account=mt5.account_info(**ACCOUNT, currency="USD", balance=p["balance"], equity=p["equity2"]),
        positions=[positions1[0], positions1[2]],
        quotes=[{**q, "time": mt5.wire_time(t2)} for q in quotes1],
        deals=deals2,
    )
    return sync1, sync2


# Every value is unique to its trader: no marker of one is a substring of any value of the other.
ALICE = {
    "xau_volume": "0.10",
    "xau_open": "1911.11",
    "xau_current": "1913.31",
    "xau_ask": "1914.87",  # spread 1.56 = 15.6 gold pips of 0.10 → wide_spread warning (10 pips; critical 20)
    "xau_tp": "1977.71",
    "xau_profit": "22.13",
    "eur_volume": "1.30",
    "eur_open": "1.11113",
    "eur_current": "1.11013",
    "eur_ask": "1.11017",
    "eur_sl": "1.11913",
    "eur_broker_sl": "1.12713",
    "gbp_volume": "0.70",
    "gbp_open": "1.23417",
    "gbp_ask": "1.23427",
    "balance": "10111.00",
    "equity1": "10131.13",
    "equity2": "8501.13",  # (10131.13 − 8501.13) / 10131.13 = 16.09 % → warning
    "min_equity": "111.11",
    "jpy_ticket": "810001",
    "jpy_price": "151.117",
}
BOB = {
    "xau_volume": "0.20",
    "xau_open": "2922.29",
    "xau_current": "2924.49",
    "xau_ask": "2926.19",  # 1.70 = 17 gold pips → warning
    "xau_tp": "2988.89",
    "xau_profit": "44.29",
    "eur_volume": "2.40",
    "eur_open": "1.08229",
    "eur_current": "1.08129",
    "eur_ask": "1.08139",
    "eur_sl": "1.09029",
    "eur_broker_sl": "1.09829",
    "gbp_volume": "0.80",
    "gbp_open": "1.26429",
    "gbp_ask": "1.26439",
    "balance": "20222.00",
    "equity1": "20242.29",
    "equity2": "16992.29",  # (20242.29 − 16992.29) / 20242.29 = 16.06 % → warning
    "min_equity": "222.29",
}
# Markers: the prices and money values (each has a decimal point, so no UUID, id or cursor can contain
# one). Volumes, profits and tickets are too short or too plain to be told from other numbers.
_NOT_MARKERS = {"xau_volume", "eur_volume", "gbp_volume", "xau_profit", "jpy_ticket"}
ALICE_MARKERS = [value for key, value in ALICE.items() if key not in _NOT_MARKERS]
BOB_MARKERS = [value for key, value in BOB.items() if key not in _NOT_MARKERS]
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


def markers_in(text: str, markers: list[str]) -> list[str]:
    """The ``markers`` found in ``text`` once ISO date-times are blanked (their fractions of a second
    could spell a price such as ``…:01.11113``)."""
    text = _ISO_DATETIME.sub("<time>", text)
    return [marker for marker in markers if marker in text]


def _client(user) -> tuple[APIClient, str]:
    token = access_token_for(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client, token


def _ok(response, status: int = 201):
    assert response.status_code == status, response.content[:500]
    return response.json()


def _build(user, password: str, p: dict[str, str], markers: list[str], broker_time: datetime) -> Trader:
    client, token = _client(user)
    trader = Trader(user=user, password=password, client=client, token=token, markers=markers)
    register = [
        {"ticket": 700101, "symbol": "XAUUSD", "side": "buy", "volume": p["xau_volume"]},
        {"ticket": 700102, "symbol": "EURUSD", "side": "sell", "volume": p["eur_volume"]},
    ]
    register[0].update(requested_price=p["xau_open"], tp=p["xau_tp"])
    register[1].update(requested_price=p["eur_open"], sl=p["eur_sl"])
    if "jpy_ticket" in p:
        register.append(
            {
                "ticket": int(p["jpy_ticket"]),
                "symbol": "USDJPY",
                "side": "buy",
                "volume": "0.50",
                "requested_price": p["jpy_price"],
            }
        )
    for body in register:
        _ok(client.post("/api/v1/positions/", {**body, **ACCOUNT}, format="json"))
    for body in _trader_data(p, broker_time):
        sync_id = uuid.uuid4()
        summary = _ok(client.post("/api/v1/reconciliation/syncs/", {**body, "sync_id": str(sync_id)}, format="json"))
        assert summary, "empty sync summary"
        trader.sync_ids.append(sync_id)
    _ok(client.patch("/api/v1/guards/config/", {"min_equity": p["min_equity"]}, format="json"), 200)
    return trader


def clear_caches() -> None:
    """Empty every cache alias (page and data layers), as at a TTL expiry."""
    for alias in caches:
        caches[alias].clear()


@pytest.fixture
def traders(db, user, other_user, password) -> tuple[Trader, Trader]:
    """(alice, bob): two traders with overlapping tickets and symbols and distinguishable values."""
    for a in ALICE_MARKERS:
        for b in BOB_MARKERS:
            assert a not in b and b not in a, (a, b)
    broker_time = timezone.now() - timedelta(seconds=120)
    alice = _build(user, password, ALICE, ALICE_MARKERS, broker_time)
    bob = _build(other_user, password, BOB, BOB_MARKERS, broker_time)
    # Both traders really have every kind of row (else a leak of that kind could not be seen).
    for trader in (alice, bob):
        for model in (Position, ReconciliationLog, Quote, EquitySnapshot, MarketAlert, DrawdownAlert, Deal):
            assert trader.ids(model), f"{trader.user.username} has no {model.__name__} rows"
    clear_caches()
    return alice, bob


def pytest_terminal_summary(terminalreporter):
    """Print the schema fuzzing figures (operations, requests, statuses, time) when it ran."""
    import sys

    module = sys.modules.get("tests.security.test_schema_fuzz")
    line = module.figures_line() if module is not None else None
    if line:
        terminalreporter.write_line(line)
