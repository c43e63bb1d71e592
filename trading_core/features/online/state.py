"""``FeatureState``: the whole feature catalogue of a universe, updated one bar time at a time.

    state = FeatureState.warm(history, IndicatorConfig())     # replay the lake's bars once
    row = state.update(BarSlice.from_frame(bars_at_t))        # (n_symbols, n_features), per bar
    blob = state.snapshot(); state = FeatureState.restore(blob)

What a call returns is what :func:`~trading_core.features.compute_features` returns for the same
rows when run on the whole history up to them (see the package docstring and docs/features-online.md
for the rules on missing symbols, warm-up NaNs and the exactness of each family). Each update costs
O(window) per symbol, never a re-scan of the history.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_core.data.schema import OHLCV_COLUMNS
from trading_core.errors import ConfigError, SchemaError
from trading_core.features.config import IndicatorConfig
from trading_core.features.online.per_symbol import SymbolFeatures
from trading_core.features.online.universe import UniverseFeatures
from trading_core.features.specs import feature_specs

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
"""Version of the snapshot layout; a snapshot of another version is refused, never misread."""

_NS = np.dtype("datetime64[ns]")


class BarSliceError(SchemaError):
    """A bar slice cannot be applied (unknown or repeated symbol, bad price, stale time); state unchanged."""


@dataclass(frozen=True)
class BarSlice:
    """All the bars of one bar time: one entry per symbol that has a bar then."""

    timestamp: pd.Timestamp
    symbols: Sequence[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> BarSlice:
        """From rows of the OHLCV contract that share one timestamp."""
        missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
        if missing:
            raise BarSliceError(f"bar slice lacks columns {missing} (expected {list(OHLCV_COLUMNS)})")
        stamps = pd.to_datetime(bars["timestamp"], utc=True).unique()
        if len(stamps) != 1:
            raise BarSliceError(f"a bar slice holds one bar time, got {len(stamps)}: {list(stamps)[:3]}")
        return cls(
            pd.Timestamp(stamps[0]),
            [str(s) for s in bars["symbol"]],
            *(bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")),
        )


def _validate_config(c: IndicatorConfig) -> None:
    """TA-Lib's parameter ranges: the batch raises inside talib for these, the state refuses them up front."""
    bad = [f"rsi period {p} (>= 2)" for p in c.rsi_periods if p < 2]
    fast, slow, signal = c.macd
    bad += [f"macd {c.macd} (fast, slow >= 2, signal >= 1)"] if min(fast, slow) < 2 or signal < 1 else []
    bad += [f"adx period {c.adx_period} (>= 2)"] if c.adx_period < 2 else []
    bad += [f"dx period {p} (>= 2)" for p in c.dx_periods if p < 2]
    bad += [f"cci period {p} (>= 2)" for p in c.cci_periods if p < 2]
    bad += [f"mfi period {c.mfi_period} (>= 2)"] if c.mfi_period < 2 else []
    bad += [f"stoch {c.stoch} (each >= 1)"] if min(c.stoch) < 1 else []
    if bad and "technical" in c.groups:
        raise ConfigError(f"TA-Lib rejects these indicator parameters: {', '.join(bad)}")


