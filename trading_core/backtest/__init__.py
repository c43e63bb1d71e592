"""Walk-forward validation: folds, the backtest engine (the training environment's execution),
baseline strategies, metrics with confidence intervals and the deflated Sharpe ratio, reports."""

from trading_core.backtest.engine import BacktestResult, Policy, concatenate, run_backtest
from trading_core.backtest.folds import Fold, make_folds
from trading_core.backtest.metrics import (
    METRICS,
    OVERALL,
    deflated_sharpe,
    mean_ci,
    performance,
    return_moments,
    summarize,
)
from trading_core.backtest.strategies import (
    STRATEGIES,
    agent_policy,
    buy_and_hold_policy,
    flat_policy,
    forecaster_rule_policy,
    strategy_config,
)

__all__ = [
    "METRICS",
    "OVERALL",
    "STRATEGIES",
    "BacktestResult",
    "Fold",
    "Policy",
    "agent_policy",
    "buy_and_hold_policy",
    "concatenate",
    "deflated_sharpe",
    "flat_policy",
    "forecaster_rule_policy",
    "make_folds",
    "mean_ci",
    "performance",
    "return_moments",
    "run_backtest",
    "strategy_config",
    "summarize",
]
