"""Feature and prediction drift with Evidently's ``DataDriftPreset`` (evidently 0.7).

:func:`feature_drift` compares a window of recent feature rows with the model's training reference;
:func:`prediction_drift` does the same for the forecaster's class probabilities (and the predicted label).
Both return a :class:`DriftResult`: one :class:`ColumnDrift` per column (stat test, score, threshold,
drifted) and the dataset-level verdict.

**The stat test is pinned, not left to Evidently.** Left alone (``method=None``), Evidently 0.7.23
picks by column type and *reference size* (``legacy/calculations/stattests/registry.py``,
``_get_default_stattest``):

* numerical, reference <= 1000 rows, > 5 distinct values: two-sample **K-S p-value**, drifted when
  ``p <= 0.05``; <= 5 distinct values: chi-square (3-5 values) or Z-test (2 values);
* numerical, reference > 1000 rows: **normed Wasserstein distance** (distance / reference std),
  drifted when ``>= 0.1``; <= 5 distinct values: Jensen-Shannon;
* categorical: chi-square (Z-test when binary) up to 1000 reference rows, Jensen-Shannon above.

So a few hundred reference rows get K-S, and the policy's stored reference sample (up to 5,000 rows)
would silently switch to Wasserstein. At our window sizes Wasserstein's 0.1 is mostly sampling noise:
measured per-column false-alarm rates on iid N(0, 1) data, 63 current rows, were 0.94 (250 reference
rows) and 0.91 (1,500 reference rows; 0.59 with 126 current rows); PSI at its default 0.1 gave 0.94.
K-S at 0.05 keeps its nominal rate on iid data (0.07 and 0.04 on two sets of 200 column tests, SE
0.015; see ``tests/test_monitoring_drift.py``). So numerical columns use :data:`NUM_METHOD` (``"ks"``)
at Evidently's default K-S level :data:`NUM_THRESHOLD` unless the caller passes ``method`` /
``threshold``; the predicted label uses :data:`CAT_METHOD` (chi-square p-value) at :data:`CAT_THRESHOLD`.

**Time-series caveat.** K-S assumes independent rows. Rolling-window features are strongly
autocorrelated, so a window of 63 consecutive bars holds only a few independent observations and K-S
over-rejects badly. On a stationary AR(1) with phi = 0.95 (250 reference rows vs the next 63) the
per-column false-alarm rate was 0.83 and 0.86 (200 and 50 column tests) instead of 0.05; 0.84
with a 1,500-row reference, 0.87 with 126 current rows, 0.80 for a 20-bar rolling mean of white noise.
On such features a per-column "drift" says "this window sits in one part of the training
distribution", not "the distribution moved", and a dataset share of 0.3 is reached on most stationary
windows. The monitoring check therefore does not use K-S: it passes ``method="wasserstein"`` with one
threshold per column calibrated on the training period (:mod:`.calibration`); the K-S default here is
for callers comparing independent samples.

**Dataset drift** is ``share >= drift_share`` (:data:`DriftResult.dataset_drift`): ``>=`` like
Evidently itself (its legacy ``DatasetDriftMetric`` and the default test it attaches to
``DriftedColumnsCount``, "share < drift_share" passes). With 10 features and ``drift_share=0.3``,
three drifted features are drift. (The registry's drift *gate* passes when its PSI share is
``<= max_drift_share``: at exactly the boundary the gate passes and the monitor flags.)

**How results are read** (``Snapshot.dict()``, the public export; no private objects): the preset
yields one ``DriftedColumnsCount`` metric (value ``{"count", "share"}``) and one ``ValueDrift`` per
column (value = the drift score: p-value for K-S/chi-square; config ``column``, ``method``,
``threshold``). ``ValueDrift`` holds no drifted flag; with ``Report(include_tests=True)`` each gets a
test ``id="drift"`` whose status is ``FAIL`` exactly when Evidently's stat test detected drift (K-S:
``p <= threshold``), matched to its metric by ``metric_config.metric_id``. The per-column flags must
add up to the ``DriftedColumnsCount`` count, or the result is refused.

Cost: the preset renders its plots while it computes (~0.2 s per column on one core), HTML or not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.errors import ConfigError, DataQualityError, TradingError

log = logging.getLogger(__name__)

NUM_METHOD = "ks"
"""Stat test of numerical columns (Evidently's registered name): two-sample Kolmogorov-Smirnov p-value."""
NUM_THRESHOLD = 0.05
"""Evidently's default K-S level (``threshold=None``): a column drifted when ``p <= 0.05`` (its K-S rule)."""
CAT_METHOD = "chisquare"
"""Stat test of the predicted label (categorical): chi-square p-value, drifted when ``p < CAT_THRESHOLD``."""
CAT_THRESHOLD = 0.05
MIN_ROWS = 30
"""Fewest complete rows on either side: below that a two-sample test says nothing useful."""
PROB_COLUMNS: tuple[str, ...] = ("prob_hold", "prob_buy", "prob_sell")
"""The forecaster's class probabilities, in class order (0 hold, 1 buy, 2 sell)."""
LABEL_COLUMN = "label"
"""The predicted label (argmax of :data:`PROB_COLUMNS`, as ``hold``/``buy``/``sell``) in prediction drift."""
LABELS: tuple[str, ...] = ("hold", "buy", "sell")


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    stattest: str
    """Evidently's name of the test (``ks``, ``chisquare``, ``wasserstein``...)."""
    score: float
    """The test's score: a p-value for ``ks``/``chisquare`` (small = drift), a distance for the others."""
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    drift_share: float
    """Share of drifted columns (Evidently's ``DriftedColumnsCount`` share)."""
    dataset_drift: bool
    """``drift_share >= threshold_share``."""
    drifted_columns: list[str]
    columns: list[ColumnDrift]
    n_reference: int
    """Complete reference rows tested."""
    n_current: int
    """Complete current rows tested."""
    threshold_share: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    *,
    drift_share: float = 0.3,
    html_path: Path | None = None,
    method: str = NUM_METHOD,
    threshold: float | Mapping[str, float] | None = None,
) -> DriftResult:
    """Drift of the numerical ``columns`` of ``current`` against ``reference`` (Evidently ``DataDriftPreset``).

    Rows with NaN or +-inf in any of ``columns`` are dropped first (both sides), so every column is
    tested on the same rows.

    :param drift_share: share of drifted columns at which the dataset counts as drifted (``>=``).
    :param html_path: where to write Evidently's HTML report (parent folders are created).
    :param method: Evidently stat test of the columns (default K-S; see the module docstring).
    :param threshold: its threshold; None takes the test's default (K-S: :data:`NUM_THRESHOLD`; 0.1 for
        distances); a mapping gives one per column (Evidently's ``per_column_threshold``), as calibrated by
        :func:`.calibration.calibrate`, and must cover every column.
    :raises DataQualityError: a column is missing or not numeric, or a side has fewer than
        :data:`MIN_ROWS` complete rows.
    """
    _check_args(columns, drift_share)
    ref = _complete(reference, columns, "reference")
    cur = _complete(current, columns, "current")
    return _run(ref, cur, list(columns), [], drift_share, html_path, method, threshold)


