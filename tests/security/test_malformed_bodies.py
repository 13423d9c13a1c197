"""Hostile JSON bodies found by hand-testing: each is a clear 400, never a 500, and writes nothing."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone

from positions.models import Position
from reconciliation.models import ReconciliationLog

pytestmark = pytest.mark.django_db

DEEP = "[" * 5000 + "]" * 5000  # 10 KB that makes json.loads raise RecursionError


@pytest.mark.parametrize(
    ("path", "method", "authenticated"),
    [
        ("/api/v1/auth/token/", "post", False),
        ("/api/v1/auth/token/refresh/", "post", False),
        ("/api/v1/auth/logout/", "post", False),
        ("/api/v1/positions/", "post", True),
        ("/api/v1/guards/config/", "patch", True),
        ("/api/v1/reconciliation/syncs/", "post", True),
    ],
)
def test_deeply_nested_json_is_a_400_on_every_json_endpoint(path, method, authenticated, api_client, auth_client):
    client = auth_client if authenticated else api_client
    response = getattr(client, method)(path, data=DEEP, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nested too deeply" in response.json()["detail"]


def test_a_null_item_in_the_sync_positions_is_a_field_error_and_writes_nothing(auth_client):
    # given a valid snapshot whose positions list holds one real position and one null
    body = {
        "sync_id": str(uuid.uuid4()),
        "broker_time": timezone.now().isoformat(),
        "account": {
            "login": 1,
            "server": "Test-Server",
            "currency": "USD",
            "balance": "10000.00",
            "equity": "10000.00",
        },
        "positions": [
            {
                "ticket": 700010,
                "symbol": "EURUSD",
                "type": 0,
                "volume": "0.10",
                "price_open": "1.09500",
                "price_current": "1.09550",
                "profit": "5.00",
            },
            None,
        ],
    }
    # when it is posted
    response = auth_client.post("/api/v1/reconciliation/syncs/", data=json.dumps(body), content_type="application/json")
    # then item 1 is named in a 400 and no row is written anywhere
    assert response.status_code == 400, response.content
    assert response.json() == {"positions": {"1": ["This field may not be null."]}}
    assert Position.objects.count() == 0
    assert ReconciliationLog.objects.count() == 0


def test_a_sync_volume_off_the_lot_step_is_refused_not_rounded(auth_client):
    # given a broker position of 0.105 lots (not a multiple of 0.01: it would round to 0.11)
    body = {
        "broker_time": timezone.now().isoformat(),
        "account": {
            "login": 1,
            "server": "Test-Server",
            "currency": "USD",
            "balance": "10000.00",
            "equity": "10000.00",
        },
        "positions": [
            {
                "ticket": 1,
                "symbol": "EURUSD",
                "type": 0,
                "volume": "0.105",
                "price_open": "1.095",
                "price_current": "1.095",
            }
        ],
    }
    response = auth_client.post("/api/v1/reconciliation/syncs/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"positions": {"0": {"volume": ["At most 2 decimal places."]}}}
    assert Position.objects.count() == 0


def test_a_signed_token_with_a_non_integer_user_id_is_a_401_on_the_hot_reads(api_client, user):
    # given a token signed with the real key whose user_id claim is not an integer (only a key holder
    # could mint it, but it must still never be a 500)
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token["user_id"] = "abc"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for path in ("/api/v1/reconciliation/status/", "/api/v1/positions/open/", "/api/v1/guards/status/"):
        response = api_client.get(path)
        assert response.status_code == 401, (path, response.content)
