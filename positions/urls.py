"""URL routes of the positions API (mounted at /api/v1/positions/).

Explicit paths (e.g. ``open/``) go BEFORE the router's, so they are not taken for a detail id.
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from positions.views import OpenPositionsView, PositionViewSet

app_name = "positions"

router = SimpleRouter()
router.register("", PositionViewSet, basename="position")

urlpatterns = [
    path("open/", OpenPositionsView.as_view(), name="open"),
    *router.urls,
]
