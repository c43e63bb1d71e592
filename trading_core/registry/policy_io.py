"""The policy bundle directory: what :meth:`TradingPolicy.save <trading_core.registry.policy.TradingPolicy.save>`
writes, :meth:`~trading_core.registry.policy.TradingPolicy.load` reads and the MLflow pyfunc ships as
its artifact. No pickle anywhere:

    policy.json                    kind, symbols, env config, lineage, format version (PolicySpec)
    manifest.json, scaler.json     the feature set's recipe and training-only scaler
    forecaster/                    forecaster_config.json + ensemble.pt (state_dict), if any
    actor/                         members.json + <member>.pt (SB3 policy state_dicts), kind 'agent'
    reference/                     drift reference (see :mod:`trading_core.registry.reference`)

This module knows the layout and nothing of deciding; :class:`PolicyBundle` is what the directory holds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from pydantic import BaseModel, ConfigDict

from trading_core.errors import ConfigError
from trading_core.features.scaling import StandardScaler
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pyfunc_model import load_ensemble
from trading_core.registry.actors import AgentActor
from trading_core.rl.config import EnvConfig

FORMAT_VERSION = 1
PolicyKind = Literal["agent", "forecaster_rule", "constant_mix"]


class PolicySpec(BaseModel):
    """``policy.json``: what the policy is and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    kind: PolicyKind = "agent"
    symbols: tuple[str, ...]
    """The symbols the policy trades (one action each, in this order)."""
    universe: tuple[str, ...] = ()
    """The symbols the features are computed over (cross-asset features such as turbulence depend on
    the universe): the feature set's symbols, a superset of ``symbols``. Empty: ``symbols``."""
    env: EnvConfig
    obs_dim: int | None = None
    """The actor's observation size (kind 'agent'); checked against the engine's at every decision."""
    constant_actions: tuple[float, ...] | None = None
    """kind 'constant_mix': the action per symbol (a fraction of the per-asset limit), every bar."""
    rule_allow_short: bool = False
    rule_max_position: float = 1.0
    """kind 'forecaster_rule': see :func:`trading_core.backtest.strategies.forecaster_rule_policy`."""
    lineage: dict[str, str] = {}
    """dataset_version, feature_set_version, feed, interval, forecaster/agent runs, git sha."""


class PolicyBundle(NamedTuple):
    """The contents of a bundle directory, in :class:`~trading_core.registry.policy.TradingPolicy`'s field order."""

    spec: PolicySpec
    manifest: dict[str, Any]
    scaler: StandardScaler
    forecaster: ForecasterEnsemble | None
    actor: AgentActor | None
    reference_dir: Path | None


def write_bundle(bundle: PolicyBundle, directory: Path) -> Path:
    """Write ``bundle`` into ``directory`` (layout in the module docstring); returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.json").write_text(bundle.spec.model_dump_json(indent=1))
    (directory / "manifest.json").write_text(json.dumps(bundle.manifest, indent=1))
    bundle.scaler.save(directory / "scaler.json")
    if bundle.forecaster is not None:
        (directory / "forecaster").mkdir(exist_ok=True)
        torch.save(
            {k: v.detach().cpu() for k, v in bundle.forecaster.state_dict().items()},
            directory / "forecaster" / "ensemble.pt",
        )
        (directory / "forecaster" / "forecaster_config.json").write_text(
            json.dumps(bundle.forecaster.cfg.as_dict(), indent=1)
        )
    if bundle.actor is not None:
        bundle.actor.save(directory / "actor")
    reference = bundle.reference_dir
    if reference is not None and reference.resolve() != (directory / "reference").resolve():
        shutil.copytree(reference, directory / "reference", dirs_exist_ok=True)
    return directory


def read_bundle(directory: Path) -> PolicyBundle:
    """Read a bundle written by :func:`write_bundle` (tensors with ``weights_only=True``; no pickle)."""
    spec = PolicySpec.model_validate_json((directory / "policy.json").read_text())
    if spec.format != FORMAT_VERSION:
        raise ConfigError(f"policy bundle {directory} has format {spec.format}, this code reads {FORMAT_VERSION}")
    manifest = json.loads((directory / "manifest.json").read_text())
    scaler = StandardScaler.load(directory / "scaler.json")
    forecaster = None
    if (directory / "forecaster" / "ensemble.pt").exists():
        forecaster = load_ensemble(
            directory / "forecaster" / "forecaster_config.json", directory / "forecaster" / "ensemble.pt"
        )
    actor = None
    if spec.kind == "agent":
        if spec.obs_dim is None:
            raise ConfigError(f"policy bundle {directory}: kind 'agent' without obs_dim")
        actor = AgentActor.load(directory / "actor", spec.obs_dim, len(spec.symbols))
    reference = directory / "reference"
    return PolicyBundle(spec, manifest, scaler, forecaster, actor, reference if reference.exists() else None)
