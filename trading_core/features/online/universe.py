"""Cross-asset regime features, one bar time at a time: the online twin of ``cross_asset.py``.

The batch pivots the universe's 1-bar log returns into a (bar times x symbols) matrix with NaN where
a symbol has no bar (or no return yet); this state keeps the last rows of that matrix in a ring and
computes each row's features from them, with the batch's own arithmetic on arrays of the batch's
shape and layout:

* market return = mean of the finite returns of the row; ``mkt_ret_21`` / ``mkt_rvol_21`` continue
  pandas' rolling sum / std of it (:class:`PandasRolling`);
* ``corr_mkt_W`` per symbol over its own bars (as ``Panel.rolling_corr``: cumulative sums centred on
  the first bar where both the symbol's and the market's return are finite);
* ``avg_corr_W`` from the last W rows, over the symbols whose W returns are all finite;
* turbulence from the last W+1 rows, over the symbols with a return on each of the W rows before t
  and at t (FinRL / Kritzman-Li, inverted as the batch does: covariance when few assets, n x n Gram
  blocks when many).

A symbol missing at a bar time has NaN in that row, exactly as in the batch's matrix: it drops out
of the market mean at that time, out of ``avg_corr`` until W complete rows include it again, and out
of turbulence until it has W+1 consecutive returns again.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController

from trading_core.features.config import IndicatorConfig
from trading_core.features.online.base import Stateful
from trading_core.features.online.windows import PandasRolling, RollingSet, RollingSpec

Columns = dict[str, np.ndarray]

_BLAS: ThreadpoolController | None = None


def _blas() -> ThreadpoolController:
    """One controller per process: building one scans the loaded libraries (milliseconds)."""
    global _BLAS
    if _BLAS is None:
        _BLAS = ThreadpoolController()
    return _BLAS


_MARKET_WINDOW = 21
"""The batch's fixed window of mkt_ret_21 / mkt_rvol_21 (cross_asset.cross_asset_features)."""


def average_correlation_row(block: np.ndarray, window: int) -> float:
    """``cross_asset.average_correlation`` for one date: ``block`` = (window x complete assets)."""
    if block.shape[1] < 2:
        return np.nan
    centered = block - block.mean(axis=0)
    std = centered.std(axis=0, ddof=1)
    keep = std > 0
    if keep.sum() < 2:
        return np.nan
    p = int(keep.sum())
    total = ((centered[:, keep] / std[keep]).sum(axis=1) ** 2).sum() / (window - 1)
    return float((total - p) / (p * (p - 1)))


