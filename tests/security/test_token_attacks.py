"""Token attacks (issue 8): forged, expired, misused, rotated-out and orphaned tokens.

Every protected endpoint of the URL conf (:func:`tests.security.endpoints.api_operations`) refuses a
bad access token with 401, a JSON body and ``WWW-Authenticate: Bearer``; the refresh/verify/logout
endpoints refuse bad tokens with SimpleJWT's contract (401 + JSON). Access tokens are stateless
(``JWTStatelessUserAuthentication``, no SQL per request): a deactivated or deleted user's access token
still *reads* its own (possibly empty) data until it expires — at most ``JWT_ACCESS_LIFETIME_S`` — but
every write endpoint authenticates against the database and refuses it, and refresh is refused at once.
"""

from __future__ import annotations

import base64
import json
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.tests.factories import default_account
from positions.models import Position
from reconciliation.models import ReconciliationLog
from tests.security.endpoints import Operation, api_operations, send
from tradingsite import sync_payload as mt5

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
VERIFY = "/api/v1/auth/token/verify/"
LOGOUT = "/api/v1/auth/logout/"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _claims(user) -> dict:
    """The claims of a genuine access token for ``user`` (user_id, jti, exp, iat, token_type)."""
    return dict(AccessToken.for_user(user).payload)


def protected_operations() -> list[Operation]:
    operations = [op for op in api_operations() if not op.is_public]
    assert operations, "the URL conf lists no protected API operation"
    return operations


def write_operations() -> list[Operation]:
    return [op for op in protected_operations() if op.method in ("POST", "PUT", "PATCH", "DELETE")]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_json_error(response, status: int, where: str) -> dict:
    assert response.status_code == status, f"{where}: {response.status_code} {response.content[:300]!r}"
    assert response["Content-Type"].startswith("application/json"), f"{where}: {response['Content-Type']}"
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), f"{where}: {body!r}"
    return body


def refused_everywhere(client: APIClient) -> list[str]:
    """Send every protected operation with ``client``; return a line per operation that was NOT a JSON 401."""
    problems = []
    for operation in protected_operations():
        response = send(client, operation)
        content_type = response.get("Content-Type", "")
        if response.status_code != 401 or not content_type.startswith("application/json"):
            problems.append(f"{operation}: {response.status_code} {content_type} {response.content[:120]!r}")
            continue
        if not response.get("WWW-Authenticate", "").startswith("Bearer"):
            problems.append(f"{operation}: 401 without WWW-Authenticate: Bearer")
        if "detail" not in response.json():
            problems.append(f"{operation}: 401 body without detail: {response.json()!r}")
    return problems


@contextmanager
def clock_advanced(seconds: float):
    """Move the clock SimpleJWT and PyJWT validate ``exp`` against ``seconds`` into the future."""
    real = datetime.now(UTC) + timedelta(seconds=seconds)

    class _FutureDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return real if tz is not None else real.replace(tzinfo=None)

    with (
        mock.patch("jwt.api_jwt.datetime", _FutureDatetime),
        mock.patch("rest_framework_simplejwt.tokens.aware_utcnow", lambda: real),
    ):
        yield


# --------------------------------------------------------------------------------------------
# Forged and misused access tokens, on every protected endpoint
# --------------------------------------------------------------------------------------------
def _alg_none(user) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(user))}."


def _alg_none_upper(user) -> str:
    return f"{_b64({'alg': 'NONE', 'typ': 'JWT'})}.{_b64(_claims(user))}."


def _signed_with_secret_key(user) -> str:
    # A genuine payload signed with SECRET_KEY: the key simplejwt would use if SIGNING_KEY were unset.
    return jwt.encode(_claims(user), settings.SECRET_KEY, algorithm="HS256")


def _hs256_key_as_hs384(user) -> str:
    # Right key, other algorithm: decoding passes only the configured HS256 to PyJWT.
    return jwt.encode(_claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS384")


def _expired(user) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=5))
    return str(token)


