"""Authentication: tokens, rotation, logout, inactive users, throttles, and a 401 from every
endpoint without a valid token."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import access_token_for, redis_cache_settings
from positions.tests.read_factories import PositionFactory
from reconciliation.tests.read_factories import ReconciliationLogFactory
from tradingsite import throttling
from tradingsite.cache_backend import breaker
from tradingsite.throttling import AuthIpThrottle, AuthUsernameThrottle

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
VERIFY_URL = "/api/v1/auth/token/verify/"
LOGOUT_URL = "/api/v1/auth/logout/"


@pytest.fixture(autouse=True)
def _fresh_throttle_fallback():
    """The per-process fallback window of the throttles outlives tests: start each test empty."""
    throttling._local_cache().clear()
    breaker.reset()
    yield
    throttling._local_cache().clear()
    breaker.reset()


def _login(client: APIClient, username: str, password: str):
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


# --------------------------------------------------------------------------------------------
# Obtain, verify
# --------------------------------------------------------------------------------------------
def test_token_pair_for_valid_credentials_authenticates_requests(api_client, user, password):
    # when
    response = _login(api_client, user.username, password)
    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh"}
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    assert api_client.get("/api/v1/guards/status/").status_code == 200


def test_access_token_is_signed_with_the_jwt_key_not_the_secret_key(api_client, user, password):
    # given
    access = _login(api_client, user.username, password).json()["access"]
    # when / then it verifies with JWT_SIGNING_KEY and not with SECRET_KEY
    assert settings.SIMPLE_JWT["SIGNING_KEY"] != settings.SECRET_KEY
    assert jwt.decode(access, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])["user_id"] == str(user.pk)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(access, settings.SECRET_KEY, algorithms=["HS256"])
    # and it lives minutes, not hours
    claims = jwt.decode(access, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds() <= 900


def test_bad_password_is_a_json_401(api_client, user):
    # when
    response = _login(api_client, user.username, "wrong")
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": "No active account found with the given credentials"}


def test_inactive_user_cannot_obtain_a_token(api_client, user, password):
    # given
    user.is_active = False
    user.save()
    # when / then
    assert _login(api_client, user.username, password).status_code == 401


def test_missing_fields_are_a_json_400(api_client):
    # when
    response = api_client.post(TOKEN_URL, {}, format="json")
    # then
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


def test_verify_accepts_a_valid_token_and_rejects_a_tampered_one(api_client, user):
    # given
    token = access_token_for(user)
    # when / then
    assert api_client.post(VERIFY_URL, {"token": token}, format="json").status_code == 200
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert api_client.post(VERIFY_URL, {"token": tampered}, format="json").status_code == 401


# --------------------------------------------------------------------------------------------
# Refresh rotation, logout, inactive and deleted users
# --------------------------------------------------------------------------------------------
def test_refresh_rotates_and_the_used_token_is_rejected(api_client, user, password):
    # given
    first = _login(api_client, user.username, password).json()
    # when
    rotated = api_client.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    replay = api_client.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    # then the first use gives a new pair, the second use is refused
    assert rotated.status_code == 200
    assert set(rotated.json()) == {"access", "refresh"}
    assert rotated.json()["refresh"] != first["refresh"]
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"
    # and the new refresh token works once
    assert api_client.post(REFRESH_URL, {"refresh": rotated.json()["refresh"]}, format="json").status_code == 200


def test_logout_blacklists_the_refresh_token(api_client, user, password):
    # given
    pair = _login(api_client, user.username, password).json()
    # when
    response = api_client.post(LOGOUT_URL, {"refresh": pair["refresh"]}, format="json")
    # then
    assert response.status_code == 200
    assert api_client.post(REFRESH_URL, {"refresh": pair["refresh"]}, format="json").status_code == 401
    # and the access token, being stateless, lives until it expires (documented in docs/read-api.md)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
    assert api_client.get("/api/v1/guards/status/").status_code == 200


def test_logout_with_a_bad_token_is_401_and_without_one_400(api_client):
    assert api_client.post(LOGOUT_URL, {"refresh": "not-a-token"}, format="json").status_code == 401
    assert api_client.post(LOGOUT_URL, {}, format="json").status_code == 400


def test_deactivated_users_refresh_is_refused(api_client, user):
    # given a refresh token minted while the user was active
    refresh = str(RefreshToken.for_user(user))
    user.is_active = False
    user.save()
    # when
    response = api_client.post(REFRESH_URL, {"refresh": refresh}, format="json")
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": "No active account found for the given token."}


def test_deleted_users_refresh_is_a_401_not_a_500(api_client, django_user_model):
    # given a user deleted after getting a refresh token (SimpleJWT 5.5.1 alone raises DoesNotExist here)
    ghost = django_user_model.objects.create_user(username="ghost", password="x")
    refresh = str(RefreshToken.for_user(ghost))
    ghost.delete()
    # when
    response = api_client.post(REFRESH_URL, {"refresh": refresh}, format="json")
    # then
    assert response.status_code == 401
    assert response.json() == {"detail": "No active account found for the given token."}


def test_access_token_is_not_accepted_as_a_refresh_token(api_client, user):
    response = api_client.post(REFRESH_URL, {"refresh": access_token_for(user)}, format="json")
    assert response.status_code == 401


def test_deactivated_user_keeps_the_cached_reads_until_expiry_but_loses_the_rest(user, other_user):
    # given a valid access token, then the user is deactivated
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    user.is_active = False
    user.save()
    # when / then the three stateless hot reads still answer (until the access token expires) ...
    for url in ("/api/v1/reconciliation/status/", "/api/v1/positions/open/", "/api/v1/guards/status/"):
        assert client.get(url).status_code == 200, url
    # ... while every database-checked endpoint refuses the token at once
    for url in (
        "/api/v1/reconciliation/logs/",
        "/api/v1/positions/",
        "/api/v1/guards/alerts/",
        "/api/v1/guards/config/",
    ):
        assert client.get(url).status_code == 401, url


def test_session_login_works_for_the_browsable_api(client, user, password):
    # given DRF's login view
    assert client.get("/api-auth/login/").status_code == 200
    # when
    client.login(username=user.username, password=password)
    # then the session authenticates API reads, JSON and HTML
    assert client.get("/api/v1/reconciliation/status/", HTTP_ACCEPT="application/json").status_code == 200
    html = client.get("/api/v1/guards/status/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert b"system_status" in html.content


# --------------------------------------------------------------------------------------------
# Throttles
# --------------------------------------------------------------------------------------------
def test_token_endpoint_is_throttled_per_username(api_client, user, monkeypatch):
    # given 3 attempts per minute per username (IPs vary, so only the username counts)
    monkeypatch.setattr(AuthUsernameThrottle, "rate", "3/min", raising=False)
    codes = [
        api_client.post(TOKEN_URL, {"username": "Alice", "password": "bad"}, REMOTE_ADDR=f"10.0.0.{i}").status_code
        for i in range(4)
    ]
    # then the 4th attempt on "alice" (case-insensitive) is refused with a JSON 429
    assert codes == [401, 401, 401, 429]
    # and another username is not affected
    assert api_client.post(TOKEN_URL, {"username": "bob", "password": "bad"}).status_code == 401


def test_token_endpoint_is_throttled_per_ip(api_client, monkeypatch):
    # given 3 attempts per minute per IP, each with a different username
    monkeypatch.setattr(AuthIpThrottle, "rate", "3/min", raising=False)
    codes = [api_client.post(TOKEN_URL, {"username": f"u{i}", "password": "bad"}).status_code for i in range(4)]
    # then
    assert codes == [401, 401, 401, 429]
    assert "Retry-After" in api_client.post(TOKEN_URL, {"username": "z", "password": "bad"})


def test_throttle_still_limits_with_redis_down(api_client, closed_redis_url, monkeypatch):
    # given Redis stopped (nothing listens on the port) and 3 attempts per minute per username
    monkeypatch.setattr(AuthUsernameThrottle, "rate", "3/min", raising=False)
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)):
        breaker.reset()
        # when
        codes = [
            api_client.post(TOKEN_URL, {"username": "carol", "password": "bad"}, REMOTE_ADDR=f"10.1.0.{i}").status_code
            for i in range(4)
        ]
    # then the per-process fallback window still refuses the 4th attempt (policy: tradingsite.throttling)
    assert codes == [401, 401, 401, 429]


# --------------------------------------------------------------------------------------------
# 401 on every endpoint: no token, bad signature, alg "none", expired
# --------------------------------------------------------------------------------------------
ENDPOINTS = [
    ("get", "/api/v1/reconciliation/status/"),
    ("get", "/api/v1/reconciliation/logs/"),
    ("get", "/api/v1/reconciliation/logs/{log}/"),
    ("post", "/api/v1/reconciliation/syncs/"),
    ("get", "/api/v1/positions/open/"),
    ("get", "/api/v1/positions/"),
    ("get", "/api/v1/positions/{position}/"),
    ("post", "/api/v1/positions/"),
    ("get", "/api/v1/guards/status/"),
    ("get", "/api/v1/guards/alerts/"),
    ("get", "/api/v1/guards/config/"),
    ("patch", "/api/v1/guards/config/"),
]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user) -> dict:
    token = AccessToken.for_user(user)
    return dict(token.payload)


def _bad_tokens(user) -> dict[str, str | None]:
    claims = _claims(user)
    expired = AccessToken.for_user(user)
    expired.set_exp(from_time=expired.current_time - timedelta(hours=1))
    return {
        "missing": None,
        "bad_signature": jwt.encode(claims, "not-the-signing-key-but-long-enough-for-hs256", algorithm="HS256"),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "expired": str(expired),
        "garbage": "abc.def.ghi",
    }


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
@pytest.mark.parametrize("kind", ["missing", "bad_signature", "alg_none", "expired", "garbage"])
def test_every_endpoint_answers_401_without_a_valid_token(method, url, kind, user):
    # given the user's own objects, so a 401 is not a 404 in disguise
    url = url.format(log=ReconciliationLogFactory(user=user).pk, position=PositionFactory(user=user).pk)
    token = _bad_tokens(user)[kind]
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    # when
    response = getattr(client, method)(url, {}, format="json")
    # then
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Age" not in response  # never served from, nor stored in, the page cache
