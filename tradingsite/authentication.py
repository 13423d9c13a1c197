"""JWT authentication classes.

Classes (``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]`` and :data:`HOT_READ_AUTHENTICATION`):

* :class:`DatabaseJWTAuthentication`, the default: loads the user row on every request, so a
  deactivated or deleted user is refused (401) at once, on every view that does not opt out.
* :class:`StatelessJWTAuthentication`: the user from the token's claims, no SQL. Only the three hot
  reads use it, by name (reconciliation status, open positions, guard status): a deactivated user
  keeps reading those until the access token expires (``JWT_ACCESS_LIFETIME_S``). The sync uses it
  too (:data:`SYNC_AUTHENTICATION`), but checks ``is_active`` in the user row it locks, so a
  deactivated user's sync is refused (401) at once, as with the default class.

Both refuse (401) a signed token whose ``user_id`` claim is not an integer: ``"abc"``, ``"1.0"``,
``[1]``, ``{}``, ``1.9``, ``true``. A positive int or a string of ASCII digits (SimpleJWT writes a
string for non-int primary keys) is accepted.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import SessionAuthentication
from rest_framework_simplejwt.authentication import JWTAuthentication, JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings

# Largest primary key a bigint column holds; a longer digit string cannot name a user.
_MAX_USER_ID = 2**63 - 1


def token_user_id(payload: Any) -> int:
    """The ``user_id`` claim of a validated token as a positive int; ``InvalidToken`` (401) otherwise.

    Accepted: an int (not a bool) or a string of ASCII digits, in 1..2^63-1. Everything else —
    ``"abc"``, ``"1.0"``, ``[1]``, ``{}``, ``1.9``, ``true``, a missing claim — is refused, so no
    claim is coerced into another user's id (``int(1.9)`` and ``int(True)`` are both 1).
    """
    claim = payload.get(api_settings.USER_ID_CLAIM) if hasattr(payload, "get") else None
    if type(claim) is int:
        user_id = claim
    elif isinstance(claim, str) and claim.isascii() and claim.isdigit() and len(claim) <= 19:
        user_id = int(claim)
    else:
        raise InvalidToken(str(_("Token contained no recognizable user identification")))
    if not 0 < user_id <= _MAX_USER_ID:
        raise InvalidToken(str(_("Token contained no recognizable user identification")))
    return user_id


class DatabaseJWTAuthentication(JWTAuthentication):
    """SimpleJWT's ``JWTAuthentication`` (user row loaded, ``is_active`` checked) with a strict ``user_id`` claim."""

    def get_user(self, validated_token: Any) -> Any:
        token_user_id(validated_token)
        return super().get_user(validated_token)


class StatelessJWTAuthentication(JWTStatelessUserAuthentication):
    """SimpleJWT's stateless class (no SQL: a ``TokenUser`` from the claims) with a strict ``user_id`` claim."""

    def get_user(self, validated_token: Any) -> Any:
        token_user_id(validated_token)
        return super().get_user(validated_token)


# The hot reads' authentication, named on those three views only; every other view gets the default.
HOT_READ_AUTHENTICATION = [StatelessJWTAuthentication, SessionAuthentication]
# The sync's: stateless too, because the sync reads is_active in the user row it locks first
# (reconciliation.services; a deactivated or deleted user is refused there with the same 401).
SYNC_AUTHENTICATION = [StatelessJWTAuthentication, SessionAuthentication]
