"""``GET stats/`` of a replayed trade list equals the figures this test works out from the broker itself.

The replay's simulated MT5 broker (``replay.broker``) and SMA-crossover bot trade the synthetic EURUSD
series (``replay.tests.synthetic``: trades end by TP, SL and the bot's reversal) through the real API
(positions registered, one sync per bar). The expected statistics are computed here, independently of
``history.stats``: from the broker's own closing deals (realized P&L = profit + swap + commission per
closed lifecycle) and the equity it reported, with exact rational arithmetic (``fractions.Fraction``)
and the definitions the API documents (freqtrade's ``/profit``): win rate = wins / trades × 100,
profit factor = gross profit / |gross loss|, expectancy = net P&L / trades, max drawdown = the largest
fall from a running peak of the equity curve (last value per hour, the API's ``curve_interval`` for
this 9-day range) in percent of that peak. The API renders money and rates rounded half-up to 2 dp.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import access_token_for
from replay import faults as F
from replay.bars import read_bars
from replay.bot import SmaCrossBot
from replay.broker import SPECS, Broker
from replay.report import expected_lifecycles
from replay.tests.synthetic import write_series
from tradingsite.throttling import SyncThrottle

pytestmark = pytest.mark.django_db

FROM = datetime(2024, 1, 1, tzinfo=UTC)  # the series' first bar
TO = datetime(2024, 1, 10, tzinfo=UTC)  # after its last (150 hourly bars and a weekend)


class ApiSink:
    """The replay engine's sink on the Django test client: every call through the real API."""

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self.equity: list[tuple[datetime, Fraction]] = []  # (arrival, equity) of each accepted sync
        self.now = datetime(2024, 1, 1, tzinfo=UTC)  # the service's clock: the replayed bar's time

    def clock(self) -> datetime:
        return self.now

    def register_position(self, payload: dict) -> dict:
        response = self.client.post("/api/v1/positions/", payload, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def declare_stops(self, position_id: int | None, ticket: int, payload: dict) -> dict:
        response = self.client.patch(f"/api/v1/positions/{position_id}/", payload, format="json")
        assert response.status_code == 200, response.content
        return response.json()

    def post_sync(self, payload: dict) -> dict:
        moment = datetime.fromisoformat(payload["broker_time"].replace("Z", "+00:00"))
        self.now = moment + timedelta(seconds=1)  # a worker posts what it read a moment ago
        response = self.client.post("/api/v1/reconciliation/syncs/", payload, format="json")
        assert response.status_code == 201, response.content
        self.equity.append((self.now, Fraction(payload["account"]["equity"])))
        return response.json()


def two_dp(value: Fraction) -> str:
    """``value`` rounded half-up to 2 dp, as the API renders money and rates."""
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP))


@pytest.fixture
def replayed(django_user_model, tmp_path, monkeypatch):
    """A fresh user whose account the replay traded; returns (its API client, the engine, the sink)."""
    from replay.engine import Engine

    monkeypatch.setattr(SyncThrottle, "rate", "100000/min", raising=False)  # ~150 syncs in seconds
    trader = django_user_model.objects.create_user(username="replayed", password="replayed-pass-2026")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(trader)}")
    sink = ApiSink(client)
    # The replay runs as if live: the service's clock (snapshot times, the equity curve's buckets)
    # follows the bars, so the 2024 range holds the equity curve as well as the closed trades.
    monkeypatch.setattr(timezone, "now", sink.clock)
    engine = Engine(
        bars=read_bars(write_series(tmp_path / "bars.csv")),
        broker=Broker(spec=SPECS["EURUSD"], balance=Decimal("10000.00")),
        bot=SmaCrossBot(fast=3, slow=8, lots=Decimal("1.00"), sl_pips=10, tp_pips=50),  # 10 TP/bot wins, 2 SL losses
        faults=F.FaultInjector(seed=1, bar_rate=0, entry_rate=0),
        sink=sink,
    )
    engine.run()
    return client, engine, sink


def test_stats_of_a_replayed_trade_list_equal_the_brokers_own_figures(replayed):
    client, engine, sink = replayed
    # the broker's closed lifecycles: realized P&L = Σ (profit + swap + commission) of each one's deals
    pnls = [Fraction(str(c["realized_pnl"])) for c in expected_lifecycles(engine.broker.deals)]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    assert len(wins) >= 3 and len(losses) >= 2  # the series brings TP wins and SL losses

    response = client.get("/api/v1/stats/", {"from": FROM.isoformat(), "to": TO.isoformat()})
    assert response.status_code == 200, response.content
    body = response.json()

    assert (body["trades"], body["wins"], body["losses"]) == (len(pnls), len(wins), len(losses))
    assert body["breakeven"] == len(pnls) - len(wins) - len(losses)
    assert body["net_pnl"] == two_dp(sum(pnls, Fraction(0)))
    assert body["gross_profit"] == two_dp(sum(wins, Fraction(0)))
    assert body["gross_loss"] == two_dp(sum(losses, Fraction(0)))
    assert body["win_rate_pct"] == two_dp(Fraction(len(wins) * 100, len(pnls)))
    assert body["profit_factor"] == two_dp(sum(wins, Fraction(0)) / -sum(losses, Fraction(0)))
    assert body["expectancy"] == two_dp(sum(pnls, Fraction(0)) / len(pnls))
    assert body["average_win"] == two_dp(sum(wins, Fraction(0)) / len(wins))
    assert body["average_loss"] == two_dp(sum(losses, Fraction(0)) / len(losses))
    assert (body["largest_win"], body["largest_loss"]) == (two_dp(max(wins)), two_dp(min(losses)))

    # max drawdown of the equity the broker reported, last value per hour of arrival (the API's curve for
    # 9 days; a sync arrives 1 s after its broker time, the bar's last second, so in the next hour)
    assert body["curve_interval"] == "1h"
    hourly: dict[int, tuple[datetime, Fraction]] = {}
    for moment, equity in sink.equity:
        hourly[int(moment.timestamp()) // 3600] = (moment.replace(minute=0, second=0, microsecond=0), equity)
    peak_time, peak = None, None
    worst = (Fraction(0), Fraction(0), None, None)  # (fall / peak, fall, peak time, trough time)
    for _bucket, (moment, equity) in sorted(hourly.items()):
        if peak is None or equity > peak:
            peak_time, peak = moment, equity
        elif (peak - equity) / peak > worst[0]:
            worst = ((peak - equity) / peak, peak - equity, peak_time, moment)
    assert worst[0] > 0
    drawdown = body["max_drawdown"]
    assert drawdown["pct"] == two_dp(worst[0] * 100)
    assert drawdown["amount"] == two_dp(worst[1])
    assert (datetime.fromisoformat(drawdown["start"]), datetime.fromisoformat(drawdown["end"])) == worst[2:]
    # no deposit or withdrawal: the time-weighted return is the curve's last equity over its first, − 1.
    # (It used to infer cash flows from balance changes with each trade in the hour of its close time,
    # while the balance moves in the hour its sync arrives: a trade closed at 10:23 and reported at
    # 11:00 became a withdrawal at 10:00 and a deposit at 11:00, and the return read 44.44 % here.)
    curve = [equity for _bucket, (_moment, equity) in sorted(hourly.items())]
    assert body["time_weighted_return_pct"] == two_dp((curve[-1] / curve[0] - 1) * 100)