def prediction_drift(
    reference_probs: pd.DataFrame,
    current_probs: pd.DataFrame,
    *,
    drift_share: float = 0.3,
    html_path: Path | None = None,
    method: str = NUM_METHOD,
    threshold: float | Mapping[str, float] | None = None,
    include_label: bool = True,
) -> DriftResult:
    """Drift of the forecaster's output: ``prob_hold``, ``prob_buy``, ``prob_sell`` (numerical, ``method``)
    and, with ``include_label``, the predicted label (their argmax, categorical, chi-square): four columns
    in the share. The label's chi-square test has no calibrated threshold, so a caller that calibrates the
    probabilities (the monitoring check) leaves it out.

    :raises DataQualityError: a probability column is missing, or a side has too few complete rows.
    """
    columns = list(PROB_COLUMNS)
    _check_args(columns, drift_share)
    sides = []
    for frame, side in ((reference_probs, "reference"), (current_probs, "current")):
        probs = _complete(frame, columns, side)
        if include_label:
            probs[LABEL_COLUMN] = np.asarray(LABELS, dtype=object)[probs[columns].to_numpy().argmax(axis=1)]
        sides.append(probs)
    categorical = [LABEL_COLUMN] if include_label else []
    return _run(sides[0], sides[1], columns, categorical, drift_share, html_path, method, threshold)


def _check_args(columns: list[str], drift_share: float) -> None:
    if isinstance(columns, str) or not columns:
        raise ConfigError(f"columns must be a non-empty list of column names, got {columns!r:.80}")
    if len(set(columns)) != len(columns):
        raise ConfigError(f"columns are repeated: {sorted({c for c in columns if columns.count(c) > 1})}")
    if not 0 < drift_share <= 1:
        raise ConfigError(f"drift_share must be in (0, 1], got {drift_share!r}")


