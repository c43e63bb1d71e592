"""From the folds' back-tests to the verdict: the table, the chained out-of-sample curves, and the
selected strategy with its deflated Sharpe ratio.

The selected strategy is the one with the best mean Sharpe ratio; the deflated Sharpe ratio
discounts it for the selection (every other strategy's and seed's Sharpe ratio is a trial).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from trading_core.backtest.engine import BacktestResult, concatenate
from trading_core.backtest.fold_strategies import FoldResult
from trading_core.backtest.metrics import OVERALL, deflated_sharpe, performance, return_moments


def tabulate(results: Sequence[FoldResult]) -> tuple[pd.DataFrame, dict[tuple[str, int], BacktestResult]]:
    """The table (one row per strategy x seed x fold x cost multiplier: the back-test metrics of the
    test window, then one row per strategy x seed x cost multiplier with ``fold`` = ``OVERALL``: the
    metrics of the folds' test windows chained) and, per (strategy, seed), the chained curve at 1x costs."""
    rows = []
    windows: dict[tuple[str, int, float], list[BacktestResult]] = {}
    for r in results:
        metrics = {k: float(v) for k, v in performance(r.result).items()}
        rows.append({"strategy": r.strategy, "seed": r.seed, "fold": r.fold, "cost_multiplier": r.cost_multiplier,
                     **metrics})  # fmt: skip
        windows.setdefault((r.strategy, r.seed, r.cost_multiplier), []).append(r.result)
    overall: dict[tuple[str, int], BacktestResult] = {}
    for (strategy, seed, mult), curves in windows.items():
        chained = concatenate(curves)
        rows.append({"strategy": strategy, "seed": seed, "fold": OVERALL, "cost_multiplier": mult,
                     **{k: float(v) for k, v in performance(chained).items()}})  # fmt: skip
        if mult == 1.0:
            overall[(strategy, seed)] = chained
    return pd.DataFrame(rows), overall


def select_and_deflate(
    summary: pd.DataFrame, overall: Mapping[tuple[str, int], BacktestResult], seed: int
) -> tuple[str, float]:
    """The strategy with the best mean Sharpe (over seeds, of the chained out-of-sample curves) and its
    deflated Sharpe ratio on seed ``seed``'s chained curve. The trials are every (strategy, seed)
    curve's per-bar Sharpe ratio: every one of them was a candidate for selection."""
    selected = str(summary.loc[summary["sharpe_mean"].idxmax(), "strategy"])
    trials = [return_moments(r.returns)[0] for r in overall.values()]
    chosen = overall[(selected, seed)].returns
    sharpe, skew, kurtosis = return_moments(chosen)
    return selected, deflated_sharpe(sharpe, len(chosen), skew, kurtosis, trials)
