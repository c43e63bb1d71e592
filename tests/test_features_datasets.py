"""Labels, purged splits, the training-only scaler, windows and the feature store."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from builders import TINY
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_core.config import Settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.db import lineage
from trading_core.errors import DataQualityError, DatasetNotFound
from trading_core.features import (
    FeatureSetConfig,
    IndicatorConfig,
    LabelConfig,
    build_feature_set,
    compute_features,
    feature_store,
)
from trading_core.features.labels import BUY, HOLD, NO_LABEL, SELL, class_balance, make_labels
from trading_core.features.panel import Panel
from trading_core.features.splits import DROPPED, TEST, TRAIN, VAL, purged_splits


def _panel(closes: list[float], opens: list[float] | None = None) -> Panel:
    n = len(closes)
    c = np.asarray(closes, dtype=float)
    o = np.asarray(opens, dtype=float) if opens is not None else c
    return Panel.from_frame(
        pd.DataFrame(
            {
                "timestamp": pd.bdate_range("2024-01-01", periods=n, tz="UTC"),
                "symbol": "X",
                "open": o,
                "high": np.maximum(o, c) * 1.01,
                "low": np.minimum(o, c) * 0.99,
                "close": c,
                "volume": 1e6,
            }
        )
    )


# ------------------------------------------------------------------------------------------- labels


def test_label_rule_on_a_hand_computed_path() -> None:
    closes = [100.0, 101.0, 99.0, 100.0, 102.0, 101.0, 110.0, 90.0, 100.0, 100.5]
    panel = _panel(closes)
    labels = make_labels(panel, LabelConfig(horizon=1, threshold_k=1.0, vol_window=3, entry="close"))
    r = np.diff(np.log(closes))
    for t in range(3, len(closes) - 1):
        sigma = np.std(r[t - 3 : t], ddof=1)  # returns ending at t
        fwd = np.log(closes[t + 1] / closes[t])
        assert labels.fwd_ret[t] == pytest.approx(fwd)
        assert labels.threshold[t] == pytest.approx(sigma)
        expected = BUY if fwd > sigma else SELL if fwd < -sigma else HOLD
        assert labels.label[t] == expected, t
    assert labels.label[-1] == NO_LABEL and np.isnat(labels.end[-1])
    assert (labels.label[:3] == NO_LABEL).all(), "no label before the volatility window is known"
    assert labels.end[3] == panel.timestamp[4]


def test_next_open_entry_measures_the_return_that_can_be_traded() -> None:
    closes = [100.0] * 6 + [100.0, 120.0, 121.0, 122.0]
    opens = [100.0] * 6 + [100.0, 119.0, 121.0, 122.0]
    panel = _panel(closes, opens)
    close_entry = make_labels(panel, LabelConfig(horizon=2, vol_window=3, entry="close"))
    open_entry = make_labels(panel, LabelConfig(horizon=2, vol_window=3, entry="next_open"))
    assert close_entry.fwd_ret[6] == pytest.approx(np.log(121 / 100))
    assert open_entry.fwd_ret[6] == pytest.approx(np.log(121 / 119)), "the gap at t+1 is not tradeable"


def test_class_balance_reports_the_majority_rate_as_the_baseline() -> None:
    balance = class_balance(np.array([0, 0, 0, 1, 2, -1, -1], dtype=np.int8))
    assert balance["labelled"] == 5 and balance["hold"] == 3 and balance["majority_class"] == "hold"
    assert balance["majority_rate"] == pytest.approx(0.6)


# ------------------------------------------------------------------------------------------- splits


@settings(max_examples=60, deadline=None)
@given(
    n_times=st.integers(60, 400),
    n_symbols=st.integers(1, 4),
    horizon=st.integers(1, 10),
    embargo=st.integers(0, 5),
    val=st.floats(0.1, 0.3),
    test=st.floats(0.1, 0.3),
)
def test_splits_never_overlap_after_purge_and_embargo(
    n_times: int, n_symbols: int, horizon: int, embargo: int, val: float, test: float
) -> None:
    times = pd.bdate_range("2020-01-01", periods=n_times + horizon).to_numpy()
    ts = np.tile(times[:n_times], n_symbols)
    label_end = np.tile(times[horizon : n_times + horizon], n_symbols)
    try:
        splits = purged_splits(ts, label_end, val, test, embargo)
    except DataQualityError:  # allowed only when a split cannot outlive its purge and embargo
        assert min(round(n_times * val), round(n_times * test)) <= embargo + horizon
        return
    code = splits.code
    train, valid, tst = ts[code == TRAIN], ts[code == VAL], ts[code == TEST]
    assert len(train) and len(valid) and len(tst)
    assert train.max() < valid.min() and valid.max() < tst.min(), "splits are time-ordered"
    # No label window crosses into the next split.
    assert label_end[code == TRAIN].max() < splits.val_start <= valid.min()
    assert label_end[code == VAL].max() < splits.test_start <= tst.min()
    # Exactly the purged and embargoed samples are dropped.
    assert (code == DROPPED).sum() == splits.purged + splits.embargoed
    assert splits.purged == n_symbols * (
        min(horizon, (ts < splits.val_start).sum() // n_symbols)
        + min(horizon, ((ts >= splits.val_start) & (ts < splits.test_start)).sum() // n_symbols)
    )
    unique = np.unique(ts)
    first_val = np.searchsorted(unique, valid.min())
    assert first_val - np.searchsorted(unique, splits.val_start) >= embargo


def test_too_short_a_history_is_a_clear_error() -> None:
    times = pd.bdate_range("2020-01-01", periods=8).to_numpy()
    with pytest.raises(DataQualityError, match="too few"):
        purged_splits(times, times, 0.15, 0.15, embargo=3)


# ------------------------------------------------------------------ the stage end to end + the store


@pytest.fixture
def dataset(settings: Settings) -> str:
    request = IngestRequest(source="synthetic", n_assets=5, start=date(2022, 1, 3), end=date(2023, 6, 30))
    return ingest(request, settings).dataset_version


def test_build_stores_a_lazily_readable_feature_set(settings: Settings, dataset: str) -> None:
    result = build_feature_set(dataset, TINY, settings, shard_size=2)
    assert result.feature_set_version.startswith("fs-") and not result.reused
    assert result.samples["train"] > result.samples["val"] > 0 and result.samples["test"] > 0
    fs = feature_store(settings).open(result.feature_set_version)
    assert fs.manifest["dataset_version"] == dataset and len(fs.feature_names) == result.n_features
    assert not set(fs.feature_names) & set(fs.manifest["label_columns"])
    matrix = fs.matrix
    assert isinstance(matrix, np.memmap) and matrix.dtype == np.float32
    assert matrix.shape == (result.rows, len(fs.feature_names))

    train = fs.split("train")
    x, label, fwd = train[0]
    assert x.shape == (8, result.n_features) and np.isfinite(x).all() and label in (HOLD, BUY, SELL)
    batch = train.batch(np.arange(5))
    assert batch.shape == (5, 8, result.n_features)
    np.testing.assert_array_equal(batch[0], x)
    # The window is the scaled raw features of the same symbol's last seq_len rows.
    raw = fs.features(fs.feature_names)
    end = int(train.end_rows[0])
    assert raw.symbol.iloc[end - 7] == raw.symbol.iloc[end]
    np.testing.assert_allclose(x, fs.scaler.transform(raw[fs.feature_names].to_numpy()[end - 7 : end + 1]), atol=1e-5)

    summary = fs.summary
    assert summary["class_balance"]["test"]["majority_rate"] >= 1 / 3
    record = lineage.get_feature_set(settings.resolved_database_url, result.feature_set_version)
    assert record.dataset_version == dataset and record.n_features == result.n_features

    again = build_feature_set(dataset, TINY, settings, shard_size=3)
    assert again.reused and again.feature_set_version == result.feature_set_version, "shard size is not content"


def test_scaler_sees_only_the_training_period(settings: Settings, dataset: str) -> None:
    result = build_feature_set(dataset, TINY, settings)
    fs = feature_store(settings).open(result.feature_set_version)
    raw = fs.features(fs.feature_names)
    val_start = pd.Timestamp(fs.summary["splits"]["val_start"], tz="UTC")
    train_rows = raw[raw.timestamp < val_start][fs.feature_names].to_numpy(dtype=np.float64)
    complete = train_rows[np.isfinite(train_rows).all(axis=1)]
    np.testing.assert_allclose(fs.scaler.mean, complete.mean(axis=0), rtol=1e-5, atol=1e-7)
    assert fs.scaler.fitted_rows == len(complete)
    everything = raw[fs.feature_names].to_numpy(dtype=np.float64)
    assert not np.allclose(np.nanmean(everything, axis=0), fs.scaler.mean, rtol=1e-3), "fitted on all rows"


def test_a_different_recipe_is_a_different_version(settings: Settings, dataset: str) -> None:
    a = build_feature_set(dataset, TINY, settings)
    changed = TINY.model_copy(update={"labels": LabelConfig(horizon=4)})
    b = build_feature_set(dataset, changed, settings)
    assert a.feature_set_version != b.feature_set_version
    assert sorted(feature_store(settings).versions()) == sorted([a.feature_set_version, b.feature_set_version])
    with pytest.raises(DatasetNotFound):
        feature_store(settings).open("fs-0000")
    with pytest.raises(DatasetNotFound, match="not a feature set version"):
        feature_store(settings).open("../../etc")


def test_a_history_shorter_than_the_warm_up_fails_with_a_reason(settings: Settings) -> None:
    request = IngestRequest(source="synthetic", n_assets=3, start=date(2023, 1, 3), end=date(2023, 5, 31))
    version = ingest(request, settings).dataset_version
    with pytest.raises(DataQualityError, match="warm-up|too few"):
        build_feature_set(version, FeatureSetConfig(), settings)


def test_config_from_flat_params_validates_and_ignores_unknown_keys() -> None:
    config = FeatureSetConfig.from_params(
        {
            "horizon": 10,
            "threshold_k": 0.3,
            "seq_len": 20,
            "groups": "technical,market",
            "dataset_version": "ds-x",
            "entry": None,
        }
    )
    assert config.labels.horizon == 10 and config.dataset.seq_len == 20
    assert config.indicators.groups == ("market", "technical") and config.labels.entry == "next_open"
    with pytest.raises(ValueError, match="groups"):
        FeatureSetConfig.from_params({"groups": ["market", "astrology"]})
    with pytest.raises(ValueError, match="horizon"):
        FeatureSetConfig.from_params({"horizon": 0})


def test_feature_groups_select_columns() -> None:
    from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider

    provider = SyntheticProvider(SyntheticMarketConfig(n_assets=2, seed=1))
    bars = provider.fetch(provider.available_symbols(), date(2023, 1, 2), date(2023, 3, 31))
    only_micro = compute_features(bars, IndicatorConfig(groups=("microstructure",)))
    assert [c for c in only_micro.columns if c not in ("timestamp", "symbol")] == [
        "cs_spread_21",
        "amihud_21",
        "ofi_clv_21",
        "ofi_bvc_21",
    ]
    summary = json.dumps(IndicatorConfig().model_dump())
    assert "turbulence_window" in summary


def test_a_daily_increment_builds_on_the_lakes_history(settings: Settings) -> None:
    """The scheduled ingest records a few days; features read the years before them from the lake."""
    history = IngestRequest(source="synthetic", n_assets=3, start=date(2022, 1, 3), end=date(2023, 6, 23))
    ingest(history, settings)
    increment = ingest(
        IngestRequest(source="synthetic", n_assets=3, start=date(2023, 6, 26), end=date(2023, 6, 30)), settings
    )
    assert increment.rows == 3 * 5
    with pytest.raises(DataQualityError, match="warm-up|too few"):
        build_feature_set(increment.dataset_version, TINY, settings, history="dataset")
    result = build_feature_set(increment.dataset_version, TINY, settings)
    assert result.dataset_version != increment.dataset_version
    derived = lineage.get_dataset(settings.resolved_database_url, result.dataset_version)
    assert derived.lineage["derived_from"] == increment.dataset_version
    assert derived.start.date() == date(2022, 1, 3) and derived.row_count == result.rows
    fs = feature_store(settings).open(result.feature_set_version)
    assert str(fs.features(["ret_1"]).timestamp.max().date()) == "2023-06-30"
