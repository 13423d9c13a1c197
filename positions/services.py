"""positions services: writes to the ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account
from accounts.services import account_for_write, account_lock
from positions.models import Instrument, Position
from tradingsite.caching import bump_and_warm_user
from tradingsite.db import lock_user_row, retry_conflict_once


def volume_on_step(*, volume: Decimal, step: Decimal) -> bool:
    """Return True when ``volume`` (lots) is a whole multiple of the instrument's ``step`` (lots)."""
    return step > 0 and (volume / step) == (volume / step).to_integral_value()


def stops_errors(*, side: str, price: Decimal, sl: Decimal | None, tp: Decimal | None) -> dict[str, str]:
    """Return field errors for a stop loss / take profit on the wrong side of ``price``.

    A buy needs ``sl < price < tp``; a sell needs ``tp < price < sl`` (None = no stop). Prices are in
    the instrument's quote currency.
    """
    errors: dict[str, str] = {}
    if side == Position.Side.BUY:
        if sl is not None and sl >= price:
            errors["sl"] = f"A buy's stop loss must be below the price ({price})."
        if tp is not None and tp <= price:
            errors["tp"] = f"A buy's take profit must be above the price ({price})."
    else:
        if sl is not None and sl <= price:
            errors["sl"] = f"A sell's stop loss must be above the price ({price})."
        if tp is not None and tp >= price:
            errors["tp"] = f"A sell's take profit must be below the price ({price})."
    return errors


def instrument_for(*, account: Account, symbol: str) -> Instrument | None:
    """Return the instrument of ``symbol`` for ``account``: its own row (posted in its syncs), else the
    shipped default, else None."""
    rows = list(Instrument.objects.filter(Q(account=account) | Q(account__isnull=True), symbol=symbol))
    rows.sort(key=lambda row: row.account_id is None)  # the account's own row first
    return rows[0] if rows else None


@retry_conflict_once
@transaction.atomic
def position_register_named(
    *,
    user_id: int,
    account_id: int | None = None,
    server: str | None = None,
    login: int | None = None,
    **fields: Any,
) -> Position:
    """Register a position on the account a request names (``account_id``, or ``server`` and ``login``,
    or the single account: ``accounts.services.account_for_write``) in one transaction, so an account
    named here for the first time is kept only with its position. Takes the user's row lock before the
    account is found or created (the lock order of every writer); a deadlock or serialization failure
    is retried once. ``fields`` are :func:`position_register`'s."""
    lock_user_row(user_id)
    account = account_for_write(user_id=user_id, account_id=account_id, server=server, login=login)
    return position_register(user_id=user_id, account=account, **fields)


@transaction.atomic
def position_register(
    *,
    user_id: int,
    account: Account,
    ticket: int,
    symbol: str,
    side: str,
    volume: Decimal,
    requested_price: Decimal,
    sl: Decimal | None = None,
    tp: Decimal | None = None,
) -> Position:
    """Register a position the bot expects at the broker on ``account``: a ``pending`` ledger row.

    ``volume`` in lots (a multiple of the instrument's ``volume_step``, at least ``volume_min``);
    ``requested_price``, ``sl`` and ``tp`` in the quote currency, positive, with sl/tp on the correct
    side of the price for ``side`` ("buy"/"sell"). Raises ``django.core.exceptions.ValidationError``
    with field errors (→ 400, nothing written) on an unknown symbol, a bad volume or price, stops on
    the wrong side, or a ticket already registered on the account. Bumps the user's cache generation
    after commit.

    Locks the user's row, then the account's, as every writer does (``tradingsite.db``): a registration
    racing a sync waits for it instead of deadlocking with it. When the broker reported the ticket first
    (an open ``broker``-origin row of the same symbol, logged ``unexpected_at_broker``), the registration
    adopts that row (:func:`position_adopt`) instead of being refused.
    """
    lock_user_row(user_id)
    account_lock(account)
    symbol = symbol.strip().upper()
    errors: dict[str, str] = {}
    instrument = instrument_for(account=account, symbol=symbol)
    if instrument is None:
        errors["symbol"] = f"Unknown symbol {symbol!r}."
    if side not in Position.Side.values:
        errors["side"] = "Must be 'buy' or 'sell'."
    if volume <= 0:
        errors["volume"] = "Must be greater than 0 (lots)."
    elif instrument is not None:
        if volume < instrument.volume_min:
            errors["volume"] = f"Below the instrument's minimum volume ({instrument.volume_min} lots)."
        elif not volume_on_step(volume=volume, step=instrument.volume_step):
            errors["volume"] = f"Must be a multiple of the instrument's volume step ({instrument.volume_step} lots)."
    for name, value in (("requested_price", requested_price), ("sl", sl), ("tp", tp)):
        if value is not None and value <= 0:
            errors[name] = "Must be greater than 0."
    if "side" not in errors and requested_price > 0:
        for name, message in stops_errors(side=side, price=requested_price, sl=sl, tp=tp).items():
            errors.setdefault(name, message)
    existing = Position.objects.filter(account_id=account.pk, ticket=ticket).first()
    adoptable = existing is not None and (existing.origin, existing.status, existing.symbol) == (
        Position.Origin.BROKER,
        Position.Status.OPEN,
        symbol,
    )
    if existing is not None and not adoptable:
        errors["ticket"] = f"Ticket {ticket} is already registered."
    if errors:
        raise ValidationError(errors)
    if existing is not None:  # adoptable: the broker reported it first
        position = position_adopt(existing, side=side, volume=volume, requested_price=requested_price, sl=sl, tp=tp)
        transaction.on_commit(lambda: bump_and_warm_user(user_id))
        return position

    position = Position(
        user_id=user_id,
        account=account,
        ticket=ticket,
        identifier=ticket,  # MT5: a position's identifier is the ticket of the order that opened it
        symbol=symbol,
        side=side,
        volume=volume,
        requested_price=requested_price,
        sl=sl,
        tp=tp,
        origin=Position.Origin.BOT,
        status=Position.Status.PENDING,
    )
    try:
        # A savepoint, so a concurrent registration of the same ticket becomes a 400, not a 500.
        with transaction.atomic():
            position.save(force_insert=True)
    except IntegrityError as exc:
        raise ValidationError({"ticket": f"Ticket {ticket} is already registered."}) from exc
    transaction.on_commit(lambda: bump_and_warm_user(user_id))
    return position


