"""The agent stage: ``feature set (+ forecaster) -> trained agent`` in one MLflow run.

:func:`train_agent` is what ``trading train-agent``, the training DAG and the tests call. Read top to
bottom: open the feature set -> the market panel and its periods (:mod:`.market`) -> the env config
(pure RL: no forecast block, no confidence scaling) -> MLflow run (params, lineage tags) -> per
member: a :class:`VecTradingEnv` on the training period only, SB3 training with validation and
checkpoint callbacks -> weights by validation Sharpe (ensemble) -> deterministic evaluation on the
validation period next to buy-and-hold -> the SB3 zips, ``ensemble.json`` and the env config as
artifacts under ``agent/`` -> drop the checkpoints. The test period is never touched here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from pydantic import ValidationError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

from trading_core import tracking
from trading_core.config import Settings
from trading_core.errors import ConfigError
from trading_core.features import feature_store
from trading_core.rl.agents import (
    ALGORITHMS,
    DEFAULTS,
    EnsembleAgent,
    EvaluationResult,
    Policy,
    agent_policy,
    evaluate,
    make_agent,
    member_names,
)
from trading_core.rl.callbacks import ValidationCallback, flat_metrics
from trading_core.rl.config import OBSERVATION_BLOCKS, EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.env import TradingEnv
from trading_core.rl.market import Period, market_from_feature_set, slice_market
from trading_core.rl.vec_env import VecTradingEnv

log = logging.getLogger(__name__)

STAGE = "agent"
ARTIFACT_PATH = "agent"
"""Folder of the run's artifacts holding ``<member>.zip``, ``ensemble.json``, ``env_config.json``, ``market.json``."""
ENSEMBLE = "ensemble"
DEFAULT_MEMBERS: tuple[str, ...] = ("sac", "td3")
EVAL_METRICS: tuple[str, ...] = ("sharpe", "total_return", "max_drawdown", "turnover", "halted_share", "steps")
PURE_RL_BLOCKS: tuple[str, ...] = tuple(b for b in OBSERVATION_BLOCKS if b != "forecast")


@dataclass(frozen=True)
class AgentRunResult:
    """One finished agent run: where it is in MLflow and how it did on the validation period."""

    run_id: str
    model_uri: str
    """``runs:/<run_id>/agent``: the folder to hand to :meth:`EnsembleAgent.load` after downloading it."""
    feature_set_version: str
    dataset_version: str
    algo: str
    variant: str
    """'hybrid' (forecaster outputs in the data) or 'pure_rl'."""
    forecaster_uri: str | None
    metrics: dict[str, float]
    """``val_<metric>`` of the agent (an ensemble: the combination), ``val_buy_hold_<metric>`` for reference,
    ``<member>/val_<metric>`` and ``<member>/weight`` per member."""
    weights: dict[str, float]
    seconds: float

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and the CLI (NaN becomes null)."""
        return {
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "feature_set_version": self.feature_set_version,
            "dataset_version": self.dataset_version,
            "algo": self.algo,
            "variant": self.variant,
            "forecaster_uri": self.forecaster_uri,
            "metrics": tracking.finite(self.metrics),
            "weights": self.weights,
            "seconds": round(self.seconds, 3),
        }


# ------------------------------------------------------------------------------------------ configs


def resolve_env_config(overrides: Mapping[str, Any] | None, hybrid: bool) -> EnvConfig:
    """Defaults (pure RL: every block but 'forecast', no confidence scaling) + ``overrides`` (EnvConfig
    fields; ``risk`` and ``reward`` may be partial dicts). :raises ConfigError: unknown or invalid values."""
    overrides = dict(overrides or {})
    base = EnvConfig() if hybrid else EnvConfig(blocks=PURE_RL_BLOCKS, confidence_scaling=False)
    values = base.model_dump()
    for key, value in overrides.items():
        nested = values.get(key)
        values[key] = {**nested, **value} if isinstance(nested, dict) and isinstance(value, Mapping) else value
    try:
        config = EnvConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid env override: {problems}") from exc
    if unknown := sorted(set(config.blocks) - set(OBSERVATION_BLOCKS)):
        raise ConfigError(f"unknown observation block(s) {unknown}; expected some of {list(OBSERVATION_BLOCKS)}")
    if not hybrid and ("forecast" in config.blocks or config.confidence_scaling):
        raise ConfigError("pure RL has no forecaster: drop the 'forecast' block and confidence_scaling")
    return config


def member_overrides(names: Sequence[str], algos: Sequence[str], overrides: Mapping[str, Any] | None) -> dict:
    """Per member: the overrides whose key is not a member/algorithm name, then those under its
    algorithm's key, then those under its own name (``{"learning_rate": 1e-4, "sac": {"tau": 0.01}}``);
    a dict under another algorithm's name is ignored."""
    overrides = dict(overrides or {})
    scoped = set(names) | set(ALGORITHMS)
    common = {k: v for k, v in overrides.items() if k not in scoped}
    out = {}
    for name, algo in zip(names, algos, strict=True):
        out[name] = {**common, **dict(overrides.get(algo) or {}), **dict(overrides.get(name) or {})}
    return out


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flatten(f"{prefix}.{k}", v)
        return out
    if isinstance(value, list | tuple):
        return {prefix: ",".join(map(str, value))}
    return {prefix: value}


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op CPU threads set to ``n`` inside the block (None: unchanged), restored after.
    The policies are small MLPs: on the CPU one thread is many times faster than several, which
    spend each tiny matrix product synchronising."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _device(algo: str, device: str) -> str:
    """SB3 runs MLP policies of on-policy algorithms faster on the CPU: 'auto' means 'cpu' for PPO/A2C."""
    return "cpu" if device == "auto" and algo in ("ppo", "a2c") else device


