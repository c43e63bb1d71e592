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

from airflow.sdk import Param, dag, task
from trading_assets import CANDIDATE_MODEL, CHAMPION_MODEL, DEFAULT_ARGS, model_name_param, model_version_param
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
    params={
        "model_name": model_name_param(),
        "model_version": model_version_param(
            "Version to review; empty = the triggering event's, else alias candidate."
        ),
        "approval_path": Param(
            "mlflow_tag",
            type="string",
            enum=["mlflow_tag", "airflow_hitl"],
            description="Who approves: a reviewer's tag in MLflow, or Airflow's human-in-the-loop form.",
        ),
        "champion_share": Param(
            0.8,
            type="number",
            exclusiveMinimum=0,
            exclusiveMaximum=1,
            description="Champion's share of the A/B capital.",
        ),
        "ab_capital": Param(1_000_000.0, type="number", exclusiveMinimum=0, description="Paper capital of the A/B."),
        "ab_min_days": Param(20, type="integer", minimum=2, description="No A/B verdict before this many paired days."),
        "ab_max_days": Param(120, type="integer", minimum=3, description="No verdict by then: roll back."),
        "ab_alpha": Param(
            0.05, type="number", exclusiveMinimum=0, exclusiveMaximum=1, description="Always-valid type-I error."
        ),
        "ab_max_challenger_drawdown": Param(
            0.15,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="Guard: challenger drawdown beyond this rolls back at once.",
        ),
        "ab_start_after": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Trade bars after this date (replays); empty = after the newest bar in the lake.",
        ),
    },  # fmt: skip
)
def promotion() -> None:
    @task
    def resolve_version(**context: Any) -> dict[str, str]:
        """Which version to review: the param, else the triggering candidate event, else alias candidate."""
        from trading_core.config import get_settings
        from trading_core.registry.aliases import CANDIDATE, alias_version, client_for

        params = context["params"]
        name = params.get("model_name") or get_settings().model_name
        version = params.get("model_version")
        events = (context.get("triggering_asset_events") or {}).get(CANDIDATE_MODEL, [])
        if not version and events:
            newest = max(events, key=lambda event: event.timestamp).extra
            name, version = newest.get("name", name), newest.get("version")
        if not version:
            version = alias_version(client_for(get_settings()), name, CANDIDATE)
        if not version:
            raise ValueError(f"no version to review: {name} has no alias {CANDIDATE!r} and none was given")
        return {"name": str(name), "version": str(version)}

    @task.branch
    def choose_approval(**context: Any) -> str:
        return "registry_approval" if context["params"]["approval_path"] == "mlflow_tag" else "hitl_approval"

    @task(trigger_rule="none_failed_min_one_success", outlets=[CHAMPION_MODEL])
    def enter_rollout(target: dict[str, str], *, outlet_events: Any, **context: Any) -> dict[str, Any]:
        """Challenger + A/B against the champion; with no champion yet the version becomes champion."""
        from trading_core.config import get_settings
        from trading_core.registry import aliases
        from trading_core.rollout.ab import ABConfig, start_ab
        from trading_core.rollout.sequential import SequentialConfig

        settings, params = get_settings(), context["params"]
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        who = {"actor": f"airflow:{dag_id}/{run_id}/enter_rollout", "dag_run": f"{dag_id}:{run_id}"}
        name, version = target["name"], target["version"]
        champion = aliases.alias_version(aliases.client_for(settings), name, aliases.CHAMPION)
        if champion is None:
            change = aliases.crown(
                settings, name, version, reason="passed every gate; no champion to A/B against", **who
            )
            outlet_events[CHAMPION_MODEL].extra = {**change.as_dict(), "reason": "first champion"}
            return {"champion": version, "ab_id": None}
        if champion == version:
            raise ValueError(f"{name} v{version} is already the champion")
        aliases.set_challenger(settings, name, version, **who)
        rule = SequentialConfig(
            min_samples=params["ab_min_days"],
            max_samples=params["ab_max_days"],
            alpha=params["ab_alpha"],
            max_challenger_drawdown=params["ab_max_challenger_drawdown"],
        )
        config = ABConfig(champion_share=params["champion_share"], capital=params["ab_capital"], rule=rule)
        ab_id = start_ab(settings, name, champion, version, config, start_after=params.get("ab_start_after"), **who)
        return {"champion": champion, "challenger": version, "ab_id": ab_id}

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
