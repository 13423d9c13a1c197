"""history views: ``equity/``, ``pnl/``, ``pnl/daily/`` and ``stats/`` — range-bounded reads of the user's history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin, money_context
from history.selectors import INTERVALS, closed_trades, daily_pnl, equity_series
from history.serializers import (
    DailyPnlOutputSerializer,
    DailyPnlQuerySerializer,
    EquityOutputSerializer,
    EquityQuerySerializer,
    PnlOutputSerializer,
    PnlQuerySerializer,
    StatsOutputSerializer,
    StatsQuerySerializer,
)
from history.stats import max_drawdown, time_weighted_return, trade_stats
from positions.selectors import deal_totals
from tradingsite.api import UserScopedAPIView


def _query(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class EquityView(AccountScopedMixin, UserScopedAPIView):
    """``GET equity/``: the equity curve, downsampled server-side to the last snapshot per interval.

    Parameters: from, to (ISO 8601; default the last day at 5m, 30 days at 1h, 365 days
    at 1d), interval (5m, 1h or 1d). At most 2000 points: a longer range is a 400.
    """

    @extend_schema(parameters=[ACCOUNT_PARAMETER, EquityQuerySerializer], responses=EquityOutputSerializer)
    def get(self, request: Request) -> Response:
        query = _query(EquityQuerySerializer, request)
        points = equity_series(
            user_id=self.user_id,
            account_id=self.request_account_id(),
            start=query["from"],
            end=query["to"],
            interval_s=INTERVALS[query["interval"]],
        )
        body = {
            "interval": query["interval"],
            "start": query["from"],
            "end": query["to"],
            "currency": points[-1]["currency"] if points else None,
            "points": points,
        }
        return Response(EquityOutputSerializer(body, context=money_context(self.request_account())).data)


class DailyPnlView(AccountScopedMixin, UserScopedAPIView):
    """``GET pnl/daily/``: realized P&L per day in the time zone ``tz`` (every day of the range listed).

    Realized P&L is booked from the MT5 deals of the day: profit + swap + commission + fee of every
    trading deal (entries and closes, partial ones included; deposits and withdrawals excluded).
    Default range: the last 30 days; at most 366.
    """

    @extend_schema(parameters=[ACCOUNT_PARAMETER, DailyPnlQuerySerializer], responses=DailyPnlOutputSerializer)
    def get(self, request: Request) -> Response:
        query = _query(DailyPnlQuerySerializer, request)
        tz = query["tz"]
        start = query["from"].astimezone(tz).date()
        end = (query["to"] - timedelta(microseconds=1)).astimezone(tz).date()
        days = daily_pnl(user_id=self.user_id, account_id=self.request_account_id(), start=start, end=end, tz=tz)
        body = {"tz": str(tz), "realized_from": "deals", "days": days}
        return Response(DailyPnlOutputSerializer(body, context=money_context(self.request_account())).data)


class PnlView(AccountScopedMixin, UserScopedAPIView):
    """``GET pnl/``: the account's realized P&L over a range, from its MT5 deals.

    realized_pnl = profit + swap + commission + fee of every trading deal (buy/sell) whose time is in
    [from, to): entry commissions and fees, partial closes, closes and reversals, the same figures
    positions/{id}/ books per position (docs/deals.md). Deposits, withdrawals and the other balance
    operations are not P&L: their sum is cash_flow. Both bounds are optional; without them the total
    covers every deal the service has stored for the account. Per day: pnl/daily/; trade statistics:
    stats/. Money in the account currency, rounded to its currency_digits. One aggregate query, not
    cached.
    """

    @extend_schema(parameters=[ACCOUNT_PARAMETER, PnlQuerySerializer], responses=PnlOutputSerializer)
    def get(self, request: Request) -> Response:
        query = _query(PnlQuerySerializer, request)
        account = self.request_account()
        totals = deal_totals(
            user_id=self.user_id, account_id=account["id"] if account else None, start=query["from"], end=query["to"]
        )
        body = {
            "account": account["id"] if account else None,
            "currency": account["currency"] if account else None,
            "start": query["from"],
            "end": query["to"],
            "realized_from": "deals",
            **totals,
        }
        return Response(PnlOutputSerializer(body, context=money_context(account)).data)


def curve_interval(span: timedelta) -> str:
    """The finest interval that keeps the equity curve of ``span`` within 2000 points."""
    return next(name for name, size in INTERVALS.items() if span <= timedelta(seconds=size * 2000))


class StatsView(AccountScopedMixin, UserScopedAPIView):
    """``GET stats/``: trade statistics and the equity curve's max drawdown and time-weighted return.

    Trades are the positions closed in [from, to) (optionally one symbol), each with its net realized
    P&L. Win rate = wins / trades; profit factor = gross profit / gross loss; expectancy = net P&L /
    trades. Max drawdown and the time-weighted return use the equity curve sampled at curve_interval
    (last value per interval); the return leaves out cash flows (deposits, withdrawals and the other
    balance operations the syncs reported). Default range: the last 30 days; at most 366.
    """

    @extend_schema(parameters=[ACCOUNT_PARAMETER, StatsQuerySerializer], responses=StatsOutputSerializer)
    def get(self, request: Request) -> Response:
        query = _query(StatsQuerySerializer, request)
        start, end = query["from"], query["to"]
        account_id = self.request_account_id()
        trades = closed_trades(
            user_id=self.user_id, account_id=account_id, start=start, end=end, symbol=query.get("symbol")
        )
        interval = curve_interval(end - start)
        size = INTERVALS[interval]
        curve = equity_series(user_id=self.user_id, account_id=account_id, start=start, end=end, interval_s=size)
        drawdown = max_drawdown([(point["time"], point["equity"]) for point in curve])
        # the flows into each point after the first (the first point only starts the chain)
        flows = [Decimal("0"), *(point["cash_flow"] for point in curve[1:])]
        body = {
            "start": start,
            "end": end,
            "symbol": query.get("symbol", "").upper() or None,
            **vars(trade_stats(trades)),
            "max_drawdown": {
                "pct": drawdown.pct,
                "amount": drawdown.amount,
                "start": drawdown.start,
                "end": drawdown.end,
            },
            "curve_interval": interval,
            "time_weighted_return_pct": time_weighted_return([point["equity"] for point in curve], flows),
        }
        return Response(StatsOutputSerializer(body, context=money_context(self.request_account())).data)
