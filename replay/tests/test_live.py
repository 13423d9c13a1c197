"""The replay tool against a live tradingsite (pytest-django ``live_server``): HTTP + JWT only, as a worker.

One fault of each kind is injected into a synthetic series the test writes itself; the service must report
every one with the right reason and nothing else (precision = recall = 1), close every position with the
reason of its deal, and agree with the tool's own equity, peak and drawdown to the cent.
"""

from decimal import Decimal

import pytest

from replay import faults as F
from replay import report
from replay.__main__ import main
from replay.run import Options, ReplayError, format_summary, run
from replay.tests.synthetic import write_series
from replay.tests.test_engine import ENTRY_SCHEDULE, SCHEDULE
from tradingsite.throttling import SyncThrottle

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

PASSWORD = "replay-pass-2026"


@pytest.fixture
def replayer(django_user_model, monkeypatch):
    # ~170 syncs in a few seconds: above the default 120/min sync throttle, which is not under test here
    monkeypatch.setattr(SyncThrottle, "rate", "100000/min", raising=False)
    return django_user_model.objects.create_user(username="replayer", password=PASSWORD)


def options(live_server, tmp_path, **overrides) -> Options:
    values = {
        "csv": write_series(tmp_path / "bars.csv"),
        "base_url": live_server.url,
        "username": "replayer",
        "password": PASSWORD,
        "seed": 3,
        "fault_rate": 0.0,
        "entry_fault_rate": 0.0,
        "lots": Decimal("1.00"),
        "sl_pips": 20,
        "tp_pips": 50,
        "fast": 3,
        "slow": 8,
        "schedule": SCHEDULE,
        "entry_schedule": ENTRY_SCHEDULE,
        "config": {
            "gap_warning_pct": Decimal("0.4"),
            "gap_critical_pct": Decimal("1.0"),
            "spread_warning_pct": Decimal("0.05"),
            "spread_critical_pct": Decimal("0.1"),
            "drawdown_warning_pct": Decimal("1"),
            "drawdown_critical_pct": Decimal("2"),
        },
        "out": tmp_path / "out",
        "quiet": True,
        "stop_out_delay_every": 1,  # the series brings one stop-out: deliver its deal late
    }
    values.update(overrides)
    return Options(**values)