def turbulence_row(r: np.ndarray, window: int) -> float:
    """Turbulence of the last row of ``r`` ((window + 1) x eligible assets, simple returns) from the
    ``window`` rows before it: the arithmetic of ``cross_asset._turbulence_primal`` /
    ``_turbulence_dual`` for a single date (copied, those are private to the batch module)."""
    n, p = window, r.shape[1]
    if p < window - 1:  # few assets: the p x p covariance
        hist = r[:n]
        mean = hist.mean(axis=0)
        cov = np.cov(hist, rowvar=False, ddof=1).reshape(p, p)
        v = r[n] - mean
        try:
            return float(v @ np.linalg.solve(cov, v))
        except np.linalg.LinAlgError:
            return float(v @ np.linalg.pinv(cov) @ v)
    ones_n = np.full((n, n), 1.0 / n)
    gram = r @ r.T
    k_w = gram[None, :n, :n]
    k_t = gram[None, :n, n]
    row_mean = k_w.mean(axis=2, keepdims=True)
    col_mean = k_w.mean(axis=1, keepdims=True)
    g = k_w - row_mean - col_mean + k_w.mean(axis=(1, 2), keepdims=True)
    xv = k_t - row_mean[:, :, 0]
    xv -= xv.mean(axis=1, keepdims=True)
    try:
        z = np.linalg.solve(g + ones_n, xv[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        z = (np.linalg.pinv(g[0], hermitian=True) @ xv[0])[None, :]
    return float(((n - 1) * (z**2).sum(axis=1))[0])


class UniverseFeatures(Stateful):
    """The regime group's cross-asset state over a fixed, sorted universe of ``n`` symbols."""

    _state = ("rows", "log_rows", "simple_rows", "run", "corr_anchor")
    _children = ("market", "corr")

    def __init__(self, config: IndicatorConfig, n: int) -> None:
        self.c = config
        self.n = n
        self.cw, self.tw = config.corr_window, config.turbulence_window
        self.rows = np.zeros((), dtype=np.int64)
        """Bar times seen (the batch matrix's row index of the next row)."""
        self.log_rows = np.full((self.cw, n), np.nan)
        self.simple_rows = np.full((self.tw + 1, n), np.nan)
        self.run = np.zeros(n, dtype=np.int64)
        """Consecutive bar times, up to the latest, on which each symbol had a finite return."""
        self.corr_anchor = np.full((n, 2), np.nan)
        self.market = PandasRolling(_MARKET_WINDOW)
        self.corr = RollingSet([RollingSpec(k, "sum", self.cw) for k in ("x", "y", "xx", "yy", "xy")], n)

    def feature_names(self) -> list[str]:
        names = ["mkt_ret_21", "mkt_rvol_21", f"corr_mkt_{self.cw}"]
        names += [f"avg_corr_{self.cw}"] if self.n >= 2 else []
        return names + ["turbulence", "turbulence_log_norm"]

    def update(self, idx: np.ndarray, pos: np.ndarray, r1: np.ndarray) -> Columns:
        """Add the bar time at which the symbols ``idx`` (bar ``pos`` of each) have log returns ``r1``."""
        t = int(self.rows)
        row = np.full(self.n, np.nan)
        row[idx] = r1
        finite = np.isfinite(row)
        count = int(finite.sum())
        market = float(np.nansum(row) / max(count, 1)) if count > 0 else np.nan
        mkt_ret, mkt_vol = self.market.update(market)
        self.run = np.where(finite, self.run + 1, 0)
        self.log_rows[t % self.cw] = row
        self.simple_rows[t % (self.tw + 1)] = np.expm1(row)
        self.rows = np.asarray(t + 1, dtype=np.int64)
        m = len(idx)
        out: Columns = {
            "mkt_ret_21": np.full(m, mkt_ret),
            "mkt_rvol_21": np.full(m, mkt_vol),
            f"corr_mkt_{self.cw}": self._corr(idx, pos, r1, market),
        }
        if self.n >= 2:
            out[f"avg_corr_{self.cw}"] = np.full(m, self._avg_corr(t))
        turb, used = self._turbulence(t)
        out["turbulence"] = np.full(m, turb)
        log_norm = np.log(np.float64(turb) / np.int64(used))
        out["turbulence_log_norm"] = np.full(m, log_norm if np.isfinite(log_norm) else np.nan)
        return out

    def _corr(self, idx: np.ndarray, pos: np.ndarray, x: np.ndarray, market: float) -> np.ndarray:
        y = np.full(len(idx), market)
        both = np.isfinite(x) & np.isfinite(y)
        anchor = self.corr_anchor[idx]
        first = both & np.isnan(anchor[:, 0])
        anchor[first, 0], anchor[first, 1] = x[first], y[first]
        self.corr_anchor[idx] = anchor
        xc = np.where(both, x, np.nan) - anchor[:, 0]
        yc = np.where(both, y, np.nan) - anchor[:, 1]
        sums = self.corr.update(idx, pos, {"x": xc, "y": yc, "xx": xc * xc, "yy": yc * yc, "xy": xc * yc})
        sums = {k.split(":")[0]: v for k, v in sums.items()}
        sx, sy = sums["x"], sums["y"]
        n = float(self.cw)  # every unmasked window holds exactly cw pairs
        cov = sums["xy"] - sx * sy / n
        var_x, var_y = sums["xx"] - sx * sx / n, sums["yy"] - sy * sy / n
        corr = cov / np.sqrt(var_x * var_y)
        corr[~(var_x > 0) | ~(var_y > 0)] = np.nan
        return np.clip(corr, -1.0, 1.0)

    def _ordered(self, ring: np.ndarray, t: int, length: int) -> np.ndarray:
        """The last ``length`` rows of a ring, oldest first (a C-contiguous copy, like a batch slice)."""
        size = len(ring)
        return ring[(np.arange(t - length + 1, t + 1)) % size]

    def _avg_corr(self, t: int) -> float:
        w = self.cw
        if t < w - 1:
            return np.nan
        cols = np.flatnonzero(self.run >= w)
        if len(cols) < 2:
            return np.nan
        return average_correlation_row(self._ordered(self.log_rows, t, w)[:, cols], w)

    def _turbulence(self, t: int) -> tuple[float, int]:
        w = self.tw
        cols = np.flatnonzero(self.run >= w + 1)
        if t < w or len(cols) == 0:
            return np.nan, 0
        r = self._ordered(self.simple_rows, t, w + 1)[:, cols]
        with _blas().limit(limits=1, user_api="blas"):  # as the batch: small factorisations, one thread
            return turbulence_row(r, w), len(cols)
