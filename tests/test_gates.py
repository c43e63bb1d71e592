"""The gate functions behind the sensors: each fails closed (no evidence, no reference, an unreachable
MLflow, a rejection), writes its verdict on the version and in the audit table; the PSI drift check
sees a planted shift and stays quiet on the same distribution."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import GOOD_METRICS, register_baseline, trending_feature_set
from mlflow.tracking import MlflowClient

from trading_core.config import Settings, get_settings
from trading_core.db.audit import list_events
from trading_core.registry import gates
from trading_core.registry.reference import drift_report, write_reference
from trading_core.tracking import ensure_experiment

NAME = "trading-policy"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("gates-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        mp.setenv("TRADING_GOVERNANCE_POLICY", str(Path(__file__).resolve().parents[1] / "config/governance.yaml"))
        settings = get_settings()
        _, fsv = trending_feature_set(settings, home)
        good = register_baseline(settings, fsv, home, None, GOOD_METRICS, "good")
        yield {"settings": settings, "fsv": fsv, "home": home, "good": good}


def _tags(settings: Settings, version: str) -> dict[str, str]:
    return dict(MlflowClient(settings.resolved_mlflow_tracking_uri).get_model_version(NAME, version).tags)


def test_psi_flags_a_planted_shift_and_not_the_same_distribution(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(10)]
    train = pd.DataFrame(rng.standard_normal((3000, 10)), columns=names)
    train.insert(0, "symbol", "A")
    train.insert(0, "timestamp", pd.date_range("2020-01-01", periods=3000, tz="UTC"))
    write_reference(tmp_path, train, names)
    same = pd.DataFrame(rng.standard_normal((500, 10)), columns=names)
    shifted = same.copy()
    shifted[names[:4]] = shifted[names[:4]] * 2.5 + 1.0  # 4 of 10 features move
    assert drift_report(tmp_path, same).drift_share == 0.0
    report = drift_report(tmp_path, shifted)
    assert report.drifted == names[:4] and report.drift_share == pytest.approx(0.4)
    with pytest.raises(Exception, match="no drift reference"):
        drift_report(tmp_path / "nothing", same)


def test_gates_pass_a_good_version_and_record_who_decided(world: dict) -> None:
    settings: Settings = world["settings"]
    version = world["good"]
    drift = gates.drift_gate(settings, NAME, version, actor="test:drift")
    assert drift.status == "passed" and drift.details["drift_share"] <= 0.3
    outcome = gates.governance_gate(settings, NAME, version, actor="test:governance", dag_run="d:r")
    assert outcome.status == "passed", outcome.reasons
    tags = _tags(settings, version)
    assert tags["gate.governance"] == "passed" and tags["gate.governance.by"] == "test:governance"
    assert tags["gate.drift"] == "passed" and "gate.drift.share" in tags
    event = list_events(settings.resolved_database_url, version=version, event="gate.governance")[0]
    assert event.decision == "passed" and event.actor == "test:governance" and event.dag_run == "d:r"
    assert gates.model_version_url(settings, NAME, version).endswith(f"/#/models/{NAME}/versions/{version}")


def test_governance_without_a_drift_verdict_fails_closed(world: dict) -> None:
    settings: Settings = world["settings"]
    version = register_baseline(settings, world["fsv"], world["home"], None, GOOD_METRICS, "no-drift-yet")
    outcome = gates.governance_gate(settings, NAME, version)
    assert outcome.status == "failed"
    assert any("drifted feature share is missing" in r for r in outcome.reasons)


def test_a_version_without_a_reference_fails_the_drift_gate(world: dict) -> None:
    settings: Settings = world["settings"]

    def identity(model_input: list[float]) -> list[float]:
        return model_input

    # An experiment of the test's own store: the default experiment 0 would put the artifacts in ./mlruns.
    with mlflow.start_run(experiment_id=ensure_experiment("gate-tests", settings)):
        info = mlflow.pyfunc.log_model(
            name="m", python_model=identity, input_example=[1.0], pip_requirements=["mlflow"]
        )
    version = mlflow.register_model(info.model_uri, NAME).version
    outcome = gates.drift_gate(settings, NAME, str(version))
    assert outcome.status == "failed" and "not a TradingPolicy" in outcome.reasons[0]
    assert _tags(settings, str(version))["gate.drift"] == "failed"


def test_no_recent_bars_fails_the_drift_gate(world: dict) -> None:
    settings: Settings = world["settings"]
    outcome = gates.drift_gate(settings, NAME, world["good"], end=pd.Timestamp("2000-01-01", tz="UTC"))
    assert outcome.status == "failed" and "not measurable" in outcome.reasons[0]


def test_approval_waits_then_follows_the_reviewer(world: dict) -> None:
    settings: Settings = world["settings"]
    version = register_baseline(settings, world["fsv"], world["home"], None, GOOD_METRICS, "review")
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    assert gates.approval_gate(settings, NAME, version).status == "waiting"
    client.set_model_version_tag(NAME, version, "approval", "rejected")
    client.set_model_version_tag(NAME, version, "approval_comment", "drawdown too deep")
    rejected = gates.approval_gate(settings, NAME, version)
    assert rejected.status == "failed" and "drawdown too deep" in rejected.reasons[0]
    client.set_model_version_tag(NAME, version, "approval", "maybe")
    assert gates.approval_gate(settings, NAME, version).status == "failed", "an unknown verdict is no approval"
    client.set_model_version_tag(NAME, version, "approval", "approved")
    assert gates.approval_gate(settings, NAME, version).status == "passed"


def test_an_unreachable_mlflow_raises_instead_of_passing(world: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = get_settings(mlflow_tracking_uri="http://127.0.0.1:9", home=world["home"])
    try:
        for gate in (gates.governance_gate, gates.drift_gate, gates.approval_gate):
            with pytest.raises(Exception):  # noqa: B017 - any error fails the sensor task; none may pass
                gate(down, NAME, world["good"])
    finally:
        mlflow.set_tracking_uri(world["settings"].resolved_mlflow_tracking_uri)


def test_a_timeout_is_audited_and_tagged(world: dict) -> None:
    settings: Settings = world["settings"]
    gates.record_timeout(settings, "approval", NAME, world["good"], waited_s=259200, actor="test")
    assert _tags(settings, world["good"])["gate.approval"] == "timeout"
    event = list_events(settings.resolved_database_url, version=world["good"], event="gate.approval")[0]
    assert event.decision == "timeout" and "259200 s" in event.reasons[0]
