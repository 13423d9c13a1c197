"""URL routes of the positions API (mounted at /api/v1/positions/)."""

from django.urls import path  # noqa: F401
from rest_framework.routers import SimpleRouter

app_name = "positions"

router = SimpleRouter()

urlpatterns = [*router.urls]
