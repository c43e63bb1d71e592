"""
### Training: data -> features -> forecaster (HPO) -> RL agent -> walk-forward -> candidate

Each box is a call of `trading_core.training` (the CLI runs the same functions: `trading
train-forecaster`, `hpo-forecaster`, `train-agent`, `walk-forward`):

1. `prepare`: when `source` is set, ingest it and build its feature set; otherwise train on an
   existing one (param `feature_set_version` > the triggering `features` event > latest).
2. `resolve` + `hpo_worker` (mapped over `hpo_workers`) + `select_params`: an Optuna study (TPE,
   median pruner on per-epoch validation loss) shared by the workers in the app DB.
3. `train_forecaster`: the CNN+LSTM+attention ensemble with the best parameters, against the
   majority-class and persistence baselines, in MLflow (pyfunc); announced on Asset `forecaster`.
4. `train_agent`: the hybrid RL agent (`algo`) on the forecaster's outputs.
5. `walk_forward`: purged folds; on each, every strategy (buy-and-hold, forecaster rule, agents) is
   retrained on the past and tested on the next window, over `seeds`; report in MLflow.
6. `register`: a version of `model_name`, alias `candidate`, lineage, metrics, run links; Asset `candidate_model`.

**Schedule**: every update of Asset `features`; **manual trigger**: the form below. A retry reuses
finished work (checkpoints, this run's FINISHED MLflow runs). The GPU tasks (pool `gpu`, 2-hour
timeout) go to the Celery queue `TRADING_GPU_QUEUE` (`default` unless a GPU worker serves `gpu`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task
from trading_assets import CANDIDATE_MODEL, DEFAULT_ARGS, FEATURES, FORECASTER, GPU_TASK
from trading_context import run_key, task_settings, triggering_extras
from training_params import training_params


@dag(
    dag_id="training",
    schedule=[FEATURES],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "training"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params=training_params(),  # the form, derived from trading_core.training_config.TrainingConfig
)
def training() -> None:
    @task
    def prepare(**context: Any) -> str | None:
        """Ingest the requested source and build its feature set (skipped: train on an existing one)."""
        from trading_core.training import prepare_feature_set

        return prepare_feature_set(context["params"], task_settings())

    @task
    def resolve(prepared: str | None, **context: Any) -> list[int]:
        """The feature set (prepared > params > features event > latest) and the study: XCom ``plan``."""
        from trading_core.training import plan_step

        extras = triggering_extras(context, FEATURES)
        plan = plan_step(context["params"], prepared, extras, task_settings(), run_key(context))
        context["ti"].xcom_push(key="plan", value=plan)
        return list(range(plan["hpo_workers"]))

    @task(**GPU_TASK)
    def hpo_worker(plan: dict[str, Any], worker: int) -> dict[str, Any]:
        """Run this worker's share of the trials (seeded by its index) on the shared study."""
        from trading_core.training import hpo_worker_step

        return hpo_worker_step(plan, worker, task_settings())

    @task(trigger_rule="none_failed")
    def select_params(plan: dict[str, Any]) -> dict[str, Any]:
        """Log the study to MLflow and return the best trial's overrides (none when HPO was skipped)."""
        from trading_core.training import select_params_step

        return select_params_step(plan, task_settings())

    @task(**GPU_TASK, outlets=[FORECASTER])
    def train_forecaster(plan: dict, best: dict, *, outlet_events: Any, **context: Any) -> dict[str, Any]:
        """Train, evaluate and log the ensemble with the best parameters; announce the run."""
        from trading_core.training import final_forecaster_step

        reference = final_forecaster_step(plan, best, task_settings(), run_key(context))
        outlet_events[FORECASTER].extra = reference
        return reference

    @task(**GPU_TASK)
    def train_agent(plan: dict[str, Any], forecaster: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The hybrid RL agent on the forecaster's outputs (a retry reuses a finished run)."""
        from trading_core.training import train_agent_step

        fsv, uri = plan["feature_set_version"], forecaster["model_uri"]
        return train_agent_step(fsv, uri, context["params"], task_settings(), run_key(context))

    @task(**GPU_TASK)
    def walk_forward(plan: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Walk-forward folds: every strategy retrained on each fold's past, tested on the next window."""
        from trading_core.training import walk_forward_step

        return walk_forward_step(plan["feature_set_version"], context["params"], task_settings(), run_key(context))

    @task(outlets=[CANDIDATE_MODEL])
    def register(forecaster: dict, agent: dict, validation: dict, *, outlet_events: Any, **context: Any) -> dict:
        """Register the candidate version (alias ``candidate``) with metrics and lineage; announce it."""
        from trading_core.training import candidate_step

        extra = candidate_step(task_settings(), forecaster, agent, validation, run_key(context), context["params"])
        outlet_events[CANDIDATE_MODEL].extra = extra
        return extra

    workers = resolve(prepare())
    plan = workers["plan"]
    best = select_params(plan)
    hpo_worker.partial(plan=plan).expand(worker=workers) >> best
    forecaster = train_forecaster(plan, best)
    validation = walk_forward(plan)
    forecaster >> validation
    register(forecaster, train_agent(plan, forecaster), validation)


training()
