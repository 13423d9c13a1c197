"""URL routes of the reconciliation API (mounted at /api/v1/reconciliation/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from reconciliation.views import ReconciliationLogViewSet, ReconciliationStatusView, SyncCreateView

app_name = "reconciliation"

router = SimpleRouter()
router.register("logs", ReconciliationLogViewSet, basename="log")

urlpatterns = [
    path("syncs/", SyncCreateView.as_view(), name="sync"),
    path("status/", ReconciliationStatusView.as_view(), name="status"),
    *router.urls,
]
