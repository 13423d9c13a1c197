"""The dashboard page: login required, the user's own data only, the live-panels fragment."""

from __future__ import annotations

import pytest
from django.test import Client

from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, sync_payload

pytestmark = pytest.mark.django_db


def post_sync(client, *, equity: str, ticket: int, price: str) -> None:
    body = sync_payload(
        broker_time=Clock().tick(),
        positions=[broker_position(ticket, price_open=price, price_current=price)],
        quotes=[quote("EURUSD", price, price)],
        equity=equity,
        balance=equity,
    )
    assert client.post(SYNC_URL, body, format="json").status_code == 201


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/api-auth/login/?next=/")


def test_the_page_shows_the_users_own_positions_guards_divergences_and_events(
    user, other_user, auth_client, other_client
):
    post_sync(auth_client, equity="10123.45", ticket=5101, price="1.10111")  # unexpected_at_broker: a divergence
    post_sync(other_client, equity="20987.65", ticket=6202, price="1.20222")
    page = browser(user).get("/")
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    html = page.content.decode()
    for expected in ("10123.45", "5101", "unexpected_at_broker", "Drawdown from peak", "sync"):
        assert expected in html, expected
    for foreign in ("20987.65", "6202", "1.20222"):
        assert foreign not in html, foreign
    assert 'data-last-event-id="' in html and "dashboard/dashboard.js" in html


def test_the_panels_fragment_is_what_the_script_swaps_in(user, auth_client):
    post_sync(auth_client, equity="10555.55", ticket=5102, price="1.10222")
    fragment = browser(user).get("/?fragment=panels")
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert "10555.55" in html and 'data-ticket="5102"' in html


def test_a_deactivated_user_is_logged_out(user):
    client = browser(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/").status_code == 302
