"""Per-column drift thresholds calibrated on the model's own training period.

**Why.** A two-sample test assumes independent rows. Rolling-window features are strongly
autocorrelated: 63 consecutive bars hold a handful of independent observations, so a K-S test at 5 %
flags most columns of a perfectly stationary window (measured on the planted-trend market: a median
share of 0.70 drifted columns, 100 % of stationary windows over a 0.3 share; see :mod:`.drift`).
A fixed distance threshold (Evidently's Wasserstein 0.1) fails the same way: how far a window of
*this* feature may wander from the training distribution without anything having changed depends on
its persistence, which differs per feature.

**What.** Measure it. Slide windows of ``window`` bars across the training period (``stride`` bars
apart); compare each with the reference rows *outside* it, leaving a guard band of ``guard`` bars on
both sides so the window's own rolling inputs are not in its reference; take the normed Wasserstein
distance per column (Evidently's ``wasserstein`` stat test: ``W1(ref, cur) / std(ref)``). The largest
distance a column showed over the training period, times ``margin``, is its threshold: a column drifts
when the live window sits further from the reference than any training window ever did.

Measured (``benchmarks/drift_calibration.py``, three symbols, 46 features, windows of 63 bars): on
stationary stretches after the training period no window reached a 0.3 share of drifted columns
(K-S: all of them did); after a planted break (volatility x4, trend reversed) the share crossed 0.3
10 to 21 bars after the break.

Pure functions on frames with a ``timestamp`` column: no Evidently, no I/O (scipy's
``wasserstein_distance`` with Evidently's normalisation, so the thresholds mean the same in the report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wasserstein_distance

from trading_core.errors import ConfigError, DataQualityError

METHOD = "wasserstein"
"""Evidently's stat test the thresholds are for (normed Wasserstein distance, drifted when ``>=``)."""
MARGIN = 1.1
"""Threshold = ``MARGIN`` x the largest training-period distance (1.0 gave 3 % false alarms, 1.1 none)."""
MIN_WINDOWS = 6
"""Fewest training-period windows to calibrate on: fewer is a guess, and the check refuses it."""
MIN_ROWS = 30
FLOOR = 0.01
"""Smallest threshold: a column constant over the whole training period would otherwise get 0."""


@dataclass(frozen=True)
class Calibration:
    """Per-column thresholds of the normed Wasserstein distance and how they were measured."""

    thresholds: dict[str, float]
    null_max: dict[str, float]
    """Largest distance per column over the training-period windows."""
    n_windows: int
    window: int
    stride: int
    guard: int
    margin: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Evidently's ``wasserstein`` score: first Wasserstein distance over ``max(std(reference), 0.001)``."""
    return float(wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001))


def _finite(values: pd.Series) -> np.ndarray:
    array = values.to_numpy(np.float64)
    return array[np.isfinite(array)]


def calibrate(
    reference: pd.DataFrame,
    history: pd.DataFrame,
    columns: list[str],
    window: int,
    *,
    stride: int | None = None,
    guard: int | None = None,
    margin: float = MARGIN,
    min_windows: int = MIN_WINDOWS,
) -> Calibration:
    """Thresholds for ``columns`` from windows of ``history`` (the training period, every bar) against
    the ``reference`` rows (the stored training sample) outside each window +- ``guard`` bars.

    :param stride: bars between window ends (default ``window // 4``).
    :param guard: bars left out on each side of a window (default ``window``).
    :raises DataQualityError: fewer than ``min_windows`` windows fit in ``history``, or a column is missing.
    """
    stride = stride or max(1, window // 4)
    guard = window if guard is None else guard
    if window < 2 or stride < 1 or guard < 0 or margin < 1.0:
        raise ConfigError(f"bad calibration: window {window}, stride {stride}, guard {guard}, margin {margin}")
    for frame, side in ((reference, "reference"), (history, "history")):
        missing = [c for c in ["timestamp", *columns] if c not in frame.columns]
        if missing:
            raise DataQualityError(f"calibration {side} lacks column(s) {missing[:5]}")
    ref_stamps = pd.to_datetime(reference["timestamp"], utc=True)
    hist = history.assign(timestamp=pd.to_datetime(history["timestamp"], utc=True))
    stamps = np.sort(hist["timestamp"].unique())
    distances: list[list[float]] = []
    for end in range(window - 1, len(stamps), stride):
        start = end - window + 1
        current = hist[hist["timestamp"].between(stamps[start], stamps[end])]
        low, high = stamps[max(0, start - guard)], stamps[min(len(stamps) - 1, end + guard)]
        outside = reference[((ref_stamps < low) | (ref_stamps > high)).to_numpy()]
        row = []
        for column in columns:
            a, b = _finite(outside[column]), _finite(current[column])
            if len(a) < MIN_ROWS or len(b) < MIN_ROWS:
                break
            row.append(normed_wasserstein(a, b))
        else:
            distances.append(row)
    if len(distances) < min_windows:
        raise DataQualityError(
            f"only {len(distances)} training-period windows of {window} bars (stride {stride}, guard {guard}) "
            f"have {MIN_ROWS}+ complete rows on both sides; {min_windows} are needed to calibrate drift "
            f"thresholds: use a shorter window or a longer training period"
        )
    null_max = np.asarray(distances).max(axis=0)
    return Calibration(
        thresholds={c: max(float(d) * margin, FLOOR) for c, d in zip(columns, null_max, strict=True)},
        null_max={c: float(d) for c, d in zip(columns, null_max, strict=True)},
        n_windows=len(distances), window=window, stride=stride, guard=guard, margin=margin,
    )  # fmt: skip
