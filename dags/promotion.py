"""
### Promotion: governance gates -> alias `challenger` -> start the A/B

Runs when the training DAG registers a candidate (Asset `candidate_model`), or by hand for any
version (param `model_version`, e.g. to re-review one). Every gate **fails closed**: missing
evidence, an unreachable MLflow, a timeout or a rejection stops the run and nothing is promoted.

1. `resolve_version`: param `model_version` > the triggering event's version > alias `candidate`.
2. `drift_gate` (`DriftGateSensor`): recent bars in the lake, turned into features by the policy
   itself, against the training reference stored in the version (PSI per feature); the drifted
   share must not exceed the policy file's `max_drift_share`.
3. `governance_gate` (`GovernanceGateSensor`): the walk-forward metrics registered with the version
   against `config/governance.yaml` (Sharpe, its CI lower bound, drawdown, improvement over the
   champion, drift share, folds passing). Results become version tags `gate.governance.*`.
4. Approval, by `approval_path`:
   * `mlflow_tag` (`RegistryApprovalSensor`): a reviewer sets tag `approval=approved` (or
     `rejected` with `approval_comment`) on the version in the MLflow UI; the gate looks every
     `TRADING_APPROVAL_POKE_INTERVAL_S` seconds (default 60, read when this file is parsed);
   * `airflow_hitl` (`PolicyApprovalOperator`): Approve / Reject in Airflow's "Required actions".
5. `enter_rollout`: no champion yet -> the version becomes `champion` directly (nothing to A/B
   against); otherwise alias `challenger` and an A/B against the champion (`ab_rollout` DAG trades it).

Every gate's result is a version tag and a row in the audit table; each gate task has an
**MLflow model version** link.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task
from promotion_params import promotion_params
from trading_assets import CANDIDATE_MODEL, CHAMPION_MODEL, DEFAULT_ARGS
from trading_context import task_settings, triggering_extras, who
from trading_gates import DriftGateSensor, GovernanceGateSensor, RegistryApprovalSensor
from trading_hitl import PolicyApprovalOperator

GATE_POKE_INTERVAL = timedelta(minutes=5)
"""How often a gate looks again while its evidence is not there yet (reschedule mode: no slot held)."""
GATE_TIMEOUT = timedelta(hours=6)
"""The metric and drift gates give up (and fail) after this."""
APPROVAL_TIMEOUT = timedelta(days=3)
"""A reviewer has three days; then the gate fails (re-review: trigger this DAG with the version)."""

VERSION = "{{ ti.xcom_pull(task_ids='resolve_version')['version'] }}"
NAME = "{{ ti.xcom_pull(task_ids='resolve_version')['name'] }}"


@dag(
    dag_id="promotion",
    schedule=[CANDIDATE_MODEL],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["trading", "governance"],
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    params=promotion_params(),  # the form: dags/promotion_params.py
)
def promotion() -> None:
    @task
    def resolve_version(**context: Any) -> dict[str, str]:
        """Which version to review: the param, else the triggering candidate event, else alias candidate."""
        from trading_core.rollout.entry import version_to_review

        params, extras = context["params"], triggering_extras(context, CANDIDATE_MODEL)
        return version_to_review(task_settings(), params.get("model_name"), params.get("model_version"), extras)

    @task.branch
    def choose_approval(**context: Any) -> str:
        return "registry_approval" if context["params"]["approval_path"] == "mlflow_tag" else "hitl_approval"

    @task(trigger_rule="none_failed_min_one_success", outlets=[CHAMPION_MODEL])
    def enter_rollout(target: dict[str, str], *, outlet_events: Any, **context: Any) -> dict[str, Any]:
        """Challenger + A/B against the champion; with no champion yet the version becomes champion."""
        from trading_core.rollout.entry import enter_rollout as enter

        entry = enter(task_settings(), target["name"], target["version"], context["params"], **who(context))
        if entry.crowned is not None:
            outlet_events[CHAMPION_MODEL].extra = {**entry.crowned.as_dict(), "reason": "first champion"}
        return entry.as_reference()

    target = resolve_version()
    drift = DriftGateSensor(
        task_id="drift_gate", model_name=NAME, model_version=VERSION,
        poke_interval=GATE_POKE_INTERVAL.total_seconds(), timeout=GATE_TIMEOUT.total_seconds(),
    )  # fmt: skip
    governance = GovernanceGateSensor(
        task_id="governance_gate", model_name=NAME, model_version=VERSION,
        poke_interval=GATE_POKE_INTERVAL.total_seconds(), timeout=GATE_TIMEOUT.total_seconds(),
    )  # fmt: skip
    registry_approval = RegistryApprovalSensor(  # poke interval: TRADING_APPROVAL_POKE_INTERVAL_S (60 s)
        task_id="registry_approval", model_name=NAME, model_version=VERSION, timeout=APPROVAL_TIMEOUT.total_seconds(),
    )  # fmt: skip
    hitl_approval = PolicyApprovalOperator(
        task_id="hitl_approval",
        retries=0,  # a retry would ask the reviewer again; no answer / a rejection fails the run
        model_name=NAME, model_version=VERSION, response_timeout=APPROVAL_TIMEOUT,
        subject=f"Promote {NAME} v{VERSION} to challenger?",
        body=(f"{NAME} v{VERSION} passed the drift and governance gates.\n\n"
              "Review its metrics and gate results in the MLflow model registry (task link "
              "'MLflow model version'), then approve or reject. A rejection stops the promotion."),
    )  # fmt: skip
    route = choose_approval()
    target >> drift >> governance >> route >> [registry_approval, hitl_approval]
    [registry_approval, hitl_approval] >> enter_rollout(target)


promotion()
