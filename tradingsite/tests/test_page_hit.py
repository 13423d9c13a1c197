"""The page-hit fast path (tradingsite.page_hit, issue 13): a page-cache hit of a hot read is answered
before sessions, CSRF and DRF, with one cache round trip — and only for a request that DRF would have
let through to the same ``cache_page`` entry. A forged, expired, refresh or ``alg: none`` token never
gets a page, even one planted under its exact key; cookies and HTML keep the full path."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication, JWTStatelessUserAuthentication
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import access_token_for
from positions.tests.read_factories import PositionFactory
from tradingsite.page_hit import LEARNED_HEADERS, fast_path_authenticator

pytestmark = pytest.mark.django_db

HOT = {
    "positions:open": reverse("positions:open"),
    "reconciliation:status": reverse("reconciliation:status"),
    "guards:status": reverse("guards:status"),
}
# Headers that differ between two answers of the same entry: the request id, and the age/expiry clock.
PER_REQUEST = {"X-Request-ID", "Age"}


def bearer(token: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def book(user):
    PositionFactory(user=user, ticket=5001, symbol="EURUSD")
    return user


@pytest.fixture
def dispatched(monkeypatch):
    """Count the requests that reached DRF (``APIView.dispatch``); a fast-path hit never does."""
    calls: list[str] = []
    original = APIView.dispatch

    def spy(self, request, *args, **kwargs):
        calls.append(request.path)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "dispatch", spy)
    return calls


def plant(url: str, authorization: str, response) -> None:
    """Store ``response`` exactly where cache_page (and the fast path) would look for ``url`` requested
    with ``authorization``: the learned header list and the page under the key of those headers."""
    from django.utils.cache import _generate_cache_header_key, _generate_cache_key  # type: ignore[attr-defined]

    request = RequestFactory().get(url, HTTP_AUTHORIZATION=authorization, HTTP_COOKIE="")
    cache = caches["default"]
    cache.set(_generate_cache_header_key("", request), LEARNED_HEADERS, 60)
    cache.set(_generate_cache_key(request, "GET", LEARNED_HEADERS, ""), response, 60)


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


# --------------------------------------------------------------------------------------------
# A hit skips DRF and is the same answer
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", list(HOT))
def test_a_hit_is_served_before_drf_with_the_same_bytes_and_headers(route, book, dispatched):
    # given a page cached by a first read (a miss: it goes through DRF)
    token = access_token_for(book)
    client = bearer(token)
    first = client.get(HOT[route])
    assert first.status_code == 200 and "Age" not in first
    assert dispatched == [HOT[route]]
    # when the same read is repeated, with the fast path and then without it
    fast = client.get(HOT[route])
    with override_settings(API_PAGE_FAST_PATH=False):
        full = client.get(HOT[route])
    # then the fast hit never reached DRF, and both hits are the stored page with the same headers
    assert dispatched == [HOT[route], HOT[route]]
    assert fast.status_code == full.status_code == 200
    assert fast.content == full.content == first.content
    assert "Age" in fast and "Age" in full
    fast_headers = {k: v for k, v in fast.items() if k not in PER_REQUEST}
    full_headers = {k: v for k, v in full.items() if k not in PER_REQUEST}
    assert fast_headers == full_headers
    assert fast["Vary"] == "Accept, Authorization, Cookie"
    assert fast["X-Frame-Options"] == "DENY"
    assert fast["X-Content-Type-Options"] == "nosniff"


def test_a_hit_runs_no_sql_and_is_counted_as_a_page_hit_of_its_view(book, dispatched, django_assert_num_queries):
    from prometheus_client import REGISTRY

    def hits() -> float:
        labels = {"layer": "page", "view": "guards:status", "result": "hit"}
        return REGISTRY.get_sample_value("tradingsite_cache_events_total", labels) or 0.0

    client = bearer(access_token_for(book))
    client.get(HOT["guards:status"])
    before = hits()
    with django_assert_num_queries(0):
        response = client.get(HOT["guards:status"])
    assert response.status_code == 200 and "Age" in response
    assert len(dispatched) == 1
    assert hits() - before == 1


# --------------------------------------------------------------------------------------------
# Tokens DRF refuses never get a page, even one stored under their exact key
# --------------------------------------------------------------------------------------------
def _cached_page(user, url: str):
    client = bearer(access_token_for(user))
    client.get(url)
    stored = client.get(url)
    assert "Age" in stored
    return stored


def _forged(user) -> str:
    payload = dict(AccessToken.for_user(user).payload)
    header = {"alg": "HS256", "typ": "JWT"}
    return f"{_b64(header)}.{_b64(payload)}.{base64.urlsafe_b64encode(b'x' * 32).rstrip(b'=').decode()}"


def _alg_none(user) -> str:
    payload = dict(AccessToken.for_user(user).payload)
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def _refresh(user) -> str:
    return str(RefreshToken.for_user(user))


def _other_key(user) -> str:
    import jwt

    return jwt.encode(dict(AccessToken.for_user(user).payload), "not-the-signing-key-" * 3, algorithm="HS256")


@pytest.mark.parametrize("make_token", [_forged, _alg_none, _refresh, _other_key], ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("route", list(HOT))
def test_a_token_drf_refuses_never_gets_a_planted_page(route, make_token, book, dispatched):
    # given a real page of the user, planted under the exact key the bad token's request computes
    page = _cached_page(book, HOT[route])
    bad = make_token(book)
    plant(HOT[route], f"Bearer {bad}", page)
    dispatched.clear()
    # when the bad token asks for it
    response = bearer(bad).get(HOT[route])
    # then DRF answered (401, JSON), not the cache
    assert response.status_code == 401, response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    assert "Age" not in response
    assert dispatched == [HOT[route]]


@pytest.mark.parametrize("route", list(HOT))
def test_a_page_cached_while_the_token_was_valid_is_refused_once_it_expires(route, book, dispatched):
    # given a page cached (TTL 5 s) under a token, then the clock moves past the token's expiry
    # (lifetime JWT_ACCESS_LIFETIME_S = 300 s + LEEWAY 5 s; +400 s is past both, the page itself is still stored)
    token = access_token_for(book)
    client = bearer(token)
    client.get(HOT[route])
    assert "Age" in client.get(HOT[route])
    later = timezone.now() + timedelta(seconds=400)
    dispatched.clear()
    # when the expired token repeats the read
    with mock.patch("rest_framework_simplejwt.tokens.aware_utcnow", return_value=later):
        response = client.get(HOT[route])
    # then it is a 401 from DRF, never the cached page
    assert response.status_code == 401
    assert dispatched == [HOT[route]]


# --------------------------------------------------------------------------------------------
# Vary, query strings, users: the key is cache_page's own
# --------------------------------------------------------------------------------------------
def test_another_users_token_and_another_query_string_are_other_pages(book, other_user, dispatched):
    # given Alice's pages of two URLs cached (positions/open with two query strings)
    mine = bearer(access_token_for(book))
    url_a, url_b = f"{HOT['positions:open']}?symbol=EURUSD", f"{HOT['positions:open']}?symbol=GBPUSD"
    first_a = mine.get(url_a)
    first_b = mine.get(url_b)
    assert first_a.json()["count"] == 1 and first_b.json()["count"] == 0
    # when Alice re-reads each URL and Bob reads the first
    again_a, again_b = mine.get(url_a), mine.get(url_b)
    bob = bearer(access_token_for(other_user)).get(url_a)
    # then each URL is its own entry, and Bob's read is a miss computed for Bob (his book is empty)
    assert "Age" in again_a and "Age" in again_b
    assert again_a.content == first_a.content and again_b.content == first_b.content
    assert "Age" not in bob and bob.json()["count"] == 0
    assert dispatched.count(url_a.split("?")[0]) == 3  # Alice's two misses and Bob's miss


def test_a_learned_header_list_other_than_the_documented_vary_is_left_to_cache_page(book, dispatched):
    # given a cached page, then the URL's learned header list replaced by another Vary (as if the view
    # varied on one more header)
    from django.utils.cache import _generate_cache_header_key

    url = HOT["guards:status"]
    _cached_page(book, url)
    key = _generate_cache_header_key("", RequestFactory().get(url))
    caches["default"].set(key, [*LEARNED_HEADERS, "HTTP_X_OTHER"], 60)
    dispatched.clear()
    # when
    response = bearer(access_token_for(book)).get(url)
    # then the fast path did not answer; DRF and cache_page did
    assert response.status_code == 200
    assert dispatched == [url]


def test_cookie_and_html_requests_keep_the_full_path(book, password, dispatched):
    # given a page cached for a bearer token
    token = access_token_for(book)
    _cached_page(book, HOT["guards:status"])
    dispatched.clear()
    # when the same token sends a cookie, or asks for HTML
    with_cookie = bearer(token)
    with_cookie.cookies["csrftoken"] = "abc"
    with_cookie.get(HOT["guards:status"])
    bearer(token).get(HOT["guards:status"], HTTP_ACCEPT="text/html")
    # and a browser with a session reads it
    browser = APIClient(HTTP_ACCEPT="text/html")
    browser.login(username=book.username, password=password)
    browser.get(HOT["guards:status"])
    browser.get(HOT["guards:status"])
    # then every one of them went through DRF
    assert dispatched == [HOT["guards:status"]] * 4


def test_no_fast_path_when_caching_is_off_or_it_is_disabled(book, dispatched):
    client = bearer(access_token_for(book))
    url = HOT["guards:status"]
    client.get(url)
    with override_settings(API_PAGE_FAST_PATH=False):
        assert "Age" in client.get(url)
    with override_settings(API_CACHE_TTL_S=0):
        assert "Age" not in client.get(url)
    assert dispatched == [url] * 3


# --------------------------------------------------------------------------------------------
# Which views may use it
# --------------------------------------------------------------------------------------------
def _view(**attrs) -> type:
    base = {
        "authentication_classes": [JWTStatelessUserAuthentication, SessionAuthentication],
        "permission_classes": [IsAuthenticated],
        "throttle_classes": [],
    }
    return type("V", (APIView,), {**base, **attrs})


def test_only_stateless_unthrottled_authenticated_only_views_qualify():
    assert fast_path_authenticator(_view()) is JWTStatelessUserAuthentication
    # a database-checked JWT (deactivated users must be refused at once) keeps the full path
    assert fast_path_authenticator(_view(authentication_classes=[JWTAuthentication])) is None
    assert fast_path_authenticator(_view(authentication_classes=[SessionAuthentication])) is None
    # a throttle or a stricter permission must run on every request
    assert fast_path_authenticator(_view(throttle_classes=[UserRateThrottle])) is None
    assert fast_path_authenticator(_view(permission_classes=[IsAuthenticated, IsAdminUser])) is None


def test_the_three_hot_reads_qualify():
    from django.urls import resolve

    for url in HOT.values():
        assert fast_path_authenticator(resolve(url).func.view_class) is not None, url
    assert settings.API_PAGE_FAST_PATH is True


# --------------------------------------------------------------------------------------------
# Verified tokens are remembered until their expiry, per exact Authorization value
# --------------------------------------------------------------------------------------------
@pytest.fixture
def verifications(monkeypatch):
    """Count the signature checks of the fast path's authentication class."""
    from tradingsite.page_hit import verified_tokens

    verified_tokens.clear()
    calls: list[int] = []
    original = JWTStatelessUserAuthentication.authenticate

    def spy(self, request):
        calls.append(1)
        return original(self, request)

    monkeypatch.setattr(JWTStatelessUserAuthentication, "authenticate", spy)
    yield calls
    verified_tokens.clear()


