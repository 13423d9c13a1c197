"""OHLC bar readers: the plain CSV of backtesting's ``EURUSD.csv`` and MetaTrader 5's "Export bars" file.

Plain format (comma separated, header first; the time column may be unnamed, as pandas writes its index)::

    ,Open,High,Low,Close,Volume
    2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413

MT5 format (tab separated, header of ``<NAME>`` columns; ``<TIME>`` is absent for daily bars; spread in points)::

    <DATE>	<TIME>	<OPEN>	<HIGH>	<LOW>	<CLOSE>	<TICKVOL>	<VOL>	<SPREAD>
    2017.04.19	09:00:00	1.07160	1.07220	1.07083	1.07219	1413	0	12

Prices are bid prices (MT5 charts bid), returned as ``Decimal``; times are the bar's opening time, read as
UTC (the broker's server time; the replay only needs it monotonic). Any malformed row raises
``BarFormatError`` naming the file and the 1-based line number.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

PLAIN = "plain"
MT5 = "mt5"
FORMATS = ("auto", PLAIN, MT5)

_PLAIN_TIME_NAMES = ("", "time", "date", "datetime", "timestamp", "date_time", "gmt time", "local time")
_MT5_REQUIRED = ("<DATE>", "<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>")


class BarFormatError(ValueError):
    """A CSV that cannot be read as bars; the message names the file and the 1-based line number."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        self.path = str(path)
        self.line = line
        super().__init__(f"{path}: line {line}: {message}")


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC bar: bid prices (Decimal, quote currency), opening time (aware UTC), spread in points or None."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    tick_volume: int = 0
    spread_points: int | None = None
    line: int = 0


def detect_format(first_line: str) -> str:
    """Return ``"mt5"`` when the header is MT5's ``<DATE>``-style (or tab separated), else ``"plain"``."""
    stripped = first_line.lstrip("\ufeff").strip()
    if stripped.upper().startswith("<DATE>") or ("\t" in stripped and "<" in stripped):
        return MT5
    return PLAIN


