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
from functools import cached_property

import numpy as np
import pandas as pd

from trading_core.data.schema import OHLCV_COLUMNS
from trading_core.errors import SchemaError


def _is_sorted(bars: pd.DataFrame) -> bool:
    """Already ordered by (symbol, timestamp)? Sorting 600k string keys costs a second; checking, milliseconds."""
    if len(bars) < 2:
        return True
    symbol = bars["symbol"].to_numpy()
    ts = pd.to_datetime(bars["timestamp"], utc=True).to_numpy(dtype="datetime64[ns]")
    same = symbol[1:] == symbol[:-1]
    return bool((same | (symbol[1:] > symbol[:-1])).all() and ((ts[1:] > ts[:-1]) | ~same).all())


@dataclass(frozen=True, eq=False)
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
        frame = bars if _is_sorted(bars) else bars.sort_values(["symbol", "timestamp"], kind="stable")
        frame = frame.reset_index(drop=True)
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

    @cached_property
    def _seg(self) -> np.ndarray:
        """Symbol index of each row."""
        return np.repeat(np.arange(self.n_symbols), np.diff(self.starts))

    def _window_sums(self, x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(sum of finite values, count of finite values) over each row's trailing window.

        Cumulative sums run along a (symbol x position) grid, restarting at every symbol, so a
        row's value is a function of its own symbol's bars up to it and nothing else: bit for bit
        the same whatever other symbols or later bars hold (a rolling algorithm run across the
        concatenated array cannot promise that).
        """
        finite = np.isfinite(x)
        width = int(self.pos.max()) + 2 if len(x) else 1
        sums = np.zeros((self.n_symbols, width))
        counts = np.zeros((self.n_symbols, width))
        sums[self._seg, self.pos + 1] = np.where(finite, x, 0.0)
        counts[self._seg, self.pos + 1] = finite
        np.cumsum(sums, axis=1, out=sums)
        np.cumsum(counts, axis=1, out=counts)
        back = np.maximum(self.pos + 1 - window, 0)
        end = self.pos + 1
        return sums[self._seg, end] - sums[self._seg, back], counts[self._seg, end] - counts[self._seg, back]

    def _centre(self, x: np.ndarray) -> np.ndarray:
        """x minus its symbol's first finite value: keeps cumulative sums small (no cancellation)."""
        x = np.asarray(x, dtype=np.float64)
        if not len(x):
            return x.copy()
        idx = np.where(np.isfinite(x), np.arange(len(x)), len(x))
        first = np.minimum.reduceat(idx, self.starts[:-1])
        anchor = np.where(first < len(x), x[np.minimum(first, len(x) - 1)], 0.0)
        return x - anchor[self._seg]

    def rolling(self, x: np.ndarray, window: int, stat: str, min_periods: int | None = None) -> np.ndarray:
        """Trailing-window ``stat`` ('mean', 'std' (ddof=1), 'sum') of each symbol's finite values.

        NaN until the symbol has ``window`` bars (with ``min_periods``: until it has that many finite
        values, so early rows use a partial window) and where fewer than ``min_periods`` (default:
        all) values in the window are finite.
        """
        x = np.asarray(x, dtype=np.float64)
        need = min_periods or window
        if stat == "std":
            centred = self._centre(x)
            s1, n = self._window_sums(centred, window)
            s2, _ = self._window_sums(centred**2, window)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.sqrt(np.clip((s2 - s1 * s1 / n) / (n - 1), 0.0, None))
            need = max(need, 2)
        else:
            total, n = self._window_sums(x, window)
            with np.errstate(invalid="ignore", divide="ignore"):
                values = total / n if stat == "mean" else total
            if stat not in ("mean", "sum"):
                raise ValueError(f"unknown rolling statistic {stat!r}")
        partial = self.pos < window - 1 if min_periods is None else np.zeros(len(x), dtype=bool)
        values[(n < need) | partial] = np.nan
        return values

    def rolling_corr(self, x: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
        """Trailing-window Pearson correlation per symbol (rows where both are finite)."""
        both = np.isfinite(x) & np.isfinite(y)
        xc = self._centre(np.where(both, x, np.nan))
        yc = self._centre(np.where(both, y, np.nan))
        sx, n = self._window_sums(xc, window)
        sy, _ = self._window_sums(yc, window)
        sxx, _ = self._window_sums(xc * xc, window)
        syy, _ = self._window_sums(yc * yc, window)
        sxy, _ = self._window_sums(xc * yc, window)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sxy - sx * sy / n
            var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
            corr = cov / np.sqrt(var_x * var_y)
        corr[(n < window) | (self.pos < window - 1) | ~(var_x > 0) | ~(var_y > 0)] = np.nan
        return np.clip(corr, -1.0, 1.0)
