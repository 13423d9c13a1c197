"""URL routes of the guards API (mounted at /api/v1/guards/)."""

from django.urls import path  # noqa: F401
from rest_framework.routers import SimpleRouter

app_name = "guards"

router = SimpleRouter()

urlpatterns = [*router.urls]
