"""Scoring (replay.report): precision/recall, the tool's own peak/drawdown and expected alert episodes."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from replay.engine import SyncRecord
from replay.report import (
    Thresholds,
    compare_equity,
    equity_series,
    expected_alerts,
    precision_recall,
    score_alerts,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def record(
    n: int, *, equity: str, balance: str = "10000.00", bid: str = "1.10000", ask: str = "1.10010", after_gap=False
):
    return SyncRecord(
        number=n,
        sync_id=f"s{n}",
        broker_time=T0 + timedelta(hours=n),
        bar=n,
        moment="close",
        bid=Decimal(bid),
        ask=Decimal(ask),
        balance=Decimal(balance),
        equity=Decimal(equity),
        open_positions=0,
        deals=0,
        after_gap=after_gap,
    )


def test_precision_recall_counts_duplicates_and_misses():
    # given 3 expected items; reported: 2 right ones, one of them twice, and one wrong
    expected = {(1, "partial_fill"), (2, "partial_fill"), (3, "partial_fill")}
    reported = [(1, "partial_fill"), (1, "partial_fill"), (2, "partial_fill"), (9, "partial_fill")]
    # when
    score = precision_recall(expected, reported)
    # then precision = 2 / 4 = 0.5, recall = 2 / 3 = 0.6667
    assert (score["true_positives"], score["false_positives"], score["false_negatives"]) == (2, 2, 1)
    assert (score["precision"], score["recall"]) == (0.5, 0.6667)
    assert score["missed_items"] == [[3, "partial_fill"]]


def test_precision_recall_is_undefined_when_nothing_is_expected_or_reported():
    assert (precision_recall(set(), [])["precision"], precision_recall(set(), [])["recall"]) == (None, None)


def test_equity_series_peak_and_drawdown():
    # given equity 10,000 → 10,500 → 9,450 → 10,600 (first balance 10,000)
    syncs = [
        record(1, equity="10000.00"),
        record(2, equity="10500.00"),
        record(3, equity="9450.00"),
        record(4, equity="10600.00"),
    ]
    # when
    series = equity_series(syncs)
    # then peak 10,000, 10,500, 10,500, 10,600; drawdown at 9,450 = 1,050 / 10,500 × 100 = 10 %
    assert [p["peak"] for p in series] == [
        Decimal("10000.00"),
        Decimal("10500.00"),
        Decimal("10500.00"),
        Decimal("10600.00"),
    ]
    assert [p["drawdown_pct"] for p in series] == [Decimal("0"), Decimal("0"), Decimal("10.0000"), Decimal("0")]
    assert series[2]["drawdown_money"] == Decimal("1050.00")


def test_equity_series_restarts_at_the_refill_of_a_wiped_out_account():
    # given 1,000 → stop-out to 0.50 (index 0.0005, 99.95 %) → +1,000 deposit (equity 1,000.50) → 900, as the
    # service computes it (docs/deals.md): the refill restarts the index, 900 / 1,000.50 = 0.899550224888
    # → drawdown 10.0450 % from the refill's 1,000.50 (before: 99.9550 % and a peak of 2,001,000.50)
    syncs = [
        record(1, balance="1000.00", equity="1000.00"),
        record(2, balance="0.50", equity="0.50"),
        record(3, balance="1000.50", equity="1000.50"),
        record(4, balance="900.00", equity="900.00"),
    ]
    syncs[2].flow = Decimal("1000.00")
    series = equity_series(syncs)
    assert [p["drawdown_pct"] for p in series] == [
        Decimal("0"), Decimal("99.9500"), Decimal("0"), Decimal("10.0450")
    ]  # fmt: skip
    assert [p["peak"] for p in series] == [Decimal(v) for v in ("1000.00", "1000.00", "1000.50", "1000.50")]


def test_first_peak_is_the_larger_of_balance_and_equity():
    # given a first snapshot with balance 10,000 and equity 9,800 (a losing position already open)
    (point,) = equity_series([record(1, equity="9800.00")])
    # then peak 10,000 and drawdown 2 %
    assert (point["peak"], point["drawdown_pct"]) == (Decimal("10000.00"), Decimal("2.0000"))


def test_expected_alerts_one_episode_per_excursion_with_its_worst_level():
    # given thresholds: drawdown 5/10 %, gap 0.4/1.0 %, spread 0.05/0.10 %
    thresholds = Thresholds(
        drawdown_warning_pct=Decimal("5"),
        drawdown_critical_pct=Decimal("10"),
        gap_warning_pct=Decimal("0.4"),
        gap_critical_pct=Decimal("1.0"),
        spread_warning_pct=Decimal("0.05"),
        spread_critical_pct=Decimal("0.10"),
    )
    syncs = [
        record(1, equity="10000.00"),
        record(2, equity="9400.00"),  # 6 % → drawdown warning opens
        record(3, equity="8900.00"),  # 11 % → escalates in the same episode
        # 3 %: below 5 − 1 (the band, min(1, 5 / 2)) → resolved; 4 % would have kept the warning (4 < 4 is false)
        record(4, equity="9700.00"),
        # weekend: mid 1.100050 → 1.105550: 0.0055 / 1.10005 × 100 = 0.49998 % → gap warning
        record(5, equity="9600.00", bid="1.10550", ask="1.10560", after_gap=True),
        # spread 0.00070 / 1.10520 × 100 = 0.0633 % > 0.05 → spread warning; mid 1.10555 (gap 0.0005 %)
        record(6, equity="9600.00", bid="1.10520", ask="1.10590"),
        # spread exactly 0.05 %: 0.00055 / 1.10000 × 100 = 0.05 → not above the warning → resolved;
        # mid 1.100275 vs 1.10555: 0.4771 % → a new gap episode, intraday
        record(7, equity="9600.00", bid="1.10000", ask="1.10055"),
    ]
    # when
    episodes = expected_alerts(syncs, equity_series(syncs), thresholds, injected_spread_syncs={"s6"})
    # then
    found = [(e.condition, e.sync_id, e.max_level, e.source) for e in episodes]
    assert found == [
        ("drawdown", "s2", "critical", "equity"),
        ("price_gap", "s5", "warning", "weekend_gap"),
        ("price_gap", "s7", "warning", "intraday_move"),
        ("wide_spread", "s6", "warning", "injected"),
    ]
    assert episodes[0].resolved_at == T0 + timedelta(hours=4)


def test_score_alerts_matches_episodes_by_their_opening_sync():
    syncs = [record(1, equity="10000.00"), record(2, equity="8000.00")]
    episodes = expected_alerts(syncs, equity_series(syncs), Thresholds(), injected_spread_syncs=set())
    service = [{"sync_id": "s2", "max_level": "critical", "level": "critical", "peak_equity": "10000.00"}]
    scores = score_alerts(episodes, service)
    assert scores["precision_recall"]["drawdown"]["precision"] == 1.0
    assert scores["precision_recall"]["drawdown"]["recall"] == 1.0
    assert scores["max_level_mismatches"] == []


def test_compare_equity_to_the_cent_and_rounded_percent():
    syncs = [record(1, equity="10000.00"), record(2, equity="9876.54")]
    tool = equity_series(syncs)
    service = [
        {**p, "drawdown_pct": p["drawdown_pct"]} for p in tool
    ]  # the service saw the same figures after each sync
    # guards/status/ renders the drawdown with 2 dp: 123.46 / 10,000 × 100 = 1.2346 → "1.23"
    status = {
        "drawdown": {"equity": "9876.54", "balance": "10000.00", "peak_equity": "10000.00", "drawdown_pct": "1.23"}
    }
    result = compare_equity(tool, service, status)
    assert result["equal"] is True
    assert result["tool"]["max_drawdown_money"] == "123.46"
    # a cent off in the final equity is a difference
    status["drawdown"]["equity"] = "9876.55"
    assert compare_equity(tool, service, status)["equal"] is False
