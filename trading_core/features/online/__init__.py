"""Online (incremental) features: the batch catalogue, one bar time at a time."""

from trading_core.features.online.state import BarSlice, BarSliceError, FeatureState

__all__ = ["BarSlice", "BarSliceError", "FeatureState"]
