"""The market the environment replays: a dense (time x asset) panel of prices, features and forecasts.

Built once, indexed every step: the environment never touches pandas while it runs. Every array
row t holds what is known at the close of bar t (features and forecasts are causal by
construction; prices at t+1 are only read when the order placed at t is filled).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trading_core.errors import DataQualityError

FORECAST_COLUMNS: tuple[str, ...] = ("prob_hold", "prob_buy", "prob_sell", "confidence")


@dataclass(frozen=True)
class MarketData:
    timestamps: np.ndarray
    """(T,) datetime64[ns] UTC."""
    symbols: tuple[str, ...]
    open: np.ndarray
    """(T, N) float64."""
    close: np.ndarray
    volume: np.ndarray
    features: np.ndarray
    """(T, N, F) float32: scaled features (NaN-free; rows before a feature exists are 0)."""
    feature_names: tuple[str, ...] = ()
    feature_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Group name (market, technical, regime, microstructure) -> feature column indices."""
    forecast: np.ndarray | None = None
    """(T, N, 4) float32: prob_hold, prob_buy, prob_sell, confidence; None = no forecaster."""
    first_valid: int = 0
    """First bar whose features are all defined for every asset (episodes start at or after it)."""

    @property
    def n_steps(self) -> int:
        return len(self.timestamps)

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    @classmethod
    def from_frames(
        cls,
        bars: pd.DataFrame,
        features: pd.DataFrame | None = None,
        feature_groups: dict[str, list[str]] | None = None,
        forecasts: pd.DataFrame | None = None,
        symbols: list[str] | None = None,
    ) -> MarketData:
        """Pivot long frames (timestamp, symbol, ...) to the dense panel.

        ``bars``: OHLCV; ``features``: timestamp, symbol + feature columns (already scaled, e.g. a
        feature set's matrix); ``feature_groups``: group -> column names (from the manifest);
        ``forecasts``: timestamp, symbol + FORECAST_COLUMNS. Only timestamps where every symbol has a
        bar are kept (a portfolio needs a price for each position).
        """
        symbols = sorted(symbols or bars["symbol"].unique().tolist())
        bars = bars[bars["symbol"].isin(symbols)]
        wide = bars.pivot(index="timestamp", columns="symbol")
        wide = wide.dropna(how="any")
        if wide.empty:
            raise DataQualityError(f"no timestamp where all of {len(symbols)} symbols have a bar")
        index = wide.index
        opens = wide["open"][symbols].to_numpy(np.float64)
        closes = wide["close"][symbols].to_numpy(np.float64)
        volumes = wide["volume"][symbols].to_numpy(np.float64)
        names: list[str] = []
        groups: dict[str, tuple[int, ...]] = {}
        first_valid = 0
        if features is not None:
            names = [c for c in features.columns if c not in ("timestamp", "symbol")]
            panel = _panel(features, index, symbols, names)
            finite = np.isfinite(panel).all(axis=(1, 2))
            if not finite.any():
                raise DataQualityError("no bar where every feature of every symbol is defined")
            first_valid = int(np.argmax(finite))
            panel = np.nan_to_num(panel, nan=0.0, posinf=0.0, neginf=0.0)
            groups = {
                g: tuple(names.index(c) for c in cols if c in names) for g, cols in (feature_groups or {}).items()
            }
        else:
            panel = np.zeros((len(index), len(symbols), 0), dtype=np.float32)
        forecast = None
        if forecasts is not None:
            forecast = _panel(forecasts, index, symbols, list(FORECAST_COLUMNS))
            missing = ~np.isfinite(forecast).all(axis=2)
            forecast[missing] = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)  # no forecast: hold, no confidence
        ts = pd.DatetimeIndex(index)
        ts = ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts
        return cls(
            timestamps=ts.to_numpy(dtype="datetime64[ns]"),
            symbols=tuple(symbols),
            open=opens,
            close=closes,
            volume=volumes,
            features=panel.astype(np.float32),
            feature_names=tuple(names),
            feature_groups=groups,
            forecast=forecast,
            first_valid=first_valid,
        )


def _panel(frame: pd.DataFrame, index: pd.Index, symbols: list[str], columns: list[str]) -> np.ndarray:
    """(T, N, C) float32 from a long frame, aligned to ``index`` x ``symbols`` (NaN where absent)."""
    wide = frame.set_index(["timestamp", "symbol"])[columns].unstack("symbol")
    wide = wide.reindex(index)
    out = np.full((len(index), len(symbols), len(columns)), np.nan, dtype=np.float32)
    present = [s for s in symbols if s in wide.columns.get_level_values(1)]
    for j, symbol in enumerate(symbols):
        if symbol in present:
            out[:, j, :] = wide.xs(symbol, axis=1, level=1)[columns].to_numpy(np.float32)
    return out
