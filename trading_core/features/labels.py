"""Hold/Buy/Sell labels from the forward return, with volatility-scaled thresholds.

The rule (also in :class:`~trading_core.features.config.LabelConfig`)::

    entry_t     = open_{t+1} (entry='next_open')  or  close_t (entry='close')
    fwd_ret_t   = ln(close_{t+h} / entry_t)
    sigma_t     = std(ln close_s / close_{s-1}, s = t-vol_window+1 .. t)     # known at t
    threshold_t = k * sigma_t * sqrt(h)
    label_t     = Buy (1) if fwd_ret_t > threshold_t, Sell (2) if fwd_ret_t < -threshold_t, else Hold (0)

The label is the only place that reads bars after t. It lives in its own columns (``label``,
``fwd_ret``, ``label_threshold``, ``label_end``), never among the features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trading_core.features.config import LABEL_NAMES, LabelConfig
from trading_core.features.indicators import log_returns
from trading_core.features.panel import Panel

LABEL_COLUMNS: tuple[str, ...] = ("label", "fwd_ret", "label_threshold", "label_end")
HOLD, BUY, SELL = 0, 1, 2
NO_LABEL = -1


@dataclass(frozen=True)
class Labels:
    label: np.ndarray
    """int8 class per row; -1 where the forward window leaves the data."""
    fwd_ret: np.ndarray
    threshold: np.ndarray
    end: np.ndarray
    """Timestamp of the bar that closes the label window (NaT when unlabelled): purging uses it."""


def make_labels(panel: Panel, config: LabelConfig) -> Labels:
    h = config.horizon
    entry = panel.lead(panel.open, 1) if config.entry == "next_open" else panel.close
    fwd_ret = np.log(panel.lead(panel.close, h)) - np.log(entry)
    sigma = panel.rolling(log_returns(panel), config.vol_window, "std")
    threshold = config.threshold_k * sigma * np.sqrt(h)
    label = np.full(len(panel), NO_LABEL, dtype=np.int8)
    known = np.isfinite(fwd_ret) & np.isfinite(threshold)
    label[known] = HOLD
    label[known & (fwd_ret > threshold)] = BUY
    label[known & (fwd_ret < -threshold)] = SELL
    end_pos = np.arange(len(panel)) + h
    end = np.full(len(panel), np.datetime64("NaT"), dtype="datetime64[ns]")
    end[known] = panel.timestamp[end_pos[known]]
    return Labels(label=label, fwd_ret=np.where(known, fwd_ret, np.nan), threshold=threshold, end=end)


def class_balance(labels: np.ndarray) -> dict[str, float | int | str]:
    """Counts and shares of each class among labelled rows, and the majority-class rate: the
    accuracy of always predicting the most frequent class, which is the baseline to beat."""
    known = labels[labels >= 0]
    total = int(len(known))
    counts = {name: int((known == i).sum()) for i, name in enumerate(LABEL_NAMES)}
    shares = {f"{name}_share": (counts[name] / total if total else float("nan")) for name in LABEL_NAMES}
    majority = max(counts, key=lambda k: counts[k]) if total else None
    return {
        "labelled": total,
        **counts,
        **shares,
        "majority_class": majority or "",
        "majority_rate": (counts[majority] / total) if majority else float("nan"),
    }
