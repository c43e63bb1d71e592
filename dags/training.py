"""
### Training: data -> features -> forecaster (HPO) -> RL agent -> walk-forward -> candidate

The whole training pipeline, each box a library call (the same ones the CLI runs):

1. `prepare`: when `source` is set, ingest it and build its feature set; otherwise train on an
   existing feature set (param `feature_set_version` > the triggering `features` event > latest).
2. `resolve` + `hpo_worker` (mapped over `hpo_workers`, pool `gpu`) + `select_params`: an Optuna
   study (TPE, median pruner on per-epoch validation loss) shared by the workers in the app DB.
3. `train_forecaster` (pool `gpu`): the CNN+LSTM+attention ensemble with the best parameters,
   evaluated against the majority-class and persistence baselines, logged to MLflow (pyfunc).
4. `train_agent` (pool `gpu`): the hybrid RL agent (`algo`) on the forecaster's outputs.
5. `walk_forward`: folds over time with purge and embargo; on each fold the forecaster and every
   agent are retrained on the fold's past and tested on the next window, against buy-and-hold and
   the forecaster-only rule, over `seeds`; report (plots, fold table, HTML) in MLflow.
6. `register`: a new version of `model_name` with alias `candidate`, tagged with lineage,
   walk-forward metrics and links to the forecaster, agent and validation runs.

* **Schedule**: on every update of Asset `features`. **Manual trigger**: the form below.
* Training tasks retry (2 retries, 2-hour timeout); a retried task reuses finished work: the
  forecaster resumes from its last epoch's checkpoint, the agent and the walk-forward find their
  FINISHED MLflow run tagged with this DAG run, registration finds its version.
* **Output**: Asset `forecaster` (after step 3) and Asset `candidate_model` (extra: name, version,
  alias and the runs behind it). XCom carries references only.
* Same functions on the command line: `trading train-forecaster`, `trading hpo-forecaster`,
  `trading train-agent`, `trading walk-forward`.

The four training tasks in pool `gpu` go to the Celery queue `TRADING_GPU_QUEUE` (`default` unless a
GPU worker serves `gpu`: docker compose's `gpu` profile).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task
from trading_assets import CANDIDATE_MODEL, DEFAULT_ARGS, FEATURES, FORECASTER, GPU_QUEUE
from training_params import TRAINING_PARAMS

TRAINING_TIMEOUT = timedelta(hours=2)
"""execution_timeout of an HPO worker and of the final training (a hung CUDA call must not hold the pool)."""


@dag(
    dag_id="training",
    schedule=[FEATURES],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "training"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params=TRAINING_PARAMS,  # the form: dags/training_params.py
)
def training() -> None:
    @task
    def prepare(**context: Any) -> str | None:
        """Ingest the requested source and build its feature set (skipped: train on an existing one)."""
        from trading_core.config import get_settings
        from trading_core.training import prepare_feature_set

        return prepare_feature_set(context["params"], get_settings())

    @task
    def resolve(prepared: str | None, **context: Any) -> list[int]:
        """Resolve the feature set (prepared > params > triggering features event > latest), create the study.

        Pushes the plan under the XCom key ``plan``; returns the worker indices hpo_worker maps over.
        """
        from trading_core.config import get_settings
        from trading_core.forecast.resolve import plan_training

        events = (context.get("triggering_asset_events") or {}).get(FEATURES, [])
        extras = [event.extra for event in sorted(events, key=lambda event: event.timestamp)]
        run_key = f"{context['dag'].dag_id}:{context['run_id']}"
        params = {**context["params"], "feature_set_version": prepared or context["params"].get("feature_set_version")}
        plan = plan_training(params, extras, get_settings(), run_key)
        context["ti"].xcom_push(key="plan", value=plan.as_dict())
        return list(range(plan.hpo_workers))

    @task(pool="gpu", queue=GPU_QUEUE, execution_timeout=TRAINING_TIMEOUT)
    def hpo_worker(plan: dict[str, Any], worker: int) -> dict[str, Any]:
        """Run this worker's share of the trials (seeded by its index) on the shared study."""
        from trading_core.config import get_settings
        from trading_core.forecast.hpo import run_hpo_worker

        return run_hpo_worker(
            plan["study_name"],
            plan["feature_set_version"],
            get_settings(),
            plan["hpo_trials_per_worker"],
            worker=worker,
            epochs=plan["hpo_epochs"],
            seed=plan["seed"],
            max_train_samples=plan["max_train_samples"],
            device=plan["device"],
        )

    @task(trigger_rule="none_failed")
    def select_params(plan: dict[str, Any]) -> dict[str, Any]:
        """Log the study to MLflow and return the best trial's overrides (none when HPO was skipped)."""
        if plan["study_name"] is None:
            return {"model": {}, "train": {}, "study_name": None, "hpo_run_id": None}
        from trading_core.config import get_settings
        from trading_core.forecast.hpo import best_params, log_study

        settings = get_settings()
        run_id = log_study(plan["study_name"], settings)
        return {**best_params(plan["study_name"], settings), "study_name": plan["study_name"], "hpo_run_id": run_id}

    @task(pool="gpu", queue=GPU_QUEUE, execution_timeout=TRAINING_TIMEOUT, outlets=[FORECASTER])
    def train_forecaster(
        plan: dict[str, Any], best: dict[str, Any], *, outlet_events: Any, **context: Any
    ) -> dict[str, Any]:
        """Train, evaluate and log the ensemble with the best parameters; announce the run."""
        from trading_core.config import get_settings
        from trading_core.forecast.resolve import TrainingPlan
        from trading_core.training import train_forecaster_step

        model, train_overrides = TrainingPlan(**plan).overrides(best)
        dag_run = f"{context['dag'].dag_id}:{context['run_id']}"
        tags = {"hpo_study": best["study_name"], "hpo_run_id": best["hpo_run_id"]} if best["study_name"] else {}
        result = train_forecaster_step(
            plan["feature_set_version"], get_settings(), dag_run, model=model, train=train_overrides, tags=tags
        )
        reference = {**result, "hpo_study": best["study_name"]}
        outlet_events[FORECASTER].extra = reference
        return reference

    @task(pool="gpu", queue=GPU_QUEUE, execution_timeout=TRAINING_TIMEOUT)
    def train_agent(plan: dict[str, Any], forecaster: dict[str, Any], **context: Any) -> dict[str, Any]:
        """The hybrid RL agent on the forecaster's outputs (a retry reuses a finished run)."""
        from trading_core.config import get_settings
        from trading_core.training import train_agent_step

        dag_run = f"{context['dag'].dag_id}:{context['run_id']}"
        return train_agent_step(
            plan["feature_set_version"], forecaster["model_uri"], context["params"], get_settings(), dag_run
        )

    @task(pool="gpu", queue=GPU_QUEUE, execution_timeout=TRAINING_TIMEOUT)
    def walk_forward(plan: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Walk-forward folds: every strategy retrained on each fold's past, tested on the next window."""
        from trading_core.config import get_settings
        from trading_core.training import walk_forward_step

        dag_run = f"{context['dag'].dag_id}:{context['run_id']}"
        return walk_forward_step(plan["feature_set_version"], context["params"], get_settings(), dag_run)

    @task(outlets=[CANDIDATE_MODEL])
    def register(
        forecaster: dict[str, Any],
        agent: dict[str, Any],
        validation: dict[str, Any],
        *,
        outlet_events: Any,
        **context: Any,
    ) -> dict[str, Any]:
        """Register the candidate version (alias ``candidate``) with metrics and lineage; announce it."""
        from trading_core.config import get_settings
        from trading_core.training import register_step

        dag_run = f"{context['dag'].dag_id}:{context['run_id']}"
        params = context["params"]
        trigger = {key: params.get(key) for key in ("trigger_reason", "drift_check_id")}
        version = register_step(get_settings(), forecaster, agent, validation, dag_run, params["model_name"], trigger)
        extra = {
            **version,
            "feature_set_version": forecaster["feature_set_version"],
            "forecaster_run": forecaster["run_id"],
            "agent_run": agent["run_id"],
            "validation_run": validation.get("run_id"),
        }
        outlet_events[CANDIDATE_MODEL].extra = extra
        return extra

    workers = resolve(prepare())
    plan = workers["plan"]
    searched = hpo_worker.partial(plan=plan).expand(worker=workers)
    best = select_params(plan)
    searched >> best
    forecaster = train_forecaster(plan, best)
    agent = train_agent(plan, forecaster)
    validation = walk_forward(plan)
    forecaster >> validation
    register(forecaster, agent, validation)


training()
