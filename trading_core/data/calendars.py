"""Trading calendars: which bars should exist, for gap checks and the synthetic market.

Exchange calendars (``XNYS``, ``XLON``, ... any name ``exchange_calendars`` knows) give real
sessions with holidays, early closes and lunch breaks, and a time zone (naive timestamps of a file
on that calendar are read in it unless ``--tz`` says otherwise). ``24/7`` is for crypto, ``weekdays`` for data whose
holidays are unknown. Daily bars are stamped at midnight UTC of the session date; intraday bars
at their start time in UTC.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from trading_core.data.schema import INTERVALS, validate_interval
from trading_core.errors import ConfigError

CONTINUOUS = "24/7"
WEEKDAYS = "weekdays"
_CALENDAR_BOUNDS = ("1990-01-01", "2040-12-31")


@lru_cache(maxsize=8)
def _exchange_calendar(name: str):
    import exchange_calendars as xcals  # imported lazily: building a calendar takes a moment

    try:
        return xcals.get_calendar(name, start=_CALENDAR_BOUNDS[0], end=_CALENDAR_BOUNDS[1])
    except xcals.errors.InvalidCalendarName as exc:
        raise ConfigError(
            f"unknown calendar {name!r}: use {CONTINUOUS!r}, {WEEKDAYS!r} or an exchange_calendars name such as 'XNYS'"
        ) from exc


def _day(value: str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return (ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts).normalize()


def expected_bars(
    calendar: str, start: str | pd.Timestamp, end: str | pd.Timestamp, interval: str = "1d"
) -> pd.DatetimeIndex:
    """Bar start times (UTC) the calendar expects in ``[start, end]`` (dates inclusive)."""
    validate_interval(interval)
    first, last = _day(start), _day(end)
    if last < first:
        return pd.DatetimeIndex([], tz="UTC")
    freq = INTERVALS[interval]
    if calendar == CONTINUOUS:
        stop = last if interval == "1d" else last + pd.Timedelta(days=1) - pd.Timedelta(freq)
        return pd.date_range(first, stop, freq=freq, tz="UTC")
    if calendar == WEEKDAYS:
        days = pd.bdate_range(first, last)
        if interval == "1d":
            return days.tz_localize("UTC")
        per_day = pd.timedelta_range(0, periods=int(pd.Timedelta("1D") / pd.Timedelta(freq)), freq=freq)
        grid = days.to_numpy()[:, None] + per_day.to_numpy()[None, :]
        return pd.DatetimeIndex(grid.ravel()).tz_localize("UTC")
    cal = _exchange_calendar(calendar)
    lo, hi = max(first, cal.first_session), min(last, cal.last_session)
    if hi < lo:
        return pd.DatetimeIndex([], tz="UTC")
    if interval == "1d":
        return pd.DatetimeIndex(cal.sessions_in_range(lo, hi)).tz_localize("UTC")
    index = cal.trading_index(lo, hi, period=freq, intervals=False, force=True)
    return pd.DatetimeIndex(index).tz_convert("UTC")


def is_exchange_calendar(calendar: str) -> bool:
    """True for an exchange calendar (sessions with opening hours), False for 24/7 and weekdays."""
    return calendar not in (CONTINUOUS, WEEKDAYS)


def calendar_tz(calendar: str) -> str:
    """The calendar's time zone: the exchange's (``America/New_York`` for XNYS), else UTC."""
    return str(_exchange_calendar(calendar).tz) if is_exchange_calendar(calendar) else "UTC"


REGULAR, EXTENDED, CLOSED = "regular", "extended", "closed"


def session_position(timestamps: pd.Series, calendar: str) -> pd.Series:
    """Where each bar start (UTC) falls on an exchange calendar: ``regular``, ``extended`` or ``closed``.

    ``regular``: inside a session's opening hours (``open <= t < close``, early closes included,
    lunch breaks excluded). ``extended``: on a session's local date but outside those hours (pre-
    and after-market bars, a lunch break, after an early close). ``closed``: not on a session date
    at all (weekend, holiday, outside the calendar's range) or NaT. Sessions are matched by local
    date, which holds for equity exchanges (a session never crosses local midnight).
    """
    position = pd.Series(CLOSED, index=timestamps.index, dtype="object")
    if not is_exchange_calendar(calendar) or timestamps.isna().all():
        return position
    cal = _exchange_calendar(calendar)
    ts = pd.DatetimeIndex(timestamps)
    day = ts.tz_convert(cal.tz).tz_localize(None).normalize()
    schedule = cal.schedule.reindex(day)
    on_session = schedule["open"].notna().to_numpy()
    after_open = on_session & (ts >= pd.DatetimeIndex(schedule["open"]))
    before_close = on_session & (ts < pd.DatetimeIndex(schedule["close"]))
    in_break = schedule["break_start"].notna().to_numpy() & on_session
    if in_break.any():
        in_break &= (ts >= pd.DatetimeIndex(schedule["break_start"])) & (ts < pd.DatetimeIndex(schedule["break_end"]))
    regular = after_open & before_close & ~in_break
    position[on_session] = EXTENDED
    position[regular] = REGULAR
    return position