def read_bars(path: str | Path, fmt: str = "auto") -> list[Bar]:
    """Read every bar of ``path`` in ``fmt`` (``auto``, ``plain`` or ``mt5``).

    Returns the bars in file order. Raises ``BarFormatError`` (with the line number) for an unknown
    header, a missing or extra column, a non-numeric or non-positive price, high below open/close or
    low above them, an unreadable time, or a time not after the previous bar's; ``FileNotFoundError``
    when the file is missing; ``ValueError`` for an unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
        if not first.strip():
            raise BarFormatError(path, 1, "empty file: expected a header line")
        if fmt == "auto":
            fmt = detect_format(first)
        handle.seek(0)
        rows = _mt5_rows(path, handle) if fmt == MT5 else _plain_rows(path, handle)
        bars = list(rows)
    if not bars:
        raise BarFormatError(path, 2, "no bars after the header")
    return bars


def _check_and_build(
    path: Path,
    line: int,
    when: datetime,
    prices: dict[str, str],
    tick_volume: str | None,
    spread: str | None,
    previous: Bar | None,
) -> Bar:
    values: dict[str, Decimal] = {}
    for name, raw in prices.items():
        try:
            value = Decimal(raw.strip())
        except (InvalidOperation, AttributeError):
            raise BarFormatError(path, line, f"{name} {raw!r} is not a number") from None
        if not value.is_finite() or value <= 0:
            raise BarFormatError(path, line, f"{name} {raw!r} must be a positive finite price")
        values[name] = value
    if values["high"] < max(values["open"], values["close"]) or values["low"] > min(values["open"], values["close"]):
        raise BarFormatError(
            path, line, f"inconsistent bar: high {values['high']} / low {values['low']} do not contain open and close"
        )
    volume = 0
    if tick_volume not in (None, ""):
        try:
            volume = int(Decimal(tick_volume.strip()))
        except (InvalidOperation, ValueError):
            raise BarFormatError(path, line, f"volume {tick_volume!r} is not a number") from None
    spread_points = None
    if spread not in (None, ""):
        try:
            spread_points = int(spread.strip())
        except ValueError:
            raise BarFormatError(path, line, f"spread {spread!r} is not a whole number of points") from None
        if spread_points < 0:
            raise BarFormatError(path, line, f"spread {spread_points} must not be negative")
    if previous is not None and when <= previous.time:
        raise BarFormatError(
            path,
            line,
            f"time {when:%Y-%m-%d %H:%M:%S} is not after the previous bar's ({previous.time:%Y-%m-%d %H:%M:%S})",
        )
    return Bar(
        time=when,
        open=values["open"],
        high=values["high"],
        low=values["low"],
        close=values["close"],
        tick_volume=volume,
        spread_points=spread_points,
        line=line,
    )


def _parse_time(path: Path, line: int, text: str, formats: tuple[str, ...]) -> datetime:
    text = text.strip()
    for layout in formats:
        try:
            parsed = datetime.strptime(text, layout)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BarFormatError(path, line, f"time {text!r} is not a date/time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _plain_rows(path: Path, handle) -> Iterator[Bar]:
    reader = csv.reader(handle)
    header = [name.strip().lower() for name in next(reader)]
    try:
        columns = {name: header.index(name) for name in ("open", "high", "low", "close")}
    except ValueError:
        raise BarFormatError(path, 1, f"header {header} lacks one of Open, High, Low, Close") from None
    time_column = next((i for i, name in enumerate(header) if name in _PLAIN_TIME_NAMES), None)
    if time_column is None:
        raise BarFormatError(path, 1, f"header {header} has no time column (first column, or one named time/date)")
    volume_column = header.index("volume") if "volume" in header else None
    spread_column = header.index("spread") if "spread" in header else None
    previous = None
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BarFormatError(path, line, f"expected {len(header)} columns, found {len(row)}")
        when = _parse_time(path, line, row[time_column], ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"))
        previous = _check_and_build(
            path,
            line,
            when,
            {name: row[index] for name, index in columns.items()},
            row[volume_column] if volume_column is not None else None,
            row[spread_column] if spread_column is not None else None,
            previous,
        )
        yield previous


def _mt5_rows(path: Path, handle) -> Iterator[Bar]:
    reader = csv.reader(handle, delimiter="\t")
    header = [name.strip().upper() for name in next(reader)]
    missing = [name for name in _MT5_REQUIRED if name not in header]
    if missing:
        raise BarFormatError(path, 1, f"MT5 header {header} lacks {', '.join(missing)}")
    index = {name: i for i, name in enumerate(header)}
    previous = None
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise BarFormatError(path, line, f"expected {len(header)} tab-separated columns, found {len(row)}")
        stamp = row[index["<DATE>"]].strip()
        if "<TIME>" in index:
            stamp = f"{stamp} {row[index['<TIME>']].strip()}"
        when = _parse_time(path, line, stamp, ("%Y.%m.%d %H:%M:%S", "%Y.%m.%d %H:%M", "%Y.%m.%d"))
        previous = _check_and_build(
            path,
            line,
            when,
            {name.strip("<>").lower(): row[index[name]] for name in ("<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>")},
            row[index["<TICKVOL>"]] if "<TICKVOL>" in index else None,
            row[index["<SPREAD>"]] if "<SPREAD>" in index else None,
            previous,
        )
        yield previous


def bar_period_seconds(bars: list[Bar]) -> int:
    """Return the bar period in seconds: the smallest gap between consecutive bars (3600 for H1).

    Weekend and holiday gaps are longer, so the minimum is the timeframe. A single bar gives 3600.
    """
    gaps = [int((b.time - a.time).total_seconds()) for a, b in zip(bars, bars[1:], strict=False)]
    return min(gaps) if gaps else 3600
