"""Assemble a :class:`~trading_core.registry.policy.TradingPolicy` from what training produced, and log it.

:func:`build_policy` reads the feature set (manifest, scaler, training rows for the drift
reference), the forecaster logged by the forecaster run and the agent logged by the agent run
(its SB3 zips are our own artifacts: read once here, then stored pickle-free), and
:func:`log_policy_run` logs the bundle as the pyfunc of one MLflow run in experiment ``policy``.
:func:`baseline_policy` makes the walk-forward's reference strategies (buy-and-hold, the forecaster
rule) servable the same way, e.g. as a first champion to beat.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from trading_core import tracking
from trading_core.config import Settings
from trading_core.data.ingest import load_dataset
from trading_core.db import lineage
from trading_core.errors import ConfigError
from trading_core.features import feature_store
from trading_core.features.scaling import StandardScaler
from trading_core.features.store import FeatureSet
from trading_core.forecast.pyfunc_model import ARTIFACTS, load_ensemble
from trading_core.registry.actors import AgentActor
from trading_core.registry.policy import TradingPolicy, tail_bars
from trading_core.registry.policy_io import PolicyKind, PolicySpec
from trading_core.registry.reference import write_reference
from trading_core.rl.config import EnvConfig

log = logging.getLogger(__name__)

EXPERIMENT = "policy"
MODEL_NAME = "policy"
"""Name of the logged model inside a policy run (``runs:/<id>/policy``)."""


def _download(settings: Settings, uri: str, dst: Path) -> Path:
    tracking_uri = tracking.use_tracking_store(settings)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri))


def training_reference(fs: FeatureSet, directory: Path) -> Path:
    """The drift reference of ``fs``: its scaled features over the training period (before val_start)."""
    keys = fs.features([])
    val_start = pd.Timestamp(fs.summary["splits"]["val_start"])
    val_start = val_start.tz_localize("UTC") if val_start.tzinfo is None else val_start
    mask = (pd.to_datetime(keys["timestamp"], utc=True) < val_start).to_numpy()
    frame = pd.concat(
        [keys.loc[mask].reset_index(drop=True), pd.DataFrame(np.asarray(fs.matrix[mask]), columns=fs.feature_names)],
        axis=1,
    )
    return write_reference(directory, frame, fs.feature_names)


def _lineage(settings: Settings, fs: FeatureSet, extra: Mapping[str, str]) -> dict[str, str]:
    dataset = lineage.get_dataset(settings.resolved_database_url, str(fs.manifest["dataset_version"]))
    return {
        "dataset_version": dataset.version,
        "feature_set_version": fs.version,
        "feed": dataset.feed,
        "interval": dataset.interval,
        "git_sha": tracking.git_sha(),
        **{k: str(v) for k, v in extra.items()},
    }


def _universe(fs: FeatureSet) -> tuple[str, ...]:
    return tuple(sorted(fs.features([])["symbol"].unique().tolist()))


def build_policy(
    settings: Settings,
    *,
    feature_set_version: str,
    forecaster_uri: str,
    agent_uri: str,
    workdir: Path,
    lineage_extra: Mapping[str, str] | None = None,
) -> TradingPolicy:
    """The hybrid policy: the forecaster at ``forecaster_uri`` + the agent at ``agent_uri`` (an agent
    run's ``runs:/<id>/agent`` folder), on the feature set it was trained on. ``workdir`` keeps the
    drift reference until the bundle is saved."""
    from trading_core.rl.agents import EnsembleAgent

    fs = feature_store(settings).open(feature_set_version)
    forecaster_dir = _download(settings, forecaster_uri, workdir / "forecaster")
    artifacts = forecaster_dir / "artifacts"
    forecaster = load_ensemble(artifacts / ARTIFACTS["config"], artifacts / ARTIFACTS["weights"])
    scaler_path = artifacts / ARTIFACTS["scaler"]
    scaler = StandardScaler.load(scaler_path) if scaler_path.exists() else fs.scaler
    agent_dir = _download(settings, agent_uri, workdir / "agent")
    env = EnvConfig.model_validate_json((agent_dir / "env_config.json").read_text())
    market = json.loads((agent_dir / "market.json").read_text())
    if market.get("feature_names") and list(market["feature_names"]) != fs.feature_names:
        raise ConfigError(f"agent {agent_uri} was trained on other features than feature set {fs.version}")
    ensemble = EnsembleAgent.load(agent_dir, device="cpu")
    obs_dim = int(next(iter(ensemble.agents.values())).observation_space.shape[0])  # type: ignore[index]
    spec = PolicySpec(
        kind="agent",
        symbols=tuple(market["symbols"]),
        universe=_universe(fs),
        env=env,
        obs_dim=obs_dim,
        lineage=_lineage(
            settings, fs, {"forecaster_uri": forecaster_uri, "agent_uri": agent_uri, **(lineage_extra or {})}
        ),
    )
    reference = training_reference(fs, workdir / "reference")
    return TradingPolicy(spec, fs.manifest, scaler, forecaster, AgentActor.from_ensemble(ensemble), reference)


def baseline_policy(
    settings: Settings,
    *,
    feature_set_version: str,
    kind: PolicyKind,
    workdir: Path,
    symbols: list[str] | None = None,
    constant_actions: list[float] | None = None,
    forecaster_uri: str | None = None,
    env: Mapping[str, Any] | None = None,
) -> TradingPolicy:
    """A reference strategy as a servable policy. ``constant_mix`` without ``constant_actions`` is
    buy-and-hold (equal weights, :func:`~trading_core.backtest.strategies.buy_and_hold_policy`);
    ``forecaster_rule`` needs ``forecaster_uri``. Confidence scaling is off (the rules size themselves)."""
    if kind == "agent":
        raise ConfigError("use build_policy for an agent")
    fs = feature_store(settings).open(feature_set_version)
    universe = _universe(fs)
    chosen = tuple(sorted(symbols)) if symbols else universe
    unknown = sorted(set(chosen) - set(universe))
    if unknown:
        raise ConfigError(f"symbol(s) {unknown} are not in feature set {fs.version}")
    config = EnvConfig(**dict(env or {})).model_copy(update={"confidence_scaling": False})
    forecaster = None
    scaler = fs.scaler
    if forecaster_uri:
        artifacts = _download(settings, forecaster_uri, workdir / "forecaster") / "artifacts"
        forecaster = load_ensemble(artifacts / ARTIFACTS["config"], artifacts / ARTIFACTS["weights"])
    if kind == "constant_mix" and constant_actions is None:
        per_asset = min((1.0 / len(chosen)) / config.risk.max_position, 1.0)
        constant_actions = [per_asset] * len(chosen)
    if forecaster is None:
        config = config.model_copy(update={"blocks": tuple(b for b in config.blocks if b != "forecast")})
    spec = PolicySpec(
        kind=kind,
        symbols=chosen,
        universe=universe,
        env=config,
        constant_actions=tuple(constant_actions) if constant_actions is not None else None,
        lineage=_lineage(settings, fs, {"forecaster_uri": forecaster_uri or ""}),
    )
    reference = training_reference(fs, workdir / "reference")
    return TradingPolicy(spec, fs.manifest, scaler, forecaster, None, reference)


def example_bars(settings: Settings, policy: TradingPolicy, dataset_version: str | None = None) -> pd.DataFrame:
    """Each universe symbol's last ``min_history`` bars of the policy's dataset: the logged input example."""
    bars = load_dataset(dataset_version or policy.spec.lineage["dataset_version"], settings)
    return tail_bars(bars, policy.universe, policy.min_history)


def log_policy_run(
    settings: Settings, policy: TradingPolicy, *, tags: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Log ``policy`` as the pyfunc of a new run in experiment ``policy``; returns (run_id, model_uri)."""
    from trading_core.registry.pyfunc import log_policy

    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(EXPERIMENT, settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({**policy.spec.lineage, **dict(tags or {}), "kind": policy.spec.kind})
        mlflow.log_params(
            {"symbols": ",".join(policy.symbols), "kind": policy.spec.kind, "min_history": policy.min_history}
        )
        info = log_policy(policy, example_bars(settings, policy), name=MODEL_NAME)
        mlflow.set_tag("model_uri", info.model_uri)
    log.info("logged %s policy as %s (run %s)", policy.spec.kind, info.model_uri, run.info.run_id)
    return run.info.run_id, str(info.model_uri)


def policy_workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="policy-build-")
