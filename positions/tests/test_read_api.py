"""Read API of positions (``positions/open/``): the valued open book, rendered and scoped per user."""

from decimal import Decimal

import pytest
from django.urls import reverse

from guards.tests.read_factories import EquitySnapshotFactory
from positions.tests.read_factories import PositionFactory, QuoteFactory

pytestmark = pytest.mark.django_db

OPEN_URL = reverse("positions:open")
D = Decimal


def test_route_name_resolves_before_the_router_detail():
    assert OPEN_URL == "/api/v1/positions/open/"


@pytest.fixture
def gbp_book(user):
    """The example account: GBP, with an XAUUSD buy and a GBPUSD quote for the conversion."""
    EquitySnapshotFactory(user=user, currency="GBP", equity=D("9850.00"), balance=D("10000.00"))
    QuoteFactory(user=user, symbol="GBPUSD", bid=D("1.26930"), ask=D("1.26950"))  # mid 1.26940
    return PositionFactory(
        user=user,
        ticket=700101,
        symbol="XAUUSD",
        side="buy",
        volume=D("0.10"),
        price_open=D("1950.50"),
        price_current=D("1955.75"),
        tp=D("1960.00"),
        swap=D("-0.40"),
        profit=D("41.36"),
    )


def test_open_positions_renders_values_as_rounded_strings(auth_client, gbp_book):
    # when
    response = auth_client.get(OPEN_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    # 52.50 USD / 1.26940 = 41.3581… GBP; / 9,850 equity × 100 = 0.41988… %
    assert body["currency"] == "GBP"
    assert body["count"] == 1
    assert body["total_unrealized_pnl"] == "41.36"
    assert body["total_unrealized_pnl_pct"] == "0.42"
    assert body["unvalued_positions"] == 0
    assert body["as_of"].endswith("Z")
    assert body["positions"] == [
        {
            "id": gbp_book.id,
            "ticket": 700101,
            "symbol": "XAUUSD",
            "side": "buy",
            "volume": "0.10",
            "broker_side": "buy",
            "broker_volume": "0.10",
            "price_open": "1950.50000000",
            "price_current": "1955.75000000",
            "sl": None,
            "tp": "1960.00000000",
            "swap": "-0.40",
            "profit": "41.36",
            "unrealized_pnl": "41.36",
            "unrealized_pnl_pct": "0.27",  # 5.25 / 1950.50 × 100 = 0.269…
            "pnl_pips": "52.50",  # 5.25 / 0.10 (gold pip, positions.pips)
            "valuation_reason": None,
            # 52.50 USD / GBPUSD mid 1.26940 = 41.3581… GBP
            "rate_path": [{"symbol": "GBPUSD", "mid": "1.26940000", "operation": "divide"}],
            "matched": True,
            "divergence_reasons": [],
            "opened_at": "2026-11-30T09:00:00Z",
            "last_synced_at": "2026-11-30T10:00:00Z",
        }
    ]


def test_unvalued_position_renders_null(auth_client, user):
    # given a USD account holding USDJPY with no USDJPY quote
    EquitySnapshotFactory(user=user, currency="USD")
    PositionFactory(user=user, symbol="USDJPY", price_open=D("150.00"), price_current=D("150.50"))
    # when
    body = auth_client.get(OPEN_URL).json()
    # then
    assert body["positions"][0]["unrealized_pnl"] is None
    assert body["positions"][0]["valuation_reason"] == "no_rate"
    assert body["positions"][0]["pnl_pips"] == "50.00"
    assert body["unvalued_positions"] == 1
    assert body["total_unrealized_pnl"] == "0.00"
    assert body["total_unrealized_pnl_pct"] == "0.00"


def test_symbol_filter(auth_client, user, gbp_book):
    # given
    PositionFactory(user=user, symbol="EURUSD")
    # when / then
    assert [p["symbol"] for p in auth_client.get(f"{OPEN_URL}?symbol=xauusd").json()["positions"]] == ["XAUUSD"]
    assert auth_client.get(f"{OPEN_URL}?symbol=GBPJPY").json()["count"] == 0


def test_overlong_symbol_is_a_400(auth_client):
    response = auth_client.get(f"{OPEN_URL}?symbol={'X' * 33}")
    assert response.status_code == 400
    assert "symbol" in response.json()


def test_other_users_positions_never_show(other_client, gbp_book):
    # when the other user asks, with or without the symbol
    for url in (OPEN_URL, f"{OPEN_URL}?symbol=XAUUSD"):
        body = other_client.get(url).json()
        # then
        assert body["count"] == 0
        assert body["positions"] == []
        assert body["currency"] is None
