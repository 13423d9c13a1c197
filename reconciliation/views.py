"""reconciliation views: the sync endpoint; read views (status, logs) live beside it."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.exceptions import APIException, NotAuthenticated, ParseError
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import AuthenticationFailed

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin
from reconciliation.filters import ReconciliationLogFilter
from reconciliation.models import ReconciliationLog
from reconciliation.selectors import RECONCILIATION_STATUS, log_list, reconciliation_status
from reconciliation.serializers import (
    ReconciliationLogSerializer,
    ReconciliationStatusOutputSerializer,
    SyncInputSerializer,
)
from reconciliation.services import SyncOutOfOrder, sync_ingest
from tradingsite.api import (
    Conflict,
    CreatedAtCursorPagination,
    PayloadTooLarge,
    UserScopedAPIView,
    UserScopedViewSet,
)
from tradingsite.authentication import HOT_READ_AUTHENTICATION, SYNC_AUTHENTICATION
from tradingsite.caching import page_cached
from tradingsite.db import UserInactive
from tradingsite.schema import DETAIL_BODY
from tradingsite.throttling import SyncThrottle, sync_slot


class SizeLimitedJSONParser(BaseParser):
    """JSON parser that refuses bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with 413 (JSON body).

    Not a ``JSONParser`` subclass on purpose: DRF hands such parsers ``request.body``, whose size
    check raises Django's ``RequestDataTooBig`` (a 500 under DRF); this parser gets the raw stream
    and checks both the declared ``Content-Length`` and the bytes actually read. NaN/Infinity
    literals are rejected (strict JSON).
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        try:
            if declared and int(declared) > limit:
                raise PayloadTooLarge(f"Request body over {limit} bytes.")
        except ValueError as exc:
            raise ParseError("Invalid Content-Length.") from exc
        if stream is None:
            return None
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body over {limit} bytes.")
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


class SyncCreateView(UserScopedAPIView):
    """``POST /api/v1/reconciliation/syncs/``: ingest one broker snapshot.

    201 with the sync summary on a new sync; 200 with the stored summary when the ``sync_id`` was
    already accepted; 400 with field errors on bad input; 409 when ``broker_time`` is older than the
    latest accepted sync; 413 over 1 MiB; 411 for a chunked body without Content-Length; 429 with
    Retry-After past the per-user rate, while ``SYNC_MAX_IN_FLIGHT`` syncs of the user are being
    processed, or when a database lock wait passed ``DB_LOCK_TIMEOUT_MS``. Nothing is written on
    any error.
    """

    # The stateless JWT (no SQL); is_active is read in the user row the sync locks anyway
    # (reconciliation.services._lock_account): a deactivated or deleted user is still a 401.
    authentication_classes = SYNC_AUTHENTICATION
    throttle_classes = [SyncThrottle]
    parser_classes = [SizeLimitedJSONParser]
    serializer_class = SyncInputSerializer

    def handle_exception(self, exc: Exception) -> Response:
        # A request refused before the sync read the user's row (bad body, too large, throttled, out of
        # order…) was checked against the stateless token alone: a deactivated or deleted user gets the
        # same 401 as from the sync's locked row and every other write (one query, on error paths only).
        user: Any = getattr(self.request, "_user", None)
        refused = isinstance(exc, APIException | DjangoValidationError)  # not a database or server error
        if (
            refused
            and getattr(user, "is_authenticated", False)
            and not isinstance(exc, AuthenticationFailed | NotAuthenticated)
        ):
            try:
                if not get_user_model().objects.filter(pk=user.pk, is_active=True).exists():
                    exc = _user_inactive()
            except DatabaseError:  # the database is unreachable: answer the original refusal
                pass
        return super().handle_exception(exc)

    @extend_schema(
        request=SyncInputSerializer,
        responses={
            201: OpenApiResponse(OpenApiTypes.OBJECT, description="A new sync: its summary."),
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="A replayed sync_id: the stored summary."),
            409: OpenApiResponse(DETAIL_BODY, description="broker_time older than the latest accepted sync."),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            body = request.data
        except RequestDataTooBig as exc:  # the body was already read through Django (request.body)
            raise PayloadTooLarge() from exc
        serializer = SyncInputSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        try:
            with sync_slot(self.user_id):
                result = sync_ingest(user_id=self.user_id, data=serializer.validated_data)
        except SyncOutOfOrder as exc:
            raise Conflict(str(exc)) from exc
        except UserInactive as exc:
            raise _user_inactive() from exc
        return Response(result.summary, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _user_inactive() -> AuthenticationFailed:
    """SimpleJWT's own 401 for a token of a deactivated user (``JWTAuthentication.get_user``)."""
    return AuthenticationFailed(str(_("User is inactive")), code="user_inactive")


class ReconciliationStatusView(AccountScopedMixin, UserScopedAPIView):
    """``GET reconciliation/status/``: the user's reconciliation health.

    A hot read: page-cached for ``API_CACHE_TTL_S`` after authentication (stateless JWT, no SQL), and
    backed by the per-user data cache, so a hit on either layer runs no SQL.
    """

    authentication_classes = HOT_READ_AUTHENTICATION

    @extend_schema(parameters=[ACCOUNT_PARAMETER], responses=ReconciliationStatusOutputSerializer)
    @page_cached(RECONCILIATION_STATUS)
    def get(self, request: Request) -> Response:
        data = reconciliation_status(user_id=self.user_id, account_id=self.request_account_id())
        return Response(ReconciliationStatusOutputSerializer(data).data)


@extend_schema_view(list=extend_schema(parameters=[ACCOUNT_PARAMETER]))
class ReconciliationLogViewSet(AccountScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, UserScopedViewSet):
    """``GET reconciliation/logs/`` (newest first, cursor-paginated, filters in ``ReconciliationLogFilter``)
    and ``GET reconciliation/logs/{id}/``; another user's row is a 404.
    """

    serializer_class = ReconciliationLogSerializer
    filterset_class = ReconciliationLogFilter
    pagination_class = CreatedAtCursorPagination

    def get_scoped_queryset(self) -> QuerySet[ReconciliationLog]:
        return log_list(user_id=self.user_id, account_id=self.request_account_id(required=self.action == "list"))
