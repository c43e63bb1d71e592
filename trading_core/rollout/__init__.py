"""The A/B rollout of a challenger against the champion, in paper trading.

* :mod:`~trading_core.rollout.broker`: the paper-trading broker, the backtest's execution kernel (next-open
  fills, costs, square-root impact, ledger check: :mod:`trading_core.execution`) booked in the app DB, one
  account per arm; booking in :mod:`~trading_core.rollout.booking`, ledger queries in
  :mod:`~trading_core.rollout.ledger`;
* ``ab``: the A/B allocation of capital and bars between champion and challenger (added by the lead);
* :mod:`~trading_core.rollout.sequential`: the decision rule, an always-valid mSPRT on the paired daily
  return differences with a minimum and maximum sample and a drawdown guard: promote, roll back or wait.
"""

from trading_core.rollout.broker import (
    ARMS,
    AccountingError,
    AccountNotFound,
    AccountState,
    EquityRow,
    account_state,
    count_rows,
    decisions,
    equity_curve,
    fills,
    mark_bar,
    open_account,
    record_decision,
)
from trading_core.rollout.sequential import (
    SequentialConfig,
    SequentialResult,
    decide,
    msprt_log_lr,
    running_log_lr,
)

__all__ = [
    "ARMS",
    "AccountNotFound",
    "AccountState",
    "AccountingError",
    "EquityRow",
    "SequentialConfig",
    "SequentialResult",
    "account_state",
    "count_rows",
    "decide",
    "decisions",
    "equity_curve",
    "fills",
    "mark_bar",
    "msprt_log_lr",
    "open_account",
    "record_decision",
    "running_log_lr",
]
