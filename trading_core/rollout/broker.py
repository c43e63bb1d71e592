"""The paper-trading broker of the A/B rollout: the backtest's execution kernel, booked in the app DB.

One account per (A/B test, arm). Every bar the DAG

1. :func:`mark_bar` (bar t+1): fills the decision pending from the close of t at the **open of t+1** and marks
   to the close of t+1 through the execution kernel (:func:`trading_core.execution.execute`, the very call
   :meth:`trading_core.rl.engine.PortfolioEngine.step` makes): shares = w * equity_open / open, commission +
   slippage and square-root impact with the sigma and ADV known at t, average entry prices, and the ledger
   check (equity = cash + sum(shares x close) = previous equity + overnight P&L of the old position +
   intraday P&L of the new one - costs, else :class:`~trading_core.execution.AccountingError`);
2. asks the policy for the weights at the close of t+1 and :func:`record_decision` books them.

So a paper account and a backtest fed the same weights and prices book the same fills, entry prices and
ledger, bit for bit (tests/test_rollout_broker.py). Each step is idempotent (a retried Airflow task books
nothing twice). The books of a bar live on its ``paper_equity`` row (cash, shares, entry prices, the closes
they were marked at), so the next bar starts from the DB alone.

This module is the broker's public face: booking lives in :mod:`~trading_core.rollout.booking`, the ledger
queries in :mod:`~trading_core.rollout.ledger`.
"""

from __future__ import annotations

from trading_core.execution import AccountingError
from trading_core.rollout.booking import ARMS, EXECUTION_FIELDS, mark_bar, open_account, record_decision
from trading_core.rollout.ledger import (
    AccountNotFound,
    AccountState,
    BarLike,
    EquityRow,
    account_state,
    count_rows,
    decisions,
    equity_curve,
    fills,
)

__all__ = [
    "ARMS",
    "EXECUTION_FIELDS",
    "AccountNotFound",
    "AccountState",
    "AccountingError",
    "BarLike",
    "EquityRow",
    "account_state",
    "count_rows",
    "decisions",
    "equity_curve",
    "fills",
    "mark_bar",
    "open_account",
    "record_decision",
]
