"""The long OHLCV frame every provider returns and every later stage reads.

Columns ``[timestamp, symbol, open, high, low, close, volume]``: ``timestamp`` is tz-aware UTC
(bar start), ``symbol`` a string, prices and volume float64. Providers may add ``source_row``
(1-based line in the source file, or the row index) so quarantine can point at the raw input,
and ``schema_error`` (see :data:`SCHEMA_ERROR`).
"""

from __future__ import annotations

import re

import pandas as pd

from trading_core.errors import ConfigError, SchemaError

OHLCV_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
SOURCE_ROW = "source_row"
SCHEMA_ERROR = "schema_error"
"""Optional provider column: why a row's raw value could not be read (validation quarantines the
row under rule ``schema`` with this reason), None where it could."""

# Letters, digits and the separators real tickers use (BRK.B, ^GSPC, ES=F, BTC/USD,
# Bitstamp:BTC/USD). No whitespace, no leading separator, no "..": a symbol is also a
# partition name in the lake and must never reach outside it.
SYMBOL_RE = re.compile(r"^[A-Za-z0-9^][A-Za-z0-9.\-_=/:^]{0,39}$")

# Bar intervals the platform understands, with their pandas frequency.
INTERVALS: dict[str, str] = {"1d": "1D", "1h": "1h", "30m": "30min", "15m": "15min", "5m": "5min", "1m": "1min"}


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` unchanged if it is a safe ticker, else raise :class:`ConfigError`."""
    # fullmatch: with match(), '$' also accepts a trailing newline ("AAPL\n").
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol) or ".." in symbol:
        raise ConfigError(
            f"invalid symbol {symbol!r}: expected 1-40 characters of letters, digits and . - _ = / : ^, "
            "starting with a letter, digit or ^, without '..'"
        )
    return symbol


def validate_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise ConfigError(f"invalid interval {interval!r}: expected one of {sorted(INTERVALS)}")
    return interval


def empty_ohlcv() -> pd.DataFrame:
    """An empty frame with the contract's columns and dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in NUMERIC_COLUMNS})
    frame.insert(0, "symbol", pd.Series(dtype="object"))
    frame.insert(0, "timestamp", pd.Series(dtype="datetime64[ns, UTC]"))
    return frame


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], where: str) -> None:
    """Raise :class:`SchemaError` naming ``where`` and the missing columns."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{where}: missing required column(s) {missing}; found {list(frame.columns)}")


def to_utc(values: pd.Series, where: str, tz: str = "UTC") -> pd.Series:
    """Parse timestamps to tz-aware UTC; naive values are taken to be in ``tz``.

    Each value is read on its own terms (see :mod:`trading_core.data.timestamps`): mixed UTC
    offsets, offsets next to naive values, zone names and epoch numbers are all converted to UTC.
    Unparseable values become NaT (the validation rule ``schema`` quarantines them, with the reason
    :func:`~trading_core.data.timestamps.parse_timestamps` gives); a column that is entirely
    unparseable is a layout error and raises :class:`SchemaError`.
    """
    from trading_core.data.timestamps import parse_timestamps  # it imports this module's errors

    parsed = parse_timestamps(values, tz).utc
    if len(values) and parsed.isna().all():
        raise SchemaError(f"{where}: no value of the timestamp column could be parsed (first: {values.iloc[0]!r})")
    return parsed
