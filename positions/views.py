"""positions views: history, detail and registration (SPEC §6 ``positions/``)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin
from accounts.services import account_for_write
from positions.filters import PositionFilter
from positions.models import Position
from positions.selectors import open_positions, position_history
from positions.serializers import (
    OpenPositionsOutputSerializer,
    OpenPositionsQuerySerializer,
    PositionOutputSerializer,
    PositionRegisterInputSerializer,
)
from positions.services import position_register
from tradingsite.api import CreatedAtCursorPagination, UserScopedAPIView, UserScopedViewSet
from tradingsite.authentication import HOT_READ_AUTHENTICATION
from tradingsite.caching import page_cached


@extend_schema_view(list=extend_schema(parameters=[ACCOUNT_PARAMETER]))
class PositionViewSet(AccountScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, UserScopedViewSet):
    """``GET positions/`` (history, ``?status=&symbol=``, cursor-paginated newest first), ``GET positions/{id}/``
    and ``POST positions/`` (register a pending position → 201).
    """

    serializer_class = PositionOutputSerializer
    filterset_class = PositionFilter
    pagination_class = CreatedAtCursorPagination

    def get_scoped_queryset(self) -> QuerySet[Position]:
        return position_history(
            user_id=self.user_id, account_id=self.request_account_id(required=self.action == "list")
        )

    @extend_schema(request=PositionRegisterInputSerializer, responses={201: PositionOutputSerializer})
    def create(self, request: Request) -> Response:
        """Register a position the bot expects; 400 with field errors, nothing written, on bad input."""
        serializer = PositionRegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        account = account_for_write(
            user_id=self.user_id,
            account_id=fields.pop("account", None),
            server=fields.pop("server", None),
            login=fields.pop("login", None),
        )
        position = position_register(user_id=self.user_id, account=account, **fields)
        return Response(PositionOutputSerializer(position).data, status=status.HTTP_201_CREATED)


class OpenPositionsView(AccountScopedMixin, UserScopedAPIView):
    """``GET positions/open/?symbol=``: the user's open positions valued in the account currency (SPEC §4, §6).

    A hot read: page-cached for ``API_CACHE_TTL_S`` after authentication (stateless JWT, no SQL), and
    backed by the per-user data cache, so a hit on either layer runs no SQL (SPEC §7).
    """

    authentication_classes = HOT_READ_AUTHENTICATION

    @extend_schema(
        parameters=[ACCOUNT_PARAMETER, OpenPositionsQuerySerializer], responses=OpenPositionsOutputSerializer
    )
    @page_cached("positions:open")
    def get(self, request: Request) -> Response:
        query = OpenPositionsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = open_positions(
            user_id=self.user_id,
            account_id=self.request_account_id(),
            symbol=query.validated_data.get("symbol") or None,
        )
        return Response(OpenPositionsOutputSerializer(data).data)
