"""The Parquet lake: one file per (feed, interval, symbol), upserted by timestamp, written atomically.

Layout: ``<lake>/ohlcv/feed=<feed>/interval=<interval>/symbol=<quoted symbol>/bars.parquet``. A *feed*
is one stream of bars (``synthetic-<config hash>``, ``csv-<layout>``, ``yfinance``, ...), so bars of
the same ticker from different sources never overwrite each other.

* Upsert: new bars replace stored bars with the same timestamp, others are kept; a partition
  whose content would not change is not rewritten (ingesting the same range twice changes nothing).
* Atomic: the new partition is written to a temporary file beside the old one, fsynced, then
  renamed over it, so a killed task leaves either the old or the new file, never half of one.
* Concurrent writers of one partition are serialised with an advisory file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trading_core.data.schema import (
    NUMERIC_COLUMNS,
    OHLCV_COLUMNS,
    empty_ohlcv,
    validate_interval,
    validate_symbol,
)
from trading_core.errors import ConfigError

log = logging.getLogger(__name__)

PARTITION_FILE = "bars.parquet"
_SCHEMA = pa.schema([("timestamp", pa.timestamp("ns", tz="UTC"))] + [(c, pa.float64()) for c in NUMERIC_COLUMNS])


@dataclass(frozen=True)
class UpsertStats:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    partitions_written: int = 0

    def __add__(self, other: UpsertStats) -> UpsertStats:
        return UpsertStats(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int]:
        return (self.inserted, self.updated, self.unchanged, self.partitions_written)


def _safe_name(value: str, what: str) -> str:
    if not value or "/" in value or value in {".", ".."} or "\x00" in value:
        raise ConfigError(f"invalid lake {what} {value!r}")
    return value


class Lake:
    """The OHLCV lake under ``root`` (``Settings.lake_dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "ohlcv"

    def partition_dir(self, feed: str, interval: str, symbol: str) -> Path:
        validate_symbol(symbol)
        validate_interval(interval)
        name = quote(symbol, safe="")  # '/' and ':' never reach the file system as separators
        return self.root / f"feed={_safe_name(feed, 'feed')}" / f"interval={interval}" / f"symbol={name}"

    def symbols(self, feed: str, interval: str) -> list[str]:
        base = self.root / f"feed={_safe_name(feed, 'feed')}" / f"interval={interval}"
        if not base.is_dir():
            return []
        return sorted(unquote(p.name.removeprefix("symbol=")) for p in base.iterdir() if (p / PARTITION_FILE).is_file())

    def upsert(self, feed: str, interval: str, bars: pd.DataFrame) -> UpsertStats:
        """Merge validated bars (contract columns, unique per symbol+timestamp) into the lake."""
        total = UpsertStats()
        for symbol, rows in bars.groupby("symbol", sort=True):
            total = total + self._upsert_symbol(feed, interval, str(symbol), rows)
        log.info("lake %s/%s: %s", feed, interval, total)
        return total

    def _upsert_symbol(self, feed: str, interval: str, symbol: str, rows: pd.DataFrame) -> UpsertStats:
        directory = self.partition_dir(feed, interval, symbol)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / PARTITION_FILE
        new = rows[["timestamp", *NUMERIC_COLUMNS]].sort_values("timestamp").set_index("timestamp")
        with _locked(directory):
            old = _read_partition(target).set_index("timestamp") if target.exists() else None
            if old is None:
                merged, stats = new, UpsertStats(inserted=len(new))
            else:
                common = new.index.intersection(old.index)
                same = (old.loc[common, list(NUMERIC_COLUMNS)] == new.loc[common, list(NUMERIC_COLUMNS)]).all(axis=1)
                inserted = len(new.index.difference(old.index))
                updated = int((~same).sum())
                stats = UpsertStats(inserted=inserted, updated=updated, unchanged=len(common) - updated)
                if inserted == 0 and updated == 0:
                    return stats
                merged = pd.concat([old[~old.index.isin(new.index)], new]).sort_index()
            _atomic_write(merged.reset_index(), target)
        return UpsertStats(stats.inserted, stats.updated, stats.unchanged, 1)

    def read(
        self,
        feed: str,
        interval: str,
        symbols: list[str] | None = None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Bars in ``[start, end]`` (timestamps, inclusive) for ``symbols`` (all when None)."""
        names = symbols if symbols is not None else self.symbols(feed, interval)
        parts = []
        for symbol in names:
            target = self.partition_dir(feed, interval, symbol) / PARTITION_FILE
            if not target.exists():
                continue
            frame = _read_partition(target, start, end)
            frame.insert(1, "symbol", symbol)
            parts.append(frame)
        if not parts:
            return empty_ohlcv()
        return pd.concat(parts, ignore_index=True)[list(OHLCV_COLUMNS)]


def content_hash(frame: pd.DataFrame, *identity: str) -> str:
    """Deterministic hash of bars (sorted by symbol, timestamp) plus identity strings.

    Hashes raw little-endian bytes of fixed dtypes, so it does not depend on pandas' hashing
    internals or on row order in the input.
    """
    digest = hashlib.sha256("\x1f".join(identity).encode())
    ordered = frame.sort_values(["symbol", "timestamp"], kind="stable")
    for symbol, rows in ordered.groupby("symbol", sort=True):
        digest.update(str(symbol).encode() + b"\x00")
        digest.update(rows["timestamp"].to_numpy(dtype="datetime64[ns]").astype("<i8").tobytes())
        for col in NUMERIC_COLUMNS:
            digest.update(rows[col].to_numpy(dtype="<f8").tobytes())
    return digest.hexdigest()


def _read_partition(path: Path, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None) -> pd.DataFrame:
    filters = []
    if start is not None:
        filters.append(("timestamp", ">=", pd.Timestamp(start)))
    if end is not None:
        filters.append(("timestamp", "<=", pd.Timestamp(end)))
    table = pq.read_table(path, filters=filters or None, schema=_SCHEMA)
    return table.to_pandas()


def _atomic_write(frame: pd.DataFrame, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        table = pa.Table.from_pandas(frame[["timestamp", *NUMERIC_COLUMNS]], schema=_SCHEMA, preserve_index=False)
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
