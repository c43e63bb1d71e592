"""1-bar Value at Risk of many portfolios at once, from trailing windows of asset returns.

:class:`ReturnsHistory` holds the asset returns ``R`` (T bars x N assets, simple returns) and
answers ``var(weights, t, confidence, method)`` for a batch of E portfolios, each at its own time
index. The VaR at ``t`` uses the *window* ``R[t-L+1 .. t]`` (L = ``lookback``, fewer rows near the
start) and never a later row, so a policy deciding at the close of bar ``t`` cannot see the future.

Missing values: a NaN return counts as 0 (the asset did not move / was not held); a window row whose
returns are *all* NaN (before the data starts, a market holiday) is not a bar at all and is
dropped. ``n_t`` is the number of usable rows in the window; with ``n_t < 2`` there is no evidence
of risk and the VaR is defined as 0.

With ``p = X w`` the portfolio returns over the window's usable rows X (n_t x N):

* parametric (Gaussian): ``VaR = z_c * sqrt(w' S_t w) - w' mu_t`` with ``mu_t`` the window mean,
  ``S_t`` the sample covariance (ddof = 1) and ``z_c`` the standard normal c-quantile;
* historical: ``VaR = -quantile_{1-c}(p)``, the empirical quantile with linear interpolation
  between order statistics (``np.quantile``'s default method).

Both are positively homogeneous of degree 1: ``VaR(s w) = s VaR(w)`` for ``s > 0``. Scaling a
portfolio by ``min(1, limit / VaR(w))`` therefore brings it exactly to the limit.

Cost. With precomputation (default while ``T*N*N*8`` bytes <= ``max_precompute_bytes``, 256 MiB:
T = 5000 bars of N = 30 assets take 36 MB) the constructor stores ``mu_t`` and ``S_t`` for every t
(O(T L N^2) once, in chunks), and the parametric VaR is one gather of E covariance matrices and a
batched mat-vec: O(E N^2). Without it, the parametric VaR gathers the E windows and computes the
mean and variance of each portfolio's returns: O(E L N), no N x N matrix at all. The historical
VaR always gathers the windows, O(E L N), and sorts E rows of L portfolio returns, O(E L log L).
"""

from __future__ import annotations

from functools import lru_cache
from statistics import NormalDist

import numpy as np

from trading_core.risk.limits import VAR_METHODS

DEFAULT_MAX_PRECOMPUTE_BYTES = 256 * 2**20
"""Above this size of the per-bar covariance array (T*N*N float64), moments are computed on demand."""

_CHUNK_BYTES = 32 * 2**20  # working memory of one precomputation chunk


@lru_cache(maxsize=64)
def normal_quantile(confidence: float) -> float:
    """Standard normal quantile z_c (2.326... at 0.99)."""
    return NormalDist().inv_cdf(confidence)


