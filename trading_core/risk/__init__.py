"""Risk management: position and gross limits, VaR limit, drawdown circuit breaker, confidence scaling.

The same :class:`RiskManager` (configured by one :class:`RiskLimits`) adjusts or halts every action
in training, the backtest and the deployed policy (:meth:`RiskManager.validate_batch`, through the
portfolio engine's ``decide``); :meth:`RiskManager.validate_action` is one portfolio with reasons in
words. See docs/risk.md.
"""

from trading_core.risk.limits import VAR_METHODS, RiskLimits
from trading_core.risk.manager import (
    ADJUSTED,
    APPROVED,
    DECISION_NAMES,
    HALTED,
    REASON_COOLDOWN,
    REASON_DRAWDOWN_HALT,
    REASON_GROSS,
    REASON_NAMES,
    REASON_POSITION,
    REASON_SHORT,
    REASON_VAR,
    BatchDecision,
    PortfolioState,
    RiskInputs,
    RiskManager,
    describe_reasons,
)
from trading_core.risk.scaling import confidence_scale
from trading_core.risk.var import ReturnsHistory, normal_quantile

__all__ = [
    "ADJUSTED",
    "APPROVED",
    "DECISION_NAMES",
    "HALTED",
    "REASON_COOLDOWN",
    "REASON_DRAWDOWN_HALT",
    "REASON_GROSS",
    "REASON_NAMES",
    "REASON_POSITION",
    "REASON_SHORT",
    "REASON_VAR",
    "VAR_METHODS",
    "BatchDecision",
    "PortfolioState",
    "ReturnsHistory",
    "RiskInputs",
    "RiskLimits",
    "RiskManager",
    "confidence_scale",
    "normal_quantile",
    "describe_reasons",
]
