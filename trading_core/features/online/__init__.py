"""Online (incremental) features: the batch catalogue of ``compute_features``, one bar time at a time.

:class:`FeatureState` holds, for a fixed sorted universe, the rolling state of every feature of an
``IndicatorConfig`` (all four groups, the cross-asset ones and the TA-Lib ones). ``update`` takes the
bars of one bar time (:class:`BarSlice`) and returns the features at that time for every symbol,
at a cost of O(window) per symbol, vectorised over symbols; nothing re-reads the history.

The rules, so that the numbers are the batch's (``docs/features-online.md`` has the details):

* **Same numbers.** Replaying a history bar time by bar time gives, for every row, what
  ``compute_features`` gives on that history: bit for bit for every feature, including the recursive
  TA-Lib ones (the recursion is continued from the symbol's first bar, exactly as TA-Lib runs it,
  fused multiply-adds included), except turbulence, whose Gram/covariance products the batch forms
  in BLAS calls on blocks of other shapes (equal within float reassociation, ~1e-14 relative on the
  S&P 500 file).
* **A symbol without a bar at a bar time** is not updated and gets a NaN row (``present`` is False):
  the batch has no row for it either, and computes every per-symbol feature over the symbol's own
  bar sequence, so the symbol's next bar simply continues that sequence (its 1-bar return spans the
  gap, its windows count its own bars). Universe-level features treat it as the batch's
  (bar time x symbol) return matrix does, a NaN in that row: it is left out of the market return
  of that bar time, out of ``avg_corr`` until ``corr_window`` complete rows include it again, and
  out of turbulence until it has ``turbulence_window`` + 1 consecutive returns again.
* **A symbol's first bars** give NaN exactly where the batch does (window statistics until the
  window is full or its minimum count is reached, TA-Lib outputs during TA-Lib's lookback).
* **The universe is fixed** at construction (sorted): the batch's cross-asset sums run over the
  symbols of its frame in that order. A bar of a symbol outside it is refused (:class:`BarSliceError`).
* **Warm start** (:meth:`FeatureState.warm`) replays the lake's history; with ``warmup_bars=None``
  (the whole history) the state equals the batch's. A shorter tail restarts the recursive
  indicators at the tail: a measured trade-off, see the docs.
* **Snapshots** are ``.npz`` bytes (named arrays and a JSON header, never pickle); a restored state
  continues exactly where the snapshot was taken.
"""

from trading_core.features.online.state import BarSlice, BarSliceError, FeatureState

__all__ = ["BarSlice", "BarSliceError", "FeatureState"]
