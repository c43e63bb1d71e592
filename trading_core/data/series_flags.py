"""Series flags: findings about a symbol's series rather than a row; reported, rows kept.

``out_of_order`` (:func:`out_of_order`, on the rows in source order), and on the clean bars
(:func:`series_flags`): ``calendar_gap`` and ``off_calendar`` against the exchange calendar,
``stale_price`` (runs of repeated prices) and ``zero_volume``.
"""

from __future__ import annotations

import logging

import pandas as pd

from trading_core.data.calendars import expected_bars
from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import INTERVALS, PRICE_COLUMNS
from trading_core.data.validation_report import MAX_EXAMPLES, Flag

log = logging.getLogger(__name__)

MAX_EXPECTED_BARS = 10_000_000
"""Gap checks are skipped (with a warning) when the calendar would expect more bars than this over
the delivered range: only a far-off bogus timestamp gets there, and the rules still judge it."""


def out_of_order(frame: pd.DataFrame) -> list[Flag]:
    ts = frame["timestamp"].astype("int64")
    running_max = ts.groupby(frame["symbol"]).cummax().groupby(frame["symbol"]).shift(1)
    late = ts < running_max
    counts = frame.loc[late, "symbol"].value_counts()
    return [
        Flag("out_of_order", s, int(n), f"{n} bar(s) arrived after a later bar; sorted by timestamp")
        for s, n in counts.items()
    ]


def _stale_runs(clean: pd.DataFrame, policy: ValidationPolicy) -> dict[str, list[Flag]]:
    """``stale_price`` flags, one per run: flat bars repeating the previous close (``stale_run``), or
    a bit-identical OHLC tuple with high > low repeated bar after bar (``stale_ohlc_run``).

    A run's count is the number of repeating bars (the bar they repeat is not counted); it is
    flagged when the repeated bar plus its repeats reach the run length of the policy.
    """
    prices = clean[list(PRICE_COLUMNS)]
    prev = prices.groupby(clean["symbol"], sort=False).shift(1)
    flat = (clean["close"] == prev["close"]) & (clean["high"] == clean["low"])
    same = (prices == prev).all(axis=1) & (clean["high"] > clean["low"])
    since = clean["timestamp"].groupby(clean["symbol"], sort=False).shift(1)  # the bar the run repeats
    flags: dict[str, list[Flag]] = {}
    for mask, length, kind in ((flat, policy.stale_run, "flat"), (same, policy.stale_ohlc_run, "tuple")):
        if not mask.any():
            continue
        run_id = (~mask).cumsum()  # a symbol's first bar never repeats, so runs never span two symbols
        rows = clean[mask].assign(_run=run_id[mask], _printing=clean.loc[mask, "volume"] > 0, _since=since[mask])
        runs = rows.groupby("_run", sort=False).agg(
            symbol=("symbol", "first"),
            first=("_since", "first"),
            last=("timestamp", "last"),
            n=("symbol", "size"),
            printing=("_printing", "sum"),
            open=("open", "first"),
            high=("high", "first"),
            low=("low", "first"),
            close=("close", "first"),
        )
        for run in runs[runs["n"] + 1 >= length].itertuples():
            span = f"{run.first:%Y-%m-%d %H:%M}..{run.last:%Y-%m-%d %H:%M}"
            if kind == "flat":
                detail = f"{run.n} flat bar(s) repeating the close {run.close:.6g}, {span}"
            else:
                detail = (
                    f"OHLC {run.open:.6g}/{run.high:.6g}/{run.low:.6g}/{run.close:.6g} on {run.n + 1} consecutive "
                    f"bars, bit-identical, {span} (volume printing on {run.printing} of the {run.n} repeats)"
                )
            flags.setdefault(str(run.symbol), []).append(Flag("stale_price", str(run.symbol), int(run.n), detail))
    return flags


def _expected(delivered: pd.DataFrame, calendar: str, interval: str) -> pd.DatetimeIndex | None:
    """The calendar's bars over the delivered range, or None when that range is absurdly long."""
    first, last = delivered["timestamp"].min(), delivered["timestamp"].max()
    span = 1 + (last - first) / pd.Timedelta(INTERVALS[interval])
    if span > MAX_EXPECTED_BARS:
        log.warning("gap checks skipped: %s..%s would need %.3g %s bars of %s", first, last, span, interval, calendar)
        return None
    return expected_bars(calendar, first, last, interval)


def series_flags(
    clean: pd.DataFrame, delivered: pd.DataFrame, calendar: str, interval: str, policy: ValidationPolicy
) -> list[Flag]:
    """Gaps and off-calendar bars are judged on what the source delivered (quarantined rows
    included: their absence from the lake is already explained by quarantine); stale prices and
    zero volume on the clean bars. Extended-hours bars kept (``session='extended'``) are neither
    off-calendar nor expected."""
    flags: list[Flag] = []
    if clean.empty:
        return flags
    expected = _expected(delivered, calendar, interval)
    stale = _stale_runs(clean, policy)
    extended = delivered["_extended"] if "_extended" in delivered.columns else pd.Series(False, index=delivered.index)
    delivered_by_symbol = dict(tuple(delivered.groupby("symbol", sort=False)["timestamp"]))
    extended_by_symbol = dict(tuple(delivered[extended].groupby("symbol", sort=False)["timestamp"]))
    for symbol, rows in clean.groupby("symbol", sort=False):
        ts = pd.DatetimeIndex(delivered_by_symbol[symbol].sort_values().unique())
        if expected is not None:
            window = expected[(expected >= ts[0]) & (expected <= ts[-1])]
            missing = window.difference(ts)
            extra = ts.difference(expected)
            if symbol in extended_by_symbol:
                extra = extra.difference(pd.DatetimeIndex(extended_by_symbol[symbol]))
            if len(missing):
                shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in missing[:MAX_EXAMPLES])
                flags.append(
                    Flag(
                        "calendar_gap",
                        str(symbol),
                        len(missing),
                        f"{len(missing)} expected {calendar} bar(s) missing: {shown}",
                    )
                )
            if len(extra):
                shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in extra[:MAX_EXAMPLES])
                flags.append(
                    Flag(
                        "off_calendar",
                        str(symbol),
                        len(extra),
                        f"{len(extra)} bar(s) not on the {calendar} calendar: {shown}",
                    )
                )
        flags += stale.get(str(symbol), [])
        zero = int((rows["volume"] == 0).sum())
        if zero:
            first = rows.loc[rows["volume"] == 0, "timestamp"].iloc[0]
            flags.append(
                Flag("zero_volume", str(symbol), zero, f"{zero} bar(s) with zero volume, first {first:%Y-%m-%d}")
            )
    return flags
