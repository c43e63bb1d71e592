"""The gate sensors of plugins/trading_gates.py, run for real with dag.test() on tiny DAGs.

The library gates (``trading_core.registry.gates``, the A/B's in ``trading_core.rollout.ab``) are
replaced by scripted outcomes; what is checked is the Airflow side: passed -> success with the
outcome as XCom, failed -> failed without retry, waiting past the timeout -> failed and recorded, a
library error -> failed (never passed), and the MLflow model-version link of a version resolved at
run time.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from trading_core.config import Settings

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
sys.path.insert(0, str(PLUGINS))  # as Airflow does in its processes

import trading_gates  # noqa: E402
from trading_gates import (  # noqa: E402
    ABDecisionSensor,
    DriftGateSensor,
    GovernanceGateSensor,
    MLflowModelVersionLink,
    RegistryApprovalSensor,
)

LINK = "MLflow model version"
RunDag = Callable[..., dict[str, Any]]
_ids = itertools.count()


class Script:
    """A scripted library gate: returns (or raises) its items in order, the last one forever; records calls."""

    def __init__(self, *items: Any) -> None:
        self.items, self.calls = list(items), []  # type: ignore[var-annotated]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        item = self.items[min(len(self.calls), len(self.items)) - 1]
        if isinstance(item, BaseException):
            raise item
        return item


@pytest.fixture
def gates(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The library module, with record_timeout and model_version_url scripted (the gates per test)."""
    from trading_core.registry import gates

    monkeypatch.setattr(gates, "record_timeout", Script(None))
    monkeypatch.setattr(gates, "model_version_url", lambda _settings, name, version: f"http://mlflow/{name}/v{version}")
    return gates


@pytest.fixture
def ab(gates: Any) -> Any:
    """The A/B library module (its ``ab_gate`` is scripted per test); ``gates`` scripts record_timeout."""
    from trading_core.rollout import ab

    return ab


def outcome(gates: Any, gate: str, status: str, *reasons: str, **details: Any) -> Any:
    return gates.GateOutcome(gate=gate, status=status, reasons=list(reasons), details=details)


@pytest.fixture
def dag_runs(airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunDag:
    """``run_dag``, with the dags-folder bundle pointed at an empty folder (dag.test() re-parses its bundle)."""
    from airflow import settings as airflow_settings

    empty = tmp_path / "no-dags"
    empty.mkdir()
    monkeypatch.setattr(airflow_settings, "DAGS_FOLDER", str(empty))
    return run_dag


def run_dag(make_sensor: Callable[[], Any], *, upstream: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a one-sensor DAG (after a task returning ``upstream``, when given) with dag.test().

    Returns the DAG run's state, the sensor's state and try number, its XComs (by key) and the run id.
    """
    from airflow.sdk import DAG, task

    dag_id = f"gate_test_{next(_ids)}_{datetime.now(UTC):%H%M%S%f}"
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False) as dag:
        sensor = make_sensor()
        if upstream is not None:

            @task
            def register() -> dict[str, Any]:
                return upstream

            register() >> sensor
    _serialize(dag)
    run = dag.test()
    return {"run": run, "dag": dag, **_sensor_row(dag_id, run.run_id, sensor.task_id)}


def _serialize(dag: Any) -> None:
    """Write the DAG to the metadata DB as the DAG processor would (dag.test() runs serialized DAGs only)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    DagBundlesManager().sync_bundles_to_db()
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session
        )


def _sensor_row(dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        ).one()
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id
            )
        ).all()
        xcoms = {row.key: XComModel.deserialize_value(row) for row in rows}
        return {"state": str(ti.state), "try_number": ti.try_number, "xcoms": xcoms, "ti": ti}


# ------------------------------------------------------------------ constructor


def test_sensors_reschedule_by_default_and_refuse_to_fail_open() -> None:
    sensor = GovernanceGateSensor(task_id="g", model_name="m", model_version="1", poke_interval=5, timeout=30)
    assert (sensor.mode, sensor.poke_interval, sensor.timeout) == ("reschedule", 5, 30)
    assert ABDecisionSensor(task_id="ab", ab_id="x").timeout == 30 * 24 * 3600
    assert set(GovernanceGateSensor.template_fields) == {"model_name", "model_version", "policy_path"}
    assert ABDecisionSensor.template_fields == ("ab_id",)
    assert ABDecisionSensor(task_id="ab", ab_id="x", mode="poke", timeout=0, soft_fail=True).soft_fail  # a DAG's choice
    for flag in ("never_fail", "silent_fail"):
        with pytest.raises(ValueError, match=f"fail closed, {flag}"):
            DriftGateSensor(task_id="d", model_name="m", model_version="1", **{flag: True})


