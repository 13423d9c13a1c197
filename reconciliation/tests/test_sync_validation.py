"""Bad sync input: 400/413 with field errors, and zero rows written in every table."""

import io
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, iso, quote, sync_payload, table_counts

pytestmark = pytest.mark.django_db


def valid_payload():
    return sync_payload(
        broker_time=Clock().tick(),
        positions=[broker_position(1), broker_position(2, symbol="GBPUSD", price_open="1.26900")],
        quotes=[quote("EURUSD", "1.09500", "1.09510")],
    )


def with_position(**changes):
    body = valid_payload()
    body["positions"][0].update(changes)
    return body


def with_quote(**changes):
    body = valid_payload()
    body["quotes"][0].update(changes)
    return body


def with_account(**changes):
    body = valid_payload()
    body["account"].update(changes)
    return body


def with_body(**changes):
    return {**valid_payload(), **changes}


BAD_INPUTS = {
    "negative volume": (with_position(volume="-0.10"), ["positions", 0, "volume"]),
    "zero volume": (with_position(volume=0), ["positions", 0, "volume"]),
    "zero price_open": (with_position(price_open="0"), ["positions", 0, "price_open"]),
    "negative sl": (with_position(sl="-1"), ["positions", 0, "sl"]),
    "NaN string volume": (with_position(volume="NaN"), ["positions", 0, "volume"]),
    "Infinity price": (with_position(price_current="Infinity"), ["positions", 0, "price_current"]),
    "-Infinity profit": (with_position(profit="-Infinity"), ["positions", 0, "profit"]),
    "unknown type 2": (with_position(type=2), ["positions", 0, "type"]),
    "unknown type long": (with_position(type="long"), ["positions", 0, "type"]),
    "boolean type": (with_position(type=True), ["positions", 0, "type"]),
    "ticket as text": (with_position(ticket="abc"), ["positions", 0, "ticket"]),
    "volume as list": (with_position(volume=[1]), ["positions", 0, "volume"]),
    "missing symbol": (with_position(symbol=None), ["positions", 0, "symbol"]),
    "duplicate tickets": (with_body(positions=[broker_position(7), broker_position(7)]), ["positions"]),
    "positions not a list": (with_body(positions="abc"), ["positions"]),
    "ask below bid": (with_quote(bid="1.09510", ask="1.09500"), ["quotes", 0, "ask"]),
    "zero bid": (with_quote(bid="0"), ["quotes", 0, "bid"]),
    "duplicate quote symbols": (
        with_body(quotes=[quote("EURUSD", "1.1"), quote("eurusd", "1.1")]),
        ["quotes"],
    ),
    "account not an object": (with_body(account="x"), ["account"]),
    "NaN equity": (with_account(equity="nan"), ["account", "equity"]),
    "missing account": ({k: v for k, v in valid_payload().items() if k != "account"}, ["account"]),
    "bad currency": (with_account(currency="US Dollar"), ["account", "currency"]),
    "broker_time garbage": (with_body(broker_time="yesterday"), ["broker_time"]),
    "broker_time naive": (with_body(broker_time="2026-11-30T10:00:05"), ["broker_time"]),
    "broker_time boolean": (with_body(broker_time=True), ["broker_time"]),
    # built when the test runs (a body built at collection is no longer ahead once the suite has run 5 minutes)
    "broker_time 10 min ahead": (
        lambda: with_body(broker_time=iso(timezone.now() + timedelta(minutes=10))),
        ["broker_time"],
    ),
    "bad sync_id": (with_body(sync_id="not-a-uuid"), ["sync_id"]),
    "more than 1000 positions": (
        with_body(positions=[broker_position(t) for t in range(1, 1002)]),
        ["positions"],
    ),
    "more than 500 quotes": (
        with_body(quotes=[quote(f"S{i:04d}", "1.0") for i in range(501)]),
        ["quotes"],
    ),
    "deal with entry 9": (
        with_body(deals=[{"ticket": 1, "position_id": 1, "entry": 9, "reason": 4, "price": "1.1"}]),
        ["deals", 0, "entry"],
    ),
    "symbol name with spaces": (with_position(symbol="NAS 100"), ["positions", 0, "symbol"]),
    "symbol name with a slash": (with_position(symbol="../etc"), ["positions", 0, "symbol"]),
}