def test_a_repeated_token_is_verified_once_and_still_refused_after_its_expiry(book, verifications, dispatched):
    # given a page stored by a first read (DRF verifies the token; the fast path looked first and verified it too)
    client = bearer(access_token_for(book))
    client.get(HOT["positions:open"])
    first = len(verifications)
    # when the same token reads three more times
    for _ in range(3):
        assert "Age" in client.get(HOT["positions:open"])
    # then no further signature check ran
    assert len(verifications) == first
    # and once the clock is past exp + LEEWAY (300 s + 5 s), the remembered token is verified again and refused
    later = timezone.now() + timedelta(seconds=306)
    with mock.patch("rest_framework_simplejwt.tokens.aware_utcnow", return_value=later):
        response = client.get(HOT["positions:open"])
    assert response.status_code == 401
    assert len(verifications) > first


def test_a_remembered_token_serves_only_its_own_exact_authorization_value(book, other_user, verifications):
    from tradingsite.page_hit import PageHitMiddleware, verified_tokens

    mine, theirs = access_token_for(book), access_token_for(other_user)
    bearer(mine).get(HOT["positions:open"])
    bearer(theirs).get(HOT["positions:open"])
    route = PageHitMiddleware(lambda request: None)._routes_by_path()[HOT["positions:open"]]
    authenticator = route[1]
    # the remembered entry is the exact header value: another user's token, a changed byte, or another
    # scheme are not found (they are verified as usual)
    assert str(verified_tokens.user(authenticator, f"Bearer {mine}").id) == str(book.id)
    assert str(verified_tokens.user(authenticator, f"Bearer {theirs}").id) == str(other_user.id)
    assert verified_tokens.user(authenticator, f"Bearer {mine[:-1]}{'A' if mine[-1] != 'A' else 'B'}") is None
    assert verified_tokens.user(authenticator, f"bearer {mine}") is None


@pytest.mark.parametrize("make_token", [_forged, _alg_none, _refresh, _other_key], ids=lambda f: f.__name__[1:])
def test_a_remembered_access_token_lets_no_other_token_of_its_user_through(make_token, book, verifications):
    # given the user's access token remembered by the fast path, with a page stored
    page = _cached_page(book, HOT["positions:open"])
    # when a bad token of the same user asks for the same page, planted under its own exact key
    bad = make_token(book)
    plant(HOT["positions:open"], f"Bearer {bad}", page)
    response = bearer(bad).get(HOT["positions:open"])
    # then it is refused as before
    assert response.status_code == 401
