"""What a trade costs: commission + slippage in basis points and square-root market impact.

The one cost model of every book the project keeps (the training env, the backtest, the paper broker and the
live service all price fills through :func:`execution_costs`), and the causal market inputs it needs
(:func:`rolling_sigma_adv`: the volatility and average dollar volume known at the decision bar).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class CostParams(Protocol):
    """The friction parameters a fill is priced with (``EnvConfig`` has them; so does any small record)."""

    @property
    def cost_bps(self) -> float:
        """Commission + fees per traded notional, basis points."""
        ...

    @property
    def slippage_bps(self) -> float:
        """Half-spread paid on every trade, basis points."""
        ...

    @property
    def impact_coef(self) -> float:
        """Square-root impact coefficient: cost = coef * sigma * sqrt(traded / ADV) * traded."""
        ...


def execution_costs(
    traded: np.ndarray, sigma: np.ndarray, adv_value: np.ndarray, params: CostParams
) -> tuple[np.ndarray, np.ndarray]:
    """(fees, impact) per asset of trading ``traded`` notional (>= 0) at one open.

    fees = traded * (cost_bps + slippage_bps) / 1e4; impact = impact_coef * sigma * sqrt(traded / ADV) * traded
    (Almgren et al. 2005), with ``sigma`` (daily volatility) and ``adv_value`` (average daily dollar volume)
    known at the decision bar. Shapes broadcast (one portfolio (N,) or E portfolios (E, N)).
    """
    fees = traded * (params.cost_bps + params.slippage_bps) * 1e-4
    impact = params.impact_coef * sigma * np.sqrt(traded / adv_value) * traded
    return fees, impact


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over axis 0 (partial windows at the start), NaN-free input."""
    csum = np.cumsum(x, axis=0)
    out = csum.copy()
    out[window:] = csum[window:] - csum[:-window]
    counts = np.minimum(np.arange(1, len(x) + 1), window)[:, None]
    return out / counts


def rolling_sigma_adv(close: np.ndarray, volume: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) trailing daily volatility of simple returns and average dollar volume (floored at 1),
    the inputs of :func:`execution_costs` at each bar (causal: row t uses bars <= t)."""
    returns = np.zeros_like(close)
    returns[1:] = close[1:] / close[:-1] - 1.0
    mean_r = _rolling_mean(returns, window)
    sigma = np.sqrt(np.maximum(_rolling_mean(returns**2, window) - mean_r**2, 0.0))
    adv_value = np.maximum(_rolling_mean(close * volume, window), 1.0)
    return sigma, adv_value