class ReturnsHistory:
    """Asset returns (T, N) with the trailing windows of every bar prepared for batched VaR.

    :param returns: simple returns, one row per bar, one column per asset; NaN = missing (see module doc).
    :param lookback: window length L in bars (>= 2).
    :param precompute: store mean vectors and covariance matrices of every window (None: when they fit
        in ``max_precompute_bytes``). Only the parametric VaR uses them.
    """

    def __init__(
        self,
        returns: np.ndarray,
        lookback: int,
        *,
        precompute: bool | None = None,
        max_precompute_bytes: int = DEFAULT_MAX_PRECOMPUTE_BYTES,
    ) -> None:
        data = np.array(returns, dtype=np.float64)  # a private copy: later edits by the caller change nothing
        if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 1:
            raise ValueError(f"returns must be a non-empty (T bars, N assets) array, got shape {data.shape}")
        if np.isinf(data).any():
            row = int(np.argwhere(np.isinf(data))[0, 0])
            raise ValueError(f"returns must be finite or NaN (missing); row {row} holds an infinite value")
        if isinstance(lookback, bool) or not isinstance(lookback, int | np.integer) or lookback < 2:
            raise ValueError(f"lookback must be an int >= 2, got {lookback!r}")
        n_bars, n_assets = data.shape
        self.lookback = int(lookback)
        self.n_bars = int(n_bars)
        self.n_assets = int(n_assets)
        data.setflags(write=False)
        self.returns = data
        """The returns as given (read-only copy)."""

        pad = self.lookback - 1  # the window of bar t is padded rows t .. t+L-1
        valid = ~np.isnan(data).all(axis=1)
        self._valid_pad = np.concatenate([np.zeros(pad, dtype=bool), valid])
        self._padded = np.concatenate([np.zeros((pad, n_assets)), np.nan_to_num(data, nan=0.0)])
        self._offsets = np.arange(self.lookback)
        csum = np.concatenate([[0], np.cumsum(self._valid_pad, dtype=np.int64)])
        self.counts = csum[self.lookback :] - csum[: self.n_bars]
        """Usable rows n_t in the window of every bar t, shape (T,)."""

        if precompute is None:
            precompute = self.n_bars * n_assets * n_assets * 8 <= max_precompute_bytes
        self._mu: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        if precompute:
            self._mu, self._cov = self._moments_all()

    @classmethod
    def from_returns(cls, returns: np.ndarray, lookback: int, *, precompute: bool | None = None) -> ReturnsHistory:
        """Build the history of ``returns`` (T, N) with windows of ``lookback`` bars."""
        return cls(returns, lookback, precompute=precompute)

    @classmethod
    def from_prices(cls, prices: np.ndarray, lookback: int, *, precompute: bool | None = None) -> ReturnsHistory:
        """Simple returns ``P_t / P_{t-1} - 1`` of a (T, N) price array; bar 0 (no previous price) is all NaN."""
        p = np.asarray(prices, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"prices must be a (T bars, N assets) array, got shape {p.shape}")
        returns = np.full(p.shape, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            returns[1:] = p[1:] / p[:-1] - 1.0
        returns[~np.isfinite(returns)] = np.nan
        return cls(returns, lookback, precompute=precompute)

    @property
    def precomputed(self) -> bool:
        """True when the per-bar moments are stored (parametric VaR in O(E N^2))."""
        return self._cov is not None

    def windows(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Windows of bars ``t`` (E,): returns (E, L, N) with NaN -> 0, and usable-row mask (E, L).

        Unusable rows (before bar 0, all-NaN bars) are zero rows with mask False.
        """
        idx = self.check_t(t)[:, None] + self._offsets
        return self._padded[idx], self._valid_pad[idx]

    def moments(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window mean (E, N) and sample covariance (E, N, N) at bars ``t``; zeros where n_t < 2."""
        t = self.check_t(t)
        if self._mu is not None and self._cov is not None:
            return self._mu[t], self._cov[t]
        idx = t[:, None] + self._offsets
        return _window_moments(self._padded[idx], self._valid_pad[idx])

    def var(self, weights: np.ndarray, t: np.ndarray, confidence: float, method: str) -> np.ndarray:
        """1-bar VaR (positive = loss, fraction of equity) of portfolios ``weights`` (E, N) at bars ``t`` (E,).

        Rows whose window has fewer than 2 usable bars get 0 (no evidence). The VaR may be negative
        when the window mean return exceeds the loss quantile (a portfolio that only gained).
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != self.n_assets:
            raise ValueError(f"weights must have shape (E, {self.n_assets}), got {w.shape}")
        t = self.check_t(t, w.shape[0])
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        if method not in VAR_METHODS:
            raise ValueError(f"VaR method must be one of {VAR_METHODS}, got {method!r}")
        return self.var_unchecked(w, t, confidence, method)

    def var_unchecked(self, weights: np.ndarray, t: np.ndarray, confidence: float, method: str) -> np.ndarray:
        """:meth:`var` without its argument checks (float64 (E, N) weights, valid int bars ``t``): the hot path."""
        w, t = weights, np.asarray(t)
        if method == "parametric":
            return self._parametric(w, t, normal_quantile(float(confidence)))
        return self._historical(w, t, 1.0 - float(confidence))

    def check_t(self, t: np.ndarray, size: int | None = None) -> np.ndarray:
        """``t`` as an array, checked: 1-d integer bar indices in [0, T), of length ``size`` if given."""
        t = np.asarray(t)
        if t.ndim != 1 or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"t must be a 1-d integer array of bar indices, got {t.dtype} with shape {t.shape}")
        if size is not None and t.shape != (size,):
            raise ValueError(f"t must have shape ({size},) (one bar per portfolio), got {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.n_bars):
            raise ValueError(f"bar indices must be in [0, {self.n_bars}), got min {t.min()} max {t.max()}")
        return t

    # -- internals ---------------------------------------------------------------------------------

    def _parametric(self, w: np.ndarray, t: np.ndarray, z: float) -> np.ndarray:
        if self._mu is not None and self._cov is not None:
            sw = np.matmul(self._cov[t], w[:, :, None])[:, :, 0]
            quad = np.einsum("en,en->e", w, sw)
            mean = np.einsum("en,en->e", w, self._mu[t])
            out: np.ndarray = z * np.sqrt(np.maximum(quad, 0.0)) - mean
            return out  # rows with n_t < 2 have mu = 0 and S = 0 stored, hence VaR 0
        idx = t[:, None] + self._offsets
        valid = self._valid_pad[idx]
        pnl = np.matmul(self._padded[idx], w[:, :, None])[:, :, 0]  # (E, L); unusable rows are 0
        n = self.counts[t]
        mean = pnl.sum(axis=1) / np.maximum(n, 1)
        dev = (pnl - mean[:, None]) * valid
        sd = np.sqrt(np.einsum("el,el->e", dev, dev) / np.maximum(n - 1, 1))
        return np.where(n >= 2, z * sd - mean, 0.0)

    def _historical(self, w: np.ndarray, t: np.ndarray, q: float) -> np.ndarray:
        idx = t[:, None] + self._offsets
        pnl = np.matmul(self._padded[idx], w[:, :, None])[:, :, 0]
        pnl[~self._valid_pad[idx]] = np.inf  # unusable rows sort last, beyond index n_t - 1
        pnl.sort(axis=1)
        n = self.counts[t]
        ok = n >= 2
        pos = q * (np.maximum(n, 2) - 1)  # np.quantile's "linear" method: virtual index q (n - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(n, 2) - 1)
        gamma = pos - lo
        a = np.where(ok, np.take_along_axis(pnl, lo[:, None], axis=1)[:, 0], 0.0)
        b = np.where(ok, np.take_along_axis(pnl, hi[:, None], axis=1)[:, 0], 0.0)
        diff = b - a
        value = np.where(gamma >= 0.5, b - diff * (1.0 - gamma), a + diff * gamma)  # numpy's _lerp
        return np.where(ok, -value, 0.0)

    def _moments_all(self) -> tuple[np.ndarray, np.ndarray]:
        n_assets, lb = self.n_assets, self.lookback
        view = np.lib.stride_tricks.sliding_window_view(self._padded, lb, axis=0)  # (T, N, L), no copy
        valid = np.lib.stride_tricks.sliding_window_view(self._valid_pad, lb)  # (T, L)
        mu = np.empty((self.n_bars, n_assets))
        cov = np.empty((self.n_bars, n_assets, n_assets))
        step = max(1, _CHUNK_BYTES // (lb * n_assets * 8 * 2))
        for start in range(0, self.n_bars, step):
            stop = min(start + step, self.n_bars)
            windows = np.swapaxes(view[start:stop], 1, 2)  # (B, L, N)
            mu[start:stop], cov[start:stop] = _window_moments(windows, valid[start:stop])
        return mu, cov


def _window_moments(windows: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (B, N) and covariance (B, N, N), ddof 1, over the usable rows of windows (B, L, N); 0 if n < 2."""
    n = valid.sum(axis=1)
    few = n < 2
    mu = windows.sum(axis=1) / np.maximum(n, 1)[:, None]  # unusable rows are zero rows
    centred = (windows - mu[:, None, :]) * valid[:, :, None]
    cov = np.matmul(np.swapaxes(centred, 1, 2), centred) / np.maximum(n - 1, 1)[:, None, None]
    mu[few] = 0.0
    cov[few] = 0.0
    return mu, cov
