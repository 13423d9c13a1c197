"""URL routes of the accounts API (mounted at /api/v1/accounts/)."""

from django.urls import path

from accounts.views import AccountListView

app_name = "accounts"

urlpatterns = [path("", AccountListView.as_view(), name="list")]
