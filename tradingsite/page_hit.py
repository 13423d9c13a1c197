"""Serve a page-cache hit of the hot reads before sessions, CSRF, the auth middleware and DRF.

:func:`tradingsite.caching.page_cached` stores the hot reads with Django's ``cache_page``; behind the
whole middleware stack and DRF's dispatch a hit pays for sessions, CSRF, messages, content
negotiation, DRF's request wrapping and two Redis round trips (``cache_page`` first reads the header
list it learned for the URL, then the page). :class:`PageHitMiddleware` answers the same hit from
the same store earlier, with one round trip, when — and only when — the request is one that
``cache_page`` behind DRF would have answered from that entry anyway:

* ``GET`` of a route registered with ``page_cached`` whose view authenticates with SimpleJWT's
  stateless JWT authentication (or a subclass) and otherwise only sessions, has no throttles and
  requires only ``IsAuthenticated`` (checked once per view class; anything else keeps the full path);
* no ``Cookie`` (session requests keep the full path) and an ``Accept`` that does not ask for HTML
  (the browsable API keeps the full path);
* an ``Authorization: Bearer`` token that the view's own authentication class accepts — SimpleJWT's
  signature (with the configured algorithm only, so ``alg: none`` fails), expiry and token type
  checks, and the user-id claim — run exactly as DRF would run them (a token accepted before is
  remembered until its ``exp`` + ``LEEWAY``: :class:`VerifiedTokens`);
* one ``MGET`` of the URL's learned header list, of the page under the key ``cache_page``
  computes for the documented ``Vary`` (Accept, Authorization, Cookie), and of the token user's two
  generation counters (:mod:`tradingsite.generations`): the page is served only if the learned list
  is exactly that, so the key is the one ``cache_page`` itself would read, and only while the
  generation its data was read under is current (a page older than the user's published data is a
  miss, and ``cache_page`` then stores a new one; :class:`PageCacheMiddleware` applies the same
  check on the full path).

Otherwise the request continues down the stack unchanged: a missing, forged, expired or refresh
token reaches DRF, which answers 401 as before, and a miss is computed and stored by ``cache_page``.
The page key contains the full URL (query string included) and the Authorization value, so one
user's page is never another's. ``API_PAGE_FAST_PATH`` = false turns this middleware off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.middleware.cache import CacheMiddleware
from django.urls import NoReverseMatch, get_resolver, resolve, reverse
from django.utils.cache import (  # type: ignore[attr-defined]  # private, absent from django-stubs
    _generate_cache_header_key,
    _generate_cache_key,
    get_max_age,
)
from django.utils.decorators import decorator_from_middleware_with_args
from django.utils.http import parse_http_date_safe
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException
from rest_framework.permissions import IsAuthenticated
from rest_framework_simplejwt import tokens as jwt_tokens
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from tradingsite.generations import (
    PAGE_GENERATION_ATTR,
    generation_cache_key,
    page_is_current,
    published_cache_key,
    readers_generation,
    request_generation,
)
from tradingsite.observability import page_cached_views

# The header list cache_page learns from ``Vary: Accept, Authorization, Cookie`` (PAGE_VARY_HEADERS in
# tradingsite.caching), in the form django.utils.cache.learn_cache_key stores it: upper-cased, sorted.
LEARNED_HEADERS = ["HTTP_ACCEPT", "HTTP_AUTHORIZATION", "HTTP_COOKIE"]


def fast_path_authenticator(view_class: type) -> type[JWTStatelessUserAuthentication] | None:
    """Return the view's stateless JWT authentication class if a page hit of this view may be served
    before DRF, else None.

    Allowed: authentication by a ``JWTStatelessUserAuthentication`` (sub)class first, otherwise only
    ``SessionAuthentication`` (its requests carry a cookie and keep the full path); no throttles;
    no permission beyond ``IsAuthenticated``. Anything else — a database-checked JWT class, a
    throttle, an extra permission — must run on every request, so the view keeps the full path.
    """
    authenticators = list(getattr(view_class, "authentication_classes", ()))
    if not authenticators or not issubclass(authenticators[0], JWTStatelessUserAuthentication):
        return None
    if any(not issubclass(cls, SessionAuthentication) for cls in authenticators[1:]):
        return None
    if list(getattr(view_class, "throttle_classes", ())):
        return None
    if any(permission is not IsAuthenticated for permission in getattr(view_class, "permission_classes", ())):
        return None
    return authenticators[0]


class VerifiedTokens:
    """The ``Authorization`` values this process's fast path has seen its view's authentication class
    accept, with the token user and the instant the token stops being valid, so a repeated token skips
    the signature check (PyJWT decode + HMAC, about a third of a hit's own CPU).

    What SimpleJWT checks of an access token depends only on its bytes (signature with the configured
    algorithm, token type, user-id claim, ``jti``) and on the clock (``exp``, with ``LEEWAY``), and the
    signing key does not change while the process runs: an entry is therefore exactly as good as a new
    verification until its token's ``exp`` + ``LEEWAY``, checked on every use with SimpleJWT's own clock
    (``rest_framework_simplejwt.tokens.aware_utcnow``). Only accepted tokens are remembered, per
    authentication class. Bounded: at ``MAX_ENTRIES`` the map is emptied (tokens are re-verified once).
    Thread-safe through the GIL's atomic dict operations; one instance per process (:data:`verified_tokens`).
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[tuple[type, str], tuple[Any, datetime]] = {}

    def user(self, authenticator: Any, authorization: str) -> Any | None:
        """The token user of ``authorization`` if it was accepted by ``authenticator``'s class and is
        still within its ``exp`` + ``LEEWAY``; else None (verify it)."""
        entry = self._entries.get((type(authenticator), authorization))
        if entry is None:
            return None
        user, valid_until = entry
        if jwt_tokens.aware_utcnow() >= valid_until:
            self._entries.pop((type(authenticator), authorization), None)
            return None
        return user

    def remember(self, authenticator: Any, authorization: str, authenticated: tuple[Any, Any]) -> None:
        """Remember ``authenticated`` (the ``(user, validated token)`` DRF's ``authenticate`` returned)."""
        user, token = authenticated
        try:
            expires = jwt_tokens.datetime_from_epoch(token["exp"])
            leeway = token.get_token_backend().get_leeway()
        except (KeyError, TypeError, AttributeError):
            return  # not a token shape this cache understands: verify it every time
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[(type(authenticator), authorization)] = (user, expires + leeway)

    def clear(self) -> None:
        """Forget every token (tests; a signing-key change needs a restart anyway)."""
        self._entries.clear()


verified_tokens = VerifiedTokens()


class PageHitMiddleware:
    """Answer a ``cache_page`` hit of a hot read with one Redis round trip, before the session,
    CSRF and authentication middleware and DRF (see the module docstring for when it applies).

    Place it after the middleware whose response headers every answer needs (security headers,
    ``X-Frame-Options``) and before ``SessionMiddleware``. On a hit the request gets ``user`` (the
    token user, as DRF sets it) and ``page_hit_view`` (the route name) for the access log.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._routes: dict[str, tuple[str, Any]] | None = None  # path → (route name, authenticator)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self._hit(request) if request.method == "GET" else None
        if response is not None:
            return response
        known = getattr(request, "page_cache_generation", None)
        if known is None:
            return self.get_response(request)
        token = request_generation.set(known)  # the miss's data lookups use the generation read with the page
        try:
            return self.get_response(request)
        finally:
            request_generation.reset(token)

    def _routes_by_path(self) -> dict[str, tuple[str, Any]]:
        if self._routes is None:
            routes = {}
            _ = get_resolver().url_patterns  # import the URLconf, hence the views that register with page_cached
            for name in sorted(page_cached_views()):
                try:
                    path = reverse(name)
                except NoReverseMatch:
                    continue
                view_class = getattr(resolve(path).func, "view_class", None)
                authenticator = fast_path_authenticator(view_class) if view_class else None
                if authenticator is not None:
                    routes[path] = (name, authenticator())
            self._routes = routes
        return self._routes

    def _hit(self, request: HttpRequest) -> HttpResponse | None:
        if not getattr(settings, "API_PAGE_FAST_PATH", True) or settings.API_CACHE_TTL_S <= 0:
            return None
        if settings.CACHE_MIDDLEWARE_ALIAS != "default":
            return None  # the pages are not where the generations are: one MGET cannot read both
        route = self._routes_by_path().get(request.path_info)
        meta = request.META
        if route is None or meta.get("HTTP_COOKIE") or "html" in meta.get("HTTP_ACCEPT", ""):
            return None
        view_name, authenticator = route
        user = verified_tokens.user(authenticator, meta.get("HTTP_AUTHORIZATION", ""))
        if user is None:
            try:
                authenticated = authenticator.authenticate(request)
            except (APIException, TokenError):
                return None  # DRF answers it (401) exactly as without this middleware
            if authenticated is None:
                return None
            user = authenticated[0]
            verified_tokens.remember(authenticator, meta.get("HTTP_AUTHORIZATION", ""), authenticated)
        cache = caches["default"]  # the pages (CACHE_MIDDLEWARE_ALIAS, checked above) and the generations
        prefix = settings.CACHE_MIDDLEWARE_KEY_PREFIX
        header_key = _generate_cache_header_key(prefix, request)
        page_key = _generate_cache_key(request, "GET", LEARNED_HEADERS, prefix)
        latest_key, published_key = generation_cache_key(user.id), published_cache_key(user.id)
        found = cache.get_many([header_key, page_key, latest_key, published_key])  # one round trip
        latest, published = found.get(latest_key), found.get(published_key)
        response = found.get(page_key)
        learned = found.get(header_key)
        if response is not None and not page_is_current(response, latest, published):
            response = None  # newer data is published since the page was made: it is a miss
        if response is None:
            generation = readers_generation(latest, published)
            if generation is not None:
                request.page_cache_generation = (int(user.id), generation)  # type: ignore[attr-defined]
            # cache_page would read the same two keys and miss too (or find the outdated page): let it
            # skip its own lookup.
            request.page_cache_missed = learned is None or learned == LEARNED_HEADERS  # type: ignore[attr-defined]
            return None
        if learned != LEARNED_HEADERS:
            return None
        _set_age(response)
        if not response.has_header("Content-Length"):  # as CommonMiddleware sets it on the full path
            response["Content-Length"] = str(len(response.content))
        request.user = user
        request.page_hit_view = view_name  # type: ignore[attr-defined]
        return response


class PageCacheMiddleware(CacheMiddleware):
    """Django's ``CacheMiddleware`` (what ``cache_page`` applies: same keys, same storage rules) that
    skips its lookup when :class:`PageHitMiddleware` has just read the same keys and found no page
    (``request.page_cache_missed``), so a page miss costs one round trip less, and that treats a page
    older than the user's published data (:func:`tradingsite.generations.page_is_current`) as a miss
    (session and browsable-API requests, which keep this path)."""

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if getattr(request, "page_cache_missed", False) and request.method == "GET":
            request._cache_update_cache = True  # type: ignore[attr-defined]
            return None
        response = super().process_request(request)
        if response is not None and getattr(response, PAGE_GENERATION_ATTR, None) is not None:
            user_id = getattr(getattr(request, "user", None), "id", None)  # DRF sets its user on the Django request
            if user_id is None or not _is_current_for(response, user_id):
                request._cache_update_cache = True  # type: ignore[attr-defined]  # outdated: compute and store anew
                return None
        return response


def cache_page(timeout: float) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``django.views.decorators.cache.cache_page(timeout)`` built on :class:`PageCacheMiddleware`."""
    return decorator_from_middleware_with_args(PageCacheMiddleware)(page_timeout=timeout)


def _is_current_for(page: HttpResponse, user_id: int) -> bool:
    """:func:`tradingsite.generations.page_is_current` for ``user_id``'s counters (one MGET)."""
    latest_key, published_key = generation_cache_key(user_id), published_cache_key(user_id)
    found = caches["default"].get_many([latest_key, published_key])
    return page_is_current(page, found.get(latest_key), found.get(published_key))


def _set_age(response: HttpResponse) -> None:
    """Set ``Age`` as ``FetchFromCacheMiddleware`` does on a hit (Django 5.2): max-age minus the
    seconds left until ``Expires``, never negative."""
    max_age = get_max_age(response)
    expires = parse_http_date_safe(response.get("Expires", ""))
    if max_age is not None and expires is not None:
        response["Age"] = max(0, max_age - (expires - int(time.time())))
