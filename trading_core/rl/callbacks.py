"""SB3 callbacks of the agent stage: periodic validation with MLflow logging."""

from __future__ import annotations

import logging

import mlflow
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from trading_core.rl.agents import EvaluationResult, agent_policy, evaluate
from trading_core.rl.env import TradingEnv

log = logging.getLogger(__name__)


def flat_metrics(prefix: str, result: EvaluationResult) -> dict[str, float]:
    """``result`` as MLflow metrics named ``<prefix><field>``."""
    return {f"{prefix}{k}": float(v) for k, v in result.as_dict().items()}


class ValidationCallback(BaseCallback):
    """Every ``every`` timesteps (and at the end): one deterministic pass over the validation period,
    logged as ``<name>/val_<metric>`` at step = timesteps, with the mean equity return and summed reward
    of the training episodes finished since the previous log (``<name>/train_episode_return``,
    ``<name>/train_episode_reward``, ``<name>/train_episodes``)."""

    def __init__(self, name: str, env: TradingEnv, start: int, every: int) -> None:
        super().__init__()
        self.name, self.env, self.start, self.every = name, env, start, max(1, every)
        self.history: list[dict[str, float]] = []
        self._last = 0
        self._reward = np.zeros(0)
        self._finished: list[tuple[float, float]] = []

    def _on_training_start(self) -> None:
        self._reward = np.zeros(self.training_env.num_envs)

    def _on_step(self) -> bool:
        rewards, dones, infos = self.locals["rewards"], self.locals["dones"], self.locals["infos"]
        self._reward += rewards
        for i in np.flatnonzero(dones):
            equity_return = infos[i]["equity"] / self.env.config.initial_cash - 1.0
            self._finished.append((float(equity_return), float(self._reward[i])))
            self._reward[i] = 0.0
        if self.num_timesteps - self._last >= self.every:
            self._log()
        return True

    def _on_training_end(self) -> None:
        if self._last != self.num_timesteps:
            self._log()

    def _log(self) -> None:
        self._last = self.num_timesteps
        result = evaluate(agent_policy(self.model), self.env, self.start)
        values = flat_metrics(f"{self.name}/val_", result)
        if self._finished:
            returns, rewards = zip(*self._finished, strict=True)
            values |= {
                f"{self.name}/train_episode_return": float(np.mean(returns)),
                f"{self.name}/train_episode_reward": float(np.mean(rewards)),
                f"{self.name}/train_episodes": float(len(self._finished)),
            }
            self._finished = []
        mlflow.log_metrics(values, step=self.num_timesteps)
        self.history.append({"timesteps": float(self.num_timesteps), **values})
        log.info("%s at %d steps: val sharpe %.3f, return %.4f", self.name, self.num_timesteps, result.sharpe,
                 result.total_return)  # fmt: skip
