"""Trailing windows per symbol, updated one bar at a time, equal bit for bit to the batch statistics.

* :class:`SymbolRing` — the last ``length`` values of each symbol's own bar sequence.
* :class:`RollingSet` — :meth:`Panel.rolling` ('mean', 'sum', 'std', with ``min_periods``) for several
  series sharing one window. The batch takes differences of cumulative sums that start at each
  symbol's first bar (and centres a 'std' series on its first finite value); so does this object: it
  carries the running sum since the symbol's first bar and a ring of the sums ``window`` bars back.
  The window statistic is then the same difference of the same two floats: exact, not merely close,
  and O(window) memory, O(1) work per bar.
* :class:`PandasRolling` — pandas' ``Series.rolling(w).sum()/.std()`` on one universe-level series
  (pandas' own add/remove recursion with Kahan compensation, continued bar by bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trading_core.features.online.base import Stateful


class SymbolRing(Stateful):
    """Ring buffer of the last ``length`` values of each symbol (its own bars, gaps skipped)."""

    _state = ("data",)

    def __init__(self, length: int, n_symbols: int) -> None:
        self.length = max(int(length), 1)
        self.data = np.full((self.length, n_symbols), np.nan)

    def push(self, idx: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
        """Store the value of bar ``pos`` (0-based, per symbol) of the symbols ``idx``."""
        self.data[pos % self.length, idx] = values

    def lag(self, idx: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
        """Value k bars before bar ``pos`` (NaN where the symbol has fewer bars); k < length."""
        out = self.data[(pos - k) % self.length, idx]
        return np.where(pos >= k, out, np.nan)


@dataclass(frozen=True)
class RollingSpec:
    """One :meth:`Panel.rolling` call: ``stat`` of a named input over ``window`` bars."""

    name: str
    stat: str
    """'mean', 'sum' or 'std' (ddof=1)."""
    window: int
    min_periods: int | None = None

    @property
    def key(self) -> str:
        return f"{self.name}:{self.stat}:{self.window}" + (f":{self.min_periods}" if self.min_periods else "")


class RollingSet(Stateful):
    """Several :meth:`Panel.rolling` statistics, continued bar by bar per symbol, in one set of arrays.

    Per symbol and input channel: the running sum of finite values and their count since the
    symbol's first bar, and a ring of those running sums for the last ``max(window)`` bars. A 'std'
    input takes two channels (the input centred on its first finite value, and its square).
    """

    _state = ("acc", "ring", "anchor")

    def __init__(self, specs: list[RollingSpec], n_symbols: int) -> None:
        if len({s.key for s in specs}) != len(specs):
            raise ValueError("rolling specs repeat")
        self.specs = specs
        windows: list[int] = []
        stds: list[int] = []
        self._spec_cols: list[int] = []
        for spec in specs:
            if spec.stat not in ("mean", "sum", "std"):
                raise ValueError(f"unknown rolling statistic {spec.stat!r}")
            if spec.window < 1:
                raise ValueError(f"rolling window must be >= 1, got {spec.window}")
            self._spec_cols.append(len(windows))
            if spec.stat == "std":
                stds.append(len(windows))
                windows += [spec.window, spec.window]
            else:
                windows.append(spec.window)
        self._std_cols = np.array(stds, dtype=np.intp)
        self._windows = np.array(windows, dtype=np.int64)
        self.length = int(self._windows.max()) if windows else 1
        k = self.width = len(windows)
        lags = np.r_[self._windows, self._windows]
        self._groups = [(int(w), np.flatnonzero(lags == w)) for w in np.unique(lags)]
        self.acc = np.zeros((n_symbols, 2 * k))
        """Per symbol: running sums of the finite values of each channel, then their counts."""
        self.ring = np.zeros((self.length, n_symbols, 2 * k))
        """``acc`` after each of the last ``length`` bars (slot = bars seen mod length)."""
        self.anchor = np.full((n_symbols, max(len(stds), 1)), np.nan)
        """First finite value of each 'std' input per symbol: the batch centres on it (Panel._centre)."""
        self._need = np.array(
            [max(s.min_periods or s.window, 2 if s.stat == "std" else 1) for s in specs], dtype=np.float64
        )
        self._full_window = np.array([s.window - 1 if s.min_periods is None else -1 for s in specs])
        self._first = np.array(self._spec_cols, dtype=np.intp)
        self._is = {stat: np.array([s.stat == stat for s in specs]) for stat in ("mean", "sum", "std")}

    def update(self, idx: np.ndarray, pos: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Add bar ``pos`` of symbols ``idx`` (``inputs[name]`` aligned with ``idx``); the statistics at
        it, keyed by :attr:`RollingSpec.key`. Call with errors ignored (np.errstate)."""
        x = np.empty((len(idx), len(self._windows)))
        for spec, col in zip(self.specs, self._spec_cols, strict=True):
            x[:, col] = inputs[spec.name]
        if len(self._std_cols):
            raw = x[:, self._std_cols]
            anchor = self.anchor[idx]
            anchor = np.where(np.isnan(anchor) & np.isfinite(raw), raw, anchor)
            self.anchor[idx] = anchor
            centred = raw - anchor
            x[:, self._std_cols] = centred
            x[:, self._std_cols + 1] = centred**2
        finite = np.isfinite(x)
        acc = self.acc[idx] + np.concatenate([np.where(finite, x, 0.0), finite], axis=1)
        end = pos + 1
        if len(self._groups) == 1:
            past = self.ring[(end - self._groups[0][0]) % self.length, idx]
        else:  # one gather of whole rows per distinct window, then each channel from its window's rows
            past = np.empty_like(acc)
            for w, cols in self._groups:
                past[:, cols] = self.ring[(end - w) % self.length, idx][:, cols]
        diff = acc - past
        self.acc[idx] = acc
        self.ring[end % self.length, idx] = acc
        total, n = diff[:, : self.width], diff[:, self.width :]
        first = self._first
        t1, nn = total[:, first], n[:, first]
        t2 = total[:, np.minimum(first + 1, total.shape[1] - 1)]
        values = np.where(
            self._is["std"],
            np.sqrt(np.clip((t2 - t1 * t1 / nn) / (nn - 1), 0.0, None)),
            np.where(self._is["mean"], t1 / nn, t1),
        )
        bad = (nn < self._need) | (pos[:, None] < self._full_window)
        values[bad] = np.nan
        return {spec.key: values[:, j] for j, spec in enumerate(self.specs)}


