"""Positions admin: the ledger is browsable read-only with filters and log links; instruments are editable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from accounts.tests.factories import default_account
from positions.models import Instrument, Position
from reconciliation.models import ReconciliationLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _position(user, ticket: int, **fields) -> Position:
    defaults = {"symbol": "EURUSD", "side": "buy", "volume": Decimal("1.00"), "status": "open"}
    return Position.objects.create(user=user, account=default_account(user), ticket=ticket, **{**defaults, **fields})


def _ids(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def test_position_admin_filters_by_status_symbol_origin_and_matched(operator_client, user):
    # given positions differing in one attribute each
    base = _position(user, 1)
    closed = _position(user, 2, status="closed")
    gold = _position(user, 3, symbol="XAUUSD")
    broker = _position(user, 4, origin="broker")
    matched = _position(user, 5, matched=True)
    url = reverse("admin:positions_position_changelist")

    # then each filter keeps exactly its rows
    assert _ids(operator_client.get(url + "?status__exact=closed")) == {closed.pk}
    assert _ids(operator_client.get(url + "?symbol=XAUUSD")) == {gold.pk}
    assert _ids(operator_client.get(url + "?origin__exact=broker")) == {broker.pk}
    assert _ids(operator_client.get(url + "?matched__exact=1")) == {matched.pk}
    assert base.pk in _ids(operator_client.get(url + "?matched__exact=0"))


def test_position_admin_symbol_filter_offers_the_instrument_symbols(operator_client, user):
    # given the shipped instruments
    _position(user, 1)

    # when the changelist renders
    response = operator_client.get(reverse("admin:positions_position_changelist"))

    # then the symbol filter lists every instrument (31 shipped defaults) plus "All"
    (symbol_filter,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "symbol"]
    assert len(symbol_filter.lookup_choices) == Instrument.objects.count() == 31


def test_position_admin_links_to_the_positions_log_rows(operator_client, user, other_user):
    # given a position with two log rows, and the same ticket for another user
    position = _position(user, 700101)
    mine = [
        ReconciliationLog.objects.create(
            user=user, account=default_account(user), event_type=kind, ticket=700101, position=position
        )
        for kind in ("match", "close")
    ]
    ReconciliationLog.objects.create(
        user=other_user, account=default_account(other_user), event_type="match", ticket=700101
    )

    # when following the "log rows" link from the positions list
    changelist = operator_client.get(reverse("admin:positions_position_changelist")).content.decode()
    link = reverse("admin:reconciliation_reconciliationlog_changelist") + f"?user__id__exact={user.pk}&ticket=700101"
    logs = operator_client.get(link)

    # then the link is there and leads to exactly this position's rows
    assert link.replace("&", "&amp;") in changelist
    assert {row.pk for row in logs.context["cl"].result_list} == {row.pk for row in mine}


def test_position_admin_is_read_only(operator_client, user):
    # given a position
    position = _position(user, 1)

    # when a superuser tries to add, change or delete
    add = operator_client.get(reverse("admin:positions_position_add"))
    change = operator_client.post(reverse("admin:positions_position_change", args=[position.pk]), {"volume": "9"})
    delete = operator_client.post(reverse("admin:positions_position_delete", args=[position.pk]), {"post": "yes"})

    # then all are refused and nothing changed
    assert [add.status_code, change.status_code, delete.status_code] == [403, 403, 403]
    position.refresh_from_db()
    assert position.volume == Decimal("1.00")


def test_position_admin_search_by_ticket_and_username(operator_client, user, other_user):
    # given a position each
    alice = _position(user, 700101)
    bob = _position(other_user, 700102)
    url = reverse("admin:positions_position_changelist")

    # then a number searches the ticket exactly, a word the username exactly
    assert _ids(operator_client.get(url, {"q": "700101"})) == {alice.pk}
    assert _ids(operator_client.get(url, {"q": "bob"})) == {bob.pk}
    assert _ids(operator_client.get(url, {"q": "70010"})) == set()


def test_instrument_admin_edits_and_validates(operator_client):
    # given the shipped XAUUSD instrument
    gold = Instrument.objects.get(symbol="XAUUSD")
    url = reverse("admin:positions_instrument_change", args=[gold.pk])
    form = {
        "symbol": "XAUUSD",
        "description": "Gold",
        "contract_size": "100",
        "digits": "2",
        "point": "0.01",
        "pip_size": "0.01",
        "currency_base": "XAU",
        "currency_profit": "USD",
        "volume_step": "0.01",
        "volume_min": "0.01",
        "trade_calc_mode": "0",
    }

    # when saving a lower-case symbol, then a valid contract size
    rejected = operator_client.post(url, {**form, "symbol": "xauusd"})
    accepted = operator_client.post(url, {**form, "contract_size": "50"})

    # then the first is a form error (check constraint symbol = UPPER(symbol)), the second saves
    assert rejected.status_code == 200
    assert rejected.context["adminform"].form.errors
    assert accepted.status_code == 302
    gold.refresh_from_db()
    assert (gold.symbol, gold.contract_size) == ("XAUUSD", Decimal("50"))


def test_position_changelist_uses_a_fixed_number_of_queries(
    operator_client, django_user_model, django_assert_num_queries
):
    # given 30 positions over 3 users
    users = [django_user_model.objects.create_user(username=f"t{i}") for i in range(3)]
    for i in range(30):
        _position(users[i % 3], i, opened_at=datetime(2026, 11, 30, tzinfo=UTC))

    # then: session, user, instrument symbols (filter), bounded count, page (users joined) [+ pg_class estimate]
    expected = 6 if connection.vendor == "postgresql" else 5
    with django_assert_num_queries(expected):
        operator_client.get(reverse("admin:positions_position_changelist"))
