"""API plumbing shared by every app: the user-scoped base viewset, pagination, errors.

Scoping is by construction (PostHog's ``TeamAndOrgViewSetMixin`` pattern, STYLE.md §5): a viewset
implements :meth:`UserScopedViewSet.get_scoped_queryset`; it may not define ``get_queryset`` or
``get_object`` (class creation raises ``TypeError``), and the base always re-applies the owner
filter, so filters, cursors and ordering can only narrow what the user owns. Another user's object
is therefore a 404, never a 403.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
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


class PayloadTooLarge(exceptions.APIException):
    """413: the request body is larger than the endpoint accepts."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def request_user_id(request: Request | HttpRequest) -> int:
    """Return the authenticated user's id as an int.

    SimpleJWT's stateless ``TokenUser`` carries the id as a string (PITFALLS §4.1), a session user
    as an int; scoping always filters on ``user_id`` with this value.
    """
    return int(request.user.pk)


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
        """The requesting user's id (int)."""
        return request_user_id(self.request)

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


# --------------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------------
class CreatedAtCursorPagination(CursorPagination):
    """Newest first on (created_at, id): no COUNT, constant time, stable under inserts (PITFALLS §5.2)."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: Django ``ValidationError`` → 400 with field errors, 404/401 as JSON.

    Anything unhandled is logged with its traceback and answered with a JSON 500 that carries the
    request id and no trace.
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
