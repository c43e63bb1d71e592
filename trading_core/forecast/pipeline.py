"""The forecaster stage: ``feature_set_version -> forecaster run`` (MLflow run + pyfunc model).

:func:`train_forecaster` is what the training DAG, ``trading train-forecaster`` and the tests call.
Read top to bottom: open the feature set -> configs (defaults + validated overrides; input size and
window length from the feature set) -> MLflow run (params, lineage tags, system metrics) -> train
(resumable from ``<home>/checkpoints/<feature_set_version>/<fingerprint>``, per-epoch metrics) ->
evaluate val and test against the majority-class and persistence baselines -> log the pyfunc model,
metrics, report and figures -> drop the checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import mlflow
import numpy as np
from pydantic import TypeAdapter, ValidationError

from trading_core import tracking
from trading_core.config import Settings
from trading_core.errors import ConfigError
from trading_core.features import feature_store
from trading_core.features.store import FeatureSet
from trading_core.forecast import reporting
from trading_core.forecast.metrics import (
    N_CLASSES,
    confusion,
    evaluation_report,
    persistence_baseline,
    reliability_table,
)
from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble
from trading_core.forecast.pyfunc_model import log_forecaster_model
from trading_core.forecast.threads import intra_op_threads
from trading_core.forecast.train import TrainConfig, fingerprint, predict_split, resolve_device, train_ensemble

log = logging.getLogger(__name__)

STAGE = "forecaster"
MODEL_NAME = "forecaster"
"""Name of the logged pyfunc model inside the run."""
FROM_FEATURE_SET = ("input_dim", "seq_len", "output_size")
"""ForecasterConfig fields fixed by the feature set (features per bar, window length, three labels)."""
AT_LEAST_ONE = {
    "cnn_filters", "kernel_size", "lstm_units", "lstm_layers", "attention_heads", "ensemble_size",
    "epochs", "batch_size", "patience", "max_train_samples", "max_eval_samples", "cpu_threads",
}  # fmt: skip
"""Integer fields (or every entry of cnn_filters) that must be >= 1 when given."""
INPUT_EXAMPLE_WINDOWS = 4

_Config = TypeVar("_Config", ForecasterConfig, TrainConfig)


@dataclass(frozen=True)
class ForecasterRunResult:
    """One finished forecaster run: where it is in MLflow and how it scored."""

    run_id: str
    model_uri: str
    """The logged pyfunc (``models:/<model_id>``); ``runs:/<run_id>/forecaster`` resolves to it too."""
    feature_set_version: str
    dataset_version: str
    metrics: dict[str, float]
    """Flat: ``test_accuracy``, ``test_majority_accuracy``, ``test_persistence_accuracy``, ``test_log_loss``,
    ``test_ece``, ``p_value_vs_majority`` (test), the same for val (``val_...``), ``temperature``..."""
    params: int
    """Trainable parameters of the ensemble."""
    seconds: float
    device: str

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and Asset-event extras (NaN metrics become null)."""
        return {
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "feature_set_version": self.feature_set_version,
            "dataset_version": self.dataset_version,
            "metrics": tracking.finite(self.metrics),
            "params": self.params,
            "seconds": round(self.seconds, 3),
            "device": self.device,
        }


# ------------------------------------------------------------------------------------------ configs


def _with_overrides(base: _Config, overrides: Mapping[str, Any] | None, fixed: tuple[str, ...]) -> _Config:
    """``base`` with ``overrides`` applied; unknown or fixed keys and ill-typed values raise ConfigError."""
    overrides = dict(overrides or {})
    kind = type(base).__name__
    allowed = [f.name for f in fields(base) if f.name not in fixed]
    if pinned := sorted(k for k in overrides if k in fixed):
        raise ConfigError(f"{kind} override(s) {pinned} cannot be set: they come from the feature set")
    if unknown := sorted(k for k in overrides if k not in allowed):
        raise ConfigError(f"unknown {kind} override(s) {unknown}; expected some of {allowed}")
    try:
        config = TypeAdapter(type(base)).validate_python({**base.as_dict(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})" for e in exc.errors())
        raise ConfigError(f"invalid {kind} override: {problems}") from exc
    for key in sorted(AT_LEAST_ONE & overrides.keys()):
        value = getattr(config, key)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and v < 1 for v in values):
            raise ConfigError(f"{kind}.{key} must be at least 1, got {value!r}")
    return config


