"""The market an agent trains on, built from a feature set (and optionally a forecaster).

:func:`market_from_feature_set` turns a stored feature set into the dense
:class:`~trading_core.rl.data.MarketData` panel the environments replay: the bars of its dataset,
its scaled feature matrix (groups from the manifest) and, when a forecaster is given, the
forecaster's probabilities and confidence at every bar that ends a complete window. The feature
set's split timestamps become bar ranges (:class:`Periods`), and :func:`slice_market` cuts the
panel so an environment cannot read bars after a period.

Forecasts over the training period are **in-sample** for the forecaster (it was fitted on those
bars): an agent trained on them learns to trust it more than it should. Walk-forward training
(a later stage) fixes this; until then read validation numbers with that in mind.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from trading_core.config import Settings
from trading_core.data.ingest import load_dataset
from trading_core.errors import ConfigError, DataQualityError, SchemaError
from trading_core.features.scaling import StandardScaler
from trading_core.features.store import FeatureSet
from trading_core.rl.data import FORECAST_COLUMNS, MarketData

log = logging.getLogger(__name__)

FORECAST_FILE_SUFFIXES = (".parquet", ".csv")
"""A ``forecaster_uri`` naming an existing file with one of these suffixes is read as per-bar forecasts."""
PREDICT_CHUNK = 8192
"""Windows materialised (and predicted) at a time."""


class Period(NamedTuple):
    """Bars ``start .. stop - 1`` of a :class:`MarketData` (decision bars; half-open like ``range``)."""

    start: int
    stop: int

    @property
    def bars(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Periods:
    """The feature set's train / validation / test periods as bar ranges of one :class:`MarketData`."""

    train: Period
    val: Period
    test: Period

    def as_dict(self, timestamps: np.ndarray) -> dict[str, dict[str, Any]]:
        """JSON-able: per period its bar range and first/last timestamp."""
        out: dict[str, dict[str, Any]] = {}
        for name in ("train", "val", "test"):
            p: Period = getattr(self, name)
            first = str(timestamps[p.start])[:10] if p.bars > 0 else None
            last = str(timestamps[p.stop - 1])[:10] if p.bars > 0 else None
            out[name] = {"start": p.start, "stop": p.stop, "bars": p.bars, "first": first, "last": last}
        return out


def periods_from_splits(data: MarketData, val_start: Any, test_start: Any) -> Periods:
    """Map the split timestamps onto ``data.timestamps``: train ``first_valid .. val_start - 1``,
    val ``val_start .. test_start - 1``, test ``test_start ..`` the end.

    :raises DataQualityError: a period would be empty (too little history after the feature warm-up).
    """
    ts = data.timestamps
    val = int(np.searchsorted(ts, _naive_utc(val_start), side="left"))
    test = int(np.searchsorted(ts, _naive_utc(test_start), side="left"))
    periods = Periods(Period(data.first_valid, val), Period(val, test), Period(test, data.n_steps))
    empty = [name for name in ("train", "val", "test") if getattr(periods, name).bars <= 0]
    if empty:
        raise DataQualityError(
            f"period(s) {empty} are empty on the market panel ({data.n_steps} bars, first bar with every feature "
            f"{data.first_valid}, val from bar {val}, test from bar {test}): ingest a longer history"
        )
    return periods


def _naive_utc(value: Any) -> np.datetime64:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    return stamp.to_datetime64().astype("datetime64[ns]")


def slice_market(data: MarketData, start: int, stop: int) -> MarketData:
    """Bars ``start .. stop - 1`` of ``data`` (views, no copy): an environment built on the slice
    cannot read a bar at or after ``stop``. ``first_valid`` is shifted to the slice."""
    if not 0 <= start < stop <= data.n_steps:
        raise ValueError(f"slice [{start}, {stop}) is outside the {data.n_steps} bars of the market")
    return replace(
        data,
        timestamps=data.timestamps[start:stop],
        open=data.open[start:stop],
        close=data.close[start:stop],
        volume=data.volume[start:stop],
        features=data.features[start:stop],
        forecast=data.forecast[start:stop] if data.forecast is not None else None,
        first_valid=max(0, data.first_valid - start),
    )


