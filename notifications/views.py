"""notifications views: the user's webhook endpoints (``webhooks/``) and the SSE stream (``events/stream/``)."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.request import Request
from rest_framework.response import Response

from notifications.models import WebhookEndpoint
from notifications.selectors import endpoint_list
from notifications.serializers import WebhookEndpointCreatedSerializer, WebhookEndpointSerializer
from notifications.services import endpoint_create, endpoint_update
from tradingsite.api import CreatedAtCursorPagination, UserScopedViewSet


class WebhookEndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, UserScopedViewSet
):
    """``webhooks/``: list, create, read, PATCH and delete the user's webhook endpoints.

    Each delivery is a POST of the event's JSON with ``Tradingsite-Signature: t=<unix>,v1=<hex>``,
    where v1 is HMAC-SHA256 keyed by the endpoint's secret over "<t>." followed by the raw body.
    Another user's endpoint is a 404. Authenticated against the database (the default classes).
    """

    serializer_class = WebhookEndpointSerializer
    pagination_class = CreatedAtCursorPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_scoped_queryset(self) -> QuerySet[WebhookEndpoint]:
        return endpoint_list(user_id=self.user_id)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "user_id": self.user_id}

    @extend_schema(request=WebhookEndpointSerializer, responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request: Request) -> Response:
        """Create an endpoint; the response carries its signing secret, shown this once only."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_create(user_id=self.user_id, **serializer.validated_data)
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=WebhookEndpointSerializer, responses=WebhookEndpointSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Change url, event_types, min_level, active or description (400 with field errors on bad input)."""
        data = request.data  # parsed first: an oversized body is a 413 whatever the id
        endpoint = self.get_object()
        serializer = self.get_serializer(endpoint, data=data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint = endpoint_update(endpoint=endpoint, **serializer.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)
