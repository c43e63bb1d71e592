"""Vendor-style defects injected into synthetic bars, so the demo and tests exercise quarantine.

Which bars are hit depends only on ``(seed, symbol, timestamp)`` through a splitmix64 hash, so the
same bar is damaged the same way whatever range is requested. Kinds, in equal shares:
missing open, high below the close, negative volume, a bad print (close halved for one bar), a
zero price, and a duplicated row with a different volume.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFECT_KINDS: tuple[str, ...] = (
    "missing_open",
    "high_below_close",
    "negative_volume",
    "bad_print",
    "zero_price",
    "duplicate",
)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def row_uniforms(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A uniform in [0, 1) per row, a pure function of (seed, symbol, timestamp)."""
    ts = frame["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.uint64)
    sym = (
        frame["symbol"]
        .map(lambda s: int.from_bytes(s.encode()[:8].ljust(8, b"\0"), "little"))
        .to_numpy(dtype=np.uint64)
    )
    mixed = _splitmix64(_splitmix64(ts ^ np.uint64(seed)) ^ sym)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def inject_defects(frame: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    """Damage about ``rate`` of the bars (never the first two of a symbol, so bad prints stay detectable)."""
    if rate <= 0 or frame.empty:
        return frame
    out = frame.copy()
    u = row_uniforms(out, seed)
    position = out.groupby("symbol").cumcount().to_numpy()
    hit = (u < rate) & (position >= 2)
    kind = np.floor(u / rate * len(DEFECT_KINDS)).astype(int).clip(0, len(DEFECT_KINDS) - 1)

    def rows(name: str) -> np.ndarray:
        return hit & (kind == DEFECT_KINDS.index(name))

    out.loc[rows("missing_open"), "open"] = np.nan
    out.loc[rows("high_below_close"), "high"] = out.loc[rows("high_below_close"), "close"] * 0.97
    out.loc[rows("negative_volume"), "volume"] = -out.loc[rows("negative_volume"), "volume"]
    bad = rows("bad_print")
    out.loc[bad, ["close", "low"]] = out.loc[bad, ["close", "low"]] * 0.5
    out.loc[rows("zero_price"), "low"] = 0.0
    dupes = out[rows("duplicate")].assign(volume=lambda d: d["volume"] + 100)
    return pd.concat([out, dupes], ignore_index=True)