class PandasRolling(Stateful):
    """``pd.Series.rolling(window).sum()`` and ``.std()`` of one series, continued one value at a time.

    pandas (``_libs/window/aggregations.pyx``: ``roll_sum``, ``roll_var``) adds each new value and
    removes the one leaving the window with Kahan-compensated updates (Welford for the variance),
    and returns ``prev_value * nobs`` / 0 while the window holds one repeated value. The state here
    is that recursion's: the result after any number of values equals pandas' on the whole series.
    """

    _state = ("ring", "scalars", "ints")

    _S, _CA, _CR, _PV, _VM, _VS, _VCA, _VCR, _VPV = range(9)
    _NOBS, _NCS, _VNOBS, _VNCS, _COUNT = range(5)

    def __init__(self, window: int) -> None:
        self.window = int(window)
        self.ring = np.full(self.window, np.nan)
        self.scalars = np.zeros(9)
        self.ints = np.zeros(5, dtype=np.int64)

    def update(self, value: float) -> tuple[float, float]:
        """Append ``value`` (NaN allowed); the rolling (sum, std) ending at it."""
        s = [float(v) for v in self.scalars]
        nobs, ncs, vn, vncs, count = (int(v) for v in self.ints)
        w = self.window
        if count == 0:  # pandas seeds prev_value with the first value of the first window
            s[self._PV] = s[self._VPV] = value
        if count >= w:
            old = float(self.ring[count % w])
            if old == old:
                nobs -= 1
                y = -old - s[self._CR]
                t = s[self._S] + y
                s[self._CR] = t - s[self._S] - y
                s[self._S] = t
                vn -= 1
                if vn:
                    prev_mean = s[self._VM] - s[self._VCR]
                    y = old - s[self._VCR]
                    t = y - s[self._VM]
                    s[self._VCR] = t + s[self._VM] - y
                    s[self._VM] = s[self._VM] - t / vn
                    s[self._VS] = s[self._VS] - (old - prev_mean) * (old - s[self._VM])
                else:
                    s[self._VM] = 0.0
                    s[self._VS] = 0.0
        if value == value:
            nobs += 1
            y = value - s[self._CA]
            t = s[self._S] + y
            s[self._CA] = t - s[self._S] - y
            s[self._S] = t
            if value == s[self._PV]:
                ncs += 1
            else:
                ncs = 1
                s[self._PV] = value
            vn += 1
            if value == s[self._VPV]:
                vncs += 1
            else:
                vncs = 1
                s[self._VPV] = value
            prev_mean = s[self._VM] - s[self._VCA]
            y = value - s[self._VCA]
            t = y - s[self._VM]
            s[self._VCA] = t + s[self._VM] - y
            s[self._VM] = s[self._VM] + t / vn
            s[self._VS] = s[self._VS] + (value - prev_mean) * (value - s[self._VM])
        self.ring[count % w] = value
        count += 1
        self.scalars = np.array(s)
        self.ints = np.array([nobs, ncs, vn, vncs, count], dtype=np.int64)
        total = (s[self._PV] * nobs if ncs >= nobs else s[self._S]) if nobs >= w else math.nan
        std = math.nan
        if vn >= w and vn > 1:
            var = 0.0 if vncs >= vn else s[self._VS] / (vn - 1)
            std = math.sqrt(var) if var >= 0 else 0.0
        return total, std
