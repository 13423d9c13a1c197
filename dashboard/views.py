"""dashboard views: ``/`` for a session-logged-in user (others are sent to the login page)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts.selectors import account_refs, account_resolve
from dashboard.selectors import dashboard_panels
from notifications.selectors import latest_event_id
from tradingsite.api import request_user_id

RANGES = {"6h": ("5m", 6), "1d": ("5m", 24), "7d": ("1h", 168), "30d": ("1d", 720)}


@never_cache
@login_required(login_url="rest_framework:login")
def dashboard(request: HttpRequest) -> HttpResponse:
    """The page, or only its live panels with ``?fragment=panels`` (what the page's script re-fetches
    when the event stream reports a change). Everything is read for ``request.user`` only."""
    user_id = request_user_id(request)
    # ?account=<id> picks one of the user's accounts (another user's id is a 404); without it, the first.
    raw = request.GET.get("account")
    refs = account_refs(user_id=user_id)
    account = account_resolve(user_id=user_id, account=raw) if raw else (refs[0] if refs else None)
    panels = dashboard_panels(user_id=user_id, account_id=account["id"] if account else None)
    context: dict[str, Any] = {"panels": panels, "account": account, "accounts": refs}
    if request.GET.get("fragment") == "panels":
        return render(request, "dashboard/_panels.html", context)
    context.update(last_event_id=latest_event_id(user_id=user_id), ranges=RANGES)
    return render(request, "dashboard/index.html", context)
