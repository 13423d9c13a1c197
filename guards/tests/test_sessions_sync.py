"""Sessions in the sync (issue 12): no stale-quote alert while a market is closed; the Monday gap still alerts."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from reconciliation.tests.factories import ingest, quote, sync_payload

pytestmark = pytest.mark.django_db

FRIDAY_2159 = datetime(2026, 3, 6, 21, 59, tzinfo=UTC)  # 16:59 New York (EST): a minute before the FX close
SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)


def sync(user, when, quotes):
    return ingest(user, sync_payload(broker_time=when, positions=[], quotes=quotes)).summary["guards"]


def test_issue_example_a_saturday_sync_with_friday_ticks_raises_no_stale_quote(user, auth_client):
    # The issue: three stale_quote warnings on Saturday and system_status held at warning all weekend.
    friday = [quote("EURUSD", "1.10000", "1.10010", time=FRIDAY_2159),
              quote("GBPUSD", "1.27000", "1.27020", time=FRIDAY_2159),
              quote("XAUUSD", "2000.00", "2000.30", time=FRIDAY_2159)]  # fmt: skip
    sync(user, FRIDAY_2159, friday)
    guards = sync(user, SATURDAY, friday)
    assert guards["market_alerts"] == []
    body = auth_client.get(reverse("guards:status")).json()
    assert body["market_alerts"] == []


def test_crypto_trades_on_saturday_so_its_friday_tick_is_stale(user):
    # BTCUSD is open 24/7: Friday 21:59 → Saturday 10:00 = 43 260 s > 60 s → stale warning
    guards = sync(user, SATURDAY, [quote("BTCUSD", "60000.00", "60010.00", time=FRIDAY_2159)])
    (alert,) = guards["market_alerts"]
    assert (alert["symbol"], alert["condition"], alert["level"], alert["age_seconds"]) == (
        "BTCUSD", "stale_quote", "warning", 43_260
    )  # fmt: skip


def test_the_sunday_open_gap_still_alerts_and_staleness_counts_from_the_open(user):
    # Friday close 2000.00/2000.30 (mid 2000.15); the week reopens (metals: Sunday 18:00 New York = 22:00 UTC in
    # EDT) at 2120.00/2120.30 (mid 2120.15): 120 / 2000.15 × 100 = 5.99955… % → 5.9996 % ≥ 5 % → price_gap warning.
    sync(user, FRIDAY_2159, [quote("XAUUSD", "2000.00", "2000.30", time=FRIDAY_2159)])
    sunday_open = datetime(2026, 3, 8, 22, 0, 30, tzinfo=UTC)  # DST: 2026-03-08 is EDT, open 18:00 EDT = 22:00 UTC
    guards = sync(user, sunday_open, [quote("XAUUSD", "2120.00", "2120.30", time=sunday_open)])
    (gap,) = guards["market_alerts"]
    assert (gap["condition"], gap["level"], gap["value_pct"]) == ("price_gap", "warning", "5.9996")
    # a silver quote still stamped Friday, 30 s after the metals' open, is 30 s old for the guard: not stale
    guards = sync(user, sunday_open, [quote("XAGUSD", "25.000", "25.020", time=FRIDAY_2159)])
    assert [a["condition"] for a in guards["market_alerts"]] == ["price_gap"]
