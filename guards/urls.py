"""URL routes of the guards API (mounted at /api/v1/guards/): status, alerts (history), config, loss rules and
per-instrument rules."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from guards.instrument_views import InstrumentGuardDetailView, InstrumentGuardListView
from guards.rule_views import LossRuleViewSet
from guards.views import AlertViewSet, GuardConfigView, GuardStatusView

app_name = "guards"

router = SimpleRouter()
router.register("alerts", AlertViewSet, basename="alert")
router.register("rules", LossRuleViewSet, basename="rule")

urlpatterns = [
    path("status/", GuardStatusView.as_view(), name="status"),
    path("config/", GuardConfigView.as_view(), name="config"),
    path("instruments/", InstrumentGuardListView.as_view(), name="instruments"),
    path("instruments/<str:symbol>/", InstrumentGuardDetailView.as_view(), name="instrument"),
    *router.urls,
]
