"""Trading sessions (pure): when a symbol's market is open, so that a closed market raises no stale-quote alert.

A :class:`Calendar` is a set of weekly open intervals on the clock of one time zone. Sources, in order:
1. the sync's symbol info when it sends session data: MQL5's ``SymbolInfoSessionTrade`` gives, per day
   of the week (ENUM_DAY_OF_WEEK, 0 = Sunday) and session index, ``from``/``to`` in seconds since the
   start of that day on the trade server's clock (``to`` may be 86 400, the end of the day); the
   account's server UTC offset turns them into a fixed-offset calendar (:func:`calendar_from_symbol_info`);
2. else a default per class (:func:`default_calendar`), on New York's clock because the FX week and the
   trade servers' UTC+2/UTC+3 day follow the New York close, daylight saving time included:
   - FX: Sunday 17:00 → Friday 17:00 New York (≈ Sunday 22:00 → Friday 22:00 UTC in winter, 21:00 in
     summer), no daily break;
   - metals and indices: the CME Globex week, Sunday 18:00 → Friday 17:00 New York with a daily break
     17:00–18:00 (the hour brokers close XAUUSD and index CFDs every day);
   - crypto: always open.

Stale-quote rule: while a market is closed nothing is stale; once it reopens, a quote's age counts from
the later of its tick time and the reopening, so the first minutes of a session do not fire on Friday's
tick. A price gap across a close (Friday's close → Monday's open) is still measured: sessions never
suppress the gap guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from datetime import tzinfo as TzInfo
from typing import Any
from zoneinfo import ZoneInfo

from guards.tolerances import CRYPTO, FX, asset_class

WEEK_MINUTES = 7 * 24 * 60
DAY_MINUTES = 24 * 60
NEW_YORK = ZoneInfo("America/New_York")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)  # Python's weekday(): Monday = 0


def _minute_of_week(weekday: int, at: time) -> int:
    return weekday * DAY_MINUTES + at.hour * 60 + at.minute


@dataclass(frozen=True)
class Calendar:
    """Weekly open intervals ``(start, end)`` in minutes since Monday 00:00 on ``tz``'s clock.

    An interval with end ≤ start wraps over the week's end (Sunday evening → Friday). ``always_open``
    marks 24/7 markets.
    """

    tz: TzInfo
    intervals: tuple[tuple[int, int], ...] = ()
    always_open: bool = False

    def _containing(self, at: datetime) -> tuple[int, int] | None:
        local = at.astimezone(self.tz)
        minute = _minute_of_week(local.weekday(), local.time())
        for start, end in self.intervals:
            inside = start <= minute < end if start < end else minute >= start or minute < end
            if inside:
                return start, minute
        return None

    def is_open(self, at: datetime) -> bool:
        """Whether the market is open at the aware instant ``at``."""
        return self.always_open or self._containing(at) is not None

    def opened_at(self, at: datetime) -> datetime | None:
        """When the session containing ``at`` opened (aware UTC), None when closed; ``at`` minus a week for 24/7."""
        if self.always_open:
            return at - timedelta(days=7)
        found = self._containing(at)
        if found is None:
            return None
        start, minute = found
        elapsed = (minute - start) % WEEK_MINUTES
        local = at.astimezone(self.tz).replace(second=0, microsecond=0)
        return (local - timedelta(minutes=elapsed)).astimezone(UTC)


def _weekly(tz: TzInfo, spans: Iterable[tuple[int, time, int, time]]) -> Calendar:
    return Calendar(
        tz=tz,
        intervals=tuple((_minute_of_week(d1, t1), _minute_of_week(d2, t2) % WEEK_MINUTES) for d1, t1, d2, t2 in spans),
    )


FX_CALENDAR = _weekly(NEW_YORK, [(SUN, time(17), FRI, time(17))])
CME_CALENDAR = _weekly(NEW_YORK, [(SUN, time(18), MON, time(17))] + [(d, time(18), d + 1, time(17)) for d in range(4)])
CRYPTO_CALENDAR = Calendar(tz=UTC, always_open=True)


def default_calendar(symbol: str, *, calc_mode: int | None = None) -> Calendar:
    """The default calendar of the symbol's class (module docstring): FX, CME (metals, indices) or 24/7 crypto."""
    klass = asset_class(symbol, calc_mode=calc_mode)
    if klass == CRYPTO:
        return CRYPTO_CALENDAR
    if klass == FX:
        return FX_CALENDAR
    return CME_CALENDAR


