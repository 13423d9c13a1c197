"""Quote rows per account are bounded (issue 15 "any user can create … unbounded quote rows")."""

import pytest

from positions.models import Instrument, Quote
from reconciliation import services
from reconciliation.tests.factories import SYNC_URL, Clock, quote, sync_payload, table_counts

pytestmark = pytest.mark.django_db


def test_new_quoted_symbols_beyond_the_bound_are_a_400_and_write_nothing(auth_client, user, monkeypatch):
    # given a bound of 3 quote rows per account, and an account holding 2
    monkeypatch.setattr(services, "MAX_QUOTE_ROWS_PER_ACCOUNT", 3)
    clock = Clock()
    first = sync_payload(
        broker_time=clock.tick(), positions=[], quotes=[quote("EURUSD", "1.1"), quote("GBPUSD", "1.2")]
    )
    assert auth_client.post(SYNC_URL, first, format="json").status_code == 201
    before = table_counts()
    # when a sync adds two new symbols (2 + 2 = 4 > 3)
    names = [quote("EURUSD", "1.1"), quote("AAA1", "1"), quote("BBB2", "2")]
    response = auth_client.post(
        SYNC_URL, sync_payload(broker_time=clock.tick(), positions=[], quotes=names), format="json"
    )
    # then 400 on quotes, nothing written, and quotes never create instruments
    assert response.status_code == 400
    assert "at most 3 quoted symbols" in response.json()["quotes"][0]
    assert table_counts() == before
    # and updating the symbols already held stays possible
    again = sync_payload(broker_time=clock.tick(), positions=[], quotes=[quote("EURUSD", "1.1"), quote("AAA1", "1")])
    assert auth_client.post(SYNC_URL, again, format="json").status_code == 201
    assert Quote.objects.filter(user=user).count() == 3
    assert not Instrument.objects.filter(symbol="AAA1").exists()
