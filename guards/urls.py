"""URL routes of the guards API (mounted at /api/v1/guards/): status, alerts (history), config and loss rules."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from guards.rule_views import LossRuleViewSet
from guards.views import AlertViewSet, GuardConfigView, GuardStatusView

app_name = "guards"

router = SimpleRouter()
router.register("alerts", AlertViewSet, basename="alert")
router.register("rules", LossRuleViewSet, basename="rule")

urlpatterns = [
    path("status/", GuardStatusView.as_view(), name="status"),
    path("config/", GuardConfigView.as_view(), name="config"),
    *router.urls,
]
