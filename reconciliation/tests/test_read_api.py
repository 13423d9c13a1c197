"""Read API of reconciliation: status, and the log list/detail with filters and cursor, per user."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import default_account
from positions.tests.read_factories import PositionFactory
from reconciliation.models import ReconciliationLog
from reconciliation.tests.read_factories import ReconciliationLogFactory

pytestmark = pytest.mark.django_db

STATUS_URL = reverse("reconciliation:status")
LOGS_URL = reverse("reconciliation:log-list")
EventType = ReconciliationLog.EventType


def test_route_names_resolve_to_the_spec_paths():
    assert STATUS_URL == "/api/v1/reconciliation/status/"
    assert LOGS_URL == "/api/v1/reconciliation/logs/"
    assert reverse("reconciliation:log-detail", args=[7]) == "/api/v1/reconciliation/logs/7/"


def test_status_renders_the_spec_shape(auth_client, user):
    # given a sync 10 s ago (34 ms) and one open, matched position
    now = timezone.now()
    sync = ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=10), duration_ms=34, ticket=None)
    PositionFactory(user=user)
    # when
    response = auth_client.get(STATUS_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "status",
        "total_syncs",
        "last_sync_at",
        "last_sync_duration_ms",
        "sync_age_seconds",
        "open_positions_count",
        "matched_positions",
        "divergences_open",
        "divergences_24h",
        "message",
        "recent_events",
        "as_of",
    }
    assert body["status"] == "healthy"
    assert body["total_syncs"] == 1
    assert body["last_sync_duration_ms"] == 34
    assert body["last_sync_at"] == sync.created_at.isoformat().replace("+00:00", "Z")
    assert 10 <= body["sync_age_seconds"] <= 12
    assert (body["open_positions_count"], body["matched_positions"]) == (1, 1)
    assert body["recent_events"] == [
        {
            "id": sync.id,
            "created_at": sync.created_at.isoformat().replace("+00:00", "Z"),
            "event_type": "sync",
            "status": "success",
            "ticket": None,
            "symbol": "",
            "matched": None,
            "divergence_reason": "",
            "message": "sync accepted",
        }
    ]


def test_status_count_equals_positions_open_count(auth_client, user):
    # given
    PositionFactory.create_batch(2, user=user)
    PositionFactory(user=user, status="pending")
    # when
    status = auth_client.get(STATUS_URL).json()
    positions = auth_client.get(reverse("positions:open")).json()
    # then
    assert status["open_positions_count"] == positions["count"] == 2


def test_logs_list_only_the_users_rows_newest_first(auth_client, user, other_user):
    # given
    now = timezone.now()
    mine = [ReconciliationLogFactory(user=user, created_at=now - timedelta(seconds=s)) for s in (30, 20, 10)]
    ReconciliationLogFactory(user=other_user, created_at=now)
    # when
    body = auth_client.get(LOGS_URL).json()
    # then
    assert [row["id"] for row in body["results"]] == [row.id for row in reversed(mine)]
    assert body["next"] is None


def test_log_detail_of_another_user_is_404(auth_client, user, other_user):
    # given
    mine = ReconciliationLogFactory(user=user)
    theirs = ReconciliationLogFactory(user=other_user)
    # when / then
    assert auth_client.get(reverse("reconciliation:log-detail", args=[mine.id])).json()["id"] == mine.id
    response = auth_client.get(reverse("reconciliation:log-detail", args=[theirs.id]))
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def _log(user, **fields):
    return ReconciliationLogFactory(user=user, **fields)


@pytest.fixture
def trail(user, other_user):
    """A small trail per user: a match, two divergences, a close; the other user mirrors every row."""
    now = timezone.now()
    rows = {}
    for owner in (user, other_user):
        rows[owner.username] = {
            "match": _log(
                owner,
                event_type=EventType.MATCH,
                ticket=101,
                symbol="EURUSD",
                matched=True,
                created_at=now - timedelta(hours=3),
            ),
            "slippage": _log(
                owner,
                event_type=EventType.DIVERGENCE,
                status="warning",
                ticket=102,
                symbol="XAUUSD",
                matched=False,
                divergence_reason="entry_slippage",
                slippage_pips=Decimal("3.5"),
                created_at=now - timedelta(hours=2),
            ),
            "partial": _log(
                owner,
                event_type=EventType.DIVERGENCE,
                status="warning",
                ticket=103,
                symbol="XAUUSD",
                matched=False,
                divergence_reason="partial_fill",
                created_at=now - timedelta(hours=1),
            ),
            "close": _log(
                owner, event_type=EventType.CLOSE, ticket=101, symbol="EURUSD", close_reason="tp_hit", created_at=now
            ),
        }
    return rows["alice"], now


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("event_type=divergence", ["partial", "slippage"]),
        ("status=warning", ["partial", "slippage"]),
        ("symbol=eurusd", ["close", "match"]),
        ("ticket=101", ["close", "match"]),
        ("matched=true", ["match"]),
        ("matched=false", ["partial", "slippage"]),
        ("divergence_reason=partial_fill", ["partial"]),
        ("event_type=divergence&symbol=XAUUSD&ticket=102", ["slippage"]),
        # created_after is inclusive, created_before exclusive
        ("created_after={t_minus_2h}", ["close", "partial", "slippage"]),
        ("created_before={t_minus_2h}", ["match"]),
        # parameters that are not filters cannot widen the scope
        ("user={other_id}", ["close", "partial", "slippage", "match"]),
        ("user_id={other_id}&ordering=-id", ["close", "partial", "slippage", "match"]),
    ],
)
def test_log_filters_narrow_within_the_users_rows(auth_client, other_user, trail, query, expected):
    # given
    rows, now = trail
    query = query.format(
        t_minus_2h=(rows["slippage"].created_at).isoformat().replace("+00:00", "Z").replace(":", "%3A"),
        other_id=other_user.id,
    )
    # when
    response = auth_client.get(f"{LOGS_URL}?{query}")
    # then
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [rows[name].id for name in expected]


@pytest.mark.parametrize(
    "query", ["event_type=nope", "matched=maybe", "created_after=yesterday", "divergence_reason=x", "ticket=abc"]
)
def test_bad_filter_values_are_400_with_field_errors(auth_client, query):
    # when
    response = auth_client.get(f"{LOGS_URL}?{query}")
    # then
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_cursor_walks_every_row_once_and_never_another_users(auth_client, other_client, user, other_user):
    # given 7 rows each, some sharing a timestamp (the cursor must break ties on id)
    now = timezone.now()
    mine = [_log(user, created_at=now - timedelta(seconds=i // 2)) for i in range(7)]
    theirs = [_log(other_user, created_at=now - timedelta(seconds=i // 2)) for i in range(7)]

    # when the user pages through with page_size=3
    seen, url = [], f"{LOGS_URL}?page_size=3"
    next_links = []
    while url:
        body = auth_client.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
        if url:
            next_links.append(url)

    # then every row of the user exactly once, newest first, and none of the other user's
    assert sorted(seen) == sorted(row.id for row in mine)
    assert len(seen) == len(set(seen)) == 7
    # and the other user replaying the user's cursor links only ever sees their own rows
    for link in next_links:
        ids = {row["id"] for row in other_client.get(link).json()["results"]}
        assert ids <= {row.id for row in theirs}


def test_page_size_is_capped_at_200(auth_client, user):
    # given 201 rows
    ReconciliationLog.objects.bulk_create(
        ReconciliationLog(
            user=user, account=default_account(user), event_type=EventType.MATCH, created_at=timezone.now()
        )
        for _ in range(201)
    )
    # when
    body = auth_client.get(f"{LOGS_URL}?page_size=100000").json()
    # then
    assert len(body["results"]) == 200
    assert parse_qs(urlparse(body["next"]).query)["cursor"]


def test_tampered_cursor_is_404(auth_client):
    assert auth_client.get(f"{LOGS_URL}?cursor=not-a-cursor").status_code == 404


def test_logs_run_a_bounded_number_of_queries(auth_client, user, django_assert_num_queries):
    # given 20 rows with positions attached
    for _ in range(20):
        position = PositionFactory(user=user)
        _log(user, event_type=EventType.MATCH, position=position, ticket=position.ticket)
    # when / then 1 for the user (database-checked JWT) + 1 for the user's accounts (which account the
    # page is of; cached when caching is on) + 1 for the page, whatever the page size: no N+1
    with django_assert_num_queries(3):
        assert len(auth_client.get(LOGS_URL).json()["results"]) == 20
