"""The portfolio engine behind both environments: E portfolios stepped at once with NumPy.

One step, for every portfolio e at its own bar t (decision at the close of t):

1. action in [-1, 1]^N -> confidence scaling (``a * min(slope * confidence, 1)``) -> proposed
   weights ``a * max_position`` -> the RiskManager (limits, VaR, drawdown breaker) -> weights;
2. the execution kernel (:func:`trading_core.execution.execute`, shared with the paper broker and
   the live service): fill at the **open of t+1**, trading to the weights of the equity valued at
   that open, paying commission + slippage (bps of traded notional) and square-root impact
   ``impact_coef * sigma_t * sqrt(traded / ADV_t) * traded`` (sigma, ADV known at t);
3. mark to the close of t+1; the equity is checked against an independent P&L ledger
   (equity_{t+1} = equity_t + overnight P&L of the old position + intraday P&L of the new one
   - costs) and must equal cash + sum(shares x close): the accounting identity, every step;
4. reward (see :class:`~trading_core.rl.config.RewardWeights`) and the observation at t+1.

:class:`TradingEnv` is this engine with E = 1, :class:`VecTradingEnv` with E = n: the same code,
so the vectorised environment cannot drift from the single one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trading_core.execution import (  # AccountingError, execution_costs, rolling_sigma_adv: re-exported here
    AccountingError,
    Books,
    Execution,
    execute,
    execution_costs,
    rolling_sigma_adv,
    unbalanced,
)
from trading_core.risk import ReturnsHistory, RiskManager, confidence_scale
from trading_core.risk.limits import RiskLimits
from trading_core.risk.manager import BatchDecision
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData

__all__ = [
    "AccountingError",
    "Decision",
    "PortfolioEngine",
    "StepResult",
    "execution_costs",
    "rolling_sigma_adv",
]


class Decision(NamedTuple):
    """What the engine decided at a bar, before any fill."""

    action: np.ndarray
    """(E, N) the policy's action clipped to [-1, 1]."""
    scaled: np.ndarray
    """(E, N) after confidence scaling (equal to ``action`` when scaling is off)."""
    proposed: np.ndarray
    """(E, N) proposed weights ``scaled * max_position``."""
    risk: BatchDecision
    """The risk manager's verdict: final weights, decision code, reasons, VaR."""


@dataclass
class StepResult:
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    equity: np.ndarray
    decision: np.ndarray
    reasons: np.ndarray
    costs: np.ndarray
    impact: np.ndarray
    turnover: np.ndarray
    portfolio_return: np.ndarray
    fill: Execution
    """The execution kernel's fill, costs, books and ledger terms of this step (per portfolio and asset); its
    books are the engine's state arrays, which a reset of a finished portfolio overwrites in place."""


