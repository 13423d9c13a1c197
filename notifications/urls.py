"""URL routes of the notifications API (mounted at /api/v1/): webhook endpoints and the event stream."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from notifications.stream import event_stream
from notifications.views import WebhookEndpointViewSet

app_name = "notifications"

router = SimpleRouter()
router.register("webhooks", WebhookEndpointViewSet, basename="webhook")

urlpatterns = [
    path("events/stream/", event_stream, name="event-stream"),
    *router.urls,
]
