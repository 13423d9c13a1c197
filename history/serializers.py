"""history serializers: query strings (validated: 400 with field errors) and the bodies of the three reads."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone
from rest_framework import serializers

from accounts.fields import MoneyOutputField
from history.selectors import INTERVALS
from tradingsite.api import rounded_decimal

MAX_POINTS = 2000  # buckets per equity/ answer
MAX_RANGE = timedelta(days=366)  # stats/ and pnl/daily/
DEFAULT_WINDOW = {"5m": timedelta(days=1), "1h": timedelta(days=30), "1d": timedelta(days=365)}


class RangeQuerySerializer(serializers.Serializer):
    """``from`` (inclusive) and ``to`` (exclusive), ISO 8601 with a time zone; ``to`` defaults to now."""

    to = serializers.DateTimeField(required=False, help_text="End (exclusive); default now.")

    def _range(self, attrs, default_window: timedelta, max_range: timedelta):
        end = attrs.get("to") or timezone.now()
        start = attrs.get("from") or end - default_window
        if start >= end:
            raise serializers.ValidationError({"from": "Must be before 'to'."})
        if end - start > max_range:
            raise serializers.ValidationError({"from": f"The range is at most {max_range.days} days."})
        return {**attrs, "from": start, "to": end}


# "from" is a Python keyword: declared through the fields mapping.
RangeQuerySerializer._declared_fields["from"] = serializers.DateTimeField(
    required=False, help_text="Start (inclusive); the default depends on the endpoint."
)


class EquityQuerySerializer(RangeQuerySerializer):
    """Query of ``GET equity/``: at most 2000 buckets per answer (e.g. 6.9 days at 5m, 83 days at 1h)."""

    interval = serializers.ChoiceField(choices=list(INTERVALS), default="1h")

    def validate(self, attrs):
        interval = attrs["interval"]
        size = timedelta(seconds=INTERVALS[interval])
        return self._range(attrs, DEFAULT_WINDOW[interval], size * MAX_POINTS)


class StatsQuerySerializer(RangeQuerySerializer):
    """Query of ``GET stats/``: default the last 30 days, at most 366."""

    symbol = serializers.RegexField(r"^[A-Za-z0-9._#-]{1,32}$", required=False, help_text="One symbol only.")

    def validate(self, attrs):
        return self._range(attrs, timedelta(days=30), MAX_RANGE)


class DailyPnlQuerySerializer(RangeQuerySerializer):
    """Query of ``GET pnl/daily/``: days in ``tz`` (IANA name, default UTC); default the last 30 days."""

    tz = serializers.CharField(
        required=False, default="UTC", max_length=64, help_text="IANA time zone, e.g. Europe/Athens."
    )

    def validate_tz(self, value: str) -> ZoneInfo:
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise serializers.ValidationError("Unknown time zone.") from exc

    def validate(self, attrs):
        return self._range(attrs, timedelta(days=30), MAX_RANGE)


class PnlQuerySerializer(serializers.Serializer):
    """Query of ``GET pnl/``: ``from`` (inclusive) and ``to`` (exclusive), ISO 8601 with a time zone; each
    optional (left out: no bound, so neither given sums every deal of the account)."""

    to = serializers.DateTimeField(required=False, help_text="End (exclusive); default: no bound.")

    def validate(self, attrs):
        start, end = attrs.get("from"), attrs.get("to")
        if start is not None and end is not None and start >= end:
            raise serializers.ValidationError({"from": "Must be before 'to'."})
        return {**attrs, "from": start, "to": end}


PnlQuerySerializer._declared_fields["from"] = serializers.DateTimeField(
    required=False, help_text="Start (inclusive); default: no bound (the account's first deal)."
)


class PnlOutputSerializer(serializers.Serializer):
    """Body of ``GET pnl/``: the account's realized P&L from its MT5 deals over [start, end), in the account
    currency rounded to its currency_digits."""

    account = serializers.IntegerField(allow_null=True, help_text="The account id; null before the first sync.")
    currency = serializers.CharField(allow_null=True)
    start = serializers.DateTimeField(allow_null=True, help_text="Null: from the first deal.")
    end = serializers.DateTimeField(allow_null=True, help_text="Null: up to the last deal.")
    realized_from = serializers.CharField(help_text="deals: the account's trading deals (MT5 history_deals_get).")
    realized_pnl = MoneyOutputField(help_text="profit + swap + commission + fee of every trading deal.")
    profit = MoneyOutputField()
    swap = MoneyOutputField()
    commission = MoneyOutputField(help_text="Entry and exit commissions.")
    fee = MoneyOutputField()
    trade_deals = serializers.IntegerField(help_text="Trading deals (buy/sell): entries and closes.")
    closing_deals = serializers.IntegerField(help_text="Deals that closed volume: entry out, inout, out_by.")
    cash_flow = MoneyOutputField(
        help_text="Balance operations (deposits +, withdrawals −, charges, bonuses …): not P&L, shown apart."
    )


class EquityPointSerializer(serializers.Serializer):
    """One bucket of the equity curve: the last snapshot in it (money rounded to the account's currency_digits)."""

    time = serializers.DateTimeField(help_text="Bucket start (UTC).")
    balance = MoneyOutputField()
    equity = MoneyOutputField()
    drawdown_pct = rounded_decimal(help_text="Below the guard's peak equity, percent.")
    margin = MoneyOutputField()
    margin_level_pct = rounded_decimal(allow_null=True, help_text="Equity / margin × 100; null with no margin used.")


class EquityOutputSerializer(serializers.Serializer):
    """Body of ``GET equity/``."""

    interval = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    currency = serializers.CharField(allow_null=True)
    points = EquityPointSerializer(many=True)


class DailyPnlDaySerializer(serializers.Serializer):
    """One day: realized P&L of the day's trading deals (account currency, rounded to its currency_digits),
    closing deals (trades) and the winning ones."""

    date = serializers.DateField()
    realized_pnl = MoneyOutputField()
    trades = serializers.IntegerField()
    wins = serializers.IntegerField()


class DailyPnlOutputSerializer(serializers.Serializer):
    """Body of ``GET pnl/daily/``; ``realized_from`` names where realized P&L comes from."""

    tz = serializers.CharField()
    realized_from = serializers.CharField(
        help_text="deals: profit + swap + commission + fee of the day's trading deals (MT5 history_deals_get)."
    )
    days = DailyPnlDaySerializer(many=True)


class DrawdownSerializer(serializers.Serializer):
    """Largest fall of the equity curve from a running peak: percent, amount, peak (start) and trough (end)."""

    pct = rounded_decimal()
    amount = MoneyOutputField()
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)


class StatsOutputSerializer(serializers.Serializer):
    """Body of ``GET stats/`` (money in the account currency rounded to its currency_digits, rates in percent
    rounded to 2 dp; null where undefined)."""

    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    symbol = serializers.CharField(allow_null=True)
    trades = serializers.IntegerField()
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    breakeven = serializers.IntegerField()
    win_rate_pct = rounded_decimal(allow_null=True)
    net_pnl = MoneyOutputField()
    gross_profit = MoneyOutputField()
    gross_loss = MoneyOutputField()
    profit_factor = rounded_decimal(allow_null=True)
    expectancy = MoneyOutputField(allow_null=True, help_text="Net P&L per trade.")
    average_win = MoneyOutputField(allow_null=True)
    average_loss = MoneyOutputField(allow_null=True)
    largest_win = MoneyOutputField(allow_null=True)
    largest_loss = MoneyOutputField(allow_null=True)
    max_drawdown = DrawdownSerializer()
    curve_interval = serializers.CharField(help_text="Sampling of the equity curve the drawdown and return use.")
    time_weighted_return_pct = rounded_decimal(
        allow_null=True, help_text="Cash flows (deposits, withdrawals) left out."
    )