# --------------------------------------------------------------------------------------- evaluation


def validation_env(data: MarketData, period: Period, config: EnvConfig) -> tuple[TradingEnv, int]:
    """A single env that replays ``period`` in one episode (history before it for the warm-up, nothing
    after it), and the start bar to reset it at."""
    sliced = slice_market(data, 0, period.stop)
    steps = period.stop - 1 - period.start  # decisions start .. stop - 2; the last one fills at stop - 1
    if steps < 2:
        raise ConfigError(f"period {period} is too short to evaluate on (needs at least 3 bars)")
    env = TradingEnv(sliced, config.model_copy(update={"episode_length": steps}))
    start = max(period.start, env.engine.min_start)
    if start >= period.stop - 2:
        raise ConfigError(f"period {period} ends before the environment's warm-up ({env.engine.min_start} bars)")
    return env, start


def buy_and_hold(data: MarketData, start: int, steps: int, config: EnvConfig) -> EvaluationResult:
    """Equal weights bought at the open of ``start + 1`` (paying commission + slippage once) and held,
    marked at the closes of the same bars :func:`~trading_core.rl.agents.evaluate` covers from ``start``."""
    entry = data.open[start + 1]
    closes = data.close[start + 1 : start + 1 + steps]
    cost = (config.cost_bps + config.slippage_bps) * 1e-4
    equity = np.concatenate([[1.0], (1.0 - cost) * (closes / entry).mean(axis=1)])
    r = equity[1:] / equity[:-1] - 1.0
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    return EvaluationResult(
        total_return=float(equity[-1] - 1.0),
        sharpe=float(r.mean() / std * math.sqrt(252)) if std > 0 else 0.0,
        max_drawdown=float((1.0 - equity / np.maximum.accumulate(equity)).max()),
        turnover=1.0 / max(len(r), 1),
        halted_share=0.0,
        steps=len(r),
        returns=tuple(float(x) for x in r),
    )


# -------------------------------------------------------------------------------------------- stage


