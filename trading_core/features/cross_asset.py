"""Cross-asset regime features, computed after all symbols are merged.

* the equal-weight universe return (mean 1-bar log return of the symbols trading at t);
* each symbol's rolling correlation with it, and the universe's average pairwise correlation;
* FinRL's turbulence index (Kritzman & Li 2010): the Mahalanobis distance of the returns at t
  from their mean over the previous ``window`` bars, with the pseudo-inverse of the covariance
  of those bars, over the assets with a complete window and a return at t.

FinRL loops over dates calling ``np.linalg.pinv`` on an N x N covariance (N = 505 for the S&P
500: minutes). Here, when assets outnumber window bars, the same number comes from the n x n Gram
matrix of the window (n = 252), whose blocks are sliced out of one product computed once:

    X = centered window returns (n x N), v = r_t - mean,  C = X'X / (n - 1)
    v' pinv(C) v = (n - 1) * || pinv(X X') X v ||^2

and ``pinv(XX')`` acts on the centered subspace as ``inv(XX' + 11'/n)`` (X's columns sum to 0),
so one batched linear solve per date replaces the SVD. With fewer assets than bars the covariance is
inverted directly. Differences from FinRL, on purpose: NaN (not 0) before the first full window,
no zeroing of the first two positive values, simple returns per symbol's own previous bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trading_core.features.config import IndicatorConfig
from trading_core.features.panel import Panel

Columns = dict[str, np.ndarray]

_CHUNK = 128


def pivot_returns(panel: Panel, log_ret: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps T, codes per row into the symbol axis, T x N matrix of returns with NaN gaps)."""
    times, row_time = np.unique(panel.timestamp, return_inverse=True)
    sym_codes = np.repeat(np.arange(panel.n_symbols), np.diff(panel.starts))
    matrix = np.full((len(times), panel.n_symbols), np.nan)
    matrix[row_time, sym_codes] = log_ret
    return times, row_time, matrix


