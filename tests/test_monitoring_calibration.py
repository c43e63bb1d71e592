"""Per-column drift thresholds calibrated on the training period: what they are, that they hold on a
persistent stationary series where a plain test fails, that a real shift still crosses them, and that
Evidently applies them column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp

from trading_core.errors import ConfigError, DataQualityError
from trading_core.monitoring.calibration import FLOOR, calibrate, normed_wasserstein
from trading_core.monitoring.drift import feature_drift


def ar1_panel(n_bars: int, seed: int, phi: float = 0.95, symbols: int = 3, shift: float = 0.0) -> pd.DataFrame:
    """Persistent stationary columns (AR(1)) on ``symbols`` symbols; ``shift`` moves the last third."""
    rng = np.random.default_rng(seed)
    stamps = pd.bdate_range("2020-01-01", periods=n_bars, tz="UTC")
    frames = []
    for s in range(symbols):
        x = np.zeros((n_bars, 2))
        for t in range(1, n_bars):
            x[t] = phi * x[t - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(2)
        x[2 * n_bars // 3 :, 0] += shift
        frames.append(pd.DataFrame({"timestamp": stamps, "symbol": f"S{s}", "a": x[:, 0], "b": x[:, 1]}))
    return pd.concat(frames, ignore_index=True)


def test_thresholds_are_the_margin_over_the_largest_training_window_distance() -> None:
    history = ar1_panel(400, seed=1)
    cal = calibrate(history, history, ["a", "b"], window=40, stride=10, guard=40, margin=1.1)
    assert cal.n_windows == len(range(39, 400, 10))
    for column in ("a", "b"):
        assert cal.thresholds[column] == pytest.approx(1.1 * cal.null_max[column])
    # one window by hand: bars 0..39 against everything after bar 79 (the guard)
    stamps = pd.DatetimeIndex(history["timestamp"].unique()).sort_values()
    current = history[history["timestamp"] <= stamps[39]]
    outside = history[history["timestamp"] > stamps[79]]
    by_hand = normed_wasserstein(outside["a"].to_numpy(), current["a"].to_numpy())
    assert 0 < by_hand <= cal.null_max["a"]


def test_a_persistent_stationary_series_stays_under_its_thresholds_where_ks_does_not() -> None:
    """The same process after the training period: K-S at 5 % flags most windows, the calibrated
    thresholds almost none (a column crossing its training maximum by 10 % is rare under the null)."""
    series = ar1_panel(1200, seed=2)
    stamps = pd.DatetimeIndex(series["timestamp"].unique()).sort_values()
    train = series[series["timestamp"] <= stamps[599]]
    cal = calibrate(train, train, ["a", "b"], window=63)
    flagged, ks_flagged, tests = 0, 0, 0
    for end in range(662, 1200, 21):
        window = series[series["timestamp"].between(stamps[end - 62], stamps[end])]
        for column in ("a", "b"):
            tests += 1
            flagged += normed_wasserstein(train[column].to_numpy(), window[column].to_numpy()) >= cal.thresholds[column]
            ks_flagged += ks_2samp(train[column], window[column]).pvalue <= 0.05
    assert ks_flagged / tests > 0.5, "the premise: K-S over-rejects on autocorrelated columns"
    assert flagged / tests <= 0.1, (flagged, tests)


def test_a_real_shift_crosses_the_threshold() -> None:
    series = ar1_panel(900, seed=3, shift=3.0)  # column a moves by 3 sd from bar 600 on
    stamps = pd.DatetimeIndex(series["timestamp"].unique()).sort_values()
    train = series[series["timestamp"] <= stamps[499]]
    cal = calibrate(train, train, ["a", "b"], window=63)
    window = series[series["timestamp"].between(stamps[700], stamps[762])]
    assert normed_wasserstein(train["a"].to_numpy(), window["a"].to_numpy()) >= cal.thresholds["a"]


def test_constant_columns_get_the_floor_and_short_histories_are_refused() -> None:
    history = ar1_panel(300, seed=4).assign(flat=1.0)
    cal = calibrate(history, history, ["a", "flat"], window=30)
    assert cal.thresholds["flat"] == FLOOR and cal.null_max["flat"] == 0.0
    with pytest.raises(DataQualityError, match="training-period windows"):
        calibrate(history, history, ["a"], window=120, guard=120)
    with pytest.raises(DataQualityError, match="lacks column"):
        calibrate(history, history, ["a", "missing"], window=30)
    with pytest.raises(ConfigError):
        calibrate(history, history, ["a"], window=30, margin=0.9)


def test_evidently_applies_one_threshold_per_column() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"a": rng.standard_normal(300), "b": rng.standard_normal(300)})
    current = pd.DataFrame({"a": rng.standard_normal(63) + 0.5, "b": rng.standard_normal(63) + 0.5})
    distances = {c: normed_wasserstein(reference[c].to_numpy(), current[c].to_numpy()) for c in ("a", "b")}
    thresholds = {"a": distances["a"] * 0.9, "b": distances["b"] * 1.1}  # a over its threshold, b under
    result = feature_drift(reference, current, ["a", "b"], drift_share=0.5, method="wasserstein", threshold=thresholds)
    assert result.drifted_columns == ["a"] and result.dataset_drift
    scores = {c.column: c for c in result.columns}
    assert scores["a"].score == pytest.approx(distances["a"]) and scores["b"].threshold == pytest.approx(
        thresholds["b"]
    )
    with pytest.raises(ConfigError, match="lack"):
        feature_drift(reference, current, ["a", "b"], method="wasserstein", threshold={"a": 0.1})
