"""Position registration (``POST positions/``) and the history/detail endpoints."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.tests.factories import default_account
from conftest import access_token_for
from positions.models import Position
from positions.services import position_register
from reconciliation.tests.factories import POSITIONS_URL, register_payload, table_counts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account(user):
    """The user's account (the one register_payload names), there before each test's "nothing written" baseline."""
    return default_account(user)


def register(user, **overrides):
    fields = {
        "ticket": 1,
        "symbol": "EURUSD",
        "side": "buy",
        "volume": Decimal("1.00"),
        "requested_price": Decimal("1.09500"),
        "sl": None,
        "tp": None,
    }
    fields.update(overrides)
    return position_register(user_id=user.pk, account=default_account(user), **fields)


# ---------------------------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------------------------
def test_position_register_creates_pending_bot_row(user, django_capture_on_commit_callbacks):
    # given a known symbol, a volume on the 0.01 step and stops on the right side of a buy
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        position = register(user, symbol="eurusd", sl=Decimal("1.09000"), tp=Decimal("1.10000"))
    # then
    position.refresh_from_db()
    assert (position.status, position.origin, position.symbol, position.side) == ("pending", "bot", "EURUSD", "buy")
    assert position.volume == Decimal("1.00") and position.requested_price == Decimal("1.09500")
    assert position.price_open is None and position.matched is False
    assert len(callbacks) == 1  # the cache generation bump runs after commit


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": "FOOBAR"}, "symbol"),
        ({"volume": Decimal("0.015")}, "volume"),  # 0.015 / 0.01 = 1.5 steps: not on the step
        ({"volume": Decimal("0")}, "volume"),
        ({"volume": Decimal("-1")}, "volume"),
        ({"requested_price": Decimal("0")}, "requested_price"),
        ({"requested_price": Decimal("-1.2")}, "requested_price"),
        ({"sl": Decimal("1.10000")}, "sl"),  # buy @ 1.095: SL above the price
        ({"tp": Decimal("1.09000")}, "tp"),  # buy @ 1.095: TP below the price
        ({"side": "sell", "sl": Decimal("1.09000")}, "sl"),  # sell @ 1.095: SL below the price
        ({"side": "sell", "tp": Decimal("1.10000")}, "tp"),  # sell @ 1.095: TP above the price
        ({"side": "long"}, "side"),
    ],
)
def test_position_register_rejects_invalid_input_and_writes_nothing(user, overrides, field):
    # given
    before = table_counts()
    # when
    with pytest.raises(ValidationError) as excinfo:
        register(user, **overrides)
    # then
    assert field in excinfo.value.message_dict
    assert table_counts() == before


def test_position_register_rejects_volume_below_instrument_minimum(user):
    # given an instrument whose minimum is 0.10 lots
    from positions.models import Instrument

    Instrument.objects.filter(symbol="EURUSD").update(volume_min=Decimal("0.10"))
    # when / then: 0.05 lots is on the 0.01 step but below the 0.10 minimum
    with pytest.raises(ValidationError) as excinfo:
        register(user, volume=Decimal("0.05"))
    assert "minimum" in excinfo.value.message_dict["volume"][0]


def test_position_register_sell_accepts_stops_on_the_sell_side(user):
    # given a sell @ 1.09500: SL above (1.10000), TP below (1.09000)
    # when
    position = register(user, side="sell", sl=Decimal("1.10000"), tp=Decimal("1.09000"))
    # then
    assert (position.side, position.sl, position.tp) == ("sell", Decimal("1.10000"), Decimal("1.09000"))


def test_position_register_duplicate_ticket_is_rejected(user, other_user):
    # given ticket 7 registered for the user
    register(user, ticket=7)
    before = table_counts()
    # when / then: the same ticket again is a field error and writes nothing
    with pytest.raises(ValidationError) as excinfo:
        register(user, ticket=7)
    assert "ticket" in excinfo.value.message_dict
    assert table_counts() == before
    # and another user may use the same MT5 ticket number (tickets are unique per user)
    assert register(other_user, ticket=7).ticket == 7


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------
def test_post_positions_returns_201_with_the_pending_row(auth_client, user):
    # when
    response = auth_client.post(
        POSITIONS_URL, register_payload(101, symbol="XAUUSD", volume="0.10", requested_price="1950.50", tp="1960.00")
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["ticket"] == 101 and body["status"] == "pending" and body["origin"] == "bot"
    assert body["volume"] == "0.10" and body["requested_price"] == "1950.50000000" and body["tp"] == "1960.00000000"
    assert body["sl"] is None
    assert Position.objects.get(user=user, ticket=101).symbol == "XAUUSD"


def test_post_positions_treats_zero_stops_as_none(auth_client):
    response = auth_client.post(POSITIONS_URL, register_payload(5, sl="0", tp="0"))
    assert response.status_code == 201
    assert response.json()["sl"] is None and response.json()["tp"] is None


@pytest.mark.parametrize(
    ("body_changes", "field"),
    [
        ({"symbol": "NOPE"}, "symbol"),
        ({"volume": "0.015"}, "volume"),  # more than 2 decimal places
        ({"volume": "0"}, "volume"),
        ({"volume": "-0.10"}, "volume"),
        ({"volume": "NaN"}, "volume"),
        ({"requested_price": "Infinity"}, "requested_price"),
        ({"requested_price": "0"}, "requested_price"),
        ({"requested_price": "abc"}, "requested_price"),
        ({"side": "long"}, "side"),
        ({"ticket": "x"}, "ticket"),
        ({"ticket": 0}, "ticket"),
        ({"sl": "1.2"}, "sl"),  # buy @ 1.095 with SL above the price
        ({"tp": "-1"}, "tp"),
    ],
)
def test_post_positions_invalid_input_is_400_with_field_errors_and_nothing_written(auth_client, body_changes, field):
    # given
    before = table_counts()
    body = {**register_payload(9), **body_changes}
    # when
    response = auth_client.post(POSITIONS_URL, body)
    # then
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert table_counts() == before


def test_post_positions_duplicate_ticket_is_400(auth_client):
    assert auth_client.post(POSITIONS_URL, register_payload(3)).status_code == 201
    before = table_counts()
    response = auth_client.post(POSITIONS_URL, register_payload(3))
    assert response.status_code == 400
    assert "ticket" in response.json()
    assert table_counts() == before


def test_post_positions_requires_authentication(api_client):
    response = api_client.post(POSITIONS_URL, register_payload(1), format="json")
    assert response.status_code == 401
    assert Position.objects.count() == 0


def test_post_positions_refuses_a_deactivated_user_with_a_valid_token(auth_client, user):
    # given a token minted while the user was active
    user.is_active = False
    user.save()
    # when
    response = auth_client.post(POSITIONS_URL, register_payload(1))
    # then: the write side authenticates against the database
    assert response.status_code == 401
    assert Position.objects.count() == 0


def test_position_history_filters_by_status_and_symbol_newest_first(auth_client, user):
    # given three rows
    register(user, ticket=1)
    register(user, ticket=2, symbol="GBPUSD", requested_price=Decimal("1.26900"))
    third = register(user, ticket=3)
    Position.objects.filter(pk=third.pk).update(status="open")
    # when
    all_rows = auth_client.get(POSITIONS_URL).json()["results"]
    pending_eurusd = auth_client.get(POSITIONS_URL, {"status": "pending", "symbol": "eurusd"}).json()["results"]
    # then
    assert [row["ticket"] for row in all_rows] == [3, 2, 1]
    assert [row["ticket"] for row in pending_eurusd] == [1]
    assert auth_client.get(POSITIONS_URL, {"status": "bogus"}).status_code == 400


def test_position_history_is_cursor_paginated(auth_client, user):
    for ticket in range(1, 6):
        register(user, ticket=ticket)
    first = auth_client.get(POSITIONS_URL, {"page_size": 2}).json()
    second = auth_client.get(first["next"]).json()
    assert [r["ticket"] for r in first["results"]] == [5, 4]
    assert [r["ticket"] for r in second["results"]] == [3, 2]


def test_position_detail_of_another_user_is_404(auth_client, user, other_user, api_client):
    # given one position per user
    mine = register(user, ticket=1)
    theirs = register(other_user, ticket=1)
    # when
    own = auth_client.get(f"{POSITIONS_URL}{mine.pk}/")
    foreign = auth_client.get(f"{POSITIONS_URL}{theirs.pk}/")
    listed = auth_client.get(POSITIONS_URL).json()["results"]
    # then
    assert own.status_code == 200 and own.json()["id"] == mine.pk
    assert foreign.status_code == 404
    assert [row["id"] for row in listed] == [mine.pk]


def test_position_history_accepts_a_real_jwt(api_client, user):
    register(user, ticket=1)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    assert api_client.get(POSITIONS_URL).status_code == 200
