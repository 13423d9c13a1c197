"""The shared admin plumbing (tradingsite/admin.py, templates/admin/): where it lives, the site's links,
and changelist counts that say when they are bounded or estimated (issue 16)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from guards.admin import EquitySnapshotAdmin, GuardStateAdmin
from positions.admin import PositionAdmin
from reconciliation.admin import ReconciliationLogAdmin
from reconciliation.tests.read_factories import ReconciliationLogFactory
from tradingsite import admin as shared_admin
from tradingsite.admin import LargeTablePaginator, ReadOnlyModelAdmin

pytestmark = pytest.mark.django_db

LOG_LIST = "/admin/reconciliation/reconciliationlog/"


@pytest.fixture
def operator_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_shared_admin_classes_live_in_the_project_package():
    assert ReadOnlyModelAdmin.__module__ == "tradingsite.admin"
    assert LargeTablePaginator.__module__ == "tradingsite.admin"
    for model_admin in (ReconciliationLogAdmin, PositionAdmin, GuardStateAdmin, EquitySnapshotAdmin):
        assert issubclass(model_admin, ReadOnlyModelAdmin), model_admin


def test_view_site_leads_to_the_api_root(operator_client):
    page = operator_client.get("/admin/").content.decode()
    assert re.search(r'<a href="/api/v1/">\s*View site\s*</a>', page)
    assert operator_client.get("/api/v1/").status_code == 200  # and it is a page, not a 404


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


@pytest.fixture
def twelve_rows_capped_at_five(user, monkeypatch):
    """12 EURUSD log rows, and a paginator that counts at most 5 (a stand-in for 10,000 of 22,387)."""
    monkeypatch.setattr(LargeTablePaginator, "count_limit", 5)
    ReconciliationLogFactory.create_batch(12, user=user, symbol="EURUSD")


def test_a_capped_count_is_never_shown_as_the_number_of_results(operator_client, twelve_rows_capped_at_five):
    # when the operator searches (a filtered list: the count stops at the cap, 5, and no estimate is at hand)
    text = _text(operator_client.get(LOG_LIST, {"q": "symbol:EUR"}))
    # then no line claims "5 results"; each says "more than 5"
    assert "more than 5 results" in text
    assert "Select all more than 5 reconciliation logs" in text
    assert "more than 5 reconciliation logs (the first 5 are paginated" in text
    assert not re.search(r"(?<!than )\b5 results", text)


def test_a_capped_count_shows_the_planners_estimate_as_about_n(
    operator_client, twelve_rows_capped_at_five, monkeypatch
):
    # given PostgreSQL's planner estimating 22,387 matching rows (its EXPLAIN "Plan Rows")
    monkeypatch.setattr(shared_admin, "planner_row_estimate", lambda queryset: 22387)
    text = _text(operator_client.get(LOG_LIST, {"q": "symbol:EUR"}))
    # then the count reads "about 22,387", in the search bar, the pagination line and "Select all"
    assert "about 22,387 results" in text
    assert "Select all about 22,387 reconciliation logs" in text
    assert "about 22,387 reconciliation logs (the first 5 are paginated" in text


def test_an_exact_count_reads_as_before(operator_client, user):
    ReconciliationLogFactory.create_batch(3, user=user, symbol="EURUSD")
    text = _text(operator_client.get(LOG_LIST, {"q": "symbol:EUR"}))
    assert "3 results" in text
    assert "3 reconciliation logs" in text
    assert "about 3" not in text and "more than" not in text


def test_divergence_reasons_read_as_words_in_the_position_list(operator_client, user):
    from positions.tests.read_factories import PositionFactory

    PositionFactory(user=user, matched=False, divergence_reasons=["entry_slippage", "sl_mismatch"])
    page = operator_client.get("/admin/positions/position/").content.decode()
    assert '<td class="field-divergences">entry slippage, sl mismatch</td>' in page
    assert "[&quot;entry_slippage" not in page and '["entry_slippage' not in page


def test_admin_pages_show_one_date_format(operator_client, user):
    from positions.tests.read_factories import PositionFactory

    # given a position opened 2026-11-30 09:00 UTC (the factory's time) and its log row at 09:00:01
    PositionFactory(user=user)
    ReconciliationLogFactory(user=user, created_at=datetime(2026, 11, 30, 9, 0, 1, tzinfo=UTC))
    positions = _text(operator_client.get("/admin/positions/position/"))
    logs = _text(operator_client.get(LOG_LIST))
    # then both pages write the time year-month-day hour:minute:second (the log adds milliseconds) ...
    assert "2026-11-30 09:00:00" in positions
    assert "2026-11-30 09:00:01.000" in logs
    # ... and none in Django's "en" words ("Nov. 30, 2026, 9 a.m.")
    assert "Nov. 30" not in positions + logs