def resolve_configs(
    fs: FeatureSet, settings: Settings, model: Mapping[str, Any] | None = None, train: Mapping[str, Any] | None = None
) -> tuple[ForecasterConfig, TrainConfig]:
    """Defaults (input size and window length from the feature set, seed from settings) + overrides."""
    base_model = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len)
    return (
        _with_overrides(base_model, model, FROM_FEATURE_SET),
        _with_overrides(TrainConfig(seed=settings.seed), train, ()),
    )


# --------------------------------------------------------------------------------------- evaluation


def evaluate(model: ForecasterEnsemble, fs: FeatureSet) -> dict[str, dict[str, Any]]:
    """Per split (val, test): :func:`evaluation_report` (model vs majority class vs persistence, p-value)
    plus the reliability table, the confusion matrix and the mean uncertainty of the predictions.

    Persistence predicts the latest label known at decision time: the same symbol's label ``horizon``
    bars earlier (the label of the previous bar would need prices from the future)."""
    train_labels = fs.split("train").labels
    columns = fs.features(["label"])
    horizon = int(fs.manifest["config"]["labels"]["horizon"])
    majority_class = int(np.bincount(train_labels, minlength=N_CLASSES).argmax())
    reports: dict[str, dict[str, Any]] = {}
    for split in ("val", "test"):
        ds = fs.split(split)
        pred = predict_split(model, ds)
        persistence = persistence_baseline(
            columns["label"].to_numpy(), columns["symbol"].to_numpy(), ds.end_rows, horizon, majority_class
        )
        report = evaluation_report(pred["probs"], ds.labels, train_labels, persistence)
        report["majority_class"] = majority_class
        report["uncertainty"] = {
            f"mean_{k}": float(np.mean(pred[k])) for k in ("confidence", "entropy", "mutual_info", "disagreement")
        }
        report["reliability"] = reliability_table(pred["probs"], ds.labels)
        report["confusion"] = confusion(pred["probs"], ds.labels).tolist()
        reports[split] = report
    return reports


