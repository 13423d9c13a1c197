"""Read API of guards: status, alert history (merged, cursor-paginated), config GET/PATCH, per user."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tests.factories import default_account
from guards.models import DrawdownAlert, GuardConfig, Level
from guards.tests.read_factories import DrawdownAlertFactory, EquitySnapshotFactory, MarketAlertFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account(user):
    """The user's account (the one the test syncs name), as after the user's first sync."""
    return default_account(user)


STATUS_URL = reverse("guards:status")
ALERTS_URL = reverse("guards:alert-list")
CONFIG_URL = reverse("guards:config")
D = Decimal


def test_route_names_resolve_to_the_spec_paths():
    assert (STATUS_URL, ALERTS_URL, CONFIG_URL) == (
        "/api/v1/guards/status/",
        "/api/v1/guards/alerts/",
        "/api/v1/guards/config/",
    )


def test_status_renders_drawdown_and_market_alerts(auth_client, user):
    # given a stored warning: 8,500 against a 10,000 peak = 15 %, and a 5.10 % gap on XAUUSD (examples)
    EquitySnapshotFactory(
        user=user,
        equity=D("8500.00"),
        balance=D("10000.00"),
        peak_equity=D("10000.00"),
        drawdown_pct=D("15.0000"),
        drawdown_level=Level.WARNING,
    )
    alert = DrawdownAlertFactory(user=user)
    gap = MarketAlertFactory(user=user)
    # when
    body = auth_client.get(STATUS_URL).json()
    # then
    assert body["system_status"] == "warning"
    assert body["any_positions_should_close"] is False
    assert body["drawdown"] == {
        "level": "warning",
        "equity": "8500.00",
        "balance": "10000.00",
        "peak_equity": "10000.00",
        "drawdown_pct": "15.00",
        "warning_pct": "15.00",
        "critical_pct": "20.00",
        "should_close_all": False,
        "since": alert.opened_at.isoformat().replace("+00:00", "Z"),
    }
    # (2049.50 − 1950.00) / 1950.00 × 100 = 5.1026 % → "5.10"
    assert body["market_alerts"] == [
        {
            "symbol": "XAUUSD",
            "condition": "price_gap",
            "level": "warning",
            "value_pct": "5.10",
            "threshold_pct": "5.00",
            "bid": "2049.40000000",
            "ask": "2049.60000000",
            "reference_price": "1950.00000000",
            "should_close_positions": False,
            "since": gap.opened_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert body["evaluated_at"].endswith("Z")


def test_status_never_shows_another_users_state(other_client, user):
    # given the user is critical
    EquitySnapshotFactory(user=user, drawdown_level=Level.CRITICAL)
    MarketAlertFactory(user=user, level=Level.CRITICAL)
    # when the other user asks
    body = other_client.get(STATUS_URL).json()
    # then they see their own (idle) state
    assert body == {
        "system_status": "idle",
        "any_positions_should_close": False,
        "drawdown": None,
        "market_alerts": [],
        "margin": None,
        "rules": [],
        "evaluated_at": None,
    }


@pytest.fixture
def history(user, other_user):
    """Alternating drawdown and market episodes one minute apart, oldest first, for both users."""
    now = timezone.now()
    rows = {}
    for owner in (user, other_user):
        made = []
        for i in range(6):
            factory = DrawdownAlertFactory if i % 2 == 0 else MarketAlertFactory
            alert = factory(user=owner, resolved_at=now if i < 4 else None)
            # created_at is auto_now_add: set the order explicitly (two rows share the newest timestamp)
            type(alert).objects.filter(pk=alert.pk).update(created_at=now - timedelta(minutes=max(5 - i, 1)))
            alert.refresh_from_db()
            made.append(alert)
        rows[owner.username] = made
    return rows["alice"], rows["bob"]


def _key(alert) -> tuple[str, int]:
    return ("drawdown" if isinstance(alert, DrawdownAlert) else "market", alert.id)


def test_alerts_merge_both_kinds_newest_first(auth_client, history):
    # given
    mine, _ = history
    # when
    body = auth_client.get(ALERTS_URL).json()
    # then ordered by (created_at, kind, id) descending: the two newest share a timestamp → market before drawdown
    expected = sorted(mine, key=lambda a: (a.created_at, _key(a)[0], a.id), reverse=True)
    assert [(row["kind"], row["id"]) for row in body["results"]] == [_key(a) for a in expected]
    assert body["next"] is None
    market_row = next(row for row in body["results"] if row["kind"] == "market")
    assert market_row["symbol"] == "XAUUSD"
    assert market_row["condition"] == "price_gap"


def test_alerts_cursor_walks_everything_once_and_stays_scoped(auth_client, other_client, history):
    # given
    mine, theirs = history
    # when paging with 2 per page
    seen, links, url = [], [], f"{ALERTS_URL}?page_size=2"
    while url:
        body = auth_client.get(url).json()
        assert len(body["results"]) <= 2
        seen.extend((row["kind"], row["id"]) for row in body["results"])
        url = body["next"]
        links += [url] if url else []
    # then every own alert exactly once, in order
    expected = sorted(mine, key=lambda a: (a.created_at, _key(a)[0], a.id), reverse=True)
    assert seen == [_key(a) for a in expected]
    # and the other user following those links only sees their own alerts
    theirs_keys = {_key(a) for a in theirs}
    for link in links:
        assert {(row["kind"], row["id"]) for row in other_client.get(link).json()["results"]} <= theirs_keys


@pytest.mark.parametrize(
    ("query", "kinds", "count"),
    [
        ("kind=drawdown", {"drawdown"}, 3),
        ("kind=market", {"market"}, 3),
        ("open=true", {"drawdown", "market"}, 2),
        ("open=false", {"drawdown", "market"}, 4),
        ("symbol=xauusd", {"market"}, 3),
        ("condition=wide_spread", set(), 0),
        ("level=critical", set(), 0),
        ("user={other_id}", {"drawdown", "market"}, 6),
    ],
)
def test_alert_filters_narrow(auth_client, other_user, history, query, kinds, count):
    # when
    response = auth_client.get(f"{ALERTS_URL}?{query.format(other_id=other_user.id)}")
    # then
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == count
    assert {row["kind"] for row in results} == kinds


@pytest.mark.parametrize("query", ["kind=other", "level=severe", "open=perhaps", "cursor=%%%", "created_after=x"])
def test_bad_alert_parameters_are_4xx(auth_client, query):
    assert auth_client.get(f"{ALERTS_URL}?{query}").status_code in (400, 404)


def test_config_get_creates_the_defaults(auth_client, user):
    # when
    body = auth_client.get(CONFIG_URL).json()
    # then defaults
    assert body["drawdown_warning_pct"] == "15.000"
    assert body["drawdown_critical_pct"] == "20.000"
    assert body["min_equity"] == "100.00"
    assert body["sync_stale_seconds"] == 60
    assert GuardConfig.objects.filter(user=user).count() == 1


def test_config_patch_updates_and_status_uses_it(auth_client, user):
    # given
    EquitySnapshotFactory(user=user)
    # when
    response = auth_client.patch(CONFIG_URL, {"drawdown_warning_pct": "10", "sync_stale_seconds": 30}, format="json")
    # then
    assert response.status_code == 200
    assert response.json()["drawdown_warning_pct"] == "10.000"
    assert GuardConfig.objects.get(user=user).sync_stale_seconds == 30
    # and the data layer sees it at once (the service bumps the generation)
    assert auth_client.get(STATUS_URL).json()["drawdown"]["warning_pct"] == "10.00"


@pytest.mark.parametrize(
    "body",
    [
        {"drawdown_warning_pct": "0.15"},  # a fraction taken for a percentage
        {"drawdown_warning_pct": "25"},  # above the critical 20
        {"spread_critical_pct": "101"},
        {"min_equity": "-1"},
        {"gap_warning_pct": "abc"},
        {"quote_stale_seconds": 0},  # every quote would be stale
        {"sync_stale_seconds": 0},
    ],
)
def test_config_patch_rejects_bad_thresholds_and_writes_nothing(auth_client, user, body):
    # given
    before = auth_client.get(CONFIG_URL).json()
    # when
    response = auth_client.patch(CONFIG_URL, body, format="json")
    # then
    assert response.status_code == 400
    assert set(response.json()) & set(body)
    assert auth_client.get(CONFIG_URL).json() == before


def test_config_is_per_user(auth_client, other_client, user, other_user):
    # given bob's account too
    default_account(other_user)
    # when
    auth_client.patch(CONFIG_URL, {"drawdown_critical_pct": "30"}, format="json")
    # then
    assert other_client.get(CONFIG_URL).json()["drawdown_critical_pct"] == "20.000"
    assert GuardConfig.objects.get(user=other_user).drawdown_critical_pct == D("20")
