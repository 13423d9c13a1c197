"""positions views: history, detail and registration (``positions/``)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin, money_context
from positions.filters import DealFilter, PositionFilter
from positions.models import Deal, Position
from positions.selectors import OPEN_POSITIONS, deal_list, open_positions, position_deals, position_history
from positions.serializers import (
    DealOutputSerializer,
    OpenPositionsOutputSerializer,
    OpenPositionsQuerySerializer,
    PositionOutputSerializer,
    PositionRegisterInputSerializer,
    PositionStopsInputSerializer,
)
from positions.services import position_declare_stops, position_register_named
from tradingsite.api import CreatedAtCursorPagination, UserScopedAPIView, UserScopedViewSet
from tradingsite.authentication import HOT_READ_AUTHENTICATION
from tradingsite.caching import page_cached


class TimeCursorPagination(CursorPagination):
    """Newest first on (time, id): deals are listed by when they happened at the broker."""

    ordering = ("-time", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema_view(list=extend_schema(parameters=[ACCOUNT_PARAMETER]))
class PositionViewSet(AccountScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, UserScopedViewSet):
    """``GET positions/`` (history, ``?status=&symbol=``, cursor-paginated newest first), ``GET positions/{id}/``,
    ``POST positions/`` (register a pending position → 201), ``PATCH positions/{id}/`` (declare a stop
    move: ``sl``/``tp``) and ``GET positions/{id}/deals/`` (the deals booked on the position).

    Authenticated against the database (the project default), so a deactivated user can neither
    register positions nor read its history with a still-valid token.
    """

    http_method_names = ["get", "post", "patch", "head", "options"]
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
        position = position_register_named(
            user_id=self.user_id,
            account_id=fields.pop("account", None),
            server=fields.pop("server", None),
            login=fields.pop("login", None),
            **fields,
        )
        return Response(PositionOutputSerializer(position).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PositionStopsInputSerializer, responses={200: PositionOutputSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Declare a stop move of an open or pending position: when a sync shows the declared sl/tp at the
        broker, the log says sl_updated/tp_updated and no divergence stays; an undeclared change is a
        divergence. 400 with field errors (nothing written) on bad input or a closed position."""
        serializer = PositionStopsInputSerializer(data=request.data)  # the body first: an oversized one is a 413
        serializer.is_valid(raise_exception=True)
        position = self.get_object()
        position = position_declare_stops(user_id=self.user_id, position_id=position.pk, **serializer.validated_data)
        return Response(PositionOutputSerializer(position).data)

    @extend_schema(responses=DealOutputSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def deals(self, request: Request, pk: str | None = None) -> Response:
        """The deals booked on this position (its lifecycle), oldest first."""
        position = self.get_object()
        return Response(
            DealOutputSerializer(position_deals(user_id=self.user_id, position_id=position.pk), many=True).data
        )


@extend_schema_view(list=extend_schema(parameters=[ACCOUNT_PARAMETER]))
class DealViewSet(AccountScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, UserScopedViewSet):
    """``GET deals/?account=`` (cursor-paginated newest first; ``?symbol=&type=&entry=&position_id=&since=
    &until=``) and ``GET deals/{id}/``: the account's MT5 deals, trades and balance operations."""

    serializer_class = DealOutputSerializer
    filterset_class = DealFilter
    pagination_class = TimeCursorPagination

    def get_scoped_queryset(self) -> QuerySet[Deal]:
        return deal_list(user_id=self.user_id, account_id=self.request_account_id(required=self.action == "list"))


class OpenPositionsView(AccountScopedMixin, UserScopedAPIView):
    """``GET positions/open/?symbol=``: the user's open positions valued in the account currency.

    A hot read: page-cached for ``API_CACHE_TTL_S`` after authentication (stateless JWT, no SQL), and
    backed by the per-user data cache, so a hit on either layer runs no SQL.
    """

    authentication_classes = HOT_READ_AUTHENTICATION

    @extend_schema(
        parameters=[ACCOUNT_PARAMETER, OpenPositionsQuerySerializer], responses=OpenPositionsOutputSerializer
    )
    @page_cached(OPEN_POSITIONS)
    def get(self, request: Request) -> Response:
        query = OpenPositionsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = self.request_account()
        data = open_positions(
            user_id=self.user_id,
            account_id=account["id"] if account else None,
            symbol=query.validated_data.get("symbol") or None,
        )
        return Response(OpenPositionsOutputSerializer(data, context=money_context(account)).data)
