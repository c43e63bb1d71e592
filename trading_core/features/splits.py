"""Time-ordered train / validation / test splits with purge and embargo.

Boundaries are timestamps shared by every symbol: ``val_start`` and ``test_start`` cut the sorted
unique sample timestamps by the configured fractions. Then, after Lopez de Prado (2018, ch. 7):

* **purge**: a sample whose label window ends at or after the next split's start is dropped
  (its label would be computed from bars that belong to the next split);
* **embargo**: the first ``embargo`` timestamps of validation and of test are dropped, so
  serially correlated neighbours of the previous split do not leak into the evaluation.

The result is a split code per sample (0 train, 1 validation, 2 test, -1 dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trading_core.errors import DataQualityError

TRAIN, VAL, TEST, DROPPED = 0, 1, 2, -1
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}


@dataclass(frozen=True)
class Splits:
    code: np.ndarray
    """int8 per sample: 0 train, 1 val, 2 test, -1 dropped by purge or embargo."""
    val_start: np.datetime64
    test_start: np.datetime64
    purged: int
    embargoed: int

    def summary(self) -> dict[str, Any]:
        counts = {name: int((self.code == c).sum()) for c, name in SPLIT_NAMES.items()}
        return {
            **counts,
            "val_start": str(self.val_start),
            "test_start": str(self.test_start),
            "purged": self.purged,
            "embargoed": self.embargoed,
        }


def purged_splits(
    timestamps: np.ndarray, label_end: np.ndarray, val_fraction: float, test_fraction: float, embargo: int
) -> Splits:
    """Assign each sample (its decision time and the end of its label window) to a split."""
    times = np.unique(timestamps)
    n = len(times)
    n_test = max(1, int(round(n * test_fraction)))
    n_val = max(1, int(round(n * val_fraction)))
    n_train = n - n_val - n_test
    if n_train < 1 or n_val <= embargo or n_test <= embargo:
        raise DataQualityError(
            f"{n} distinct sample timestamps are too few for train/val/test fractions "
            f"({1 - val_fraction - test_fraction:.2f}/{val_fraction:.2f}/{test_fraction:.2f}) with an embargo "
            f"of {embargo}: ingest a longer history or shorten seq_len / warm-up windows"
        )
    val_start, test_start = times[n_train], times[n_train + n_val]
    code = np.where(timestamps < val_start, TRAIN, np.where(timestamps < test_start, VAL, TEST)).astype(np.int8)
    purge = ((code == TRAIN) & ~(label_end < val_start)) | ((code == VAL) & ~(label_end < test_start))
    val_clear = times[min(n_train + embargo, n - 1)]
    test_clear = times[min(n_train + n_val + embargo, n - 1)]
    embargoed = ((code == VAL) & (timestamps < val_clear)) | ((code == TEST) & (timestamps < test_clear))
    embargoed &= ~purge
    code[purge | embargoed] = DROPPED
    empty = [name for c, name in SPLIT_NAMES.items() if not (code == c).any()]
    if empty:
        raise DataQualityError(
            f"{', '.join(empty)} split(s) are empty after purging label windows and an embargo of {embargo} bars "
            f"({n} distinct sample timestamps, too few for these fractions): ingest a longer history or reduce "
            "the horizon / embargo"
        )
    return Splits(code, val_start, test_start, int(purge.sum()), int(embargoed.sum()))
