"""Trading sessions (issue 12): no stale quote while a market is closed; ages count from the reopening."""

from datetime import UTC, datetime

import pytest

from guards.sessions import (
    CME_CALENDAR,
    CRYPTO_CALENDAR,
    FX_CALENDAR,
    calendar_from_symbol_info,
    default_calendar,
    quote_age_seconds,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


FRIDAY_TICK = utc(2026, 3, 6, 21, 59)  # Friday 16:59 New York (EST, UTC−5): one minute before the close
SATURDAY_SYNC = utc(2026, 3, 7, 10, 0)


@pytest.mark.parametrize("symbol", ["EURUSD", "GBPUSD", "XAUUSD"])
def test_issue_example_a_saturday_sync_with_friday_ticks_is_not_stale(symbol):
    # The issue: three stale_quote warnings all weekend. FX and metals close Friday 17:00 New York
    # = 22:00 UTC (EST); on Saturday the market is closed → no age counts.
    calendar = default_calendar(symbol)
    assert calendar.is_open(FRIDAY_TICK)
    assert not calendar.is_open(SATURDAY_SYNC)
    assert quote_age_seconds(tick_time=FRIDAY_TICK, now=SATURDAY_SYNC, calendar=calendar) is None


def test_crypto_trades_all_weekend_so_a_friday_tick_on_saturday_is_stale():
    # Friday 21:59 → Saturday 10:00 = 12 h 01 min = 43 260 s
    assert default_calendar("BTCUSD") is CRYPTO_CALENDAR
    assert quote_age_seconds(tick_time=FRIDAY_TICK, now=SATURDAY_SYNC, calendar=CRYPTO_CALENDAR) == 43_260


def test_after_the_sunday_open_the_age_counts_from_the_opening():
    # US daylight saving time starts Sunday 2026-03-08 02:00, so the FX week opens 17:00 EDT = 21:00 UTC.
    # 30 s after the open, Friday's tick is 30 s old for the guard (not 47 h); 2 min after, 120 s: stale at 60 s.
    assert FX_CALENDAR.opened_at(utc(2026, 3, 8, 21, 0, 30)) == utc(2026, 3, 8, 21, 0)
    assert not FX_CALENDAR.is_open(utc(2026, 3, 8, 20, 59))
    assert quote_age_seconds(tick_time=FRIDAY_TICK, now=utc(2026, 3, 8, 21, 0, 30), calendar=FX_CALENDAR) == 30
    assert quote_age_seconds(tick_time=FRIDAY_TICK, now=utc(2026, 3, 8, 21, 2), calendar=FX_CALENDAR) == 120
    # a fresh tick counts from itself: tick 21:01:50, now 21:02 → 10 s
    fresh = utc(2026, 3, 8, 21, 1, 50)
    assert quote_age_seconds(tick_time=fresh, now=utc(2026, 3, 8, 21, 2), calendar=FX_CALENDAR) == 10


def test_metals_close_for_the_daily_break():
    # Tuesday 2026-03-10 (EDT, UTC−4): 17:30 New York = 21:30 UTC is inside the 17:00–18:00 break;
    # 18:00:10 = 22:00:10 UTC is open, the session having opened at 22:00 UTC. FX has no daily break.
    assert default_calendar("XAUUSD") is CME_CALENDAR
    assert not CME_CALENDAR.is_open(utc(2026, 3, 10, 21, 30))
    assert CME_CALENDAR.opened_at(utc(2026, 3, 10, 22, 0, 10)) == utc(2026, 3, 10, 22, 0)
    assert FX_CALENDAR.is_open(utc(2026, 3, 10, 21, 30))


def test_calendar_from_the_syncs_symbol_info_on_a_utc_plus_2_server():
    # MQL5 SymbolInfoSessionTrade: Monday (1) … Friday (5), 00:00 → 24:00 server time (UTC+2), touching
    # sessions joined: open Monday 00:00 server = Sunday 22:00 UTC → Saturday 00:00 server = Friday 22:00 UTC.
    sessions = [{"day_of_week": d, "from": 0, "to": 86_400} for d in range(1, 6)]
    calendar = calendar_from_symbol_info(sessions, server_utc_offset_seconds=7200)
    assert not calendar.is_open(SATURDAY_SYNC)
    assert calendar.is_open(utc(2026, 3, 6, 21, 59))
    assert not calendar.is_open(utc(2026, 3, 6, 22, 0))
    assert calendar.opened_at(utc(2026, 3, 10, 12)) == utc(2026, 3, 8, 22, 0)  # Tuesday: the week's opening


def test_symbol_info_sessions_with_a_daily_break():
    # Monday 01:05–23:55 server (UTC+2) only; 22:00 UTC Monday = 00:00 Tuesday server → closed
    monday = [{"day_of_week": 1, "from": 3900, "to": 86_100}]
    calendar = calendar_from_symbol_info(monday, server_utc_offset_seconds=7200)
    assert calendar.is_open(utc(2026, 3, 9, 12))
    assert calendar.opened_at(utc(2026, 3, 9, 12)) == utc(2026, 3, 8, 23, 5)  # Monday 01:05 server
    assert not calendar.is_open(utc(2026, 3, 9, 22, 0))  # Tuesday 00:00 server