def test_the_approval_gate_pokes_at_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mlflow_tag approval path looks for the reviewer's tag every approval_poke_interval_s (<= 60 s)."""
    from pydantic import ValidationError

    monkeypatch.chdir(tmp_path)  # no stray .env
    default = Settings.model_fields["approval_poke_interval_s"].default
    assert 0 < default <= 60
    sensor = RegistryApprovalSensor(task_id="a", model_name="m", model_version="1")
    assert (sensor.mode, sensor.poke_interval, sensor.timeout) == ("reschedule", default, 3 * 24 * 3600)
    monkeypatch.setenv("TRADING_APPROVAL_POKE_INTERVAL_S", "15")
    assert RegistryApprovalSensor(task_id="a", model_name="m", model_version="1").poke_interval == 15
    assert RegistryApprovalSensor(task_id="a", model_name="m", model_version="1", poke_interval=5).poke_interval == 5
    monkeypatch.setenv("TRADING_APPROVAL_POKE_INTERVAL_S", "0")  # would hammer MLflow: refused, by name
    with pytest.raises(ValidationError, match="approval_poke_interval_s"):
        RegistryApprovalSensor(task_id="a", model_name="m", model_version="1")


def _context(dag_id: str = "promotion", run_id: str = "manual__1", task_id: str = "gate") -> Any:
    """The part of an Airflow task context the gate sensors read."""
    return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": run_id, "ti": SimpleNamespace(task_id=task_id)}