def _complete(frame: pd.DataFrame, columns: list[str], side: str) -> pd.DataFrame:
    """``frame[columns]`` as float64 without rows holding NaN or +-inf; raises naming what is wrong."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataQualityError(f"{side} data lacks {len(missing)} column(s): {missing[:5]}")
    not_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c]) or frame[c].dtype == bool]
    if not_numeric:
        raise DataQualityError(f"{side} column(s) {not_numeric[:5]} are not numeric")
    values = frame[columns].astype(np.float64).reset_index(drop=True)
    complete = np.isfinite(values.to_numpy()).all(axis=1)
    if complete.sum() < MIN_ROWS:
        raise DataQualityError(
            f"only {int(complete.sum())} of {len(values)} {side} rows are complete (no NaN/inf in the "
            f"{len(columns)} columns): at least {MIN_ROWS} are needed to test drift"
        )
    if not complete.all():
        log.info("%s: dropped %d of %d rows with NaN/inf", side, int((~complete).sum()), len(values))
    return values[complete].reset_index(drop=True)


def _run(
    ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str], categorical: list[str], drift_share: float,
    html_path: Path | None, method: str, threshold: float | Mapping[str, float] | None,
) -> DriftResult:  # fmt: skip
    from evidently import DataDefinition, Dataset, Report  # heavy: imported when a report is run
    from evidently.presets import DataDriftPreset

    per_column: dict[str, float] | None = None
    if isinstance(threshold, Mapping):
        missing = [c for c in numerical if c not in threshold]
        if missing:
            raise ConfigError(f"per-column thresholds lack {len(missing)} column(s): {missing[:5]}")
        per_column, threshold = {c: float(threshold[c]) for c in numerical}, None
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical or None)
    preset = DataDriftPreset(
        columns=[*numerical, *categorical], drift_share=drift_share, num_method=method, num_threshold=threshold,
        cat_method=CAT_METHOD, cat_threshold=CAT_THRESHOLD, per_column_threshold=per_column,
    )  # fmt: skip
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    if html_path is not None:
        html_path = Path(html_path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(html_path))  # evidently writes nothing when given a Path object
    result = _read(snapshot.dict(), [*numerical, *categorical], drift_share, len(ref), len(cur))
    n_drifted, n_columns = len(result.drifted_columns), len(result.columns)
    log.info("drift share %.3f (%d of %d columns: %s), dataset drift %s", result.drift_share, n_drifted, n_columns,
             result.drifted_columns, result.dataset_drift)  # fmt: skip
    return result


def _read(export: dict[str, Any], columns: list[str], drift_share: float, n_ref: int, n_cur: int) -> DriftResult:
    """The :class:`DriftResult` of a ``Snapshot.dict()`` of the preset (see the module docstring)."""
    count: dict[str, Any] | None = None
    by_id: dict[str, dict[str, Any]] = {}
    for metric in export["metrics"]:
        kind = metric.get("config", {}).get("type", "")
        if kind.endswith(":DriftedColumnsCount"):
            count = metric["value"]
        elif kind.endswith(":ValueDrift"):
            by_id[metric["id"]] = metric
    status = {t["metric_config"]["metric_id"]: t["status"] for t in export["tests"] if t.get("id") == "drift"}
    per_column: dict[str, ColumnDrift] = {}
    for metric_id, metric in by_id.items():
        config = metric["config"]
        if metric_id not in status:
            raise TradingError(f"Evidently returned no drift test for column {config['column']!r}")
        per_column[config["column"]] = ColumnDrift(
            column=config["column"], stattest=str(config["method"]), score=float(metric["value"]),
            threshold=float(config["threshold"]), drifted=status[metric_id] == "FAIL",
        )  # fmt: skip
    if count is None or set(per_column) != set(columns):
        raise TradingError(f"Evidently's report lacks results: count {count}, columns {sorted(per_column)}")
    flags = [per_column[c] for c in columns]
    drifted = [c.column for c in flags if c.drifted]
    if int(round(float(count["count"]))) != len(drifted):
        raise TradingError(
            f"Evidently's DriftedColumnsCount ({count['count']}) disagrees with its per-column tests ({drifted})"
        )
    share = float(count["share"])
    return DriftResult(share, share >= drift_share, drifted, flags, n_ref, n_cur, drift_share)
