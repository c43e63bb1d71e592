"""One monitoring check end to end on a registered policy: quiet on the market it was trained on,
alarmed by a planted regime change, recorded in the app DB and MLflow, with a retraining cooldown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import GOOD_METRICS, planted_break, register_baseline, trending_feature_set

from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.monitoring.check import run_check
from trading_core.monitoring.store import list_checks, set_triggered_run
from trading_core.registry import aliases

NAME = "trading-policy"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("monitor-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        mp.setenv("TRADING_GOVERNANCE_POLICY", str(Path(__file__).resolve().parents[1] / "config/governance.yaml"))
        settings = get_settings()
        csv, fsv = trending_feature_set(settings, home)
        version = register_baseline(settings, fsv, home, None, GOOD_METRICS, "monitored")
        aliases.crown(settings, NAME, version, reason="test")
        # Then the market breaks: bars after 2023 (checks as of 2023-12-29 still see the old market).
        ingest(IngestRequest(source="csv", path=str(planted_break(csv, "2024-01-01"))), settings)
        yield {"settings": settings, "home": home, "csv": csv, "version": version}


def test_the_market_it_was_trained_on_raises_no_alarm(world: dict) -> None:
    settings: Settings = world["settings"]
    outcome = run_check(settings, NAME, as_of="2023-12-29", window=63)
    assert outcome.version == world["version"], "the champion by default"
    assert outcome.decision == "ok", outcome.reason
    assert not outcome.should_retrain and outcome.window_end == "2023-12-29" and outcome.drifted_columns == []
    row = list_checks(settings.resolved_database_url, model_name=NAME)[0]
    assert row.id == outcome.check_id and row.decision == "ok" and row.mlflow_run_id == outcome.mlflow_run_id


def test_a_planted_regime_change_is_drift_and_retrains_once(world: dict) -> None:
    import mlflow

    settings: Settings = world["settings"]
    first = run_check(settings, NAME, as_of="2024-04-01", window=63)
    assert first.decision in ("drift", "drift+decay"), first.reason
    assert first.should_retrain and first.drift_share is not None and first.drift_share > 0.3
    assert len(first.drifted_columns) >= 0.3 * 46 and "rvol_21" in first.drifted_columns
    client = mlflow.tracking.MlflowClient(settings.resolved_mlflow_tracking_uri)
    run = client.get_run(first.mlflow_run_id)
    assert run.data.tags["decision"] == first.decision and run.data.metrics["drift_share"] == first.drift_share
    assert any(a.path.endswith("feature_drift.html") for a in client.list_artifacts(run.info.run_id, "reports"))

    set_triggered_run(settings.resolved_database_url, first.check_id, "training:manual__drift")
    again = run_check(settings, NAME, as_of="2024-04-05", window=63)
    assert again.decision != "ok" and not again.should_retrain, "inside the cooldown: one retraining per alarm storm"
    assert "cooldown" in again.reason
    later = run_check(settings, NAME, as_of="2024-06-28", window=63, cooldown_days=20)
    assert later.should_retrain, "after the cooldown a persisting drift may retrain again"


@pytest.mark.airflow
def test_the_drift_dag_triggers_training_once_then_respects_the_cooldown(world: dict, airflow_db: Path) -> None:
    from datetime import UTC, datetime

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    settings: Settings = world["settings"]
    dag = DagBag(str(Path(__file__).resolve().parents[1] / "dags")).get_dag("drift_monitor")

    def states(run_id: str) -> dict[str, str]:
        with create_session() as session:
            tis = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == "drift_monitor",
                                                             TaskInstance.run_id == run_id))  # fmt: skip
            return {ti.task_id: str(ti.state) for ti in tis}

    def training_runs() -> list[DagRun]:
        with create_session() as session:
            return list(session.scalars(select(DagRun).where(DagRun.dag_id == "training")))

    before = len(training_runs())
    when = datetime(2024, 9, 30, 22, 30, tzinfo=UTC)  # long after the last trigger: outside the cooldown
    run = dag.test(logical_date=when, run_conf={"model_name": NAME})
    assert run.state == "success", states(run.run_id)
    assert states(run.run_id)["retrain"] == "success"
    runs = training_runs()
    assert len(runs) == before + 1
    check = list_checks(settings.resolved_database_url, model_name=NAME)[0]
    assert check.triggered_run and check.triggered_run.startswith("training:")
    triggered = [r for r in runs if r.run_id == check.triggered_run.removeprefix("training:")]
    assert len(triggered) == 1, "the check row names the training run it started"
    assert "feature drift" in triggered[0].conf["trigger_reason"]
    assert str(triggered[0].conf["drift_check_id"]) == str(check.id)

    run = dag.test(logical_date=datetime(2024, 10, 1, 22, 30, tzinfo=UTC), run_conf={"model_name": NAME})
    assert run.state == "success"
    assert states(run.run_id)["retrain"] == "skipped", "the next day's alarm is inside the cooldown"
    assert len(training_runs()) == before + 1, "a storm of alerts starts one retraining"
