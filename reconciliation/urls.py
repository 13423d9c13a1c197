"""URL routes of the reconciliation API (mounted at /api/v1/reconciliation/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from reconciliation.views import SyncCreateView

app_name = "reconciliation"

router = SimpleRouter()

urlpatterns = [
    path("syncs/", SyncCreateView.as_view(), name="sync"),
    *router.urls,
]
