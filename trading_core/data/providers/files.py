"""Long-format CSV / Parquet files (gzip, bz2, xz too) mapped onto the OHLCV contract.

A :class:`FileLayout` says which column is which. ``layout="auto"`` first recognises the known
vendor files by their exact header (their names are also their lake feeds, ``csv-<layout>``): the
S&P 500 ``all_stocks_5yr`` file (``date, ..., Name``), the ETF file (``date, ticker, ...``) and
CryptoDataDownload exports (``date|timestamp_utc, exchange, symbol, ..., volume_base``; the symbol
becomes ``Exchange:BASE/QUOTE`` because the same pair trades on several exchanges). Any other
header is mapped by case-insensitive aliases (:data:`ALIASES`: Yahoo, Kaggle, Polygon, IBKR
exports...) into the generic layout ``long``; an explicit ``columns`` mapping (layout ``custom``)
overrides or completes it. An unknown or ambiguous header raises :class:`SchemaError` listing the
columns found and showing the ``--columns`` syntax with an example built from them.

The bar interval is inferred from the timestamps (:func:`~trading_core.data.intervals.infer_interval`)
and checked against the one requested. Naive timestamps are in the layout's zone (``tz``; default
the calendar's); daily bars are stamped at midnight UTC of the date as written.

CSV is read in chunks and filtered by symbol and date chunk by chunk, so a request for a few
symbols never holds the whole file in memory; Parquet filters are pushed down to pyarrow. The
encoding is UTF-8 (a byte-order mark is skipped); the delimiter is sniffed from the header (``,``
``;`` tab or ``|``). Each row keeps ``source_row`` (its line in the file, the header being line 1)
for quarantine; a value the provider cannot use (timestamp, adjusted close) is not dropped but
carried to validation with its reason in ``schema_error``.
"""

from __future__ import annotations

import logging
import lzma
import zlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from trading_core.data.calendars import calendar_tz
from trading_core.data.intervals import infer_interval
from trading_core.data.providers.layouts import (
    ALIASES,
    KNOWN_LAYOUTS,
    MAPPABLE,
    FileLayout,
    alias_layout,
    check_mapping,
    columns_hint,
    detect_layout,
)
from trading_core.data.providers.textfiles import (
    NulEscaping,
    is_parquet,
    one_line,
    open_text,
    read_header,
    text_format,
)
from trading_core.data.schema import (
    SCHEMA_ERROR,
    SOURCE_ROW,
    SYMBOL_RE,
    empty_ohlcv,
    validate_interval,
)
from trading_core.data.timestamps import check_tz, parse_timestamps
from trading_core.errors import ConfigError, ProviderError, SchemaError
from trading_core.security import resolve_input_file

log = logging.getLogger(__name__)

