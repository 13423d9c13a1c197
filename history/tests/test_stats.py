"""The statistics of a trade list and an equity curve, against figures worked out by hand."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from history.stats import Trade, max_drawdown, time_weighted_return, trade_stats

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def q(value, places="0.0001"):
    return value.quantize(D(places))


def test_trade_statistics_of_a_hand_worked_list():
    pnls = ["100", "-50", "30", "0", "-20", "200", "-80"]
    trades = [Trade(closed_at=T0 + timedelta(hours=i), symbol="EURUSD", pnl=D(p)) for i, p in enumerate(pnls)]
    stats = trade_stats(trades)
    # wins 100, 30, 200 (3, gross 330); losses −50, −20, −80 (3, gross −150); one breakeven (0)
    assert (stats.trades, stats.wins, stats.losses, stats.breakeven) == (7, 3, 3, 1)
    assert (stats.gross_profit, stats.gross_loss, stats.net_pnl) == (D("330"), D("-150"), D("180"))
    # win rate 3 / 7 = 42.8571 %; profit factor 330 / 150 = 2.2; expectancy 180 / 7 = 25.7143 per trade
    assert q(stats.win_rate_pct) == D("42.8571")
    assert stats.profit_factor == D("2.2")
    assert q(stats.expectancy) == D("25.7143")
    # average win 330 / 3 = 110, average loss −150 / 3 = −50; largest 200 and −80
    assert (stats.average_win, stats.average_loss) == (D("110"), D("-50"))
    assert (stats.largest_win, stats.largest_loss) == (D("200"), D("-80"))


def test_no_trades_and_no_losses_leave_the_ratios_undefined():
    empty = trade_stats([])
    assert (empty.trades, empty.win_rate_pct, empty.profit_factor, empty.expectancy) == (0, None, None, None)
    only_wins = trade_stats([Trade(T0, "EURUSD", D("5"))])
    assert only_wins.profit_factor is None and only_wins.win_rate_pct == D("100")


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    # 1000 → 1100 (peak) → 990 (−10 %) → 1050 → 1200 (peak) → 1020 (−180 / 1200 = −15 %) → 1300
    values = ["1000", "1100", "990", "1050", "1200", "1020", "1300"]
    points = [(T0 + timedelta(hours=i), D(v)) for i, v in enumerate(values)]
    dd = max_drawdown(points)
    assert (dd.pct, dd.amount, dd.peak, dd.trough) == (D("15"), D("180"), D("1200"), D("1020"))
    assert (dd.start, dd.end) == (T0 + timedelta(hours=4), T0 + timedelta(hours=5))
    rising = max_drawdown([(T0, D("1")), (T0 + timedelta(hours=1), D("2"))])
    assert (rising.pct, rising.start, rising.end) == (D("0"), None, None)


def test_time_weighted_return_leaves_out_a_deposit():
    # 1000 → 1100: +10 %; then a 500 deposit and 1650: (1650 − 500) / 1100 = 1150 / 1100; then 1600 / 1650.
    # Product 1.1 × 1150/1100 × 1600/1650 = 1840 / 1650 = 1.115151…, so TWR = 11.5152 %.
    # (The simple return (1600 − 1000 − 500) / 1000 = 10 % would misstate it.)
    twr = time_weighted_return([D("1000"), D("1100"), D("1650"), D("1600")], [D("0"), D("0"), D("500"), D("0")])
    assert q(twr) == D("11.5152")
    assert time_weighted_return([D("1000")], [D("0")]) is None