def position_adopt(
    position: Position,
    *,
    side: str,
    volume: Decimal,
    requested_price: Decimal,
    sl: Decimal | None,
    tp: Decimal | None,
) -> Position:
    """Make a broker-first row (the broker reported the ticket before the bot registered it) the bot's.

    The row becomes ``origin=bot`` with the bot's intent (side, volume in lots, requested price and
    stops in the quote currency); the broker's facts (price_open, price_current, swap, profit) stay.
    The next sync compares the broker's position with this intent as for any bot row:
    ``unexpected_at_broker`` is logged resolved there and any real difference (entry slippage, partial
    fill …) logged opened, in the reconciliation log. Call with the user's and the account's rows locked.
    """
    position.origin = Position.Origin.BOT
    position.side, position.volume = side, volume
    position.requested_price, position.sl, position.tp = requested_price, sl, tp
    position.save(update_fields=["origin", "side", "volume", "requested_price", "sl", "tp", "updated_at"])
    return position


_UNSET = object()


@transaction.atomic
def position_declare_stops(*, user_id: int, position_id: int, sl: Any = _UNSET, tp: Any = _UNSET) -> Position:
    """The bot declares a stop move (``PATCH positions/{id}/``): the ledger's ``sl``/``tp`` become the
    declared values (quote currency; None = no stop) and each is remembered in ``declared_stops``
    ({name: {value, previous, at}}) until a sync shows it at the broker, which logs ``sl_updated`` /
    ``tp_updated``; a stop the broker shows without a declaration stays a divergence.

    Raises ``Position.DoesNotExist`` for another user's or an unknown position (→ 404) and
    ``ValidationError`` (→ 400, nothing written) for a closed position or a stop on the wrong side of
    the last seen price (the requested price while pending). Bumps the user's cache generation after commit.
    """
    position = Position.objects.select_for_update().get(pk=position_id, user_id=user_id)
    if position.status == Position.Status.CLOSED:
        raise ValidationError({"status": "The position is closed: its stops cannot move."})
    stops = {name: value for name, value in (("sl", sl), ("tp", tp)) if value is not _UNSET}
    # Against the current price: a stop moved to break-even or trailed into profit is legitimate.
    price = position.price_current or position.requested_price
    if price is not None:
        proposed = {"sl": position.sl, "tp": position.tp, **stops}
        errors = stops_errors(side=position.side, price=price, sl=proposed["sl"], tp=proposed["tp"])
        errors = {name: message for name, message in errors.items() if name in stops}
        if errors:
            raise ValidationError(errors)
    declared = dict(position.declared_stops or {})
    now = timezone.now().isoformat()
    for name, value in stops.items():
        previous = getattr(position, name)
        declared[name] = {"value": _str(value), "previous": _str(previous), "at": now}
        setattr(position, name, value)
    position.declared_stops = declared
    position.save(update_fields=[*stops, "declared_stops", "updated_at"])
    transaction.on_commit(lambda: bump_and_warm_user(user_id))
    return position


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
