"""Browser test of the dashboard: log in, see the chart drawn and the positions, then a sync posted
through the API shows on the page within 2 s, without a reload (the event stream drives it).

Uses the project's Chromium set-up (``tests/test_browser.py``); screenshots go to
``test-artifacts/screenshots/dashboard-*.png``.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import access_token_for
from guards.models import EquitySnapshot
from guards.tests.read_factories import EquitySnapshotFactory
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, quote, sync_payload
from tests.test_browser import _login, _shot, _wait, browser  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _sync(client, clock: Clock, *, tickets: list[int], equity: str) -> None:
    body = sync_payload(
        broker_time=clock.tick(),
        positions=[broker_position(t, price_open="1.10000", price_current="1.10250") for t in tickets],
        quotes=[quote("EURUSD", "1.10250", "1.10262")],
        equity=equity,
        balance="10000.00",
    )
    response = client.post(SYNC_URL, body, format="json")
    assert response.status_code == 201, response.content


def test_dashboard_draws_the_chart_and_updates_live_without_a_reload(browser, live_server, settings, user, password):  # noqa: F811
    from selenium.webdriver.common.by import By

    # The live server is WSGI: its streams poll the database; frequent heartbeats end a stream's thread
    # soon after the browser leaves (a write to the closed connection fails), before the test's teardown.
    settings.SSE_POLL_S, settings.SSE_HEARTBEAT_S, settings.SSE_MAX_S = 0.2, 0.4, 60
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    clock = Clock(start=timezone.now() - timedelta(minutes=10))
    _sync(api, clock, tickets=[5101], equity="10120.00")
    # a day of equity history for the chart (snapshots written directly, one every 30 minutes)
    now = timezone.now()
    for i in range(48):
        row = EquitySnapshotFactory(
            user=user,
            equity=Decimal("10000") + Decimal(i * 7 % 90) - Decimal(i),
            balance=Decimal("10000"),
            drawdown_pct=Decimal(i % 5),
        )
        EquitySnapshot.objects.filter(pk=row.pk).update(created_at=now - timedelta(minutes=30 * (48 - i)))

    _login(browser, f"{live_server.url}/", user.username, password)
    _wait(browser, "#chart path.equity")
    _wait(browser, "#live.badge.on")  # the event stream is open
    assert int(browser.find_element(By.ID, "chart").get_attribute("data-points")) >= 40
    assert browser.find_elements(By.CSS_SELECTOR, '#positions tr[data-ticket="5101"]')
    _shot(browser, "dashboard-1-loaded")

    browser.execute_script("window.notReloaded = true;")
    started = time.monotonic()
    _sync(api, clock, tickets=[5101, 5102], equity="10345.67")
    deadline = started + 2.0
    while time.monotonic() < deadline:
        if browser.find_elements(By.CSS_SELECTOR, '#positions tr[data-ticket="5102"]'):
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert browser.find_elements(By.CSS_SELECTOR, '#positions tr[data-ticket="5102"]'), "no update within 2 s"
    assert browser.find_element(By.ID, "equity").text == "10345.67"
    assert browser.execute_script("return window.notReloaded === true;"), "the page was reloaded"
    print(f"dashboard updated {elapsed:.2f} s after the sync was posted")
    _shot(browser, "dashboard-2-updated")
    browser.get("about:blank")
    time.sleep(1.0)
