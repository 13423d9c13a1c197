"""Browser test: an operator finds a position's story in the admin, then a trader reads the browsable API.

Drives Debian's ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` with Selenium 4 (headless,
fresh profile, no network services). Both paths are given explicitly, so Selenium Manager never
runs and nothing is downloaded; the test fails if it is called anyway. Without the two binaries the
test is skipped — or fails when ``REQUIRE_SERVICES=1`` (CI installs them in ``.ci/run``).

Screenshots of every step go to ``test-artifacts/screenshots/`` (git-ignored; CI keeps them).
``serialized_rollback`` restores the migrations' data (the shipped instruments) that an earlier
transactional test's flush removed, so XAUUSD is valued with its real contract size.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from accounts.tests.factories import default_account
from guards.tests.read_factories import EquitySnapshotFactory
from positions.models import Position
from reconciliation.models import ReconciliationLog

pytestmark = [pytest.mark.browser, pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
WAIT_S = 20


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """A headless Chromium driven through the system chromedriver; quit after the test."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        message = f"browser test needs {' and '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)

    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_selenium_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager must not run: the system chromium/chromedriver are configured")

    monkeypatch.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
    monkeypatch.setenv("SE_OFFLINE", "true")

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--window-size=1600,1100",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> Path:
    """Save a screenshot of the whole page (window grown to the document height) and return its path."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 800)")
    driver.set_window_size(1600, min(int(height) + 120, 4000))
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {path} not written"
    assert path.stat().st_size > 10_000  # a real rendered page, not a blank image
    return path


def _wait(driver, css: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _login(driver, url: str, username: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(driver, "input[name=username]").send_keys(username)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()


def _result_rows(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")


@pytest.fixture
def story(user, other_user):
    """Alice's gold position 700101 (slipped entry) with its log story, among other rows."""
    opened = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    position = Position.objects.create(
        user=user,
        account=default_account(user),
        ticket=700101,
        symbol="XAUUSD",
        side="buy",
        volume=Decimal("0.10"),
        requested_price=Decimal("1950.50"),
        price_open=Decimal("1951.75"),
        price_current=Decimal("1955.75"),
        profit=Decimal("40.00"),
        status="open",
        opened_at=opened,
        last_synced_at=opened,
        matched=False,
        divergence_reasons=["entry_slippage"],
    )
    sync_id = uuid.uuid4()
    # The account as the sync saw it (snapshot and account row): USD, so the gold position is valued in the
    # account currency.
    EquitySnapshotFactory(
        user=user,
        sync_id=sync_id,
        broker_time=opened,
        currency="USD",
        balance=Decimal("10000.00"),
        equity=Decimal("10040.00"),
        peak_equity=Decimal("10040.00"),
        drawdown_pct=Decimal("0"),
        open_positions=1,
    )
    rows = [
        ReconciliationLog(
            user=user, account=default_account(user), sync_id=sync_id, event_type="sync", created_at=opened
        ),
        ReconciliationLog(
            user=user,
            account=default_account(user),
            sync_id=sync_id,
            event_type="divergence",
            status="warning",
            position=position,
            ticket=700101,
            symbol="XAUUSD",
            side="buy",
            volume=Decimal("0.10"),
            price_open=Decimal("1951.75"),
            matched=False,
            divergence_reason="entry_slippage",
            slippage_pips=Decimal("125.00"),
            message="Entry slipped 125.0 pips.",
            details={"expected": {"price_open": "1950.50"}, "actual": {"price_open": "1951.75"}},
            created_at=opened + timedelta(seconds=1),
        ),
    ]
    # Background noise: other tickets, other users, other event types.
    for minute in range(1, 30):
        owner = user if minute % 2 else other_user
        rows.append(
            ReconciliationLog(
                user=owner,
                account=default_account(owner),
                event_type="match" if minute % 3 else "divergence",
                status="success" if minute % 3 else "warning",
                ticket=800000 + minute,
                symbol="EURUSD",
                matched=bool(minute % 3),
                divergence_reason="" if minute % 3 else "sl_mismatch",
                created_at=opened + timedelta(minutes=minute),
            )
        )
    ReconciliationLog.objects.bulk_create(rows)
    return position