def _train_member(
    name: str,
    algo: str,
    train_env: VecTradingEnv,
    val: tuple[TradingEnv, int],
    *,
    timesteps: int,
    seed: int,
    device: str,
    overrides: Mapping[str, Any],
    checkpoint_dir: Path,
    eval_every: int,
    checkpoint_every: int,
) -> tuple[BaseAlgorithm, ValidationCallback]:
    agent = make_agent(algo, train_env, seed=seed, device=_device(algo, device), **overrides)
    validation = ValidationCallback(name, val[0], val[1], eval_every)
    checkpoints = CheckpointCallback(
        save_freq=max(1, checkpoint_every // train_env.num_envs), save_path=str(checkpoint_dir / name), name_prefix=name
    )
    t0 = time.perf_counter()
    agent.learn(total_timesteps=timesteps, callback=CallbackList([validation, checkpoints]))
    seconds = time.perf_counter() - t0
    mlflow.log_metrics({f"{name}/train_seconds": seconds, f"{name}/train_steps_per_s": agent.num_timesteps / seconds})
    return agent, validation


def train_agent(
    feature_set_version: str,
    settings: Settings,
    *,
    algo: str = "ppo",
    timesteps: int = 100_000,
    forecaster_uri: str | None = None,
    n_envs: int = 8,
    seed: int | None = None,
    env: Mapping[str, Any] | None = None,
    agent: Mapping[str, Any] | None = None,
    members: Sequence[str] = DEFAULT_MEMBERS,
    symbols: list[str] | None = None,
    device: str = "auto",
    threads: int | None = 1,
    eval_every: int | None = None,
    checkpoint_every: int | None = None,
    experiment: str = "agent",
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> AgentRunResult:
    """Train an SB3 agent (or an ensemble) on a feature set's training period; evaluate on its validation period.

    :param algo: 'ppo', 'sac', 'td3', 'a2c' or 'ensemble' (trains ``members``, weighted by validation Sharpe).
    :param timesteps: environment steps per agent (per member of an ensemble), over all ``n_envs``.
    :param forecaster_uri: a logged forecaster (or a Parquet/CSV of per-bar forecasts): the hybrid variant;
        None: pure RL (no forecast block, no confidence scaling), from the same code path.
    :param seed: the first member's seed (member k: seed + k); default ``settings.seed``.
    :param env: overrides of :class:`EnvConfig` fields (``risk``/``reward`` may be partial dicts).
    :param agent: SB3 keyword overrides of :func:`make_agent`; for an ensemble, a dict under an algorithm
        or member name applies to it only.
    :param threads: torch CPU threads while training (see :func:`torch_threads`); None: torch's default.
    :param eval_every: timesteps between validation passes (default: a tenth of ``timesteps``).
    :param checkpoint_every: timesteps between checkpoints under ``<home>/checkpoints/agent/<run_id>``
        (default: a quarter of ``timesteps``); removed once the run's artifacts are logged.
    :raises ConfigError: an unknown algorithm, an invalid override, a forecaster on other features.
    :raises DatasetNotFound: the feature set is not in the store.
    """
    t0 = time.perf_counter()
    key = algo.lower()
    if key not in (*ALGORITHMS, ENSEMBLE):
        raise ConfigError(f"unknown algo {algo!r}; expected one of {[*ALGORITHMS, ENSEMBLE]}")
    algos = [a.lower() for a in members] if key == ENSEMBLE else [key]
    if not algos or set(algos) - set(ALGORITHMS):
        raise ConfigError(f"ensemble members must be some of {list(ALGORITHMS)}, got {list(members)}")
    if timesteps < 1 or n_envs < 1:
        raise ConfigError(f"timesteps and n_envs must be >= 1, got {timesteps} and {n_envs}")
    seed = settings.seed if seed is None else seed
    names = member_names(algos)
    kwargs = member_overrides(names, algos, agent)
    hybrid = forecaster_uri is not None
    variant = "hybrid" if hybrid else "pure_rl"
    config = resolve_env_config(env, hybrid)

    fs = feature_store(settings).open(feature_set_version)
    dataset_version = str(fs.manifest["dataset_version"])
    data, periods = market_from_feature_set(fs, settings, forecaster_uri, symbols)
    train_env = VecTradingEnv(slice_market(data, 0, periods.train.stop), config, n_envs=n_envs)
    val_env, val_start = validation_env(data, periods.val, config)
    eval_every = eval_every or max(timesteps // 10, n_envs)
    checkpoint_every = checkpoint_every or max(timesteps // 4, n_envs)

    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(experiment, settings)
    run_tags = {
        **dict(tags or {}),
        "dataset_version": dataset_version,
        "feature_set_version": fs.version,
        "forecaster_uri": forecaster_uri or "none",
        "variant": variant,
        "algo": key,
        "git_sha": tracking.git_sha(),
        "trading.stage": STAGE,
    }
    with (
        torch_threads(threads),
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name or f"{STAGE}-{key}-{variant}-{fs.version[3:11]}",
            tags=run_tags,
            nested=mlflow.active_run() is not None,
        ) as run,
    ):
        run_id = run.info.run_id
        params: dict[str, Any] = {
            "algo": key, "timesteps": timesteps, "n_envs": n_envs, "seed": seed, "variant": variant,
            "members": ",".join(names), "device": device, "threads": threads, "eval_every": eval_every,
            "feature_set_version": fs.version, "dataset_version": dataset_version,
            "forecaster_uri": forecaster_uri or "none", "n_assets": data.n_assets, "symbols": ",".join(data.symbols),
            "obs_dim": train_env.observation_space.shape[0] if train_env.observation_space.shape else 0,
            **{f"period.{n}_bars": getattr(periods, n).bars for n in ("train", "val", "test")},
            **_flatten("env", config.model_dump(mode="json")),
        }  # fmt: skip
        for name, algo_key in zip(names, algos, strict=True):
            params |= _flatten(f"agent.{name}", {**DEFAULTS[algo_key], **kwargs[name]})
        mlflow.log_params(params)

        checkpoint_dir = settings.home / "checkpoints" / STAGE / run_id
        trained: dict[str, BaseAlgorithm] = {}
        histories: dict[str, list[dict[str, float]]] = {}
        for k, (name, algo_key) in enumerate(zip(names, algos, strict=True)):
            log.info("training %s (%s, %d steps, %d envs) on %s [%s]", name, algo_key, timesteps, n_envs,
                     fs.version, variant)  # fmt: skip
            trained[name], callback = _train_member(
                name, algo_key, train_env, (val_env, val_start), timesteps=timesteps, seed=seed + k, device=device,
                overrides=kwargs[name], checkpoint_dir=checkpoint_dir, eval_every=eval_every,
                checkpoint_every=checkpoint_every,
            )  # fmt: skip
            histories[name] = callback.history

        if key == ENSEMBLE:
            ensemble, member_results = EnsembleAgent.from_validation(trained, val_env, val_start)
        else:
            ensemble = EnsembleAgent(trained)
            member_results = {names[0]: evaluate(agent_policy(trained[names[0]]), val_env, val_start)}
        policy: Policy = lambda obs: ensemble.predict(obs)[0]  # noqa: E731
        result = evaluate(policy, val_env, val_start)
        reference = buy_and_hold(val_env.engine.data, val_start, result.steps, config)
        metrics = flat_metrics("val_", result) | flat_metrics("val_buy_hold_", reference)
        metrics |= {f"{name}/weight": w for name, w in ensemble.weights.items()}
        mlflow.log_metrics(metrics, step=timesteps)
        for name, r in member_results.items():  # already logged at the last step by the validation callback
            metrics |= flat_metrics(f"{name}/val_", r)

        with tempfile.TemporaryDirectory(prefix="agent-") as tmp:
            folder = Path(tmp)
            ensemble.save(folder)
            (folder / "env_config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=1))
            market = {
                "symbols": list(data.symbols), "feature_names": list(data.feature_names),
                "feature_groups": {g: list(i) for g, i in data.feature_groups.items()},
                "periods": periods.as_dict(data.timestamps), "variant": variant, "forecaster_uri": forecaster_uri,
                "feature_set_version": fs.version, "dataset_version": dataset_version, "val_start_bar": val_start,
            }  # fmt: skip
            (folder / "market.json").write_text(json.dumps(market, indent=1))
            mlflow.log_artifacts(tmp, ARTIFACT_PATH)
        mlflow.log_dict({"history": histories}, "evaluation/validation_history.json")
        mlflow.log_dict({"agent": result.returns, "buy_hold": reference.returns}, "evaluation/val_returns.json")

    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # the stage's folder, once no other run's checkpoints are in it
        checkpoint_dir.parent.rmdir()
    seconds = time.perf_counter() - t0
    log.info("agent run %s (%s, %s): val sharpe %.3f (buy-and-hold %.3f) in %.1fs", run_id, key, variant,
             result.sharpe, reference.sharpe, seconds)  # fmt: skip
    return AgentRunResult(
        run_id=run_id,
        model_uri=f"runs:/{run_id}/{ARTIFACT_PATH}",
        feature_set_version=fs.version,
        dataset_version=dataset_version,
        algo=key,
        variant=variant,
        forecaster_uri=forecaster_uri,
        metrics=metrics,
        weights=dict(ensemble.weights),
        seconds=seconds,
    )
