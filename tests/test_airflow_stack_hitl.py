"""Airflow's human-in-the-loop approval, answered through the REST API of a live stack.

``ApprovalOperator`` parks its task in ``awaiting_input`` until someone answers; ``dag.test()`` never
answers, so these tests start a real stack (api-server, scheduler, dag-processor, triggerer;
LocalExecutor on SQLite) once for the module and answer as a reviewer would, through
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``.

The stack serves the project's DAGs plus two probe DAGs: the probes pin down Airflow's own HITL
semantics (approve, reject, timeout); the promotion DAG's ``airflow_hitl`` path is then driven end to
end on a registered policy version: approve -> champion, reject -> the run fails and nothing moves.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_stack import AirflowApiError, AirflowStack
from builders import GOOD_METRICS, register_baseline, trending_feature_set

pytestmark = pytest.mark.integration

PROBE_DAGS = Path(__file__).parent / "fixtures" / "hitl_dags"
REPO = Path(__file__).resolve().parents[1]
PROBE, PROBE_TIMEOUT = "hitl_probe", "hitl_probe_timeout"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the probe's ``promote`` task leaves ``<model_version>.promoted``."""
    return tmp_path_factory.mktemp("hitl-out")


@pytest.fixture(scope="module")
def trading(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A trading home with a planted-trend market, its feature set and two registered baseline versions."""
    from trading_core.config import get_settings

    home = tmp_path_factory.mktemp("trading-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        settings = get_settings()
        _, fsv = trending_feature_set(settings, home)
        approved = register_baseline(settings, fsv, home, None, GOOD_METRICS, "hitl-approve")
        rejected = register_baseline(settings, fsv, home, None, GOOD_METRICS, "hitl-reject")
    return {"home": home, "settings": settings, "approve": approved, "reject": rejected}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, out_dir: Path, trading: dict) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-stack")
    dags = home / "dags"  # the project's DAGs and the probes, side by side
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    for probe in PROBE_DAGS.glob("*.py"):
        shutil.copy(probe, dags / probe.name)
    env = {
        "HITL_PROBE_DIR": str(out_dir),
        "TRADING_HOME": str(trading["home"]),
        "TRADING_GOVERNANCE_POLICY": str(REPO / "config" / "governance.yaml"),
    }
    with AirflowStack(dags, home, env=env, startup_timeout=240) as running:
        for dag_id in (PROBE, PROBE_TIMEOUT, "promotion"):
            running.wait_for_dag(dag_id, timeout=90)
            running.unpause(dag_id)
        yield running


def test_no_answer_before_the_response_timeout_fails_closed(stack: AirflowStack, out_dir: Path) -> None:
    """``response_timeout`` without ``defaults``: the scheduler's sweep fails the approval, nothing promotes."""
    run_id = stack.trigger(PROBE_TIMEOUT, {"model_version": "9"})

    assert stack.wait_for_run(PROBE_TIMEOUT, run_id, timeout=120) == "failed"
    assert stack.task_state(PROBE_TIMEOUT, run_id, "approve") == "failed"
    assert stack.task_state(PROBE_TIMEOUT, run_id, "promote") == "upstream_failed"
    assert not (out_dir / "9.promoted").exists()
    assert not stack.hitl_detail(PROBE_TIMEOUT, run_id, "approve")["response_received"]


def _promotion(stack: AirflowStack, version: str) -> str:
    return stack.trigger("promotion", {"model_version": version, "approval_path": "airflow_hitl"})


def test_the_promotion_dag_asks_airflow_reviewers_and_an_approval_crowns_the_version(
    stack: AirflowStack, trading: dict
) -> None:
    from mlflow.tracking import MlflowClient

    from trading_core.db.audit import list_events

    settings, version = trading["settings"], trading["approve"]
    run_id = _promotion(stack, version)
    request = stack.wait_for_hitl("promotion", run_id, "hitl_approval", timeout=180)
    assert request["subject"] == f"Promote trading-policy v{version} to challenger?"
    assert stack.task_state("promotion", run_id, "governance_gate") == "success"
    assert stack.task_state("promotion", run_id, "registry_approval") == "skipped"
    stack.answer_hitl("promotion", run_id, "hitl_approval", ["Approve"], params_input={"comment": "looks sane"})
    with pytest.raises(AirflowApiError) as second:  # one answer per request
        stack.answer_hitl("promotion", run_id, "hitl_approval", ["Reject"])
    assert second.value.status == 409

    assert stack.wait_for_run("promotion", run_id, timeout=180) == "success"
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias("trading-policy", "champion").version) == version
    tags = client.get_model_version("trading-policy", version).tags
    assert tags["approval"] == "approved" and tags["approval_by"] == stack.username
    assert tags["approval_comment"] == "looks sane" and tags["gate.approval"] == "passed"
    event = list_events(settings.resolved_database_url, version=version, event="gate.approval")[0]
    assert event.decision == "passed" and "airflow_hitl" in str(event.details)


def test_a_rejection_in_airflow_fails_the_promotion_closed(stack: AirflowStack, trading: dict) -> None:
    from mlflow.tracking import MlflowClient

    settings, version = trading["settings"], trading["reject"]
    run_id = _promotion(stack, version)
    stack.wait_for_hitl("promotion", run_id, "hitl_approval", timeout=180)
    with pytest.raises(AirflowApiError) as invalid:
        stack.answer_hitl("promotion", run_id, "hitl_approval", ["Maybe"])
    assert invalid.value.status == 400
    stack.answer_hitl("promotion", run_id, "hitl_approval", ["Reject"], params_input={"comment": "too risky"})

    assert stack.wait_for_run("promotion", run_id, timeout=180) == "failed"
    assert stack.task_state("promotion", run_id, "hitl_approval") == "failed"
    assert stack.task_state("promotion", run_id, "enter_rollout") in ("upstream_failed", "skipped")
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    aliases = client.get_registered_model("trading-policy").aliases
    assert aliases.get("challenger") is None and str(aliases.get("champion")) != version
    tags = client.get_model_version("trading-policy", version).tags
    assert tags["approval"] == "rejected" and tags["approval_comment"] == "too risky"
