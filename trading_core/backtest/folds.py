"""Walk-forward folds over bar indices: rolling or expanding training windows, purge and embargo.

Bars are the rows of :class:`~trading_core.rl.data.MarketData` (``timestamps``). A test window
``[start, stop)`` holds the *decision* bars of the fold: the policy decides at the close of every
bar ``t`` in it and is filled at the open of ``t + 1``, so ``stop <= n_bars - 1`` (the last bar of
the data only serves the last fill). Folds tile the **end** of the data, the last fold's test ending
at ``n_bars - 1``; earlier folds step back by ``test_size + embargo``.

* purge: the training window stops ``purge`` bars before its test window starts. Labels made from
  forward returns over ``h`` bars (``features.labels``) use prices up to ``t + h``: a purge of ``h``
  keeps every training label's horizon out of the test window.
* embargo: ``embargo`` bars are skipped after each test window before the next fold's test window
  starts (consecutive test windows are separated by ``embargo`` bars), so serially correlated
  returns at the start of a test window are not the tail of the previous one.
* rolling: each training window holds the last ``train_size`` bars before the purge;
  expanding: it starts at ``first_bar`` (the first usable bar) and grows fold by fold.

A fold's training window may contain earlier folds' test windows: walk-forward trains on all of
its past, and only the future is out of sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trading_core.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[int, int]
    """[start, stop) bar indices of the fold's past (training window)."""
    test: tuple[int, int]
    """[start, stop) decision bars of the out-of-sample window."""

    @property
    def train_size(self) -> int:
        return self.train[1] - self.train[0]

    @property
    def test_size(self) -> int:
        return self.test[1] - self.test[0]


def make_folds(
    n_bars: int,
    *,
    n_folds: int,
    test_size: int,
    mode: Literal["rolling", "expanding"] = "expanding",
    train_size: int | None = None,
    purge: int = 0,
    embargo: int = 0,
    first_bar: int = 0,
) -> list[Fold]:
    """The ``n_folds`` walk-forward folds over ``n_bars`` bars, oldest first (see the module docstring).

    :raises ConfigError: (a ``ValueError``) for invalid arguments or data too short for the folds.
    """
    if n_folds < 1:
        raise ConfigError(f"n_folds must be >= 1, got {n_folds}")
    if test_size < 1:
        raise ConfigError(f"test_size must be >= 1, got {test_size}")
    if purge < 0 or embargo < 0 or first_bar < 0:
        raise ConfigError(f"purge, embargo and first_bar must be >= 0, got {purge}, {embargo}, {first_bar}")
    if mode not in ("rolling", "expanding"):
        raise ConfigError(f"mode must be 'rolling' or 'expanding', got {mode!r}")
    if mode == "rolling" and (train_size is None or train_size < 1):
        raise ConfigError(f"rolling folds need train_size >= 1, got {train_size}")
    if mode == "expanding" and train_size is not None:
        raise ConfigError("train_size only applies to rolling folds (expanding folds start at first_bar)")

    last_stop = n_bars - 1  # the last decision bar is n_bars - 2: its order fills at the open of n_bars - 1
    span = n_folds * test_size + (n_folds - 1) * embargo
    first_test = last_stop - span
    min_train = train_size if mode == "rolling" and train_size is not None else 1
    needed = first_bar + min_train + purge + span + 1
    if first_test - purge - min_train < first_bar:
        raise ConfigError(
            f"data too short: {n_bars} bars, but {n_folds} folds of test_size={test_size} with purge={purge}, "
            f"embargo={embargo}, first_bar={first_bar} and a training window of >= {min_train} bars need {needed}"
        )
    folds = []
    for k in range(n_folds):
        test_stop = last_stop - (n_folds - 1 - k) * (test_size + embargo)
        test_start = test_stop - test_size
        train_stop = test_start - purge
        train_start = train_stop - train_size if mode == "rolling" and train_size is not None else first_bar
        folds.append(Fold(index=k, train=(train_start, train_stop), test=(test_start, test_stop)))
    return folds
