"""Payload builders and factories for sync tests (MT5-shaped JSON, as a worker posts it)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from tradingsite import sync_payload as mt5

SYNC_URL = "/api/v1/reconciliation/syncs/"
POSITIONS_URL = "/api/v1/positions/"


def iso(when: datetime) -> str:
    """ISO 8601 UTC with a Z suffix."""
    return str(mt5.wire_time(when))


class Clock:
    """Monotonic broker times for a sequence of syncs, starting a little before now (never in the future)."""

    def __init__(self, start: datetime | None = None, step_s: int = 5):
        self.now = start or (timezone.now() - timedelta(hours=2)).replace(microsecond=0)
        self.step = timedelta(seconds=step_s)

    def tick(self, seconds: int | None = None) -> datetime:
        self.now += timedelta(seconds=seconds) if seconds is not None else self.step
        return self.now


SERVER = "MetaQuotes-Demo"
LOGIN = 5021337


def account(
    *,
    balance="10000.00",
    equity="10000.00",
    currency="USD",
    margin="0",
    margin_free=None,
    login: int = LOGIN,
    server: str = SERVER,
    **extra,
) -> dict[str, Any]:
    """MT5 ``account_info()`` (``tradingsite.sync_payload.account_info``) with test defaults; ``extra`` adds
    its optional fields (currency_digits, server_utc_offset, margin levels …); ``margin_free`` defaults to equity."""
    return mt5.account_info(
        login=login, server=server, currency=currency, balance=balance, equity=equity, margin=margin,
        margin_free=margin_free if margin_free is not None else equity, **extra,
    )  # fmt: skip


def broker_position(
    ticket: int,
    symbol: str = "EURUSD",
    type: mt5.Side = 0,  # noqa: A002 - MT5's field name
    volume="1.00",
    price_open="1.09500",
    price_current=None,
    sl="0",
    tp="0",
    swap="0",
    commission="0",
    profit="0",
    time: int | str | None = None,
) -> dict[str, Any]:
    """MT5 ``positions_get()`` row (``tradingsite.sync_payload.position``); ``sl``/``tp`` "0" = none."""
    return mt5.position(
        ticket=ticket, symbol=symbol, type=type, volume=volume, price_open=price_open, price_current=price_current,
        sl=sl, tp=tp, swap=swap, commission=commission, profit=profit, time=time,
    )  # fmt: skip


def quote(symbol: str, bid, ask=None, time: datetime | int | None = None) -> dict[str, Any]:
    """MT5 ``symbol_info_tick()`` (``tradingsite.sync_payload.tick``)."""
    return mt5.tick(symbol=symbol, bid=bid, ask=ask, time=time)


def deal(
    position_id: int,
    *,
    reason: int,
    price,
    profit="0",
    swap="0",
    commission="0",
    ticket: int | None = None,
    entry: int = 1,
    volume="1.00",
    time: datetime | None = None,
) -> dict[str, Any]:
    """MT5 ``history_deals_get()`` closing deal (entry 1 = out; ``tradingsite.sync_payload.deal``)."""
    return mt5.deal(
        ticket=ticket if ticket is not None else position_id * 10 + 1, position_id=position_id, entry=entry,
        reason=reason, price=price, volume=volume, profit=profit, swap=swap, commission=commission, time=time,
    )  # fmt: skip


def sync_payload(
    *,
    broker_time: datetime,
    positions: list[dict[str, Any]] | None = None,
    quotes: list[dict[str, Any]] | None = None,
    deals: list[dict[str, Any]] | None = None,
    sync_id: uuid.UUID | str | None = None,
    omit_positions: bool = False,
    **account_kwargs,
) -> dict[str, Any]:
    """A full sync body (``tradingsite.sync_payload.sync_body``). ``positions=None`` sends ``"positions": null``
    (unknown); ``omit_positions`` leaves it out."""
    body = mt5.sync_body(
        sync_id=sync_id, broker_time=broker_time, account=account(**account_kwargs), positions=positions,
        quotes=quotes or [], deals=deals or [],
    )  # fmt: skip
    if omit_positions:
        del body["positions"]
    return body


def register_payload(
    ticket: int, symbol="EURUSD", side="buy", volume="1.00", requested_price="1.09500", sl=None, tp=None
) -> dict[str, Any]:
    """Body of ``POST /api/v1/positions/``."""
    body = {"ticket": ticket, "symbol": symbol, "side": side, "volume": str(volume),
            "requested_price": str(requested_price), "server": SERVER, "login": LOGIN}  # fmt: skip
    if sl is not None:
        body["sl"] = str(sl)
    if tp is not None:
        body["tp"] = str(tp)
    return body


def table_counts() -> dict[str, int]:
    """Row counts of every table the write side touches (for "nothing written" assertions)."""
    from accounts.models import Account
    from guards.models import DrawdownAlert, EquitySnapshot, GuardConfig, GuardState, MarketAlert
    from positions.models import Instrument, Position, Quote
    from reconciliation.models import ReconciliationLog

    models: list[Any] = [Account, Position, Quote, Instrument, ReconciliationLog, EquitySnapshot, GuardState,
                         GuardConfig, DrawdownAlert, MarketAlert]  # fmt: skip
    return {m.__name__: m.objects.count() for m in models}


D = Decimal


def ingest(user, payload: dict[str, Any]):
    """Validate ``payload`` as the endpoint does and run ``sync_ingest`` (no HTTP): returns the SyncResult."""
    from reconciliation.serializers import SyncInputSerializer
    from reconciliation.services import sync_ingest

    serializer = SyncInputSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    return sync_ingest(user_id=user.pk, data=serializer.validated_data)


def register(user, ticket: int, *, server: str = SERVER, login: int = LOGIN, **fields):
    """Register a pending position through the service on the account (server, login), created when
    unseen (defaults: EURUSD buy 1.00 @ 1.09500)."""
    from accounts.services import account_for_write
    from positions.services import position_register

    account = account_for_write(user_id=user.pk, server=server, login=login)
    values: dict[str, Any] = {
        "symbol": "EURUSD",
        "side": "buy",
        "volume": "1.00",
        "requested_price": "1.09500",
        "sl": None,
        "tp": None,
    }
    values.update(fields)
    for name in ("volume", "requested_price", "sl", "tp"):
        if values[name] is not None:
            values[name] = Decimal(str(values[name]))
    return position_register(user_id=user.pk, account=account, ticket=ticket, **values)
