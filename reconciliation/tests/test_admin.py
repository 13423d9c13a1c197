"""Reconciliation log admin: read-only for everyone, filters, search, streaming CSV, bounded queries."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.tests.factories import default_account
from positions.models import Position
from reconciliation.admin import ReconciliationLogAdmin
from reconciliation.models import ReconciliationLog
from tradingsite.admin import LargeTablePaginator

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:reconciliation_reconciliationlog_changelist"


def _log(user, **fields) -> ReconciliationLog:
    defaults = {"event_type": "sync", "status": "success", "created_at": datetime(2026, 11, 30, 10, 0, tzinfo=UTC)}
    return ReconciliationLog.objects.create(user=user, account=default_account(user), **{**defaults, **fields})


@pytest.fixture
def operator_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _ids(response) -> list[int]:
    return [row.pk for row in response.context["cl"].result_list]


# ---------------------------------------------------------------------------------------------
# Read-only for everyone
# ---------------------------------------------------------------------------------------------
def test_log_admin_denies_add_change_delete_permissions_even_to_superusers(admin_user):
    # given the registered admin and a superuser's request
    model_admin = admin.site._registry[ReconciliationLog]
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    row = _log(admin_user)

    # then every write permission is refused, viewing is allowed
    assert isinstance(model_admin, ReconciliationLogAdmin)
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, row) is False
    assert model_admin.has_delete_permission(request, row) is False
    assert model_admin.has_view_permission(request, row) is True


def test_log_admin_add_and_delete_urls_are_forbidden_and_write_nothing(operator_client, user):
    # given one log row
    row = _log(user, ticket=700101, symbol="XAUUSD")
    add_url = reverse("admin:reconciliation_reconciliationlog_add")
    delete_url = reverse("admin:reconciliation_reconciliationlog_delete", args=[row.pk])

    # when a superuser GETs and POSTs the add and delete URLs
    responses = [
        operator_client.get(add_url),
        operator_client.post(add_url, {"user": user.pk, "event_type": "sync", "status": "success"}),
        operator_client.get(delete_url),
        operator_client.post(delete_url, {"post": "yes"}),
    ]

    # then each is 403 and the table is unchanged
    assert [r.status_code for r in responses] == [403, 403, 403, 403]
    assert list(ReconciliationLog.objects.values_list("pk", "ticket")) == [(row.pk, 700101)]


def test_log_admin_change_url_is_a_read_only_page_and_refuses_posts(operator_client, user):
    # given one log row
    row = _log(user, ticket=700101, symbol="XAUUSD", message="original")
    url = reverse("admin:reconciliation_reconciliationlog_change", args=[row.pk])

    # when a superuser opens it, then POSTs a change
    page = operator_client.get(url)
    post = operator_client.post(url, {"message": "tampered", "ticket": "1", "event_type": "close"})

    # then the page is the read-only view (no save button, no editable inputs) and the POST is 403
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="_save"' not in html
    assert 'name="message"' not in html
    assert page.context["has_change_permission"] is False
    assert post.status_code == 403
    row.refresh_from_db()
    assert (row.message, row.ticket, row.event_type) == ("original", 700101, "sync")


def test_log_admin_offers_only_the_csv_export_action(operator_client, user):
    # given a log row
    _log(user)

    # when the changelist is rendered
    response = operator_client.get(reverse(CHANGELIST))

    # then there is no delete_selected action and no add link
    choices = [name for name, _ in response.context["action_form"].fields["action"].choices if name]
    assert choices == ["export_csv"]
    assert "delete_selected" not in response.content.decode()
    assert reverse("admin:reconciliation_reconciliationlog_add") not in response.content.decode()


# ---------------------------------------------------------------------------------------------
# Filters and search
# ---------------------------------------------------------------------------------------------
def test_log_admin_filters_by_event_type_status_reason_and_matched(operator_client, user):
    # given rows of several kinds
    sync = _log(user)
    divergence = _log(
        user, event_type="divergence", status="warning", divergence_reason="entry_slippage", matched=False
    )
    other_reason = _log(user, event_type="divergence", status="warning", divergence_reason="sl_mismatch", matched=False)
    match = _log(user, event_type="match", matched=True)

    # when filtering
    def ids(query: str) -> set[int]:
        return set(_ids(operator_client.get(reverse(CHANGELIST) + query)))

    # then each filter keeps exactly the matching rows
    assert ids("?event_type__exact=divergence") == {divergence.pk, other_reason.pk}
    assert ids("?status__exact=warning") == {divergence.pk, other_reason.pk}
    assert ids("?divergence_reason__exact=entry_slippage") == {divergence.pk}
    assert ids("?matched__exact=1") == {match.pk}
    assert ids("?matched__exact=0") == {divergence.pk, other_reason.pk}
    assert ids("?matched__isnull=True") == {sync.pk}


def test_log_admin_date_range_filter_is_inclusive_in_utc(operator_client, user):
    # given rows on Nov 1, 2 (first and last second) and 3, 4
    day1 = _log(user, created_at=datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC))
    day2_start = _log(user, created_at=datetime(2026, 11, 2, 0, 0, 0, tzinfo=UTC))
    day3_end = _log(user, created_at=datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC))
    day4 = _log(user, created_at=datetime(2026, 11, 4, 0, 0, 0, tzinfo=UTC))

    # when filtering 2026-11-02 .. 2026-11-03 (both days inclusive)
    response = operator_client.get(reverse(CHANGELIST) + "?created_at_from=2026-11-02&created_at_to=2026-11-03")
    only_from = operator_client.get(reverse(CHANGELIST) + "?created_at_from=2026-11-03")

    # then Nov 2 00:00:00 through Nov 3 23:59:59 are in, the neighbours out; newest first
    assert _ids(response) == [day3_end.pk, day2_start.pk]
    assert _ids(only_from) == [day4.pk, day3_end.pk]
    assert day1.pk not in _ids(response)


def test_log_admin_date_range_filter_rejects_a_bad_date(operator_client, user):
    # given a row
    _log(user)

    # when the from date does not parse
    response = operator_client.get(reverse(CHANGELIST) + "?created_at_from=yesterday")

    # then the admin redirects to the unfiltered list with its error flag
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_log_admin_search_by_ticket_is_exact(operator_client, user):
    # given tickets sharing digits
    exact = _log(user, event_type="match", ticket=700101)
    _log(user, event_type="match", ticket=7001010)
    _log(user, event_type="match", ticket=1700101)

    # when searching a bare number and an explicit ticket:
    bare = _ids(operator_client.get(reverse(CHANGELIST), {"q": "700101"}))
    explicit = _ids(operator_client.get(reverse(CHANGELIST), {"q": "ticket: 700101"}))
    nonsense = _ids(operator_client.get(reverse(CHANGELIST), {"q": "ticket:abc"}))

    # then only the exact ticket matches
    assert bare == explicit == [exact.pk]
    assert nonsense == []


def test_log_admin_search_by_symbol_prefix_and_by_username(operator_client, user, other_user):
    # given alice's EURUSD and GBPUSD rows and bob's EURGBP row
    eurusd = _log(user, event_type="match", symbol="EURUSD", ticket=1)
    gbpusd = _log(user, event_type="match", symbol="GBPUSD", ticket=2)
    eurgbp = _log(other_user, event_type="match", symbol="EURGBP", ticket=3)

    def search(term: str) -> set[int]:
        return set(_ids(operator_client.get(reverse(CHANGELIST), {"q": term})))

    # then a word is a symbol prefix (case-insensitive input, symbols are upper case) ...
    assert search("eur") == {eurusd.pk, eurgbp.pk}
    assert search("symbol:EURUSD") == {eurusd.pk}
    # ... or, when a user has exactly that username, that user's rows
    assert search("bob") == {eurgbp.pk}
    assert search("user:alice") == {eurusd.pk, gbpusd.pk}
    assert search("user:ali") == set()


def test_log_admin_search_uses_no_icontains_and_no_join(operator_client, user):
    # given a row
    _log(user, event_type="match", symbol="EURUSD", ticket=5)

    # when searching a symbol and a ticket
    with CaptureQueriesContext(connection) as queries:
        operator_client.get(reverse(CHANGELIST), {"q": "EURUSD"})
        operator_client.get(reverse(CHANGELIST), {"q": "5"})

    # then no log query uses a case-insensitive LIKE, and the log queries never join auth_user in WHERE
    log_sql = [q["sql"] for q in queries.captured_queries if "reconciliation_reconciliationlog" in q["sql"]]
    assert log_sql
    assert not any("UPPER(" in sql or "LIKE UPPER" in sql or "ILIKE" in sql for sql in log_sql)


# ---------------------------------------------------------------------------------------------
# Detail page
# ---------------------------------------------------------------------------------------------
def test_log_detail_shows_expected_vs_actual_and_links_to_the_position(operator_client, user):
    # given a divergence on a ledger position
    position = Position.objects.create(
        user=user,
        account=default_account(user),
        ticket=700101,
        symbol="XAUUSD",
        side="buy",
        volume=Decimal("0.10"),
        status="open",
    )
    row = _log(
        user,
        event_type="divergence",
        status="warning",
        position=position,
        ticket=700101,
        symbol="XAUUSD",
        divergence_reason="entry_slippage",
        slippage_pips=Decimal("12.50"),
        details={"expected": {"price_open": "1950.50"}, "actual": {"price_open": "1951.75"}, "reason": "x<y"},
    )

    # when the detail page is opened
    html = operator_client.get(reverse("admin:reconciliation_reconciliationlog_change", args=[row.pk])).content.decode()

    # then the table shows field / expected / actual, the JSON is pretty-printed and escaped,
    # and the position and the ticket's story are linked
    assert "<th>Expected</th><th>Actual</th>" in html
    assert "<tr><td>price_open</td><td>1950.50</td><td>1951.75</td><td>—</td></tr>" in html
    assert "&quot;price_open&quot;: &quot;1950.50&quot;" in html  # indent=2 JSON inside <pre>
    assert "x&lt;y" in html
    assert reverse("admin:positions_position_change", args=[position.pk]) in html
    assert f"user__id__exact={user.pk}&amp;ticket=700101" in html


def test_log_detail_story_links_list_the_ticket_and_the_sync(operator_client, user, other_user):
    # given a sync with a match of ticket 1, a later close of ticket 1, and bob's row in another sync
    sync = _log(user)
    match = _log(user, sync_id=sync.sync_id, event_type="match", ticket=1)
    close = _log(user, event_type="close", ticket=1)
    _log(other_user, event_type="match", ticket=1)
    changelist = reverse(CHANGELIST)

    # when following the two story links of the match row
    by_ticket = operator_client.get(changelist, {"user__id__exact": user.pk, "ticket": 1})
    by_sync = operator_client.get(changelist, {"user__id__exact": user.pk, "sync_id": str(sync.sync_id)})

    # then the ticket's story is the match and the close; the sync's rows are the sync and the match
    assert set(_ids(by_ticket)) == {match.pk, close.pk}
    assert set(_ids(by_sync)) == {sync.pk, match.pk}


def test_log_detail_renders_a_key_value_table_for_other_details(operator_client, user):
    # given a sync row whose details are a summary
    row = _log(user, details={"positions_seen": 3, "divergences_open": 1})

    # when opened
    html = operator_client.get(reverse("admin:reconciliation_reconciliationlog_change", args=[row.pk])).content.decode()

    # then each key is a row
    assert "<tr><td>divergences_open</td><td>1</td></tr><tr><td>positions_seen</td><td>3</td></tr>" in html


# ---------------------------------------------------------------------------------------------
# CSV export
# ---------------------------------------------------------------------------------------------
def _csv_rows(response) -> list[dict]:
    assert response.streaming is True
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_action_streams_the_selected_rows(operator_client, user):
    # given three rows, two selected
    first = _log(user, event_type="match", ticket=11, symbol="EURUSD", volume=Decimal("0.10"))
    second = _log(user, event_type="close", ticket=12, symbol="XAUUSD", realized_pnl=Decimal("-41.36"))
    _log(user, event_type="match", ticket=13)

    # when the export action runs
    response = operator_client.post(
        reverse(CHANGELIST), {"action": "export_csv", "_selected_action": [first.pk, second.pk]}
    )

    # then a streamed CSV holds exactly those rows, newest first (same time → higher id first)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="reconciliation-logs-')
    rows = _csv_rows(response)
    assert [(r["ticket"], r["event_type"], r["username"]) for r in rows] == [
        ("12", "close", "alice"),
        ("11", "match", "alice"),
    ]
    assert rows[0]["realized_pnl"] == "-41.36"  # a number keeps its sign
    assert rows[1]["volume"] == "0.10"
    assert rows[1]["created_at"] == "2026-11-30T10:00:00+00:00"


def test_export_action_with_select_all_streams_every_filtered_row(operator_client, user, monkeypatch):
    # given 3 divergences and 1 match, and a page of 2 rows, so "select all" spans two pages
    divergences = {_log(user, event_type="divergence", ticket=t).pk for t in (1, 2, 3)}
    _log(user, event_type="match", ticket=4)
    monkeypatch.setattr(ReconciliationLogAdmin, "list_per_page", 2)

    # when the action runs with "select all 3" on the filtered changelist
    response = operator_client.post(
        reverse(CHANGELIST) + "?event_type__exact=divergence",
        {"action": "export_csv", "select_across": "1", "index": "0", "_selected_action": sorted(divergences)[:1]},
    )

    # then every filtered row is exported, not just the selected page
    assert {int(r["id"]) for r in _csv_rows(response)} == divergences


def test_export_filtered_url_streams_every_row_matching_the_filters(operator_client, user, other_user):
    # given 3 divergences (over 2 users) among other rows, and a one-row page size
    rows = [_log(u, event_type="divergence", ticket=t) for u, t in ((user, 1), (other_user, 2), (user, 3))]
    _log(user, event_type="match", ticket=4)

    # when exporting with the changelist's filter (the button's URL)
    changelist = operator_client.get(reverse(CHANGELIST) + "?event_type__exact=divergence")
    export_url = reverse("admin:reconciliation_reconciliationlog_export_csv") + "?event_type__exact=divergence"
    response = operator_client.get(export_url)

    # then the button carries the filter and the CSV has all three divergences, nothing else
    assert export_url.replace("&", "&amp;") in changelist.content.decode()
    assert sorted(int(r["id"]) for r in _csv_rows(response)) == sorted(r.pk for r in rows)


def test_export_filtered_url_honours_the_search(operator_client, user):
    # given two tickets
    _log(user, event_type="match", ticket=700101)
    _log(user, event_type="match", ticket=700102)

    # when exporting a ticket search
    response = operator_client.get(reverse("admin:reconciliation_reconciliationlog_export_csv"), {"q": "700102"})

    # then only that ticket is exported
    assert [r["ticket"] for r in _csv_rows(response)] == ["700102"]


def test_export_escapes_spreadsheet_formulas_in_text(operator_client, user):
    # given a message that a spreadsheet would evaluate
    row = _log(user, message='=HYPERLINK("http://evil")', details={"note": "+1"})

    # when exported
    response = operator_client.post(reverse(CHANGELIST), {"action": "export_csv", "_selected_action": [row.pk]})

    # then the text is prefixed with a quote; the JSON column starts with "{" and is left alone
    (exported,) = _csv_rows(response)
    assert exported["message"] == '\'=HYPERLINK("http://evil")'
    assert exported["details"] == '{"note": "+1"}'


def test_export_requires_staff(client, user):
    # given a logged-in non-staff user
    client.force_login(user)

    # when the export URL is requested
    response = client.get(reverse("admin:reconciliation_reconciliationlog_export_csv"))

    # then the admin sends them to its login page
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# ---------------------------------------------------------------------------------------------
# Query count and pagination
# ---------------------------------------------------------------------------------------------
def _changelist_queries(client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(CHANGELIST) + query)
    assert response.status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # session + user + bounded count + one page (users joined, not queried per row)
        ("", 4),
        ("?event_type__exact=sync", 4),
        ("?p=2", 4),
        # + the username lookup of a bare-word search
        ("?q=EURUSD", 5),
    ],
)
def test_changelist_query_count_does_not_grow_with_rows(operator_client, django_user_model, query, expected):
    # given 10 rows over 10 users
    users = [django_user_model.objects.create_user(username=f"trader{i}") for i in range(10)]
    for i in range(10):
        _log(users[i], symbol="EURUSD", ticket=i)
    small = _changelist_queries(operator_client, "" if query == "?p=2" else query)

    # when there are 200 rows over the same users (two pages of 100)
    ReconciliationLog.objects.bulk_create(
        [
            ReconciliationLog(
                user=users[i % 10],
                account=default_account(users[i % 10]),
                event_type="sync",
                symbol="EURUSD",
                ticket=i,
                created_at=datetime(2026, 11, 30, tzinfo=UTC),
            )
            for i in range(10, 200)
        ]
    )
    large = _changelist_queries(operator_client, query)

    # then the number of queries is the same, and small. On PostgreSQL an unfiltered page first reads
    # the pg_class estimate; below the 10,000-row count limit it then counts exactly (one more query).
    if connection.vendor == "postgresql" and "?event_type" not in query and "?q" not in query:
        expected += 1
    assert large == small == expected


def test_paginator_caps_a_filtered_count(user):
    # given 5 matching rows and a limit of 3
    for ticket in range(5):
        _log(user, event_type="match", ticket=ticket)
    queryset = ReconciliationLog.objects.filter(event_type="match")

    # when paginating 2 per page
    capped = LargeTablePaginator(queryset, 2, count_limit=3)
    exact = LargeTablePaginator(queryset, 2, count_limit=10)

    # then the capped count stops at 3 (2 pages of 2), the exact one is 5 (3 pages)
    assert (capped.count, capped.is_capped, capped.num_pages) == (3, True, 2)
    assert (exact.count, exact.is_capped, exact.num_pages) == (5, False, 3)


def test_changelist_says_when_the_count_is_capped(operator_client, user, monkeypatch):
    # given 3 matches and a count limit of 2
    for ticket in range(3):
        _log(user, event_type="match", ticket=ticket)
    monkeypatch.setattr(LargeTablePaginator, "count_limit", 2)

    # when filtering
    html = operator_client.get(reverse(CHANGELIST) + "?event_type__exact=match").content.decode()

    # then the paginator line says "more than 2" (PostgreSQL: "about N" when its planner estimates more;
    # tradingsite/tests/test_admin_plumbing.py covers both wordings)
    assert "more than 2 reconciliation logs" in html or "about " in html


@pytest.mark.postgres
def test_paginator_estimates_an_unfiltered_postgresql_table(user):
    # given 30 rows and fresh statistics
    ReconciliationLog.objects.bulk_create(
        [
            ReconciliationLog(
                user=user,
                account=default_account(user),
                event_type="sync",
                created_at=datetime(2026, 11, 30, tzinfo=UTC),
            )
            for _ in range(30)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reconciliation_reconciliationlog")

    # when the paginator counts with a limit below the table size
    paginator = LargeTablePaginator(ReconciliationLog.objects.all(), 10, count_limit=20)
    with CaptureQueriesContext(connection) as queries:
        count = paginator.count

    # then it reads pg_class (30 = reltuples after ANALYZE) instead of COUNT(*)
    assert (count, paginator.is_estimate) == (30, True)
    assert len(queries.captured_queries) == 1
    assert "pg_class" in queries.captured_queries[0]["sql"]
    assert "COUNT(" not in queries.captured_queries[0]["sql"].upper()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_paginator_falls_back_to_the_planner_estimate_when_the_count_times_out(user):
    # given 3 rows and a filter that takes 50 ms per row (pg_sleep), with a 10 ms count timeout
    for ticket in range(3):
        _log(user, event_type="match", ticket=ticket)
    slow = ReconciliationLog.objects.filter(event_type="match").extra(where=["pg_sleep(0.05) IS NOT NULL"])
    paginator = LargeTablePaginator(slow, 2)
    paginator.count_timeout_ms = 10

    # when counting
    with CaptureQueriesContext(connection) as queries:
        count = paginator.count

    # then the count was cancelled and replaced by EXPLAIN's row estimate, flagged as an estimate,
    # and the connection is healthy with its usual statement_timeout (10 s from settings) restored
    assert paginator.is_estimate is True
    assert isinstance(count, int) and count >= 0
    assert any(q["sql"].startswith("EXPLAIN (FORMAT JSON)") for q in queries.captured_queries)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "10s"
    assert ReconciliationLog.objects.filter(event_type="match").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_paginator_counts_exactly_within_the_timeout(user):
    # given 3 matches outside any transaction (as in a real admin request)
    for ticket in range(3):
        _log(user, event_type="match", ticket=ticket)

    # when a filtered count runs under its timeout
    paginator = LargeTablePaginator(ReconciliationLog.objects.filter(event_type="match"), 2)

    # then it is exact
    assert (paginator.count, paginator.is_estimate, paginator.is_capped) == (3, False, False)