def _market_return(matrix: np.ndarray) -> np.ndarray:
    counts = np.isfinite(matrix).sum(axis=1)
    sums = np.nansum(matrix, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def average_correlation(matrix: np.ndarray, window: int) -> np.ndarray:
    """Mean pairwise correlation over each trailing window, assets with a complete window only.

    sum_ij corr_ij = ||sum_j x_j / s_j||^2 / (n - 1) for centered columns x_j with std s_j, so the
    N x N matrix is never formed.
    """
    t_len, _ = matrix.shape
    out = np.full(t_len, np.nan)
    finite = np.isfinite(matrix)
    complete = pd.DataFrame(finite).rolling(window).sum().to_numpy() == window
    for t in range(window - 1, t_len):
        cols = np.flatnonzero(complete[t])
        if len(cols) < 2:
            continue
        block = matrix[t - window + 1 : t + 1, cols]
        centered = block - block.mean(axis=0)
        std = centered.std(axis=0, ddof=1)
        keep = std > 0
        if keep.sum() < 2:
            continue
        p = int(keep.sum())
        total = ((centered[:, keep] / std[keep]).sum(axis=1) ** 2).sum() / (window - 1)
        out[t] = (total - p) / (p * (p - 1))
    return out


def _eligibility(matrix: np.ndarray, window: int) -> np.ndarray:
    """T x N: asset has returns on all ``window`` bars before t and at t."""
    finite = np.isfinite(matrix)
    counts = pd.DataFrame(finite).rolling(window).sum().shift(1).to_numpy()
    return (counts == window) & finite


def _turbulence_primal(r: np.ndarray, dates: np.ndarray, window: int) -> np.ndarray:
    """Few assets (N < n - 1): invert the N x N covariance (pinv when singular)."""
    out = np.empty(len(dates))
    for i, t in enumerate(dates):
        hist = r[t - window : t]
        mean = hist.mean(axis=0)
        cov = np.cov(hist, rowvar=False, ddof=1).reshape(r.shape[1], r.shape[1])
        v = r[t] - mean
        try:
            out[i] = v @ np.linalg.solve(cov, v)
        except np.linalg.LinAlgError:
            out[i] = v @ np.linalg.pinv(cov) @ v
    return out


def _span_chunks(dates: np.ndarray, span: int) -> list[np.ndarray]:
    """Split sorted dates into runs covering at most ``span`` consecutive dates each."""
    chunks: list[np.ndarray] = []
    start = 0
    for i in range(1, len(dates) + 1):
        if i == len(dates) or dates[i] - dates[start] >= span:
            chunks.append(dates[start:i])
            start = i
    return chunks


def _turbulence_dual(r: np.ndarray, dates: np.ndarray, window: int) -> np.ndarray:
    """Many assets (N >= n - 1): n x n Gram blocks of one product per chunk, batched solves."""
    n = window
    ones_n = np.full((n, n), 1.0 / n)
    idx = np.arange(n)
    out: list[np.ndarray] = []
    for chunk_dates in _span_chunks(dates, _CHUNK):
        lo = int(chunk_dates[0]) - n
        span = r[lo : int(chunk_dates[-1]) + 1]
        gram = span @ span.T  # every window block and every cross product with day t
        chunk = chunk_dates - lo
        rows = chunk[:, None] - n + idx[None, :]  # (B, n) window rows of each date
        k_w = gram[rows[:, :, None], rows[:, None, :]]  # (B, n, n) raw Gram of the window
        k_t = gram[rows, chunk[:, None]]  # (B, n) window rows . today's returns
        row_mean = k_w.mean(axis=2, keepdims=True)
        col_mean = k_w.mean(axis=1, keepdims=True)
        g = k_w - row_mean - col_mean + k_w.mean(axis=(1, 2), keepdims=True)  # H K H
        xv = k_t - row_mean[:, :, 0]
        xv -= xv.mean(axis=1, keepdims=True)  # H (k_t - K 1/n) = X v
        try:
            z = np.linalg.solve(g + ones_n, xv[:, :, None])[:, :, 0]  # (G + J)^-1 X v = pinv(G) X v
        except np.linalg.LinAlgError:  # degenerate window (e.g. identical assets): exact pinv
            z = np.stack([np.linalg.pinv(g_i, hermitian=True) @ x_i for g_i, x_i in zip(g, xv, strict=True)])
        out.append((n - 1) * (z**2).sum(axis=1))
    return np.concatenate(out)


def turbulence(matrix: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(turbulence per timestamp, number of assets used); NaN where no asset has a full window.

    ``matrix`` holds simple returns (T x N, NaN where an asset has no bar).
    """
    t_len = len(matrix)
    values = np.full(t_len, np.nan)
    used = np.zeros(t_len, dtype=np.int64)
    if t_len <= window:
        return values, used
    eligible = _eligibility(matrix, window)
    eligible[:window] = False
    # Dates with the same eligible set share one computation (usually a handful of sets).
    keys = np.packbits(eligible, axis=1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    # Many small factorisations: BLAS threads only add synchronisation (10x slower when cores are busy).
    with threadpool_limits(limits=1, user_api="blas"):
        for g in np.unique(group):
            dates = np.flatnonzero(group == g)
            cols = np.flatnonzero(eligible[dates[0]])
            if len(cols) == 0:
                continue
            r = np.nan_to_num(matrix[:, cols])  # rows used by these dates are complete on these columns
            compute = _turbulence_primal if len(cols) < window - 1 else _turbulence_dual
            values[dates] = compute(r, dates, window)
            used[dates] = len(cols)
    return values, used


def cross_asset_features(panel: Panel, log_ret: np.ndarray, c: IndicatorConfig) -> Columns:
    """Universe-level regime features broadcast to every row, and the per-symbol market correlation."""
    _, row_time, matrix = pivot_returns(panel, log_ret)
    market = _market_return(matrix)
    market_s = pd.Series(market)
    mkt_ret = market_s.rolling(21).sum().to_numpy()
    mkt_vol = market_s.rolling(21).std().to_numpy()
    out: Columns = {
        "mkt_ret_21": mkt_ret[row_time],
        "mkt_rvol_21": mkt_vol[row_time],
        f"corr_mkt_{c.corr_window}": panel.rolling_corr(log_ret, market[row_time], c.corr_window),
    }
    if panel.n_symbols >= 2:
        out[f"avg_corr_{c.corr_window}"] = average_correlation(matrix, c.corr_window)[row_time]
    turb, used = turbulence(np.expm1(matrix), c.turbulence_window)
    out["turbulence"] = turb[row_time]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_norm = np.log(turb / used)
    out["turbulence_log_norm"] = np.where(np.isfinite(log_norm), log_norm, np.nan)[row_time]
    return out
