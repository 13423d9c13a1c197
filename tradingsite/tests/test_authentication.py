"""The authentication classes (tradingsite.authentication): strict ``user_id`` claims, the database-checked
class as the default, and the stateless class on the three hot reads only (issues 15 and 16)."""

from __future__ import annotations

import pytest
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import access_token_for
from tests.security.endpoints import api_operations, send
from tradingsite.api import UserScopedAPIView
from tradingsite.authentication import DatabaseJWTAuthentication, StatelessJWTAuthentication

pytestmark = pytest.mark.django_db

HOT_READS = {
    ("GET", "/api/v1/reconciliation/status/"),
    ("GET", "/api/v1/positions/open/"),
    ("GET", "/api/v1/guards/status/"),
}
# One GET of each authentication class: a stateless hot read, a database-checked list and detail.
PROBES = ["/api/v1/guards/status/", "/api/v1/positions/", "/api/v1/guards/config/", "/api/v1/reconciliation/logs/"]


@pytest.fixture
def user_one(django_user_model, password):
    """The user with primary key 1: what ``int(1.9)`` and ``int(True)`` would name."""
    from accounts.tests.factories import default_account

    user = django_user_model.objects.create_user(id=1, username="user-one", password=password)
    default_account(user)  # guards/config/ belongs to an account
    return user


def token_with_claim(user, claim) -> str:
    token = AccessToken.for_user(user)
    token["user_id"] = claim
    return str(token)


@pytest.mark.parametrize("claim", ["abc", "1.0", [1], {}, 1.9, True, None, "", "-1", 0, "١", "9" * 30, 2**64])
@pytest.mark.parametrize("url", PROBES)
def test_a_token_whose_user_id_is_not_an_integer_is_a_401(url, claim, user_one):
    # given a correctly signed, unexpired token whose user_id claim is not a positive integer
    # (1.9 and true would be user 1 through int(); "١" is an Arabic-Indic digit one, str.isdigit() but not ASCII)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_with_claim(user_one, claim)}")
    # when / then a 401 on the stateless and on the database-checked endpoints, never a 500 or user 1's data
    response = client.get(url)
    assert response.status_code == 401, (url, claim, response.status_code)


@pytest.mark.parametrize("claim", [1, "1"])
@pytest.mark.parametrize("url", PROBES)
def test_an_integer_user_id_as_int_or_digit_string_is_accepted(url, claim, user_one):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_with_claim(user_one, claim)}")
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("claim", ["abc", 1.9, True, [1]])
def test_a_refresh_token_whose_user_id_is_not_an_integer_is_a_401(claim, user_one):
    refresh = RefreshToken.for_user(user_one)
    refresh["user_id"] = claim
    response = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 401


def test_only_the_three_hot_reads_and_the_sync_use_the_stateless_class():
    # The sync reads is_active in the user row it locks (reconciliation.services), so it refuses a
    # deactivated user as the database-checked class does (next test, and reconciliation's test_sync_cost).
    stateless = {
        operation.key
        for operation in api_operations()
        if any(issubclass(cls, StatelessJWTAuthentication) for cls in operation.view.authentication_classes)
    }
    assert stateless == HOT_READS | {("POST", "/api/v1/reconciliation/syncs/")}


def test_a_deactivated_user_is_refused_on_every_endpoint_but_the_hot_reads(user):
    # given a valid access token, then the user is deactivated
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    user.is_active = False
    user.save()
    checked = []
    for operation in api_operations():
        if operation.is_public or operation.key in HOT_READS:
            continue
        # when / then every other operation refuses the token (401), reads and writes alike
        response = send(client, operation)
        assert response.status_code == 401, (str(operation), response.status_code)
        checked.append(operation.key)
    assert ("POST", "/api/v1/reconciliation/syncs/") in checked
    assert len(checked) >= 8  # logs list/detail, positions list/detail/create, alerts, config get/patch, syncs


class PlainNewView(UserScopedAPIView):
    """A view a newcomer might add: nothing about authentication."""

    def get(self, request):
        return Response({"user_id": self.user_id})


def test_a_newly_added_view_that_does_nothing_special_refuses_a_deactivated_user(user):
    assert PlainNewView.authentication_classes[0] is DatabaseJWTAuthentication
    token = access_token_for(user)
    view = PlainNewView.as_view()
    factory = APIRequestFactory()
    # an active user gets through ...
    assert view(factory.get("/new/", HTTP_AUTHORIZATION=f"Bearer {token}")).status_code == 200
    # ... and once deactivated is refused at once, with the same still-valid token
    user.is_active = False
    user.save()
    assert view(factory.get("/new/", HTTP_AUTHORIZATION=f"Bearer {token}")).status_code == 401
