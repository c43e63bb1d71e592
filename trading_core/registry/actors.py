"""The RL agent inside a deployed policy, stored without pickle.

An SB3 ``.zip`` keeps part of its state as cloudpickle (spaces, schedules): loading one runs
arbitrary code. A deployed policy only needs the deterministic actor, so the bundle stores, per
ensemble member, the algorithm name, the ``policy_kwargs`` (JSON) and the policy network's
``state_dict`` (``torch.save``, loaded ``weights_only=True``). :class:`AgentActor` rebuilds SB3's own
policy class from them, so the actions equal the trained agent's (tested against
:meth:`EnsembleAgent.predict <trading_core.rl.agents.EnsembleAgent.predict>`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from trading_core.errors import ConfigError
from trading_core.rl.agents import ALGORITHMS, EnsembleAgent

MEMBERS_FILE = "members.json"


@dataclass(frozen=True)
class Member:
    name: str
    algo: str
    weight: float
    policy_kwargs: dict[str, Any]


def _json_kwargs(agent: BaseAlgorithm, name: str) -> dict[str, Any]:
    kwargs = dict(agent.policy_kwargs or {})
    try:
        json.dumps(kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"member {name}: policy_kwargs {kwargs!r} are not JSON (e.g. an activation class); a deployed "
            "policy stores them as JSON to avoid pickle"
        ) from exc
    return kwargs


def _policy_class(algo: str) -> type[BasePolicy]:
    if algo not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algo!r}; expected one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[algo].policy_aliases["MlpPolicy"]


class AgentActor:
    """Deterministic actions of a weighted ensemble of SB3 policies (one member = a single agent)."""

    def __init__(self, members: list[Member], policies: list[BasePolicy]) -> None:
        if not members or len(members) != len(policies):
            raise ValueError("an actor needs one policy per member and at least one member")
        self.members, self.policies = members, policies

    @classmethod
    def from_ensemble(cls, ensemble: EnsembleAgent) -> AgentActor:
        members = [
            Member(name, type(agent).__name__.lower(), float(ensemble.weights[name]), _json_kwargs(agent, name))
            for name, agent in ensemble.agents.items()
        ]
        return cls(members, [agent.policy for agent in ensemble.agents.values()])

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The ensemble's action for one observation (weighted sum, clipped to [-1, 1])."""
        total = None
        for member, policy in zip(self.members, self.policies, strict=True):
            action = np.asarray(policy.predict(obs, deterministic=True)[0], dtype=np.float64)
            total = member.weight * action if total is None else total + member.weight * action
        return np.clip(np.asarray(total), -1.0, 1.0)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for member, policy in zip(self.members, self.policies, strict=True):
            torch.save({k: v.detach().cpu() for k, v in policy.state_dict().items()}, directory / f"{member.name}.pt")
        (directory / MEMBERS_FILE).write_text(json.dumps([member.__dict__ for member in self.members], indent=1))

    @classmethod
    def load(cls, directory: Path, obs_dim: int, n_assets: int) -> AgentActor:
        """Rebuild every member's policy network for ``obs_dim`` observations and ``n_assets`` actions."""
        members = [Member(**m) for m in json.loads((directory / MEMBERS_FILE).read_text())]
        obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32)
        act_space = gym.spaces.Box(-1.0, 1.0, (n_assets,), dtype=np.float32)
        policies = []
        for member in members:
            policy = _policy_class(member.algo)(obs_space, act_space, lambda _: 0.0, **member.policy_kwargs)
            state = torch.load(directory / f"{member.name}.pt", map_location="cpu", weights_only=True)
            policy.load_state_dict(state)
            policy.set_training_mode(False)
            policies.append(policy)
        return cls(members, policies)

    def describe(self) -> Mapping[str, Any]:
        return {m.name: {"algo": m.algo, "weight": m.weight} for m in self.members}
