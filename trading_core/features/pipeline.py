"""The features stage: ``dataset_version -> feature_set_version``.

Composed of plain functions, called the same way by the CLI, the DAG and the tests:

* :func:`compute_features` — bars in memory -> features (and nothing else): the benchmark and the
  look-ahead proof call this;
* :func:`plan_feature_set` -> :func:`compute_shard` (per symbol shard, fans out in the DAG) ->
  :func:`merge_shards` (cross-asset features after the merge, labels, splits, scaler, store, DB);
* :func:`build_feature_set` runs the three in one process.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from trading_core.config import Settings
from trading_core.data.ingest import history_dataset, load_dataset
from trading_core.data.lake import Lake
from trading_core.db import lineage
from trading_core.errors import DataQualityError
from trading_core.features.config import FeatureSetConfig, IndicatorConfig
from trading_core.features.cross_asset import cross_asset_features
from trading_core.features.indicators import log_returns, per_symbol_features
from trading_core.features.labels import class_balance, make_labels
from trading_core.features.manifest import build_manifest
from trading_core.features.panel import Panel
from trading_core.features.scaling import StandardScaler
from trading_core.features.specs import feature_specs
from trading_core.features.splits import SPLIT_NAMES, purged_splits
from trading_core.features.store import FeatureSetFiles, FeatureStore
from trading_core.features.windows import window_ready

log = logging.getLogger(__name__)

_LOG_RET = "_log_ret"


def _frame(panel: Panel, columns: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """One float64 block (rows x features, +-inf -> NaN) with timestamp and symbol in front.

    ``columns`` is emptied as it is copied, so at most one extra column is alive at a time.
    """
    missing = [n for n in names if n not in columns]
    extra = [n for n in columns if n not in names]
    if missing or extra:  # the catalogue and the code must agree, or the manifest would lie
        raise AssertionError(f"feature code and catalogue disagree: missing {missing}, unexpected {extra}")
    block = np.empty((len(panel), len(names)))
    for j, name in enumerate(names):
        block[:, j] = columns.pop(name)
    block[~np.isfinite(block)] = np.nan
    frame = pd.DataFrame(block, columns=names, copy=False)
    frame.insert(0, "symbol", panel.symbol)
    frame.insert(0, "timestamp", pd.DatetimeIndex(panel.timestamp).tz_localize("UTC"))
    return frame


def compute_features(bars: pd.DataFrame, config: IndicatorConfig | None = None) -> pd.DataFrame:
    """All features of ``config`` for a long OHLCV frame; rows sorted by (symbol, timestamp).

    Every value at (symbol, t) depends only on bars at or before t (see tests/test_lookahead.py).
    """
    config = config or IndicatorConfig()
    panel = Panel.from_frame(bars)
    columns = per_symbol_features(panel, config)
    if "regime" in config.groups:
        columns |= cross_asset_features(panel, log_returns(panel), config)
    names = [s.name for s in feature_specs(config, panel.n_symbols)]
    return _frame(panel, columns, names)


# ---------------------------------------------------------------- the staged build (DAG shape)


@dataclass(frozen=True)
class FeaturePlan:
    dataset_version: str
    feature_set_version: str
    shards: list[list[str]]
    work_dir: str
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureSetResult:
    feature_set_version: str
    dataset_version: str
    path: str
    rows: int
    n_features: int
    samples: dict[str, int]
    class_balance: dict[str, Any]
    seconds: float
    reused: bool = False
    feature_names: list[str] = field(default_factory=list)

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and the features Asset event."""
        return {
            "feature_set_version": self.feature_set_version,
            "dataset_version": self.dataset_version,
            "path": self.path,
            "rows": self.rows,
            "n_features": self.n_features,
            "samples": self.samples,
            "majority_rate_test": self.class_balance.get("test", {}).get("majority_rate"),
        }


def feature_store(settings: Settings) -> FeatureStore:
    return FeatureStore(settings.home / "features")