def test_a_poke_maps_each_status_and_passes_the_audit_keywords(gates: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    drift = Script(
        outcome(gates, "drift", "waiting"),
        outcome(gates, "drift", "passed", share=0.1),
        outcome(gates, "drift", "failed", "drift share 0.6 > 0.3"),
        outcome(gates, "drift", "maybe"),
    )
    monkeypatch.setattr(gates, "drift_gate", drift)
    sensor = DriftGateSensor(task_id="gate", model_name="policy", model_version="4")
    assert sensor.poke(_context()).is_done is False
    done = sensor.poke(_context())
    assert done.is_done and done.xcom_value == outcome(gates, "drift", "passed", share=0.1).as_dict()
    with pytest.raises(AirflowFailException, match="drift gate for policy version 4 failed: drift share 0.6 > 0.3"):
        sensor.poke(_context())
    with pytest.raises(AirflowFailException, match="unknown status 'maybe'; failing closed"):
        sensor.poke(_context())
    args, kwargs = drift.calls[0]
    assert args[1:] == ("policy", "4")
    assert kwargs == {"actor": "airflow:promotion/manual__1/gate", "dag_run": "promotion:manual__1"}


def test_a_rejection_fails_with_the_reviewers_comment(gates: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rejected = outcome(gates, "approval", "failed", "rejected by alice", approval_comment="drawdown too deep in 2022")
    monkeypatch.setattr(gates, "approval_gate", Script(rejected))
    sensor = RegistryApprovalSensor(task_id="gate", model_name="policy", model_version="4")
    with pytest.raises(AirflowFailException, match="rejected by alice; reviewer comment: drawdown too deep in 2022"):
        sensor.poke(_context())
    quoted = outcome(gates, "approval", "failed", "rejected: too risky", approval_comment="too risky")
    monkeypatch.setattr(gates, "approval_gate", Script(quoted))
    with pytest.raises(AirflowFailException, match=r"failed: rejected: too risky$"):  # quoted once, not twice
        sensor.poke(_context())


def test_governance_passes_the_policy_path_and_none_when_unset(gates: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(outcome(gates, "governance", "waiting"))
    monkeypatch.setattr(gates, "governance_gate", script)
    for path, expected in [("config/governance.yaml", Path("config/governance.yaml")), (None, None), ("None", None)]:
        GovernanceGateSensor(task_id="gate", model_name="m", model_version="1", policy_path=path).poke(_context())
        assert script.calls[-1][1]["policy_path"] == expected


def test_an_ab_decision_must_be_promote_or_rollback(gates: Any, ab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = ABDecisionSensor(task_id="gate", ab_id="ab-7")
    monkeypatch.setattr(ab, "ab_gate", Script(outcome(gates, "ab", "passed", decision="promote")))
    done = sensor.poke(_context())
    assert done.is_done and done.xcom_value == {
        "gate": "ab",
        "status": "passed",
        "reasons": [],
        "details": {"decision": "promote"},
    }
    monkeypatch.setattr(ab, "ab_gate", Script(outcome(gates, "ab", "passed", decision="keep going")))
    with pytest.raises(AirflowFailException, match="without a decision.*'keep going'"):
        sensor.poke(_context())
    monkeypatch.setattr(ab, "ab_gate", Script(outcome(gates, "ab", "failed", "no samples recorded")))
    with pytest.raises(AirflowFailException, match="ab gate for ab-7 failed: no samples recorded"):
        sensor.poke(_context())


def test_the_link_is_empty_for_unrendered_templates(gates: Any) -> None:
    link, key = MLflowModelVersionLink(), None
    rendered = RegistryApprovalSensor(task_id="gate", model_name="policy", model_version="9")
    assert link.get_link(rendered, ti_key=key) == "http://mlflow/policy/v9"  # type: ignore[arg-type]
    template = RegistryApprovalSensor(task_id="gate", model_name="policy", model_version="{{ ti.xcom_pull() }}")
    assert link.get_link(template, ti_key=key) == ""  # type: ignore[arg-type]


# ------------------------------------------------------------------ real runs (dag.test)


@pytest.mark.airflow
def test_governance_waits_then_passes_with_the_outcome_as_xcom(
    gates: Any, dag_runs: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed = outcome(gates, "governance", "passed", "sharpe 1.2 >= 0.5", sharpe=1.2)
    script = Script(
        outcome(gates, "governance", "waiting", "no metrics yet"), outcome(gates, "governance", "waiting"), passed
    )
    monkeypatch.setattr(gates, "governance_gate", script)
    result = dag_runs(
        lambda: GovernanceGateSensor(
            task_id="governance", model_name="policy", model_version="3", poke_interval=0, timeout=60
        )
    )
    assert (result["run"].state, result["state"], result["try_number"]) == ("success", "success", 1)
    assert result["xcoms"]["return_value"] == passed.as_dict()
    assert len(script.calls) == 3  # two reschedules, then done
    dag_id, run_id = result["dag"].dag_id, result["run"].run_id
    assert script.calls[-1][1]["actor"] == f"airflow:{dag_id}/{run_id}/governance"
    assert script.calls[-1][1]["dag_run"] == f"{dag_id}:{run_id}"
    assert gates.record_timeout.calls == []


@pytest.mark.airflow
def test_a_failed_gate_fails_the_task_without_retry(
    gates: Any, dag_runs: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(outcome(gates, "approval", "failed", "rejected by bob", approval_comment="not enough folds"))
    monkeypatch.setattr(gates, "approval_gate", script)
    result = dag_runs(
        lambda: RegistryApprovalSensor(
            task_id="approval", model_name="policy", model_version="3", poke_interval=0, retries=2, retry_delay=0
        )
    )
    assert (result["run"].state, result["state"], result["try_number"]) == ("failed", "failed", 1)
    assert len(script.calls) == 1 and "return_value" not in result["xcoms"]


@pytest.mark.airflow
def test_waiting_past_the_timeout_fails_without_retry_and_is_recorded(
    gates: Any, dag_runs: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(outcome(gates, "drift", "waiting", "no drift report yet"))
    monkeypatch.setattr(gates, "drift_gate", script)
    result = dag_runs(
        lambda: DriftGateSensor(
            task_id="drift",
            model_name="policy",
            model_version="5",
            poke_interval=0,
            timeout=1,
            retries=2,
            retry_delay=0,
        )
    )
    assert (result["run"].state, result["state"], result["try_number"]) == ("failed", "failed", 1)
    assert len(script.calls) >= 2
    [(args, kwargs)] = gates.record_timeout.calls
    assert args[1:] == ("drift", "policy", "5")
    assert kwargs["waited_s"] >= 1  # measured from the first poke, across reschedules
    assert kwargs["dag_run"] == f"{result['dag'].dag_id}:{result['run'].run_id}"


@pytest.mark.airflow
def test_a_library_error_fails_the_task_after_its_retries(
    gates: Any, ab: Any, dag_runs: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(ConnectionError("MLflow at http://mlflow:5000 unreachable"))
    monkeypatch.setattr(ab, "ab_gate", script)
    result = dag_runs(lambda: ABDecisionSensor(task_id="ab", ab_id="ab-1", poke_interval=0, retries=1, retry_delay=0))
    assert (result["run"].state, result["state"], result["try_number"]) == ("failed", "failed", 2)
    assert len(script.calls) == 2 and "return_value" not in result["xcoms"]
    assert gates.record_timeout.calls == []


@pytest.mark.airflow
def test_the_link_opens_the_version_resolved_at_run_time(
    gates: Any, dag_runs: RunDag, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    monkeypatch.setattr(gates, "approval_gate", Script(outcome(gates, "approval", "passed", "approved by carol")))
    result = dag_runs(
        lambda: RegistryApprovalSensor(
            task_id="approval",
            model_name="{{ ti.xcom_pull(task_ids='register')['name'] }}",
            model_version="{{ ti.xcom_pull(task_ids='register')['version'] }}",
            poke_interval=0,
        ),
        upstream={"name": "hybrid_policy", "version": "12"},
    )
    assert result["state"] == "success"
    assert result["xcoms"][MLflowModelVersionLink().xcom_key] == "http://mlflow/hybrid_policy/v12"
    # What the UI shows: the API server's view of the task reads the link stored by the worker.
    with create_session() as session:
        served = DBDagBag().get_latest_version_of_dag(result["dag"].dag_id, session=session)
        assert served is not None
        assert served.get_task("approval").get_extra_links(result["ti"], LINK) == "http://mlflow/hybrid_policy/v12"


def test_the_plugin_loads_from_the_plugins_folder_and_registers_the_link() -> None:
    from airflow import plugins_manager

    info = {plugin["name"]: plugin for plugin in plugins_manager.get_plugin_info(["operator_extra_links"])}
    assert info["trading_gates"]["operator_extra_links"] == ["<trading_gates.MLflowModelVersionLink object>"]
    assert not [path for path in plugins_manager.get_import_errors() if "trading_gates" in path]
    assert [link.name for link in trading_gates.GovernanceGateSensor.operator_extra_links] == [LINK]
