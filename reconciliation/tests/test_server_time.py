"""MT5 server time (issue 11 "Server time"): epoch ``time`` fields are on the trade server's clock; the
account's UTC offset (sent by the worker, or set in the admin) turns them into UTC; a time after
``broker_time`` is a 400 with nothing written."""

from datetime import timedelta

import pytest

from accounts.models import Account
from positions.models import Deal, Position, Quote
from reconciliation.tests.factories import SYNC_URL, Clock, broker_position, iso, quote, sync_payload, table_counts

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("mt5_type", "margin_mode"), [(0, 2), (1, 0)])  # a buy on hedging, a sell on netting
def test_epoch_times_are_shifted_by_the_offset_the_worker_sends(auth_client, user, mt5_type, margin_mode):
    # given a trade server at UTC+2 (120 min): a position opened at 10:00 UTC is stamped 12:00 on its clock
    broker_time = Clock().tick()
    opened_utc = broker_time - timedelta(hours=1)
    server_epoch = int((opened_utc + timedelta(minutes=120)).timestamp())
    tick_epoch = int((broker_time + timedelta(minutes=120)).timestamp())  # the tick of this very second
    entry = {"ticket": 101, "order": 1, "position_id": 1, "type": mt5_type, "entry": 0, "reason": 3,
             "symbol": "EURUSD", "volume": "1.00", "price": "1.09500", "time": server_epoch}  # fmt: skip
    payload = sync_payload(
        broker_time=broker_time, server_utc_offset=120, deals=[entry], margin_mode=margin_mode,
        positions=[broker_position(1, type=mt5_type, time=server_epoch)],
        quotes=[quote("EURUSD", "1.09500", time=tick_epoch)],
    )  # fmt: skip
    # when
    response = auth_client.post(SYNC_URL, payload, format="json")
    # then 12:00 server time − 2 h = 10:00 UTC; the tick is at broker_time exactly (not 2 h in the future)
    assert response.status_code == 201, response.content[:300]
    assert Position.objects.get(user=user, ticket=1).opened_at == opened_utc
    assert Deal.objects.get(user=user, ticket=101).time == opened_utc  # the entry deal: same shift
    assert Quote.objects.get(user=user, symbol="EURUSD").time == broker_time
    assert Account.objects.get(user=user).server_utc_offset == 120


def test_the_offset_set_in_the_admin_applies_when_the_worker_sends_none(auth_client, user):
    # given an operator set the account's server to UTC+3
    Account.objects.filter(user=user).update(server_utc_offset=180)
    broker_time = Clock().tick()
    opened_utc = broker_time - timedelta(minutes=30)
    server_epoch = int((opened_utc + timedelta(minutes=180)).timestamp())
    # when
    payload = sync_payload(broker_time=broker_time, positions=[broker_position(1, time=server_epoch)])
    assert auth_client.post(SYNC_URL, payload, format="json").status_code == 201
    # then 30 min before broker time, not 2 h 30 min after it
    assert Position.objects.get(user=user, ticket=1).opened_at == opened_utc


def test_an_iso_time_carries_its_own_offset_and_is_not_shifted(auth_client, user):
    broker_time = Clock().tick()
    opened = broker_time - timedelta(minutes=10)
    payload = sync_payload(
        broker_time=broker_time, server_utc_offset=120, positions=[broker_position(1, time=iso(opened))]
    )
    assert auth_client.post(SYNC_URL, payload, format="json").status_code == 201
    assert Position.objects.get(user=user, ticket=1).opened_at == opened


@pytest.mark.parametrize("part", ["positions", "quotes", "deals"])
def test_a_time_after_broker_time_is_a_400_and_writes_nothing(auth_client, user, part):
    # given a worker that forgot the offset: its UTC+2 server time reads as 2 h in the future
    broker_time = Clock().tick()
    future = int((broker_time + timedelta(hours=2)).timestamp())
    entry = {"ticket": 101, "order": 1, "position_id": 1, "type": 0, "entry": 0, "reason": 3, "symbol": "EURUSD",
             "volume": "1.00", "price": "1.09500", "time": future if part == "deals" else None}  # fmt: skip
    payload = sync_payload(
        broker_time=broker_time,
        positions=[broker_position(1, time=future if part == "positions" else None)],
        quotes=[quote("EURUSD", "1.09500", time=future if part == "quotes" else None)],
        deals=[{k: v for k, v in entry.items() if v is not None}],
    )
    before = table_counts()
    # when
    response = auth_client.post(SYNC_URL, payload, format="json")
    # then a field error naming the row, and nothing written (no account figures, no quote frozen in the future)
    assert response.status_code == 400, response.content[:300]
    (message,) = response.json()[part]
    assert message.startswith("[0].time ") and "later than broker_time" in message
    assert table_counts() == before
    assert Account.objects.get(user=user).last_sync_at is None
