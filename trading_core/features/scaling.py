"""Standardisation fitted on the training rows only, stored as JSON (no pickle)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StandardScaler:
    """z = clip((x - mean) / std, -clip, clip), per feature; NaN stays NaN."""

    features: list[str]
    mean: list[float]
    std: list[float]
    clip: float
    fitted_rows: int

    @classmethod
    def fit(cls, x: np.ndarray, features: list[str], clip: float) -> StandardScaler:
        """Fit on rows of ``x`` (rows x features) whose features are all finite."""
        rows = x[np.isfinite(x).all(axis=1)]
        if len(rows) < 2:
            raise ValueError(f"cannot fit a scaler on {len(rows)} complete training rows")
        mean = rows.mean(axis=0, dtype=np.float64)
        std = rows.std(axis=0, ddof=0, dtype=np.float64)
        std = np.where(std > 1e-12, std, 1.0)  # a constant feature scales to 0, not inf
        return cls(list(features), mean.tolist(), std.tolist(), float(clip), int(len(rows)))

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> StandardScaler:
        return cls(**json.loads(path.read_text()))
