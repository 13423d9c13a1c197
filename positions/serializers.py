"""positions serializers: registration input and the ledger row output (SPEC §2, §6)."""

from __future__ import annotations

from rest_framework import serializers

from positions.models import Position


class PositionRegisterInputSerializer(serializers.Serializer):
    """Body of ``POST /api/v1/positions/``: a position the bot expects (prices in the quote currency, volume in lots).

    ``sl``/``tp`` may be null, absent or 0 (= none). The service checks the symbol, the volume step and
    the side of the stops; this serializer checks types, finiteness and positivity.
    """

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


class PositionOutputSerializer(serializers.ModelSerializer):
    """One ledger row as the API shows it (history, detail). Decimals render as strings, times as ISO 8601 UTC."""

    class Meta:
        model = Position
        fields = (
            "id",
            "ticket",
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
            "last_synced_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields
