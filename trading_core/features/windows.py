"""Windowed sequences ``(n, seq_len, n_features)`` over the scaled feature matrix, without copies.

A sample is (end row, label). Its window is rows ``end - seq_len + 1 .. end`` of the matrix, all
of one symbol (the matrix is sorted by symbol, then time) and all finite. The matrix may be a
``np.memmap``: only the windows asked for are read.
"""

from __future__ import annotations

import numpy as np

from trading_core.features.panel import Panel


def window_ready(panel: Panel, matrix: np.ndarray, seq_len: int) -> np.ndarray:
    """True at rows that can end a window: the last ``seq_len`` rows are one symbol's and finite."""
    complete = np.isfinite(matrix).all(axis=1).astype(np.float64)
    return panel.rolling(complete, seq_len, "sum") == seq_len


class WindowedDataset:
    """Samples of one split. ``ds[i]`` is ``(window[seq_len, F], label, fwd_ret)``."""

    def __init__(
        self, matrix: np.ndarray, end_rows: np.ndarray, labels: np.ndarray, fwd_ret: np.ndarray, seq_len: int
    ) -> None:
        if not (len(end_rows) == len(labels) == len(fwd_ret)):
            raise ValueError("end_rows, labels and fwd_ret must have one entry per sample")
        if len(end_rows) and (end_rows.min() < seq_len - 1 or end_rows.max() >= len(matrix)):
            raise ValueError("a window would start before the matrix or end after it")
        self.matrix = matrix
        self.end_rows = np.asarray(end_rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.fwd_ret = np.asarray(fwd_ret, dtype=np.float32)
        self.seq_len = seq_len

    def __len__(self) -> int:
        return len(self.end_rows)

    @property
    def n_features(self) -> int:
        return int(self.matrix.shape[1])

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, float]:
        end = int(self.end_rows[i])
        return np.asarray(self.matrix[end - self.seq_len + 1 : end + 1]), int(self.labels[i]), float(self.fwd_ret[i])

    def windows(self) -> np.ndarray:
        """A zero-copy ``(rows - seq_len + 1, seq_len, F)`` view; index it with ``end_rows - seq_len + 1``."""
        view = np.lib.stride_tricks.sliding_window_view(self.matrix, self.seq_len, axis=0)
        return np.swapaxes(view, 1, 2)

    def batch(self, indices: np.ndarray) -> np.ndarray:
        """Materialise the windows of ``indices``: ``(len(indices), seq_len, F)`` float32."""
        starts = self.end_rows[np.asarray(indices)] - self.seq_len + 1
        return np.ascontiguousarray(self.windows()[starts], dtype=np.float32)