class FeatureState:
    """Rolling state of every feature of ``config`` over a fixed, sorted universe of symbols."""

    def __init__(self, config: IndicatorConfig, symbols: Sequence[str]) -> None:
        universe = sorted({str(s) for s in symbols})
        if not universe:
            raise ConfigError("a feature state needs at least one symbol")
        _validate_config(config)
        self.config = config
        self.symbols: list[str] = universe
        self._index = {s: i for i, s in enumerate(universe)}
        self.feature_names: list[str] = [s.name for s in feature_specs(config, len(universe))]
        n = len(universe)
        self.bars = np.zeros(n, dtype=np.int64)
        """Bars seen per symbol (the position of its next bar in its own sequence)."""
        self.last_time: np.datetime64 | None = None
        self.present = np.zeros(n, dtype=bool)
        """Which symbols had a bar at the last update."""
        self._per_symbol = SymbolFeatures(config, n)
        self._universe = UniverseFeatures(config, n) if "regime" in config.groups else None

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def warm(
        cls,
        history: pd.DataFrame,
        config: IndicatorConfig | None = None,
        *,
        symbols: Sequence[str] | None = None,
        warmup_bars: int | None = None,
    ) -> FeatureState:
        """A state that has seen ``history`` (long OHLCV bars, e.g. read from the lake).

        ``warmup_bars=None`` replays every bar time of ``history``: the state then equals the batch
        run on the same history (recursive indicators included). ``warmup_bars=N`` replays only the
        last N bar times: faster, but the recursive indicators (EMA, MACD, RSI, ATR, ADX/DX) restart
        from a seed at the tail instead of continuing, and every running sum restarts (a rounding-level
        difference); docs/features-online.md gives the measured error against N. ``symbols`` fixes
        the universe (default: the symbols of ``history``); it must include every symbol of ``history``.
        """
        config = config or IndicatorConfig()
        bars = _long_frame(history)
        seen = {str(s) for s in bars["symbol"].unique()}
        wanted = {str(s) for s in symbols} if symbols is not None else seen
        if not seen <= wanted:
            raise ConfigError(f"history holds symbols outside the universe: {sorted(seen - wanted)[:5]}")
        universe = sorted(wanted)
        state = cls(config, universe)
        t0 = time.perf_counter()
        n_times = state.replay(bars, warmup_bars=warmup_bars, collect=False)[0]
        log.info(
            "feature state warmed on %d bar times of %d symbols in %.2f s",
            n_times,
            len(universe),
            time.perf_counter() - t0,
        )
        return state

    def replay(
        self, bars: pd.DataFrame, *, warmup_bars: int | None = None, collect: bool = True
    ) -> tuple[int, pd.DataFrame | None]:
        """Feed ``bars`` bar time by bar time; (bar times fed, features of every fed row or None).

        The frame comes back in :func:`compute_features`' layout (timestamp, symbol, features; rows
        sorted by symbol then timestamp), so the two can be compared column by column.
        """
        frame = _long_frame(bars)
        for s in frame["symbol"].unique():
            if s not in self._index:
                raise BarSliceError(f"symbol {s!r} is not in this state's universe")
        stamps = frame["timestamp"].to_numpy()
        if warmup_bars is not None and warmup_bars < 1:
            raise ConfigError(f"warmup_bars must be >= 1, got {warmup_bars}")
        if warmup_bars is not None and len(stamps):
            keep_from = np.unique(stamps)[-warmup_bars:][0]
            frame = frame[stamps >= keep_from]
            stamps = frame["timestamp"].to_numpy()
        codes = np.array([self._index[s] for s in frame["symbol"]], dtype=np.intp)
        values = {c: frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        _check_values(values, frame["symbol"].to_numpy(), stamps)
        order = np.lexsort((codes, stamps))
        stamps, codes = stamps[order], codes[order]
        values = {k: v[order] for k, v in values.items()}
        bounds = np.flatnonzero(np.r_[True, stamps[1:] != stamps[:-1], True])
        if self.last_time is not None and len(stamps) and stamps[0] <= self.last_time:
            raise BarSliceError(f"bars at {pd.Timestamp(stamps[0])} are not after the state's {self.last_time}")
        out_rows: list[np.ndarray] = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            row = self._step(stamps[a], codes[a:b], *(values[k][a:b] for k in values))
            if collect:
                out_rows.append(row[codes[a:b]])
        if not collect:
            return len(bounds) - 1, None
        block = np.concatenate(out_rows) if out_rows else np.empty((0, len(self.feature_names)))
        result = pd.DataFrame(block, columns=self.feature_names)
        result.insert(0, "symbol", np.array(self.symbols, dtype=object)[codes])
        result.insert(0, "timestamp", pd.DatetimeIndex(stamps).tz_localize("UTC"))
        by_symbol = np.lexsort((stamps, codes))
        return len(bounds) - 1, result.iloc[by_symbol].reset_index(drop=True)

    # -------------------------------------------------------------------------------- the update

    def update(self, bar_slice: BarSlice) -> np.ndarray:
        """Apply one bar time; the features of every universe symbol at it (rows in ``symbols`` order,
        NaN rows for symbols without a bar now: ``present`` says which). Raises
        :class:`BarSliceError` (state unchanged) for an unknown or repeated symbol, a non-finite or
        non-positive price, a negative volume, or a bar time not after the last one."""
        ts = pd.Timestamp(bar_slice.timestamp)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")  # naive = UTC, as the lake
        stamp = np.datetime64(ts.tz_localize(None), "ns")
        if self.last_time is not None and stamp <= self.last_time:
            raise BarSliceError(f"bar time {bar_slice.timestamp} is not after the last one ({self.last_time})")
        codes = np.empty(len(bar_slice.symbols), dtype=np.intp)
        for i, s in enumerate(bar_slice.symbols):
            code = self._index.get(s)
            if code is None:
                raise BarSliceError(f"symbol {s!r} is not in this state's universe")
            codes[i] = code
        if len(codes) == 0:
            raise BarSliceError(f"bar slice at {bar_slice.timestamp} holds no bars")
        if len(np.unique(codes)) != len(codes):
            raise BarSliceError(f"bar slice at {bar_slice.timestamp} repeats a symbol")
        values = {
            k: np.asarray(getattr(bar_slice, k), dtype=np.float64) for k in ("open", "high", "low", "close", "volume")
        }
        if any(len(v) != len(codes) for v in values.values()):
            raise BarSliceError("bar slice arrays differ in length from its symbols")
        _check_values(values, np.asarray(bar_slice.symbols, dtype=object), np.full(len(codes), stamp))
        order = np.argsort(codes)
        return self._step(stamp, codes[order], *(values[k][order] for k in values))

    def _step(
        self,
        stamp: np.datetime64,
        idx: np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        cl: np.ndarray,
        v: np.ndarray,
    ) -> np.ndarray:
        """One bar time of validated bars of the symbols ``idx`` (ascending, unique)."""
        pos = self.bars[idx]
        with np.errstate(all="ignore"):  # NaN/inf are handled explicitly, as in the batch
            columns, r1 = self._per_symbol.update(idx, pos, o, h, lo, cl, v)
            if self._universe is not None:
                columns |= self._universe.update(idx, pos, r1)
        out = np.full((len(self.symbols), len(self.feature_names)), np.nan)
        block = np.stack([columns[name] for name in self.feature_names], axis=1)
        block[~np.isfinite(block)] = np.nan
        out[idx] = block
        self.bars[idx] = pos + 1
        self.present[:] = False
        self.present[idx] = True
        self.last_time = stamp
        return out

    def frame(self, features: np.ndarray) -> pd.DataFrame:
        """An ``update`` result as a frame of the present symbols (compute_features' columns)."""
        rows = np.flatnonzero(self.present)
        out = pd.DataFrame(features[rows], columns=self.feature_names)
        out.insert(0, "symbol", [self.symbols[i] for i in rows])
        assert self.last_time is not None
        out.insert(0, "timestamp", pd.Timestamp(self.last_time, tz="UTC"))
        return out

    def copy(self) -> FeatureState:
        """An independent copy: ``state.copy().update(slice)`` previews a bar without consuming it."""
        return copy.deepcopy(self)

    # ---------------------------------------------------------------------------- persistence

    def _arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        yield "bars", self.bars
        yield "present", self.present
        yield from self._per_symbol.state_items("symbol.")
        if self._universe is not None:
            yield from self._universe.state_items("universe.")

    def snapshot(self) -> bytes:
        """The state as ``.npz`` bytes (arrays + a JSON header; no pickle anywhere)."""
        meta: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "symbols": self.symbols,
            "feature_names": self.feature_names,
            "last_time": None if self.last_time is None else int(self.last_time.astype("int64")),
        }
        buffer = io.BytesIO()
        arrays = dict(self._arrays())
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez(buffer, allow_pickle=False, **arrays)
        return buffer.getvalue()

    @classmethod
    def restore(cls, blob: bytes) -> FeatureState:
        """The state a :meth:`snapshot` was taken of; it continues exactly where that one stood."""
        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(arrays.pop("__meta__").tobytes().decode())
        except (ValueError, KeyError, OSError) as exc:
            raise ConfigError(f"not a feature-state snapshot: {exc}") from exc
        if meta.get("format") != SNAPSHOT_FORMAT:
            raise ConfigError(f"snapshot format {meta.get('format')!r}, this code reads {SNAPSHOT_FORMAT}")
        state = cls(IndicatorConfig.model_validate(meta["config"]), meta["symbols"])
        if state.feature_names != meta["feature_names"]:
            raise ConfigError("snapshot's feature names differ from its configuration's: written by other code")
        state.bars = arrays.pop("bars").copy()
        state.present = arrays.pop("present").copy()
        state._per_symbol.load_state(arrays, "symbol.")
        if state._universe is not None:
            state._universe.load_state(arrays, "universe.")
        state.last_time = None if meta["last_time"] is None else np.datetime64(meta["last_time"], "ns")
        return state


