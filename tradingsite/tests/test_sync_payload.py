"""tradingsite.sync_payload: the one builder of the MT5 sync body, checked against the sync serializer."""

from __future__ import annotations

import ast
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from reconciliation.serializers import ServerClockTime, SyncInputSerializer
from tradingsite import sync_payload as mt5

D = Decimal
BROKER_TIME = datetime(2026, 3, 3, 10, 0, 5, tzinfo=UTC)


def full_body() -> dict:
    """A sync with every part: account (with margin levels), a buy and a sell, two ticks, a closing deal,
    a balance operation and a symbol spec."""
    return mt5.sync_body(
        sync_id=uuid.UUID("6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"),
        broker_time=BROKER_TIME,
        account=mt5.account_info(
            login=5021337,
            server="MetaQuotes-Demo",
            currency="usd",
            balance=D("10000.00"),
            equity=D("10041.36"),
            margin=D("195.05"),
            currency_digits=2,
            server_utc_offset=120,
            margin_level=D("5148.10"),
            margin_so_mode=0,
            margin_so_call=D("100"),
            margin_so_so=D("50"),
        ),  # fmt: skip
        positions=[
            mt5.position(
                ticket=700101,
                symbol="XAUUSD",
                type="buy",
                volume=D("0.10"),
                price_open=D("1950.50"),
                price_current=D("1955.75"),
                tp=D("1960.00"),
                swap=D("-0.40"),
                profit=D("52.50"),
                time=1764496805,
                magic=42,
            ),
            mt5.position(
                ticket=700102,
                symbol="EURUSD",
                type=1,
                volume=D("1.00"),
                price_open=D("1.09500"),
                sl=D("1.10000"),
                time=BROKER_TIME - timedelta(hours=1),
            ),
        ],  # fmt: skip
        quotes=[
            mt5.tick(symbol="XAUUSD", bid=D("1955.75"), ask=D("1956.05"), time=1764496805),
            mt5.tick(symbol="EURUSD", bid=D("1.09500")),
        ],
        deals=[
            mt5.deal(
                ticket=9001,
                position_id=700100,
                type=1,
                entry=1,
                reason=4,
                symbol="XAUUSD",
                price=D("1940.00"),
                volume=D("0.10"),
                profit=D("-105.00"),
                commission=D("-0.70"),
                fee=D("-0.05"),
                time=1764496800,
            ),
            mt5.deal(ticket=9002, type=2, profit=D("500.00"), comment="deposit"),
        ],  # fmt: skip
        symbols=[
            mt5.symbol_spec(
                symbol="XAUUSD",
                trade_contract_size=D("100"),
                digits=2,
                point=D("0.01"),
                currency_base="XAU",
                currency_profit="USD",
                volume_step=D("0.01"),
                volume_min=D("0.01"),
            )
        ],  # fmt: skip
    )


def validated(body: dict) -> dict:
    serializer = SyncInputSerializer(data=json.loads(json.dumps(body)))  # through JSON, as the endpoint reads it
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data


def test_a_built_body_is_plain_json_with_decimal_strings_and_mt5_field_names():
    body = full_body()
    assert json.loads(json.dumps(body)) == body  # nothing a JSON encoder would have to convert
    assert body["account"] == {
        "login": 5021337, "server": "MetaQuotes-Demo", "currency": "usd", "balance": "10000.00",
        "equity": "10041.36", "margin": "195.05",
        "margin_free": "9846.31",  # 10041.36 − 195.05
        "currency_digits": 2, "server_utc_offset": 120, "margin_level": "5148.10", "margin_so_mode": 0,
        "margin_so_call": "100", "margin_so_so": "50",
    }  # fmt: skip
    buy, sell = body["positions"]
    assert (buy["type"], sell["type"]) == (0, 1)  # POSITION_TYPE_BUY, POSITION_TYPE_SELL
    assert (buy["sl"], sell["tp"]) == ("0", "0")  # MT5's "no stop"
    assert sell["price_current"] == "1.09500"  # defaults to price_open
    assert sell["time"] == "2026-03-03T09:00:05Z"  # an aware datetime is written as a UTC instant
    assert body["broker_time"] == "2026-03-03T10:00:05Z"
    assert body["quotes"][1] == {"symbol": "EURUSD", "bid": "1.09500", "ask": "1.09500"}  # ask defaults to bid
    assert "type" not in mt5.deal(ticket=1, position_id=2, price=D("1.1"))  # left out: the position gives the side


