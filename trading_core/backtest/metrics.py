"""Performance metrics of a backtest, confidence intervals over seeds, and the deflated Sharpe ratio.

Conventions (``r`` = net per-bar returns, ``P`` = bars per year, default 252; see docs/backtest.md):

* total_return = E_T / E_0 - 1; annual_return = (1 + total_return)^(P / T) - 1;
* volatility = std(r, ddof=1) * sqrt(P); sharpe = mean(r) / std(r, ddof=1) * sqrt(P) (risk-free 0;
  0 when the std is 0);
* sortino = mean(r) / DD * sqrt(P) with the downside deviation DD = sqrt(mean(min(r, 0)^2)) over
  all bars (target 0); NaN when DD = 0;
* max_drawdown = max_t (1 - E_t / max_{s<=t} E_s) (a positive fraction); calmar = annual_return /
  max_drawdown (NaN when there is no drawdown);
* turnover = mean traded notional / equity per bar; exposure = mean gross sum(|w|) after the fill;
  hit_rate = share of bars with r > 0 among bars with exposure > 0 (NaN if never exposed);
  cost_paid = sum of costs / initial equity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from trading_core.backtest.engine import BacktestResult

METRICS: tuple[str, ...] = (
    "total_return", "annual_return", "volatility", "sharpe", "sortino", "max_drawdown", "calmar",
    "turnover", "hit_rate", "exposure", "cost_paid",
)  # fmt: skip
EULER_GAMMA = 0.5772156649015329
OVERALL = -1
"""The ``fold`` value of a table row holding the metrics of the concatenated out-of-sample curve."""


def max_drawdown(equity: np.ndarray) -> float:
    eq = np.asarray(equity, dtype=np.float64)
    return float((1.0 - eq / np.maximum.accumulate(eq)).max()) if len(eq) else 0.0


def performance(result: BacktestResult, periods_per_year: int = 252) -> dict[str, float]:
    """The metrics of :data:`METRICS` for one backtest (module docstring), plus ``steps``."""
    r = np.asarray(result.returns, dtype=np.float64)
    eq = np.asarray(result.equity, dtype=np.float64)
    n = len(r)
    nan = float("nan")
    total = float(eq[-1] / eq[0] - 1.0)
    annual = (1.0 + total) ** (periods_per_year / n) - 1.0 if n and total > -1.0 else (-1.0 if n else nan)
    std = float(r.std(ddof=1)) if n > 1 else 0.0
    mean = float(r.mean()) if n else nan
    root = math.sqrt(periods_per_year)
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    mdd = max_drawdown(eq)
    exposed = np.asarray(result.exposure) > 0
    return {
        "total_return": total,
        "annual_return": float(annual),
        "volatility": std * root,
        "sharpe": mean / std * root if std > 0 else 0.0,
        "sortino": mean / downside * root if downside > 0 else nan,
        "max_drawdown": mdd,
        "calmar": float(annual) / mdd if mdd > 0 else nan,
        "turnover": float(np.mean(result.turnover)) if n else nan,
        "hit_rate": float((r[exposed] > 0).mean()) if exposed.any() else nan,
        "exposure": float(np.mean(result.exposure)) if n else nan,
        "cost_paid": float(np.sum(result.costs) / eq[0]),
        "steps": float(n),
    }


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval mean +- t_{(1+level)/2, n-1} * s / sqrt(n).

    NaN values are dropped first; one value gives (v, nan, nan), none gives (nan, nan, nan).
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def expected_max_sharpe(trial_sharpes: Sequence[float]) -> float:
    """SR_0 = sqrt(V[SR_n]) * ((1 - g) Z^{-1}(1 - 1/N) + g Z^{-1}(1 - 1/(N e))), g = Euler-Mascheroni:
    the expected maximum Sharpe of N unskilled trials (0 for one trial or no dispersion)."""
    s = np.asarray(trial_sharpes, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = len(s)
    if n < 2:
        return 0.0
    sd = float(s.std(ddof=1))
    if sd == 0:
        return 0.0
    z = stats.norm.ppf
    return sd * ((1.0 - EULER_GAMMA) * float(z(1.0 - 1.0 / n)) + EULER_GAMMA * float(z(1.0 - 1.0 / (n * math.e))))


def deflated_sharpe(sharpe: float, n_bars: int, skew: float, kurtosis: float, trial_sharpes: Sequence[float]) -> float:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado 2014): the probability that the selected
    strategy's true Sharpe exceeds the best of ``len(trial_sharpes)`` unskilled trials.

    DSR = Phi((SR - SR_0) sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2)) with SR_0 from
    :func:`expected_max_sharpe`. Every Sharpe (``sharpe`` and ``trial_sharpes``) is **per bar**, not
    annualised (divide an annualised one by sqrt(252)); ``n_bars`` = T, the number of returns;
    ``skew`` and ``kurtosis`` of the selected strategy's returns, kurtosis *not* excess (3 = normal).
    """
    if n_bars < 2:
        return float("nan")
    sr0 = expected_max_sharpe(trial_sharpes)
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    z = (sharpe - sr0) * math.sqrt(n_bars - 1) / math.sqrt(max(var, 1e-12))
    return float(stats.norm.cdf(z))


def return_moments(returns: np.ndarray) -> tuple[float, float, float]:
    """(per-bar Sharpe, skew, kurtosis (not excess)) of a return series, the inputs of :func:`deflated_sharpe`."""
    r = np.asarray(returns, dtype=np.float64)
    std = float(r.std(ddof=1)) if len(r) > 1 else 0.0
    if std == 0:
        return 0.0, 0.0, 3.0
    return float(r.mean()) / std, float(stats.skew(r)), float(stats.kurtosis(r, fisher=False))


def summarize(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per strategy: mean and ``level`` Student-t interval of every metric column.

    ``table`` has one row per (strategy, seed, fold) and a column per metric. For a strategy that has
    rows with ``fold == OVERALL`` (the metrics of its concatenated out-of-sample curve), the
    interval is over **seeds** of those rows (``basis = 'overall'``); otherwise over every seed x fold
    row (``basis = 'folds'``). Columns: ``strategy, basis, n, <metric>_mean, <metric>_ci_low,
    <metric>_ci_high``.
    """
    for col in ("strategy", "fold"):
        if col not in table.columns:
            raise ValueError(f"the results table needs a {col!r} column, got {list(table.columns)}")
    metrics = [c for c in table.columns if c not in ("strategy", "seed", "fold") and is_numeric(table[c])]
    rows = []
    for strategy, group in table.groupby("strategy", sort=False):
        overall = group[group["fold"] == OVERALL]
        basis, rows_used = ("overall", overall) if len(overall) else ("folds", group)
        row: dict[str, object] = {"strategy": strategy, "basis": basis, "n": len(rows_used)}
        for m in metrics:
            mean, low, high = mean_ci(rows_used[m].to_numpy(dtype=np.float64), level)
            row[f"{m}_mean"], row[f"{m}_ci_low"], row[f"{m}_ci_high"] = mean, low, high
        rows.append(row)
    return pd.DataFrame(rows)


def is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column)) and not pd.api.types.is_bool_dtype(column)
