"""Monitoring of a live policy: feature and prediction drift (Evidently), performance decay, and the
``drift_checks`` table that records each check and the retraining it triggered.

* :func:`feature_drift`, :func:`prediction_drift` (:mod:`.drift`): Evidently's ``DataDriftPreset`` with
  a pinned stat test (K-S p-value), per-column results and a dataset verdict ``share >= drift_share``;
  the module docstring records what Evidently would pick on its own and the measured false-alarm rates
  (rolling features are autocorrelated: K-S over-rejects on them).
* :func:`performance_decay` (:mod:`.decay`): rolling Sharpe and hit rate of paper returns against the
  validation Sharpe.
* :func:`record_check`, :func:`set_triggered_run`, :func:`list_checks`, :func:`last_trigger`
  (:mod:`.store`): the app DB side, including the cooldown's "last triggered run".

Evidently is imported only when a drift report runs, so importing this package stays light.
"""

from trading_core.monitoring.decay import DecayResult, performance_decay
from trading_core.monitoring.drift import ColumnDrift, DriftResult, feature_drift, prediction_drift
from trading_core.monitoring.store import DECISIONS, last_trigger, list_checks, record_check, set_triggered_run

__all__ = [
    "DECISIONS",
    "ColumnDrift",
    "DecayResult",
    "DriftResult",
    "feature_drift",
    "last_trigger",
    "list_checks",
    "performance_decay",
    "prediction_drift",
    "record_check",
    "set_triggered_run",
]
