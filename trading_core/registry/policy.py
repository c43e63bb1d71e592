"""``TradingPolicy``: the servable hybrid policy, bars in, risk-checked target positions out.

One object bundles everything a decision needs: the feature recipe (manifest) and the training-only
scaler, the CNN+LSTM forecaster ensemble, the RL actor (or a baseline rule), the environment
configuration (confidence rule, frictions) and the risk limits. :meth:`TradingPolicy.decide` runs
the same code as the backtest at the last bar of the input, one method per stage:

    bars -> validate_bars -> raw_features (compute_features, causal) -> scale (the scaler)
         -> forecast: forecaster_windows (the last seq_len-bar window per symbol) -> predict_windows
         -> decision_panel (bars + scaled features + forecasts as a MarketData)
         -> observe (PortfolioEngine.observe, positioned on the given PolicyState)
         -> act (the actor, or the baseline rule) -> engine.decide (confidence scaling, RiskManager)
         -> decision_frame (trading_core.registry.decision)

Each stage takes what the one before returns, so a caller that keeps its own feature state (the
live decision service: :class:`~trading_core.features.online.FeatureState` gives ``raw_features``'
layout bar by bar) enters at :meth:`~TradingPolicy.scale` or
:meth:`~TradingPolicy.decide_from_features` instead of recomputing features from a bar history.

The account state in and the decision frame out are in :mod:`trading_core.registry.decision`; the
bundle directory (:meth:`~TradingPolicy.save`, :meth:`~TradingPolicy.load`) in
:mod:`trading_core.registry.policy_io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.errors import ConfigError, DataQualityError, SchemaError
from trading_core.features.config import FeatureSetConfig
from trading_core.features.pipeline import compute_features, max_warmup
from trading_core.features.scaling import StandardScaler
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pyfunc_model import predict_frame
from trading_core.registry.actors import AgentActor
from trading_core.registry.decision import PolicyState, decision_frame
from trading_core.registry.policy_io import PolicyBundle, PolicySpec, read_bundle, write_bundle
from trading_core.rl.data import FORECAST_COLUMNS, MarketData
from trading_core.rl.engine import PortfolioEngine

HISTORY_MARGIN = 10
"""Bars beyond the strict warm-up in ``min_history``: a few missing bars of one symbol (quarantined
rows) drop timestamps from the decision panel, which needs every symbol at every row."""
BAR_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
"""The input frame: recent OHLCV bars, one row per (timestamp, symbol), every policy symbol at every timestamp."""


def tail_bars(bars: pd.DataFrame, symbols: list[str], n: int) -> pd.DataFrame:
    """Each symbol's last ``n`` bars (per symbol, not the last ``n`` timestamps: a symbol with gaps
    still gets ``n`` bars), sorted by (symbol, timestamp)."""
    frame = bars[bars["symbol"].isin(symbols)].sort_values(["symbol", "timestamp"], kind="stable")
    return frame.groupby("symbol", sort=False).tail(n).reset_index(drop=True)


@dataclass
class TradingPolicy:
    spec: PolicySpec
    manifest: dict[str, Any]
    scaler: StandardScaler
    forecaster: ForecasterEnsemble | None = None
    actor: AgentActor | None = None
    reference_dir: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.spec.kind == "agent" and self.actor is None:
            raise ConfigError("a policy of kind 'agent' needs its actor")
        needs_forecast = self.spec.kind == "forecaster_rule" or (
            self.spec.kind == "agent" and ("forecast" in self.spec.env.blocks or self.spec.env.confidence_scaling)
        )
        if needs_forecast and self.forecaster is None:
            raise ConfigError(f"a policy of kind {self.spec.kind!r} with this env config needs the forecaster")
        if self.spec.kind == "constant_mix" and len(self.spec.constant_actions or ()) != len(self.spec.symbols):
            raise ConfigError("kind 'constant_mix' needs one constant action per symbol")
        if list(self.scaler.features) != list(self.manifest["feature_names"]):
            raise ConfigError("the scaler's features differ from the manifest's feature names")

    # ---------------------------------------------------------------------------- properties

    @property
    def symbols(self) -> list[str]:
        return list(self.spec.symbols)

    @property
    def universe(self) -> list[str]:
        return list(self.spec.universe or self.spec.symbols)

    @property
    def feature_config(self) -> FeatureSetConfig:
        return FeatureSetConfig.model_validate(self.manifest["config"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def min_history(self) -> int:
        """Bars per symbol the input must hold: the longest feature warm-up, the forecaster window,
        the observation window and the VaR / ADV look-backs. More history makes recursive
        indicators (EMA, RSI) closer to the values the model was trained on; use 2x in production."""
        env = self.spec.env
        needed = max(max_warmup(self.feature_config) + env.window, env.risk.var_lookback + 2, env.adv_window + 2)
        return needed + HISTORY_MARGIN

    # -------------------------------------------------------------------------------- stages

    def validate_bars(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The policy's symbols, sorted, with a UTC timestamp; errors name the problem."""
        missing = [c for c in BAR_COLUMNS if c not in bars.columns]
        if missing:
            raise SchemaError(f"policy input lacks column(s) {missing}; expected {list(BAR_COLUMNS)}")
        frame = bars[list(BAR_COLUMNS)].copy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        absent = sorted(set(self.universe) - set(frame["symbol"].unique()))
        if absent:
            raise DataQualityError(
                f"policy input has no bars for symbol(s) {absent} (features are computed over {self.universe})"
            )
        frame = frame[frame["symbol"].isin(self.universe)]
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(np.float64)
        bad = ~np.isfinite(values).all(axis=1) | (values[:, :4] <= 0).any(axis=1)
        if bad.any():
            row = frame.iloc[int(np.argmax(bad))]
            raise DataQualityError(
                f"policy input row ({row['timestamp']}, {row['symbol']}): non-positive or missing price"
            )
        counts = frame.groupby("symbol").size()
        short = counts[counts < self.min_history]
        if len(short):
            raise DataQualityError(
                f"policy input has {int(short.min())} bars for {short.idxmin()}; the policy needs at least "
                f"{self.min_history} per symbol (feature warm-up + windows)"
            )
        return frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)

    def raw_features(self, bars: pd.DataFrame) -> pd.DataFrame:
        """timestamp, symbol + every feature of the recipe, unscaled (NaN during warm-up), for validated
        ``bars``: :func:`~trading_core.features.pipeline.compute_features`' layout, which
        :class:`~trading_core.features.online.FeatureState` also produces bar by bar."""
        return compute_features(bars, self.feature_config.indicators)

    def scale(self, raw: pd.DataFrame) -> pd.DataFrame:
        """timestamp, symbol + the policy's features scaled by its training-only scaler (``raw``: the
        layout of :meth:`raw_features`; other columns are ignored)."""
        names = self.feature_names
        scaled = self.scaler.transform(raw[names].to_numpy(np.float64))
        out = raw[["timestamp", "symbol"]].reset_index(drop=True)
        return pd.concat([out, pd.DataFrame(scaled, columns=names)], axis=1)

    def features(self, bars: pd.DataFrame) -> pd.DataFrame:
        """timestamp, symbol + the scaled features (NaN during warm-up), for validated ``bars``."""
        return self.scale(self.raw_features(bars))

    def forecaster_windows(self, features: pd.DataFrame, last: int = 1) -> tuple[np.ndarray, list[Any], list[str]]:
        """The forecaster's inputs: the ``seq_len``-bar windows of scaled ``features`` ending at each
        traded symbol's last ``last`` bars, as (windows ``(n, seq_len, n_features)`` float32, their end
        timestamps, their symbols). ``last=1`` (a decision) needs the newest window complete; with
        ``last > 1`` (monitoring) incomplete windows are skipped."""
        if self.forecaster is None:
            raise ConfigError("this policy has no forecaster")
        seq_len = self.forecaster.cfg.seq_len
        names = self.feature_names
        windows, keys = [], []
        for symbol, rows in features[features["symbol"].isin(self.symbols)].groupby("symbol", sort=True):
            matrix = rows[names].to_numpy(np.float32)
            stamps = rows["timestamp"].to_numpy()
            for end in range(max(seq_len - 1, len(rows) - last), len(rows)):
                window = matrix[end - seq_len + 1 : end + 1]
                if np.isfinite(window).all():
                    windows.append(window)
                    keys.append((stamps[end], symbol))
                elif last == 1:
                    raise DataQualityError(
                        f"symbol {symbol}: the last {seq_len} bars do not all have every feature (warm-up not over)"
                    )
            if last == 1 and (not keys or keys[-1][1] != symbol):
                raise DataQualityError(f"symbol {symbol}: fewer than {seq_len} bars, no forecaster window")
        if not windows:
            raise DataQualityError("no complete forecaster window in the bars")
        return np.stack(windows), [k[0] for k in keys], [k[1] for k in keys]

    def predict_windows(self, windows: np.ndarray, timestamps: list[Any], symbols: list[str]) -> pd.DataFrame:
        """The forecaster on ``windows`` (see :meth:`forecaster_windows`): timestamp, symbol + its output columns."""
        if self.forecaster is None:
            raise ConfigError("this policy has no forecaster")
        frame = predict_frame(self.forecaster, windows)
        frame.insert(0, "symbol", symbols)
        frame.insert(0, "timestamp", timestamps)
        return frame

    def forecast(self, features: pd.DataFrame, last: int = 1) -> pd.DataFrame:
        """The forecaster on the windows ending at each traded symbol's last ``last`` bars: timestamp,
        symbol + its output columns (:meth:`forecaster_windows`, then :meth:`predict_windows`)."""
        return self.predict_windows(*self.forecaster_windows(features, last))

    def decision_panel(
        self, bars: pd.DataFrame, features: pd.DataFrame, forecasts: pd.DataFrame | None
    ) -> MarketData:
        """The market panel the engine decides on: validated ``bars``, scaled ``features`` (grouped as
        the manifest says) and the ``forecasts`` at the last bar; every traded symbol must have a bar then."""
        last = bars["timestamp"].max()
        lagging = sorted(set(self.symbols) - set(bars.loc[bars["timestamp"] == last, "symbol"]))
        if lagging:
            raise DataQualityError(f"no bar at the decision time {last} for symbol(s) {lagging}")
        groups: dict[str, list[str]] = {}
        for spec in self.manifest["features"]:
            groups.setdefault(str(spec["group"]), []).append(str(spec["name"]))
        forecast_panel = forecasts[["timestamp", "symbol", *FORECAST_COLUMNS]] if forecasts is not None else None
        return MarketData.from_frames(bars, features, groups, forecast_panel, self.symbols)

    def observe(self, data: MarketData, state: PolicyState) -> tuple[PortfolioEngine, np.ndarray]:
        """A one-portfolio engine at the last bar of ``data`` holding ``state`` (positions, cash, breaker),
        and its observation there: what the actor sees."""
        engine = PortfolioEngine(data, self.spec.env, n_envs=1)
        if self.spec.obs_dim is not None and engine.obs_dim != self.spec.obs_dim:
            raise ConfigError(f"observation has {engine.obs_dim} values, the actor was trained on {self.spec.obs_dim}")
        t = data.n_steps - 1
        n = data.n_assets
        weights = np.asarray(state.weights or np.zeros(n), dtype=np.float64)
        if weights.shape != (n,):
            raise SchemaError(f"state weights have {weights.size} values for {n} symbols {self.symbols}")
        close = data.close[t]
        entries = np.asarray(state.entry_prices or close, dtype=np.float64)
        if entries.shape != (n,):
            raise SchemaError(f"state entry_prices have {entries.size} values for {n} symbols")
        if not (np.isfinite(state.equity) and state.equity > 0):
            raise SchemaError(f"state equity must be > 0, got {state.equity}")
        engine.t[:] = t
        engine.start[:] = t
        engine.length[:] = 1
        engine.shares[0] = weights * state.equity / close
        engine.entry_price[0] = np.where(weights != 0, entries, 0.0)
        engine.equity[:] = state.equity
        engine.cash[:] = state.equity * (1.0 - weights.sum())
        peak = max(state.peak_equity, state.equity)
        engine.peak[:] = peak
        engine.last_var[:] = state.last_var
        engine.halted[:] = float(state.halted)
        engine.risk.restore(peak, state.cooldown_left)
        if state.progress:
            engine.start[:] = t - round(state.progress * 1000)
            engine.length[:] = 1000
        return engine, engine.observe()[0]

    def act(self, obs: np.ndarray, forecasts: pd.DataFrame | None) -> np.ndarray:
        """The action per traded symbol in [-1, 1]: the actor's on ``obs`` (kind 'agent'), the constant
        mix, or the forecaster rule on ``forecasts`` (side of the predicted class x confidence)."""
        spec = self.spec
        if spec.kind == "agent":
            if self.actor is None:  # not an assert: it would vanish under python -O (bandit B101)
                raise ConfigError("policy kind 'agent' has no actor")
            return self.actor.predict(obs)
        if spec.kind == "constant_mix":
            return np.asarray(spec.constant_actions, dtype=np.float64)
        if forecasts is None:
            raise ConfigError(f"policy kind {spec.kind!r} needs the forecaster's output")
        probs = forecasts[["prob_hold", "prob_buy", "prob_sell"]].to_numpy(np.float64)
        cls = probs.argmax(axis=1)
        side = np.where(cls == 1, 1.0, np.where(cls == 2, -1.0 if spec.rule_allow_short else 0.0, 0.0))
        conf = np.clip(forecasts["confidence"].to_numpy(np.float64), 0.0, 1.0)
        return np.clip(side * conf * spec.rule_max_position, -1.0, 1.0)

    def decide_from_features(
        self, bars: pd.DataFrame, features: pd.DataFrame, state: PolicyState | None = None
    ) -> pd.DataFrame:
        """:meth:`decide` from validated ``bars`` and their scaled ``features`` on: the entry of a caller
        that computes the features itself (incrementally) rather than from the bar history."""
        state = state or PolicyState()
        forecasts = self.forecast(features) if self.forecaster is not None else None
        data = self.decision_panel(bars, features, forecasts)
        engine, obs = self.observe(data, state)
        action = self.act(obs, forecasts)
        decision = engine.decide(action[None, :])
        return decision_frame(data, engine, decision, forecasts, state)

    def decide(self, bars: pd.DataFrame, state: PolicyState | None = None) -> pd.DataFrame:
        """Target positions at the last timestamp of ``bars`` (decided at its close, to fill at the next open)."""
        frame = self.validate_bars(bars)
        return self.decide_from_features(frame, self.features(frame), state)

    # ------------------------------------------------------------------------------- storage

    def save(self, directory: Path) -> Path:
        """Write the bundle (layout in :mod:`trading_core.registry.policy_io`); returns ``directory``."""
        bundle = PolicyBundle(self.spec, self.manifest, self.scaler, self.forecaster, self.actor, self.reference_dir)
        return write_bundle(bundle, directory)

    @classmethod
    def load(cls, directory: Path) -> TradingPolicy:
        """Read a bundle written by :meth:`save` (tensors with ``weights_only=True``; no pickle)."""
        return cls(*read_bundle(directory))
