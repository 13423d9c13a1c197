"""Authentication endpoints, SimpleJWT's views, mounted at ``/api/v1/auth/``.

The authentication classes live in :mod:`tradingsite.authentication`.

Endpoints:

* ``POST token/`` — ``{"username", "password"}`` → ``{"access", "refresh"}``; throttled per client IP
  (``THROTTLE_AUTH_IP``) and per submitted username (``THROTTLE_AUTH_USERNAME``), with the Redis
  failure policy of :mod:`tradingsite.throttling` (per-process memory while Redis is down).
* ``POST token/refresh/`` — ``{"refresh"}`` → ``{"access", "refresh"}``: rotating; the refresh token
  used is blacklisted, so it works exactly once. Refused (401) for a deactivated or deleted user.
* ``POST token/verify/`` — ``{"token"}`` → 200 ``{}`` when the signature and expiry are valid.
* ``POST logout/`` — ``{"refresh"}`` → 200 ``{}``: blacklists that refresh token.

Errors are JSON: 401 for a bad, expired or blacklisted token or bad credentials, 400 for a missing
field, 429 when throttled. Logout blacklists the refresh token only: the access token keeps working on
the hot reads until it expires; see docs/read-api.md.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.urls import path
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from tradingsite.authentication import token_user_id
from tradingsite.throttling import AuthIpThrottle, AuthUsernameThrottle

app_name = "auth"


class ActiveUserTokenRefreshSerializer(TokenRefreshSerializer):
    """SimpleJWT's refresh, refused for a deactivated or deleted user, and single-use under concurrency.

    SimpleJWT 5.5.1 checks ``is_active`` but answers a *deleted* user's refresh with an unhandled
    ``DoesNotExist`` (a 500); here both are a 401 ``no_active_account``. With rotation on, the used
    token is blacklisted through ``BlacklistedToken.get_or_create`` on its unique ``token`` column:
    of two concurrent refreshes with one token, only the request that created the blacklist row gets
    new tokens, the other is refused like a reused token.
    """

    default_error_messages = {
        "no_active_account": _("No active account found for the given token."),
        "reused": _("Token is blacklisted"),
    }

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])  # signature, expiry, type and blacklist checks
        user_id = token_user_id(refresh.payload)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(self.error_messages["no_active_account"], "no_active_account")

        data = {"access": str(refresh.access_token)}
        if api_settings.ROTATE_REFRESH_TOKENS:
            if api_settings.BLACKLIST_AFTER_ROTATION:
                _blacklisted, created = refresh.blacklist()
                if not created:  # another request used this token a moment ago
                    raise TokenError(self.error_messages["reused"])
            refresh.set_jti()
            refresh.set_exp()
            refresh.set_iat()
            refresh.outstand()
            data["refresh"] = str(refresh)
        return data


class ThrottledTokenObtainPairView(TokenObtainPairView):
    """``auth/token/``: SimpleJWT's obtain-pair view, throttled per IP and per username."""

    throttle_classes = [AuthIpThrottle, AuthUsernameThrottle]


class ActiveUserTokenRefreshView(TokenRefreshView):
    """``auth/token/refresh/``: rotating refresh, refused for inactive or deleted users."""

    serializer_class = ActiveUserTokenRefreshSerializer


class LogoutView(TokenBlacklistView):
    """``auth/logout/``: blacklist the given refresh token (the access token lives until it expires)."""


urlpatterns = [
    path("token/", ThrottledTokenObtainPairView.as_view(), name="token"),
    path("token/refresh/", ActiveUserTokenRefreshView.as_view(), name="token-refresh"),
    path("token/verify/", TokenVerifyView.as_view(), name="token-verify"),
    path("logout/", LogoutView.as_view(), name="logout"),
]
