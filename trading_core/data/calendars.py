"""Trading calendars: which bars should exist, for gap checks and the synthetic market.

Exchange calendars (``XNYS``, ``XLON``, ... any name ``exchange_calendars`` knows) give real
sessions with holidays and early closes. ``24/7`` is for crypto, ``weekdays`` for data whose
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
        return pd.DatetimeIndex([d + o for d in days for o in per_day]).tz_localize("UTC")
    cal = _exchange_calendar(calendar)
    lo, hi = max(first, cal.first_session), min(last, cal.last_session)
    if hi < lo:
        return pd.DatetimeIndex([], tz="UTC")
    if interval == "1d":
        return pd.DatetimeIndex(cal.sessions_in_range(lo, hi)).tz_localize("UTC")
    index = cal.trading_index(lo, hi, period=freq, intervals=False, force=True)
    return pd.DatetimeIndex(index).tz_convert("UTC")
