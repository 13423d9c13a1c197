"""The ``?account=`` query parameter every read endpoint takes (views of every app use this mixin)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter

from accounts.selectors import account_resolve

ACCOUNT_PARAMETER = OpenApiParameter(
    "account",
    int,
    description=(
        "Account id (from GET accounts/). Optional when you hold one account; with several, leave it out "
        "and the answer is a 400 that lists them. Another user's account id is a 404."
    ),
)
_UNSET = object()


class AccountScopedMixin:
    """For ``UserScopedViewSet``/``UserScopedAPIView`` subclasses: :meth:`request_account` resolves
    ``?account=`` against the requesting user's accounts (``accounts.selectors.account_resolve``)."""

    def request_account(self, *, required: bool = True) -> dict[str, Any] | None:
        """Return the account the query names (``{"id", "server", "login", "currency", "currency_digits"}``),
        the user's single account when it names none, or None when the user has no account yet.

        ``required`` False (a detail route): without the parameter, None — no account narrowing.
        Raises ``Http404`` for an id that is not one of the user's accounts, ``ValidationError`` (400)
        when the user has several and ``required`` is True.
        """
        if getattr(self, "swagger_fake_view", False):
            return None
        cached = getattr(self, "_request_account", _UNSET)
        if cached is not _UNSET:
            return cached
        raw = self.request.query_params.get("account")
        if not required and raw in (None, ""):
            return None
        account = account_resolve(user_id=self.user_id, account=raw)
        self._request_account = account
        return account

    def request_account_id(self, *, required: bool = True) -> int | None:
        """The id of :meth:`request_account`, or None."""
        account = self.request_account(required=required)
        return account["id"] if account else None