def plan_feature_set(
    dataset_version: str,
    config: FeatureSetConfig,
    settings: Settings,
    shard_size: int = 100,
    history: Literal["full", "dataset"] = "full",
) -> FeaturePlan:
    """Check the dataset (and that the lake still holds it), fix the version, split symbols into shards.

    ``history='full'`` (the default) reads the lake's whole history of the dataset's symbols up to
    its end: a daily ingest announces a few new days, the features need the years before them (see
    :func:`~trading_core.data.ingest.history_dataset`). ``'dataset'`` reads exactly the dataset.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    if history == "full":
        dataset_version = history_dataset(dataset_version, settings)
    elif history != "dataset":
        raise ValueError(f"history must be 'full' or 'dataset', got {history!r}")
    record = lineage.get_dataset(settings.resolved_database_url, dataset_version)
    load_dataset(dataset_version, settings, verify=True)  # fail early if the lake moved on since the ingest
    symbols = sorted(record.symbols)
    manifest = build_manifest(dataset_version, config, len(symbols))
    version = manifest["feature_set_version"]
    work_dir = settings.staging_dir / "features" / version
    shards = [symbols[i : i + shard_size] for i in range(0, len(symbols), shard_size)]
    log.info("%s -> %s: %d symbols in %d shards", dataset_version, version, len(symbols), len(shards))
    return FeaturePlan(dataset_version, version, shards, str(work_dir), config.model_dump(mode="json"))


def compute_shard(plan: FeaturePlan, shard: int, settings: Settings) -> str:
    """Per-symbol features and labels of one shard -> an Arrow file in the plan's work dir."""
    config = FeatureSetConfig.model_validate(plan.config)
    record = lineage.get_dataset(settings.resolved_database_url, plan.dataset_version)
    start, end = (pd.Timestamp(t) for t in (record.start, record.end))
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    bars = Lake(settings.lake_dir).read(record.feed, record.interval, plan.shards[shard], start, end)
    panel = Panel.from_frame(bars)
    ind = config.indicators
    names = [s.name for s in feature_specs(ind, len(record.symbols)) if not s.cross_asset]
    frame = _frame(panel, per_symbol_features(panel, ind), names)
    labels = make_labels(panel, config.labels)
    frame[_LOG_RET] = log_returns(panel)
    frame["label"], frame["fwd_ret"] = labels.label, labels.fwd_ret
    frame["label_threshold"] = labels.threshold
    frame["label_end"] = pd.DatetimeIndex(labels.end).tz_localize("UTC")
    # Arrow IPC, uncompressed: a hand-off file read once by the merge, ten times faster than Parquet.
    out = Path(plan.work_dir) / f"shard-{shard:05d}.arrow"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    frame.to_feather(tmp, compression="uncompressed")
    tmp.replace(out)
    log.info("shard %d: %d symbols, %d rows -> %s", shard, panel.n_symbols, len(frame), out)
    return str(out)


def _assemble(plan: FeaturePlan, shard_paths: list[str]) -> tuple[pd.DataFrame, Panel]:
    parts = [pd.read_feather(p) for p in sorted(shard_paths)]
    if not parts:
        raise DataQualityError(f"no shards to merge for {plan.feature_set_version}")
    # Shards hold consecutive ranges of the sorted symbols, so concatenating them in order keeps the
    # (symbol, timestamp) order; Panel checks that order and that no (symbol, timestamp) repeats.
    frame = pd.concat(parts, ignore_index=True)
    n = len(frame)
    zeros = np.zeros(n)
    # The cross-asset code needs symbols, timestamps and returns only; prices are not re-read.
    panel = Panel.from_frame(
        frame[["timestamp", "symbol"]].assign(open=zeros, high=zeros, low=zeros, close=zeros, volume=zeros)
    )
    return frame, panel


def merge_shards(plan: FeaturePlan, shard_paths: list[str], settings: Settings) -> FeatureSetResult:
    """Cross-asset features over the merged universe, then splits, scaler, windows; store + DB."""
    t0 = time.perf_counter()
    config = FeatureSetConfig.model_validate(plan.config)
    store = feature_store(settings)
    if store.exists(plan.feature_set_version):
        log.info("%s already in the store: reusing it", plan.feature_set_version)
        return _result_from_store(store, plan.feature_set_version, time.perf_counter() - t0)
    record = lineage.get_dataset(settings.resolved_database_url, plan.dataset_version)
    manifest = build_manifest(plan.dataset_version, config, len(record.symbols))
    frame, panel = _assemble(plan, shard_paths)
    if frame["symbol"].nunique() != len(record.symbols):
        raise DataQualityError(
            f"merged shards hold {frame['symbol'].nunique()} symbols, dataset {plan.dataset_version} has "
            f"{len(record.symbols)}: a shard is missing"
        )
    if "regime" in config.indicators.groups:
        cross = cross_asset_features(panel, frame[_LOG_RET].to_numpy(), config.indicators)
        for name, values in cross.items():
            frame[name] = np.where(np.isfinite(values), values, np.nan)
    names: list[str] = manifest["feature_names"]
    files = finalize(frame.drop(columns=[_LOG_RET]), panel, names, manifest, config)
    path = store.write(files)
    lineage.record_feature_set(
        settings.resolved_database_url,
        version=plan.feature_set_version,
        dataset_version=plan.dataset_version,
        path=str(path),
        manifest=manifest,
        summary=files.summary,
    )
    shutil.rmtree(plan.work_dir, ignore_errors=True)
    seconds = time.perf_counter() - t0
    log.info(
        "%s: %d rows, %d features, samples %s",
        plan.feature_set_version,
        len(frame),
        len(names),
        json.dumps(files.summary["splits"]),
    )
    return _result(files, str(path), seconds)