def _refresh_as_access(user) -> str:
    return str(RefreshToken.for_user(user))


def _tampered_user_id(user) -> str:
    # Swap the payload of a genuine token for one naming another user, keeping the signature.
    header, _payload, signature = str(AccessToken.for_user(user)).split(".")
    claims = _claims(user)
    claims["user_id"] = str(int(claims["user_id"]) + 1)
    return f"{header}.{_b64(claims)}.{signature}"


def _garbage(user) -> str:
    return "not-a-jwt"


FORGED = {
    "alg_none": _alg_none,
    "alg_NONE": _alg_none_upper,
    "signed_with_SECRET_KEY": _signed_with_secret_key,
    "hs384_with_JWT_key": _hs256_key_as_hs384,
    "expired": _expired,
    "refresh_token_as_access": _refresh_as_access,
    "tampered_user_id": _tampered_user_id,
    "garbage": _garbage,
}


def test_jwt_signing_key_is_not_the_secret_key():
    # The SECRET_KEY attack below only means something while the keys differ.
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY
    assert settings.SIMPLE_JWT["ALGORITHM"] == "HS256"


@pytest.mark.parametrize("attack", sorted(FORGED))
def test_forged_or_misused_access_token_is_refused_with_json_401_on_every_protected_endpoint(attack, user):
    # given a bad access token for a real, active user
    token = FORGED[attack](user)
    # when every protected endpoint is called with it, then each answers 401 + JSON + WWW-Authenticate
    assert refused_everywhere(bearer(token)) == []


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Bearer a b", "Token {token}", "bearer{token}", "Basic YWxpY2U6cGFzc3dvcmQ="],
    ids=["empty", "bearer_only", "bearer_space", "three_parts", "wrong_scheme", "no_space", "basic_auth"],
)
def test_malformed_authorization_header_is_refused_with_json_401_on_every_protected_endpoint(header, user):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header.format(token=str(AccessToken.for_user(user))))
    assert refused_everywhere(client) == []


def test_a_genuine_access_token_is_accepted_so_the_refusals_above_can_fail(user):
    # The control: the same endpoints, with a real token, are not refused for authentication.
    client = bearer(str(AccessToken.for_user(user)))
    for operation in protected_operations():
        response = send(client, operation)
        assert response.status_code != 401, f"{operation}: {response.content[:200]!r}"


def test_cached_page_is_not_served_to_the_same_token_after_it_expired(user):
    # given a hot GET answered (and page-cached) for a genuine token
    token = str(AccessToken.for_user(user))
    client = bearer(token)
    hot = [op for op in protected_operations() if op.method == "GET" and not op.has_path_parameter]
    assert hot
    for operation in hot:
        assert send(client, operation).status_code == 200, str(operation)
    # when the token expires within the page-cache TTL (same Authorization header, same cache key)
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
    with clock_advanced(lifetime + settings.SIMPLE_JWT["LEEWAY"] + 1):
        problems = refused_everywhere(client)
    # then authentication runs before the page cache: 401, never the cached 200
    assert problems == []


# --------------------------------------------------------------------------------------------
# refresh / verify / logout
# --------------------------------------------------------------------------------------------
def _obtain(client: APIClient, user, password) -> dict:
    response = client.post(TOKEN, {"username": user.username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda user: str(AccessToken.for_user(user)), id="access_token_as_refresh"),
        pytest.param(
            lambda user: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(dict(RefreshToken.for_user(user).payload))}.",
            id="alg_none_refresh",
        ),
        pytest.param(
            lambda user: jwt.encode(dict(RefreshToken.for_user(user).payload), settings.SECRET_KEY, algorithm="HS256"),
            id="refresh_signed_with_SECRET_KEY",
        ),
        pytest.param(
            lambda user: str(
                _expire(RefreshToken.for_user(user), settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"]),
            ),
            id="expired_refresh",
        ),
        pytest.param(lambda user: "not-a-jwt", id="garbage"),
    ],
)
@pytest.mark.parametrize("endpoint", [REFRESH, LOGOUT])
def test_refresh_and_logout_refuse_bad_refresh_tokens_with_json_401(make, endpoint, api_client, user):
    response = api_client.post(endpoint, {"refresh": make(user)}, format="json")
    body = assert_json_error(response, 401, endpoint)
    assert body.get("code") == "token_not_valid"
    assert "access" not in body and "refresh" not in body


