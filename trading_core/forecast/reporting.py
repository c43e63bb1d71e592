"""What the forecaster stage logs to its MLflow run: per-epoch metrics, flat evaluation metrics, figures.

Small pieces the stage function (:mod:`.pipeline`) composes; none of them trains or evaluates. The
store, experiments and lineage every stage shares are in :mod:`trading_core.tracking`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import mlflow
import numpy as np
from matplotlib.figure import Figure

from trading_core.features.config import LABEL_NAMES

EPOCH_METRICS = ("train_loss", "val_loss", "lr", "epoch_seconds", "samples_per_s")
"""Per-epoch values of ``train_ensemble``'s callback logged as ``member_<k>/<name>`` at step = epoch."""


# -------------------------------------------------------------------------------- per-epoch metrics


class EpochLogger:
    """``train_ensemble``'s ``on_epoch`` callback: ``member_<k>/<metric>`` at step = epoch, so the MLflow
    UI shows one section per member with a chart per metric. Remembers what it logged, so epochs
    trained before a resume (present in the checkpoint's history) can be back-filled afterwards."""

    def __init__(self) -> None:
        self.logged: set[tuple[int, int]] = set()

    def __call__(self, member: int, epoch: int, metrics: Mapping[str, float]) -> None:
        values = {f"member_{member}/{k}": float(metrics[k]) for k in EPOCH_METRICS if k in metrics}
        mlflow.log_metrics(values, step=epoch)
        self.logged.add((member, epoch))

    def backfill(self, history: Iterable[Mapping[str, float]]) -> int:
        """Log the history entries this logger has not seen; returns how many."""
        missing = [h for h in history if (int(h["member"]), int(h["epoch"])) not in self.logged]
        for h in missing:
            self(int(h["member"]), int(h["epoch"]), h)
        return len(missing)


# ----------------------------------------------------------------------------------------- metrics


def flat_metrics(report: Mapping[str, Any], split: str) -> dict[str, float]:
    """``evaluation_report`` of one split as flat MLflow metrics: ``<split>_<metric>`` for the model,
    ``<split>_<baseline>_<metric>`` for the baselines, plus n, majority rate and the p-value."""
    out = {f"{split}_{k}": float(v) for k, v in report["model"].items()}
    for baseline in ("majority", "persistence"):
        out |= {f"{split}_{baseline}_{k}": float(v) for k, v in report[baseline].items()}
    out[f"{split}_n"] = float(report["n"])
    out[f"{split}_majority_rate"] = float(report["majority_rate"])
    out[f"{split}_p_value_vs_majority"] = float(report["p_value_vs_majority"])
    return out


# ----------------------------------------------------------------------------------------- figures


def confusion_figure(matrix: np.ndarray, title: str) -> Figure:
    """Counts with the share of each true class (row) in brackets; rows true, columns predicted."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]}\n({shares[i, j]:.0%})", ha="center", va="center", color=color, fontsize=9)
    names = list(LABEL_NAMES)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="share of true class")
    return fig


def reliability_figure(table: Mapping[str, list[float]], ece: float, title: str) -> Figure:
    """Reliability diagram: accuracy vs mean confidence per confidence bin (the diagonal is perfect
    calibration), with the number of samples per bin underneath."""
    low = np.asarray(table["bin_low"])
    width = float(low[1] - low[0]) if len(low) > 1 else 1.0
    acc = np.asarray(table["accuracy"], dtype=float)
    conf = np.asarray(table["confidence"], dtype=float)
    count = np.asarray(table["count"], dtype=float)
    fig = Figure(figsize=(5.0, 5.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = np.isfinite(acc)
    top.bar(low[filled], acc[filled], width=width, align="edge", edgecolor="black", alpha=0.8, label="accuracy")
    top.bar(
        low[filled], conf[filled] - acc[filled], bottom=acc[filled], width=width, align="edge",
        color="tab:red", alpha=0.3, label="gap to confidence",
    )  # fmt: skip
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title} (ECE {ece:.3f})", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(low, count, width=width, align="edge", color="grey", edgecolor="black")
    bottom.set_xlabel("confidence (probability of the predicted class)")
    bottom.set_ylabel("samples")
    return fig
