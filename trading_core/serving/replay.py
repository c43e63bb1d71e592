"""The replay feed: lake bars of a recorded dataset version published as a live market would send them.

Bars go out in bar-time order, one bar time's slice (every symbol that has a bar then) at a time, each slice
stored by the stream before the next is sent, so a consumer never sees a bar time before the previous one
is complete. ``speed`` 0 publishes as fast as the broker acknowledges; ``speed`` N sleeps one bar interval / N
between slices (``5m`` at ``1000x``: 0.3 s; ``1d`` at ``86400x``: 1 s), less the time the slice took to publish,
and never longer than ``max_sleep_s``. Each bar carries its Nats-Msg-Id ``(interval, symbol, bar
start)``: a replay re-run inside the duplicate window stores nothing twice (counted as ``duplicates``).

    trading stream replay --dataset ds-... --from 2024-01-02 --to 2024-03-28 --speed 100x
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import pandas as pd

from trading_core.config import Settings
from trading_core.data.schema import INTERVALS, OHLCV_COLUMNS, require_columns, validate_interval
from trading_core.errors import ConfigError
from trading_core.serving.messages import BarMessage
from trading_core.serving.transport.base import BarPublisher

log = logging.getLogger(__name__)

MAX_SLEEP_S = 5.0
"""Longest pause between two slices, whatever the speed (a 1d replay at 1x would otherwise take days)."""
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)x?$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReplayResult:
    """What a replay published."""

    dataset_version: str | None
    interval: str
    bar_times: int
    bars: int
    """Bars stored by this replay."""
    duplicates: int
    """Bars the stream already held (same Nats-Msg-Id inside its duplicate window)."""
    first: str | None
    last: str | None
    elapsed_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_speed(text: str | float) -> float:
    """``0`` (as fast as possible), ``10x`` or ``10`` (ten bar intervals per ... interval) -> the factor."""
    match = _SPEED.fullmatch(str(text).strip().lower())
    if not match:
        raise ConfigError(f"invalid speed {text!r}: expected 0 (as fast as possible) or a factor such as 10x")
    return float(match.group(1))


def interval_seconds(interval: str) -> float:
    return float(pd.Timedelta(INTERVALS[validate_interval(interval)]).total_seconds())


def _bound(value: date | str | pd.Timestamp | None, end: bool) -> pd.Timestamp | None:
    """A --from/--to value as a UTC instant: a date means the whole day (to: its last instant)."""
    if value is None or value == "":
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    whole_day = type(value) is date or (isinstance(value, str) and _DAY.fullmatch(value.strip()) is not None)
    return stamp + pd.Timedelta(days=1) - pd.Timedelta(1, "ns") if end and whole_day else stamp


def bar_slices(
    frame: pd.DataFrame,
    interval: str,
    start: date | str | pd.Timestamp | None = None,
    end: date | str | pd.Timestamp | None = None,
) -> Iterator[tuple[pd.Timestamp, list[BarMessage]]]:
    """``(bar start, bars)`` of an OHLCV frame in bar-time order, symbols sorted within a slice."""
    require_columns(frame, OHLCV_COLUMNS, "replay frame")
    lo, hi = _bound(start, end=False), _bound(end, end=True)
    if lo is not None and hi is not None and hi < lo:
        raise ConfigError(f"replay range is empty: --to {end} is before --from {start}")
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    keep = pd.Series(True, index=frame.index)
    if lo is not None:
        keep &= stamps >= lo
    if hi is not None:
        keep &= stamps <= hi
    rows = frame.loc[keep, list(OHLCV_COLUMNS)].assign(timestamp=stamps[keep])
    rows = rows.sort_values(["timestamp", "symbol"], kind="stable")
    for stamp, group in rows.groupby("timestamp", sort=True):
        bars = [
            BarMessage(symbol=str(sym), interval=interval, timestamp=stamp, open=o, high=h, low=lo_, close=c, volume=v)
            for sym, o, h, lo_, c, v in zip(
                group["symbol"],
                *(group[k].astype(float) for k in ("open", "high", "low", "close", "volume")),
                strict=True,
            )
        ]
        yield pd.Timestamp(stamp), bars


async def replay_frame(
    frame: pd.DataFrame,
    publisher: BarPublisher,
    *,
    interval: str,
    start: date | str | pd.Timestamp | None = None,
    end: date | str | pd.Timestamp | None = None,
    speed: float = 0.0,
    max_sleep_s: float = MAX_SLEEP_S,
    dataset_version: str | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> ReplayResult:
    """Publish ``frame``'s bars slice by slice (see the module docstring); the counts of what was stored."""
    if speed < 0:
        raise ConfigError(f"speed must be >= 0, got {speed}")
    step = min(max_sleep_s, interval_seconds(interval) / speed) if speed > 0 else 0.0
    began = published = time.monotonic()
    bar_times = stored = duplicates = 0
    first = last = None
    for stamp, bars in bar_slices(frame, interval, start, end):
        if bar_times and step:
            await sleep(max(0.0, step - (time.monotonic() - published)))
        published = time.monotonic()
        acks = await publisher.publish_bars(bars)
        new = sum(not a.duplicate for a in acks)
        stored, duplicates = stored + new, duplicates + len(acks) - new
        bar_times += 1
        first = first or stamp.isoformat()
        last = stamp.isoformat()
        if bar_times % 250 == 0:
            log.info("replay: %d bar times, %d bars stored, at %s", bar_times, stored, last)
    return ReplayResult(dataset_version, interval, bar_times, stored, duplicates, first, last,
                        round(time.monotonic() - began, 3))  # fmt: skip


async def replay_dataset(
    version: str,
    settings: Settings,
    publisher: BarPublisher,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    speed: float = 0.0,
    interval: str | None = None,
    max_sleep_s: float = MAX_SLEEP_S,
) -> ReplayResult:
    """Publish the bars of a recorded dataset version (read from the lake and checked against its hash)."""
    from trading_core.data.ingest import load_dataset
    from trading_core.db.lineage import get_dataset

    recorded = get_dataset(settings.resolved_database_url, version).interval
    if interval is not None and validate_interval(interval) != recorded:
        raise ConfigError(f"dataset {version} holds {recorded} bars, not {interval}: drop --interval or pick another")
    frame = load_dataset(version, settings)
    return await replay_frame(frame, publisher, interval=recorded, start=start, end=end, speed=speed,
                              max_sleep_s=max_sleep_s, dataset_version=version)  # fmt: skip
