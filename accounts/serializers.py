"""accounts serializers: the ``GET accounts/`` rows."""

from __future__ import annotations

from rest_framework import serializers

from accounts.fields import MoneyOutputField


class AccountOutputSerializer(serializers.Serializer):
    """One of the user's MT5 accounts with the latest sync's figures (money in the account currency,
    rounded to its ``currency_digits``). ``status``: ``idle`` (no sync yet), ``stale`` (the last sync is
    older than the account's ``sync_stale_seconds``) or ``live``. ``guards/status/?account=<id>`` has
    its drawdown and market levels."""

    id = serializers.IntegerField(read_only=True)
    server = serializers.CharField(read_only=True)
    login = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    company = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    currency_digits = serializers.IntegerField(read_only=True)
    margin_mode = serializers.CharField(read_only=True, help_text="retail_netting, exchange or retail_hedging.")
    leverage = serializers.IntegerField(read_only=True, allow_null=True)
    server_utc_offset = serializers.IntegerField(read_only=True, help_text="Minutes east of UTC.")
    balance = MoneyOutputField(allow_null=True)
    equity = MoneyOutputField(allow_null=True)
    margin = MoneyOutputField(allow_null=True)
    margin_free = MoneyOutputField(allow_null=True)
    credit = MoneyOutputField(allow_null=True)
    margin_level = serializers.DecimalField(max_digits=20, decimal_places=2, read_only=True, allow_null=True)
    broker_time = serializers.DateTimeField(read_only=True, allow_null=True)
    last_sync_at = serializers.DateTimeField(read_only=True, allow_null=True)
    sync_age_seconds = serializers.IntegerField(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=["idle", "stale", "live"], read_only=True)
