"""history selectors: the equity curve downsampled in the database, closed trades, daily realized P&L.

Every read is scoped by ``user_id`` and bounded by a time range.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import BigIntegerField, Func, Max, Sum

from guards.models import EquitySnapshot
from history.stats import Trade
from positions.models import Deal, Position
from positions.selectors import CLOSING_DEAL_ENTRIES, TRADE_DEAL_TYPES

INTERVALS = {"5m": 300, "1h": 3600, "1d": 86400}


class EpochBucket(Func):
    """``floor(epoch seconds of the expression / size)``: the number of the time bucket a row falls in."""

    output_field = BigIntegerField()

    def __init__(self, expression, size: int):
        super().__init__(expression)
        self.size = int(size)

    def as_sql(self, compiler, connection, **extra_context):
        inner, params = compiler.compile(self.source_expressions[0])
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {inner}) / {self.size}) AS BIGINT)", params

    def as_sqlite(self, compiler, connection, **extra_context):
        inner, params = compiler.compile(self.source_expressions[0])
        return f"(CAST(strftime('%%s', {inner}) AS INTEGER) / {self.size})", params


def equity_series(
    *, user_id: int, start: datetime, end: datetime, interval_s: int, account_id: int | None = None
) -> list[dict]:
    """The last equity snapshot of each ``interval_s`` bucket in [start, end), oldest first.

    Downsampled in the database (one GROUP BY on the (user, created_at) index, then the chosen rows
    by primary key). Each item: ``time`` (bucket start, UTC), ``balance``, ``equity``,
    ``drawdown_pct`` (from the guard's peak), ``margin``, ``margin_level_pct`` (equity / margin × 100,
    MT5's margin level; None without margin in use), ``currency``, and ``cash_flow``: the balance
    operations (deposits, withdrawals: MT5 deal types 2–12, 15–17, ``guards.cashflow``) the syncs of the
    bucket recorded, i.e. those since the previous item's snapshot.
    """
    snapshots = EquitySnapshot.objects.filter(user_id=user_id, created_at__gte=start, created_at__lt=end)
    if account_id is not None:  # one account's curve (None: a user with no account yet has none)
        snapshots = snapshots.filter(account_id=account_id)
    last_ids = (
        snapshots.order_by()
        .annotate(bucket=EpochBucket("created_at", interval_s))
        .values("bucket")
        .annotate(last_id=Max("id"), cash_flow=Sum("cash_flow"))
        .values_list("bucket", "last_id", "cash_flow")
    )
    buckets = {bucket: last_id for bucket, last_id, _flow in last_ids}
    flows = {bucket: flow for bucket, _last_id, flow in last_ids}
    if not buckets:
        return []
    rows = {
        row["pk"]: row
        # The window again: on PostgreSQL the table is partitioned by month on created_at, so the id
        # lookups read only the window's partitions.
        for row in EquitySnapshot.objects.filter(
            pk__in=buckets.values(), created_at__gte=start, created_at__lt=end
        ).values("pk", "balance", "equity", "drawdown_pct", "margin", "currency")
    }
    series = []
    for bucket in sorted(buckets):
        row = rows[buckets[bucket]]
        margin = row["margin"]
        series.append(
            {
                "time": datetime.fromtimestamp(bucket * interval_s, tz=start.tzinfo),
                "balance": row["balance"],
                "equity": row["equity"],
                "drawdown_pct": row["drawdown_pct"],
                "margin": margin,
                "margin_level_pct": row["equity"] * 100 / margin if margin else None,
                "currency": row["currency"],
                "cash_flow": flows[bucket] or Decimal("0"),
            }
        )
    return series


def closed_trades(
    *, user_id: int, start: datetime, end: datetime, symbol: str | None = None, account_id: int | None = None
) -> list[Trade]:
    """The user's positions closed in [start, end) as :class:`history.stats.Trade` (net realized P&L), by close time.

    The realized P&L is the ledger's ``realized_pnl`` (profit + swap + commission + fee of all the
    position's deals, or inferred from the last snapshot; docs/deals.md, "Realized P&L"; account
    currency); a closed row without one is left out.
    """
    positions = Position.objects.filter(
        user_id=user_id,
        status=Position.Status.CLOSED,
        closed_at__gte=start,
        closed_at__lt=end,
        realized_pnl__isnull=False,
    )
    if account_id is not None:
        positions = positions.filter(account_id=account_id)
    if symbol:
        positions = positions.filter(symbol=symbol.upper())
    rows = positions.order_by("closed_at", "pk").values_list("closed_at", "symbol", "realized_pnl")
    return [
        Trade(closed_at=closed_at, symbol=sym, pnl=pnl)
        for closed_at, sym, pnl in rows
        if closed_at is not None and pnl is not None  # excluded above; for the type checker
    ]


def daily_pnl(*, user_id: int, start: date, end: date, tz: ZoneInfo, account_id: int | None = None) -> list[dict]:
    """Realized P&L per calendar day in ``tz`` for the days [start, end], every day listed (0 when none).

    From the MT5 deals, as the broker books them: a day's ``realized_pnl`` is the sum of profit + swap +
    commission + fee of every trading deal (types buy/sell) whose time falls in that day — entry deals
    (their commission and fee), partial and full closes alike; balance operations are cash flows and are
    left out. ``trades`` counts the closing deals (entry out, inout, out_by) and ``wins`` those whose own
    money is positive. Account currency.
    """
    first = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    last = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    deals = Deal.objects.filter(user_id=user_id, type__in=TRADE_DEAL_TYPES, time__gte=first, time__lt=last)
    if account_id is not None:
        deals = deals.filter(account_id=account_id)
    totals: dict[date, Decimal] = defaultdict(Decimal)
    closes: dict[date, list[Decimal]] = defaultdict(list)
    for at, entry, profit, swap, commission, fee in deals.values_list(
        "time", "entry", "profit", "swap", "commission", "fee"
    ):
        day = at.astimezone(tz).date()
        money = profit + swap + commission + fee
        totals[day] += money
        if entry in CLOSING_DEAL_ENTRIES:
            closes[day].append(money)
    out = []
    day = start
    while day <= end:
        out.append(
            {
                "date": day,
                "realized_pnl": totals.get(day, Decimal("0")),
                "trades": len(closes.get(day, [])),
                "wins": sum(m > 0 for m in closes.get(day, [])),
            }
        )
        day += timedelta(days=1)
    return out
