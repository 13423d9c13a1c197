"""URL routes of the deals API (mounted at /api/v1/deals/)."""

from rest_framework.routers import SimpleRouter

from positions.views import DealViewSet

app_name = "deals"

router = SimpleRouter()
router.register("", DealViewSet, basename="deal")

urlpatterns = router.urls
