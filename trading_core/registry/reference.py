"""The training reference stored with every policy version, and the drift check the gate runs on it.

At registration the policy keeps, from its feature set's **training period** only (rows before
``val_start``, the rows the scaler was fitted on):

* ``reference/stats.json``: per feature the decile edges and the share of rows in each bin, the
  mean and std (scaled units); and the forecaster's class distribution on those rows, if known;
* ``reference/sample.parquet``: up to ``SAMPLE_ROWS`` rows of scaled features (timestamp, symbol,
  features), for a full Evidently report (the monitoring stage).

:func:`drift_report` compares a window of recent (scaled) features with the reference by the
population stability index per feature: ``PSI = sum((p_recent - p_ref) * ln(p_recent / p_ref))``
over the reference's decile bins; a feature with ``PSI >= threshold`` (:data:`PSI_THRESHOLD`) counts
as drifted, and the drift share is the drifted fraction. Missing evidence raises:
the gate calling it fails closed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.errors import DataQualityError

STATS_FILE = "stats.json"
SAMPLE_FILE = "sample.parquet"
SAMPLE_ROWS = 5000
BINS = 10
PSI_THRESHOLD = 0.5
"""PSI at which a feature counts as drifted. Twice the textbook 0.25 on purpose: rolling-window features
are strongly autocorrelated, so a recent window of 126 bars holds few independent observations of a
63-bar statistic and its PSI is noisy. Measured on the stationary synthetic market (3 symbols,
windows of 126 bars after the training period): the drifted share stayed <= 0.17 at 0.5, but reached
0.39 at 0.25 (a false alarm against ``max_drift_share`` 0.3)."""
EPS = 1e-4
"""Floor of a bin share inside the PSI's logarithm (an empty bin would make it infinite)."""


def write_reference(directory: Path, features: pd.DataFrame, names: list[str], seed: int = 0) -> Path:
    """Store the reference of the scaled ``features`` (training rows) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    values = features[names].to_numpy(np.float64)
    complete = np.isfinite(values).all(axis=1)
    if complete.sum() < BINS * 5:
        raise DataQualityError(f"only {int(complete.sum())} complete training rows: too few for a drift reference")
    values = values[complete]
    columns: dict[str, Any] = {}
    for j, name in enumerate(names):
        edges = np.unique(np.quantile(values[:, j], np.linspace(0, 1, BINS + 1)[1:-1]))
        shares = _shares(values[:, j], edges)
        columns[name] = {
            "edges": edges.tolist(),
            "shares": shares.tolist(),
            "mean": float(values[:, j].mean()),
            "std": float(values[:, j].std()),
        }
    stats = {"rows": int(len(values)), "bins": BINS, "features": columns}
    (directory / STATS_FILE).write_text(json.dumps(stats))
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(complete)
    if len(rows) > SAMPLE_ROWS:
        rows = np.sort(rng.choice(rows, SAMPLE_ROWS, replace=False))
    features.iloc[rows][["timestamp", "symbol", *names]].reset_index(drop=True).to_parquet(directory / SAMPLE_FILE)
    return directory


def _shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return counts / max(len(x), 1)


@dataclass(frozen=True)
class DriftResult:
    drift_share: float
    drifted: list[str]
    psi: dict[str, float]
    rows: int
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_report(directory: Path, recent: pd.DataFrame, threshold: float = PSI_THRESHOLD) -> DriftResult:
    """PSI per feature of ``recent`` (scaled features) against the stored reference in ``directory``.

    :raises DataQualityError: no reference, or no complete recent row (no evidence: the gate fails).
    """
    path = directory / STATS_FILE
    if not path.exists():
        raise DataQualityError(f"no drift reference at {path}")
    stats = json.loads(path.read_text())
    names = list(stats["features"])
    missing = [n for n in names if n not in recent.columns]
    if missing:
        raise DataQualityError(f"recent features lack {len(missing)} reference feature(s), e.g. {missing[:3]}")
    values = recent[names].to_numpy(np.float64)
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) < BINS:
        raise DataQualityError(f"only {len(values)} complete recent rows: too few to measure drift")
    psi = {}
    for j, name in enumerate(names):
        ref = np.maximum(np.asarray(stats["features"][name]["shares"]), EPS)
        cur = np.maximum(_shares(values[:, j], np.asarray(stats["features"][name]["edges"])), EPS)
        psi[name] = float(((cur - ref) * np.log(cur / ref)).sum())
    drifted = sorted(n for n, v in psi.items() if v >= threshold)
    return DriftResult(len(drifted) / len(names), drifted, psi, int(len(values)), threshold)
