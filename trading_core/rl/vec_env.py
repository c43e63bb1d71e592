"""``VecTradingEnv``: n portfolios in one NumPy engine behind SB3's ``VecEnv`` interface.

Same trajectories as n :class:`~trading_core.rl.env.TradingEnv` seeded ``seed + i`` (tested):
each sub-environment draws its episode starts from its own generator, made exactly as gymnasium
makes ``Env.np_random``, and finished episodes restart automatically (the last observation goes
to ``infos[i]["terminal_observation"]``, as SB3 expects).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.engine import PortfolioEngine
from trading_core.rl.env import step_info


class VecTradingEnv(VecEnv):
    def __init__(self, data: MarketData, config: EnvConfig | None = None, n_envs: int = 8) -> None:
        self.config = config or EnvConfig()
        self.engine = PortfolioEngine(data, self.config, n_envs=n_envs)
        clip = self.config.obs_clip
        observation_space = gym.spaces.Box(-clip, clip, (self.engine.obs_dim,), dtype=np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (data.n_assets,), dtype=np.float32)
        self.render_mode = None
        super().__init__(n_envs, observation_space, action_space)
        self._rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n_envs)]
        self._actions: np.ndarray | None = None

    def _draw_starts(self, mask: np.ndarray) -> np.ndarray:
        lo, hi = self.engine.episode_bounds()
        return np.array([int(self._rngs[i].integers(lo, hi + 1)) for i in np.flatnonzero(mask)], dtype=np.int64)

    def reset(self) -> np.ndarray:
        for i, seed in enumerate(self._seeds):
            if seed is not None:
                self._rngs[i] = seeding.np_random(seed)[0]
        self._reset_seeds()
        everyone = np.ones(self.num_envs, dtype=bool)
        self.engine.reset(everyone, self._draw_starts(everyone))
        self.reset_infos = [
            {"equity": float(e), "bar": int(b)} for e, b in zip(self.engine.equity, self.engine.t, strict=True)
        ]
        return self.engine.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:  # not an assert: it would vanish under python -O (bandit B101)
            raise RuntimeError("step_wait before step_async")
        result = self.engine.step(self._actions)
        obs = self.engine.observe()
        done = result.terminated | result.truncated
        infos: list[dict[str, Any]] = [step_info(result, i, self.engine) for i in range(self.num_envs)]
        if done.any():
            for i in np.flatnonzero(done):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(result.truncated[i])
            self.engine.reset(done, self._draw_starts(done))
            obs = self.engine.observe()
        return obs, result.reward.astype(np.float32), done, infos

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        return super().seed(seed)
