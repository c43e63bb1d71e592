"""The execution kernel: one pure function books a rebalance of E portfolios over N symbols at one bar.

Given the books at the close of bar t (cash, shares, average entry prices, equity, peak), the target
weights decided at that close, and bar t+1's prices, :func:`execute`

1. fills at the **open of t+1**: trades to the weights of the equity valued at that open
   (``shares = w * equity_open / open``), paying commission + slippage and square-root impact
   (:func:`~trading_core.execution.costs.execution_costs`, with sigma and ADV known at t);
2. books the trade: cash pays the traded notional and the costs; the average entry price of each
   position adds in on the same side and restarts at the fill price on a flip (0 when flat);
3. marks to the **close of t+1** and writes the ledger: ``equity_{t+1} = equity_t + overnight P&L of
   the old position (open_{t+1} - close_t) + intraday P&L of the new one (close_{t+1} - open_{t+1}) -
   costs``, an independent sum that must equal cash + sum(shares x close) (:func:`unbalanced`).

The training environment and the backtest (:class:`~trading_core.rl.engine.PortfolioEngine`), the
paper broker (:mod:`trading_core.rollout.broker`) and the live decision service call this one function,
so a backtest, a paper account and a live account book the same trade with the same arithmetic (the
order of every floating-point operation included). It imports nothing above NumPy: every layer may use it.

Room for later: ``hold`` marks assets that keep their shares this bar (the paper broker's bar without
a decision uses it). A no-trade band or partial rebalancing toward the target (issue 21) is a rule
applied in :func:`target_shares`, the single place that turns weights into shares.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from trading_core.errors import TradingError
from trading_core.execution.costs import CostParams, execution_costs

__all__ = ["AccountingError", "Books", "Execution", "entry_prices", "execute", "target_shares", "unbalanced"]

LEDGER_ABS_TOLERANCE = 1e-6
"""Currency units by which cash + positions may differ from the ledger (plus the relative part)."""
LEDGER_REL_TOLERANCE = 1e-9
"""Relative difference allowed between cash + positions and the ledger (rounding of the two sums)."""


class AccountingError(TradingError):
    """Equity no longer equals cash + positions: a bug, never a market event."""


class Books(NamedTuple):
    """The books of E portfolios at the close of a bar (what the next :func:`execute` starts from)."""

    cash: np.ndarray
    """(E,) currency."""
    shares: np.ndarray
    """(E, N) signed shares held (negative = short)."""
    entry_price: np.ndarray
    """(E, N) average entry price of each position (0 when flat)."""
    equity: np.ndarray
    """(E,) cash + sum(shares x close) at that close."""
    peak: np.ndarray
    """(E,) highest equity so far."""


class Execution(NamedTuple):
    """One bar's fill, costs, new books and ledger terms, per portfolio (E) and symbol (N)."""

    price: np.ndarray
    """(E, N) or (N,) fill price, as given: the open of the bar."""
    equity_open: np.ndarray
    """(E,) equity valued at the open, before the trade (what target weights are fractions of)."""
    shares_before: np.ndarray
    """(E, N) shares before the fill."""
    trade: np.ndarray
    """(E, N) signed shares traded."""
    traded: np.ndarray
    """(E, N) traded notional |trade| x price (>= 0)."""
    fees: np.ndarray
    """(E, N) commission + slippage paid."""
    impact: np.ndarray
    """(E, N) square-root impact paid."""
    fees_total: np.ndarray
    """(E,) fees summed over symbols."""
    impact_total: np.ndarray
    """(E,) impact summed over symbols."""
    books: Books
    """The books at the close of the bar: cash after the fill, shares, entry prices, marked equity, peak."""
    equity_prev: np.ndarray
    """(E,) equity at the previous close (the ledger's starting point)."""
    overnight_pnl: np.ndarray
    """(E,) sum of shares_before x (open - previous close)."""
    intraday_pnl: np.ndarray
    """(E,) sum of shares x (close - open)."""
    ledger: np.ndarray
    """(E,) equity_prev + overnight_pnl + intraday_pnl - fees_total - impact_total."""
    portfolio_return: np.ndarray
    """(E,) equity / equity_prev - 1, net of every cost."""
    drawdown: np.ndarray
    """(E,) 1 - equity / peak (>= 0)."""

    @property
    def costs(self) -> np.ndarray:
        """(E,) fees + impact paid at the open."""
        return self.fees_total + self.impact_total


