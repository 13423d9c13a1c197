"""URL routes of the reconciliation API (mounted at /api/v1/reconciliation/)."""

from django.urls import path  # noqa: F401
from rest_framework.routers import SimpleRouter

app_name = "reconciliation"

router = SimpleRouter()

urlpatterns = [*router.urls]
