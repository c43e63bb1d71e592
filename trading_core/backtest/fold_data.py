"""A walk-forward fold's view of a feature set: what the forecaster of that fold may learn from.

:class:`FoldFeatureSet` has the interface :func:`~trading_core.forecast.train.train_ensemble` reads
(``version``, ``feature_names``, ``seq_len``, ``manifest``, ``samples``, ``split``, ``matrix``,
``scaler``, ``features``), with two things recomputed for the fold:

* **split codes**: train = samples decided in the fold's training bars before a validation tail
  (the last ``val_fraction`` of the training bars), val = that tail, test = samples decided in the
  fold's test bars. Purge by label window: a train sample whose label ends at or after the tail's
  first bar is dropped, and a val sample whose label ends after the last training bar is dropped,
  so no label used for fitting or early stopping reads a price at or after the end of the training
  window. ``embargo`` drops the tail's first bars as well.
* **the scaler**: fitted on the raw features of the rows in the fold's training bars only, and the
  matrix re-scaled with it: a fold never sees statistics of its own future (the stored feature set's
  scaler was fitted on the whole train split of the static split, later than early folds end).

Bars are indices into a :class:`~trading_core.rl.data.MarketData`'s ``timestamps`` (bars where every
symbol trades); samples carry the feature set's own timestamps. The view maps one onto the other
through timestamps, never through row counts (a symbol may trade on days another does not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.features.scaling import StandardScaler
from trading_core.features.splits import DROPPED, SPLIT_NAMES, TEST, TRAIN, VAL
from trading_core.features.store import FeatureSet


def naive_utc(values: Any) -> np.ndarray:
    """Timestamps (tz-aware or naive, any unit) as naive UTC ``datetime64[ns]``."""
    index = pd.DatetimeIndex(pd.to_datetime(np.asarray(values)))
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.to_numpy(dtype="datetime64[ns]")


class FoldFeatureSet(FeatureSet):
    """The fold view (see the module docstring). Raw features are read from the stored set; the
    scaled matrix and the samples live in memory."""

    def __init__(
        self,
        base: FeatureSet,
        bar_timestamps: np.ndarray,
        train: tuple[int, int],
        test: tuple[int, int],
        *,
        val_fraction: float = 0.15,
        embargo: int = 0,
        name: str = "fold",
    ) -> None:
        if not (0.0 < val_fraction < 1.0):
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        bars = naive_utc(bar_timestamps)
        (a, b), (c, d) = train, test
        if not (0 <= a < b <= c < d <= len(bars)):
            raise ValueError(f"fold bars train [{a}, {b}) / test [{c}, {d}) do not fit {len(bars)} bars in order")
        n_val = max(1, int(round((b - a) * val_fraction)))
        if b - a - n_val < 2:
            raise ValueError(f"a training window of {b - a} bars is too short for a validation tail of {n_val}")
        v = b - n_val  # first bar of the validation tail
        self.base = base
        self.path: Path = base.path
        self.train_bars, self.val_bars, self.test_bars = (a, v), (v, b), (c, d)
        self.train_start, self.val_start = bars[a], bars[v]
        self.train_end = bars[b - 1]  # the last training bar (inclusive)
        self.test_start, self.test_end = bars[c], bars[d - 1]
        self._version = f"{base.version}-{name}"

        samples = base.samples.copy()
        ts = naive_utc(samples["timestamp"])
        raw = base.features(["label_end", *base.feature_names])
        label_end = naive_utc(raw["label_end"].to_numpy()[samples["row"].to_numpy()])
        code = np.full(len(samples), DROPPED, dtype=np.int8)
        in_train = (ts >= self.train_start) & (ts < self.val_start) & (label_end < self.val_start)
        val_clear = bars[min(v + embargo, b - 1)] if embargo else self.val_start
        in_val = (ts >= val_clear) & (ts <= self.train_end) & (label_end <= self.train_end)
        in_test = (ts >= self.test_start) & (ts <= self.test_end)
        code[in_train], code[in_val], code[in_test] = TRAIN, VAL, TEST
        samples["split"] = code
        self._samples = samples

        row_ts = naive_utc(raw["timestamp"])
        values = raw[base.feature_names].to_numpy(dtype=np.float64)
        self.fit_rows = (row_ts >= self.train_start) & (row_ts <= self.train_end)
        clip = float(base.manifest["config"]["dataset"]["clip"])
        self.scaler = StandardScaler.fit(values[self.fit_rows], base.feature_names, clip)
        self._matrix = self.scaler.transform(values)
        self.manifest = base.manifest
        counts = {n: int((code == k).sum()) for k, n in SPLIT_NAMES.items()}
        self.summary: dict[str, Any] = {
            **base.summary,
            "feature_set_version": self._version,
            "splits": {
                **counts,
                "train_start": str(self.train_start),
                "val_start": str(self.val_start),
                "train_end": str(self.train_end),
                "test_start": str(self.test_start),
                "test_end": str(self.test_end),
            },
            "scaler_fitted_rows": self.scaler.fitted_rows,
        }
        empty = [n for n, k in counts.items() if k == 0]
        if empty:
            raise ValueError(f"fold {name}: split(s) {empty} are empty (train/val/test samples {counts})")

    @property
    def version(self) -> str:
        return self._version

    @property
    def matrix(self) -> np.ndarray:
        return self._matrix

    def split_counts(self) -> dict[str, int]:
        code = self.samples["split"].to_numpy()
        return {n: int((code == k).sum()) for k, n in SPLIT_NAMES.items()}
