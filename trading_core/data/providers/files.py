"""Long-format CSV / Parquet files (gzip too) mapped onto the OHLCV contract.

A :class:`FileLayout` says which column is which. Known vendor layouts are recognised from the
header (``layout="auto"``): the S&P 500 ``all_stocks_5yr`` file (``date, ..., Name``), the ETF file
(``date, ticker, ...``) and CryptoDataDownload exports (``date|timestamp_utc, exchange, symbol, ...,
volume_base``; the symbol becomes ``Exchange:BASE/QUOTE`` because the same pair trades on several
exchanges). Any other long file works with an explicit column mapping.

CSV is read in chunks and filtered by symbol and date chunk by chunk, so a request for a few
symbols never holds the whole file in memory; Parquet filters are pushed down to pyarrow.
Each row keeps ``source_row`` (its line in the file, the header being line 1) for quarantine.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from trading_core.data.calendars import CONTINUOUS, WEEKDAYS
from trading_core.data.schema import OHLCV_COLUMNS, SOURCE_ROW, empty_ohlcv, to_utc, validate_interval
from trading_core.errors import ConfigError, ProviderError, SchemaError
from trading_core.security import resolve_input_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileLayout:
    """Where each OHLCV field lives in a file, and the bars' calendar and interval."""

    name: str
    timestamp: str
    symbol: str | None
    """Column holding the symbol; None for a single-symbol file (then ``fixed_symbol`` is used)."""
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"
    symbol_prefix: str | None = None
    """Optional column prepended to the symbol as ``prefix:symbol`` (e.g. the exchange)."""
    fixed_symbol: str | None = None
    calendar: str = WEEKDAYS
    interval: str = "1d"
    tz: str = "UTC"
    """Time zone of naive timestamps in the file."""
    signature: frozenset[str] = field(default_factory=frozenset)
    """Header columns that identify this layout for ``layout="auto"``."""

    def source_columns(self) -> list[str]:
        cols = [self.timestamp, self.open, self.high, self.low, self.close, self.volume]
        cols += [c for c in (self.symbol, self.symbol_prefix) if c]
        return list(dict.fromkeys(cols))


KNOWN_LAYOUTS: dict[str, FileLayout] = {
    layout.name: layout
    for layout in (
        FileLayout(
            "sp500_all_stocks",
            "date",
            "Name",
            calendar="XNYS",
            signature=frozenset({"date", "open", "high", "low", "close", "volume", "Name"}),
        ),
        FileLayout(
            "etf_daily",
            "date",
            "ticker",
            calendar="XNYS",
            signature=frozenset({"date", "ticker", "open", "high", "low", "close", "volume", "dividends"}),
        ),
        FileLayout(
            "cryptodatadownload_daily",
            "date",
            "symbol",
            volume="volume_base",
            symbol_prefix="exchange",
            calendar=CONTINUOUS,
            signature=frozenset({"date", "exchange", "symbol", "volume_base", "volume_quote"}),
        ),
        FileLayout(
            "cryptodatadownload_hourly",
            "timestamp_utc",
            "symbol",
            volume="volume_base",
            symbol_prefix="exchange",
            calendar=CONTINUOUS,
            interval="1h",
            signature=frozenset({"timestamp_utc", "exchange", "symbol", "volume_base", "volume_quote"}),
        ),
        FileLayout(
            "long",
            "timestamp",
            "symbol",
            signature=frozenset({"timestamp", "symbol", "open", "high", "low", "close", "volume"}),
        ),
    )
}


def read_header(path: Path) -> list[str]:
    """Column names of a CSV(.gz) or Parquet file without reading its rows."""
    if _is_parquet(path):
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ProviderError(f"{path}: cannot read header: {exc}") from exc
    if not first.strip():
        raise SchemaError(f"{path}: file is empty (no header line)")
    return [c.strip() for c in first.rstrip("\r\n").split(",")]


def detect_layout(path: Path) -> FileLayout:
    """The known layout whose signature columns all appear in the file's header."""
    header = set(read_header(path))
    for layout in KNOWN_LAYOUTS.values():
        if layout.signature <= header:
            return layout
    raise SchemaError(
        f"{path}: unknown file layout (header {sorted(header)}); pass layout= one of {sorted(KNOWN_LAYOUTS)} "
        "or a column mapping {'timestamp': ..., 'symbol': ..., 'open': ..., ...}"
    )


def _is_parquet(path: Path) -> bool:
    return path.suffix in {".parquet", ".pq"}