# ---------------------------------------------------------------------------------------- forecasts


def window_end_rows(matrix: np.ndarray, symbols: np.ndarray, seq_len: int) -> np.ndarray:
    """Rows of the (symbol, time)-sorted ``matrix`` that end a complete window: the last ``seq_len``
    rows are all of the same symbol and all finite. Labels play no part (every such bar gets a forecast)."""
    n = len(matrix)
    if n < seq_len:
        return np.empty(0, dtype=np.int64)
    finite = np.isfinite(matrix).all(axis=1)
    csum = np.concatenate([[0], np.cumsum(finite, dtype=np.int64)])
    ends = np.arange(seq_len - 1, n)
    complete = (csum[ends + 1] - csum[ends + 1 - seq_len]) == seq_len
    same = symbols[ends] == symbols[ends - seq_len + 1]  # sorted by symbol: equal ends => one symbol
    return ends[complete & same]


def forecasts_from_model(
    fs: FeatureSet, forecaster_uri: str, settings: Settings, symbols: list[str] | None = None
) -> pd.DataFrame:
    """Run the forecaster logged at ``forecaster_uri`` over every complete window of the feature set.

    The model's artifacts (config + weights) are loaded directly (``weights_only``), which is the
    pyfunc's own code path without MLflow's environment checks. The windows are scaled by the
    forecaster's own scaler (the feature set's matrix when it is the same one, i.e. the forecaster
    was trained on this feature set). Returns timestamp, symbol and
    :data:`~trading_core.rl.data.FORECAST_COLUMNS`.

    :raises ConfigError: the model was trained on other features than this feature set has.
    """
    import mlflow

    from trading_core import tracking
    from trading_core.forecast.pyfunc_model import ARTIFACTS, load_ensemble, predict_frame

    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        # models:/ URIs are resolved by the global client (the tracking_uri argument does not reach it).
        uri = tracking.use_tracking_store(settings)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=forecaster_uri, dst_path=tmp, tracking_uri=uri))
        artifacts = local / "artifacts"
        manifest_path = artifacts / ARTIFACTS["manifest"]
        if manifest_path.exists():
            trained_on = json.loads(manifest_path.read_text()).get("feature_names")
            if trained_on != fs.feature_names:
                raise ConfigError(
                    f"forecaster {forecaster_uri} was trained on features {trained_on}, feature set {fs.version} "
                    f"has {fs.feature_names}"
                )
        model = load_ensemble(artifacts / ARTIFACTS["config"], artifacts / ARTIFACTS["weights"])
        scaler_path = artifacts / ARTIFACTS["scaler"]
        scaler = StandardScaler.load(scaler_path) if scaler_path.exists() else fs.scaler
    if model.cfg.seq_len != fs.seq_len:
        raise ConfigError(
            f"forecaster {forecaster_uri} reads {model.cfg.seq_len}-bar windows, feature set {fs.seq_len}"
        )
    keys = fs.features([])
    matrix: np.ndarray = fs.matrix
    if scaler != fs.scaler:  # trained on another feature set of the same recipe: scale as it was trained
        log.info("scaling %s with the forecaster's own scaler (fitted on %d rows)", fs.version, scaler.fitted_rows)
        matrix = scaler.transform(fs.features(fs.feature_names)[fs.feature_names].to_numpy(np.float64))
    rows = window_end_rows(matrix, keys["symbol"].to_numpy(), fs.seq_len)
    if symbols is not None:
        rows = rows[np.isin(keys["symbol"].to_numpy()[rows], symbols)]
    log.info("forecasting %d windows of %s with %s", len(rows), fs.version, forecaster_uri)
    windows = np.swapaxes(np.lib.stride_tricks.sliding_window_view(matrix, fs.seq_len, axis=0), 1, 2)
    parts = []
    for lo in range(0, len(rows), PREDICT_CHUNK):
        chunk = rows[lo : lo + PREDICT_CHUNK]
        batch = np.ascontiguousarray(windows[chunk - fs.seq_len + 1], dtype=np.float32)
        parts.append(predict_frame(model, batch)[list(FORECAST_COLUMNS)])
    if not parts:
        raise DataQualityError(f"feature set {fs.version} has no complete {fs.seq_len}-bar window to forecast")
    predictions = pd.concat(parts, ignore_index=True)
    return pd.concat([keys.iloc[rows].reset_index(drop=True), predictions], axis=1)


