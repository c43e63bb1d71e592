"""Rule ``implausible_value``: magnitudes no market prints, on every price field and the volume.

Two checks, thresholds in :class:`~trading_core.data.request.ValidationPolicy`:

* :func:`outside_bounds`, per row: a positive price outside ``[min_price, max_price]``, a volume
  over ``max_volume`` (a 1e30 high, a 1e-30 low, a 1e25 volume);
* :func:`implausible_vs_history`, per symbol in time order: a price field far from the median of
  the symbol's previous closes (``max_price_ratio``), open/high/low far from the same bar's close
  (``max_intrabar_ratio``, which needs no history), a volume far above the median of the previous
  positive volumes (``max_volume_ratio``). Only earlier bars are compared with: never the bar itself.

Each returns the reason (field and values) for every row it condemns, indexed like its input.
"""

from __future__ import annotations

import pandas as pd

from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import PRICE_COLUMNS


def outside_bounds(numeric: pd.DataFrame, policy: ValidationPolicy) -> pd.Series:
    """``implausible_value``: a positive price outside [min_price, max_price], a volume over max_volume."""
    prices = numeric[list(PRICE_COLUMNS)]
    low, high = (prices > 0) & (prices < policy.min_price), prices > policy.max_price
    loud = numeric["volume"] > policy.max_volume
    hit = low.any(axis=1) | high.any(axis=1) | loud
    if not hit.any():
        return pd.Series(dtype="object")
    reasons = []
    for i in hit[hit].index:
        lo, hi = policy.min_price, policy.max_price
        parts = [f"{c} {prices.at[i, c]:.6g} < min_price {lo:.3g}" for c in PRICE_COLUMNS if low.at[i, c]]
        parts += [f"{c} {prices.at[i, c]:.6g} > max_price {hi:.3g}" for c in PRICE_COLUMNS if high.at[i, c]]
        if loud.at[i]:
            parts.append(f"volume {numeric.at[i, 'volume']:.6g} > max_volume {policy.max_volume:.3g}")
        reasons.append("; ".join(parts) + " (absolute bounds)")
    return pd.Series(reasons, index=hit[hit].index, dtype="object")


def _prior_median(values: pd.Series, by: pd.Series, window: int, min_periods: int) -> pd.Series:
    """Per symbol, the median of the previous ``window`` values (NaN skipped); never the current one.

    ``values`` must be sorted by symbol. One rolling pass over the whole column, then the first
    ``window`` rows of each symbol (whose windows reach into the previous symbol) recomputed alone.
    """
    position = by.groupby(by, sort=False).cumcount().to_numpy()
    prev = values.shift(1).where(position > 0)
    med = prev.rolling(window, min_periods=min_periods).median()
    head = position < window - 1
    if head.any():
        part = prev[head].groupby(by[head], sort=False).rolling(window, min_periods=min_periods).median()
        med[head] = part.reset_index(level=0, drop=True).reindex(prev.index[head]).to_numpy()
    return med


def implausible_vs_history(ordered: pd.DataFrame, policy: ValidationPolicy) -> pd.Series:
    """``implausible_value`` relative to the bar's own close and to the symbol's recent history.

    ``ordered``: the rows still standing, sorted by symbol and timestamp. Price fields are compared
    with the median of the previous ``magnitude_window`` closes (``max_price_ratio``), open/high/low
    also with the same bar's close (``max_intrabar_ratio``), the volume with the median of the
    previous positive volumes (``max_volume_ratio``).
    """
    if ordered.empty:
        return pd.Series(dtype="object")
    by = ordered["symbol"]
    window, needed = policy.magnitude_window, policy.magnitude_min_history
    ref = _prior_median(ordered["close"], by, window, needed)
    ref_volume = _prior_median(ordered["volume"].where(ordered["volume"] > 0), by, window, needed)
    limit, intrabar, vlimit = policy.max_price_ratio, policy.max_intrabar_ratio, policy.max_volume_ratio
    history = ordered[list(PRICE_COLUMNS)].div(ref, axis=0)
    own = ordered[["open", "high", "low"]].div(ordered["close"], axis=0)
    volume = ordered["volume"] / ref_volume
    far = ((history > limit) | (history < 1 / limit)).fillna(False)
    torn = ((own > intrabar) | (own < 1 / intrabar)).fillna(False)
    loud = (volume > vlimit).fillna(False)
    hit = far.any(axis=1) | torn.any(axis=1) | loud
    if not hit.any():
        return pd.Series(dtype="object")
    reasons = []
    for i in hit[hit].index:
        row = ordered.loc[i]
        parts = [
            f"{c} {row[c]:.6g} is {history.at[i, c]:.3g}x the median {ref[i]:.6g} of the previous {window} closes "
            f"(limit {limit:g}x)"
            for c in PRICE_COLUMNS
            if far.at[i, c]
        ]
        parts += [
            f"{c} {row[c]:.6g} is {own.at[i, c]:.3g}x the bar's close {row['close']:.6g} (limit {intrabar:g}x)"
            for c in ("open", "high", "low")
            if torn.at[i, c]
        ]
        if loud[i]:
            parts.append(
                f"volume {row['volume']:.6g} is {volume[i]:.3g}x the median {ref_volume[i]:.6g} of the previous "
                f"{window} positive volumes (limit {vlimit:g}x)"
            )
        reasons.append("; ".join(parts))
    return pd.Series(reasons, index=hit[hit].index, dtype="object")