def test_the_sync_serializer_accepts_a_built_body_and_reads_back_the_same_values():
    data = validated(full_body())
    # round trip: every value given to the builder comes back from the serializer unchanged
    assert data["sync_id"] == uuid.UUID("6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f")
    assert data["broker_time"] == BROKER_TIME
    account = data["account"]
    assert (account["login"], account["server"], account["currency"]) == (5021337, "MetaQuotes-Demo", "USD")
    assert (account["balance"], account["equity"], account["margin"], account["margin_free"]) == (
        D("10000.00"), D("10041.36"), D("195.05"), D("9846.31"),
    )  # fmt: skip
    assert (account["margin_level"], account["margin_so_call"], account["margin_so_so"]) == (D("5148.10"), 100, 50)
    assert (account["currency_digits"], account["server_utc_offset"]) == (2, 120)
    buy, sell = data["positions"]
    assert (buy["ticket"], buy["identifier"], buy["symbol"], buy["type"]) == (700101, 700101, "XAUUSD", "buy")
    assert (buy["volume"], buy["price_open"], buy["price_current"]) == (D("0.10"), D("1950.50"), D("1955.75"))
    assert (buy["sl"], buy["tp"], buy["swap"], buy["profit"]) == (None, D("1960.00"), D("-0.40"), D("52.50"))
    # epoch seconds are MT5 server time (the service shifts them); an ISO instant is already UTC
    assert isinstance(buy["time"], ServerClockTime) and buy["time"].timestamp() == 1764496805
    assert not isinstance(sell["time"], ServerClockTime) and sell["time"] == BROKER_TIME - timedelta(hours=1)
    assert (sell["type"], sell["sl"], sell["tp"]) == ("sell", D("1.10000"), None)
    assert [(q["symbol"], q["bid"], q["ask"]) for q in data["quotes"]] == [
        ("XAUUSD", D("1955.75"), D("1956.05")), ("EURUSD", D("1.09500"), D("1.09500")),
    ]  # fmt: skip
    close, deposit = data["deals"]
    assert (close["ticket"], close["position_id"], close["type"], close["entry"], close["reason"]) == (
        9001,
        700100,
        1,
        1,
        4,
    )
    assert (close["price"], close["profit"], close["commission"], close["fee"]) == (
        D("1940.00"), D("-105.00"), D("-0.70"), D("-0.05"),
    )  # fmt: skip
    assert (deposit["type"], deposit["position_id"], deposit["profit"], deposit["comment"]) == (
        2,
        0,
        D("500.00"),
        "deposit",
    )
    (spec,) = data["symbols"]
    assert (spec["symbol"], spec["trade_contract_size"], spec["digits"], spec["point"]) == ("XAUUSD", 100, 2, D("0.01"))
    assert (spec["currency_base"], spec["currency_profit"], spec["volume_step"]) == ("XAU", "USD", D("0.01"))


def test_unknown_positions_are_sent_as_null_and_a_flat_account_as_an_empty_list():
    account = mt5.account_info(login=1, server="Test-Server", currency="USD", balance=D("1"), equity=D("1"))
    assert validated(mt5.sync_body(account=account, broker_time=BROKER_TIME, positions=None))["positions"] is None
    assert validated(mt5.sync_body(account=account, broker_time=BROKER_TIME, positions=[]))["positions"] == []


def test_floats_and_naive_times_are_refused_by_the_builder():
    with pytest.raises(TypeError):
        mt5.tick(symbol="EURUSD", bid=1.095)  # a float is not a price
    with pytest.raises(ValueError):
        mt5.wire_time(datetime(2026, 3, 3, 10))  # naive: which clock?


def test_the_builder_imports_no_django():
    # Locust and the replay harness import it without Django settings
    tree = ast.parse(Path(mt5.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if name.split(".")[0] in {"django", "rest_framework", "reconciliation"}]
