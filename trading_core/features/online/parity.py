"""Online against batch: how far apart two feature frames are, per feature and per group.

Used by the parity tests and ``benchmarks/incremental_features.py``; both compare
:meth:`FeatureState.replay` with :func:`~trading_core.features.compute_features` on the same bars.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.features.config import IndicatorConfig
from trading_core.features.specs import feature_specs


@dataclass(frozen=True)
class FeatureGap:
    """Disagreement of one feature column between two frames with the same rows."""

    name: str
    group: str
    recursive: bool
    """Its value carries state from the symbol's (or universe's) first bar on: see RECURSIVE."""
    rows: int
    nan_mismatches: int
    """Rows where exactly one of the two is NaN."""
    max_abs: float
    max_rel: float
    """max |a - b| / max(|a|, 1e-12) over rows where both are finite (0.0 when equal)."""
    exact: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RECURSIVE_SOURCES = ("talib.RSI", "talib.MACD", "talib.ATR", "talib.ADX", "talib.DX", "talib.EMA")
"""Features whose batch value is a recursion started at the symbol's first bar (exponential or
Wilder smoothing): only these may differ beyond rounding when the state restarts later."""


def feature_gaps(batch: pd.DataFrame, online: pd.DataFrame, config: IndicatorConfig) -> list[FeatureGap]:
    """Per feature of ``config``: NaN mismatches and the largest differences between the frames.

    Both frames must hold the same rows in the same order (``compute_features``' order).
    """
    if len(batch) != len(online):
        raise ValueError(f"frames differ in length: {len(batch)} vs {len(online)}")
    for key in ("timestamp", "symbol"):
        if not (batch[key].to_numpy() == online[key].to_numpy()).all():
            raise ValueError(f"frames differ in their {key} column: compare the same rows in the same order")
    gaps = []
    for spec in feature_specs(config, batch["symbol"].nunique()):
        a = batch[spec.name].to_numpy(dtype=np.float64)
        b = online[spec.name].to_numpy(dtype=np.float64)
        na, nb = np.isnan(a), np.isnan(b)
        both = ~na & ~nb
        diff = np.abs(a[both] - b[both])
        rel = diff / np.maximum(np.abs(a[both]), 1e-12)
        gaps.append(
            FeatureGap(
                name=spec.name,
                group=spec.group,
                recursive=spec.source in RECURSIVE_SOURCES,
                rows=len(a),
                nan_mismatches=int((na != nb).sum()),
                max_abs=float(diff.max()) if len(diff) else 0.0,
                max_rel=float(rel.max()) if len(rel) else 0.0,
                exact=bool((na == nb).all() and np.array_equal(a[both], b[both])),
            )
        )
    return gaps


def group_summary(gaps: list[FeatureGap]) -> dict[str, dict[str, Any]]:
    """Per feature group: features, how many are bit-identical, NaN mismatches, max abs/rel error."""
    out: dict[str, dict[str, Any]] = {}
    for g in gaps:
        s = out.setdefault(g.group, {"features": 0, "exact": 0, "nan_mismatches": 0, "max_abs": 0.0, "max_rel": 0.0})
        s["features"] += 1
        s["exact"] += int(g.exact)
        s["nan_mismatches"] += g.nan_mismatches
        s["max_abs"] = max(s["max_abs"], g.max_abs)
        s["max_rel"] = max(s["max_rel"], g.max_rel)
    return out


def read_file_bars(
    path: Path, symbols: list[str] | None = None, start: date | None = None, end: date | None = None
) -> pd.DataFrame:
    """A vendor file's bars as the lake would hold them: the project's FileProvider, then validation."""
    from trading_core.data.providers.files import FileProvider
    from trading_core.data.request import ValidationPolicy
    from trading_core.data.validation import validate_bars

    provider = FileProvider(path)
    raw = provider.fetch(symbols or [], start, end)
    clean = validate_bars(raw, provider.calendar, "1d", ValidationPolicy()).clean
    return clean[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].reset_index(drop=True)
