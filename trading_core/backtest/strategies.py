"""The strategies a walk-forward run compares, as :data:`~trading_core.backtest.engine.Policy` objects,
and the environment configuration each one runs under.

Every strategy is executed by the same engine under the same risk limits; only the policy and the
observation/scaling switches differ:

=========================== ============================================ ==========================================
strategy                    policy                                       config (:func:`strategy_config`)
=========================== ============================================ ==========================================
``buy_and_hold``            :func:`buy_and_hold_policy`                  no 'forecast' block, scaling off
``forecaster_rule``         :func:`forecaster_rule_policy`               confidence scaling off (the rule sizes)
``pure_rl``                 :func:`agent_policy` (agent w/o forecast)    no 'forecast' block, scaling off
``hybrid_rl``               :func:`agent_policy`                         the base config (forecast + scaling)
``hybrid_rl_no_confidence`` :func:`agent_policy`                         forecast block, scaling off
``ensemble``                :func:`agent_policy` (``EnsembleAgent``)     the base config
=========================== ============================================ ==========================================
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from trading_core.backtest.engine import Policy
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData

STRATEGIES: tuple[str, ...] = (
    "buy_and_hold", "forecaster_rule", "pure_rl", "hybrid_rl", "hybrid_rl_no_confidence", "ensemble",
)  # fmt: skip
BUY_AND_HOLD, FORECASTER_RULE, PURE_RL, HYBRID_RL, HYBRID_NO_CONF, ENSEMBLE = STRATEGIES
ACTIVE: tuple[str, ...] = STRATEGIES[1:]
"""The strategies that act on a signal (every one but buy and hold)."""
NEEDS_FORECASTER = frozenset({FORECASTER_RULE, HYBRID_RL, HYBRID_NO_CONF, ENSEMBLE})
"""The strategies that read the fold's forecasts: a walk-forward run trains a forecaster per fold for them."""


class Predictor(Protocol):
    def predict(self, observation: Any, deterministic: bool = ...) -> tuple[Any, Any]: ...


def strategy_config(strategy: str, base: EnvConfig) -> EnvConfig:
    """The environment configuration ``strategy`` is trained and backtested under (table above)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
    if strategy in ("hybrid_rl", "ensemble"):
        return base
    if strategy in ("pure_rl", "buy_and_hold"):
        # Buy and hold never reads its observation: without the forecast block it runs on a panel without
        # forecasts too (a walk-forward of baselines alone trains no forecaster); its fills are the same.
        return base.model_copy(
            update={"blocks": tuple(b for b in base.blocks if b != "forecast"), "confidence_scaling": False}
        )
    return base.model_copy(update={"confidence_scaling": False})


def buy_and_hold_policy(n_assets: int, max_position: float) -> Policy:
    """Equal weight: the constant action ``min((1 / N) / max_position, 1)`` per asset.

    ``max_position`` is the :class:`~trading_core.risk.limits.RiskLimits` one of the backtest (actions
    are fractions of it), so the target weights are ``1 / N`` each whenever ``1 / N <= max_position``
    (else ``max_position`` each). The engine trades back to these weights at every open (a
    constant-mix portfolio: small rebalancing costs), and the risk manager still applies (VaR
    scaling, drawdown breaker). Run it with confidence scaling off (:func:`strategy_config`).
    """
    if n_assets < 1 or not max_position > 0:
        raise ValueError(f"need n_assets >= 1 and max_position > 0, got {n_assets}, {max_position}")
    action = np.full(n_assets, min((1.0 / n_assets) / max_position, 1.0))
    return lambda obs, t: action.copy()


def forecaster_rule_policy(data: MarketData, allow_short: bool, max_position: float = 1.0) -> Policy:
    """The forecaster alone: per asset at bar ``t``, the class with the highest probability decides.

    * Buy: action ``+confidence * max_position``; Sell: ``-confidence * max_position`` when
      ``allow_short``, else 0 (flat); Hold: 0. Ties resolve Hold > Buy > Sell (``argmax`` order).
    * ``max_position`` is the rule's largest action (a fraction of the per-asset limit, in (0, 1]):
      at confidence 1 the weight is ``max_position * RiskLimits.max_position``.

    The forecast row ``t`` is known at the close of ``t`` (causal); run it with confidence scaling
    off (:func:`strategy_config`), since the rule already sizes by confidence.
    """
    if data.forecast is None:
        raise ValueError("the forecaster rule needs forecaster outputs in the market data")
    if not 0 < max_position <= 1:
        raise ValueError(f"max_position must be in (0, 1] (a fraction of the per-asset limit), got {max_position}")
    forecast = np.asarray(data.forecast, dtype=np.float64)
    cls = np.argmax(forecast[:, :, :3], axis=2)  # 0 hold, 1 buy, 2 sell
    side = np.where(cls == 1, 1.0, np.where(cls == 2, -1.0 if allow_short else 0.0, 0.0))
    actions = np.clip(side * np.clip(forecast[:, :, 3], 0.0, 1.0) * max_position, -1.0, 1.0)
    return lambda obs, t: actions[t].copy()


def agent_policy(agent: Predictor) -> Policy:
    """Any object with ``predict(obs, deterministic=True) -> (action, state)`` (SB3 agents, ``EnsembleAgent``)."""
    return lambda obs, t: np.asarray(agent.predict(obs, deterministic=True)[0], dtype=np.float64)


def flat_policy(n_assets: int) -> Policy:
    """Never trades (a reference: its P&L is exactly 0)."""
    return lambda obs, t: np.zeros(n_assets)
