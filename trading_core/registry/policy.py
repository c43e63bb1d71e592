"""``TradingPolicy``: the servable hybrid policy, bars in, risk-checked target positions out.

One object bundles everything a decision needs: the feature recipe (manifest) and the training-only
scaler, the CNN+LSTM forecaster ensemble, the RL actor (or a baseline rule), the environment
configuration (confidence rule, frictions) and the risk limits. :meth:`TradingPolicy.decide` runs
the same code as the backtest at the last bar of the input:

    bars -> compute_features (causal) -> scaler -> forecaster on the last seq_len-bar window
         -> observation (PortfolioEngine.observe, with the portfolio state given)
         -> actor -> PortfolioEngine.decide (confidence scaling, RiskManager)

The policy is stateless: the portfolio (weights, entry prices, equity) and the drawdown breaker
(equity peak, cooldown) come in as :class:`PolicyState` and the breaker's new state goes out with
the decision, so a paper or live account carries it from bar to bar.

Bundle directory (what :meth:`save` writes and the MLflow pyfunc ships as artifacts; no pickle):

    policy.json                    kind, symbols, env config, lineage, format version
    manifest.json, scaler.json     the feature set's recipe and training-only scaler
    forecaster/                    forecaster_config.json + ensemble.pt (state_dict), if any
    actor/                         members.json + <member>.pt (SB3 policy state_dicts), kind 'agent'
    reference/                     drift reference (see :mod:`trading_core.registry.reference`)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict

from trading_core.errors import ConfigError, DataQualityError, SchemaError
from trading_core.features.config import FeatureSetConfig
from trading_core.features.pipeline import compute_features, max_warmup
from trading_core.features.scaling import StandardScaler
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pyfunc_model import OUTPUT_COLUMNS as FORECAST_OUTPUT
from trading_core.forecast.pyfunc_model import load_ensemble, predict_frame
from trading_core.registry.actors import AgentActor
from trading_core.risk import describe_reasons
from trading_core.risk.manager import DECISION_NAMES
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import FORECAST_COLUMNS, MarketData
from trading_core.rl.engine import PortfolioEngine

FORMAT_VERSION = 1
HISTORY_MARGIN = 10
"""Bars beyond the strict warm-up in ``min_history``: a few missing bars of one symbol (quarantined
rows) drop timestamps from the decision panel, which needs every symbol at every row."""
PolicyKind = Literal["agent", "forecaster_rule", "constant_mix"]
BAR_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "open", "high", "low", "close", "volume")
"""The input frame: recent OHLCV bars, one row per (timestamp, symbol), every policy symbol at every timestamp."""

OUTPUT_COLUMNS: tuple[str, ...] = (
    "timestamp", "symbol", "close", *FORECAST_OUTPUT,
    "action", "action_scaled", "proposed_weight", "target_weight", "current_weight",
    "risk_decision", "risk_reasons", "var", "drawdown", "peak_equity", "cooldown_left",
    "sigma", "adv_value",
)  # fmt: skip
"""One row per symbol: the forecast (probabilities, label 0 hold/1 buy/2 sell, confidence and the
ensemble's uncertainty), the action before (``action``) and after confidence scaling, the proposed
and the risk-approved target weight, the portfolio-level risk decision, reasons, VaR and breaker
state after this bar, and the execution context (daily volatility, average dollar volume) a broker
needs to cost the fill at the next open."""


class PolicySpec(BaseModel):
    """``policy.json``: what the policy is and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    kind: PolicyKind = "agent"
    symbols: tuple[str, ...]
    """The symbols the policy trades (one action each, in this order)."""
    universe: tuple[str, ...] = ()
    """The symbols the features are computed over (cross-asset features such as turbulence depend on
    the universe): the feature set's symbols, a superset of ``symbols``. Empty: ``symbols``."""
    env: EnvConfig
    obs_dim: int | None = None
    """The actor's observation size (kind 'agent'); checked against the engine's at every decision."""
    constant_actions: tuple[float, ...] | None = None
    """kind 'constant_mix': the action per symbol (a fraction of the per-asset limit), every bar."""
    rule_allow_short: bool = False
    rule_max_position: float = 1.0
    """kind 'forecaster_rule': see :func:`trading_core.backtest.strategies.forecaster_rule_policy`."""
    lineage: dict[str, str] = {}
    """dataset_version, feature_set_version, feed, interval, forecaster/agent runs, git sha."""


def tail_bars(bars: pd.DataFrame, symbols: list[str], n: int) -> pd.DataFrame:
    """Each symbol's last ``n`` bars (per symbol, not the last ``n`` timestamps: a symbol with gaps
    still gets ``n`` bars), sorted by (symbol, timestamp)."""
    frame = bars[bars["symbol"].isin(symbols)].sort_values(["symbol", "timestamp"], kind="stable")
    return frame.groupby("symbol", sort=False).tail(n).reset_index(drop=True)


@dataclass(frozen=True)
class PolicyState:
    """The portfolio a decision is for; defaults: a fresh, flat account with an armed breaker."""

    equity: float = 1_000_000.0
    weights: tuple[float, ...] = ()
    """Current weight per policy symbol (value / equity); empty = flat."""
    entry_prices: tuple[float, ...] = ()
    """Average entry price per symbol (for the unrealised P&L in the observation); empty = at the close."""
    peak_equity: float = 0.0
    """The breaker's equity peak; 0 = the current equity."""
    cooldown_left: int = 0
    halted: bool = False
    """Whether the previous decision was a halt (part of the observation's risk block)."""
    last_var: float = 0.0
    progress: float = 0.0
    """Episode progress in [0, 1] (the execution block's clock; 0 for a live account)."""

    PARAM_DEFAULTS = {
        "equity": 1_000_000.0, "weights": [0.0], "entry_prices": [0.0], "peak_equity": 0.0,
        "cooldown_left": 0, "halted": False, "last_var": 0.0, "progress": 0.0,
    }  # fmt: skip
    """The pyfunc's params schema (lists default to [0.0]: MLflow needs a typed example; [0.0] means flat)."""

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> PolicyState:
        p = dict(params or {})
        unknown = sorted(set(p) - set(cls.PARAM_DEFAULTS))
        if unknown:
            raise SchemaError(f"unknown policy params {unknown}; expected some of {sorted(cls.PARAM_DEFAULTS)}")
        weights = tuple(float(x) for x in (p.get("weights") or ()))
        entries = tuple(float(x) for x in (p.get("entry_prices") or ()))
        return cls(
            equity=float(p.get("equity", 1_000_000.0)),
            weights=() if weights in ((), (0.0,)) else weights,
            entry_prices=() if entries in ((), (0.0,)) else entries,
            peak_equity=float(p.get("peak_equity", 0.0)),
            cooldown_left=int(p.get("cooldown_left", 0)),
            halted=bool(p.get("halted", False)),
            last_var=float(p.get("last_var", 0.0)),
            progress=float(p.get("progress", 0.0)),
        )

    def as_params(self) -> dict[str, Any]:
        return {
            "equity": self.equity, "weights": list(self.weights) or [0.0],
            "entry_prices": list(self.entry_prices) or [0.0], "peak_equity": self.peak_equity,
            "cooldown_left": self.cooldown_left, "halted": self.halted, "last_var": self.last_var,
            "progress": self.progress,
        }  # fmt: skip


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

    def features(self, bars: pd.DataFrame) -> pd.DataFrame:
        """timestamp, symbol + the scaled features (NaN during warm-up), for validated ``bars``."""
        raw = compute_features(bars, self.feature_config.indicators)
        names = self.feature_names
        scaled = self.scaler.transform(raw[names].to_numpy(np.float64))
        out = raw[["timestamp", "symbol"]].reset_index(drop=True)
        return pd.concat([out, pd.DataFrame(scaled, columns=names)], axis=1)

    def forecast(self, features: pd.DataFrame, last: int = 1) -> pd.DataFrame:
        """The forecaster on the windows ending at each traded symbol's last ``last`` bars: timestamp,
        symbol + its output columns. ``last=1`` (a decision) needs the newest window complete;
        with ``last > 1`` (monitoring) incomplete windows are skipped."""
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
        frame = predict_frame(self.forecaster, np.stack(windows))
        frame.insert(0, "symbol", [k[1] for k in keys])
        frame.insert(0, "timestamp", [k[0] for k in keys])
        return frame

    def decide(self, bars: pd.DataFrame, state: PolicyState | None = None) -> pd.DataFrame:
        """Target positions at the last timestamp of ``bars`` (decided at its close, to fill at the next open)."""
        state = state or PolicyState()
        frame = self.validate_bars(bars)
        features = self.features(frame)
        forecasts = self.forecast(features) if self.forecaster is not None else None
        last = frame["timestamp"].max()
        lagging = sorted(set(self.symbols) - set(frame.loc[frame["timestamp"] == last, "symbol"]))
        if lagging:
            raise DataQualityError(f"no bar at the decision time {last} for symbol(s) {lagging}")
        groups: dict[str, list[str]] = {}
        for spec in self.manifest["features"]:
            groups.setdefault(str(spec["group"]), []).append(str(spec["name"]))
        forecast_panel = forecasts[["timestamp", "symbol", *FORECAST_COLUMNS]] if forecasts is not None else None
        data = MarketData.from_frames(frame, features, groups, forecast_panel, self.symbols)
        engine = self._engine(data, state)
        obs = engine.observe()[0]
        action = self._action(obs, forecasts)
        decision = engine.decide(action[None, :])
        return self._output(data, engine, decision, forecasts, state)

    # ------------------------------------------------------------------------------- helpers

    def _engine(self, data: MarketData, state: PolicyState) -> PortfolioEngine:
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
        return engine

    def _action(self, obs: np.ndarray, forecasts: pd.DataFrame | None) -> np.ndarray:
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

    def _output(
        self,
        data: MarketData,
        engine: PortfolioEngine,
        decision: Any,
        forecasts: pd.DataFrame | None,
        state: PolicyState,
    ) -> pd.DataFrame:
        t = data.n_steps - 1
        risk = decision.risk
        n = data.n_assets
        out = pd.DataFrame(
            {
                "timestamp": pd.Timestamp(data.timestamps[t]).tz_localize("UTC"),
                "symbol": list(data.symbols),
                "close": data.close[t],
            }
        )
        f = forecasts.set_index("symbol").loc[list(data.symbols)] if forecasts is not None else None
        for col in FORECAST_OUTPUT:  # no forecaster: NaN probabilities, label -1
            out[col] = f[col].to_numpy() if f is not None else (-1 if col == "label" else np.nan)
        out["action"] = decision.action[0]
        out["action_scaled"] = decision.scaled[0]
        out["proposed_weight"] = decision.proposed[0]
        out["target_weight"] = risk.weights[0]
        out["current_weight"] = np.asarray(state.weights or np.zeros(n), dtype=np.float64)
        out["risk_decision"] = DECISION_NAMES[int(risk.decision[0])]
        out["risk_reasons"] = ",".join(describe_reasons(int(risk.reasons[0])))
        out["var"] = float(risk.var[0])
        out["drawdown"] = float(risk.drawdown[0])
        out["peak_equity"] = float(engine.risk.peak[0])
        out["cooldown_left"] = int(engine.risk.cooldown_left[0])
        out["sigma"] = engine.sigma[t]
        out["adv_value"] = engine.adv_value[t]
        out["label"] = out["label"].astype(np.int64)
        return out[list(OUTPUT_COLUMNS)]

    # ------------------------------------------------------------------------------- storage

    def save(self, directory: Path) -> Path:
        """Write the bundle (layout in the module docstring); returns ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "policy.json").write_text(self.spec.model_dump_json(indent=1))
        (directory / "manifest.json").write_text(json.dumps(self.manifest, indent=1))
        self.scaler.save(directory / "scaler.json")
        if self.forecaster is not None:
            (directory / "forecaster").mkdir(exist_ok=True)
            torch.save(
                {k: v.detach().cpu() for k, v in self.forecaster.state_dict().items()},
                directory / "forecaster" / "ensemble.pt",
            )
            (directory / "forecaster" / "forecaster_config.json").write_text(
                json.dumps(self.forecaster.cfg.as_dict(), indent=1)
            )
        if self.actor is not None:
            self.actor.save(directory / "actor")
        if self.reference_dir is not None and self.reference_dir.resolve() != (directory / "reference").resolve():
            shutil.copytree(self.reference_dir, directory / "reference", dirs_exist_ok=True)
        return directory

    @classmethod
    def load(cls, directory: Path) -> TradingPolicy:
        """Read a bundle written by :meth:`save` (tensors with ``weights_only=True``; no pickle)."""
        spec = PolicySpec.model_validate_json((directory / "policy.json").read_text())
        if spec.format != FORMAT_VERSION:
            raise ConfigError(f"policy bundle {directory} has format {spec.format}, this code reads {FORMAT_VERSION}")
        manifest = json.loads((directory / "manifest.json").read_text())
        scaler = StandardScaler.load(directory / "scaler.json")
        forecaster = None
        if (directory / "forecaster" / "ensemble.pt").exists():
            forecaster = load_ensemble(
                directory / "forecaster" / "forecaster_config.json", directory / "forecaster" / "ensemble.pt"
            )
        actor = None
        if spec.kind == "agent":
            if spec.obs_dim is None:
                raise ConfigError(f"policy bundle {directory}: kind 'agent' without obs_dim")
            actor = AgentActor.load(directory / "actor", spec.obs_dim, len(spec.symbols))
        reference = directory / "reference"
        return cls(spec, manifest, scaler, forecaster, actor, reference if reference.exists() else None)
