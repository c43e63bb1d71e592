"""The steps of the training pipeline that sit between stages: data preparation, the RL agent,
walk-forward validation and registration, each idempotent per Airflow DAG run.

The DAG (``dags/training.py``) calls these; ``trading demo`` runs that DAG. Each step that logs to
MLflow tags its run with ``airflow.dag_run`` and, before doing any work, looks for a FINISHED run
with that tag: a retried task reuses what its previous try completed instead of training again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

from trading_core.config import Settings

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
    env = {"cost_bps": params.get("cost_bps", 1.0), "slippage_bps": params.get("slippage_bps", 2.0)}
    result = train_agent(
        feature_set_version,
        settings,
        algo=str(params.get("algo", "ppo")),
        timesteps=int(params.get("timesteps", 20_000)),
        forecaster_uri=forecaster_uri,
        n_envs=int(params.get("n_envs", 8)),
        seed=int(params.get("seed") or settings.seed),
        env=env,
        symbols=list(params["symbols"]) if params.get("symbols") else None,
        tags={"airflow.dag_run": dag_run},
    )
    return {**result.as_reference(), "reused": False}


def register_step(
    settings: Settings,
    forecaster: Mapping[str, Any],
    agent: Mapping[str, Any],
    validation: Mapping[str, Any],
    dag_run: str,
    name: str | None = None,
) -> dict[str, Any]:
    """Register the candidate (forecaster pyfunc + links to the agent and the validation run)."""
    from trading_core.registry.candidate import DEFAULT_MODEL_NAME, register_candidate

    metrics = dict(validation.get("metrics") or {})
    metrics |= {
        f"forecaster_{k}": v
        for k, v in (forecaster.get("metrics") or {}).items()
        if k in ("test_accuracy", "test_majority_accuracy", "p_value_vs_majority")
    }
    version = register_candidate(
        settings,
        model_uri=str(forecaster["model_uri"]),
        lineage={
            "dataset_version": str(forecaster["dataset_version"]),
            "feature_set_version": str(forecaster["feature_set_version"]),
        },
        metrics=metrics,
        links={
            "forecaster_run": str(forecaster["run_id"]),
            "agent_run": str(agent["run_id"]),
            "agent_uri": str(agent["model_uri"]),
            "validation_run": str(validation.get("run_id")),
        },
        dag_run=dag_run,
        name=name or DEFAULT_MODEL_NAME,
    )
    return version.as_reference()


def walk_forward_config_from_params(params: Mapping[str, Any]) -> Any:
    """The DAG form's walk-forward knobs as a :class:`~trading_core.backtest.walkforward.WalkForwardConfig`."""
    from trading_core.backtest.walkforward import WalkForwardConfig

    values: dict[str, Any] = {
        "n_folds": int(params.get("folds", 3)),
        "test_size": int(params.get("test_size", 63)),
        "seeds": tuple(int(s) for s in (params.get("seeds") or [0])),
        "timesteps": int(params.get("wf_timesteps", 10_000)),
        "n_envs": int(params.get("n_envs", 4)),
        "env": {"cost_bps": float(params.get("cost_bps", 1.0)), "slippage_bps": float(params.get("slippage_bps", 2.0))},
    }
    if params.get("algo") and params["algo"] != "ensemble":
        values["algo"] = params["algo"]
    if params.get("wf_epochs"):
        values["forecaster_train"] = {**WalkForwardConfig().forecaster_train, "epochs": int(params["wf_epochs"])}
    if params.get("symbols"):
        values["symbols"] = tuple(params["symbols"])
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
    return {**result.as_reference(), "metrics": summary_metrics(result.summary), "reused": False}


HEADLINE_METRICS = ("sharpe", "total_return", "max_drawdown")


def summary_metrics(summary: Any) -> dict[str, float]:
    """``wf_<strategy>_<metric>_mean`` for the headline metrics of a walk-forward summary, and the
    lower bound of each strategy's Sharpe interval (``wf_<strategy>_sharpe_ci_low``)."""
    out: dict[str, float] = {}
    for row in summary.to_dict("records"):
        for metric in HEADLINE_METRICS:
            value = row.get(f"{metric}_mean")
            if value is not None:
                out[f"wf_{row['strategy']}_{metric}_mean"] = float(value)
        if row.get("sharpe_ci_low") is not None:  # the governance policy's lower-bound check needs it
            out[f"wf_{row['strategy']}_sharpe_ci_low"] = float(row["sharpe_ci_low"])
    return out


def _summary_metrics_from_run(settings: Settings, run_id: str) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(settings.resolved_mlflow_tracking_uri).get_run(run_id).data.metrics
    return {k: float(v) for k, v in metrics.items() if k.endswith("_mean")}
