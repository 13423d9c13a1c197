"""equity/, pnl/daily/ and stats/ over rows written directly, with the expected figures worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from guards.models import EquitySnapshot
from guards.tests.read_factories import EquitySnapshotFactory
from positions.models import Deal, Position
from positions.tests.read_factories import PositionFactory

pytestmark = pytest.mark.django_db
T = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def snapshot(user, at: datetime, *, balance="10000", equity="10000", margin="0", drawdown="0", cash_flow="0"):
    row = EquitySnapshotFactory.create(
        user=user,
        balance=D(balance),
        equity=D(equity),
        margin=D(margin),
        drawdown_pct=D(drawdown),
        cash_flow=D(cash_flow),  # balance operations the sync reported
    )
    EquitySnapshot.objects.filter(pk=row.pk).update(created_at=at)  # created_at is auto_now_add
    return row


def closed(user, at: datetime, pnl: str, symbol="EURUSD"):
    return PositionFactory(user=user, status=Position.Status.CLOSED, closed_at=at, realized_pnl=D(pnl), symbol=symbol)


def test_equity_is_downsampled_to_the_last_snapshot_of_each_interval(user, other_user, auth_client):
    snapshot(user, T, equity="10000")
    snapshot(user, T + timedelta(minutes=2), equity="10050")
    snapshot(user, T + timedelta(minutes=4), equity="10100", balance="10020", margin="505", drawdown="1.5")
    snapshot(user, T + timedelta(minutes=7), equity="9990")
    snapshot(user, T + timedelta(minutes=61), equity="10200")
    snapshot(other_user, T + timedelta(minutes=3), equity="77777")  # another user's, same bucket
    response = auth_client.get(
        "/api/v1/equity/", {"from": T.isoformat(), "to": (T + timedelta(hours=2)).isoformat(), "interval": "5m"}
    )
    assert response.status_code == 200, response.content
    points = response.json()["points"]
    # buckets 10:00 (last is 10:04), 10:05 (10:07), 11:00 (11:01); none empty listed
    assert [p["time"] for p in points] == ["2026-11-30T10:00:00Z", "2026-11-30T10:05:00Z", "2026-11-30T11:00:00Z"]
    assert [p["equity"] for p in points] == ["10100.00", "9990.00", "10200.00"]
    # margin level 10100 / 505 × 100 = 2000 %; none without margin
    assert (points[0]["balance"], points[0]["drawdown_pct"], points[0]["margin_level_pct"]) == (
        "10020.00",
        "1.50",
        "2000.00",
    )
    assert points[1]["margin_level_pct"] is None
    assert "77777" not in response.content.decode()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "5m", "from": "2026-11-01T00:00:00Z", "to": "2026-11-09T00:00:00Z"}, "from"),  # > 2000 points
        ({"interval": "2m"}, "interval"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_equity_range_and_parameters_are_bounded(auth_client, params, field):
    response = auth_client.get("/api/v1/equity/", params)
    assert response.status_code == 400 and field in response.json()


def deal(user, ticket: int, at: datetime, *, type=0, entry=1, profit="0", swap="0", commission="0", fee="0"):
    from accounts.tests.factories import default_account
    from positions.models import Deal

    return Deal.objects.create(
        user=user, account=default_account(user), ticket=ticket, position_identifier=0 if type > 1 else 700,
        symbol="" if type > 1 else "EURUSD", type=type, entry=entry, time=at, profit=D(profit), swap=D(swap),
        commission=D(commission), fee=D(fee),
    )  # fmt: skip


def test_daily_pnl_books_every_trading_deal_by_day_in_the_requested_time_zone(user, other_user, auth_client):
    # an entry with its commission, a close, a partial close after midnight in Athens, a deposit, a close
    deal(user, 1, datetime(2026, 11, 30, 9, 0, tzinfo=UTC), entry=0, commission="-3.50")  # −3.50
    deal(user, 2, datetime(2026, 11, 30, 12, 0, tzinfo=UTC), profit="100", swap="-1", commission="-3.50")  # 95.50
    deal(user, 3, datetime(2026, 11, 30, 23, 30, tzinfo=UTC), profit="-40", fee="-0.50")  # −40.50, 01:30 Athens
    deal(user, 4, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), type=2, entry=0, profit="1000")  # deposit: a cash flow
    deal(user, 5, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), profit="25")  # 25.00
    deal(other_user, 6, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), profit="999")  # another trader's
    params = {"from": "2026-11-29T22:00:00Z", "to": "2026-12-01T22:00:00Z"}  # 30 Nov and 1 Dec, Athens days
    body = auth_client.get("/api/v1/pnl/daily/", {**params, "tz": "Europe/Athens"}).json()
    assert body["realized_from"] == "deals"
    # Athens (UTC+2): 30 Nov = −3.50 + 95.50 = 92.00, one close (a win); 1 Dec = −40.50 + 25 = −15.50, two closes
    assert [(d["date"], d["realized_pnl"], d["trades"], d["wins"]) for d in body["days"]] == [
        ("2026-11-30", "92.00", 1, 1),
        ("2026-12-01", "-15.50", 2, 1),
    ]
    # in UTC the partial close belongs to 30 November: 92.00 − 40.50 = 51.50, then 25.00
    # (and 29 Nov 22:00 starts a UTC day of its own)
    utc = auth_client.get("/api/v1/pnl/daily/", {**params, "tz": "UTC"}).json()["days"]
    assert [(d["date"], d["realized_pnl"], d["trades"]) for d in utc] == [
        ("2026-11-29", "0.00", 0),
        ("2026-11-30", "51.50", 2),
        ("2026-12-01", "25.00", 1),
    ]
    assert auth_client.get("/api/v1/pnl/daily/", {"tz": "Mars/Olympus"}).status_code == 400


def test_stats_of_a_trade_list_and_an_equity_curve(user, other_user, auth_client):
    # the hand-worked list of history/tests/test_stats.py: 7 trades, net 180
    for i, pnl in enumerate(["100", "-50", "30", "0", "-20", "200", "-80"]):
        closed(user, T + timedelta(hours=i), pnl)
    closed(user, T + timedelta(hours=1), "500", symbol="XAUUSD")
    closed(other_user, T, "-999")
    # the account: balance 1000; by day 1 the trades closed after T (all symbols: −50 + 30 + 0 − 20 + 200 − 80
    # + 500 = 580) bring it to 1580; on day 2 a 500 deposit (balance 2080, equity 2130); day 3 equity 2000
    snapshot(user, T, equity="1000", balance="1000")
    snapshot(user, T + timedelta(days=1), equity="1580", balance="1580")
    snapshot(user, T + timedelta(days=2), equity="2130", balance="2080", cash_flow="500")
    snapshot(user, T + timedelta(days=3), equity="2000", balance="2080")
    params = {"from": T.isoformat(), "to": (T + timedelta(days=4)).isoformat(), "symbol": "eurusd"}
    body = auth_client.get("/api/v1/stats/", params).json()
    assert (body["trades"], body["wins"], body["losses"], body["breakeven"]) == (7, 3, 3, 1)  # XAUUSD left out
    # win rate 3/7 = 42.86 %, profit factor 330/150 = 2.20, expectancy 180/7 = 25.71
    assert (body["win_rate_pct"], body["profit_factor"], body["expectancy"]) == ("42.86", "2.20", "25.71")
    assert (body["average_win"], body["average_loss"], body["largest_win"], body["largest_loss"]) == (
        "110.00",
        "-50.00",
        "200.00",
        "-80.00",
    )
    # drawdown 2130 → 2000: 130 / 2130 = 6.10 %, from day 2 to day 3 (4 days fit 2000 points at 5m)
    assert body["curve_interval"] == "5m"
    assert body["max_drawdown"] == {
        "pct": "6.10",
        "amount": "130.00",
        "start": "2026-12-02T10:00:00Z",
        "end": "2026-12-03T10:00:00Z",
    }
    # flows: the deposit of 500 the day-2 sync recorded; none on days 1 and 3.
    # TWR = 1580/1000 × (2130 − 500)/1580 × 2000/2130 − 1 = 1630/1000 × 2000/2130 − 1 = 3260/2130 − 1 = 53.05 %
    assert body["time_weighted_return_pct"] == "53.05"


def btc_account_with_a_closed_trade(user, side="sell", mode=0):
    """A BTC account (currency_digits 8; netting 0 or hedging 2) whose buy or sell of 1.00 EURUSD opened
    with a −0.00000123 commission and closed for +0.00012345, both through the sync; returns the account."""
    open_type, close_type = (0, 1) if side == "buy" else (1, 0)
    from accounts.models import Account
    from reconciliation.tests.factories import Clock, broker_position, ingest, register, sync_payload

    clock = Clock()
    name = {"login": 777, "server": "Crypto-Live", "currency": "BTC", "currency_digits": 8, "margin_mode": mode}
    register(user, 1, server="Crypto-Live", login=777, side=side)
    entry = {"ticket": 101, "order": 1, "position_id": 1, "type": open_type, "entry": 0, "reason": 3,
             "symbol": "EURUSD", "volume": "1.00", "price": "1.09500", "commission": "-0.00000123"}  # fmt: skip
    close = {**entry, "ticket": 102, "order": 2, "type": close_type, "entry": 1, "price": "1.09400", "commission": "0",
             "profit": "0.00012345"}  # fmt: skip
    ingest(user, sync_payload(broker_time=clock.tick(), positions=[broker_position(1, type=open_type)], deals=[entry],
                              balance="0.50000000", equity="0.50000000", **name))  # fmt: skip
    # balance 0.50000000 + 0.00012345 (the closing deal) = 0.50012345: explained, no divergence
    summary = ingest(user, sync_payload(broker_time=clock.tick(), positions=[], deals=[close],
                                        balance="0.50012345", equity="0.50012345", **name)).summary  # fmt: skip
    assert summary["divergences"] == []
    return Account.objects.get(user=user, login=777)


SIDES_AND_MODES = [("buy", 2), ("sell", 2), ("buy", 0), ("sell", 0)]


@pytest.mark.parametrize(("side", "mode"), SIDES_AND_MODES)
def test_history_money_keeps_the_accounts_currency_digits(user, auth_client, side, mode):
    # given (issue 11 "Money precision", on the history reads) a BTC account's closed buy or sell, hedging
    # or netting: realized −0.00000123 + 0.00012345 = 0.00012222 BTC, balance 0.50012345 BTC
    account = btc_account_with_a_closed_trade(user, side, mode)
    query = {"account": account.pk}
    # when / then pnl/daily/ shows today's 0.00012222, not 0.00 (rounded to cents)
    days = auth_client.get("/api/v1/pnl/daily/", query).json()["days"]
    assert (days[-1]["realized_pnl"], days[-1]["trades"]) == ("0.00012222", 1)
    assert days[0]["realized_pnl"] == "0.00000000"
    # stats/ shows the one trade's 0.00012222 as net P&L, gross profit, expectancy and largest win
    stats = auth_client.get("/api/v1/stats/", query).json()
    assert (stats["net_pnl"], stats["gross_profit"], stats["gross_loss"]) == ("0.00012222", "0.00012222", "0.00000000")
    assert (stats["expectancy"], stats["largest_win"], stats["largest_loss"]) == ("0.00012222", "0.00012222", None)
    # equity/ shows the last balance and equity with 8 digits: 0.50012345
    (point,) = auth_client.get("/api/v1/equity/", query).json()["points"]
    assert (point["balance"], point["equity"], point["margin"]) == ("0.50012345", "0.50012345", "0.00000000")


PNL_URL = "/api/v1/pnl/"


def test_pnl_sums_every_trading_deal_and_shows_cash_flows_apart(user, other_user, auth_client):
    # given the deals of the daily test: an entry with its commission, a close, a partial close, a deposit,
    # a close, and another trader's deal
    deal(user, 1, datetime(2026, 11, 30, 9, 0, tzinfo=UTC), entry=0, commission="-3.50")  # −3.50
    deal(user, 2, datetime(2026, 11, 30, 12, 0, tzinfo=UTC), profit="100", swap="-1", commission="-3.50")  # 95.50
    deal(user, 3, datetime(2026, 11, 30, 23, 30, tzinfo=UTC), profit="-40", fee="-0.50")  # −40.50
    deal(user, 4, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), type=2, entry=0, profit="1000")  # deposit
    deal(user, 5, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), profit="25")  # 25.00
    deal(user, 6, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), type=2, entry=0, profit="-300")  # withdrawal
    deal(other_user, 7, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), profit="999")  # another trader's
    # when the whole history is asked for (no bounds)
    response = auth_client.get(PNL_URL)
    assert response.status_code == 200, response.content
    body = response.json()
    # then realized = −3.50 + 95.50 − 40.50 + 25.00 = 76.50; profit 100 − 40 + 25 = 85.00; swap −1.00;
    # commission −3.50 − 3.50 = −7.00; fee −0.50 (85 − 1 − 7 − 0.50 = 76.50); four trading deals, three
    # of them closes; cash flow 1,000 − 300 = 700.00, not in the P&L; the other trader's 999 nowhere
    assert (body["realized_pnl"], body["profit"], body["swap"], body["commission"], body["fee"]) == (
        "76.50", "85.00", "-1.00", "-7.00", "-0.50"
    )  # fmt: skip
    assert (body["trade_deals"], body["closing_deals"], body["cash_flow"]) == (4, 3, "700.00")
    assert (body["currency"], body["start"], body["end"], body["realized_from"]) == ("USD", None, None, "deals")
    assert body["account"] == Deal.objects.get(ticket=1).account_id
    # and over [30 Nov 12:00, 1 Dec 08:00): deals 2 and 3 only (from inclusive, to exclusive) → 95.50 − 40.50
    # = 55.00, two closes, no cash flow
    ranged = auth_client.get(PNL_URL, {"from": "2026-11-30T12:00:00Z", "to": "2026-12-01T08:00:00Z"}).json()
    assert (ranged["realized_pnl"], ranged["closing_deals"], ranged["cash_flow"]) == ("55.00", 2, "0.00")
    assert (ranged["start"], ranged["end"]) == ("2026-11-30T12:00:00Z", "2026-12-01T08:00:00Z")
    # one bound only: from 1 Dec → 25.00 realized, 700.00 cash flow
    since = auth_client.get(PNL_URL, {"from": "2026-12-01T00:00:00Z"}).json()
    assert (since["realized_pnl"], since["cash_flow"], since["end"]) == ("25.00", "700.00", None)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"), ({"from": "yesterday"}, "from"),
     ({"to": "soon"}, "to")],
)  # fmt: skip
def test_pnl_range_is_validated(auth_client, params, field):
    response = auth_client.get(PNL_URL, params)
    assert response.status_code == 400 and field in response.json()


def test_pnl_before_the_first_sync_is_zero(password, django_user_model):
    # a user without any account (no sync yet) reads zeros, no account and no currency
    from rest_framework.test import APIClient

    from conftest import access_token_for

    carol = django_user_model.objects.create_user(username="carol", password=password)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(carol)}")
    body = client.get(PNL_URL).json()
    assert (body["account"], body["currency"], body["realized_pnl"], body["cash_flow"]) == (None, None, "0.00", "0.00")


@pytest.mark.parametrize(("mode", "side", "open_type", "close_type"), [
    (2, "buy", 0, 1), (2, "sell", 1, 0), (0, "buy", 0, 1), (0, "sell", 1, 0),
])  # fmt: skip
def test_pnl_books_the_issue_partial_close_example(user, auth_client, mode, side, open_type, close_type):
    # given (issue 11 "Partial close") 1.00 EURUSD opened by the bot, closed 0.40 (profit 200) then 0.60
    # (profit 300), a buy or a sell, on a hedging or a netting account, through the sync
    from reconciliation.tests.factories import Clock, broker_position, ingest, register, sync_payload

    clock = Clock()
    register(user, 1, side=side)
    row = {"order": 0, "position_id": 1, "entry": 1, "reason": 3, "symbol": "EURUSD", "price": "1.10000"}
    steps = [
        ([broker_position(1, type=open_type, volume="1.00")], [{**row, "ticket": 101, "type": open_type, "entry": 0,
                                                                 "volume": "1.00", "price": "1.09500"}], "10000"),
        ([broker_position(1, type=open_type, volume="0.60")], [{**row, "ticket": 102, "type": close_type,
                                                                 "volume": "0.40", "profit": "200"}], "10200"),
        ([], [{**row, "ticket": 103, "type": close_type, "volume": "0.60", "profit": "300"}], "10500"),
    ]  # fmt: skip
    for positions, deals, balance in steps:
        ingest(user, sync_payload(broker_time=clock.tick(), positions=positions, deals=deals, balance=balance,
                                  equity=balance, margin_mode=mode))  # fmt: skip
    # when
    body = auth_client.get(PNL_URL).json()
    # then the account's realized P&L is 0 (entry) + 200 + 300 = 500.00, from three deals, two of them closes
    assert (body["realized_pnl"], body["trade_deals"], body["closing_deals"]) == ("500.00", 3, 2)


@pytest.mark.parametrize(("side", "mode"), SIDES_AND_MODES)
def test_pnl_keeps_the_accounts_currency_digits(user, auth_client, side, mode):
    # given the BTC account's closed buy or sell: −0.00000123 + 0.00012345 = 0.00012222 BTC realized
    account = btc_account_with_a_closed_trade(user, side, mode)
    body = auth_client.get(PNL_URL, {"account": account.pk}).json()
    assert (body["realized_pnl"], body["commission"], body["profit"], body["currency"]) == (
        "0.00012222", "-0.00000123", "0.00012345", "BTC"
    )  # fmt: skip
