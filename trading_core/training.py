"""The steps of the training pipeline, one per task of the training DAG: data preparation, the plan
(feature set and HPO study), the HPO workers and the choice of parameters, the final forecaster, the RL
agent, walk-forward validation and registration, each idempotent per Airflow DAG run.

The DAG (``dags/training.py``) only wires these (each task is one call); ``trading demo`` runs that
DAG. The run's knobs and their defaults are :class:`~trading_core.training_config.TrainingConfig`
(missing params fall back on it). Each step that logs to
MLflow tags its run with ``airflow.dag_run`` and, before doing any work, looks for a FINISHED run
with that tag: a retried task reuses what its previous try completed instead of training again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from trading_core.config import Settings
from trading_core.training_config import TrainingConfig

log = logging.getLogger(__name__)

DATA_PARAMS = ("source", "symbols", "start", "end", "path", "n_assets", "signal_strength", "seed")


def prepare_feature_set(params: Mapping[str, Any], settings: Settings) -> str | None:
    """When the params name a data ``source``, ingest it and build the feature set; returns its
    version (None: the run trains on an existing feature set, resolved by the usual precedence)."""
    if not params.get("source"):
        return None
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest
    from trading_core.features import FeatureSetConfig, build_feature_set

    optional = {k: params[k] for k in ("n_assets", "signal_strength", "seed", "path") if params.get(k) is not None}
    request = IngestRequest(
        source=params["source"],
        symbols=tuple(params.get("symbols") or ()),
        start=date.fromisoformat(params["start"]) if params.get("start") else None,
        end=date.fromisoformat(params["end"]) if params.get("end") else None,
        **optional,
    )
    dataset = ingest(request, settings).dataset_version
    recipe = FeatureSetConfig.from_params(params)
    result = build_feature_set(dataset, recipe, settings)
    log.info("prepared %s from %s (%s)", result.feature_set_version, dataset, request.source)
    return result.feature_set_version


def plan_step(
    params: Mapping[str, Any],
    prepared: str | None,
    triggering_extras: Sequence[Mapping[str, Any]],
    settings: Settings,
    run_key: str,
) -> dict[str, Any]:
    """The run's :class:`~trading_core.forecast.resolve.TrainingPlan` as a dict: the feature set (the one
    ``prepare`` just built > the params' > the newest triggering ``features`` event's > the latest
    recorded) and, when HPO is asked for, the study its workers share (named after ``run_key``)."""
    from trading_core.forecast.resolve import plan_training

    params = {**params, "feature_set_version": prepared or params.get("feature_set_version")}
    return plan_training(params, triggering_extras, settings, run_key).as_dict()


def hpo_worker_step(plan: Mapping[str, Any], worker: int, settings: Settings) -> dict[str, Any]:
    """Worker ``worker``'s share of the plan's trials on the shared study (its sampler seeded by its index)."""
    from trading_core.forecast.hpo import run_hpo_worker

    return run_hpo_worker(
        plan["study_name"],
        plan["feature_set_version"],
        settings,
        plan["hpo_trials_per_worker"],
        worker=worker,
        epochs=plan["hpo_epochs"],
        seed=plan["seed"],
        max_train_samples=plan["max_train_samples"],
        device=plan["device"],
        cpu_threads=plan["cpu_threads"],
    )


def select_params_step(plan: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The best trial's ForecasterConfig/TrainConfig overrides (``model``, ``train``) with the study and its
    MLflow run; no overrides when the plan has no study (HPO skipped)."""
    if plan["study_name"] is None:
        return {"model": {}, "train": {}, "study_name": None, "hpo_run_id": None}
    from trading_core.forecast.hpo import best_params, log_study

    run_id = log_study(plan["study_name"], settings)
    return {**best_params(plan["study_name"], settings), "study_name": plan["study_name"], "hpo_run_id": run_id}


