"""API plumbing shared by every app: the user-scoped base viewset, pagination, errors.

Scoping is by construction (PostHog's ``TeamAndOrgViewSetMixin`` pattern): a viewset
implements :meth:`UserScopedViewSet.get_scoped_queryset`; it may not define ``get_queryset`` or
``get_object`` (class creation raises ``TypeError``), and the base always re-applies the owner
filter, so filters, cursors and ordering can only narrow what the user owns. Another user's object
is therefore a 404, never a 403.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime
from decimal import ROUND_HALF_UP
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme, SimpleJWTStatelessUserScheme
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import GenericViewSet

from tradingsite.observability import current

logger = logging.getLogger("tradingsite.api")


# --------------------------------------------------------------------------------------------
# Domain errors mapped to HTTP by exception_handler
# --------------------------------------------------------------------------------------------
class Conflict(exceptions.APIException):
    """409: the request conflicts with the current state (e.g. a sync older than the last one)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class DatabaseUnavailable(exceptions.APIException):
    """503: the database could not be reached (e.g. while PostgreSQL restarts); the client should retry."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is temporarily unavailable; retry shortly."
    default_code = "database_unavailable"


class LockTimeout(exceptions.APIException):
    """429: a database lock wait passed ``DB_LOCK_TIMEOUT_MS`` (another request of the account holds the row).

    Retryable after ``Retry-After`` seconds; nothing was written. Not a 503: the database is up.
    """

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Another request of this account is being processed; retry shortly."
    default_code = "lock_timeout"


# SQLSTATE of a lock wait cut by PostgreSQL's lock_timeout (class 55, "object not in prerequisite state").
LOCK_NOT_AVAILABLE = "55P03"


def is_lock_timeout(exc: BaseException) -> bool:
    """True for PostgreSQL's ``lock_timeout`` (SQLSTATE 55P03) and SQLite's "database is locked" wait timeout."""
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == LOCK_NOT_AVAILABLE:
        return True
    return "database is locked" in str(exc)


class PayloadTooLarge(exceptions.APIException):
    """413: the request body is larger than the endpoint accepts."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def request_user_id(request: Request | HttpRequest) -> int:
    """Return the authenticated user's id as an int.

    SimpleJWT's stateless ``TokenUser`` carries the id as a string, a session user
    as an int; scoping always filters on ``user_id`` with this value. A correctly signed token whose
    ``user_id`` claim is not an integer raises ``AuthenticationFailed`` (401), not a 500.
    """
    pk: Any = request.user.pk
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise exceptions.AuthenticationFailed("Token contained no recognizable user identification.") from None