def _metrics(reports: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for split, report in reports.items():
        out |= reporting.flat_metrics(report, split)
        out |= {f"{split}_{k}": v for k, v in report["uncertainty"].items()}
    out["p_value_vs_majority"] = out["test_p_value_vs_majority"]
    return out


def _params(fs: FeatureSet, model_cfg: ForecasterConfig, train_cfg: TrainConfig, fp: str) -> dict[str, Any]:
    labels = fs.manifest["config"]["labels"]
    return {
        **{f"model.{k}": v for k, v in model_cfg.as_dict().items()},
        **{f"train.{k}": v for k, v in train_cfg.as_dict().items()},
        "feature_set_version": fs.version,
        "dataset_version": fs.manifest["dataset_version"],
        "n_features": len(fs.feature_names),
        "label_horizon": labels["horizon"],
        "label_threshold_k": labels["threshold_k"],
        **{f"samples_{split}": len(fs.split(split)) for split in ("train", "val", "test")},
        "fingerprint": fp,
    }


# -------------------------------------------------------------------------------------------- stage


def train_forecaster(
    feature_set_version: str,
    settings: Settings,
    *,
    model: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    experiment: str = "forecaster",
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> ForecasterRunResult:
    """Train, evaluate and log the forecaster ensemble of one feature set in one MLflow run.

    :param model: overrides of :class:`ForecasterConfig` fields (not input_dim/seq_len/output_size).
    :param train: overrides of :class:`TrainConfig` fields (seed defaults to ``settings.seed``).
    :param experiment: MLflow experiment, created under the configured artifact root if missing.
    :param tags: extra run tags; the lineage tags (versions, git sha, device, stage) take precedence.
    :raises ConfigError: an unknown, fixed or ill-typed override.
    :raises DatasetNotFound: the feature set is not in the store.
    """
    t0 = time.perf_counter()
    fs = feature_store(settings).open(feature_set_version)
    model_cfg, train_cfg = resolve_configs(fs, settings, model, train)
    if empty := [s for s in ("train", "val", "test") if len(fs.split(s)) == 0]:
        raise ConfigError(f"feature set {fs.version} has no samples in split(s) {empty}")
    fp = fingerprint(fs.version, model_cfg, train_cfg)
    checkpoint_dir = settings.home / "checkpoints" / fs.version / fp
    try:
        device = str(resolve_device(train_cfg.device))
    except RuntimeError as exc:  # no CUDA, or not a device name
        raise ConfigError(f"TrainConfig.device {train_cfg.device!r}: {exc}") from exc
    dataset_version = str(fs.manifest["dataset_version"])
    run_tags = {
        **dict(tags or {}),
        "dataset_version": dataset_version,
        "feature_set_version": fs.version,
        "git_sha": tracking.git_sha(),
        "device": device,
        "trading.stage": STAGE,
    }
    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(experiment, settings)

    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name or f"{STAGE}-{fs.version[3:11]}-{fp[:6]}",
        tags=run_tags,
        nested=mlflow.active_run() is not None,  # e.g. one trial inside an HPO parent run
        log_system_metrics=True,
    ) as run:
        mlflow.log_params(_params(fs, model_cfg, train_cfg, fp))
        epochs = reporting.EpochLogger()
        log.info("training %d members on %s (%s), checkpoints in %s", model_cfg.ensemble_size, fs.version, device, fp)
        result = train_ensemble(fs, model_cfg, train_cfg, checkpoint_dir, on_epoch=epochs)
        if result.resumed_from is not None:
            mlflow.set_tag(
                "resumed_from", f"member {result.resumed_from['member']} epoch {result.resumed_from['epoch']}"
            )
            epochs.backfill(result.history)
        ensemble = result.model
        mlflow.log_params({"n_params": ensemble.num_params(), "flops_per_window": ensemble.flops_per_window()})
        mlflow.log_dict({"history": result.history}, "training/history.json")

        log.info("evaluating on val and test")
        with intra_op_threads(train_cfg.cpu_threads):  # the metrics, like the weights, whatever the thread count
            reports = evaluate(ensemble, fs)
        test = fs.split("test")
        example = test.batch(np.arange(min(INPUT_EXAMPLE_WINDOWS, len(test))))
        info = log_forecaster_model(ensemble, fs.path, example, name=MODEL_NAME)
        mlflow.set_tag("model_uri", str(info.model_uri))  # how a retried task finds the model of a finished run

        metrics = _metrics(reports) | {
            "temperature": result.temperature,
            "train_seconds": result.seconds,
            "train_samples_per_s": result.train_samples_per_s,
            "samples_seen": float(result.samples_seen),
        }
        mlflow.log_metrics(metrics, model_id=info.model_id)
        mlflow.log_dict(
            {"feature_set_version": fs.version, "dataset_version": dataset_version, "splits": reports},
            "evaluation/report.json",
        )
        for split, report in reports.items():
            where = f"{split} split, n={report['n']}"
            mlflow.log_figure(
                reporting.confusion_figure(np.asarray(report["confusion"]), f"Confusion matrix ({where})"),
                f"evaluation/{split}_confusion_matrix.png",
            )
            mlflow.log_figure(
                reporting.reliability_figure(report["reliability"], report["model"]["ece"], f"Reliability ({where})"),
                f"evaluation/{split}_reliability.png",
            )
        run_id = run.info.run_id

    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # the feature set's folder, once no other run's checkpoint is in it
        checkpoint_dir.parent.rmdir()
    seconds = time.perf_counter() - t0
    log.info(
        "forecaster run %s: test accuracy %.3f (majority %.3f, persistence %.3f) in %.1fs",
        run_id,
        metrics["test_accuracy"],
        metrics["test_majority_accuracy"],
        metrics["test_persistence_accuracy"],
        seconds,
    )
    return ForecasterRunResult(
        run_id=run_id,
        model_uri=str(info.model_uri),
        feature_set_version=fs.version,
        dataset_version=dataset_version,
        metrics=metrics,
        params=ensemble.num_params(),
        seconds=seconds,
        device=result.device,
    )