def test_operator_inspects_the_log_and_trader_opens_positions_in_the_browsable_api(
    browser, live_server, admin_user, user, password, story
):
    from selenium.webdriver.common.by import By

    # given an operator logged into the admin
    _login(browser, f"{live_server.url}/admin/", admin_user.username, password)
    _wait(browser, "#user-tools")
    header_colour = browser.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header_colour not in ("", "rgba(0, 0, 0, 0)"), "admin CSS was not served"
    _shot(browser, "01-admin-index")

    # when they open the reconciliation log list
    browser.get(f"{live_server.url}/admin/reconciliation/reconciliationlog/")
    _wait(browser, "#result_list")
    assert len(_result_rows(browser)) == 31  # 1 sync + 1 divergence + 29 background rows
    assert "31 reconciliation logs" in browser.find_element(By.CSS_SELECTOR, "p.paginator").text
    _shot(browser, "02-log-list")

    # ... filter by event type "divergence"
    filter_panel = browser.find_element(By.ID, "changelist-filter")
    filter_panel.find_element(By.CSS_SELECTOR, "a[href*='event_type__exact=divergence']").click()
    _wait(browser, "#changelist-filter li.selected a[href*='event_type__exact=divergence']")
    # 9 background divergences (minutes 3, 6, ..., 27) + the story's one = 10
    assert len(_result_rows(browser)) == 10
    assert {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "td.field-event_type")} == {"Divergence"}
    _shot(browser, "03-log-filtered-divergence")

    # ... and search the ticket the trader reported (the search keeps the filter)
    search = browser.find_element(By.ID, "searchbar")
    search.clear()
    search.send_keys("700101")
    browser.find_element(By.CSS_SELECTOR, "#changelist-search [type=submit]").click()
    _wait(browser, "#changelist-search input[value='700101']")
    rows = _result_rows(browser)
    assert len(rows) == 1
    assert rows[0].text == "2026-11-30 09:00:01.000 alice Divergence Warning XAUUSD 700101 Entry Slippage 125.00"
    assert "event_type__exact=divergence" in browser.current_url and "q=700101" in browser.current_url
    _shot(browser, "04-log-search-ticket")

    # ... then open the entry
    rows[0].find_element(By.CSS_SELECTOR, "th a").click()
    _wait(browser, ".details-table")
    page = browser.find_element(By.ID, "content").text
    assert "Expected vs actual" in page
    table = browser.find_element(By.CSS_SELECTOR, ".details-table").text
    assert "price_open 1950.50 1951.75" in table
    position_link = browser.find_element(By.CSS_SELECTOR, ".field-position_link a")
    assert position_link.get_attribute("href").endswith(f"/admin/positions/position/{story.pk}/change/")
    assert not browser.find_elements(By.CSS_SELECTOR, "input[name=_save]")  # read-only
    _shot(browser, "05-log-detail")

    # when the trader logs into the browsable API and opens positions/open/
    browser.delete_all_cookies()
    _login(browser, f"{live_server.url}/api-auth/login/?next=/api/v1/positions/open/", user.username, password)
    _wait(browser, ".response-info")

    # then the page shows alice's open position with its computed P&L
    assert browser.current_url.endswith("/api/v1/positions/open/")
    body = browser.find_element(By.CSS_SELECTOR, ".response-info").text
    assert "HTTP 200 OK" in body
    assert '"ticket": 700101' in body
    assert '"symbol": "XAUUSD"' in body
    assert '"count": 1' in body
    # buy 0.10 lot XAUUSD (100 oz/lot) in a USD account: (1955.75 − 1951.75) × 0.10 × 100 = 40.00 USD
    assert '"unrealized_pnl": "40.00"' in body
    _shot(browser, "06-api-positions-open")


def _shot_at(driver, name: str, width: int, height: int) -> Path:
    """Save a screenshot at exactly ``width`` × ``height`` (what a person sees on that screen)."""
    driver.set_window_size(width, height)
    path = SCREENSHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"screenshot {path} not written"
    return path


def test_admin_list_fits_a_1366_wide_screen_and_the_api_login_lands_on_the_api_root(
    browser, live_server, admin_user, user, password, story
):
    # given a 1366 × 768 laptop screen (the most common desktop resolution) and an operator in the admin
    browser.set_window_size(1366, 768)
    _login(browser, f"{live_server.url}/admin/", admin_user.username, password)
    _wait(browser, "#user-tools")
    # when they open the reconciliation log list
    browser.get(f"{live_server.url}/admin/reconciliation/reconciliationlog/")
    _wait(browser, "#result_list")
    # then the whole table is visible: it needs no side scroll in its box, and the box ends inside the window
    table_width, box_width, box_right, viewport = browser.execute_script(
        "const box = document.querySelector('#changelist-form .results');"
        "return [box.scrollWidth, box.clientWidth, box.getBoundingClientRect().right,"
        " document.documentElement.clientWidth];"
    )
    assert table_width <= box_width, f"table {table_width}px wide in a {box_width}px box: columns are cut off"
    assert box_right <= viewport
    _shot_at(browser, "07-log-list-1366x768", 1366, 768)
    # and the admin's "View site" link leads to the API root, not a 404
    view_site = browser.find_element("css selector", "#user-tools a[href='/api/v1/']")
    assert view_site.text.strip().lower() == "view site"

    # when the trader logs in to the browsable API without a next page
    browser.delete_all_cookies()
    _login(browser, f"{live_server.url}/api-auth/login/", user.username, password)
    _wait(browser, ".response-info")
    # then they land on the API root (it was /accounts/profile/, a 404)
    assert browser.current_url == f"{live_server.url}/api/v1/"
    assert "HTTP 200 OK" in browser.find_element("css selector", ".response-info").text
    _shot_at(browser, "08-api-login-landing-1366x768", 1366, 768)
