"""Classification metrics of the forecaster and of the baselines it must beat.

Everything is computed from label and probability arrays with numpy/scikit-learn, so the model,
the majority-class baseline and the persistence baseline are scored by the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, log_loss

N_CLASSES = 3


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_table(probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, list[float]]:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's data)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    table: dict[str, list[float]] = {"bin_low": [], "confidence": [], "accuracy": [], "count": []}
    for b in range(n_bins):
        in_bin = bins == b
        table["bin_low"].append(float(edges[b]))
        table["count"].append(float(in_bin.sum()))
        table["confidence"].append(float(confidence[in_bin].mean()) if in_bin.any() else float("nan"))
        table["accuracy"].append(float(correct[in_bin].mean()) if in_bin.any() else float("nan"))
    return table


def classification_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """accuracy, balanced accuracy, macro-F1, log-loss and ECE of (N, 3) probabilities."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    return {
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, average="macro", labels=list(range(N_CLASSES)), zero_division=0)),
        "log_loss": float(log_loss(labels, probs, labels=list(range(N_CLASSES)))),
        "ece": expected_calibration_error(probs, labels),
    }


def one_hot(pred: np.ndarray, smoothing: float = 1e-3) -> np.ndarray:
    """Hard predictions as (almost) one-hot probabilities, so log-loss stays finite for baselines."""
    out = np.full((len(pred), N_CLASSES), smoothing / (N_CLASSES - 1))
    out[np.arange(len(pred)), pred] = 1.0 - smoothing
    return out


def majority_baseline(train_labels: np.ndarray, n: int) -> np.ndarray:
    """Always the most frequent training class, with the training class frequencies as probabilities
    (the best constant forecast: its log-loss is the labels' entropy)."""
    freq = np.bincount(train_labels, minlength=N_CLASSES).astype(np.float64)
    freq /= freq.sum()
    return np.tile(freq, (n, 1))


def persistence_baseline(
    all_labels: np.ndarray, all_symbols: np.ndarray, rows: np.ndarray, horizon: int, fallback: int
) -> np.ndarray:
    """The latest label already known at decision time, for the samples ending at ``rows``: the same
    symbol's label ``horizon`` bars earlier (the label of t-1 needs bars up to t-1+h, the future).
    ``all_labels``/``all_symbols`` are the feature set's columns in (symbol, time) row order; where no
    earlier label exists, ``fallback`` (the training majority class)."""
    rows = np.asarray(rows, dtype=np.int64)
    earlier = rows - horizon
    ok = earlier >= 0
    ok[ok] = (all_symbols[earlier[ok]] == all_symbols[rows[ok]]) & (all_labels[earlier[ok]] >= 0)
    pred = np.full(len(rows), fallback, dtype=np.int64)
    pred[ok] = all_labels[earlier[ok]]
    return pred


def binomial_p_value(correct: int, n: int, baseline_rate: float) -> float:
    """One-sided p-value that an accuracy of ``correct``/``n`` beats ``baseline_rate`` by chance."""
    if n == 0:
        return float("nan")
    return float(binomtest(correct, n, baseline_rate, alternative="greater").pvalue)


def confusion(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return confusion_matrix(labels, np.asarray(probs).argmax(axis=1), labels=list(range(N_CLASSES)))


def evaluation_report(
    probs: np.ndarray, labels: np.ndarray, train_labels: np.ndarray, persistence: np.ndarray
) -> dict[str, Any]:
    """Model vs majority class vs persistence on one split, plus a binomial test against the majority rate.

    ``persistence`` holds the persistence baseline's predicted classes (:func:`persistence_baseline`).
    """
    majority_class = int(np.bincount(train_labels, minlength=N_CLASSES).argmax())
    majority_rate = float((labels == majority_class).mean()) if len(labels) else float("nan")
    correct = int((np.asarray(probs).argmax(axis=1) == labels).sum())
    return {
        "n": int(len(labels)),
        "model": classification_metrics(probs, labels),
        "majority": classification_metrics(majority_baseline(train_labels, len(labels)), labels),
        "persistence": classification_metrics(one_hot(persistence), labels),
        "majority_rate": majority_rate,
        "p_value_vs_majority": binomial_p_value(correct, len(labels), majority_rate),
    }
