"""File layouts: which column of a vendor file is which OHLCV field.

Known vendor files are recognised by their exact header (:data:`KNOWN_LAYOUTS`; their names are
also their lake feeds, ``csv-<layout>``, so they never change); any other header is mapped by
case-insensitive :data:`ALIASES` into the generic layout ``long``, an explicit ``columns`` mapping
completing or overriding it (layout ``custom``). An unknown or ambiguous header raises
:class:`SchemaError` listing the columns found and a ``--columns`` example built from them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trading_core.data.calendars import CONTINUOUS, WEEKDAYS
from trading_core.data.providers.textfiles import read_header
from trading_core.data.schema import OHLCV_COLUMNS
from trading_core.errors import ConfigError, SchemaError

MAPPABLE = (*OHLCV_COLUMNS, "time", "adj_close", "symbol_prefix", "fixed_symbol")
"""Keys a ``columns`` mapping may hold: the contract's fields, a separate ``time`` column joined to a
date-only ``timestamp``, ``adj_close``, ``symbol_prefix`` and ``fixed_symbol`` (a single-symbol file)."""


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
    time: str | None = None
    """Separate time-of-day column joined to a date-only ``timestamp`` column (``Date,Time,...``)."""
    adj_close: str | None = None
    """Adjusted-close column, read only with ``adj_close='use'``."""
    calendar: str = WEEKDAYS
    interval: str | None = None
    """The vendor's interval; None: inferred from the timestamps (given, the inference must agree)."""
    tz: str | None = None
    """Time zone of naive timestamps in the file; None: the calendar's (UTC for 24/7 and weekdays)."""
    signature: frozenset[str] = field(default_factory=frozenset)
    """Header columns that identify this layout for ``layout="auto"``."""

    def source_columns(self, adjusted: bool = False) -> list[str]:
        cols = [self.timestamp, self.open, self.high, self.low, self.close, self.volume]
        cols += [c for c in (self.time, self.symbol, self.symbol_prefix) if c]
        if adjusted and self.adj_close:
            cols.append(self.adj_close)
        return list(dict.fromkeys(cols))

    def text_columns(self) -> list[str]:
        """Columns read as text: timestamps and symbols are never numbers (``0700`` stays ``0700``)."""
        return [c for c in (self.timestamp, self.time, self.symbol, self.symbol_prefix) if c]


KNOWN_LAYOUTS: dict[str, FileLayout] = {
    layout.name: layout
    for layout in (
        FileLayout(
            "sp500_all_stocks",
            "date",
            "Name",
            calendar="XNYS",
            interval="1d",
            signature=frozenset({"date", "open", "high", "low", "close", "volume", "Name"}),
        ),
        FileLayout(
            "etf_daily",
            "date",
            "ticker",
            calendar="XNYS",
            interval="1d",
            signature=frozenset({"date", "ticker", "open", "high", "low", "close", "volume", "dividends"}),
        ),
        FileLayout(
            "cryptodatadownload_daily",
            "date",
            "symbol",
            volume="volume_base",
            symbol_prefix="exchange",
            calendar=CONTINUOUS,
            interval="1d",
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

ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "datetime", "date", "time", "t", "timestamputc", "windowstart", "tradedate"),
    "symbol": ("symbol", "ticker", "name", "sym"),
    "open": ("open", "o", "openprice"),
    "high": ("high", "h", "highprice"),
    "low": ("low", "l", "lowprice"),
    "close": ("close", "c", "closeprice"),
    "volume": ("volume", "v", "vol"),
    "adj_close": ("adjclose", "adjustedclose"),
}
"""Header aliases, compared case-insensitively with everything but letters and digits removed
(``Adj Close``, ``adj_close`` and ``AdjClose`` are all ``adjclose``; ``Date/Time`` and ``DateTime``
are ``datetime``). Covers Yahoo (``Date,Open,High,Low,Close,Adj Close,Volume``, intraday
``Datetime``), Kaggle (``date,...,Name``), Polygon (``t,o,h,l,c,v``, flat files' ``ticker`` and
``window_start``), IBKR (``DateTime``, ``Date/Time``, ``Symbol``) and MetaTrader-style ``Date,Time``."""
REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def columns_hint(found: dict[str, str | None], header: list[str]) -> str:
    example = {f: found.get(f) or "<column>" for f in ("timestamp", "symbol", *REQUIRED[1:])}
    shown = json.dumps(example)
    return (
        f"Columns found: {header}. Name them with --columns (JSON, field -> column), e.g. --columns '{shown}' "
        f"(fields: {', '.join(MAPPABLE)}); or pass --layout one of {sorted(KNOWN_LAYOUTS)}"
    )


def alias_layout(
    header: list[str], where: str, columns: dict[str, str | None] | None = None, name: str = "long"
) -> FileLayout:
    """Map a header onto the contract by :data:`ALIASES`, with ``columns`` overriding any field.

    Raises :class:`SchemaError` (listing the columns found and a ``--columns`` example) when a
    required field has no column or more than one, naming each problem.
    """
    columns = dict(columns or {})
    found: dict[str, str | None] = {}
    problems: list[str] = []
    by_norm: dict[str, list[str]] = {}
    for col in header:
        by_norm.setdefault(_norm(col), []).append(col)
    for fld, aliases in ALIASES.items():
        if fld in columns:
            continue
        hits = [col for alias in aliases for col in by_norm.get(alias, [])]
        if fld == "timestamp" and sorted(_norm(h) for h in hits) == ["date", "time"] and "time" not in columns:
            found["timestamp"] = next(h for h in hits if _norm(h) == "date")
            found["time"] = next(h for h in hits if _norm(h) == "time")
        elif len(hits) == 1:
            found[fld] = hits[0]
        elif len(hits) > 1:
            found[fld] = hits[0]
            problems.append(f"'{fld}' is ambiguous between {hits}")
        elif fld in REQUIRED:
            problems.append(f"needs column(s) for '{fld}' (none of the header matches {list(aliases)})")
    found.update(columns)
    if problems:
        kind = "ambiguous" if all("ambiguous" in p for p in problems) else "unknown"
        raise SchemaError(f"{where}: {kind} file layout: {'; '.join(problems)}. {columns_hint(found, header)}")
    mapping = {k: v for k, v in found.items() if k in MAPPABLE}
    mapping.setdefault("symbol", None)
    return FileLayout(name=name, **mapping)  # type: ignore[arg-type]


def detect_layout(path: Path, header: list[str] | None = None) -> FileLayout:
    """A known layout whose signature columns all appear in the header, else the alias mapping."""
    header = header if header is not None else read_header(path)
    names = set(header)
    for layout in KNOWN_LAYOUTS.values():
        if layout.signature <= names:
            return layout
    return alias_layout(header, str(path))


def check_mapping(columns: dict[str, Any]) -> dict[str, str | None]:
    unknown = set(columns) - set(MAPPABLE)
    if unknown:
        raise ConfigError(f"column mapping has unknown field(s) {sorted(unknown)}; known: {list(MAPPABLE)}")
    for key, value in columns.items():
        if not (isinstance(value, str) and value) and not (value is None and key in {"symbol", "time", "adj_close"}):
            raise ConfigError(f"column mapping field {key!r}: expected a column name, got {value!r}")
    return dict(columns)