class FileProvider:
    """OHLCV from one long-format file; see the module docstring."""

    name = "csv"

    def __init__(
        self,
        path: str | Path,
        layout: str | FileLayout = "auto",
        columns: dict[str, str] | None = None,
        calendar: str | None = None,
        chunk_rows: int = 250_000,
    ) -> None:
        # Resolved, an existing regular file (no directory, FIFO or NUL byte): ConfigError otherwise.
        self.path = resolve_input_file(path, field="path")
        if isinstance(layout, FileLayout):
            resolved = layout
        elif layout == "auto":
            resolved = detect_layout(self.path) if not columns else KNOWN_LAYOUTS["long"]
        elif layout in KNOWN_LAYOUTS:
            resolved = KNOWN_LAYOUTS[layout]
        else:
            raise ConfigError(f"unknown layout {layout!r}: expected 'auto' or one of {sorted(KNOWN_LAYOUTS)}")
        if columns:
            unknown = set(columns) - {*OHLCV_COLUMNS, "symbol_prefix", "fixed_symbol"}
            if unknown:
                raise ConfigError(f"column mapping has unknown field(s) {sorted(unknown)}")
            fields: dict[str, Any] = {"name": "custom", **columns}
            resolved = replace(resolved, **fields)
        if calendar:
            resolved = replace(resolved, calendar=calendar)
        self.layout = resolved
        self.calendar = resolved.calendar
        self.chunk_rows = chunk_rows
        header = set(read_header(self.path))
        missing = [c for c in resolved.source_columns() if c not in header]
        if missing:
            raise SchemaError(
                f"{self.path}: layout {resolved.name!r} needs column(s) {missing}; header has {sorted(header)}"
            )
        if resolved.symbol is None and resolved.fixed_symbol is None:
            raise ConfigError(f"{self.path}: layout has no symbol column; give fixed_symbol")

    def fetch(self, symbols: list[str], start: date | None, end: date | None, interval: str = "1d") -> pd.DataFrame:
        validate_interval(interval)
        if interval != self.layout.interval:
            raise ConfigError(f"{self.path}: holds {self.layout.interval} bars, {interval} requested")
        wanted = set(symbols) if symbols else None
        lo = pd.Timestamp(start, tz="UTC") if start else None
        hi = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) if end else None
        parts = [self._select(chunk, wanted, lo, hi) for chunk in self._chunks(wanted)]
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_ohlcv()
        frame = pd.concat(parts, ignore_index=True)
        log.info("%s: %d rows selected (%s layout)", self.path.name, len(frame), self.layout.name)
        return frame

    def available_symbols(self) -> list[str]:
        symbols: set[str] = set()
        for chunk in self._chunks(None):
            symbols.update(self._symbols(chunk).unique())
        return sorted(symbols)

    def _chunks(self, wanted: set[str] | None) -> Iterator[pd.DataFrame]:
        cols = self.layout.source_columns()
        if _is_parquet(self.path):
            import pyarrow.parquet as pq

            filters = None
            if wanted and self.layout.symbol and not self.layout.symbol_prefix:
                filters = [(self.layout.symbol, "in", sorted(wanted))]
            table = pq.read_table(self.path, columns=cols, filters=filters)
            frame = table.to_pandas()
            frame[SOURCE_ROW] = range(1, len(frame) + 1)
            yield frame
            return
        offset = 2  # the header is line 1
        try:
            reader = pd.read_csv(
                self.path, usecols=cols, chunksize=self.chunk_rows, dtype={c: "string" for c in cols[:1]}
            )
            for chunk in reader:
                chunk[SOURCE_ROW] = range(offset, offset + len(chunk))
                offset += len(chunk)
                yield chunk
        except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise ProviderError(f"{self.path}: unreadable near line {offset}: {exc}") from exc

    def _symbols(self, chunk: pd.DataFrame) -> pd.Series:
        layout = self.layout
        if layout.symbol is None:
            return pd.Series(layout.fixed_symbol, index=chunk.index, dtype="object")
        symbols = chunk[layout.symbol].astype("string").str.strip()
        if layout.symbol_prefix:
            symbols = chunk[layout.symbol_prefix].astype("string").str.strip() + ":" + symbols
        return symbols.astype("object")

    def _select(
        self, chunk: pd.DataFrame, wanted: set[str] | None, lo: pd.Timestamp | None, hi: pd.Timestamp | None
    ) -> pd.DataFrame:
        layout = self.layout
        symbols = self._symbols(chunk)
        keep = symbols.isin(wanted) if wanted is not None else pd.Series(True, index=chunk.index)
        chunk, symbols = chunk[keep], symbols[keep]
        if chunk.empty:
            return empty_ohlcv()
        timestamps = to_utc(chunk[layout.timestamp], f"{self.path} column {layout.timestamp!r}", tz=layout.tz)
        in_range = pd.Series(True, index=chunk.index)
        if lo is not None:
            in_range &= (timestamps >= lo) | timestamps.isna()
        if hi is not None:
            in_range &= (timestamps < hi) | timestamps.isna()
        out = pd.DataFrame(
            {
                "timestamp": timestamps,
                "symbol": symbols,
                "open": chunk[layout.open],
                "high": chunk[layout.high],
                "low": chunk[layout.low],
                "close": chunk[layout.close],
                "volume": chunk[layout.volume],
                SOURCE_ROW: chunk[SOURCE_ROW],
            }
        )
        return out[in_range.to_numpy()]
