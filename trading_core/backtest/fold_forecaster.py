"""The forecaster of a walk-forward fold: trained on the fold's past, scored on its test window, and
its forecasts at every bar, the block of the panel the fold's agents and rules read.

**What the agents train on**: the forecasts over the training bars are in-sample for the forecaster
(it was fitted on them; there is no way around this without nesting a second walk-forward inside
each fold); the forecasts over the test window are out of sample. The agents are therefore evaluated
on honest forecasts but trained on optimistic ones, which, if anything, handicaps the hybrid agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from trading_core.backtest.config import WalkForwardConfig
from trading_core.backtest.fold_data import FoldFeatureSet, naive_utc
from trading_core.config import Settings
from trading_core.forecast.metrics import N_CLASSES, evaluation_report, persistence_baseline
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pipeline import resolve_configs
from trading_core.forecast.pyfunc_model import predict_frame
from trading_core.forecast.train import predict_split, train_ensemble
from trading_core.rl.data import FORECAST_COLUMNS
from trading_core.rl.market import window_end_rows


@dataclass(frozen=True)
class FoldForecaster:
    """A fold's trained forecaster ensemble and its test scores (:func:`forecaster_report`)."""

    model: ForecasterEnsemble
    scores: dict[str, float]


def train_fold_forecaster(
    view: FoldFeatureSet, settings: Settings, cfg: WalkForwardConfig, seed: int, workdir: Path
) -> FoldForecaster:
    """A forecaster ensemble trained on the fold's view (early stopping on the training window's last
    ``val_fraction``; checkpoints under ``workdir``), scored on the fold's test samples."""
    model_cfg, train_cfg = resolve_configs(view, settings, cfg.forecaster, {**cfg.forecaster_train, "seed": seed})
    trained = train_ensemble(view, model_cfg, train_cfg, workdir)
    return FoldForecaster(trained.model, forecaster_report(view, trained.model))


def fold_forecasts(
    view: FoldFeatureSet, model: ForecasterEnsemble, symbols: list[str], until: np.datetime64
) -> pd.DataFrame:
    """The fold's forecaster at every bar (of ``symbols``) that ends a complete window, up to ``until``."""
    keys = view.features([])
    matrix = view.matrix
    rows = window_end_rows(matrix, keys["symbol"].to_numpy(), view.seq_len)
    ts = naive_utc(keys["timestamp"])
    rows = rows[np.isin(keys["symbol"].to_numpy()[rows], symbols) & (ts[rows] <= until)]
    windows = np.swapaxes(np.lib.stride_tricks.sliding_window_view(matrix, view.seq_len, axis=0), 1, 2)
    parts = []
    for lo in range(0, len(rows), 8192):
        chunk = rows[lo : lo + 8192]
        batch = np.ascontiguousarray(windows[chunk - view.seq_len + 1], dtype=np.float32)
        parts.append(predict_frame(model, batch)[list(FORECAST_COLUMNS)])
    predictions = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FORECAST_COLUMNS), dtype=float)
    )
    return pd.concat([keys.iloc[rows].reset_index(drop=True), predictions], axis=1)


def forecaster_report(view: FoldFeatureSet, model: ForecasterEnsemble) -> dict[str, float]:
    """Test accuracy of the fold's forecaster vs the training majority class (binomial p-value) and persistence."""
    test, train = view.split("test"), view.split("train")
    probs = predict_split(model, test)["probs"]
    frame = view.features(["label"])
    horizon = int(view.manifest["config"]["labels"]["horizon"])
    majority = int(np.bincount(train.labels, minlength=N_CLASSES).argmax())
    persistence = persistence_baseline(
        frame["label"].to_numpy(), frame["symbol"].to_numpy(), test.end_rows, horizon, majority
    )
    report = evaluation_report(probs, test.labels, train.labels, persistence)
    return {
        "n": float(report["n"]),
        "accuracy": report["model"]["accuracy"],
        "majority_rate": report["majority_rate"],
        "persistence_accuracy": report["persistence"]["accuracy"],
        "p_value_vs_majority": report["p_value_vs_majority"],
        "log_loss": report["model"]["log_loss"],
        "majority_log_loss": report["majority"]["log_loss"],
        "balanced_accuracy": report["model"]["balanced_accuracy"],
    }


def forecaster_pooled(forecaster: pd.DataFrame) -> dict[str, float]:
    """Accuracy over every fold's and seed's test samples together vs the pooled majority rate, with
    a one-sided binomial p-value (samples of different seeds are the same samples: the test counts
    each fold once, with the seeds' mean accuracy)."""
    per_fold = forecaster.groupby("fold")[["n", "accuracy", "majority_rate"]].mean()
    n = float(per_fold["n"].sum())
    if n <= 0:
        return {"n": 0.0, "accuracy": float("nan"), "majority_rate": float("nan"), "p_value": float("nan")}
    acc = float((per_fold["accuracy"] * per_fold["n"]).sum() / n)
    base = float((per_fold["majority_rate"] * per_fold["n"]).sum() / n)
    p = float(stats.binomtest(int(round(acc * n)), int(n), base, alternative="greater").pvalue)
    return {"n": n, "accuracy": acc, "majority_rate": base, "p_value": p}
