"""CSV readers: backtesting's plain EURUSD.csv layout and MT5's "Export bars" layout (replay.bars)."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from replay.bars import BarFormatError, bar_period_seconds, detect_format, read_bars

PLAIN = """,Open,High,Low,Close,Volume
2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413
2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241
2017-04-19 11:00:00,1.07256,1.07299,1.0717,1.07192,1025
"""

MT5 = (
    "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
    "2017.04.19\t09:00:00\t1.07160\t1.07220\t1.07083\t1.07219\t1413\t0\t12\n"
    "2017.04.19\t10:00:00\t1.07214\t1.07296\t1.07214\t1.07260\t1241\t0\t9\n"
)


def write(tmp_path, text, name="bars.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_bars_parses_plain_format_with_unnamed_time_column(tmp_path):
    # given backtesting's layout (pandas wrote the time index with an empty header)
    path = write(tmp_path, PLAIN)
    # when
    bars = read_bars(path)
    # then
    assert len(bars) == 3
    first = bars[0]
    assert first.time == datetime(2017, 4, 19, 9, 0, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("1.0716"),
        Decimal("1.0722"),
        Decimal("1.07083"),
        Decimal("1.07219"),
    )
    assert (first.tick_volume, first.spread_points, first.line) == (1413, None, 2)
    assert bars[2].line == 4


def test_read_bars_parses_plain_format_with_named_time_column_case_insensitively(tmp_path):
    # given
    path = write(tmp_path, "Time,open,HIGH,Low,Close\n2024-01-01 00:00,1.1,1.2,1.0,1.15\n")
    # when
    (bar,) = read_bars(path, "plain")
    # then no volume column → 0, minutes-only time accepted
    assert (bar.time, bar.close, bar.tick_volume) == (datetime(2024, 1, 1, tzinfo=UTC), Decimal("1.15"), 0)


def test_read_bars_parses_mt5_export_with_date_time_and_spread_columns(tmp_path):
    # given MT5's tab-separated export (dates with dots, spread in points)
    path = write(tmp_path, MT5)
    # when
    bars = read_bars(path)
    # then
    assert [b.time for b in bars] == [
        datetime(2017, 4, 19, 9, 0, tzinfo=UTC),
        datetime(2017, 4, 19, 10, 0, tzinfo=UTC),
    ]
    assert bars[0].open == Decimal("1.07160")
    assert [b.spread_points for b in bars] == [12, 9]
    assert [b.tick_volume for b in bars] == [1413, 1241]


def test_read_bars_parses_mt5_daily_export_without_time_column(tmp_path):
    # given a D1 export: MT5 leaves out <TIME>
    text = (
        "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n"
        "2017.04.19\t1.07\t1.08\t1.06\t1.075\t10\t0\t5\n"
    )
    path = write(tmp_path, text)
    # when
    (bar,) = read_bars(path, "mt5")
    # then
    assert (bar.time, bar.spread_points) == (datetime(2017, 4, 19, tzinfo=UTC), 5)


def test_detect_format_tells_mt5_from_plain():
    assert detect_format("<DATE>\t<TIME>\t<OPEN>") == "mt5"
    assert detect_format("\ufeff<DATE>\t<OPEN>") == "mt5"
    assert detect_format(",Open,High,Low,Close,Volume") == "plain"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (PLAIN.replace("1.07296", "abc"), 3, "high 'abc' is not a number"),
        (PLAIN.replace(",1025", ""), 4, "expected 6 columns, found 5"),
        (PLAIN.replace("1.07299,1.0717", "1.07100,1.0717"), 4, "inconsistent bar"),
        (PLAIN.replace("2017-04-19 11:00:00", "2017-04-19 10:00:00"), 4, "is not after the previous bar's"),
        (PLAIN.replace("2017-04-19 10:00:00", "yesterday"), 3, "time 'yesterday' is not a date/time"),
        (PLAIN.replace("1.0716,", "-1.0716,"), 2, "must be a positive finite price"),
        (PLAIN.replace("1.0716,", "NaN,"), 2, "must be a positive finite price"),
        ("Open,High,Low,Close\n", 1, "has no time column"),
        ("time,Open,High,Close\n", 1, "lacks one of Open, High, Low, Close"),
        (",Open,High,Low,Close\n", 2, "no bars after the header"),
        ("", 1, "empty file"),
    ],
)
def test_read_bars_plain_malformed_row_names_the_line(tmp_path, text, line, fragment):
    # given
    path = write(tmp_path, text)
    # when
    with pytest.raises(BarFormatError) as caught:
        read_bars(path, "plain" if text else "auto")
    # then
    assert caught.value.line == line
    assert f"line {line}:" in str(caught.value)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (MT5.replace("2017.04.19\t10:00:00", "2017.13.19\t10:00:00"), 3, "is not a date/time"),
        (MT5.replace("\t9\n", "\t-3\n"), 3, "spread -3 must not be negative"),
        (MT5.replace("\t9\n", "\t1.5\n"), 3, "spread '1.5' is not a whole number of points"),
        (MT5.replace("\t0\t12\n", "\t12\n"), 2, "expected 9 tab-separated columns, found 8"),
        ("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<CLOSE>\n", 1, "lacks <LOW>"),
    ],
)
def test_read_bars_mt5_malformed_row_names_the_line(tmp_path, text, line, fragment):
    # given
    path = write(tmp_path, text)
    # when
    with pytest.raises(BarFormatError) as caught:
        read_bars(path, "mt5")
    # then
    assert caught.value.line == line
    assert fragment in str(caught.value)


def test_read_bars_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unknown format 'xlsx'"):
        read_bars(write(tmp_path, PLAIN), "xlsx")


def test_bar_period_is_the_smallest_gap_so_weekends_do_not_count(tmp_path):
    # given hourly bars around a 49-hour weekend gap
    text = (
        ",Open,High,Low,Close\n2017-04-21 20:00:00,1,1,1,1\n2017-04-21 21:00:00,1,1,1,1\n2017-04-23 22:00:00,1,1,1,1\n"
    )
    # when / then
    assert bar_period_seconds(read_bars(write(tmp_path, text))) == 3600
