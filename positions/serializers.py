"""positions serializers: registration input and the ledger row output."""

from __future__ import annotations

from rest_framework import serializers

from accounts.fields import MoneyModelSerializer, MoneyOutputField
from accounts.serializers import AccountNameSerializer
from positions.models import Deal, Position
from tradingsite.api import price_decimal, rounded_decimal


class StopsMixin:
    """``sl``/``tp`` validation: 0 or null = no stop (MT5's convention), otherwise greater than 0."""

    def _stop(self, value):
        if value is None or value == 0:  # MT5 convention: 0 = no stop
            return None
        if value < 0:
            raise serializers.ValidationError("Must be greater than 0, or 0/null for none.")
        return value

    def validate_sl(self, value):
        return self._stop(value)

    def validate_tp(self, value):
        return self._stop(value)


class PositionRegisterInputSerializer(StopsMixin, AccountNameSerializer):
    """Body of ``POST /api/v1/positions/``: a position the bot expects (prices in the quote currency, volume in lots).

    ``sl``/``tp`` may be null, absent or 0 (= none). The service checks the symbol, the volume step and
    the side of the stops; this serializer checks types, finiteness and positivity.
    """

    account = serializers.IntegerField(
        required=False, min_value=1, help_text="Account id; default: the single account, or the one server/login name."
    )
    ticket = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Position.Side.choices)
    volume = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, help_text="Lots.")
    requested_price = serializers.DecimalField(max_digits=20, decimal_places=8)
    sl = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, allow_null=True, default=None)
    tp = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, allow_null=True, default=None)

    def validate_symbol(self, value: str) -> str:
        return value.strip().upper()

    def validate_volume(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0 (lots).")
        return value

    def validate_requested_price(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return value


class PositionOutputSerializer(MoneyModelSerializer):
    """One ledger row as the API shows it (history, detail). Decimals render as strings, times as ISO 8601 UTC."""

    class Meta:
        model = Position
        fields = (
            "id",
            "ticket",
            "identifier",
            "symbol",
            "side",
            "volume",
            "requested_price",
            "price_open",
            "price_current",
            "sl",
            "tp",
            "swap",
            "commission",
            "profit",
            "origin",
            "status",
            "matched",
            "divergence_reasons",
            "divergence_details",
            "opened_at",
            "closed_at",
            "close_price",
            "close_reason",
            "realized_pnl",
            "realized_pnl_inferred",
            "declared_stops",
            "last_synced_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


# --------------------------------------------------------------------------------------------
# positions/open/ (read side): renders positions.selectors.open_positions
# --------------------------------------------------------------------------------------------
class OpenPositionsQuerySerializer(serializers.Serializer):
    """Query string of ``GET positions/open/``: an optional ``symbol`` (case-insensitive)."""

    symbol = serializers.CharField(max_length=32, required=False, allow_blank=True)


class RateLegSerializer(serializers.Serializer):
    """One leg of a conversion to the account currency: the quote's ``symbol`` and ``mid``, and whether the
    amount was divided or multiplied by it."""

    symbol = serializers.CharField(read_only=True)
    mid = price_decimal()
    operation = serializers.ChoiceField(choices=["divide", "multiply"], read_only=True)


class OpenPositionSerializer(serializers.Serializer):
    """One open position with its valuation: prices in the quote currency, ``swap``/``profit``
    (broker) and ``unrealized_pnl`` (computed, null when no rate) in the account currency, ``unrealized_pnl_pct``
    in percent, ``pnl_pips`` in pips; computed values rounded half-up to 2 dp."""

    id = serializers.IntegerField(read_only=True)
    ticket = serializers.IntegerField(read_only=True)
    symbol = serializers.CharField(read_only=True)
    side = serializers.CharField(read_only=True)
    volume = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True, help_text="Lots (the bot's).")
    broker_side = serializers.CharField(read_only=True, help_text="The side the broker holds (valued).")
    broker_volume = serializers.DecimalField(
        max_digits=12, decimal_places=2, read_only=True, help_text="Lots the broker holds (valued)."
    )
    price_open = price_decimal(allow_null=True)
    price_current = price_decimal(allow_null=True)
    sl = price_decimal(allow_null=True)
    tp = price_decimal(allow_null=True)
    swap = MoneyOutputField()
    profit = MoneyOutputField(help_text="Broker-reported.")
    unrealized_pnl = MoneyOutputField(allow_null=True, help_text="Account currency; null when unvalued.")
    unrealized_pnl_pct = rounded_decimal(allow_null=True, help_text="Percent of the entry price.")
    pnl_pips = rounded_decimal(allow_null=True)
    valuation_reason = serializers.ChoiceField(
        choices=["spec_missing", "calc_mode_unsupported", "no_rate", "no_price", "out_of_range"],
        read_only=True,
        allow_null=True,
        help_text="Why unrealized_pnl is null: spec_missing (no contract spec for the symbol), "
        "calc_mode_unsupported, no_rate (no quote converts it), no_price, out_of_range (10^18 or more); "
        "null when valued.",
    )
    rate_path = RateLegSerializer(many=True, read_only=True, help_text="Quotes that converted it, in order.")
    matched = serializers.BooleanField(read_only=True)
    divergence_reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    opened_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_synced_at = serializers.DateTimeField(read_only=True, allow_null=True)


class OpenPositionsOutputSerializer(serializers.Serializer):
    """Body of ``GET positions/open/``: the open book valued in the account currency ``currency``."""

    count = serializers.IntegerField(read_only=True)
    currency = serializers.CharField(read_only=True, allow_null=True)
    total_unrealized_pnl = MoneyOutputField(help_text="Sum over valued positions, account currency.")
    total_unrealized_pnl_pct = rounded_decimal(allow_null=True, help_text="Total / latest equity × 100.")
    unvalued_positions = serializers.IntegerField(read_only=True)
    as_of = serializers.DateTimeField(read_only=True)
    positions = OpenPositionSerializer(many=True, read_only=True)


# --------------------------------------------------------------------------------------------
# Deals
# --------------------------------------------------------------------------------------------
class DealOutputSerializer(MoneyModelSerializer):
    """One MT5 deal as stored (append-only). ``position_id`` is MT5's position identifier (0 for a balance
    operation); ``position`` the ledger position it was booked on. ``type`` and ``entry`` are MT5's codes
    with their names in ``type_name``/``entry_name``. Money in the account currency, times ISO 8601 UTC."""

    position_id = serializers.IntegerField(source="position_identifier", read_only=True)
    position: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    type_name = serializers.CharField(source="get_type_display", read_only=True)
    entry_name = serializers.CharField(source="get_entry_display", read_only=True)

    class Meta:
        model = Deal
        fields = (
            "id",
            "ticket",
            "order",
            "position_id",
            "position",
            "symbol",
            "type",
            "type_name",
            "entry",
            "entry_name",
            "reason",
            "volume",
            "price",
            "profit",
            "swap",
            "commission",
            "fee",
            "magic",
            "comment",
            "time",
        )
        read_only_fields = fields


class PositionStopsInputSerializer(StopsMixin, serializers.Serializer):
    """Body of ``PATCH positions/{id}/``: the bot declares a stop move (``sl``/``tp`` in the quote
    currency; 0 or null = remove the stop). At least one of them."""

    sl = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, allow_null=True)
    tp = serializers.DecimalField(max_digits=20, decimal_places=8, required=False, allow_null=True)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError({"sl": "Send sl, tp or both."})
        return attrs
