"""URL routes of the guards API (mounted at /api/v1/guards/): status, alerts (history), config, loss rules and
per-instrument rules."""

from django.urls import path, re_path
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
    # an MT5 symbol name (as the sync's symbols are checked): a letter, digit or #, then the broker suffix
    # marks . _ # - +, at most 32 characters; anything else is no route (404)
    re_path(
        r"^instruments/(?P<symbol>[A-Za-z0-9#][A-Za-z0-9._#+\-]{0,31})/$",
        InstrumentGuardDetailView.as_view(),
        name="instrument",
    ),
    *router.urls,
]
