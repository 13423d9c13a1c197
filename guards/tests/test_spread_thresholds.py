"""Spread thresholds per symbol and the rolling median spread (issue 12), through the sync.

Before: one percentage of bid for every market (warning above 0.5 %, critical from 1.0 %), so a 20-pip
EURUSD spread (0.18 %) read ``ok``. Now: the symbol's class defaults (FX 5 / 10 pips, metals 10 / 20 pips,
indices 0.05 / 0.10 %, crypto 0.3 / 0.6 % of price), 3 × / 6 × its rolling median once 20 spreads are
known, or the account's override; the account-wide percentages stay a ceiling.
"""

from decimal import Decimal as D

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from guards.instruments import InstrumentGuards
from guards.models import InstrumentGuardSetting, SymbolSpread
from guards.tolerances import SPREAD_WINDOW
from positions.models import Instrument
from reconciliation.tests.factories import Clock, ingest, quote, sync_payload

pytestmark = pytest.mark.django_db


def _sync(user, clock, quotes):
    return ingest(user, sync_payload(broker_time=clock.tick(), positions=[], quotes=quotes)).summary


def _spread_alert(summary, symbol):
    alerts = [
        a for a in summary["guards"]["market_alerts"] if a["condition"] == "wide_spread" and a["symbol"] == symbol
    ]
    return alerts[0] if alerts else None


def test_a_20_pip_eurusd_spread_is_critical_and_a_normal_gold_spread_is_ok(user):
    # EURUSD 1.10200 − 1.10000 = 0.00200 = 20 pips ≥ the FX critical 10 pips (main: 0.18 % < 0.5 % → ok);
    # gold 2000.30 − 2000.00 = 0.30 = 3 pips of 0.10 < 10 pips, and 0.015 % < the 0.5 % ceiling → ok
    summary = _sync(user, Clock(), [quote("EURUSD", "1.10000", "1.10200"), quote("XAUUSD", "2000.00", "2000.30")])
    eur = _spread_alert(summary, "EURUSD")
    # 0.00200 / 1.10000 × 100 = 0.181818… % → 0.1818; critical 10 pips = 0.0010 / 1.1 × 100 = 0.0909… → 0.091
    assert (eur["level"], eur["value_pips"], eur["value_pct"], eur["threshold_pct"]) == (
        "critical", "20.00", "0.1818", "0.091"
    )  # fmt: skip
    assert _spread_alert(summary, "XAUUSD") is None


def test_a_spread_four_times_its_median_warns_once_the_median_is_known(user):
    # 20 syncs at 1 pip (median 0.00010), then 4 pips: below the FX default 5 pips, but 0.00040 / 0.00010 = 4 ×
    # ≥ 3 × the median → warning (main: 0.036 % < 0.5 % → ok)
    clock = Clock()
    for _ in range(20):
        assert _spread_alert(_sync(user, clock, [quote("EURUSD", "1.10000", "1.10010")]), "EURUSD") is None
    summary = _sync(user, clock, [quote("EURUSD", "1.10000", "1.10040")])
    alert = _spread_alert(summary, "EURUSD")
    # warning threshold 3 × 0.00010 = 0.00030 = 0.0272… % of 1.1 → 0.027
    assert (alert["level"], alert["value_pips"], alert["threshold_pct"]) == ("warning", "4.00", "0.027")
    row = SymbolSpread.objects.get(account__user=user, symbol="EURUSD")
    # the window: 20 × 10 points then 40 points (point 0.00001); median of 21 values = 10 points = 0.00010
    assert (row.samples, row.spreads[-2:], row.median) == (21, [10, 40], D("0.00010"))


def test_an_account_override_replaces_the_defaults(user):
    # an exotic-like EURUSD setting: 50 / 100 pips → 20 pips is ok; gold in percent: 0.01 / 0.02 % → 0.30 is
    # 0.015 % of 2000 → warning
    clock = Clock()
    _sync(user, clock, [])
    account = user.accounts.get()
    InstrumentGuardSetting.objects.create(
        user=user, account=account, symbol="EURUSD", spread_unit="pips", spread_warning=D("50"),
        spread_critical=D("100"),
    )  # fmt: skip
    InstrumentGuardSetting.objects.create(
        user=user, account=account, symbol="XAUUSD", spread_unit="pct", spread_warning=D("0.01"),
        spread_critical=D("0.02"),
    )  # fmt: skip
    summary = _sync(user, clock, [quote("EURUSD", "1.10000", "1.10200"), quote("XAUUSD", "2000.00", "2000.30")])
    assert _spread_alert(summary, "EURUSD") is None
    gold = _spread_alert(summary, "XAUUSD")
    assert (gold["level"], gold["threshold_pct"]) == ("warning", "0.010")


def test_the_window_keeps_the_last_spreads_and_their_median():
    # 205 spreads of 1..205 points: the window keeps 6..205 (200 values), median (105 + 106) / 2 = 105.5 points
    instrument = Instrument(symbol="EURUSD", digits=5, point=D("0.00001"), pip_size=D("0.0001"))
    guards = InstrumentGuards(user_id=1, account_id=1, settings={}, spreads={})
    for points in range(1, 206):
        guards.record("EURUSD", bid=D("1.10000"), ask=D("1.10000") + points * D("0.00001"), instrument=instrument)
    row = guards.spreads["EURUSD"]
    assert (len(row.spreads), row.spreads[0], row.spreads[-1], row.samples) == (SPREAD_WINDOW, 6, 205, 200)
    assert row.median == D("105.5") * D("0.00001")


def test_one_upsert_writes_every_quoted_symbols_spread(user):
    # a sync quoting three symbols reads the settings and the windows with the instruments (two SELECTs) and
    # writes all three windows with one INSERT … ON CONFLICT (the second sync: same, rows updated); on
    # PostgreSQL that upsert travels inside the sync's one WITH … statement (tradingsite.db.WriteBatch)
    clock = Clock()
    quotes = [quote("EURUSD", "1.10000", "1.10010"), quote("XAUUSD", "2000.00", "2000.30"),
              quote("BTCUSD", "60000.00", "60020.00")]  # fmt: skip
    for expected_samples in (1, 2):
        with CaptureQueriesContext(connection) as ctx:
            _sync(user, clock, quotes)
        sql = [q["sql"] for q in ctx.captured_queries]
        spread_writes = [
            s for s in sql if "guards_symbolspread" in s and s.lstrip().upper().startswith(("INSERT", "WITH"))
        ]
        spread_reads = [s for s in sql if "guards_symbolspread" in s and s.lstrip().upper().startswith("SELECT")]
        setting_reads = [s for s in sql if "guards_instrumentguardsetting" in s]
        assert (len(spread_writes), len(spread_reads), len(setting_reads)) == (1, 1, 1)
        assert "ON CONFLICT" in spread_writes[0].upper()
        samples = dict(SymbolSpread.objects.filter(account__user=user).values_list("symbol", "samples"))
        assert samples == {"EURUSD": expected_samples, "XAUUSD": expected_samples, "BTCUSD": expected_samples}


def test_a_repeated_tick_is_not_counted_twice(user):
    # the same tick (time, bid, ask) sent by two syncs (a closed market) adds one spread, not two
    clock = Clock()
    tick = quote("EURUSD", "1.10000", "1.10010", time=clock.tick())
    _sync(user, clock, [tick])
    _sync(user, clock, [tick])
    assert SymbolSpread.objects.get(account__user=user, symbol="EURUSD").samples == 1
