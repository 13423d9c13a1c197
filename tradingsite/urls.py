"""Project URLs: admin, the versioned API, schema and docs, probes and metrics.

The two password forms outside the API, ``/admin/login/`` and ``/api-auth/login/``, are routed to the
same views as Django's and DRF's own, wrapped in the login throttle of ``auth/token/``
(:func:`tradingsite.throttling.throttle_password_form`); they come before the includes, so they win.
"""

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, reverse
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from tradingsite.health import healthz, readyz
from tradingsite.metrics import metrics_view
from tradingsite.throttling import throttle_password_form

handler400 = "tradingsite.api.bad_request"
handler404 = "tradingsite.api.not_found"
handler500 = "tradingsite.api.server_error"


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def api_root(request: Request) -> Response:
    """Entry point of the browsable API: links to every resource."""

    def link(name: str) -> str:
        return request.build_absolute_uri(reverse(name))

    return Response(
        {
            "auth": {
                "token": link("auth:token"),
                "token_refresh": link("auth:token-refresh"),
                "token_verify": link("auth:token-verify"),
                "logout": link("auth:logout"),
            },
            "accounts": link("accounts:list"),
            "reconciliation": {
                "status": link("reconciliation:status"),
                "logs": link("reconciliation:log-list"),
                "syncs": link("reconciliation:sync"),
            },
            "positions": {"open": link("positions:open"), "history": link("positions:position-list")},
            "guards": {
                "status": link("guards:status"),
                "alerts": link("guards:alert-list"),
                "config": link("guards:config"),
            },
            "schema": link("schema"),
            "docs": link("docs"),
        }
    )


api_v1 = [
    path("", api_root, name="api-root"),
    path("auth/", include("tradingsite.auth")),
    path("accounts/", include("accounts.urls")),
    path("reconciliation/", include("reconciliation.urls")),
    path("positions/", include("positions.urls")),
    path("deals/", include("positions.deal_urls")),
    path("guards/", include("guards.urls")),
]

urlpatterns = [
    path("admin/login/", throttle_password_form(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # DRF's own login route (rest_framework/urls.py), throttled; logout and the URL names come from the include.
    path("api-auth/login/", throttle_password_form(LoginView.as_view(template_name="rest_framework/login.html"))),
    path("api-auth/", include("rest_framework.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
