"""URL routes of the history API (mounted at /api/v1/): equity curve, realized P&L (total and daily), statistics."""

from django.urls import path

from history.views import DailyPnlView, EquityView, PnlView, StatsView

app_name = "history"

urlpatterns = [
    path("equity/", EquityView.as_view(), name="equity"),
    path("pnl/", PnlView.as_view(), name="pnl"),
    path("pnl/daily/", DailyPnlView.as_view(), name="pnl-daily"),
    path("stats/", StatsView.as_view(), name="stats"),
]
