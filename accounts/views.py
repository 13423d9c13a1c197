"""accounts views: ``GET accounts/``, the user's MT5 accounts with their latest figures."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.selectors import account_overview
from accounts.serializers import AccountOutputSerializer
from tradingsite.api import UserScopedAPIView


class AccountListView(UserScopedAPIView):
    """``GET accounts/``: the user's MT5 accounts (one per trade server and login), each with its latest
    balance, equity, currency and sync status. The ``id`` is the ``?account=`` every other read takes.

    Authenticated against the database, like the other non-cached reads.
    """

    @extend_schema(responses=AccountOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(AccountOutputSerializer(account_overview(user_id=self.user_id), many=True).data)
