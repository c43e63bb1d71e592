"""Airflow's human-in-the-loop approval, answered through the REST API of a live stack.

``ApprovalOperator`` parks its task in ``awaiting_input`` until someone answers; ``dag.test()`` never
answers, so these tests start a real stack (api-server, scheduler, dag-processor, triggerer;
LocalExecutor on SQLite) once for the module and answer as a reviewer would, through
``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_stack import AirflowApiError, AirflowStack

pytestmark = pytest.mark.integration

DAGS = Path(__file__).parent / "fixtures" / "hitl_dags"
PROBE, PROBE_TIMEOUT = "hitl_probe", "hitl_probe_timeout"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the probe's ``promote`` task leaves ``<model_version>.promoted``."""
    return tmp_path_factory.mktemp("hitl-out")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, out_dir: Path) -> Iterator[AirflowStack]:
    home = tmp_path_factory.mktemp("airflow-stack")
    with AirflowStack(DAGS, home, env={"HITL_PROBE_DIR": str(out_dir)}, startup_timeout=240) as running:
        for dag_id in (PROBE, PROBE_TIMEOUT):
            running.wait_for_dag(dag_id, timeout=90)
            running.unpause(dag_id)
        yield running


def test_approve_through_rest_runs_the_downstream_task(stack: AirflowStack, out_dir: Path) -> None:
    run_id = stack.trigger(PROBE, {"model_version": "7"})

    request = stack.wait_for_hitl(PROBE, run_id, "approve", timeout=120)
    assert request["subject"] == "Promote model version 7 to champion?"
    assert request["options"] == ["Approve", "Reject"]
    assert request["task_instance"]["state"] == "awaiting_input"
    assert not request["response_received"]
    assert not (out_dir / "7.promoted").exists()

    answer = stack.answer_hitl(PROBE, run_id, "approve", ["Approve"])
    assert answer["chosen_options"] == ["Approve"]
    assert answer["responded_by"]["name"] == stack.username

    assert stack.wait_for_run(PROBE, run_id, timeout=120) == "success"
    assert stack.task_state(PROBE, run_id, "approve") == "success"
    assert stack.task_state(PROBE, run_id, "promote") == "success"
    assert (out_dir / "7.promoted").read_text() == "7"
    # One answer per request: a second one is refused.
    with pytest.raises(AirflowApiError) as second:
        stack.answer_hitl(PROBE, run_id, "approve", ["Reject"])
    assert second.value.status == 409
    assert stack.hitl_detail(PROBE, run_id, "approve")["chosen_options"] == ["Approve"]


def test_reject_through_rest_skips_the_downstream_task(stack: AirflowStack, out_dir: Path) -> None:
    run_id = stack.trigger(PROBE, {"model_version": "8"})
    stack.wait_for_hitl(PROBE, run_id, "approve", timeout=120)

    with pytest.raises(AirflowApiError) as invalid:
        stack.answer_hitl(PROBE, run_id, "approve", ["Maybe"])
    assert invalid.value.status == 400
    stack.answer_hitl(PROBE, run_id, "approve", ["Reject"])

    # A rejection is an answer, not an error: the approval task succeeds and skips what follows it,
    # so the run ends "success" without having promoted anything.
    assert stack.wait_for_run(PROBE, run_id, timeout=120) == "success"
    assert stack.task_state(PROBE, run_id, "approve") == "success"
    assert stack.task_state(PROBE, run_id, "promote") == "skipped"
    assert not (out_dir / "8.promoted").exists()
    assert stack.hitl_detail(PROBE, run_id, "approve")["chosen_options"] == ["Reject"]


def test_no_answer_before_the_response_timeout_fails_closed(stack: AirflowStack, out_dir: Path) -> None:
    """``response_timeout`` without ``defaults``: the scheduler's sweep fails the approval, nothing promotes."""
    run_id = stack.trigger(PROBE_TIMEOUT, {"model_version": "9"})

    assert stack.wait_for_run(PROBE_TIMEOUT, run_id, timeout=120) == "failed"
    assert stack.task_state(PROBE_TIMEOUT, run_id, "approve") == "failed"
    assert stack.task_state(PROBE_TIMEOUT, run_id, "promote") == "upstream_failed"
    assert not (out_dir / "9.promoted").exists()
    assert not stack.hitl_detail(PROBE_TIMEOUT, run_id, "approve")["response_received"]
