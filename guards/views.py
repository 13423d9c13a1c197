"""guards views: the guard state, the alert history and the thresholds (``guards/``)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin, money_context
from accounts.services import account_for_write
from guards.models import DrawdownAlert, GuardConfig, MarketAlert
from guards.selectors import GUARD_STATUS, drawdown_alert_list, guard_status, market_alert_list
from guards.serializers import (
    AlertQuerySerializer,
    DrawdownAlertSerializer,
    GuardConfigAccountSerializer,
    GuardConfigSerializer,
    GuardStatusOutputSerializer,
    MarketAlertSerializer,
)
from guards.services import guard_config_get_or_create, guard_config_update
from tradingsite.api import MergedCursorPagination, UserScopedAPIView, UserScopedViewSet
from tradingsite.authentication import HOT_READ_AUTHENTICATION
from tradingsite.caching import page_cached

ALERT_SERIALIZERS = {"drawdown": DrawdownAlertSerializer, "market": MarketAlertSerializer}


class GuardStatusView(AccountScopedMixin, UserScopedAPIView):
    """``GET guards/status/``: the guard levels the last sync stored; never recomputed here.

    A hot read: page-cached for ``API_CACHE_TTL_S`` after authentication (stateless JWT, no SQL), and
    backed by the per-user data cache, so a hit on either layer runs no SQL.
    """

    authentication_classes = HOT_READ_AUTHENTICATION

    @extend_schema(parameters=[ACCOUNT_PARAMETER], responses=GuardStatusOutputSerializer)
    @page_cached(GUARD_STATUS)
    def get(self, request: Request) -> Response:
        account = self.request_account()
        data = guard_status(user_id=self.user_id, account_id=account["id"] if account else None)
        return Response(GuardStatusOutputSerializer(data, context=money_context(account)).data)


class AlertViewSet(AccountScopedMixin, UserScopedViewSet):
    """``GET guards/alerts/``: the user's alert history, drawdown and market episodes in one stream, newest first.

    Each item is a ``DrawdownAlertSerializer`` or ``MarketAlertSerializer`` body plus ``kind``
    (``drawdown``/``market``). Filters (``AlertQuerySerializer``): ``kind``, ``level``, ``open``,
    ``symbol``, ``condition``, ``created_after``, ``created_before``; ``page_size`` ≤ 200; an opaque
    forward ``cursor``. Both tables are read through ``get_queryset``'s owner filter, so no parameter
    can widen the scope.
    """

    pagination_class = None  # MergedCursorPagination spans two tables; DRF's paginators take one queryset
    filter_backends: list = []

    def get_scoped_queryset(self) -> QuerySet[DrawdownAlert]:
        return drawdown_alert_list(user_id=self.user_id, account_id=self.request_account_id(), **self._common_filters())

    def market_queryset(self) -> QuerySet[MarketAlert]:
        """The market-alert source, with the same owner filter ``get_queryset`` applies."""
        query = getattr(self, "query", {})
        queryset = market_alert_list(
            user_id=self.user_id,
            account_id=self.request_account_id(),
            symbol=query.get("symbol"),
            condition=query.get("condition"),
            **self._common_filters(),
        )
        return queryset.filter(**{self.owner_field: self.user_id})

    def _common_filters(self) -> dict:
        query = getattr(self, "query", {})
        return {
            "level": query.get("level"),
            "is_open": query.get("open"),
            "created_after": query.get("created_after"),
            "created_before": query.get("created_before"),
        }

    @extend_schema(
        parameters=[
            ACCOUNT_PARAMETER,
            AlertQuerySerializer,
            OpenApiParameter("cursor", str, description="Opaque cursor from a page's next link."),
            OpenApiParameter("page_size", int, description="Alerts per page (capped at 200)."),
        ],
        # many=False: one page object, not drf-spectacular's default array for a list action
        responses=extend_schema_serializer(many=False)(  # type: ignore[type-var]  # drf-spectacular types it for classes
            inline_serializer(
                "AlertPage",
                {
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": serializers.ListField(child=serializers.DictField()),
                },
            )
        ),
    )
    def list(self, request: Request) -> Response:
        serializer = AlertQuerySerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        self.query = serializer.validated_data
        kind = self.query.get("kind")
        sources = []
        if kind in (None, "drawdown") and not (self.query.get("symbol") or self.query.get("condition")):
            sources.append(("drawdown", self.get_queryset()))
        if kind in (None, "market"):
            sources.append(("market", self.market_queryset()))
        paginator = MergedCursorPagination()
        page = paginator.paginate(request, sources)
        results = [{"kind": kind, **ALERT_SERIALIZERS[kind](alert).data} for kind, alert in page]
        return paginator.get_paginated_response(results)


class GuardConfigView(AccountScopedMixin, UserScopedAPIView):
    """``GET/PATCH guards/config/?account=``: the account's thresholds, created with defaults on first use.

    PATCH validates every pair (0 < warning < critical ≤ 100, drawdown ≥ 1) against the merged
    config: 400 with field errors and nothing written otherwise.
    """

    def config_account_id(self) -> int:
        """The account whose thresholds are meant; 400 before the user's first sync (no account yet)."""
        account_id = self.request_account_id()
        if account_id is None:
            raise ValidationError(
                {"account": ["No account yet: thresholds belong to an account, created by its first sync."]}
            )
        return account_id

    @extend_schema(parameters=[ACCOUNT_PARAMETER], responses=GuardConfigSerializer)
    def get(self, request: Request) -> Response:
        """The account's thresholds; before the first sync (no account yet) the defaults that will apply."""
        account_id = self.request_account_id()
        if account_id is None:
            return Response(GuardConfigSerializer(GuardConfig()).data)
        config = guard_config_get_or_create(user_id=self.user_id, account_id=account_id)
        return Response(GuardConfigSerializer(config).data)

    @extend_schema(parameters=[ACCOUNT_PARAMETER], request=GuardConfigSerializer, responses=GuardConfigSerializer)
    def patch(self, request: Request) -> Response:
        """Change thresholds of the account ``?account=`` names (default: the single account), or of the
        account the body names by ``server`` and ``login`` (created when unseen, as a sync would)."""
        named = GuardConfigAccountSerializer(data=request.data)
        named.is_valid(raise_exception=True)
        if named.validated_data and not request.query_params.get("account"):
            with transaction.atomic():
                account = account_for_write(user_id=self.user_id, **named.validated_data)
                return self._patch(request, account.pk)
        return self._patch(request, self.config_account_id())

    def _patch(self, request: Request, account_id: int) -> Response:
        config = guard_config_get_or_create(user_id=self.user_id, account_id=account_id)
        serializer = GuardConfigSerializer(instance=config, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        config = guard_config_update(user_id=self.user_id, account_id=account_id, **serializer.validated_data)
        return Response(GuardConfigSerializer(config).data)
