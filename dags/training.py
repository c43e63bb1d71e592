"""
### Training: feature set -> Optuna HPO over N workers -> forecaster ensemble in MLflow

Turns a **feature_set_version** into a trained **forecaster run**: an Optuna study (TPE sampler,
median pruner on the per-epoch validation loss) searched by `hpo_workers` mapped tasks sharing one
study in the app DB, then the CNN+LSTM+attention ensemble trained with the best trial's parameters,
evaluated against the baselines and logged to MLflow (experiment `forecaster`; the study goes to
`forecaster-hpo`, one run with the best parameters and a nested run per trial).

* **Schedule**: on every update of Asset `features`; the feature set comes from the event's extra.
* **Manual trigger**: the form; an empty `feature_set_version` means the latest recorded feature set.
  `hpo_workers = 0` skips the search and trains with the library's default parameters.
* **Fan-out**: `hpo_worker` is mapped over `range(hpo_workers)`; each runs `hpo_trials_per_worker`
  trials of `hpo_epochs` epochs (one member per trial). HPO workers and the final training run in
  the pool `gpu` (created by the setup with 1 slot: one training at a time on a one-GPU box; give it
  one slot per GPU, or per CPU worker, to run the HPO workers in parallel). Each of these tasks has
  2 retries and a 2-hour timeout. A retried worker resumes: the trials it finished count, the one it
  left running is marked failed; a retried training resumes from its last epoch's checkpoint.
* **Output**: Asset `forecaster`, event extra: the run reference `{run_id, model_uri,
  feature_set_version, dataset_version, metrics, params, seconds, device}` plus `hpo_study`.
* The RL agent, walk-forward validation and registration (outlet `candidate_model`) join this DAG
  in later issues.
* Same functions on the command line: `trading train-forecaster`, `trading hpo-forecaster`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from trading_assets import FEATURES, FORECASTER

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
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
    },
    # Defaults equal the library's (TrainingPlan, TrainConfig, ForecasterConfig): tests/test_training_dag.py checks it.
    params={
        "feature_set_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^fs-[0-9a-f]{1,64}$",
            description="Feature set to train on; empty = the triggering features event's, else the latest recorded.",
        ),
        "hpo_workers": Param(
            2, type="integer", minimum=0, maximum=64, description="Mapped HPO tasks sharing the study; 0 = no search."
        ),
        "hpo_trials_per_worker": Param(4, type="integer", minimum=1, maximum=1000, description="Trials per worker."),
        "hpo_epochs": Param(3, type="integer", minimum=1, maximum=200, description="Epochs of each HPO trial."),
        "epochs": Param(20, type="integer", minimum=1, maximum=1000, description="Epochs of each final member."),
        "ensemble_size": Param(5, type="integer", minimum=1, maximum=50, description="Members of the ensemble."),
        "max_train_samples": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Training samples per epoch (a random subset each epoch); empty = all.",
        ),
        "device": Param(
            "auto",
            type="string",
            pattern=r"^(auto|cpu|cuda(:[0-9]{1,2})?)$",
            description="auto = CUDA when the worker has it (bf16 AMP), else CPU.",
        ),
        "seed": Param(42, type="integer", minimum=0, description="Seed of the sampler, initial weights and batches."),
    },
)
def training() -> None:
    @task
    def resolve(**context: Any) -> list[int]:
        """Resolve the feature set (params > triggering features event > latest), create the study.

        Pushes the plan under the XCom key ``plan``; returns the worker indices hpo_worker maps over.
        """
        from trading_core.config import get_settings
        from trading_core.forecast.resolve import plan_training

        events = (context.get("triggering_asset_events") or {}).get(FEATURES, [])
        extras = [event.extra for event in sorted(events, key=lambda event: event.timestamp)]
        run_key = f"{context['dag'].dag_id}:{context['run_id']}"
        plan = plan_training(context["params"], extras, get_settings(), run_key)
        context["ti"].xcom_push(key="plan", value=plan.as_dict())
        return list(range(plan.hpo_workers))

    @task(pool="gpu", execution_timeout=TRAINING_TIMEOUT)
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

    @task(pool="gpu", execution_timeout=TRAINING_TIMEOUT, outlets=[FORECASTER])
    def train_forecaster(
        plan: dict[str, Any], best: dict[str, Any], *, outlet_events: Any, **context: Any
    ) -> dict[str, Any]:
        """Train, evaluate and log the ensemble with the best parameters; announce the run."""
        from trading_core.config import get_settings
        from trading_core.forecast.pipeline import train_forecaster as train
        from trading_core.forecast.resolve import TrainingPlan

        model, train_overrides = TrainingPlan(**plan).overrides(best)
        tags = {"airflow.dag_run": f"{context['dag'].dag_id}:{context['run_id']}"}
        if best["study_name"]:
            tags |= {"hpo_study": best["study_name"], "hpo_run_id": best["hpo_run_id"]}
        result = train(plan["feature_set_version"], get_settings(), model=model, train=train_overrides, tags=tags)
        reference = {**result.as_reference(), "hpo_study": best["study_name"]}
        outlet_events[FORECASTER].extra = reference
        return reference

    workers = resolve()
    plan = workers["plan"]
    searched = hpo_worker.partial(plan=plan).expand(worker=workers)
    best = select_params(plan)
    searched >> best
    train_forecaster(plan, best)


training()