def read_forecast_file(path: Path) -> pd.DataFrame:
    """Per-bar forecasts from any source: a Parquet/CSV file with timestamp, symbol and
    :data:`~trading_core.rl.data.FORECAST_COLUMNS` (probabilities and a confidence in [0, 1])."""
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("timestamp", "symbol", *FORECAST_COLUMNS) if c not in frame.columns]
    if missing:
        raise SchemaError(f"forecast file {path} lacks column(s) {missing}")
    frame = frame[["timestamp", "symbol", *FORECAST_COLUMNS]].copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    values = frame[list(FORECAST_COLUMNS)].to_numpy(dtype=np.float64)
    bad = np.isfinite(values) & ((values < 0) | (values > 1))
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise SchemaError(f"forecast file {path}, row {row}: probabilities and confidence must lie in [0, 1]")
    return frame


def load_forecasts(
    fs: FeatureSet, forecaster_uri: str, settings: Settings, symbols: list[str] | None = None
) -> pd.DataFrame:
    """Forecasts from a logged forecaster (any MLflow model URI) or from a per-bar forecast file."""
    path = Path(forecaster_uri)
    if path.suffix in FORECAST_FILE_SUFFIXES and path.is_file():
        return read_forecast_file(path)
    return forecasts_from_model(fs, forecaster_uri, settings, symbols)


# ------------------------------------------------------------------------------------------- market


def feature_groups(fs: FeatureSet) -> dict[str, list[str]]:
    """Group (market, technical, regime, microstructure) -> feature names, from the manifest."""
    groups: dict[str, list[str]] = {}
    for spec in fs.manifest["features"]:
        groups.setdefault(str(spec["group"]), []).append(str(spec["name"]))
    return groups


def market_from_feature_set(
    fs: FeatureSet, settings: Settings, forecaster_uri: str | None = None, symbols: list[str] | None = None
) -> tuple[MarketData, Periods]:
    """The panel an agent trains on, and the feature set's periods on it.

    :param forecaster_uri: a logged forecaster (``models:/...``, ``runs:/<id>/forecaster``) run over
        every complete window, or a Parquet/CSV file of per-bar forecasts; None: no forecast data (pure RL).
    :param symbols: a subset of the feature set's symbols (default: all).
    :raises ConfigError: an unknown symbol, or a forecaster trained on other features.
    """
    keys = fs.features([])
    available = sorted(keys["symbol"].unique().tolist())
    if symbols is not None:
        unknown = sorted(set(symbols) - set(available))
        if unknown:
            raise ConfigError(f"symbol(s) {unknown} are not in feature set {fs.version} (it has {available})")
    chosen = sorted(symbols) if symbols is not None else available
    bars = load_dataset(str(fs.manifest["dataset_version"]), settings)
    bars = bars[bars["symbol"].isin(chosen)]
    mask = keys["symbol"].isin(chosen).to_numpy()
    scaled = pd.DataFrame(np.asarray(fs.matrix[mask]), columns=fs.feature_names)
    features = pd.concat([keys.loc[mask].reset_index(drop=True), scaled], axis=1)
    forecasts = load_forecasts(fs, forecaster_uri, settings, chosen) if forecaster_uri else None
    data = MarketData.from_frames(bars, features, feature_groups(fs), forecasts, chosen)
    splits = fs.summary["splits"]
    periods = periods_from_splits(data, splits["val_start"], splits["test_start"])
    log.info("market of %s: %d bars x %d symbols, periods %s", fs.version, data.n_steps, data.n_assets, periods)
    return data, periods