def error_at(body, path):
    """Follow a path of keys into DRF's errors; list items are keyed by their index as a string."""
    node = body
    for key in path:
        node = node[str(key)]
    return node


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_sync_input_is_400_with_field_errors_and_writes_nothing(auth_client, user, case):
    # given
    payload, error_path = BAD_INPUTS[case]
    if callable(payload):
        payload = payload()
    before = table_counts()
    # when
    response = auth_client.post(SYNC_URL, payload, format="json")
    # then
    assert response.status_code == 400, response.content
    assert error_at(response.json(), error_path)
    assert table_counts() == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_400(auth_client, literal):
    # given a raw body whose equity is a bare NaN/Infinity literal (accepted by Python's json, not by JSON)
    body = json.dumps(valid_payload()).replace('"equity": "10000.00"', f'"equity": {literal}')
    before = table_counts()
    # when
    response = auth_client.post(SYNC_URL, body, content_type="application/json")
    # then
    assert response.status_code == 400
    assert "detail" in response.json()
    assert table_counts() == before


def test_body_over_one_mib_is_413_with_json_and_writes_nothing(auth_client):
    # given a valid-looking body padded past 1 MiB (1,048,576 bytes)
    payload = valid_payload()
    payload["padding"] = "x" * (1024 * 1024)
    before = table_counts()
    # when
    response = auth_client.post(SYNC_URL, json.dumps(payload), content_type="application/json")
    # then
    assert response.status_code == 413
    assert response.json()["detail"]
    assert table_counts() == before


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=200)
def test_parser_checks_the_bytes_read_not_only_the_declared_length():
    # given a 300-byte stream with no Content-Length (e.g. chunked), against a 200-byte limit
    from types import SimpleNamespace

    from reconciliation.views import SizeLimitedJSONParser
    from tradingsite.api import PayloadTooLarge

    stream = io.BytesIO(json.dumps({"padding": "x" * 300}).encode())
    request = SimpleNamespace(META={})
    # when / then: reading stops at limit + 1 bytes and refuses
    with pytest.raises(PayloadTooLarge):
        SizeLimitedJSONParser().parse(stream, "application/json", {"request": request})
    # and a body within the limit parses
    small = io.BytesIO(b'{"a": "1.5"}')
    assert SizeLimitedJSONParser().parse(small, "application/json", {"request": request}) == {"a": "1.5"}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=200)
def test_declared_length_over_the_limit_is_413(auth_client):
    before = table_counts()
    response = auth_client.post(SYNC_URL, valid_payload(), format="json")  # ~600 bytes
    assert response.status_code == 413
    assert table_counts() == before


def test_sync_requires_authentication(api_client):
    before = table_counts()
    response = api_client.post(SYNC_URL, valid_payload(), format="json")
    assert response.status_code == 401
    assert table_counts() == before


def test_deactivated_user_cannot_sync_with_a_still_valid_token(auth_client, user):
    user.is_active = False
    user.save()
    before = table_counts()
    response = auth_client.post(SYNC_URL, valid_payload(), format="json")
    assert response.status_code == 401
    assert table_counts() == before


def test_mt5_native_shapes_are_accepted(auth_client, user):
    # given what positions_get()._asdict() gives: floats, int type, sl 0.0, epoch time, extra keys
    payload = sync_payload(broker_time=Clock().tick(), positions=[], quotes=[])
    payload["broker_time"] = int(Clock().now.timestamp())
    payload["positions"] = [
        {"ticket": 700101, "time": 1764496805, "time_msc": 1764496805123, "type": 0, "magic": 42, "identifier": 700101,
         "reason": 3, "volume": 0.1, "price_open": 1950.5, "sl": 0.0, "tp": 1960.0, "price_current": 1955.75,
         "swap": -0.4, "profit": 41.36, "symbol": "XAUUSD", "comment": "bot", "external_id": ""}
    ]  # fmt: skip
    payload["quotes"] = [{"symbol": "XAUUSD", "bid": 1955.75, "ask": 1956.05, "time": 1764496805, "last": 0.0}]
    # when
    response = auth_client.post(SYNC_URL, payload, format="json")
    # then
    assert response.status_code == 201, response.content
    from positions.models import Position

    row = Position.objects.get(user=user, ticket=700101)
    assert (str(row.volume), str(row.price_open), row.sl, str(row.tp)) == (
        "0.10",
        "1950.50000000",
        None,
        "1960.00000000",
    )
