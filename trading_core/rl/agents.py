"""SB3 agents for the trading environment, and an ensemble that averages their actions.

``make_agent`` is the one factory (PPO, SAC, TD3, A2C) with defaults tuned for a daily
portfolio environment; ``EnsembleAgent`` combines trained agents by a weighted average of
their deterministic actions, weighted by each agent's validation Sharpe ratio.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import VecEnv

from trading_core.rl.env import TradingEnv

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3, "a2c": A2C}

DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 256, "batch_size": 512, "learning_rate": 3e-4, "gamma": 0.99, "gae_lambda": 0.95,
            "ent_coef": 0.0, "clip_range": 0.2, "policy_kwargs": {"net_arch": [128, 128]}},
    "a2c": {"n_steps": 16, "learning_rate": 7e-4, "gamma": 0.99, "policy_kwargs": {"net_arch": [128, 128]}},
    "sac": {"buffer_size": 200_000, "learning_starts": 1_000, "batch_size": 256, "learning_rate": 3e-4,
            "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "policy_kwargs": {"net_arch": [256, 256]}},
    "td3": {"buffer_size": 200_000, "learning_starts": 1_000, "batch_size": 256, "learning_rate": 1e-3,
            "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "policy_kwargs": {"net_arch": [256, 256]}},
}  # fmt: skip


def make_agent(
    algo: str, env: VecEnv | TradingEnv, seed: int = 0, device: str = "auto", **overrides: Any
) -> BaseAlgorithm:
    """A fresh SB3 agent of ``algo`` on ``env`` with this module's defaults, overridden by ``overrides``."""
    key = algo.lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algo!r}; expected one of {sorted(ALGORITHMS)}")
    kwargs = copy.deepcopy({**DEFAULTS[key], **overrides})  # SB3 edits policy_kwargs in place (A2C's optimizer)
    if key == "td3" and "action_noise" not in kwargs:
        n = int(np.prod(env.action_space.shape or (1,)))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
    if key in ("ppo", "a2c") and isinstance(env, VecEnv):
        kwargs["n_steps"] = max(1, int(kwargs["n_steps"]))
    return ALGORITHMS[key]("MlpPolicy", env, seed=seed, device=device, verbose=0, **kwargs)


@dataclass(frozen=True)
class EvaluationResult:
    """One deterministic pass over a period."""

    total_return: float
    sharpe: float
    """Annualised (sqrt(252)) mean / std of per-bar portfolio returns; 0 when the std is 0."""
    max_drawdown: float
    turnover: float
    """Mean traded notional per bar as a fraction of equity."""
    halted_share: float
    steps: int
    returns: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in self.__dict__.items() if k != "returns"}


Policy = Callable[[np.ndarray], np.ndarray]


def evaluate(policy: Policy, env: TradingEnv, start: int | None = None) -> EvaluationResult:
    """Run ``policy`` (obs -> action) over one whole episode of ``env`` from ``start``."""
    obs, _ = env.reset(seed=0, options={"start": start} if start is not None else None)
    rets, turnover, halted = [], [], 0
    equity_path = [env.engine.equity[0]]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        rets.append(info["portfolio_return"])
        turnover.append(info["turnover"])
        halted += info["risk_decision"] == "halted"
        equity_path.append(info["equity"])
        done = terminated or truncated
    r = np.asarray(rets)
    eq = np.asarray(equity_path)
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    sharpe = float(r.mean() / std * math.sqrt(252)) if std > 0 else 0.0
    return EvaluationResult(
        total_return=float(eq[-1] / eq[0] - 1.0),
        sharpe=sharpe,
        max_drawdown=float((1.0 - eq / np.maximum.accumulate(eq)).max()),
        turnover=float(np.mean(turnover)) if turnover else 0.0,
        halted_share=halted / max(len(r), 1),
        steps=len(r),
        returns=tuple(float(x) for x in r),
    )


def agent_policy(agent: BaseAlgorithm) -> Policy:
    return lambda obs: agent.predict(obs, deterministic=True)[0]


class EnsembleAgent:
    """Weighted average of several agents' deterministic actions.

    ``weights`` default to each agent's validation Sharpe ratio floored at 0 (an agent that loses
    money gets no say); when none is positive, equal weights. Any SB3 agent (or callable policy)
    can join: the combination only needs actions in the same space.
    """

    def __init__(self, agents: dict[str, BaseAlgorithm], weights: dict[str, float] | None = None) -> None:
        if not agents:
            raise ValueError("an ensemble needs at least one agent")
        self.agents = agents
        self.weights = self._normalise(weights or dict.fromkeys(agents, 1.0))

    @staticmethod
    def _normalise(weights: dict[str, float]) -> dict[str, float]:
        clipped = {k: max(0.0, float(v)) for k, v in weights.items()}
        total = sum(clipped.values())
        if total <= 0:
            return {k: 1.0 / len(weights) for k in weights}
        return {k: v / total for k, v in clipped.items()}

    @classmethod
    def from_validation(
        cls, agents: dict[str, BaseAlgorithm], env: TradingEnv, start: int | None = None
    ) -> tuple[EnsembleAgent, dict[str, EvaluationResult]]:
        """Evaluate every agent on the validation env; weight by Sharpe."""
        results = {name: evaluate(agent_policy(agent), env, start) for name, agent in agents.items()}
        return cls(agents, {name: r.sharpe for name, r in results.items()}), results

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        actions = [
            self.weights[name] * agent.predict(obs, deterministic=True)[0] for name, agent in self.agents.items()
        ]
        return np.clip(np.sum(actions, axis=0), -1.0, 1.0), None

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, agent in self.agents.items():
            agent.save(directory / f"{name}.zip")
        (directory / "ensemble.json").write_text(
            json.dumps(
                {"weights": self.weights, "algorithms": {n: type(a).__name__.lower() for n, a in self.agents.items()}}
            )
        )

    @classmethod
    def load(cls, directory: Path, env: VecEnv | TradingEnv | None = None, device: str = "auto") -> EnsembleAgent:
        meta = json.loads((directory / "ensemble.json").read_text())
        agents = {
            name: ALGORITHMS[algo].load(directory / f"{name}.zip", env=env, device=device)
            for name, algo in meta["algorithms"].items()
        }
        return cls(agents, meta["weights"])


def member_names(algos: Sequence[str]) -> list[str]:
    """Unique names for ensemble members (``sac``, ``td3``, ``sac_2`` ...)."""
    seen: dict[str, int] = {}
    names = []
    for a in algos:
        seen[a] = seen.get(a, 0) + 1
        names.append(a if seen[a] == 1 else f"{a}_{seen[a]}")
    return names