class PortfolioEngine:
    def __init__(self, data: MarketData, config: EnvConfig, n_envs: int) -> None:
        if config.mode == "single" and data.n_assets != 1:
            raise ValueError(f"mode 'single' needs data of exactly one asset, got {data.n_assets}")
        if config.confidence_scaling and data.forecast is None:
            raise ValueError("confidence_scaling needs forecaster outputs in the data (or set it off: pure RL)")
        if "forecast" in config.blocks and data.forecast is None:
            raise ValueError("the 'forecast' observation block needs forecaster outputs in the data")
        self.data, self.cfg, self.n = data, config, n_envs
        limits: RiskLimits = config.risk
        self.limits = limits
        close = data.close
        returns = np.zeros_like(close)
        returns[1:] = close[1:] / close[:-1] - 1.0
        self.returns = returns
        self.history = ReturnsHistory.from_returns(returns, limits.var_lookback)
        w = config.adv_window
        self.sigma, self.adv_value = rolling_sigma_adv(close, data.volume, w)
        self.market_vol = self.sigma.mean(axis=1)
        self.static_obs = self._static_observation()
        self.min_start = max(data.first_valid, config.window - 1, w, 1)
        if self.min_start >= data.n_steps - 2:
            raise ValueError(f"the data has {data.n_steps} bars: too few after a warm-up of {self.min_start}")
        self.risk = RiskManager(limits, n_envs)
        n, a = n_envs, data.n_assets
        self.t = np.zeros(n, dtype=np.int64)
        self.start = np.zeros(n, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self.shares = np.zeros((n, a))
        self.entry_price = np.zeros((n, a))
        self.cash = np.zeros(n)
        self.equity = np.zeros(n)
        self.peak = np.zeros(n)
        self.last_var = np.zeros(n)
        self.halted = np.zeros(n)
        self._rows = np.arange(n)

    # ------------------------------------------------------------------------------ observation

    def _static_observation(self) -> np.ndarray:
        """(T, D_static) float32: the blocks that depend on the bar only, precomputed once."""
        d, cfg = self.data, self.cfg
        t_len = d.n_steps
        parts: list[np.ndarray] = []

        def group(name: str) -> np.ndarray:
            idx = list(d.feature_groups.get(name, ()))
            return d.features[:, :, idx].reshape(t_len, -1)

        if "market" in cfg.blocks:
            current = group("market")
            for lag in range(cfg.window):  # oldest first
                shifted = np.zeros_like(current)
                k = cfg.window - 1 - lag
                shifted[k:] = current[: t_len - k] if k else current
                parts.append(shifted)
        if "technical" in cfg.blocks:
            parts.append(group("technical"))
        if "regime" in cfg.blocks:
            parts.append(group("regime"))
        if "forecast" in cfg.blocks and d.forecast is not None:
            parts.append(d.forecast.reshape(t_len, -1))
        if "execution" in cfg.blocks:
            parts.append(group("microstructure"))
            log_adv = np.log(self.adv_value)
            parts.append(log_adv - log_adv.mean(axis=1, keepdims=True))  # relative liquidity
        if not parts:
            return np.zeros((t_len, 0), dtype=np.float32)
        return np.concatenate(parts, axis=1).astype(np.float32)

    @property
    def obs_dim(self) -> int:
        a = self.data.n_assets
        dynamic = (2 * a + 1 if "portfolio" in self.cfg.blocks else 0) + (3 if "risk" in self.cfg.blocks else 0)
        dynamic += 1 if "execution" in self.cfg.blocks else 0
        return int(self.static_obs.shape[1] + dynamic)

    def observe(self) -> np.ndarray:
        parts = [self.static_obs[self.t]]
        blocks = self.cfg.blocks
        if "portfolio" in blocks:
            px = self.data.close[self.t]
            value = self.shares * px
            eq = self.equity[:, None]
            parts += [value / eq, self.shares * (px - self.entry_price) / eq, (self.cash / self.equity)[:, None]]
        if "risk" in blocks:
            dd = 1.0 - self.equity / self.peak
            parts.append(np.stack([self.last_var, dd, self.halted], axis=1))
        if "execution" in blocks:
            parts.append(((self.t - self.start) / np.maximum(self.length, 1))[:, None])
        obs = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return np.clip(obs, -self.cfg.obs_clip, self.cfg.obs_clip).astype(np.float32)

    # ---------------------------------------------------------------------------------- episodes

    def episode_bounds(self) -> tuple[int, int]:
        """(lowest, highest) start bar of an episode."""
        last = self.data.n_steps - 2  # the last decision needs bar t+1 to fill
        if self.cfg.episode_length is None:
            return self.min_start, self.min_start
        highest = max(self.min_start, last - self.cfg.episode_length + 1)
        return self.min_start, highest

    def reset(self, mask: np.ndarray, starts: np.ndarray) -> None:
        last = self.data.n_steps - 2
        self.t[mask] = starts
        self.start[mask] = starts
        length = last - starts + 1
        if self.cfg.episode_length is not None:
            length = np.minimum(length, self.cfg.episode_length)
        self.length[mask] = length
        self.shares[mask] = 0.0
        self.entry_price[mask] = 0.0
        self.cash[mask] = self.cfg.initial_cash
        self.equity[mask] = self.cfg.initial_cash
        self.peak[mask] = self.cfg.initial_cash
        self.last_var[mask] = 0.0
        self.halted[mask] = 0.0
        self.risk.reset(np.full(int(mask.sum()), self.cfg.initial_cash), mask)

    # -------------------------------------------------------------------------------------- step

    def decide(self, actions: np.ndarray) -> Decision:
        """Step 1 at the current bars: action -> confidence scaling -> proposed weights -> RiskManager.

        Advances the breaker state by one bar (like every call of the risk manager). The deployed
        policy (:mod:`trading_core.registry.policy`) calls exactly this, so a live decision and a
        backtest decision cannot differ."""
        cfg, d, lim = self.cfg, self.data, self.limits
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.n, d.n_assets), -1.0, 1.0)
        raw = a.copy()
        forecast_t = d.forecast[self.t] if d.forecast is not None else None
        if cfg.confidence_scaling and forecast_t is not None:
            a = confidence_scale(a, forecast_t[:, :, 3], slope=cfg.confidence_slope)
        proposed = a * lim.max_position
        return Decision(raw, a, proposed, self.risk.validate_batch(proposed, self.equity, self.t, self.history))

    def step(self, actions: np.ndarray) -> StepResult:
        cfg, d, lim = self.cfg, self.data, self.limits
        t = self.t
        forecast_t = d.forecast[t] if d.forecast is not None else None
        decision = self.decide(actions).risk
        w = decision.weights
        var_excess = np.maximum(decision.var_requested / lim.var_limit - 1.0, 0.0)

        # Fill at the next open, mark to its close, check the books against the ledger: the execution kernel.
        t1 = t + 1
        books = Books(self.cash, self.shares, self.entry_price, self.equity, self.peak)
        fill = execute(books, w, d.open[t1], d.close[t1], d.close[t], self.sigma[t], self.adv_value[t], cfg)
        bad = unbalanced(fill)
        if bad.any():
            i = int(np.argmax(np.abs(fill.books.equity - fill.ledger)))
            raise AccountingError(
                f"portfolio {i} at bar {int(t[i])}: equity {fill.books.equity[i]:.6f} != ledger {fill.ledger[i]:.6f}"
            )
        self.cash, self.shares, self.entry_price, self.equity, self.peak = fill.books
        equity_prev, new_equity, impact = fill.equity_prev, fill.books.equity, fill.impact_total
        port_ret, drawdown = fill.portfolio_return, fill.drawdown

        rw = cfg.reward
        reward = port_ret / (self.market_vol[t] + 1e-4)
        if rw.alpha > 0 and forecast_t is not None:
            edge = (forecast_t[:, :, 1] - forecast_t[:, :, 2]) * forecast_t[:, :, 3]
            reward = reward + rw.alpha * (w * edge).sum(axis=1)
        reward = reward - rw.beta * var_excess - rw.gamma * drawdown - rw.impact_weight * impact / equity_prev
        reward = rw.scale * reward

        self.last_var = decision.var
        self.halted = (decision.decision == 2).astype(np.float64)
        self.t = t1
        steps_done = t1 - self.start
        terminated = new_equity <= 0.0
        truncated = ~terminated & (steps_done >= self.length)
        return StepResult(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            equity=new_equity,
            decision=decision.decision,
            reasons=decision.reasons,
            costs=fill.costs,
            impact=impact,
            turnover=fill.traded.sum(axis=1) / fill.equity_open,
            portfolio_return=port_ret,
            fill=fill,
        )
