"""Confidence scaling of the RL action, applied before the risk manager.

The seed's rule: ``final = rl_action * min(slope * confidence, 1)`` with slope 2, so a forecaster
at 50% confidence or more leaves the action whole and a less confident one shrinks it linearly to
0. ``enabled=False`` is the "hybrid without confidence scaling" baseline of the walk-forward report.
"""

from __future__ import annotations

import numpy as np


def confidence_scale(
    actions: np.ndarray, confidence: np.ndarray | float, slope: float = 2.0, enabled: bool = True
) -> np.ndarray:
    """``actions * min(slope * confidence, 1)``, element-wise with numpy broadcasting.

    :param actions: target weights, (N,) or (E, N).
    :param confidence: forecaster confidence in [0, 1]: a scalar, one per asset (N,), or (E, N).
    :param slope: factor on the confidence (>= 0); 2 reproduces the seed's rule.
    :param enabled: False returns the actions unchanged (as a float64 copy).
    :returns: float64 array of the broadcast shape of ``actions`` and ``confidence``.
    """
    a = np.array(actions, dtype=np.float64)
    if not enabled:
        return a
    if not (np.isfinite(slope) and slope >= 0):
        raise ValueError(f"slope must be a finite number >= 0, got {slope!r}")
    c = np.asarray(confidence, dtype=np.float64)
    if not ((c >= 0) & (c <= 1)).all():  # also rejects NaN
        raise ValueError(f"confidence must be in [0, 1], got min {np.nanmin(c)} max {np.nanmax(c)} (or NaN)")
    out: np.ndarray = a * np.minimum(slope * c, 1.0)
    return out
