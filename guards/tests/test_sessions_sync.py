"""Sessions in the sync (issue 12): no stale-quote alert while a market is closed; the Monday gap still alerts."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from guards.models import InstrumentGuardSetting
from positions.models import Instrument
from reconciliation.tests.factories import SYNC_URL, ingest, quote, sync_payload, table_counts

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
    assert body["system_status"] == "healthy"  # not held at warning over the weekend


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


# --------------------------------------------------------------------------------------------
# Sessions per symbol from the sync's symbol info, and an operator's override
# --------------------------------------------------------------------------------------------
HOUR = 3600
# A DAX CFD on a UTC+2 trade server: Sunday 23:00 → Friday 22:00 server time with a daily break 22:00–23:00
# (MQL5 day_of_week: 0 = Sunday … 5 = Friday; from/to in seconds of the server's day).
DE40_SESSIONS = (
    [{"day_of_week": 0, "from": 23 * HOUR, "to": 24 * HOUR}]
    + [{"day_of_week": d, "from": 0, "to": 22 * HOUR} for d in range(1, 6)]
    + [{"day_of_week": d, "from": 23 * HOUR, "to": 24 * HOUR} for d in range(1, 5)]
)
# Wednesday 14 January 2026 (winter): the break 22:00–23:00 server time (UTC+2) is 20:00–21:00 UTC. The default
# calendar for indices (CME, break 17:00–18:00 New York = 22:00–23:00 UTC) has this market open at 20:30 UTC.
TICK = datetime(2026, 1, 14, 20, 20, tzinfo=UTC)  # 22:20 server time, inside the break


def de40_spec(sessions=None):
    from tradingsite.sync_payload import symbol_spec

    return symbol_spec(symbol="DE40", trade_contract_size="1", digits=1, point="0.1", currency_base="EUR",
                       currency_profit="EUR", trade_calc_mode=3, sessions=sessions)  # fmt: skip


def de40_sync(user, when, *, spec=None):
    body = sync_payload(broker_time=when, positions=[], quotes=[quote("DE40", "20000.0", "20001.0", time=TICK)],
                        server_utc_offset=120)  # fmt: skip
    if spec is not None:
        body["symbols"] = [spec]
    return ingest(user, body).summary["guards"]["market_alerts"]


def stale(alerts):
    return [(a["symbol"], a["level"], a["age_seconds"]) for a in alerts if a["condition"] == "stale_quote"]


def test_no_stale_quote_during_the_daily_break_the_sync_sent(user):
    # 20:30 UTC = 22:30 server time: the break (22:00–23:00) of the sessions the sync sent → closed → nothing
    # stale, although the 20:20 tick is 600 s old (> 60 s) and the default index calendar has the market open.
    alerts = de40_sync(user, datetime(2026, 1, 14, 20, 30, tzinfo=UTC), spec=de40_spec(DE40_SESSIONS))
    assert stale(alerts) == []
    instrument = Instrument.objects.get(account__user=user, symbol="DE40")
    assert instrument.sessions == sorted(DE40_SESSIONS, key=lambda s: (s["day_of_week"], s["from"]))


def test_after_the_break_reopens_the_age_counts_from_the_reopening(user):
    de40_sync(user, datetime(2026, 1, 14, 20, 30, tzinfo=UTC), spec=de40_spec(DE40_SESSIONS))
    # 21:00:30 UTC = 23:00:30 server time: open again 30 s ago; age = 21:00:30 − max(20:20, 21:00) = 30 s ≤ 60 s.
    assert stale(de40_sync(user, datetime(2026, 1, 14, 21, 0, 30, tzinfo=UTC))) == []
    # 21:02 UTC (later syncs need not resend the sessions: they are stored): 21:02 − 21:00 = 120 s > 60 s → warning.
    assert stale(de40_sync(user, datetime(2026, 1, 14, 21, 2, tzinfo=UTC))) == [("DE40", "warning", 120)]


def test_an_operators_session_override_is_honoured_when_the_sync_sends_none(user):
    account = user.accounts.get()
    InstrumentGuardSetting.objects.create(user=user, account=account, symbol="DE40", sessions=DE40_SESSIONS)
    # Same clock as above, sessions from the override (the sync sends a spec without them): closed at 20:30 UTC,
    # 120 s old at 21:02 UTC.
    assert stale(de40_sync(user, datetime(2026, 1, 14, 20, 30, tzinfo=UTC), spec=de40_spec())) == []
    assert stale(de40_sync(user, datetime(2026, 1, 14, 21, 2, tzinfo=UTC))) == [("DE40", "warning", 120)]


def test_the_syncs_sessions_come_before_the_override(user):
    # The override says the market is closed all Wednesday (no Wednesday session); the trade server's own sessions
    # (sent by the sync) say it is open at 19:30 UTC = 21:30 server time: the tick of 19:20 is 600 s old → stale.
    account = user.accounts.get()
    no_wednesday = [s for s in DE40_SESSIONS if s["day_of_week"] != 3]
    InstrumentGuardSetting.objects.create(user=user, account=account, symbol="DE40", sessions=no_wednesday)
    tick = quote("DE40", "20000.0", "20001.0", time=datetime(2026, 1, 14, 19, 20, tzinfo=UTC))
    body = sync_payload(broker_time=datetime(2026, 1, 14, 19, 30, tzinfo=UTC), positions=[], server_utc_offset=120,
                        quotes=[tick])  # fmt: skip
    body["symbols"] = [de40_spec(DE40_SESSIONS)]
    assert stale(ingest(user, body).summary["guards"]["market_alerts"]) == [("DE40", "warning", 600)]


def test_with_the_syncs_sessions_the_weekend_is_quiet_and_the_monday_gap_still_alerts(user):
    def de40(when, tick_time, bid, ask):
        body = sync_payload(broker_time=when, positions=[], server_utc_offset=120,
                            quotes=[quote("DE40", bid, ask, time=tick_time)])  # fmt: skip
        body["symbols"] = [de40_spec(DE40_SESSIONS)]
        return ingest(user, body).summary["guards"]["market_alerts"]

    friday = datetime(2026, 1, 16, 19, 59, tzinfo=UTC)  # 21:59 server time, a minute before Friday's 22:00 close
    assert de40(friday, friday, "20000.0", "20001.0") == []
    # Saturday noon: no Saturday session → closed → Friday's tick is not stale.
    assert de40(datetime(2026, 1, 17, 12, 0, tzinfo=UTC), friday, "20000.0", "20001.0") == []
    # The week opens Sunday 23:00 server time = 21:00 UTC; 30 s later the first tick: mid 21,200.5 against Friday's
    # 20,000.5: 1,200 / 20,000.5 × 100 = 5.99985… → 5.9999 % ≥ 5 % → price_gap warning (and nothing stale).
    sunday_open = datetime(2026, 1, 18, 21, 0, 30, tzinfo=UTC)
    (gap,) = de40(sunday_open, sunday_open, "21200.0", "21201.0")
    assert (gap["symbol"], gap["condition"], gap["level"]) == ("DE40", "price_gap", "warning")
    assert gap["value_pct"] == "5.9999"


def test_sessions_add_one_statement_per_ingestion_not_per_symbol(user):
    # Three quoted symbols without sessions of their own: the overrides are read once; the sync's sessions come
    # with the instrument rows (one query for every symbol, as before).
    body = sync_payload(broker_time=SATURDAY, positions=[], quotes=[
        quote(s, "1.00000", "1.00010", time=FRIDAY_2159) for s in ("EURUSD", "GBPUSD", "AUDUSD")])  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        ingest(user, body)
    sql = [q["sql"] for q in ctx.captured_queries]
    assert sum("guards_instrumentguardsetting" in s for s in sql) == 1
    assert sum(s.lstrip().startswith("SELECT") and 'FROM "positions_instrument"' in s for s in sql) == 1


@pytest.mark.parametrize(
    ("sessions", "error_path"),
    [
        ([{"day_of_week": 7, "from": 0, "to": 3600}], [0, "day_of_week"]),  # MQL5 days are 0–6
        ([{"day_of_week": 1, "from": 7200, "to": 3600}], [0, "to"]),  # from < to
        ([{"day_of_week": 1, "from": 3600, "to": 3600}], [0, "to"]),  # an empty session
        ([{"day_of_week": 1, "from": 0, "to": 86401}], [0, "to"]),  # past 24:00
        ([{"day_of_week": 1, "from": -1, "to": 3600}], [0, "from"]),
        ([{"day_of_week": 1, "from": True, "to": 3600}], [0, "from"]),  # a boolean is not a second count
        ([{"day_of_week": 1, "to": 3600}], [0, "from"]),
        ([], []),  # sent but empty: omit the field when unknown
        ([{"day_of_week": 1, "from": 0, "to": 3600}] * 71, []),  # more than MAX_SESSIONS (70)
    ],
)
def test_bad_sessions_are_a_400_with_field_errors_and_nothing_written(user, auth_client, sessions, error_path):
    body = sync_payload(broker_time=datetime(2026, 1, 14, 20, 30, tzinfo=UTC), positions=[],
                        quotes=[quote("DE40", "20000.0", "20001.0", time=TICK)])  # fmt: skip
    body["symbols"] = [de40_spec(sessions)]
    before = table_counts()
    response = auth_client.post(SYNC_URL, body, format="json")
    assert response.status_code == 400
    error = response.json()["symbols"]["0"]["sessions"]  # list items are keyed by their index as a string
    for key in error_path:
        error = error[str(key)]
    assert error and all(isinstance(message, str) for message in error)
    assert table_counts() == before


def test_override_sessions_are_validated_like_the_syncs(user):
    setting = InstrumentGuardSetting(user=user, account=user.accounts.get(), symbol="DE40",
                                     sessions=[{"day_of_week": 1, "from": 3600, "to": 60}])  # fmt: skip
    with pytest.raises(ValidationError) as raised:
        setting.full_clean()
    assert raised.value.message_dict["sessions"] == ["[0]: 0 ≤ from < to ≤ 86400 seconds."]