# --------------------------------------------------------------------------------------------
# Base viewset
# --------------------------------------------------------------------------------------------
class UserScopedViewSet(GenericViewSet):
    """Base for every API viewset: authenticated, and every queryset filtered to the requesting user.

    Subclasses implement ``get_scoped_queryset()`` (usually by calling a selector). Defining
    ``get_queryset``, ``get_object`` or ``get_permissions`` raises ``TypeError`` at import.
    """

    permission_classes = [IsAuthenticated]
    owner_field = "user_id"
    lookup_value_regex = r"[0-9]+"

    _FORBIDDEN_OVERRIDES = ("get_queryset", "get_object", "get_permissions")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._FORBIDDEN_OVERRIDES:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}(); implement get_scoped_queryset() instead "
                    "(user scoping is applied by UserScopedViewSet)."
                )

    @property
    def user_id(self) -> int:
        """The requesting user's id (int); 0 (nobody) while drf-spectacular inspects the view."""
        if getattr(self, "swagger_fake_view", False):
            return 0
        return request_user_id(self.request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """After authentication, read a write's body before any lookup: an oversized body is a 413 even on
        a detail route whose id is not the user's (the lookup's 404 would otherwise answer first)."""
        super().initial(request, *args, **kwargs)
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            request.data  # noqa: B018 - parsing is the point (RequestDataTooBig → 413)

    def get_scoped_queryset(self) -> QuerySet:
        """Return the queryset for this viewset; the base filters it to the user again."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_scoped_queryset()")

    def get_queryset(self) -> QuerySet:
        queryset = self.get_scoped_queryset()
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular schema generation: no user
            return queryset.none()
        # Belt and braces: the selector scopes, and the base re-applies the owner filter.
        return queryset.filter(**{self.owner_field: self.user_id})

    def get_object(self) -> Any:
        return super().get_object()

    def get_permissions(self) -> list:
        # IsAuthenticated is always first, whatever a subclass lists.
        extra = [permission() for permission in self.permission_classes if permission is not IsAuthenticated]
        return [IsAuthenticated(), *extra]


class UserScopedAPIView(APIView):
    """Base for API views that answer from selectors rather than a queryset (aggregates, the user's config).

    Same guarantees as :class:`UserScopedViewSet`: ``IsAuthenticated`` always applies (defining
    ``get_permissions`` raises ``TypeError`` at import), and the only identity a handler gets is
    :attr:`user_id`, the authenticated user's id, which it passes to a selector or service as
    ``user_id=``. There is no queryset, lookup, filter or cursor through which a request could
    name another user's data.
    """

    permission_classes = [IsAuthenticated]

    _FORBIDDEN_OVERRIDES = ("get_permissions",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._FORBIDDEN_OVERRIDES:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} must not override {name}(); IsAuthenticated is applied by UserScopedAPIView."
                )

    @property
    def user_id(self) -> int:
        """The requesting user's id (int); 0 (nobody) while drf-spectacular inspects the view."""
        if getattr(self, "swagger_fake_view", False):
            return 0
        return request_user_id(self.request)

    def get_permissions(self) -> list:
        extra = [permission() for permission in self.permission_classes if permission is not IsAuthenticated]
        return [IsAuthenticated(), *extra]


class DatabaseJWTScheme(SimpleJWTScheme):
    """OpenAPI security scheme of :class:`tradingsite.authentication.DatabaseJWTAuthentication` (bearer JWT)."""

    target_class = "tradingsite.authentication.DatabaseJWTAuthentication"


class StatelessJWTScheme(SimpleJWTStatelessUserScheme):
    """OpenAPI security scheme of the stateless JWT class under a name of its own.

    The hot reads authenticate with :class:`tradingsite.authentication.StatelessJWTAuthentication`
    (no SQL), the other views with the database-checked class; drf-spectacular would name both
    "jwtAuth" and warn about the clash. Both are the same bearer token on the wire.
    """

    target_class = "tradingsite.authentication.StatelessJWTAuthentication"
    name = "jwtStatelessAuth"
    priority = 1


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def rounded_decimal(**kwargs: Any) -> serializers.DecimalField:
    """A read-only decimal rendered as a string rounded half-up to 2 dp (money, percent, pips).

    Values stay unrounded ``Decimal`` everywhere else; this is the "round only when rendering" rule.
    """
    return serializers.DecimalField(max_digits=None, decimal_places=2, rounding=ROUND_HALF_UP, read_only=True, **kwargs)


def price_decimal(**kwargs: Any) -> serializers.DecimalField:
    """A read-only price rendered as a string with the 8 decimal places the models store."""
    return serializers.DecimalField(max_digits=20, decimal_places=8, read_only=True, **kwargs)


# --------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------
class CreatedAtCursorPagination(CursorPagination):
    """Newest first on (created_at, id): no COUNT, constant time, stable under inserts."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class MergedCursorPagination:
    """Newest-first cursor pagination over several tables shown as one stream (e.g. two alert models).

    ``paginate(request, sources)`` takes ``[(kind, queryset), ...]`` — each queryset already scoped
    to the user — and returns ``[(kind, obj), ...]`` ordered by (``created_at``, ``kind``, ``id``)
    descending. Each page reads at most ``page_size + 1`` rows per source with the same
    (user, created_at, id) index as :class:`CreatedAtCursorPagination`, no COUNT and no offset. The
    opaque ``cursor`` encodes the last row's (created_at, kind, id); a tampered cursor is a 404,
    and since it is only ever applied on top of the scoped querysets it cannot widen the scope.
    Forward only: ``previous`` is always null.
    """

    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"
    invalid_cursor_message = "Invalid cursor"

    def paginate(self, request: Request, sources: list[tuple[str, QuerySet]]) -> list[tuple[str, Any]]:
        """Return this page's ``(kind, obj)`` pairs; remembers the next link for :meth:`get_paginated_response`."""
        self.request = request
        size = self._page_size(request)
        position = self._decode(request.query_params.get(self.cursor_query_param))
        rows: list[tuple[str, Any]] = []
        for kind, queryset in sources:
            if position is not None:
                queryset = queryset.filter(self._older_than(kind, position))
            rows.extend((kind, obj) for obj in queryset.order_by("-created_at", "-id")[: size + 1])
        rows.sort(key=lambda row: (row[1].created_at, row[0], row[1].pk), reverse=True)
        page = rows[:size]
        self.next_position = (page[-1][1].created_at, page[-1][0], page[-1][1].pk) if len(rows) > size else None
        return page

    def get_paginated_response(self, results: list[Any]) -> Response:
        """``{"next": url | null, "previous": null, "results": [...]}``, the shape of DRF's cursor pages."""
        return Response({"next": self._next_link(), "previous": None, "results": results})

    def _page_size(self, request: Request) -> int:
        try:
            size = int(request.query_params[self.page_size_query_param])
        except (KeyError, ValueError):
            return self.page_size
        return min(max(size, 1), self.max_page_size)

    @staticmethod
    def _older_than(kind: str, position: tuple[datetime, str, int]) -> Q:
        created_at, position_kind, pk = position
        older = Q(created_at__lt=created_at)
        if kind < position_kind:
            return older | Q(created_at=created_at)
        if kind == position_kind:
            return older | Q(created_at=created_at, pk__lt=pk)
        return older

    def _decode(self, cursor: str | None) -> tuple[datetime, str, int] | None:
        if not cursor:
            return None
        try:
            created_at, kind, pk = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
            when = datetime.fromisoformat(created_at)
            if when.tzinfo is None or not isinstance(kind, str) or not isinstance(pk, int):
                raise ValueError(cursor)
        except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
            raise exceptions.NotFound(self.invalid_cursor_message) from exc
        return when, kind, pk

    def _next_link(self) -> str | None:
        if self.next_position is None:
            return None
        created_at, kind, pk = self.next_position
        token = base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), kind, pk]).encode()).decode("ascii")
        return replace_query_param(self.request.build_absolute_uri(), self.cursor_query_param, token)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: Django ``ValidationError`` → 400 with field errors, 404/401 as JSON.

    A lock wait past ``DB_LOCK_TIMEOUT_MS`` is a 429 with ``Retry-After`` (:class:`LockTimeout`); any
    other ``OperationalError``/``InterfaceError`` (a lost or refused connection) is a 503 with
    ``Retry-After: 1``. Anything else unhandled is logged with its traceback and answered with a JSON
    500 that carries the request id and no trace.
    """
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail=detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):  # DRF reads request.body: Django's 1 MiB check raises here
        exc = PayloadTooLarge(f"Request body over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, SuspiciousOperation):  # Django answers these 400, never 500
        exc = exceptions.ParseError("Bad request.")
    elif isinstance(exc, RecursionError):  # json.loads on a body like [[[[…]]]] nested thousands deep
        exc = exceptions.ParseError("JSON parse error - nested too deeply.")
    if isinstance(exc, OperationalError) and is_lock_timeout(exc):
        logger.warning("lock wait timed out", extra={"event": "lock_timeout"})
        response = drf_exception_handler(LockTimeout(), context)
        assert response is not None  # an APIException always gets a response
        response["Retry-After"] = str(settings.LOCK_TIMEOUT_RETRY_AFTER_S)
        return response
    if isinstance(exc, (OperationalError, InterfaceError)):
        # Connection lost or refused (PostgreSQL restarting, pool timeout): retryable, not a bug.
        logger.warning("database unavailable: %s", type(exc).__name__, extra={"event": "database_unavailable"})
        response = drf_exception_handler(DatabaseUnavailable(), context)
        assert response is not None  # an APIException always gets a response
        response["Retry-After"] = "1"
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in %s", type(context.get("view")).__name__, exc_info=exc)
        return Response(_server_error_body(), status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return response


def _server_error_body() -> dict[str, str]:
    state = current()
    return {"detail": "Internal server error.", "request_id": state.request_id if state else "-"}


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """``handler500``: a JSON body with the request id, never a trace."""
    return JsonResponse(_server_error_body(), status=500)


def bad_request(request: HttpRequest, exception: Exception, *args: Any, **kwargs: Any) -> JsonResponse:
    """``handler400``: JSON instead of Django's HTML page."""
    return JsonResponse({"detail": "Bad request."}, status=400)


def not_found(request: HttpRequest, exception: Exception, *args: Any, **kwargs: Any) -> HttpResponse:
    """``handler404``: a JSON 404 under ``/api/`` (e.g. ``positions/abc/``, which no route matches);
    Django's own page elsewhere (admin)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception, *args, **kwargs)
