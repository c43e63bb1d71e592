"""Performance decay: has a live (paper) policy fallen behind the figures it was validated with?

:func:`performance_decay` looks at the last ``window`` daily returns only (a rolling check: old good
days cannot hide a recent slump) and applies two rules:

* **Sharpe drop**: annualised Sharpe ``mean / std(ddof=1) * sqrt(252)`` over the window is more than
  ``max_sharpe_drop`` below the validation (walk-forward) Sharpe. Skipped when no validation Sharpe is
  known: then only the hit-rate rule applies, and the reasons say so.
* **Hit rate**: the share of positive days among the days with a non-zero return (flat days, out of
  the market, count neither way) is below ``min_hit_rate``.

Either rule decays the policy. With fewer than ``window`` returns nothing is decided (not decayed,
the reason says how many days there are): a 63-day Sharpe has a standard error of about
``sqrt(252 / 63) = 2`` on its own, so judging fewer days would trigger retraining on noise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_core.errors import ConfigError, DataQualityError

TRADING_DAYS = 252
"""Annualisation: Sharpe = daily mean / daily std * sqrt(TRADING_DAYS)."""


@dataclass(frozen=True)
class DecayResult:
    window: int
    sharpe: float | None
    """Annualised Sharpe of the last ``window`` returns; None with too few days or zero volatility."""
    hit_rate: float | None
    """Share of positive days among the non-zero days of the window; None when there are none."""
    validation_sharpe: float | None
    sharpe_drop: float | None
    """``validation_sharpe - sharpe`` (positive: worse than validated)."""
    decayed: bool
    reasons: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def performance_decay(
    daily_returns: pd.Series,
    *,
    validation_sharpe: float | None,
    window: int = 63,
    max_sharpe_drop: float = 1.0,
    min_hit_rate: float = 0.45,
) -> DecayResult:
    """The decay verdict on the last ``window`` of ``daily_returns`` (simple returns, in time order;
    a DatetimeIndex is sorted first; NaN days are dropped and counted in the reasons).

    :raises ConfigError: a bad ``window``, ``max_sharpe_drop``, ``min_hit_rate`` or ``validation_sharpe``.
    :raises DataQualityError: an infinite return.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ConfigError(f"window must be an int >= 2, got {window!r}")
    if not max_sharpe_drop >= 0:
        raise ConfigError(f"max_sharpe_drop must be >= 0, got {max_sharpe_drop!r}")
    if not 0 <= min_hit_rate <= 1:
        raise ConfigError(f"min_hit_rate must be in [0, 1], got {min_hit_rate!r}")
    if validation_sharpe is not None and not math.isfinite(validation_sharpe):
        raise ConfigError(f"validation_sharpe must be finite or None, got {validation_sharpe!r}")
    returns = pd.Series(daily_returns, dtype=np.float64)
    if isinstance(returns.index, pd.DatetimeIndex):
        returns = returns.sort_index()
    if np.isinf(returns.to_numpy()).any():
        where = returns.index[np.isinf(returns.to_numpy())][0]
        raise DataQualityError(f"daily return at {where} is infinite")
    reasons: list[str] = []
    n_missing = int(returns.isna().sum())
    returns = returns.dropna()
    if n_missing:
        reasons.append(f"{n_missing} day(s) without a return (NaN) ignored")
    if len(returns) < window:
        reasons.append(f"not enough paper-trading days ({len(returns)} < {window}): no decay verdict yet")
        return DecayResult(window, None, None, validation_sharpe, None, False, reasons)

    last = returns.to_numpy()[-window:]
    std = float(last.std(ddof=1))
    sharpe = float(last.mean() / std * math.sqrt(TRADING_DAYS)) if std > 0 else None
    moved = last[last != 0]
    hit_rate = float((moved > 0).mean()) if len(moved) else None
    decayed = False

    drop = None
    if validation_sharpe is None:
        reasons.append("no validation Sharpe: only the hit-rate rule applies")
    elif sharpe is None:
        reasons.append(f"Sharpe undefined over the last {window} days (zero volatility): Sharpe rule not applied")
    else:
        drop = validation_sharpe - sharpe
        bad = drop > max_sharpe_drop
        decayed |= bad
        reasons.append(
            f"Sharpe drop {drop:.2f} {'>' if bad else '<='} {max_sharpe_drop:.2f}: Sharpe {sharpe:.2f} over the "
            f"last {window} days vs {validation_sharpe:.2f} in validation" + (": decayed" if bad else "")
        )

    if hit_rate is None:
        reasons.append(f"no day with a non-zero return in the last {window}: hit-rate rule not applied")
    else:
        bad = hit_rate < min_hit_rate
        decayed |= bad
        reasons.append(
            f"hit rate {hit_rate:.3f} {'<' if bad else '>='} {min_hit_rate:.3f} ({int((moved > 0).sum())} of "
            f"{len(moved)} non-zero days positive)" + (": decayed" if bad else "")
        )
    return DecayResult(window, sharpe, hit_rate, validation_sharpe, drop, decayed, reasons)
