"""URL routes of the history API (mounted at /api/v1/): equity curve, daily realized P&L, statistics."""

from django.urls import path

from history.views import DailyPnlView, EquityView, StatsView

app_name = "history"

urlpatterns = [
    path("equity/", EquityView.as_view(), name="equity"),
    path("pnl/daily/", DailyPnlView.as_view(), name="pnl-daily"),
    path("stats/", StatsView.as_view(), name="stats"),
]