def train_forecaster_step(
    feature_set_version: str,
    settings: Settings,
    dag_run: str,
    *,
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """The forecaster with the selected parameters. A retry after a finished run reuses it (a retry
    after a failure mid-training resumes from the last epoch's checkpoint inside ``train_forecaster``)."""
    from mlflow.tracking import MlflowClient

    from trading_core.forecast.pipeline import train_forecaster
    from trading_core.registry.candidate import find_finished_run

    previous = find_finished_run(
        settings, "forecaster", {"airflow.dag_run": dag_run, "feature_set_version": feature_set_version}
    )
    if previous:
        run = MlflowClient(settings.resolved_mlflow_tracking_uri).get_run(previous)
        if "model_uri" in run.data.tags:
            log.info("forecaster already trained by %s: run %s", dag_run, previous)
            return {
                "run_id": previous,
                "model_uri": run.data.tags["model_uri"],
                "feature_set_version": feature_set_version,
                "dataset_version": run.data.tags.get("dataset_version"),
                "metrics": dict(run.data.metrics),
                "params": int(run.data.params.get("n_params", 0)),
                "seconds": 0.0,
                "device": run.data.tags.get("device"),
                "reused": True,
            }
    result = train_forecaster(
        feature_set_version, settings, model=model, train=train, tags={**tags, "airflow.dag_run": dag_run}
    )
    return {**result.as_reference(), "reused": False}


def final_forecaster_step(
    plan: Mapping[str, Any], best: Mapping[str, Any], settings: Settings, dag_run: str
) -> dict[str, Any]:
    """The final ensemble: the HPO's best parameters under the plan's epochs, size, sample cap, device and
    seed (:meth:`~trading_core.forecast.resolve.TrainingPlan.overrides`), tagged with the study; returns the
    run reference and the study (the ``forecaster`` asset's extra)."""
    from trading_core.forecast.resolve import TrainingPlan

    model, train = TrainingPlan(**plan).overrides(best)
    tags = {"hpo_study": best["study_name"], "hpo_run_id": best["hpo_run_id"]} if best["study_name"] else {}
    result = train_forecaster_step(plan["feature_set_version"], settings, dag_run, model=model, train=train, tags=tags)
    return {**result, "hpo_study": best["study_name"]}


def train_agent_step(
    feature_set_version: str, forecaster_uri: str, params: Mapping[str, Any], settings: Settings, dag_run: str
) -> dict[str, Any]:
    """The hybrid agent on the forecaster's outputs (reused when this DAG run already trained it)."""
    from trading_core.registry.candidate import find_finished_run
    from trading_core.rl.pipeline import train_agent

    tags = {"airflow.dag_run": dag_run, "feature_set_version": feature_set_version}
    previous = find_finished_run(settings, "agent", tags)
    if previous:
        log.info("agent already trained by %s: run %s", dag_run, previous)
        return {"run_id": previous, "model_uri": f"runs:/{previous}/agent", "reused": True}
    arguments = agent_arguments(TrainingConfig.from_params(params))
    result = train_agent(
        feature_set_version, settings, forecaster_uri=forecaster_uri, tags={"airflow.dag_run": dag_run}, **arguments
    )
    return {**result.as_reference(), "reused": False}


def agent_arguments(config: TrainingConfig) -> dict[str, Any]:
    """The run's agent knobs as keyword arguments of :func:`~trading_core.rl.pipeline.train_agent`."""
    return {
        "algo": config.algo,
        "timesteps": config.timesteps,
        "n_envs": config.n_envs,
        "seed": config.seed,
        "env": {"cost_bps": config.cost_bps, "slippage_bps": config.slippage_bps},
        "symbols": list(config.symbols) or None,
    }


def policy_step(
    settings: Settings, forecaster: Mapping[str, Any], agent: Mapping[str, Any], dag_run: str
) -> dict[str, str]:
    """Bundle the forecaster and the agent into the servable ``TradingPolicy`` and log it (experiment
    ``policy``); a retry finds the policy run this DAG run already finished. Returns run_id, model_uri."""
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from trading_core.registry.bundle import EXPERIMENT, build_policy, log_policy_run, policy_workdir
    from trading_core.registry.candidate import find_finished_run

    fsv = str(forecaster["feature_set_version"])
    tags = {"airflow.dag_run": dag_run, "feature_set_version": fsv}
    previous = find_finished_run(settings, EXPERIMENT, tags)
    if previous:
        run = MlflowClient(settings.resolved_mlflow_tracking_uri).get_run(previous)
        if "model_uri" in run.data.tags:
            return {"run_id": previous, "model_uri": run.data.tags["model_uri"]}
    with policy_workdir() as tmp:
        policy = build_policy(
            settings,
            feature_set_version=fsv,
            forecaster_uri=str(forecaster["model_uri"]),
            agent_uri=str(agent["model_uri"]),
            workdir=Path(tmp),
            lineage_extra={"forecaster_run": str(forecaster["run_id"]), "agent_run": str(agent["run_id"])},
        )
        run_id, model_uri = log_policy_run(settings, policy, tags=tags)
    return {"run_id": run_id, "model_uri": model_uri}


def register_step(
    settings: Settings,
    forecaster: Mapping[str, Any],
    agent: Mapping[str, Any],
    validation: Mapping[str, Any],
    dag_run: str,
    name: str | None = None,
    trigger: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Log the ``TradingPolicy`` bundle and register it as the candidate version of ``name``, tagged
    with lineage, the walk-forward metrics and links to the forecaster, agent, policy and validation runs.

    ``trigger``: why this training ran when something started it (the drift monitor's ``trigger_reason``
    and ``drift_check_id``); kept as version tags so a reviewer sees which alarm a candidate answers."""
    from trading_core.registry.candidate import register_candidate

    metrics = dict(validation.get("metrics") or {})
    metrics |= {
        f"forecaster_{k}": v
        for k, v in (forecaster.get("metrics") or {}).items()
        if k in ("test_accuracy", "test_majority_accuracy", "p_value_vs_majority")
    }
    policy = policy_step(settings, forecaster, agent, dag_run)
    version = register_candidate(
        settings,
        model_uri=policy["model_uri"],
        lineage={
            "dataset_version": str(forecaster["dataset_version"]),
            "feature_set_version": str(forecaster["feature_set_version"]),
            **{key: str(value)[:4000] for key, value in (trigger or {}).items() if value not in (None, "")},
        },
        metrics=metrics,
        links={
            "policy_run": policy["run_id"],
            "forecaster_run": str(forecaster["run_id"]),
            "agent_run": str(agent["run_id"]),
            "agent_uri": str(agent["model_uri"]),
            "validation_run": str(validation.get("run_id")),
        },
        dag_run=dag_run,
        name=name or settings.model_name,
    )
    return version.as_reference()


TRIGGER_PARAMS = ("trigger_reason", "drift_check_id")
"""The params that say why a run started (set by the drift monitor); kept as tags of the candidate."""


def candidate_step(
    settings: Settings,
    forecaster: Mapping[str, Any],
    agent: Mapping[str, Any],
    validation: Mapping[str, Any],
    dag_run: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`register_step` for the run's ``model_name`` and trigger params; returns the version reference
    with the runs behind it (the ``candidate_model`` asset's extra)."""
    trigger = {key: params.get(key) for key in TRIGGER_PARAMS}
    version = register_step(settings, forecaster, agent, validation, dag_run, params.get("model_name"), trigger)
    return {
        **version,
        "feature_set_version": forecaster["feature_set_version"],
        "forecaster_run": forecaster["run_id"],
        "agent_run": agent["run_id"],
        "validation_run": validation.get("run_id"),
    }


def walk_forward_config_from_params(params: Mapping[str, Any]) -> Any:
    """The DAG form's walk-forward knobs as a :class:`~trading_core.backtest.walkforward.WalkForwardConfig`
    (missing params: the :class:`~trading_core.training_config.TrainingConfig` defaults)."""
    from trading_core.backtest.walkforward import WalkForwardConfig

    config = TrainingConfig.from_params(params)
    values: dict[str, Any] = {
        "n_folds": config.folds,
        "test_size": config.test_size,
        "seeds": tuple(config.seeds),
        "timesteps": config.wf_timesteps,
        "n_envs": config.n_envs,
        "env": {"cost_bps": config.cost_bps, "slippage_bps": config.slippage_bps},
        "forecaster_train": {**WalkForwardConfig().forecaster_train, "epochs": config.wf_epochs},
    }
    if config.algo != "ensemble":  # the pure/hybrid agents' algorithm; the ensemble strategy runs regardless
        values["algo"] = config.algo
    if config.symbols:
        values["symbols"] = tuple(config.symbols)
    return WalkForwardConfig(**values)


def walk_forward_step(
    feature_set_version: str, params: Mapping[str, Any], settings: Settings, dag_run: str
) -> dict[str, Any]:
    """Walk-forward validation of every strategy (reused when this DAG run already finished it)."""
    from trading_core.backtest.walkforward import run_walk_forward
    from trading_core.registry.candidate import find_finished_run

    tags = {"airflow.dag_run": dag_run, "feature_set_version": feature_set_version}
    previous = find_finished_run(settings, "walk_forward", tags)
    if previous:
        log.info("walk-forward already done by %s: run %s", dag_run, previous)
        return {"run_id": previous, "metrics": _summary_metrics_from_run(settings, previous), "reused": True}
    result = run_walk_forward(feature_set_version, settings, walk_forward_config_from_params(params), tags=tags)
    folds = fold_sharpe_metrics(result.table)
    if folds:  # the governance policy's folds-passing check reads them (also when a retry reuses the run)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(settings.resolved_mlflow_tracking_uri)
        for key, value in folds.items():
            client.log_metric(result.run_id, key, value)
    return {**result.as_reference(), "metrics": summary_metrics(result.summary) | folds, "reused": False}


HEADLINE_METRICS = ("sharpe", "total_return", "max_drawdown")


def summary_metrics(summary: Any) -> dict[str, float]:
    """``wf_<strategy>_<metric>_mean`` for the headline metrics of a walk-forward summary, and the
    lower bound of each strategy's Sharpe interval (``wf_<strategy>_sharpe_ci_low``)."""
    import math

    out: dict[str, float] = {}
    for row in summary.to_dict("records"):
        for metric in HEADLINE_METRICS:
            out[f"wf_{row['strategy']}_{metric}_mean"] = row.get(f"{metric}_mean")
        out[f"wf_{row['strategy']}_sharpe_ci_low"] = row.get("sharpe_ci_low")  # the governance lower-bound check
    # NaN (e.g. no interval from one seed) is no evidence: left out, so the gate that needs it fails closed.
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def fold_sharpe_metrics(table: Any) -> dict[str, float]:
    """``wf_<strategy>_fold<k>_sharpe`` (:func:`~trading_core.registry.governance.fold_sharpe_key`): each test
    fold's Sharpe (mean over seeds, cost multiplier 1), read back by the governance gate."""
    import math

    from trading_core.registry.governance import fold_sharpe_key

    rows = table[(table["fold"] >= 0) & (table["cost_multiplier"] == 1.0)]
    means = rows.groupby(["strategy", "fold"])["sharpe"].mean()
    return {fold_sharpe_key(s, f): float(v) for (s, f), v in means.items() if math.isfinite(float(v))}


def _summary_metrics_from_run(settings: Settings, run_id: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(settings.resolved_mlflow_tracking_uri).get_run(run_id).data.metrics
    out: dict[str, float] = {}
    for key, value in metrics.items():  # the report logs <strategy>_<metric>_mean: the same names as summary_metrics
        if key.startswith("wf_") and key.endswith("_sharpe"):
            out[key] = float(value)  # per-fold Sharpe ratios (fold_sharpe_metrics)
        elif key.endswith(tuple(f"_{m}_mean" for m in HEADLINE_METRICS)) or key.endswith("_sharpe_ci_low"):
            out[f"wf_{key}"] = float(value)
    return out