def finalize(
    frame: pd.DataFrame, panel: Panel, names: list[str], manifest: dict[str, Any], config: FeatureSetConfig
) -> FeatureSetFiles:
    """Labelled features -> samples with splits, a training-only scaler and the scaled matrix."""
    raw = frame[names].to_numpy(dtype=np.float64)
    ds = config.dataset
    ready = window_ready(panel, raw, ds.seq_len)
    labelled = frame["label"].to_numpy() >= 0
    rows = np.flatnonzero(ready & labelled)
    if len(rows) == 0:
        raise DataQualityError(
            f"no complete training windows: every row lacks a label or a full {ds.seq_len}-bar window of finite "
            f"features (longest warm-up: {max_warmup(config)} bars); ingest a longer history"
        )
    ts = panel.timestamp[rows]
    label_end = pd.DatetimeIndex(frame["label_end"]).tz_convert("UTC").tz_localize(None).to_numpy()[rows]
    splits = purged_splits(ts, label_end, ds.val_fraction, ds.test_fraction, ds.embargo)
    fit_rows = panel.timestamp < splits.val_start  # the training period only
    scaler = StandardScaler.fit(raw[fit_rows], names, ds.clip)
    matrix = scaler.transform(raw)
    samples = pd.DataFrame(
        {
            "row": rows.astype(np.int64),
            "symbol": panel.symbol[rows],
            "timestamp": pd.DatetimeIndex(ts).tz_localize("UTC"),
            "label": frame["label"].to_numpy()[rows].astype(np.int8),
            "fwd_ret": frame["fwd_ret"].to_numpy()[rows].astype(np.float32),
            "split": splits.code,
        }
    )
    kept = samples[samples["split"] >= 0]
    balance = {SPLIT_NAMES[c]: class_balance(kept.loc[kept["split"] == c, "label"].to_numpy()) for c in SPLIT_NAMES}
    balance["all"] = class_balance(frame["label"].to_numpy())
    summary = {
        "feature_set_version": manifest["feature_set_version"],
        "rows": len(frame),
        "symbols": int(panel.n_symbols),
        "splits": splits.summary(),
        "class_balance": balance,
        "scaler_fitted_rows": scaler.fitted_rows,
    }
    features = frame.copy()
    features[names] = features[names].astype(np.float32)
    return FeatureSetFiles(manifest, features, matrix, samples, scaler, summary)


def max_warmup(config: FeatureSetConfig) -> int:
    c = config.indicators
    return (
        max(
            [
                *c.return_horizons,
                *c.vol_windows,
                c.vol_regime_window + c.vol_windows[0],
                c.turbulence_window + 1,
                c.macd[1] + c.macd[2],
                *c.sma_periods,
            ]
        )
        + config.dataset.seq_len
    )


def _result(files: FeatureSetFiles, path: str, seconds: float, reused: bool = False) -> FeatureSetResult:
    splits = files.summary["splits"]
    return FeatureSetResult(
        feature_set_version=str(files.manifest["feature_set_version"]),
        dataset_version=str(files.manifest["dataset_version"]),
        path=path,
        rows=int(files.summary["rows"]),
        n_features=len(files.manifest["feature_names"]),
        samples={k: int(splits[k]) for k in ("train", "val", "test")},
        class_balance=files.summary["class_balance"],
        seconds=round(seconds, 3),
        reused=reused,
        feature_names=list(files.manifest["feature_names"]),
    )


def _result_from_store(store: FeatureStore, version: str, seconds: float) -> FeatureSetResult:
    fs = store.open(version)
    files = FeatureSetFiles(fs.manifest, pd.DataFrame(), np.empty((0, 0)), pd.DataFrame(), fs.scaler, fs.summary)
    return _result(files, str(fs.path), seconds, reused=True)


def build_feature_set(
    dataset_version: str,
    config: FeatureSetConfig,
    settings: Settings,
    shard_size: int = 100,
    history: Literal["full", "dataset"] = "full",
) -> FeatureSetResult:
    """The whole stage in one process: plan, every shard, merge (the DAG runs these as tasks)."""
    t0 = time.perf_counter()
    plan = plan_feature_set(dataset_version, config, settings, shard_size, history)
    if feature_store(settings).exists(plan.feature_set_version):
        return merge_shards(plan, [], settings)
    paths = [compute_shard(plan, i, settings) for i in range(len(plan.shards))]
    result = merge_shards(plan, paths, settings)
    return FeatureSetResult(**{**asdict(result), "seconds": round(time.perf_counter() - t0, 3)})
