"""
### Drift monitor: Evidently drift and paper-trading decay -> retraining, with a cooldown

Every weekday after the close (and whenever a new feature set lands on Asset `features`) the
champion is checked against its own training reference:

1. `check`: feature drift (Evidently `DataDriftPreset` on the last `window` bars vs the reference
   sample stored with the version), prediction drift (the forecaster's class probabilities now vs
   over its training period) and performance decay (its paper-trading Sharpe and hit rate
   vs its walk-forward Sharpe). The HTML report and per-column scores go to MLflow (experiment
   `monitoring`), a row per check to `drift_checks` in the app DB.
2. `guard`: retrain only when the check says so **and** no retraining triggered by this monitor lies
   within `cooldown_days`, **and** no training run is queued or running: a storm of alerts starts
   one retraining.
3. `retrain`: triggers the `training` DAG with a conf that records why (`trigger_reason`,
   `drift_check_id`); the check row remembers the run it started.

* **Manual trigger**: check any `model_version` as of any date (`as_of`), with any window or threshold.
* Same function on the command line: `trading monitor check`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task
from trading_assets import DEFAULT_ARGS, FEATURES, REPLAY_START, model_name_param, model_version_param
from trading_context import task_settings


@dag(
    dag_id="drift_monitor",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("30 22 * * 1-5", timezone="UTC"), assets=[FEATURES]),
    start_date=REPLAY_START,
    catchup=False,
    max_active_runs=1,
    tags=["trading", "monitoring"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params={
        "model_name": model_name_param(),
        "model_version": model_version_param("Version to check; empty = the champion."),
        "as_of": Param(
            None, type=["null", "string"], format="date", description="Check as of this date; empty = the run's date."
        ),
        "window": Param(
            63, type="integer", minimum=20, maximum=1000, description="Recent bars compared with the reference."
        ),
        "drift_share": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="Share of drifted columns that is drift; empty = governance max_drift_share.",
        ),
        "cooldown_days": Param(20, type="number", minimum=0, description="No second retraining within this many days."),
        "retrain": Param(True, type="boolean", description="Trigger training when drift or decay is found."),
    },  # fmt: skip
)
def drift_monitor() -> None:
    @task
    def check(**context: Any) -> dict[str, Any]:
        """Feature drift, prediction drift, decay; recorded in MLflow and the app DB."""
        from trading_core.monitoring.check import run_check

        settings, params = task_settings(), context["params"]
        as_of = params.get("as_of") or context.get("logical_date") or context["dag_run"].run_after
        outcome = run_check(
            settings, params.get("model_name") or settings.model_name, params.get("model_version"),
            as_of=as_of, window=params["window"], drift_share=params.get("drift_share"),
            cooldown_days=params["cooldown_days"], actor=f"airflow:{context['dag'].dag_id}/{context['run_id']}",
        )  # fmt: skip
        return outcome.as_dict()

    @task.short_circuit
    def guard(outcome: dict[str, Any], **context: Any) -> bool:
        """Retrain? Only on drift/decay, outside the cooldown, and when no training run is active."""
        if not context["params"]["retrain"] or not outcome["should_retrain"]:
            return False
        active = context["ti"].get_dr_count(dag_id="training", states=["queued", "running"])
        if active:
            print(f"a training run is already {active} queued/running: not starting another")  # noqa: T201
            return False
        return True

    outcome = check()
    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="training",
        conf={
            "trigger_reason": "{{ ti.xcom_pull(task_ids='check')['reason'] }}",
            "drift_check_id": "{{ ti.xcom_pull(task_ids='check')['check_id'] }}",
        },
        wait_for_completion=False,
    )

    @task
    def remember(outcome: dict[str, Any], **context: Any) -> None:
        """The check row keeps the training run it started (the next check's cooldown reads it)."""
        from trading_core.monitoring.store import set_triggered_run

        run_id = context["ti"].xcom_pull(task_ids="retrain", key="trigger_run_id")
        set_triggered_run(task_settings().resolved_database_url, outcome["check_id"], f"training:{run_id}")

    guard(outcome) >> retrain >> remember(outcome)


drift_monitor()
