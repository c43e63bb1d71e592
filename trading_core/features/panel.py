"""A long OHLCV frame as contiguous per-symbol arrays: the shape the indicator code works on.

Rows are sorted by (symbol, timestamp), so every symbol is one contiguous slice. Two tricks make
wide universes fast without a Python loop per feature:

* per-symbol recursive indicators (TA-Lib) run on each slice, which is a view, not a copy;
* fixed-window statistics run once over the concatenated arrays, then the first ``window - 1``
  rows of every symbol are masked: from there on the window lies inside the symbol, so the
  value is exactly the per-symbol one, and it only ever uses rows at or before t.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trading_core.data.schema import OHLCV_COLUMNS
from trading_core.errors import SchemaError


@dataclass(frozen=True)
class Panel:
    """Sorted OHLCV arrays with per-symbol segment bounds."""

    timestamp: np.ndarray
    """datetime64[ns], UTC."""
    symbol: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    starts: np.ndarray
    """Index of each symbol's first row (ascending), plus len(rows) at the end."""
    pos: np.ndarray
    """Position of each row within its symbol (0 for the first bar)."""

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> Panel:
        missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
        if missing:
            raise SchemaError(f"bars lack columns {missing} (expected {list(OHLCV_COLUMNS)})")
        frame = bars.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
        symbol = frame["symbol"].to_numpy()
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        timestamp = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")  # UTC, naive: fast numpy ops
        same_symbol = symbol[1:] == symbol[:-1]
        if len(frame) and (~(timestamp[1:] > timestamp[:-1]) & same_symbol).any():
            bad = int(np.flatnonzero(~(timestamp[1:] > timestamp[:-1]) & same_symbol)[0]) + 1
            raise SchemaError(
                f"duplicate timestamp {frame['timestamp'].iloc[bad]} for symbol {symbol[bad]}: "
                "features need validated bars (one row per symbol and timestamp)"
            )
        starts = np.flatnonzero(np.r_[True, ~same_symbol]) if len(frame) else np.array([], dtype=np.int64)
        bounds = np.r_[starts, len(frame)].astype(np.int64)
        pos = np.arange(len(frame), dtype=np.int64) - np.repeat(starts, np.diff(bounds))
        arrays = {c: np.ascontiguousarray(frame[c].to_numpy(dtype=np.float64)) for c in OHLCV_COLUMNS[2:]}
        return cls(timestamp=timestamp, symbol=symbol, starts=bounds, pos=pos, **arrays)

    def __len__(self) -> int:
        return len(self.close)

    @property
    def n_symbols(self) -> int:
        return len(self.starts) - 1

    def segments(self) -> Iterator[tuple[str, slice]]:
        """(symbol, row slice) per symbol, in row order."""
        for a, b in zip(self.starts[:-1], self.starts[1:], strict=True):
            yield str(self.symbol[a]), slice(int(a), int(b))

    def shift(self, x: np.ndarray, k: int = 1) -> np.ndarray:
        """x at t-k within each symbol (NaN where the symbol has no bar t-k)."""
        out = np.full_like(x, np.nan, dtype=np.float64)
        if k < len(x):
            out[k:] = x[:-k] if k > 0 else x
        out[self.pos < k] = np.nan
        return out

    def lead(self, x: np.ndarray, k: int) -> np.ndarray:
        """x at t+k within each symbol (NaN past each symbol's last bar). Labels only, never features."""
        out = np.full(len(x), np.nan, dtype=np.float64)
        if k < len(x):
            out[:-k] = x[k:]
        seg_len = np.repeat(np.diff(self.starts), np.diff(self.starts))
        out[self.pos + k >= seg_len] = np.nan
        return out

    def rolling(self, x: np.ndarray, window: int, stat: str, min_periods: int | None = None) -> np.ndarray:
        """Trailing-window ``stat`` (mean, std, sum) per symbol; NaN until the window is inside the symbol."""
        roll = pd.Series(x, copy=False).rolling(window, min_periods=min_periods or window)
        values = getattr(roll, stat)().to_numpy(dtype=np.float64)
        values[self.pos < window - 1] = np.nan
        return values

    def rolling_corr(self, x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
        values = pd.Series(x).rolling(window).corr(pd.Series(y)).to_numpy(dtype=np.float64)
        values[self.pos < window - 1] = np.nan
        return values
