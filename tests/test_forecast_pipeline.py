"""The forecaster stage end to end on a tiny feature set: MLflow run, pyfunc round trip, resume, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import torch
from builders import TINY
from mlflow.tracking import MlflowClient

from trading_core.cli import main
from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.errors import ConfigError
from trading_core.features import (
    build_feature_set,
    feature_store,
)
from trading_core.forecast import pipeline, reporting
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pipeline import ForecasterRunResult, train_forecaster
from trading_core.forecast.pyfunc_model import OUTPUT_COLUMNS
from trading_core.forecast.train import TrainResult

TINY_MODEL: dict[str, Any] = {"ensemble_size": 2, "lstm_units": 16, "cnn_filters": [8], "attention_heads": 2}
TINY_TRAIN: dict[str, Any] = {"epochs": 2, "patience": 5, "batch_size": 128}


@dataclass
class Stage:
    settings: Settings
    feature_set_version: str
    dataset_version: str
    result: ForecasterRunResult
    trained: ForecasterEnsemble
    """The in-memory ensemble ``train_ensemble`` returned inside the run."""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """One home for the module: a 4-symbol, 2-year feature set and one forecaster run on it."""
    root = tmp_path_factory.mktemp("forecast")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(root / "home"))  # the CLI builds its own Settings
        mp.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")  # short runs still get system metrics
        mp.chdir(root)
        settings = get_settings()
        request = IngestRequest(
            source="synthetic", n_assets=4, start=date(2022, 1, 3), end=date(2023, 12, 29), signal_strength=0.5
        )
        built = build_feature_set(ingest(request, settings).dataset_version, TINY, settings)

        trained: list[TrainResult] = []
        original = pipeline.train_ensemble

        def spy(*args: Any, **kwargs: Any) -> TrainResult:
            trained.append(original(*args, **kwargs))
            return trained[-1]

        mp.setattr(pipeline, "train_ensemble", spy)
        result = train_forecaster(built.feature_set_version, settings, model=TINY_MODEL, train=TINY_TRAIN)
        mp.setattr(pipeline, "train_ensemble", original)
        yield Stage(settings, built.feature_set_version, built.dataset_version, result, trained[0].model)


def test_run_logs_params_metrics_tags_and_artifacts(stage: Stage) -> None:
    result, settings = stage.result, stage.settings
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "forecaster"
    assert experiment.artifact_location.startswith(settings.resolved_mlflow_artifact_root.as_uri())

    params = run.data.params
    fs = feature_store(settings).open(stage.feature_set_version)
    assert params["model.lstm_units"] == "16" and params["model.ensemble_size"] == "2"
    assert params["model.seq_len"] == "8" and params["model.input_dim"] == str(len(fs.feature_names))
    assert params["train.epochs"] == "2" and params["train.loss"] == "weighted_ce"
    assert params["feature_set_version"] == stage.feature_set_version
    assert params["n_features"] == str(len(fs.feature_names))
    assert params["samples_train"] == str(len(fs.split("train")))
    assert params["n_params"] == str(result.params) == str(stage.trained.num_params())
    assert int(params["flops_per_window"]) == stage.trained.flops_per_window()

    tags = run.data.tags
    assert tags["dataset_version"] == stage.dataset_version == result.dataset_version
    assert tags["feature_set_version"] == stage.feature_set_version
    assert tags["trading.stage"] == "forecaster" and tags["device"] == "cpu" == result.device
    assert tags["git_sha"] == "unknown" or len(tags["git_sha"]) == 40

    metrics = run.data.metrics
    for split in ("val", "test"):
        for who in ("", "majority_", "persistence_"):
            for name in ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "ece"):
                key = f"{split}_{who}{name}"
                assert metrics[key] == pytest.approx(result.metrics[key]), key
    assert metrics["temperature"] > 0 and "p_value_vs_majority" in metrics
    # the majority baseline's accuracy is the test share of the training majority class, never 1/3
    assert metrics["test_majority_accuracy"] == pytest.approx(metrics["test_majority_rate"])
    history = client.get_metric_history(result.run_id, "member_1/val_loss")
    assert [m.step for m in history] == [0, 1]
    assert any(key.startswith("system/") for key in metrics), "system metrics were not logged"

    evaluation = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    for split in ("val", "test"):
        assert {f"evaluation/{split}_confusion_matrix.png", f"evaluation/{split}_reliability.png"} <= evaluation
    report = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/evaluation/report.json")
    test = report["splits"]["test"]
    assert test["n"] == len(fs.split("test")) and sum(map(sum, test["confusion"])) == test["n"]
    assert test["model"]["accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    assert sum(test["reliability"]["count"]) == test["n"]

    logged = client.get_logged_model(result.model_uri.removeprefix("models:/"))
    assert logged.source_run_id == result.run_id
    assert {m.key for m in logged.metrics} >= {"test_accuracy", "test_persistence_accuracy"}

    assert not (settings.home / "checkpoints" / stage.feature_set_version).exists(), "checkpoint left behind"
    reference = json.loads(json.dumps(result.as_reference(), allow_nan=False))
    assert (
        reference["run_id"] == result.run_id
        and reference["metrics"]["test_accuracy"] == result.metrics["test_accuracy"]
    )


def test_persistence_is_the_same_symbols_label_one_horizon_earlier(stage: Stage) -> None:
    """Recomputed independently: a per-symbol shift of the label column by the label horizon."""
    fs = feature_store(stage.settings).open(stage.feature_set_version)
    frame = fs.features(["label"])
    horizon = TINY.labels.horizon
    earlier = frame.groupby("symbol", observed=True)["label"].shift(horizon).to_numpy()
    train, test = fs.split("train"), fs.split("test")
    majority = int(np.bincount(train.labels, minlength=3).argmax())
    guess = earlier[test.end_rows]
    guess = np.where(np.isfinite(guess) & (guess >= 0), guess, majority).astype(int)
    assert stage.result.metrics["test_persistence_accuracy"] == pytest.approx((guess == test.labels).mean())


def test_pyfunc_round_trip_matches_the_in_memory_ensemble(stage: Stage) -> None:
    fs = feature_store(stage.settings).open(stage.feature_set_version)
    test = fs.split("test")
    windows = test.batch(np.arange(len(test)))
    loaded = mlflow.pyfunc.load_model(stage.result.model_uri)
    out = loaded.predict(windows)
    expected = stage.trained.predict(torch.from_numpy(windows))

    assert list(out.columns) == list(OUTPUT_COLUMNS) and len(out) == len(test)
    probs = out[["prob_hold", "prob_buy", "prob_sell"]].to_numpy()
    np.testing.assert_allclose(probs, expected.probs.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(out["label"].to_numpy(), expected.label.numpy())
    for key in ("confidence", "entropy", "mutual_info", "disagreement"):
        np.testing.assert_allclose(out[key].to_numpy(), getattr(expected, key).numpy(), atol=1e-6, rtol=0)

    inputs = loaded.metadata.signature.inputs.to_dict()
    assert inputs == [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, 8, windows.shape[2])}}]
    local = Path(mlflow.artifacts.download_artifacts(stage.result.model_uri))
    assert (local / "pyfunc_code.py").exists() and (local / "input_example.json").exists()
    assert not list(local.rglob("*.pkl")), "models from code: nothing is pickled"
    assert {p.name for p in (local / "artifacts").iterdir()} == {
        "ensemble.pt",
        "forecaster_config.json",
        "scaler.json",
        "manifest.json",
    }
    by_run = mlflow.pyfunc.load_model(f"runs:/{stage.result.run_id}/forecaster")
    np.testing.assert_allclose(by_run.predict(windows[:5])["prob_buy"].to_numpy(), probs[:5, 1], atol=1e-6)
    with pytest.raises(Exception, match="[Ss]hape"):
        loaded.predict(windows[:, 1:])


@pytest.mark.parametrize(
    ("model", "train", "message"),
    [
        ({"lstm_unit": 8}, None, r"unknown ForecasterConfig override\(s\) \['lstm_unit'\]"),
        (None, {"epoch": 1, "lr": 0.1}, r"unknown TrainConfig override\(s\) \['epoch'\]"),
        ({"seq_len": 5, "input_dim": 3}, None, r"\['input_dim', 'seq_len'\] cannot be set: they come from the feature"),
        (
            None,
            {"loss": "hinge"},
            r"invalid TrainConfig override: loss: Input should be 'weighted_ce' or 'focal' \(got 'hinge'\)",
        ),
        ({"ensemble_size": 0}, None, r"ensemble_size must be >= 1, got 0"),
        (None, {"cpu_threads": 0}, r"TrainConfig.cpu_threads must be >= 1, got 0"),
        ({"cnn_filters": [8, 0]}, None, r"cnn_filters must be positive, got \(8, 0\)"),
        (None, {"device": "gpu"}, r"TrainConfig.device 'gpu'"),
    ],
)
def test_bad_overrides_fail_before_anything_runs(
    stage: Stage, model: dict[str, Any] | None, train: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        train_forecaster(stage.feature_set_version, stage.settings, model=model, train=train)


def test_a_failed_run_resumes_from_its_checkpoint(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, version = stage.settings, stage.feature_set_version
    original = reporting.EpochLogger.__call__

    def killed_after_first_epoch(self: reporting.EpochLogger, member: int, epoch: int, metrics: Any) -> None:
        original(self, member, epoch, metrics)
        raise RuntimeError("worker lost")

    monkeypatch.setattr(reporting.EpochLogger, "__call__", killed_after_first_epoch)
    train = {**TINY_TRAIN, "seed": 7}
    with pytest.raises(RuntimeError, match="worker lost"):
        train_forecaster(version, settings, model=TINY_MODEL, train=train, experiment="resume")
    assert len(list((settings.home / "checkpoints" / version).iterdir())) == 1
    monkeypatch.setattr(reporting.EpochLogger, "__call__", original)

    result = train_forecaster(version, settings, model=TINY_MODEL, train=train, experiment="resume")
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert client.get_run(result.run_id).data.tags["resumed_from"] == "member 0 epoch 0"
    for member in (0, 1):  # the epoch trained before the failure is back-filled from the checkpoint's history
        steps = [m.step for m in client.get_metric_history(result.run_id, f"member_{member}/train_loss")]
        assert sorted(steps) == [0, 1]
    assert not (settings.home / "checkpoints" / version).exists()


def test_cli_trains_on_the_latest_feature_set(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--epochs", "1", "--ensemble-size", "1", "--lstm-units", "8", "--cnn-filters", "4,4"]
    assert main(["train-forecaster", *args, "--batch-size", "256", "--seed", "3", "--experiment", "cli"]) == 0
    out = capsys.readouterr().out
    reference, end = json.JSONDecoder().raw_decode(out)
    assert reference["feature_set_version"] == stage.feature_set_version
    assert reference["model_uri"].startswith("models:/") and reference["params"] > 0
    table = out[end:]
    assert "majority class rate" in table and "p-value" in table
    for row in ("model", "majority", "persistence"):
        assert f"\n{row} " in table
    run = MlflowClient(stage.settings.resolved_mlflow_tracking_uri).get_run(reference["run_id"])
    assert run.data.params["model.cnn_filters"] == "(4, 4)" and run.data.params["train.seed"] == "3"


def test_cli_errors_exit_2(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-forecaster"]) == 2
    assert "no feature set recorded" in capsys.readouterr().err
    assert main(["train-forecaster", "--feature-set-version", "fs-0000"]) == 2
    assert "not in the store" in capsys.readouterr().err
    assert main(["train-forecaster", "--feature-set-version", "../etc"]) == 2
    assert "is not a feature set version" in capsys.readouterr().err


def test_cli_hpo_workers_share_one_study(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["hpo-forecaster", "--study", "cli-shared", "--trials", "1", "--epochs", "1", "--max-train-samples", "256"]
    assert main([*common, "--worker", "0"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*common, "--worker", "1"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["study_name"] == first["study_name"] == "cli-shared"
    assert set(second["overrides"]) == {"model", "train"} and second["mlflow_run_id"]
