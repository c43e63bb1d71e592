"""Float helpers the online state needs to reproduce the batch numbers bit for bit.

* :func:`fma` — a correctly rounded fused multiply-add ``x * y + z`` for float64 arrays. numpy has
  no ``fma`` ufunc, but TA-Lib 0.8 fuses its EMA, MACD and ATR recursions with C's ``fma()``; an
  unfused ``x * y + z`` differs in the last bit and the difference compounds along the recursion.
  The emulation is exact (Boldo & Melquiond 2008, "Emulation of FMA and correctly rounded sums:
  proved algorithms using rounding to odd"): Dekker's exact product, an exact sum, a sum rounded
  to odd, then one round-to-nearest. Valid while no product overflows or underflows (|x|, |y| far
  from 1e±150: prices, returns and their smoothed values are).
* :func:`safe_div` — a copy of ``trading_core.features.indicators._safe_div`` (private there; copied,
  not imported, so the batch module can change without this module depending on a private name).
"""

from __future__ import annotations

import numpy as np

_SPLITTER = 134217729.0  # 2**27 + 1 (Veltkamp split of a 53-bit significand)

TA_EPSILON = 1e-14
"""TA-Lib 0.8's ``TA_EPSILON``: its fixed zero band and the relative dead-zone of ``TA_IS_ZERO_SCALED``."""


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


def _two_prod(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _add_round_odd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b rounded to odd: exact sums unchanged, inexact ones to the neighbour with an odd significand."""
    r, err = _two_sum(a, b)
    fix = (err != 0.0) & ((r.view(np.int64) & 1) == 0)
    if fix.any():
        r = np.where(fix, np.nextafter(r, np.where(err > 0.0, np.inf, -np.inf)), r)
    return r


def fma(x: np.ndarray | float, y: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
    """Correctly rounded ``x * y + z`` (one rounding), elementwise, like C's ``fma``.

    Non-finite operands give what ``x * y + z`` gives (the error terms of the emulation are NaN
    there). Call with floating-point errors ignored (np.errstate).
    """
    x, y, z = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)
    uh, ul = _two_prod(x, y)
    th, tl = _two_sum(z, uh)
    out = th + _add_round_odd(tl, ul)
    if not np.isfinite(out).all():
        out = np.where(np.isfinite(out), out, x * y + z)
    return out


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 or not finite (never inf); call with errors ignored."""
    return np.where(np.isfinite(den) & (den != 0), num / den, np.nan)


def sum_rows_in_order(rows: np.ndarray) -> np.ndarray:
    """``rows[0] + rows[1] + ...`` added strictly in that order, per column of a (k, m) array.

    numpy reduces a C-contiguous (k, m) array over axis 0 row after row for m >= 2, but it sums a
    contiguous vector pairwise (a different rounding): a single column, or a column-major array (what
    ``ring[:, idx]`` returns), would be summed that way. Hence the copy and the padding.
    """
    rows = np.ascontiguousarray(rows)
    if rows.shape[1] == 1:
        rows = np.concatenate([rows, np.zeros_like(rows)], axis=1)
        return np.add.reduce(rows, axis=0)[:1]
    return np.add.reduce(rows, axis=0)


def is_zero_scaled(v: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """TA-Lib's ``TA_IS_ZERO_SCALED``: |v| within ``TA_EPSILON`` of the operands' magnitude."""
    return np.abs(v) <= TA_EPSILON * scale
