"""``TradingEnv``: the gymnasium environment (one portfolio) over :class:`PortfolioEngine`.

Observation: the enabled blocks of :class:`~trading_core.rl.config.EnvConfig` as one float32
vector (market feature window, technical indicators, regime features, forecaster probabilities and
confidence, portfolio state, risk state, execution context). Action: target position per asset in
[-1, 1] as a fraction of the per-asset limit. Decisions at the close of bar t fill at the open of
t+1. ``info`` carries the equity, the risk decision and its reasons, costs and turnover.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from trading_core.risk import describe_reasons
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.engine import PortfolioEngine, StepResult

DECISIONS = ("approved", "adjusted", "halted")


def step_info(result: StepResult, i: int, engine: PortfolioEngine) -> dict[str, Any]:
    return {
        "equity": float(result.equity[i]),
        "portfolio_return": float(result.portfolio_return[i]),
        "risk_decision": DECISIONS[int(result.decision[i])],
        "risk_reasons": describe_reasons(int(result.reasons[i])),
        "costs": float(result.costs[i]),
        "impact": float(result.impact[i]),
        "turnover": float(result.turnover[i]),
        "bar": int(engine.t[i]),
    }


class TradingEnv(gym.Env[np.ndarray, np.ndarray]):
    metadata = {"render_modes": []}

    def __init__(self, data: MarketData, config: EnvConfig | None = None) -> None:
        super().__init__()
        self.config = config or EnvConfig()
        self.engine = PortfolioEngine(data, self.config, n_envs=1)
        clip = self.config.obs_clip
        self.observation_space = gym.spaces.Box(-clip, clip, (self.engine.obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (data.n_assets,), dtype=np.float32)
        self._all = np.ones(1, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        lo, hi = self.engine.episode_bounds()
        start = int((options or {}).get("start", self.np_random.integers(lo, hi + 1)))
        if not lo <= start <= hi:
            raise ValueError(f"episode start {start} outside [{lo}, {hi}]")
        self.engine.reset(self._all, np.array([start]))
        return self.engine.observe()[0], {"equity": float(self.engine.equity[0]), "bar": start}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        result = self.engine.step(np.asarray(action)[None, :])
        obs = self.engine.observe()[0]
        info = step_info(result, 0, self.engine)
        return obs, float(result.reward[0]), bool(result.terminated[0]), bool(result.truncated[0]), info
