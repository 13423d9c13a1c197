"""reconciliation serializers: the MT5-shaped sync payload and the log row output.

The input serializers normalise what an MT5 worker forwards from ``account_info()``,
``positions_get()``, ``symbol_info_tick()``, ``history_deals_get()`` and ``symbol_info()``:

* ``type`` 0/1 or "buy"/"sell" → "buy"/"sell";
* ``sl``/``tp`` of 0 (or "0", or null) → None (no stop);
* times as epoch seconds (int/float) or ISO 8601 *with* an offset → aware UTC datetimes;
* numbers as JSON numbers or strings → ``Decimal``, rounded half-up to the column's decimal places;
  NaN and ±Infinity are rejected;
* unknown keys (``magic``, ``comment``, ``time_msc`` …) are ignored.

``positions`` absent or null means "unknown" (the worker could not read them) and validates to
None; ``[]`` means the account is flat.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.fields import MoneyModelSerializer
from accounts.money import MAX_CURRENCY_DIGITS, MAX_LOGIN, MAX_UTC_OFFSET_MINUTES, MIN_UTC_OFFSET_MINUTES, MONEY
from guards.sessions import MAX_SESSIONS, SECONDS_PER_DAY
from reconciliation.models import (
    LOG_CLOSE_FIELDS,
    LOG_EVENT_FIELDS,
    LOG_POSITION_FIELDS,
    LOG_SYNC_FIELDS,
    LOG_TEXT_FIELDS,
    ReconciliationLog,
)

MAX_POSITIONS = 1000
MAX_QUOTES = 500
MAX_DEALS = 1000
MAX_SYMBOLS = 500
MAX_BROKER_CLOCK_AHEAD = timedelta(minutes=5)
# MT5 reports times as seconds since 1970-01-01 (server time); anything earlier is not an MT5 time (and a
# quote before 1958 would make its age overflow the integer column), anything from 2100 on is absurd.
MIN_BROKER_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_BROKER_TIME = datetime(2100, 1, 1, tzinfo=UTC)
# MT5 SYMBOL_TRADE_CALC_MODE values (positions.models.Instrument.CalcMode).
CALC_MODES = frozenset({0, 1, 2, 3, 4, 5, 32, 33, 34, 37, 38, 39, 64})
MAX_BIGINT = 2**63 - 1  # BIGINT columns (tickets, identifiers, magic numbers)


# --------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------
# Decimal strings (or JSON numbers), as MT5 reports them.
@extend_schema_field({"oneOf": [{"type": "string", "format": "decimal"}, {"type": "number"}]})
class FiniteDecimalField(serializers.Field):
    """A finite decimal from a JSON number or string, rounded half-up to ``decimal_places``.

    Rejects booleans, NaN, ±Infinity and values whose integer part exceeds
    ``max_digits - decimal_places`` digits. ``positive`` requires > 0; ``zero_is_none`` maps 0 to None
    (MT5's "no stop" for sl/tp); ``exact`` refuses values with more decimals instead of rounding them
    (volumes in lots).
    """

    default_error_messages = {
        "invalid": "A valid finite number is required.",
        "positive": "Must be greater than 0.",
        "too_large": "Too large: at most {digits} digits before the decimal point.",
        "inexact": "At most {places} decimal places.",
    }

    def __init__(
        self,
        *,
        max_digits: int = 20,
        decimal_places: int = 8,
        positive: bool = False,
        zero_is_none: bool = False,
        exact: bool = False,
        **kwargs,
    ):
        self.exact = exact
        self.max_digits = max_digits
        self.decimal_places = decimal_places
        self.positive = positive
        self.zero_is_none = zero_is_none
        self.quantum = Decimal(1).scaleb(-decimal_places)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float | str):
            self.fail("invalid")
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        try:
            # str(float) is Python's shortest round-trip repr: 0.1 → "0.1", never 0.1000000000000000055…
            value = Decimal(str(data).strip())
        except (InvalidOperation, ValueError):
            self.fail("invalid")
        if not value.is_finite():
            self.fail("invalid")
        if self.zero_is_none and value == 0:
            return None
        if self.positive and value <= 0:
            self.fail("positive")
        integer_digits = self.max_digits - self.decimal_places
        limit = Decimal(10) ** integer_digits
        # |value| ≥ 10^n ⇔ its leading digit's exponent ≥ n: read from the representation, before any
        # arithmetic (abs("1e+1000000") overflows the decimal context; quantize would exceed its precision).
        if value != 0 and value.adjusted() >= integer_digits:
            self.fail("too_large", digits=integer_digits)
        rounded = value.quantize(self.quantum, rounding=ROUND_HALF_UP)
        if self.exact and rounded != value:  # volumes: 0.105 lots is not a broker volume, never round it
            self.fail("inexact", places=self.decimal_places)
        value = rounded
        if abs(value) >= limit:  # 99.999 rounded up to 100.00
            self.fail("too_large", digits=integer_digits)
        if self.positive and value <= 0:  # 0.000000001 rounds to 0
            self.fail("positive")
        return value

    def to_representation(self, value):
        return None if value is None else str(value)


def _price(**kwargs) -> FiniteDecimalField:
    return FiniteDecimalField(max_digits=20, decimal_places=8, **kwargs)


def _money(**kwargs) -> FiniteDecimalField:
    # 18 integer digits and 8 decimals (the money columns); the service quantizes to the account's
    # currency_digits once the account is known.
    return FiniteDecimalField(max_digits=MONEY["max_digits"], decimal_places=MONEY["decimal_places"], **kwargs)


def _lots(**kwargs) -> FiniteDecimalField:
    # Lots in steps of 0.01: a volume with more decimals is refused (400), never rounded into the ledger.
    return FiniteDecimalField(max_digits=12, decimal_places=2, exact=True, **kwargs)


class ServerClockTime(datetime):
    """A time read from MT5 epoch seconds stamped in the trade server's clock, not yet shifted to UTC.

    MT5 reports ``time`` of positions, deals and ticks as seconds since 1970 on the *server's* clock
    (often UTC+2/+3). The sync service subtracts the account's ``server_utc_offset`` from such values
    (``reconciliation.services.normalize_server_times``); ISO strings carry their own offset and are not
    of this type.
    """


# Epoch seconds or ISO 8601 with an offset.
@extend_schema_field({"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}, {"type": "number"}]})
class BrokerTimeField(serializers.Field):
    """A time as epoch seconds (int/float, MT5's ``time``) or ISO 8601 with an offset → aware UTC datetime.

    Naive ISO strings are rejected: a broker time without an offset is ambiguous. With
    ``server_clock`` (the ``time`` of positions, deals and quotes), epoch seconds are MT5 server time and
    come back as :class:`ServerClockTime` for the service to shift by the account's UTC offset.
    """

    def __init__(self, *, server_clock: bool = False, **kwargs):
        self.server_clock = server_clock
        super().__init__(**kwargs)

    default_error_messages = {
        "invalid": "Expected epoch seconds or an ISO 8601 time with an offset (e.g. 2026-11-30T10:00:05Z).",
        "naive": "ISO 8601 times need an offset (Z or ±hh:mm).",
        "range": "Time out of range: MT5 times run from 1970-01-01 (epoch 0) to before 2100-01-01.",
    }

    def to_internal_value(self, data):
        value = self._parse(data)
        if not MIN_BROKER_TIME <= value < MAX_BROKER_TIME:
            self.fail("range")
        return value

    def _parse(self, data) -> datetime:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int | float):
            if not math.isfinite(data):
                self.fail("invalid")
            try:
                moment = datetime.fromtimestamp(data, tz=UTC)
            except (OverflowError, OSError, ValueError):
                self.fail("range")
            if not self.server_clock:
                return moment
            return ServerClockTime(*moment.timetuple()[:6], moment.microsecond, tzinfo=UTC)
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(data.strip())
        except ValueError:
            self.fail("invalid")
        if parsed is None:
            self.fail("invalid")
        if timezone.is_naive(parsed):
            self.fail("naive")
        return parsed.astimezone(UTC)

    def to_representation(self, value):
        return value.isoformat()


# MT5 POSITION_TYPE_BUY/SELL (0/1) or "buy"/"sell".
@extend_schema_field({"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "string", "enum": ["buy", "sell"]}]})
class PositionTypeField(serializers.Field):
    """MT5 position type: 0/1 (``POSITION_TYPE_BUY``/``SELL``) or "buy"/"sell" → "buy"/"sell"."""

    default_error_messages = {"invalid": "Unknown type {value!r}: expected 0 (buy), 1 (sell), 'buy' or 'sell'."}
    MAP = {0: "buy", 1: "sell", "buy": "buy", "sell": "sell", "0": "buy", "1": "sell"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid", value=data)
        key = data.strip().lower() if isinstance(data, str) else data
        if key not in self.MAP:
            self.fail("invalid", value=data)
        return self.MAP[key]

    def to_representation(self, value):
        return value


class SymbolField(serializers.CharField):
    """A symbol name, stripped and upper-cased (``Instrument.symbol`` is upper case).

    A sane MT5 name: a letter or digit, then letters, digits and the suffix marks brokers use
    (``.`` ``_`` ``#`` ``-`` ``+``), at most 32 characters: ``GBPUSD.r``, ``NAS100``, ``#AAPL``, ``US30_m``.
    """

    default_error_messages = {
        "name": "Not a symbol name: letters, digits and . _ # - + only, starting with a letter, digit or #."
    }
    NAME = re.compile(r"^[A-Z0-9#][A-Z0-9._#+\-]*$")

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data).strip().upper()
        if value and not self.NAME.match(value):
            self.fail("name")
        return value


class StrictIntegerField(serializers.IntegerField):
    """An integer that refuses booleans and non-integral floats (JSON ``true`` is not ticket 1)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or (isinstance(data, float) and not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(data)


# --------------------------------------------------------------------------------------------
# Payload parts
# --------------------------------------------------------------------------------------------
class AccountInputSerializer(serializers.Serializer):
    """MT5 ``account_info()``: ``server`` and ``login`` name the account; money in the account currency.

    ``server_utc_offset`` (minutes, e.g. 120 for UTC+2) is the trade server's clock offset from UTC,
    which the worker knows; it turns MT5's server-time ``time`` fields into UTC.
    """

    login = StrictIntegerField(min_value=1, max_value=MAX_LOGIN)
    server = serializers.CharField(max_length=64, help_text="MT5 trade server name, e.g. MetaQuotes-Demo.")
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    company = serializers.CharField(max_length=128, required=False, allow_blank=True)
    currency = serializers.RegexField(r"^[A-Za-z]{3,8}$", max_length=8)
    currency_digits = StrictIntegerField(min_value=0, max_value=MAX_CURRENCY_DIGITS, required=False)
    margin_mode = StrictIntegerField(min_value=0, max_value=2, required=False)
    leverage = StrictIntegerField(min_value=0, max_value=2**31 - 1, required=False)
    server_utc_offset = StrictIntegerField(
        min_value=MIN_UTC_OFFSET_MINUTES, max_value=MAX_UTC_OFFSET_MINUTES, required=False
    )
    balance = _money()
    equity = _money()
    margin = _money(required=False, default=Decimal("0"))
    margin_free = _money(required=False, default=Decimal("0"))
    credit = _money(required=False, default=Decimal("0"))
    # Margin guard inputs (account_info() names). margin_level in percent (0 = no margin in use);
    # margin_so_mode 0 = the two levels are margin levels in percent, 1 = amounts in the account currency;
    # the levels are absent when not sent (the guard then uses typical levels and says so).
    margin_level = FiniteDecimalField(max_digits=20, decimal_places=2, required=False, allow_null=True, default=None)
    margin_so_mode = StrictIntegerField(min_value=0, max_value=1, required=False, allow_null=True)
    margin_so_call = _money(required=False, allow_null=True)
    margin_so_so = _money(required=False, allow_null=True)

    def validate_server(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("Name the MT5 trade server (account_info().server).")
        return value

    def validate_currency(self, value: str) -> str:
        return value.upper()

    def validate(self, attrs):
        for name in ("margin_level", "margin_so_call", "margin_so_so"):
            if attrs.get(name) is not None and attrs[name] < 0:
                raise serializers.ValidationError({name: "Must be zero or more."})
        if (attrs.get("margin_so_call") is None) != (attrs.get("margin_so_so") is None):
            raise serializers.ValidationError(
                {"margin_so_so": "Send margin_so_call and margin_so_so together (call and stop-out levels)."}
            )
        return attrs


class BrokerPositionInputSerializer(serializers.Serializer):
    """One MT5 ``positions_get()`` row: volume in lots, prices in the quote currency, money in the account currency."""

    ticket = StrictIntegerField(min_value=1, max_value=MAX_BIGINT)
    identifier = StrictIntegerField(
        min_value=1, max_value=MAX_BIGINT, required=False, allow_null=True, default=None, help_text="Default: ticket."
    )
    symbol = SymbolField()
    type = PositionTypeField()
    volume = _lots(positive=True)
    price_open = _price(positive=True)
    price_current = _price(positive=True)
    sl = _price(required=False, allow_null=True, default=None, zero_is_none=True)
    tp = _price(required=False, allow_null=True, default=None, zero_is_none=True)
    swap = _money(required=False, default=Decimal("0"))
    commission = _money(required=False, default=Decimal("0"))
    profit = _money(required=False, default=Decimal("0"))
    time = BrokerTimeField(required=False, allow_null=True, default=None, server_clock=True)

    def validate(self, attrs):
        if attrs.get("identifier") is None:
            attrs["identifier"] = attrs["ticket"]  # MT5: the identifier is the opening order's ticket
        for name in ("sl", "tp"):
            if attrs.get(name) is not None and attrs[name] < 0:
                raise serializers.ValidationError({name: "Must be greater than 0, or 0 for none."})
        return attrs


class QuoteInputSerializer(serializers.Serializer):
    """One MT5 ``symbol_info_tick()``: bid and ask in the quote currency, ``ask ≥ bid``."""

    symbol = SymbolField()
    bid = _price(positive=True)
    ask = _price(positive=True)
    time = BrokerTimeField(required=False, allow_null=True, default=None, server_clock=True)

    def validate(self, attrs):
        if attrs["ask"] < attrs["bid"]:
            raise serializers.ValidationError({"ask": f"Ask {attrs['ask']} is below bid {attrs['bid']}."})
        return attrs


class DealInputSerializer(serializers.Serializer):
    """One MT5 ``history_deals_get()`` row: a trade deal of a position, or a balance operation.

    ``type`` (``ENUM_DEAL_TYPE``): 0 buy, 1 sell (a trade deal: ``position_id`` names its position;
    when a worker omits ``type`` the side follows from the position), 2–12 and 15–17 balance operations
    (``position_id`` 0, the amount in ``profit``), 13/14 cancelled deals (ignored). ``entry``: 0 in,
    1 out, 2 inout (netting reversal), 3 out by. ``reason``: 0 client, 1 mobile, 2 web, 3 expert, 4 SL,
    5 TP, 6 stop out, other values = external. Volume in lots, price in the quote currency, money in
    the account currency.
    """

    ticket = StrictIntegerField(min_value=1, max_value=MAX_BIGINT)
    order = StrictIntegerField(min_value=0, max_value=MAX_BIGINT, required=False, default=0)
    position_id = StrictIntegerField(min_value=0, max_value=MAX_BIGINT, required=False, default=0)
    type = StrictIntegerField(min_value=0, max_value=17, required=False, allow_null=True, default=None)
    entry = StrictIntegerField(min_value=0, max_value=3, required=False, default=0)
    reason = StrictIntegerField(min_value=0, max_value=32767, required=False, default=0)
    symbol = SymbolField(required=False, allow_blank=True, default="")
    price = _price(required=False, default=Decimal("0"))
    volume = _lots(required=False, default=Decimal("0"))
    profit = _money(required=False, default=Decimal("0"))
    swap = _money(required=False, default=Decimal("0"))
    commission = _money(required=False, default=Decimal("0"))
    fee = _money(required=False, default=Decimal("0"))
    magic = StrictIntegerField(min_value=0, max_value=MAX_BIGINT, required=False, default=0)
    comment = serializers.CharField(max_length=64, required=False, allow_blank=True, default="", trim_whitespace=False)
    time = BrokerTimeField(required=False, allow_null=True, default=None, server_clock=True)

    def validate_volume(self, value):
        if value < 0:
            raise serializers.ValidationError("Must be zero or more (lots).")
        return value

    def validate(self, attrs):
        trade = attrs["type"] in (None, 0, 1)
        if attrs["type"] is None and not attrs["position_id"]:
            raise serializers.ValidationError({"type": "Required for a balance operation (position_id 0)."})
        if trade and not attrs["position_id"]:
            raise serializers.ValidationError({"position_id": "A buy/sell deal names its position (position_id ≥ 1)."})
        if trade and attrs["price"] <= 0:
            raise serializers.ValidationError({"price": "A buy/sell deal has a price greater than 0."})
        if not trade and attrs["price"] < 0:
            raise serializers.ValidationError({"price": "Must be zero or more."})
        return attrs


class TradeSessionInputSerializer(serializers.Serializer):
    """One MQL5 trade session (``SymbolInfoSessionTrade``): ``day_of_week`` 0–6 (0 = Sunday), ``from`` and
    ``to`` in seconds since the start of that day on the trade server's clock, 0 ≤ from < to ≤ 86,400."""

    day_of_week = StrictIntegerField(min_value=0, max_value=6, help_text="0 = Sunday … 6 = Saturday.")

    def get_fields(self):
        fields = super().get_fields()
        # "from" is a Python keyword: declared here instead of as a class attribute.
        fields["from"] = StrictIntegerField(min_value=0, max_value=SECONDS_PER_DAY, help_text="Seconds, server clock.")
        fields["to"] = StrictIntegerField(min_value=0, max_value=SECONDS_PER_DAY, help_text="Seconds, server clock.")
        return fields

    def validate(self, attrs):
        if attrs["from"] >= attrs["to"]:
            raise serializers.ValidationError({"to": "Must be later than 'from'."})
        return {"day_of_week": attrs["day_of_week"], "from": attrs["from"], "to": attrs["to"]}


class SymbolSpecInputSerializer(serializers.Serializer):
    """MT5 ``symbol_info()`` specs that update the ``Instrument`` row (``name`` or ``symbol`` names it), and
    optionally the symbol's trade ``sessions`` (at most ``MAX_SESSIONS``; a later spec without them keeps
    the stored ones)."""

    symbol = SymbolField(required=False)
    name = SymbolField(required=False)
    trade_contract_size = FiniteDecimalField(max_digits=20, decimal_places=4, positive=True)
    digits = StrictIntegerField(min_value=0, max_value=10)
    point = FiniteDecimalField(max_digits=20, decimal_places=10, positive=True)
    currency_base = serializers.RegexField(r"^[A-Za-z0-9]{1,8}$", max_length=8)
    currency_profit = serializers.RegexField(r"^[A-Za-z]{3,8}$", max_length=8)
    volume_step = FiniteDecimalField(max_digits=12, decimal_places=2, positive=True, required=False)
    volume_min = FiniteDecimalField(max_digits=12, decimal_places=2, positive=True, required=False)
    trade_calc_mode = serializers.ChoiceField(choices=sorted(CALC_MODES), required=False)
    trade_tick_value = FiniteDecimalField(max_digits=26, decimal_places=10, positive=True, required=False)
    trade_tick_size = FiniteDecimalField(max_digits=20, decimal_places=10, positive=True, required=False)
    sessions = TradeSessionInputSerializer(  # type: ignore[call-arg]
        many=True,
        required=False,
        allow_empty=False,
        max_length=MAX_SESSIONS,
        help_text="MQL5 SymbolInfoSessionTrade for each day and session index; omitted: not known.",
    )

    def validate(self, attrs):
        if "sessions" in attrs:  # one order, so that an unchanged list compares equal to the stored one
            attrs["sessions"] = sorted(attrs["sessions"], key=lambda s: (s["day_of_week"], s["from"], s["to"]))
        symbol = attrs.pop("symbol", None) or attrs.pop("name", None)
        attrs.pop("name", None)
        if not symbol:
            raise serializers.ValidationError({"symbol": "Name the symbol with 'symbol' or 'name'."})
        attrs["symbol"] = symbol
        attrs["currency_base"] = attrs["currency_base"].upper()
        attrs["currency_profit"] = attrs["currency_profit"].upper()
        return attrs


def _duplicates(values) -> list:
    seen, dups = set(), []
    for value in values:
        if value in seen and value not in dups:
            dups.append(value)
        seen.add(value)
    return dups


class SyncInputSerializer(serializers.Serializer):
    """The whole sync body of ``POST /api/v1/reconciliation/syncs/``.

    Validated data: ``sync_id`` (UUID or None → generated by the service), ``broker_time`` (aware UTC),
    ``account`` (dict), ``positions`` (list of dicts, or None = unknown), ``quotes``, ``deals``,
    ``symbols`` (lists of dicts). Rejects duplicate tickets/symbols, more than 1,000 positions or 500
    quotes, and a ``broker_time`` more than 5 minutes ahead of the server's clock.
    """

    sync_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    broker_time = BrokerTimeField()
    account = AccountInputSerializer()
    # many=True hands max_length to DRF's ListSerializer; djangorestframework-stubs omit it (the four ignores below).
    positions = BrokerPositionInputSerializer(many=True, required=False, allow_null=True, max_length=MAX_POSITIONS)  # type: ignore[call-arg]
    quotes = QuoteInputSerializer(many=True, required=False, max_length=MAX_QUOTES)  # type: ignore[call-arg]
    deals = DealInputSerializer(many=True, required=False, max_length=MAX_DEALS)  # type: ignore[call-arg]
    symbols = SymbolSpecInputSerializer(many=True, required=False, max_length=MAX_SYMBOLS)  # type: ignore[call-arg]

    def validate_broker_time(self, value: datetime) -> datetime:
        if value > timezone.now() + MAX_BROKER_CLOCK_AHEAD:
            raise serializers.ValidationError("More than 5 minutes ahead of the server's clock.")
        return value

    def validate_positions(self, value):
        if value is None:
            return None
        # allow_null on the list reaches DRF's child serializer too: a null *item* must still be refused.
        nulls = [index for index, row in enumerate(value) if row is None]
        if nulls:
            raise serializers.ValidationError({index: ["This field may not be null."] for index in nulls})
        dups = _duplicates(row["ticket"] for row in value)
        if dups:
            raise serializers.ValidationError(f"Duplicate tickets: {', '.join(map(str, dups))}.")
        dups = _duplicates(row["identifier"] for row in value)
        if dups:
            raise serializers.ValidationError(f"Duplicate identifiers: {', '.join(map(str, dups))}.")
        return value

    def validate_quotes(self, value):
        dups = _duplicates(row["symbol"] for row in value)
        if dups:
            raise serializers.ValidationError(f"Duplicate quote symbols: {', '.join(dups)}.")
        return value

    def validate_deals(self, value):
        dups = _duplicates(row["ticket"] for row in value)
        if dups:
            raise serializers.ValidationError(f"Duplicate deal tickets: {', '.join(map(str, dups))}.")
        return value

    def validate_symbols(self, value):
        dups = _duplicates(row["symbol"] for row in value)
        if dups:
            raise serializers.ValidationError(f"Duplicate symbol specs: {', '.join(dups)}.")
        return value

    def validate(self, attrs):
        attrs.setdefault("positions", None)
        attrs.setdefault("quotes", [])
        attrs.setdefault("deals", [])
        attrs.setdefault("symbols", [])
        return attrs


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
class ReconciliationLogSerializer(MoneyModelSerializer):
    """One reconciliation log row, every field (the owner is implied by the scoped endpoint).

    ``position`` is the ledger row's id (null for sync/guard rows); ``details`` holds expected vs
    actual values with deltas (pips, lots), or the sync summary on ``sync`` rows.
    """

    class Meta:
        model = ReconciliationLog
        fields = (
            "id",
            *LOG_EVENT_FIELDS,
            "position",
            *LOG_POSITION_FIELDS,
            *LOG_CLOSE_FIELDS,
            *LOG_SYNC_FIELDS,
            *LOG_TEXT_FIELDS,
            "created_at",
        )
        read_only_fields = fields


# --------------------------------------------------------------------------------------------
# reconciliation/status/ (read side): renders reconciliation.selectors.reconciliation_status
# --------------------------------------------------------------------------------------------
class RecentEventSerializer(serializers.Serializer):
    """A compact log row inside the status (the full row is at ``reconciliation/logs/{id}/``)."""

    id = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    event_type = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    ticket = serializers.IntegerField(read_only=True, allow_null=True)
    symbol = serializers.CharField(read_only=True)
    matched = serializers.BooleanField(read_only=True, allow_null=True)
    divergence_reason = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)


class ReconciliationStatusOutputSerializer(serializers.Serializer):
    """Body of ``GET reconciliation/status/``: ``status`` is ``healthy``, ``warning`` (divergences
    open), ``stale`` (last sync older than ``sync_stale_seconds``) or ``idle`` (no sync yet)."""

    status = serializers.ChoiceField(choices=["healthy", "warning", "stale", "idle"], read_only=True)
    total_syncs = serializers.IntegerField(read_only=True)
    last_sync_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_sync_duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    sync_age_seconds = serializers.IntegerField(read_only=True, allow_null=True)
    open_positions_count = serializers.IntegerField(read_only=True, help_text="Equals positions/open/ count.")
    matched_positions = serializers.IntegerField(read_only=True)
    divergences_open = serializers.IntegerField(read_only=True, help_text="Active reasons on pending/open rows.")
    divergences_24h = serializers.IntegerField(read_only=True)
    message = serializers.CharField(read_only=True)
    recent_events = RecentEventSerializer(many=True, read_only=True)
    as_of = serializers.DateTimeField(read_only=True)