def target_shares(
    weights: np.ndarray, equity_open: np.ndarray, price: np.ndarray, shares: np.ndarray, hold: np.ndarray | None
) -> np.ndarray:
    """(E, N) shares to hold after the fill: ``weights`` of ``equity_open`` at ``price``, except where
    ``hold`` is True (those keep ``shares``). A no-trade band or partial rebalancing belongs here."""
    target = weights * equity_open[:, None] / price
    if hold is not None:
        target = np.where(hold, shares, target)
    return target


def entry_prices(
    old: np.ndarray, target: np.ndarray, entry: np.ndarray, trade: np.ndarray, price: np.ndarray
) -> np.ndarray:
    """Average entry price after trading ``old`` -> ``target`` shares at ``price``: adds average in, reductions
    keep it, flips restart at the fill price, 0 when flat (for the unrealised P&L of a position)."""
    same_side = np.sign(target) == np.sign(old)
    growing = same_side & (np.abs(target) > np.abs(old))
    blended = np.divide(old * entry + trade * price, target, out=np.zeros_like(target), where=target != 0)
    return np.where(target == 0, 0.0, np.where(~same_side, price, np.where(growing, blended, entry)))


def execute(
    books: Books,
    weights: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    prev_close: np.ndarray,
    sigma: np.ndarray,
    adv_value: np.ndarray,
    params: CostParams,
    *,
    hold: np.ndarray | None = None,
) -> Execution:
    """Fill ``weights`` (E, N) at ``open_``, mark at ``close`` and write the ledger from ``prev_close``.

    :param books: the books at the close of the decision bar (``prev_close`` is that close; where a
        portfolio holds nothing yet it may be 0).
    :param weights: target weights, fractions of the equity at the open (after the risk manager).
    :param open_: (E, N) or (N,) fill prices (> 0); ``close``: the same bar's closes (> 0).
    :param sigma: daily volatility and ``adv_value`` average daily dollar volume (> 0) known at the decision.
    :param params: cost_bps, slippage_bps, impact_coef.
    :param hold: (E, N) bool, assets whose shares stay as they are (None: every asset trades to its weight).
    :returns: the fill, costs, new books and ledger terms; check :func:`unbalanced` before keeping the books.
    """
    old = books.shares
    equity_open = books.cash + (old * open_).sum(axis=1)
    target = target_shares(weights, equity_open, open_, old, hold)
    trade = target - old
    traded = np.abs(trade) * open_
    fees, impact = execution_costs(traded, sigma, adv_value, params)
    fees_total = fees.sum(axis=1)
    impact_total = impact.sum(axis=1)
    cash = books.cash - (trade * open_).sum(axis=1) - fees_total - impact_total
    entry = entry_prices(old, target, books.entry_price, trade, open_)

    equity = cash + (target * close).sum(axis=1)
    overnight = (old * (open_ - prev_close)).sum(axis=1)
    intraday = (target * (close - open_)).sum(axis=1)
    ledger = books.equity + overnight + intraday - fees_total - impact_total
    peak = np.maximum(books.peak, equity)
    return Execution(
        price=open_,
        equity_open=equity_open,
        shares_before=old,
        trade=trade,
        traded=traded,
        fees=fees,
        impact=impact,
        fees_total=fees_total,
        impact_total=impact_total,
        books=Books(cash, target, entry, equity, peak),
        equity_prev=books.equity,
        overnight_pnl=overnight,
        intraday_pnl=intraday,
        ledger=ledger,
        portfolio_return=equity / books.equity - 1.0,
        drawdown=1.0 - equity / peak,
    )


def unbalanced(execution: Execution) -> np.ndarray:
    """(E,) True where cash + sum(shares x close) differs from the ledger (or either is not a number):
    the caller raises :class:`AccountingError` naming the portfolio and bar, and keeps its old books."""
    equity, ledger = execution.books.equity, execution.ledger
    ok = np.abs(equity - ledger) <= LEDGER_ABS_TOLERANCE + LEDGER_REL_TOLERANCE * np.abs(ledger)
    return ~ok