def _long_frame(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
    if missing:
        raise SchemaError(f"bars lack columns {missing} (expected {list(OHLCV_COLUMNS)})")
    stamps = pd.to_datetime(bars["timestamp"], utc=True).dt.tz_localize(None).to_numpy(dtype=_NS)
    frame = pd.DataFrame({"timestamp": stamps, "symbol": bars["symbol"].astype(str).to_numpy()})
    for c in ("open", "high", "low", "close", "volume"):
        frame[c] = bars[c].to_numpy(dtype=np.float64)
    dup = frame.duplicated(["symbol", "timestamp"])
    if dup.any():
        row = frame[dup].iloc[0]
        raise BarSliceError(f"duplicate bar for {row['symbol']} at {row['timestamp']}: features need validated bars")
    return frame


def _check_values(values: dict[str, np.ndarray], symbols: np.ndarray, stamps: np.ndarray) -> None:
    """Prices finite and > 0, volume finite and >= 0 (what validation guarantees the lake holds)."""
    for field in ("open", "high", "low", "close", "volume"):
        x = values[field]
        bad = ~np.isfinite(x) | ((x < 0) if field == "volume" else (x <= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BarSliceError(
                f"bar of {symbols[i]} at {pd.Timestamp(stamps[i], tz='UTC')}: {field}={float(x[i])} "
                f"({'finite and >= 0' if field == 'volume' else 'finite and > 0'} expected)"
            )
