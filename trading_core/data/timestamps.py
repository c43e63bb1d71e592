"""Timestamps as vendors write them -> UTC bar starts, with a reason for every value that fails.

Real exports mix forms within one column: ISO strings with different UTC offsets (a daylight-saving
change, a merge of two exports), offsets and naive values together, ``Z``/``UTC`` suffixes, IBKR's
``20240102 09:30:00 US/Eastern``, epoch numbers (Polygon's ``t`` in milliseconds, flat files'
``window_start`` in nanoseconds), ``YYYYMMDD`` integers. :func:`parse_timestamps` reads each value
on its own terms:

* a value with an offset or a zone name is converted to UTC with *its* offset or zone;
* a naive value is wall-clock time in ``tz`` (the layout's zone, ``--tz``);
* an epoch number is UTC by definition (unit chosen by magnitude: s, ms, us or ns);
* a value that cannot be read, or a naive value that does not exist or is ambiguous in ``tz``
  (the hour skipped or repeated by a daylight-saving change), becomes NaT with a reason that names
  the value; validation quarantines that row under rule ``schema``. Nothing raises per value.

It also returns the wall-clock time each value was written in (``local``): a daily bar's session
date is the date as written, whatever its offset (``2024-01-02 00:00-05:00`` is the 2 January
session, not 05:00 UTC); the file provider stamps daily bars that way.

The bar interval the parsed timestamps are spaced by is inferred in :mod:`trading_core.data.intervals`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from trading_core.errors import ConfigError

# The wall-clock part must hold a time (HH:MM) for a trailing offset to be one: "2024-01-02" ends in
# "-02", which is a day, not an offset.
_ZONED = re.compile(
    r"^(?P<wall>.*\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:\s*[AaPp][Mm])?)\s*"
    r"(?P<zone>[Zz]|[+-]\d\d(?::?\d\d)?|[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)+|[A-Za-z]{2,5})$"
)
_OFFSET = re.compile(r"^(?P<sign>[+-])(?P<hh>\d\d):?(?P<mm>\d\d)?$")
_DIGITS = re.compile(r"^\d+(?:\.\d+)?$")
ABBREVIATIONS: dict[str, int] = {
    "Z": 0, "UTC": 0, "GMT": 0, "EST": -300, "EDT": -240, "CST": -360, "CDT": -300,
    "MST": -420, "MDT": -360, "PST": -480, "PDT": -420,
}  # fmt: skip
"""Zone abbreviations read as fixed offsets (minutes): UTC and the US ones vendors write. Any other
abbreviation is ambiguous (CST is also China's, IST three zones) and the value is quarantined."""
_MAX_OFFSET_MIN = 14 * 60


@dataclass(frozen=True)
class ParsedTimestamps:
    """One parsed timestamp column, aligned with the input's index."""

    utc: pd.Series
    """tz-aware UTC instants; NaT where the value failed (see ``error``)."""
    local: pd.Series
    """Naive wall-clock time as written (in the value's own offset or zone); NaT where unreadable."""
    error: pd.Series
    """None, or why the value failed: unreadable (``local`` is NaT too) or not a valid local time."""
    unreadable: pd.Series
    """True where the value could not be read at all (a failed local time is readable)."""


def check_tz(tz: str) -> str:
    """Return ``tz`` if it is an IANA time zone name, else raise :class:`ConfigError`."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"unknown time zone {tz!r}: expected an IANA name such as 'America/New_York' or 'UTC'"
        ) from exc
    return tz


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value.strip())
    return text if len(text) <= 60 else text[:57] + "...'"


def _is_missing(value: object) -> bool:
    try:
        return value is None or (isinstance(value, str) and not value.strip()) or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _epoch(numbers: np.ndarray) -> np.ndarray:
    """Epoch numbers (int64 or float64) -> datetime64[ns] UTC wall time; the unit by magnitude.

    1e11 s is the year 5138 and 1e11 ms is 1973, so the ranges do not overlap for real data; a
    number under 1e8 (1973 in seconds) is no epoch a vendor writes and stays unread. Integers stay
    integers (a nanosecond epoch does not fit a float exactly).
    """
    out = np.full(len(numbers), np.datetime64("NaT"), dtype="datetime64[ns]")
    for low, high, unit in (
        (10**8, 10**11, "s"),
        (10**11, 10**14, "ms"),
        (10**14, 10**17, "us"),
        (10**17, 2**63 - 1, "ns"),
    ):
        hit = (numbers >= low) & (numbers < high)
        if hit.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = pd.to_datetime(numbers[hit], unit=unit, errors="coerce")
            out[hit] = np.asarray(values, dtype="datetime64[ns]")
    return out


def _yyyymmdd(numbers: np.ndarray) -> np.ndarray:
    """Which integers read as a YYYYMMDD date in 1900..2100."""
    month = (numbers // 100) % 100
    day = numbers % 100
    return (numbers >= 19000101) & (numbers <= 21001231) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)


def _parse_naive(texts: pd.Series) -> pd.Series:
    """Naive wall-clock strings -> datetime64[ns]; NaT where unreadable (never raises)."""
    if texts.empty:
        return pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' deprecation notes about dropped zone names
        try:
            parsed = pd.to_datetime(texts, errors="coerce", format="mixed")
            if isinstance(parsed.dtype, np.dtypes.DateTime64DType):
                return parsed.astype("datetime64[ns]")
        except (ValueError, TypeError, OverflowError):
            pass
        # Some value pandas read as zoned, or out of bounds: one at a time, naive values only.
        out = []
        for text in texts:
            try:
                value = pd.Timestamp(text)
                out.append(value if value.tzinfo is None else pd.NaT)
            except (ValueError, TypeError, OverflowError):
                out.append(pd.NaT)
    return pd.Series(pd.DatetimeIndex(out, dtype="datetime64[ns]"), index=texts.index)


def _localize(wall: pd.Series, tz: str) -> pd.Series:
    """Wall-clock times in ``tz`` -> UTC; NaT for times a daylight-saving change skips or repeats."""
    if tz == "UTC":
        return wall.dt.tz_localize("UTC")
    return wall.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _split(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series]:
    """Sort raw cells into (aware datetimes, integers, floats, texts); None where a cell is not that kind."""
    n = len(values)
    aware: list[object] = [None] * n
    ints: list[object] = [None] * n
    floats: list[float] = [np.nan] * n
    texts: list[object] = [None] * n
    for k, value in enumerate(values.to_numpy(dtype=object)):
        if isinstance(value, str):  # the common case first: CSV cells are text
            text = value.strip()
            if not text or not _DIGITS.fullmatch(text):
                texts[k] = text or None
            elif "." in text:
                floats[k] = float(text)
            else:
                ints[k] = int(text)
        elif _is_missing(value):
            continue
        elif isinstance(value, pd.Timestamp | datetime):
            ts = pd.Timestamp(value)
            if ts.tzinfo is not None:
                aware[k] = ts
            else:
                texts[k] = ts.isoformat()
        elif isinstance(value, date):
            texts[k] = value.isoformat()
        elif isinstance(value, bool | np.bool_):
            texts[k] = str(value)  # not a date: reported as unreadable
        elif isinstance(value, int | np.integer):
            ints[k] = int(value)
        elif isinstance(value, float | np.floating):
            if float(value).is_integer() and abs(float(value)) < 2**53:
                ints[k] = int(value)
            else:
                floats[k] = float(value)
        elif isinstance(value, bytes):
            texts[k] = value.decode("utf-8", errors="replace").strip() or None
        else:
            texts[k] = str(value).strip() or None
    index = values.index
    return (
        pd.Series(aware, index=index, dtype="object"),
        pd.Series(ints, index=index, dtype="object"),
        pd.Series(floats, index=index, dtype="float64"),
        pd.Series(texts, index=index, dtype="object"),
    )


def _parse_unique(values: pd.Series, tz: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse distinct raw values; returns (utc, local, error) indexed like ``values``."""
    index = values.index
    utc = pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    local = pd.Series(pd.NaT, index=index, dtype="datetime64[ns]")
    error = pd.Series(None, index=index, dtype="object")
    aware, ints, floats, texts = _split(values)

    stamped = aware.dropna()
    if len(stamped):
        utc[stamped.index] = [ts.tz_convert("UTC") for ts in stamped]
        local[stamped.index] = [ts.tz_localize(None) for ts in stamped]

    whole = ints.dropna()
    if len(whole):
        big = np.array([min(v, 2**63 - 1) if v >= 0 else -1 for v in whole], dtype=np.int64)
        as_date = _yyyymmdd(big)
        if as_date.any():
            at = whole.index[as_date]
            wall = pd.Series(pd.to_datetime(big[as_date].astype(str), format="%Y%m%d", errors="coerce"), index=at)
            local[at] = wall
            utc[at] = _localize(wall.astype("datetime64[ns]"), tz)
        if (~as_date).any():
            at = whole.index[~as_date]
            wall = pd.Series(_epoch(big[~as_date]), index=at)
            local[at], utc[at] = wall, wall.dt.tz_localize("UTC")
    fractional = floats.dropna()
    if len(fractional):
        wall = pd.Series(_epoch(fractional.to_numpy()), index=fractional.index)
        local[wall.index], utc[wall.index] = wall, wall.dt.tz_localize("UTC")

    texts = texts.dropna()
    zoned = texts.str.extract(_ZONED)
    zone = zoned["zone"].str.upper()
    has_zone = zone.notna() & ~zone.isin(["AM", "PM"])
    naive_idx = zoned.index[~has_zone]
    if len(naive_idx):
        wall = _parse_naive(texts[naive_idx])
        local[naive_idx] = wall
        utc[naive_idx] = _localize(wall, tz)
    zoned = zoned[has_zone]
    if len(zoned):
        wall = _parse_naive(zoned["wall"])
        local[zoned.index] = wall
        for name, rows in zoned.groupby("zone", sort=False)["wall"]:
            at, name = rows.index, str(name)
            offset = _OFFSET.match(name)
            if offset or name.upper() in ABBREVIATIONS:
                if offset:
                    sign = 1 if offset["sign"] == "+" else -1
                    minutes = sign * (int(offset["hh"]) * 60 + int(offset["mm"] or 0))
                else:
                    minutes = ABBREVIATIONS[name.upper()]
                if abs(minutes) > _MAX_OFFSET_MIN:
                    error[at] = [f"field 'timestamp' = {_shown(values[i])} has an offset beyond ±14:00" for i in at]
                    continue
                utc[at] = (wall[at] - pd.Timedelta(minutes=minutes)).dt.tz_localize("UTC")
            elif "/" in name:
                try:
                    utc[at] = _localize(wall[at], check_tz(name))
                except ConfigError:
                    error[at] = [
                        f"field 'timestamp' = {_shown(values[i])} names unknown time zone {name!r}" for i in at
                    ]
            else:
                error[at] = [
                    f"field 'timestamp' = {_shown(values[i])} has an ambiguous zone abbreviation {name!r}; "
                    "write a UTC offset or an IANA zone name"
                    for i in at
                ]

    unreadable = local.isna() & error.isna()
    error[unreadable] = [
        "field 'timestamp' is missing" if _is_missing(v) else f"field 'timestamp' = {_shown(v)} is not a date/time"
        for v in values[unreadable]
    ]
    bad_local = utc.isna() & error.isna()
    error[bad_local] = [
        f"field 'timestamp' = {_shown(v)} is not a valid {tz} time (skipped or repeated by a daylight-saving "
        "change); write it with its UTC offset"
        for v in values[bad_local]
    ]
    return utc, local, error


def _parse_iso(values: pd.Series, tz: str) -> tuple[pd.Series, pd.Series, pd.Series] | None:
    """The fast path: every value is ISO 8601, naive or all with one offset (pandas' C parser).

    None when any value is something else (mixed offsets, zone names, epochs, junk): then each
    value is read on its own by :func:`_parse_unique`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(values, format="ISO8601", errors="raise")
    except (ValueError, TypeError, OverflowError):
        return None
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        utc = parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        local = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    elif isinstance(parsed.dtype, np.dtypes.DateTime64DType):
        local = parsed.astype("datetime64[ns]")
        utc = _localize(local, tz).astype("datetime64[ns, UTC]")
    else:
        return None
    error = pd.Series(None, index=values.index, dtype="object")
    error[local.isna()] = "field 'timestamp' is missing"  # ISO parsing raised on anything unreadable
    bad_local = utc.isna() & local.notna()
    error[bad_local] = [
        f"field 'timestamp' = {_shown(v)} is not a valid {tz} time (skipped or repeated by a daylight-saving "
        "change); write it with its UTC offset"
        for v in values[bad_local]
    ]
    return utc, local, error


def parse_timestamps(values: pd.Series, tz: str = "UTC") -> ParsedTimestamps:
    """Parse one timestamp column; see the module docstring. Never raises for a bad value."""
    tz = check_tz(tz)
    index = values.index
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        utc = values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        local = values.dt.tz_localize(None).astype("datetime64[ns]")
        error = pd.Series(None, index=index, dtype="object")
        error[utc.isna()] = "field 'timestamp' is missing"
        return ParsedTimestamps(utc, local, error, utc.isna())
    if isinstance(values.dtype, np.dtypes.DateTime64DType):
        local = values.astype("datetime64[ns]")
        utc = _localize(local, tz).astype("datetime64[ns, UTC]")
    else:
        # Parse each distinct value once: a daily file repeats every date once per symbol.
        try:
            codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
        except TypeError:  # unhashable cells (lists from a nested Parquet column)
            codes, uniques = pd.factorize(values.astype(str), use_na_sentinel=False)
        distinct = pd.Series(np.asarray(uniques, dtype=object), dtype="object")
        u_utc, u_local, u_error = _parse_iso(distinct, tz) or _parse_unique(distinct, tz)
        instants = u_utc.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")[codes]
        utc = pd.Series(instants, index=index).dt.tz_localize("UTC")
        local = pd.Series(u_local.to_numpy(dtype="datetime64[ns]")[codes], index=index)
        reasons = u_error.to_numpy(dtype=object)[codes]
        error = pd.Series(reasons, index=index, dtype="object").where(pd.notna(reasons), None)
        return ParsedTimestamps(utc, local, error, local.isna())
    error = pd.Series(None, index=index, dtype="object")
    error[local.isna()] = "field 'timestamp' is missing"
    bad_local = utc.isna() & local.notna()
    error[bad_local] = [
        f"field 'timestamp' = '{v}' is not a valid {tz} time (skipped or repeated by a daylight-saving change)"
        for v in local[bad_local]
    ]
    return ParsedTimestamps(utc, local, error, local.isna())
