"""What a decision is for and what it says: the account state in, the per-symbol decision frame out.

A :class:`~trading_core.registry.policy.TradingPolicy` is stateless: the portfolio (weights, entry
prices, equity) and the drawdown breaker (equity peak, cooldown) come in as :class:`PolicyState`,
and the breaker's new state goes out in the decision frame (:func:`decision_frame`,
:data:`OUTPUT_COLUMNS`), so a paper or live account carries it from bar to bar. The pyfunc's
``params`` are a :class:`PolicyState` (:meth:`PolicyState.from_params`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_core.errors import SchemaError
from trading_core.forecast.pyfunc_model import OUTPUT_COLUMNS as FORECAST_OUTPUT
from trading_core.risk import describe_reasons
from trading_core.risk.manager import DECISION_NAMES
from trading_core.rl.data import MarketData
from trading_core.rl.engine import Decision, PortfolioEngine

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


def decision_frame(
    data: MarketData,
    engine: PortfolioEngine,
    decision: Decision,
    forecasts: pd.DataFrame | None,
    state: PolicyState,
) -> pd.DataFrame:
    """The :data:`OUTPUT_COLUMNS` frame of ``engine``'s ``decision`` at the last bar of ``data`` (one
    row per symbol of the panel); ``forecasts``: the forecaster's rows at that bar, None without one."""
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
