"""Candidate registration: a new version with alias 'candidate', lineage and metric tags, idempotent per DAG run."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from trading_core.config import Settings
from trading_core.registry.candidate import CANDIDATE, find_finished_run, register_candidate
from trading_core.tracking import ensure_experiment, use_tracking_store


def _identity(model_input: list[float]) -> list[float]:
    return model_input


@pytest.fixture
def logged_model(settings: Settings) -> str:
    use_tracking_store(settings)
    experiment = ensure_experiment("forecaster", settings)
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.set_tags({"airflow.dag_run": "training:r1", "feature_set_version": "fs-1"})
        info = mlflow.pyfunc.log_model(
            name="forecaster", python_model=_identity, input_example=[1.0, 2.0], pip_requirements=["mlflow"]
        )
    assert run.info.run_id
    return str(info.model_uri)


def test_register_sets_the_candidate_alias_with_lineage_and_is_idempotent(
    settings: Settings, logged_model: str
) -> None:
    first = register_candidate(
        settings,
        model_uri=logged_model,
        lineage={"dataset_version": "ds-1", "feature_set_version": "fs-1"},
        metrics={"hybrid_sharpe_mean": 0.42, "bad": float("nan")},
        links={"agent_run": "a1"},
        dag_run="training:r1",
        name="policy-test",
    )
    assert first.alias == CANDIDATE and not first.reused
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    version = client.get_model_version_by_alias("policy-test", CANDIDATE)
    assert str(version.version) == first.version
    tags = version.tags
    assert tags["feature_set_version"] == "fs-1" and tags["metric.hybrid_sharpe_mean"] == "0.42"
    assert "metric.bad" not in tags and tags["approval"] == "pending" and tags["link.agent_run"] == "a1"
    again = register_candidate(
        settings, model_uri=logged_model, lineage={}, metrics={}, links={}, dag_run="training:r1", name="policy-test"
    )
    assert again.reused and again.version == first.version, "a retried task finds its version"
    other = register_candidate(
        settings, model_uri=logged_model, lineage={}, metrics={}, links={}, dag_run="training:r2", name="policy-test"
    )
    assert int(other.version) == int(first.version) + 1
    assert str(client.get_model_version_by_alias("policy-test", CANDIDATE).version) == other.version


def test_find_finished_run_by_tags(settings: Settings, logged_model: str) -> None:
    assert find_finished_run(settings, "forecaster", {"airflow.dag_run": "training:r1"})
    assert find_finished_run(settings, "forecaster", {"airflow.dag_run": "training:other"}) is None
    assert find_finished_run(settings, "no-such-experiment", {"a": "b"}) is None
