"""Numbers that cannot fit a column, and ticks from the future (issue 15).

Input out of a column's range is a 400 field error with nothing written; a value *derived* from valid
input that cannot fit (a 1,000 % gap, a drawdown past 1,000 %, 10^12 spread pips, 10^10 slippage pips)
is stored clamped or as null with the raw figure in ``details``, and the next sync goes through.
Run on both backends: SQLite does not enforce ``numeric(p, s)``, PostgreSQL does (the 500s were there).
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from accounts.models import Account
from guards.models import EquitySnapshot, GuardState, MarketAlert
from positions.models import Position, Quote
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import (
    POSITIONS_URL,
    SYNC_URL,
    Clock,
    broker_position,
    quote,
    register,
    register_payload,
    sync_payload,
    table_counts,
)

pytestmark = pytest.mark.django_db


def post_sync(client, payload):
    return client.post(SYNC_URL, payload, format="json")


def refused_without_writes(client, payload, *, url=SYNC_URL):
    """POST ``payload``, assert a 400, that nothing was written; return the error body."""
    before = table_counts()
    response = client.post(url, payload, format="json")
    assert response.status_code == 400, response.content
    assert table_counts() == before
    return response.json()


# ---------------------------------------------------------------------------------------------
# Input at the boundary: 400 with field errors, nothing written
# ---------------------------------------------------------------------------------------------
def test_an_account_login_of_2_pow_63_is_a_field_error(auth_client, user):
    # the BIGINT column holds at most 2^63 − 1 = 9223372036854775807
    payload = sync_payload(broker_time=Clock().tick())
    payload["account"]["login"] = 2**63
    body = refused_without_writes(auth_client, payload)
    assert list(body) == ["account"] and list(body["account"]) == ["login"]


@pytest.mark.parametrize("number", ["1e+1000000", "-1e+1000000", "1E+999999999"])
def test_a_decimal_overflowing_the_decimal_context_is_a_field_error(auth_client, user, number):
    # Decimal("1e+1000000") parses, but abs() of it overflows the context (Emax 999999): it was a 500
    payload = sync_payload(broker_time=Clock().tick())
    payload["account"]["equity"] = number
    body = refused_without_writes(auth_client, payload)
    assert body["account"]["equity"] == ["Too large: at most 18 digits before the decimal point."]


def test_a_zero_with_a_huge_exponent_is_zero_not_too_large(user):
    from reconciliation.serializers import FiniteDecimalField

    # 0E+1000000 is 0: its "adjusted exponent" is 1000000 but it has no leading digit
    assert FiniteDecimalField(max_digits=20, decimal_places=2).to_internal_value("0E+1000000") == D("0.00")


@pytest.mark.parametrize("field", ["requested_price", "volume"])
def test_a_registration_with_an_overflowing_decimal_is_a_field_error(auth_client, user, field):
    payload = register_payload(900)
    payload[field] = "1e+1000000"
    body = refused_without_writes(auth_client, payload, url=POSITIONS_URL)
    assert list(body) == [field]


@pytest.mark.parametrize(
    "stamp",
    [
        "1957-12-31T23:59:59Z",  # its age at a 2026 broker time is 2.17e9 s > 2^31 − 1 (the integer column)
        -1,  # epoch seconds before 1970: not an MT5 time
        "1969-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",  # absurd year
        "9999-12-31T23:59:59Z",
    ],
)
def test_a_quote_time_outside_1970_to_2100_is_a_field_error(auth_client, user, stamp):
    payload = sync_payload(broker_time=Clock().tick(), quotes=[quote("EURUSD", "1.1", "1.1", time=stamp)])
    body = refused_without_writes(auth_client, payload)
    message = "Time out of range: MT5 times run from 1970-01-01 (epoch 0) to before 2100-01-01."
    assert body == {"quotes": {"0": {"time": [message]}}}


@pytest.mark.parametrize("field", ["positions", "deals"])
def test_position_and_deal_times_are_bounded_too(auth_client, user, field):
    row = broker_position(1, time="1900-01-01T00:00:00Z")
    payload = sync_payload(broker_time=Clock().tick(), positions=[row])
    if field == "deals":
        payload["positions"] = []
        payload["deals"] = [
            {"ticket": 11, "position_id": 1, "entry": 1, "price": "1.1", "time": "1900-01-01T00:00:00Z"}
        ]
    body = refused_without_writes(auth_client, payload)
    assert list(body[field]["0"]) == ["time"]


def test_a_quote_stamped_after_broker_time_is_a_field_error(auth_client, user):
    # The accounts work refuses any tick later than the sync's broker_time (after the server-time shift),
    # stricter than the 5-minute bound first proposed here: broker_time itself is accepted, 1 s later not.
    t = Clock().tick()
    late = t + timedelta(seconds=1)
    payload = sync_payload(
        broker_time=t, quotes=[quote("EURUSD", "1.1", "1.1", time=t), quote("GBPUSD", "1.2", "1.2", time=late)]
    )
    body = refused_without_writes(auth_client, payload)
    assert len(body["quotes"]) == 1 and body["quotes"][0].startswith("[1].time ")


def test_a_first_sync_with_negative_balance_and_equity_is_accepted_with_a_zero_peak(auth_client, user):
    # a stop-out through a gap leaves the balance negative until negative-balance protection resets it:
    # valid MT5 state. It was a 500 (the peak ≥ 0 check). Peak = max(−100, −200, 0) = 0, drawdown of a
    # zero peak = 0 %, level critical because equity −200 < min_equity 100 (the default).
    clock = Clock()
    response = post_sync(auth_client, sync_payload(broker_time=clock.tick(), balance="-100.00", equity="-200.00"))
    assert response.status_code == 201, response.content
    drawdown = response.json()["guards"]["drawdown"]
    assert (drawdown["peak_equity"], drawdown["drawdown_pct"], drawdown["level"]) == ("0.00", "0.0000", "critical")
    assert GuardState.objects.get(user=user).peak_equity == D("0")
    # then a deposit: the cash-flow index keeps 1 while the start equity is ≤ 0 (no return defined), so
    # peak = 150 × 1 / 1 = 150.00, drawdown 0 %, ok (150 ≥ min_equity 100)
    response = post_sync(auth_client, sync_payload(broker_time=clock.tick(), balance="150.00", equity="150.00"))
    drawdown = response.json()["guards"]["drawdown"]
    assert (drawdown["peak_equity"], drawdown["drawdown_pct"], drawdown["level"]) == ("150.00", "0.0000", "ok")


# ---------------------------------------------------------------------------------------------
# Derived values: clamped or null with the raw figure in details, never a wedged account
# ---------------------------------------------------------------------------------------------
def test_a_1000_percent_gap_is_stored_clamped_and_the_next_sync_goes_through(auth_client, user):
    clock = Clock()
    assert (
        post_sync(auth_client, sync_payload(broker_time=clock.tick(), quotes=[quote("EURUSD", "1.0")])).status_code
        == 201
    )
    # a 1:10 reverse split: mid 1.0 → 11.0, gap = |11 − 1| / 1 × 100 = 1000 % (numeric(7, 4) holds ≤ 999.9999)
    response = post_sync(auth_client, sync_payload(broker_time=clock.tick(), quotes=[quote("EURUSD", "11.0")]))
    assert response.status_code == 201, response.content
    alert = MarketAlert.objects.get(user=user, symbol="EURUSD", condition="price_gap")
    assert (alert.level, alert.value_pct, alert.max_value_pct) == ("critical", D("999.9999"), D("999.9999"))
    log = ReconciliationLog.objects.get(user=user, event_type="guard", details__condition="price_gap")
    assert D(log.details["value_pct_raw"]) == D("1000")  # (11.0 − 1.0) / 1.0 × 100, unclamped
    # the reference quote was updated: the next sync at the same price is a 0 % gap (was a 500 forever)
    response = post_sync(auth_client, sync_payload(broker_time=clock.tick(), quotes=[quote("EURUSD", "11.0")]))
    assert response.status_code == 201, response.content
    assert Quote.objects.get(user=user, symbol="EURUSD").bid == D("11.0")
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.value_pct == D("0")


def test_an_equity_far_below_zero_is_a_100_percent_drawdown_and_later_syncs_go_through(auth_client, user):
    clock = Clock()
    post_sync(auth_client, sync_payload(broker_time=clock.tick(), balance="100.00", equity="100.00"))
    # equity 100 → −1000: r = −1000 / 100 − 1 = −11, index 1 × (1 + r) = −10, floored at 0 by the
    # cash-flow index (a loss beyond the whole equity is a 100 % drawdown) → (1 − 0) / 1 × 100 = 100 %
    response = post_sync(auth_client, sync_payload(broker_time=clock.tick(), balance="100.00", equity="-1000.00"))
    assert response.status_code == 201, response.content
    drawdown = response.json()["guards"]["drawdown"]
    assert (drawdown["drawdown_pct"], drawdown["level"]) == ("100.0000", "critical")
    assert "drawdown_pct_raw" not in drawdown  # nothing was clamped
    assert EquitySnapshot.objects.filter(user=user).latest("created_at").drawdown_pct == D("100.0000")
    assert post_sync(auth_client, sync_payload(broker_time=clock.tick(), equity="-1000.00")).status_code == 201


def test_a_percent_past_its_column_is_clamped_and_the_raw_figure_kept():
    from guards.services import _pct, _raw_if_clamped

    # numeric(7, 4) holds ±999.9999: 1100 % → 999.9999 (raw "1100"); −1100 → −999.9999; 12.34565 → 12.3457
    assert (_pct(D("1100")), _raw_if_clamped(D("1100"), _pct(D("1100")))) == (D("999.9999"), "1100")
    assert _pct(D("-1100")) == D("-999.9999")
    assert (_pct(D("12.34565")), _raw_if_clamped(D("12.34565"), _pct(D("12.34565")))) == (D("12.3457"), None)


def test_a_spread_of_10_pow_12_pips_is_stored_clamped(auth_client, user):
    # EURUSD pip 0.0001: ask − bid = 100000000 → 10^12 pips (numeric(14, 2) holds ≤ 999999999999.99);
    # spread % = 10^8 / 1 × 100 = 10^10 % → 999.9999, raw "1.0000000000E+10" in the log's details
    payload = sync_payload(broker_time=Clock().tick(), quotes=[quote("EURUSD", "1", "100000001")])
    response = post_sync(auth_client, payload)
    assert response.status_code == 201, response.content
    alert = MarketAlert.objects.get(user=user, symbol="EURUSD", condition="wide_spread")
    assert (alert.value_pips, alert.value_pct, alert.level) == (D("999999999999.99"), D("999.9999"), "critical")
    log = ReconciliationLog.objects.get(user=user, event_type="guard", details__condition="wide_spread")
    assert D(log.details["value_pct_raw"]) == D("1E+10")


def test_an_entry_slippage_of_10_pow_10_pips_or_more_is_logged_with_a_null_column(auth_client, user):
    register(user, 1, requested_price="1.00000")
    # filled at 1000001.00000: (1000001 − 1) / 0.0001 = 10^10 pips; numeric(12, 2) holds ≤ 9999999999.99
    position = broker_position(1, price_open="1000001.00000")
    response = post_sync(auth_client, sync_payload(broker_time=Clock().tick(), positions=[position]))
    assert response.status_code == 201, response.content
    row = ReconciliationLog.objects.get(user=user, divergence_reason="entry_slippage")
    assert row.slippage_pips is None
    assert D(row.details["delta_pips"]) == D("10000000000")


def test_a_slippage_just_inside_the_column_is_stored():
    from reconciliation.reconcile import _slippage_column

    assert _slippage_column("9999999999.99") == D("9999999999.99")
    assert _slippage_column("-9999999999.99") == D("-9999999999.99")
    assert _slippage_column("10000000000.00") is None
    assert _slippage_column(None) is None


def test_an_absurd_but_valid_position_is_unvalued_not_a_500(auth_client, user):
    # EURUSD contract 100000; 1,000,000,000 lots from 1 to 100,000,000,000:
    # (10^11 − 1) × 10^9 × 10^5 ≈ 10^25 USD, past the 10^18 a money column holds → unvalued, reason out_of_range
    absurd = broker_position(7, volume="1000000000.00", price_open="1", price_current="100000000000")
    normal = broker_position(8, volume="1.00", price_open="1.10000", price_current="1.10100")
    response = post_sync(auth_client, sync_payload(broker_time=Clock().tick(), positions=[absurd, normal]))
    assert response.status_code == 201, response.content
    response = auth_client.get("/api/v1/positions/open/")
    assert response.status_code == 200, response.content
    body = response.json()
    rows = {row["ticket"]: row for row in body["positions"]}
    assert (rows[7]["unrealized_pnl"], rows[7]["valuation_reason"]) == (None, "out_of_range")
    # the normal one: (1.10100 − 1.10000) × 1.00 × 100000 = 100.00 USD
    assert (rows[8]["unrealized_pnl"], rows[8]["valuation_reason"]) == ("100.00", None)
    assert (body["total_unrealized_pnl"], body["unvalued_positions"]) == ("100.00", 1)
    assert Position.objects.filter(user=user, status="open").count() == 2


# ---------------------------------------------------------------------------------------------
# A future tick never freezes a symbol
# ---------------------------------------------------------------------------------------------
def test_a_stored_quote_ahead_of_the_sync_clock_is_replaced_and_measured(auth_client, user):
    clock = Clock()
    t0 = clock.tick()
    tick = quote("EURUSD", "1.10000", "1.10000", time=t0)
    assert post_sync(auth_client, sync_payload(broker_time=t0, quotes=[tick])).status_code == 201
    # the row stored under a server-time offset since corrected: 4 min after its sync's clock
    Quote.objects.filter(user=user, symbol="EURUSD").update(time=t0 + timedelta(minutes=4))
    # the next sync's tick is at its own broker time, earlier than the stored one
    t1 = clock.tick()
    response = post_sync(auth_client, sync_payload(broker_time=t1, quotes=[quote("EURUSD", "1.21000", time=t1)]))
    assert response.status_code == 201, response.content
    assert response.json()["counts"]["quotes_stored"] == 1  # was 0: every later tick silently dropped
    stored = Quote.objects.get(user=user, symbol="EURUSD")
    assert (stored.bid, stored.time) == (D("1.21000"), t1)
    # and the gap was measured against the replaced quote: |1.21 − 1.10| / 1.10 × 100 = 10 % → critical
    alert = MarketAlert.objects.get(user=user, symbol="EURUSD", condition="price_gap")
    assert (alert.level, alert.value_pct) == ("critical", D("10.0000"))


def test_a_stored_quote_from_year_9999_no_longer_freezes_the_symbol(auth_client, user):
    # a row an older release accepted (no bound then): stamped 9999-12-31
    clock = Clock()
    assert post_sync(auth_client, sync_payload(broker_time=clock.tick())).status_code == 201  # the account
    far = datetime(9999, 12, 31, tzinfo=UTC)
    account = Account.objects.get(user=user)
    Quote.objects.create(user=user, account=account, symbol="EURUSD", bid=D("1.10000"), ask=D("1.10000"), time=far)
    t = clock.tick()
    response = post_sync(auth_client, sync_payload(broker_time=t, quotes=[quote("EURUSD", "1.10500", time=t)]))
    assert response.status_code == 201, response.content
    assert Quote.objects.get(user=user, symbol="EURUSD").time == t


def test_a_genuinely_newer_stored_quote_is_still_kept():
    # the rule it replaces still holds inside the sync's clock: stored 10:00:05 ≤ broker 10:00:10 beats 10:00:00
    broker = datetime(2026, 11, 30, 10, 0, 10, tzinfo=UTC)
    stored = Quote(symbol="EURUSD", bid=D("1"), ask=D("1"), time=broker - timedelta(seconds=5))
    assert stored.is_newer_than(broker - timedelta(seconds=10), broker_time=broker)
    assert not stored.is_newer_than(broker - timedelta(seconds=5), broker_time=broker)  # same time: replaced
    future = Quote(symbol="EURUSD", bid=D("1"), ask=D("1"), time=broker + timedelta(seconds=1))
    assert not future.is_newer_than(broker - timedelta(seconds=10), broker_time=broker)
