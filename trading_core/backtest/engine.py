"""Backtest = the training environment driven by a fixed policy over one window of bars.

:func:`run_backtest` steps a :class:`~trading_core.rl.env.TradingEnv` (the same
:class:`~trading_core.rl.engine.PortfolioEngine` the agents are trained on: confidence scaling,
the RiskManager, next-open fills, commission + slippage, square-root impact, the ledger check), so
a backtest and training cannot disagree about execution. The policy sees the observation and the
bar index ``t`` (its decision is made at the close of ``t`` and filled at the open of ``t + 1``).

Alignment of the result (``steps`` = number of decisions):

* ``equity[0]`` is the initial cash at the close of ``start``; ``equity[k]`` the equity at the close
  of ``start + k`` (after the fill of decision ``k - 1``); ``timestamps[k]`` is that bar's time;
* ``returns[k] = equity[k + 1] / equity[k] - 1`` (net of every cost);
* ``turnover[k]``: traded notional / equity at the open of the fill; ``costs[k]``: commission,
  slippage and impact paid at that fill (currency); ``weights[k]``: the weights right after the
  fill (what the risk manager approved), ``exposure[k] = sum(|weights[k]|)``; ``halted[k]``: the risk
  manager's decision was 'halted'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.env import TradingEnv

Policy = Callable[[np.ndarray, int], np.ndarray]
"""(observation, current bar index t) -> action in [-1, 1]^N (fraction of the per-asset limit)."""


@dataclass(frozen=True)
class BacktestResult:
    timestamps: np.ndarray
    """(steps + 1,) datetime64: the bar of each equity mark."""
    equity: np.ndarray
    """(steps + 1,) currency."""
    returns: np.ndarray
    """(steps,) net portfolio return of each bar."""
    turnover: np.ndarray
    """(steps,) traded notional / equity at the fill."""
    costs: np.ndarray
    """(steps,) commission + slippage + impact, currency."""
    exposure: np.ndarray
    """(steps,) gross exposure sum(|w|) after the fill."""
    weights: np.ndarray
    """(steps, N) weights after the fill."""
    halted: np.ndarray
    """(steps,) bool: the risk manager halted trading at this decision."""

    @property
    def steps(self) -> int:
        return len(self.returns)


def run_backtest(data: MarketData, config: EnvConfig, policy: Policy, start: int, stop: int) -> BacktestResult:
    """Run ``policy`` on the decision bars ``[start, stop)`` of ``data`` (one episode of exactly
    ``stop - start`` steps, unless the equity hits 0 first).

    :raises ValueError: when the window does not fit the data (``stop <= n_bars - 1``: the last
        decision needs the next bar to fill; ``start`` at or after the engine's warm-up).
    """
    n_bars = data.n_steps
    if not 0 <= start < stop <= n_bars - 1:
        raise ValueError(
            f"backtest window [{start}, {stop}) must satisfy 0 <= start < stop <= n_bars - 1 = {n_bars - 1} "
            "(the last decision fills at the next bar's open)"
        )
    # model_copy skips validation on purpose: a one-step window (episode_length=1) is a valid backtest.
    env = TradingEnv(data, config.model_copy(update={"episode_length": stop - start}))
    engine = env.engine
    if start < engine.min_start:
        raise ValueError(
            f"backtest start {start} is before the first usable bar {engine.min_start} "
            f"(features from bar {data.first_valid}, market window {config.window}, ADV window {config.adv_window})"
        )
    obs, _ = env.reset(seed=0, options={"start": start})
    equity = [float(engine.equity[0])]
    returns, turnover, costs, weights, halted = [], [], [], [], []
    done = False
    while not done:
        t = int(engine.t[0])
        action = np.asarray(policy(obs, t), dtype=np.float64)
        open_next = data.open[t + 1]
        equity_open = float(engine.cash[0] + (engine.shares[0] * open_next).sum())
        obs, _, terminated, truncated, info = env.step(action)
        weights.append(engine.shares[0] * open_next / equity_open)
        equity.append(info["equity"])
        returns.append(info["portfolio_return"])
        turnover.append(info["turnover"])
        costs.append(info["costs"])
        halted.append(info["risk_decision"] == "halted")
        done = terminated or truncated
    w = np.asarray(weights, dtype=np.float64).reshape(len(returns), data.n_assets)
    return BacktestResult(
        timestamps=np.asarray(data.timestamps[start : start + len(returns) + 1]),
        equity=np.asarray(equity, dtype=np.float64),
        returns=np.asarray(returns, dtype=np.float64),
        turnover=np.asarray(turnover, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
        exposure=np.abs(w).sum(axis=1),
        weights=w,
        halted=np.asarray(halted, dtype=bool),
    )


def concatenate(results: Sequence[BacktestResult]) -> BacktestResult:
    """Chain the test windows of consecutive folds into one out-of-sample curve.

    Returns, turnover, exposure, weights and halts are concatenated; the equity is compounded from
    the first window's initial equity, and each bar's costs are rescaled to that chained equity (the
    same fraction of equity as in its own window). Bars between windows (embargo) are not traded.
    """
    if not results:
        raise ValueError("nothing to concatenate: no backtest results")
    initial = float(results[0].equity[0])
    returns = np.concatenate([r.returns for r in results])
    equity = initial * np.concatenate([[1.0], np.cumprod(1.0 + returns)])
    cost_share = np.concatenate([r.costs / r.equity[:-1] for r in results])
    return BacktestResult(
        timestamps=np.concatenate([results[0].timestamps[:1], *[r.timestamps[1:] for r in results]]),
        equity=equity,
        returns=returns,
        turnover=np.concatenate([r.turnover for r in results]),
        costs=cost_share * equity[:-1],
        exposure=np.concatenate([r.exposure for r in results]),
        weights=np.concatenate([r.weights for r in results]),
        halted=np.concatenate([r.halted for r in results]),
    )