def test_replay_reports_each_injected_fault_with_its_reason_and_nothing_else(live_server, replayer, tmp_path):
    # given a fresh user and a 150-bar series with exactly one fault of each kind
    # when the tool replays it over HTTP
    summary = run(options(live_server, tmp_path))
    print(format_summary(summary))  # shown with -s; the assertions below say what must hold

    # then one fault of each kind went in …
    assert summary["faults_injected"] == dict.fromkeys(F.ALL_KINDS, 1)
    # … and each one came back, under its own reason only
    for kind, score in summary["injected_kinds"].items():
        assert (kind, score["expected"], score["reported"], score["precision"], score["recall"]) == (
            kind,
            1,
            1,
            1.0,
            1.0,
        )
    main = summary["accounts"]["main"]
    reported = main["divergences_reported"]
    # the four faults that are divergences, plus the spec-less NAS100 trade at the terminal
    assert sum(reported.values()) == 5
    assert reported["unexpected_at_broker"] == 2
    assert {"entry_slippage", "partial_fill", "unexpected_at_broker"} <= set(reported)
    assert set(reported) - {"entry_slippage", "partial_fill", "unexpected_at_broker"} in (
        {"sl_mismatch"},
        {"tp_mismatch"},
    )
    assert summary["slippage_pips"] == {"checked": 1, "equal": 1}

    # issue 11 scenarios: partial closes at 1R, the declared trailing SL, one deposit and one withdrawal …
    events = main["scenario_events"]
    assert events["partial_close"]["expected"] >= 1 and events["sl_updated"]["expected"] >= 1
    assert (events["deposit"]["expected"], events["withdrawal"]["expected"]) == (1, 1)
    assert all(report.perfect(s) for s in events.values())
    # … the NAS100 trade shown unvalued, the guards still running (every sync answered 201 with its guards)
    assert main["spec_missing"]["valuation_reason"] == "spec_missing"
    # … Σ realized P&L and the balance to the cent, on every account
    for account in summary["accounts"].values():
        assert account["money"]["equal"] is True, account["money"]
    # … a netting account: increases, partial closes and reversals, each a lifecycle event, no divergence
    netting = summary["accounts"]["netting"]
    assert all(netting["scenario_events"][k]["expected"] >= 1 for k in ("position_increased", "reversed"))
    assert all(report.perfect(s) for s in netting["scenario_events"].values())
    assert netting["divergences_reported"] == {}
    # … and the accounts are separate (distinct ids, own tickets, the main account's thresholds not inherited)
    assert summary["accounts_separate"]["ok"] is True

    # issue 12: no stale quote while the market is closed, the Monday gap alerts
    assert main["sessions"]["weekend_syncs"] == 2  # Saturday and Sunday 12:00 UTC inside the weekend gap
    assert main["sessions"]["stale_quote_alerts"] == 0
    assert main["sessions"]["monday_gap_alerts_service"] == main["sessions"]["monday_gap_alerts_expected"] == 1
    # … and the high-leverage account is stopped out; its late deal is first inferred as stop_out, then settled
    stop_outs = summary["accounts"]["stop_out"]["stop_outs"]
    assert stop_outs["broker_stop_outs"] >= 1
    assert stop_outs["service_inferred"] == stop_outs["deals_delivered_late"] == stop_outs["broker_stop_outs"]
    assert stop_outs["inferred_matching_a_reason_6_deal"] == stop_outs["service_inferred"]
    assert stop_outs["settled_by_deal"] == stop_outs["deals_delivered_late"]
    # a deal delivered late leaves two balance changes unexplained (the sync without it, the sync with it)
    residues = summary["accounts"]["stop_out"]["divergences"]["unexplained_balance_change"]
    assert (residues["expected"], residues["precision"], residues["recall"]) == (
        2 * stop_outs["broker_stop_outs"],
        1.0,
        1.0,
    )

    # the closes carry the reasons of their deals: TP, SL, the bot's reversal, and the manual closes
    closes = summary["closes"]
    assert {"sl_hit", "tp_hit", "closed_by_bot", "closed_manually"} <= set(closes["by_reason_expected"])
    assert closes["by_reason_service"] == closes["by_reason_expected"]
    assert all((s["precision"], s["recall"]) == (1.0, 1.0) for s in closes["precision_recall"].values())
    assert (closes["price_mismatches"], closes["pnl_mismatches"]) == (0, 0)

    # alerts: the injected spread, the weekend gap and the drawdowns, as the tool computes them itself
    alerts = summary["alerts"]
    assert alerts["expected_by_source"]["wide_spread:injected"] == 1
    assert alerts["expected_by_source"]["price_gap:weekend_gap"] == 1
    assert alerts["expected_by_source"]["drawdown:equity"] >= 1
    assert all((s["precision"], s["recall"]) == (1.0, 1.0) for s in alerts["precision_recall"].values())
    assert alerts["service_by_kind"] == alerts["expected_by_kind"]

    # equity, peak and drawdown: service == tool, after every sync and at the end
    equity = summary["equity"]
    assert equity["equal"] is True
    assert equity["per_sync_mismatches"] == 0
    assert equity["service"]["final_equity"] == equity["tool"]["final_equity"]
    assert equity["service"]["max_drawdown_money"] == equity["tool"]["max_drawdown_money"]
    assert summary["checks"] == dict.fromkeys(summary["checks"], True)
    assert summary["ok"] is True

    # and the outputs are written: JSON summary, ground truth, the per-sync CSV and a PNG chart
    with open(summary["chart"], "rb") as chart:
        assert chart.read(8) == b"\x89PNG\r\n\x1a\n"
    for key in ("summary_json", "ground_truth", "equity_csv"):
        assert (tmp_path / "out").joinpath(summary[key].rsplit("/", 1)[-1]).stat().st_size > 0


def test_replay_refuses_an_account_that_already_has_data(live_server, replayer, tmp_path):
    # given a first, short replay
    run(options(live_server, tmp_path, schedule=None, entry_schedule=None, limit=20, chart=False))
    # when a second replay runs on the same user
    # then it stops before posting anything, with a clear message
    with pytest.raises(ReplayError, match="replay needs a fresh account"):
        run(options(live_server, tmp_path, limit=20, chart=False))


def test_cli_reports_a_malformed_csv_with_its_line_number(tmp_path, capsys):
    # given a CSV whose third line has a non-numeric close
    bad = tmp_path / "bad.csv"
    bad.write_text("time,Open,High,Low,Close\n2024-01-01 00:00:00,1.1,1.2,1.0,1.1\n2024-01-01 01:00:00,1.1,1.2,1.0,x\n")
    # when
    status = main(["--csv", str(bad), "--username", "u", "--password", "p", "--base-url", "http://127.0.0.1:9"])
    # then exit status 2 and the message names the line; no HTTP was attempted (port 9 is closed)
    assert status == 2
    assert "line 3: close 'x' is not a number" in capsys.readouterr().err