__all__ = ["ALIASES", "KNOWN_LAYOUTS", "MAPPABLE", "FileLayout", "FileProvider", "detect_layout", "read_header"]
_LOCAL, _UNREADABLE, _TS_ERROR, _ADJ_ERROR = "_local", "_unreadable", "_ts_error", "_adj_error"


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
        *,
        tz: str | None = None,
        adj_close: str = "ignore",
        symbol: str | None = None,
    ) -> None:
        """``symbol`` names the bars of a file without a symbol column (a Yahoo download)."""
        # Resolved, an existing regular file (no directory, FIFO or NUL byte): ConfigError otherwise.
        self.path = resolve_input_file(path, field="path")
        if adj_close not in {"ignore", "use"}:
            raise ConfigError(f"adj_close must be 'ignore' or 'use', not {adj_close!r}")
        self.parquet = is_parquet(self.path)
        self.format = None if self.parquet else text_format(self.path)
        header = read_header(self.path) if self.parquet else self.format.header  # type: ignore[union-attr]
        mapping = check_mapping(columns) if columns else None
        if isinstance(layout, FileLayout):
            resolved = layout
        elif layout == "auto":
            if mapping:
                resolved = alias_layout(header, str(self.path), mapping, name="custom")
            else:
                resolved = detect_layout(self.path, header)
        elif layout in KNOWN_LAYOUTS:
            resolved = KNOWN_LAYOUTS[layout]
        else:
            raise ConfigError(f"unknown layout {layout!r}: expected 'auto' or one of {sorted(KNOWN_LAYOUTS)}")
        if mapping and resolved.name != "custom":
            resolved = replace(resolved, name="custom", **mapping)  # type: ignore[arg-type]
        if calendar:
            resolved = replace(resolved, calendar=calendar)
        if resolved.symbol is None and resolved.fixed_symbol is None and symbol:
            resolved = replace(resolved, fixed_symbol=symbol)
        self.adjusted = adj_close == "use"
        if self.adjusted and not resolved.adj_close:
            raise ConfigError(
                f"{self.path}: adj_close='use' but the header has no adjusted-close column "
                f"(aliases {list(ALIASES['adj_close'])}; columns found: {header}); "
                'map one with --columns \'{"adj_close": "<column>"}\''
            )
        self.layout = resolved
        self.calendar = resolved.calendar
        self.tz = check_tz(tz or resolved.tz or calendar_tz(resolved.calendar))
        self.chunk_rows = chunk_rows
        self.interval: str | None = resolved.interval
        """The bars' interval: the layout's, else known after :meth:`fetch` (inferred)."""
        missing = [c for c in resolved.source_columns(self.adjusted) if c not in header]
        if missing:
            raise SchemaError(
                f"{self.path}: layout {resolved.name!r} needs column(s) {missing}; header has {header}. "
                + columns_hint({}, header)
            )
        if resolved.symbol is None and resolved.fixed_symbol is None:
            raise ConfigError(
                f"{self.path}: no symbol column (aliases {list(ALIASES['symbol'])}; columns found: {header}); "
                "for a single-symbol file give exactly one symbol (--symbols AAPL) or "
                '--columns \'{"fixed_symbol": "AAPL"}\''
            )

    def fetch(
        self, symbols: list[str], start: date | None, end: date | None, interval: str | None = None
    ) -> pd.DataFrame:
        """Bars of ``symbols`` (all when empty) in ``[start, end]``; ``interval`` None: as inferred."""
        if interval is not None:
            validate_interval(interval)
        wanted = set(symbols) if symbols else None
        lo = pd.Timestamp(start, tz="UTC") if start else None
        hi = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) if end else None
        parts = [self._select(chunk, wanted, lo, hi) for chunk in self._chunks(wanted)]
        parts = [p for p in parts if len(p)]
        if not parts:
            self.interval = self.interval or interval
            return empty_ohlcv()
        frame = pd.concat(parts, ignore_index=True)
        frame = self._finish_timestamps(frame, interval)
        if lo is not None or hi is not None:
            stamps = frame["timestamp"]
            inside = pd.Series(True, index=frame.index)
            if lo is not None:
                inside &= stamps >= lo
            if hi is not None:
                inside &= stamps < hi
            frame = frame[(inside | stamps.isna()).to_numpy()].reset_index(drop=True)
        name, layout = self.path.name, self.layout.name
        log.info("%s: %d rows selected (%s layout, %s bars)", name, len(frame), layout, self.interval)
        return frame

    def _finish_timestamps(self, frame: pd.DataFrame, requested: str | None) -> pd.DataFrame:
        """Infer and check the interval; daily bars become midnight UTC of the date as written."""
        if frame["timestamp"].isna().all() and frame[_LOCAL].isna().all():
            first = frame[_TS_ERROR].dropna()
            raise SchemaError(
                f"{self.path}: no value of the timestamp column {self.layout.timestamp!r} could be parsed "
                f"(line {frame[SOURCE_ROW].iloc[0]}: {first.iloc[0] if len(first) else 'missing'})"
            )
        # Symbols validation will refuse (../etc, empty) say nothing about the file's interval.
        tickers = frame["symbol"].astype("string").str.fullmatch(SYMBOL_RE.pattern).fillna(False).astype(bool)
        valid = frame["timestamp"].notna() & tickers
        try:
            inferred, _ = infer_interval(frame.loc[valid, "timestamp"], frame.loc[valid, "symbol"])
        except SchemaError:
            # Daily bars written in several offsets (a merge of exports) are spaced by dates, not instants.
            written = frame[_LOCAL].notna() & tickers
            try:
                inferred, _ = infer_interval(frame.loc[written, _LOCAL], frame.loc[written, "symbol"])
            except SchemaError:
                inferred = None
            if inferred != "1d":
                raise
        declared = self.layout.interval
        if inferred and declared and inferred != declared:
            raise SchemaError(
                f"{self.path}: layout {self.layout.name!r} holds {declared} bars but the timestamps are spaced "
                f"{inferred} apart; pass --columns to read it as a generic file"
            )
        actual = inferred or declared or requested or "1d"
        if requested and requested != actual:
            raise ConfigError(
                f"{self.path}: the timestamps are {actual} bars (inferred from their spacing), but interval "
                f"{requested} was requested; drop --interval or pass --interval {actual}"
            )
        self.interval = actual
        ts_error = frame[_TS_ERROR]
        if actual == "1d":
            # The session date is the date as written: no time zone is needed, so a local-time failure
            # (a midnight a daylight-saving change skips) does not apply; an unreadable value does.
            frame["timestamp"] = frame[_LOCAL].dt.normalize().dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
            ts_error = ts_error.where(frame[_UNREADABLE])
        adj_error = frame[_ADJ_ERROR]
        both = ts_error.notna() & adj_error.notna()
        frame[SCHEMA_ERROR] = ts_error.fillna(adj_error)
        frame.loc[both, SCHEMA_ERROR] = ts_error[both] + "; " + adj_error[both]
        return frame.drop(columns=[_LOCAL, _UNREADABLE, _TS_ERROR, _ADJ_ERROR])

    def available_symbols(self) -> list[str]:
        symbols: set[str] = set()
        for chunk in self._chunks(None):
            symbols.update(self._symbols(chunk).dropna().unique())
        return sorted(symbols)

    def _chunks(self, wanted: set[str] | None) -> Iterator[pd.DataFrame]:
        cols = self.layout.source_columns(self.adjusted)
        if self.parquet:
            yield self._parquet(cols, wanted)
            return
        fmt = self.format or text_format(self.path)  # set in __init__ for every non-Parquet file
        offset = 2  # the header is line 1
        try:
            with open_text(self.path, fmt.compression) as handle:
                reader = pd.read_csv(
                    NulEscaping(handle),
                    sep=fmt.sep,
                    header=0,
                    names=fmt.header,
                    index_col=False,
                    usecols=cols,
                    chunksize=self.chunk_rows,
                    dtype={c: "string" for c in self.layout.text_columns()},
                )
                for chunk in reader:
                    chunk[SOURCE_ROW] = range(offset, offset + len(chunk))
                    offset += len(chunk)
                    yield chunk
        except UnicodeDecodeError as exc:
            raise ProviderError(f"{self.path}: not UTF-8 text near line {offset} ({one_line(exc)})") from exc
        except (pd.errors.ParserError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
            raise ProviderError(f"{self.path}: unreadable near line {offset}: {one_line(exc)}") from exc

    def _parquet(self, cols: list[str], wanted: set[str] | None) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        filters = None
        if wanted and self.layout.symbol and not self.layout.symbol_prefix:
            filters = [(self.layout.symbol, "in", sorted(wanted))]
        try:
            try:
                table = pq.read_table(self.path, columns=cols, filters=filters)
            except (pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowInvalid):
                if filters is None:
                    raise
                table = pq.read_table(self.path, columns=cols)  # a non-text symbol column: filter in pandas
            frame = table.to_pandas()
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise ProviderError(f"{self.path}: unreadable Parquet file: {one_line(exc)}") from exc
        frame[SOURCE_ROW] = range(1, len(frame) + 1)
        return frame

    def _symbols(self, chunk: pd.DataFrame) -> pd.Series:
        layout = self.layout
        if layout.symbol is None:
            return pd.Series(layout.fixed_symbol, index=chunk.index, dtype="object")
        symbols = chunk[layout.symbol].astype("string").str.strip()
        if layout.symbol_prefix:
            symbols = chunk[layout.symbol_prefix].astype("string").str.strip() + ":" + symbols
        return symbols.astype("object")

    def _timestamps(self, chunk: pd.DataFrame) -> pd.Series:
        layout = self.layout
        if layout.time:
            return chunk[layout.timestamp].astype("string") + " " + chunk[layout.time].astype("string")
        return chunk[layout.timestamp]

    def _prices(self, chunk: pd.DataFrame) -> tuple[dict[str, pd.Series], pd.Series]:
        """The price columns as read, or scaled by adj_close / close with ``adj_close='use'``; and
        per row why it could not be adjusted (None where it was, or where the close itself is bad:
        validation names that)."""
        layout = self.layout
        prices = {f: chunk[getattr(layout, f)] for f in ("open", "high", "low", "close")}
        errors = pd.Series(None, index=chunk.index, dtype="object")
        if not self.adjusted:
            return prices, errors
        close = pd.to_numeric(chunk[layout.close], errors="coerce")
        adj = pd.to_numeric(chunk[layout.adj_close], errors="coerce")
        factor = (adj / close).where(np.isfinite(adj) & np.isfinite(close) & (adj > 0) & (close > 0))
        no_factor = factor.isna() & close.notna() & np.isfinite(close) & (close > 0)
        raw_adj = chunk[layout.adj_close]
        absent = no_factor & raw_adj.isna()
        junk = no_factor & raw_adj.notna()
        errors[absent] = "field 'adj_close' is missing (needed with adj_close='use')"
        errors[junk] = (
            "field 'adj_close' = " + raw_adj[junk].astype(str).str.slice(0, 40)
            + " is not a positive number (needed with adj_close='use')"
        )  # fmt: skip
        for key, raw in prices.items():
            number = pd.to_numeric(raw, errors="coerce")
            ok = number.notna() & factor.notna()
            prices[key] = raw.astype(object).where(~ok, number * factor)
        return prices, errors

    def _select(
        self, chunk: pd.DataFrame, wanted: set[str] | None, lo: pd.Timestamp | None, hi: pd.Timestamp | None
    ) -> pd.DataFrame:
        layout = self.layout
        symbols = self._symbols(chunk)
        keep = symbols.isin(wanted) if wanted is not None else pd.Series(True, index=chunk.index)
        chunk, symbols = chunk[keep], symbols[keep]
        if chunk.empty:
            return empty_ohlcv()
        parsed = parse_timestamps(self._timestamps(chunk), self.tz)
        # A loose date filter here (offsets reach ±14 h; daily bars are re-stamped later), exact in fetch().
        in_range = pd.Series(True, index=chunk.index)
        if lo is not None:
            in_range &= (parsed.utc >= lo - pd.Timedelta(days=1)) | parsed.utc.isna()
        if hi is not None:
            in_range &= (parsed.utc < hi + pd.Timedelta(days=1)) | parsed.utc.isna()
        prices, adj_errors = self._prices(chunk)
        out = pd.DataFrame(
            {
                "timestamp": parsed.utc,
                "symbol": symbols,
                **prices,
                "volume": chunk[layout.volume],
                SOURCE_ROW: chunk[SOURCE_ROW],
                # Text dtype: concatenating object columns of mostly None costs pandas a check per cell.
                _TS_ERROR: parsed.error.astype("string"),
                _ADJ_ERROR: adj_errors.astype("string"),
                _LOCAL: parsed.local,
                _UNREADABLE: parsed.unreadable,
            }
        )
        return out[in_range.to_numpy()]