def _expire(token, lifetime):
    token.set_exp(from_time=timezone.now() - lifetime - timedelta(hours=1), lifetime=lifetime)
    return token


# verify accepts any genuine token type (SimpleJWT's contract), so a refresh token is no forgery there.
@pytest.mark.parametrize("attack", sorted(set(FORGED) - {"refresh_token_as_access"}))
def test_verify_refuses_forged_tokens_with_json_401(attack, api_client, user):
    response = api_client.post(VERIFY, {"token": FORGED[attack](user)}, format="json")
    assert_json_error(response, 401, f"verify {attack}")


def test_verify_accepts_genuine_access_and_refresh_tokens(api_client, user):
    # SimpleJWT's verify contract: signature + expiry (+ blacklist for refresh tokens), any token type.
    for token in (str(AccessToken.for_user(user)), str(RefreshToken.for_user(user))):
        response = api_client.post(VERIFY, {"token": token}, format="json")
        assert response.status_code == 200
        assert response.json() == {}


@pytest.mark.parametrize("endpoint,field", [(REFRESH, "refresh"), (VERIFY, "token"), (LOGOUT, "refresh")])
def test_missing_token_field_is_a_json_400(endpoint, field, api_client):
    response = api_client.post(endpoint, {}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_rotated_refresh_token_is_refused_when_reused(api_client, user, password):
    # given a pair from auth/token/ and one successful refresh (rotation: a new refresh token comes back)
    first = _obtain(api_client, user, password)
    rotated = api_client.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    # when the old refresh token is used again, then refresh and logout refuse it as blacklisted (401)
    for endpoint in (REFRESH, LOGOUT):
        body = assert_json_error(api_client.post(endpoint, {"refresh": first["refresh"]}, format="json"), 401, endpoint)
        assert body["code"] == "token_not_valid"
    # and verify answers SimpleJWT 5.5.1's contract for a blacklisted token: a JSON 400 (a validation error)
    response = api_client.post(VERIFY, {"token": first["refresh"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Token is blacklisted"]}
    # and the new one still works exactly once
    assert api_client.post(REFRESH, {"refresh": rotated.json()["refresh"]}, format="json").status_code == 200
    assert api_client.post(REFRESH, {"refresh": rotated.json()["refresh"]}, format="json").status_code == 401


def test_logged_out_refresh_token_is_refused(api_client, user, password):
    pair = _obtain(api_client, user, password)
    assert api_client.post(LOGOUT, {"refresh": pair["refresh"]}, format="json").status_code == 200
    assert_json_error(api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "refresh")


def test_access_token_cannot_log_out(api_client, user, password):
    pair = _obtain(api_client, user, password)
    assert_json_error(api_client.post(LOGOUT, {"refresh": pair["access"]}, format="json"), 401, "logout")
    # and the real refresh token was not blacklisted by the attempt
    assert api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json").status_code == 200


def test_wrong_password_and_unknown_user_are_json_401(api_client, user):
    for username, secret in ((user.username, "wrong-password"), ("nobody", "whatever-password")):
        response = api_client.post(TOKEN, {"username": username, "password": secret}, format="json")
        assert_json_error(response, 401, f"token {username}")


# --------------------------------------------------------------------------------------------
# Deactivated and deleted users
# --------------------------------------------------------------------------------------------
def _sync_body() -> dict:
    account = mt5.account_info(server="MetaQuotes-Demo", login=5021337, currency="USD", balance="1000.00",
                               equity="1000.00")  # fmt: skip
    return mt5.sync_body(broker_time=timezone.now() - timedelta(seconds=30), account=account, positions=[])


def _write_attempts(client: APIClient, user, *, pks: dict[tuple[str, str], int] | None = None) -> dict[str, int]:
    """Status of every write operation, each sent with a body that would be accepted for an active user.

    ``pks``: the object a detail operation targets, by (method, path) (the loss rules' detail operations).
    """
    bodies = {
        ("POST", "/api/v1/positions/"): {
            "ticket": 990001,
            "symbol": "EURUSD",
            "side": "buy",
            "volume": "0.10",
            "requested_price": "1.10000",
        },
        ("POST", "/api/v1/reconciliation/syncs/"): _sync_body(),
        ("PATCH", "/api/v1/guards/config/"): {"drawdown_warning_pct": "12"},
        ("POST", "/api/v1/webhooks/"): {"url": "https://hooks.example.com/a"},
        ("PATCH", "/api/v1/webhooks/{pk}/"): {"active": False},
        ("POST", "/api/v1/guards/rules/"): {"name": "daily", "kind": "daily_loss", "anchor": "day_start",
                                            "percent": "5", "timezone": "Europe/Prague"},
        ("PATCH", "/api/v1/guards/rules/{pk}/"): {"name": "renamed"},
        ("POST", "/api/v1/guards/rules/presets/"): {"preset": "ftmo_2step", "initial_capital": "100000"},
        ("PATCH", "/api/v1/positions/{pk}/"): {"tp": "1.20000"},
        ("PATCH", "/api/v1/guards/instruments/{symbol}/"): {"entry_tolerance_pips": "3"},
    }  # fmt: skip
    # Operations on an object after the ones that create it: PATCH positions/{pk}/ moves the stop of the
    # position POST positions/ registered.
    return {
        str(op): send(client, op, url=_url_of_own_object(op, user, pks or {}), data=bodies.get(op.key, {})).status_code
        for op in sorted(write_operations(), key=lambda op: op.has_path_parameter)
    }


def _url_of_own_object(operation: Operation, user, pks: dict[tuple[str, str], int]) -> str:
    """The operation's URL; a path with an id names an object of ``user``'s: the one ``pks`` names, the
    position registered by ``POST positions/`` (pk 1 when none was, e.g. for a refused user), or a fresh
    webhook endpoint."""
    if operation.key in pks:
        return operation.url(pk=pks[operation.key])
    if operation.path.startswith("/api/v1/guards/instruments/"):
        return operation.url(symbol="EURUSD")  # a shipped default instrument every account has
    if operation.path.startswith(("/api/v1/positions/", "/api/v1/guards/rules/")):
        return operation.url(pk=Position.objects.filter(ticket=990001).values_list("pk", flat=True).first() or 1)
    if not operation.has_path_parameter or not type(user).objects.filter(pk=user.pk).exists():
        return operation.url()  # a deleted user: no object of theirs can exist
    from notifications.models import WebhookEndpoint

    assert operation.path.startswith("/api/v1/webhooks/"), f"{operation}: add an object factory here"
    return operation.url(pk=WebhookEndpoint.objects.create(user=user, url="https://hooks.example.com/b").pk)


def test_writes_with_a_genuine_token_are_accepted_so_the_refusals_below_can_fail(user):
    from accounts.models import Account
    from guards.models import LossRule

    account = Account.objects.get(user=user)
    rule = {
        "user": user,
        "account": account,
        "kind": "max_loss",
        "anchor": "initial_capital",
        "amount": Decimal("1000"),
    }
    pks = {
        ("DELETE", "/api/v1/guards/rules/{pk}/"): LossRule.objects.create(name="to delete", **rule).pk,
        ("PATCH", "/api/v1/guards/rules/{pk}/"): LossRule.objects.create(name="to rename", **rule).pk,
    }
    statuses = _write_attempts(bearer(str(AccessToken.for_user(user))), user, pks=pks)
    assert statuses and all(status in (200, 201, 204) for status in statuses.values()), statuses


def test_deactivated_user_refresh_is_refused_and_writes_are_refused(api_client, user, password):
    # given a deactivated user who still holds a pair obtained before deactivation
    pair = _obtain(api_client, user, password)
    user.is_active = False
    user.save(update_fields=["is_active"])
    positions_before, logs_before = Position.objects.count(), ReconciliationLog.objects.count()

    # then refresh is refused at once, and a new login too
    body = assert_json_error(api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "refresh")
    assert body["detail"] == "No active account found for the given token."
    assert "access" not in body
    assert_json_error(
        api_client.post(TOKEN, {"username": user.username, "password": password}, format="json"), 401, "token"
    )

    # and every write endpoint authenticates against the database and refuses the still-valid access token
    statuses = _write_attempts(bearer(pair["access"]), user)
    assert statuses and set(statuses.values()) == {401}, statuses
    assert (Position.objects.count(), ReconciliationLog.objects.count()) == (positions_before, logs_before)


def test_deactivated_user_access_token_still_reads_own_data_until_expiry_by_design(api_client, user, password):
    # Documented behaviour of stateless access tokens (caveat 3): a read endpoint on
    # JWTStatelessUserAuthentication cannot see is_active, so the deactivated owner keeps reading
    # its own data for at most JWT_ACCESS_LIFETIME_S; endpoints on the DB-backed JWTAuthentication
    # refuse at once. Nothing is ever another user's data.
    pair = _obtain(api_client, user, password)
    user.is_active = False
    user.save(update_fields=["is_active"])
    client = bearer(pair["access"])
    stateless, refused = [], []
    for operation in protected_operations():
        if operation.method != "GET" or operation.has_path_parameter:
            continue
        status = send(client, operation).status_code
        assert status in (200, 401), f"{operation}: {status}"
        (stateless if status == 200 else refused).append(operation.path)
    assert "/api/v1/positions/" in refused  # positions/ history is DB-authenticated
    # and after the access lifetime everything is refused
    lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
    with clock_advanced(lifetime + settings.SIMPLE_JWT["LEEWAY"] + 1):
        assert refused_everywhere(client) == []


def test_deleted_user_tokens_refresh_401_writes_401_and_reads_show_nothing(api_client, user, other_user, password):
    # given a user deleted while holding a pair (its rows cascade away), and another user with data
    pair = _obtain(api_client, user, password)
    other_position = Position.objects.create(
        user=other_user,
        account=default_account(other_user),
        ticket=990001,
        symbol="NZDCHF",
        side="buy",
        volume="0.10",
        requested_price="0.55000",
    )
    user.delete()

    # then refresh is a JSON 401 (SimpleJWT alone would raise DoesNotExist → 500), never new tokens
    body = assert_json_error(api_client.post(REFRESH, {"refresh": pair["refresh"]}, format="json"), 401, "refresh")
    assert body["detail"] == "No active account found for the given token."
    assert "access" not in body

    # and every write is refused (DB-backed authentication: user_not_found), nothing is written
    statuses = _write_attempts(bearer(pair["access"]), user)
    assert statuses and set(statuses.values()) == {401}, statuses
    assert Position.objects.count() == 1

    # and a read with the still-unexpired stateless access token is a 4xx or an empty answer: never a
    # 5xx, never another user's row
    client = bearer(pair["access"])
    for operation in protected_operations():
        if operation.method != "GET":
            continue
        response = send(client, operation, url=operation.url(pk=other_position.pk))
        assert response.status_code < 500, f"{operation}: {response.status_code}"
        if response.status_code == 200 and "results" in response.json():
            assert response.json()["results"] == [], str(operation)
        assert "990001" not in response.content.decode() and other_position.symbol not in response.content.decode()
