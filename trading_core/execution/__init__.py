"""Execution: how a decided rebalance becomes fills, costs and books, the same for every account.

* :mod:`~trading_core.execution.costs`: the cost model (commission + slippage, square-root impact) and the
  causal volatility / dollar-volume inputs it needs;
* :mod:`~trading_core.execution.kernel`: :func:`execute`, the pure NumPy fill -> book -> mark -> ledger step
  of E portfolios, called by the training env and backtest, the paper broker and the live service.

This package sits below ``rl``, ``backtest``, ``rollout`` and ``serving`` and imports only NumPy and
:mod:`trading_core.errors`.
"""

from trading_core.execution.costs import CostParams, execution_costs, rolling_sigma_adv
from trading_core.execution.kernel import (
    AccountingError,
    Books,
    Execution,
    entry_prices,
    execute,
    target_shares,
    unbalanced,
)

__all__ = [
    "AccountingError",
    "Books",
    "CostParams",
    "Execution",
    "entry_prices",
    "execute",
    "execution_costs",
    "rolling_sigma_adv",
    "target_shares",
    "unbalanced",
]