SECONDS_PER_DAY = 86_400  # MQL5 session times: seconds since the day's start, "to" may be 24:00
# Trade sessions one symbol may carry: MQL5 numbers them per day (session_index); brokers use one to
# three a day (a daily break makes two), so ten a day is ample while bounding what a sync may store.
MAX_SESSIONS = 7 * 10


def session_errors(sessions: Any) -> list[str]:
    """Why ``sessions`` is not a list of MQL5 trade sessions (empty when it is): a non-empty list of at
    most ``MAX_SESSIONS`` objects with integer ``day_of_week`` 0–6 (0 = Sunday) and 0 ≤ ``from`` < ``to``
    ≤ 86 400 (seconds on the server clock). For an operator's override (``InstrumentGuardSetting``); the
    sync validates the same rules field by field in its serializer."""
    if not isinstance(sessions, list) or not sessions:
        return ["A non-empty list of {day_of_week, from, to} objects."]
    if len(sessions) > MAX_SESSIONS:
        return [f"At most {MAX_SESSIONS} sessions."]
    errors = []
    for index, session in enumerate(sessions):
        values = session if isinstance(session, dict) else {}
        day, start, end = (values.get(key) for key in ("day_of_week", "from", "to"))
        if not (isinstance(day, int) and isinstance(start, int) and isinstance(end, int)) or any(
            isinstance(v, bool) for v in (day, start, end)
        ):
            errors.append(f"[{index}]: integer day_of_week, from and to are required.")
        elif not 0 <= day <= 6:
            errors.append(f"[{index}].day_of_week: 0 (Sunday) to 6 (Saturday).")
        elif not 0 <= start < end <= SECONDS_PER_DAY:
            errors.append(f"[{index}]: 0 ≤ from < to ≤ {SECONDS_PER_DAY} seconds.")
    return errors


def calendar_from_symbol_info(sessions: Iterable[Mapping[str, Any]], *, server_utc_offset_seconds: int) -> Calendar:
    """A calendar from MQL5 trade sessions: ``[{"day_of_week": 0–6 (0 = Sunday), "from": s, "to": s}, …]``.

    ``from``/``to`` are seconds since the start of that day on the server clock (0–86 400); the
    server's UTC offset (seconds, e.g. 7200 for UTC+2) fixes the clock. Consecutive sessions that touch
    (Monday 24:00 = Tuesday 00:00) are open without a gap.
    """
    tz = timezone(timedelta(seconds=server_utc_offset_seconds))
    intervals = []
    for s in sessions:
        weekday = (int(s["day_of_week"]) - 1) % 7  # MQL5 Sunday = 0 → Python Sunday = 6
        start = weekday * DAY_MINUTES + int(s["from"]) // 60
        end = weekday * DAY_MINUTES + int(s["to"]) // 60
        if end > start:
            intervals.append((start, end))
    return Calendar(tz=tz, intervals=_merge(intervals))


def _merge(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Join touching intervals (end of one = start of the next, also across the week's end) so that a
    session's opening is the real one, not the server's midnight."""
    merged: list[list[int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if len(merged) > 1 and merged[0][0] == 0 and merged[-1][1] >= WEEK_MINUTES:
        first = merged.pop(0)
        merged[-1][1] = first[1]  # wraps: Sunday evening → Friday
    return tuple((start, end % WEEK_MINUTES) for start, end in merged)


def quote_age_seconds(*, tick_time: datetime, now: datetime, calendar: Calendar) -> int | None:
    """The age that counts for the stale-quote guard: None while the market is closed, else
    now − max(tick time, the session's opening), in whole seconds (never negative)."""
    opened = calendar.opened_at(now)
    if opened is None:
        return None
    return max(int((now - max(tick_time, opened)).total_seconds()), 0)
