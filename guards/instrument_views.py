"""guards instrument views: ``GET guards/instruments/`` and ``PATCH guards/instruments/{symbol}/``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import ACCOUNT_PARAMETER, AccountScopedMixin
from guards.instrument_serializers import InstrumentGuardSerializer, InstrumentSettingSerializer
from guards.instruments import instrument_guard_list, instrument_setting_update
from guards.models import InstrumentGuardSetting
from tradingsite.api import UserScopedAPIView

SYMBOL_PARAMETER = OpenApiParameter("symbol", str, OpenApiParameter.PATH, description="MT5 symbol, e.g. XAUUSD.")


class InstrumentGuardListView(AccountScopedMixin, UserScopedAPIView):
    """``GET guards/instruments/?account=``: every instrument of the account with its effective pip size,
    entry and stop tolerances, spread thresholds and rolling median spread, and which come from the
    account's overrides. Before the first sync (no account yet) the list is empty."""

    @extend_schema(parameters=[ACCOUNT_PARAMETER], responses=InstrumentGuardSerializer(many=True))
    def get(self, request: Request) -> Response:
        account_id = self.request_account_id()
        rows = instrument_guard_list(account_id=account_id) if account_id is not None else []
        return Response(InstrumentGuardSerializer(rows, many=True).data)


class InstrumentGuardDetailView(AccountScopedMixin, UserScopedAPIView):
    """``PATCH guards/instruments/{symbol}/?account=``: set or clear the account's overrides of one symbol
    (null clears a field), also before the symbol's first sync. 400 with field errors and nothing written on
    bad input or past ``MAX_SETTINGS_PER_ACCOUNT`` symbols; 404 for another user's account or a path that is
    no MT5 symbol name."""

    @extend_schema(
        parameters=[ACCOUNT_PARAMETER, SYMBOL_PARAMETER],
        request=InstrumentSettingSerializer,
        responses=InstrumentGuardSerializer,
    )
    def patch(self, request: Request, symbol: str) -> Response:
        account_id = self.request_account_id()
        if account_id is None:
            raise ValidationError(
                {"account": ["No account yet: overrides belong to an account, created by its first sync."]}
            )
        symbol = symbol.upper()
        current = InstrumentGuardSetting.objects.filter(account_id=account_id, symbol=symbol).first()
        serializer = InstrumentSettingSerializer(instance=current, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        instrument_setting_update(
            user_id=self.user_id, account_id=account_id, symbol=symbol, **serializer.validated_data
        )
        (row,) = instrument_guard_list(account_id=account_id, symbol=symbol)
        return Response(InstrumentGuardSerializer(row).data)
