"""Received bars grouped by bar time: what the decision loop assembles before it decides.

The transport hands over bars one by one, in the order the stream stored them; a bar time's bars may be
interleaved with the next one's (a late symbol, a redelivery). :class:`SliceBuffer` groups them by
``(interval, bar start)`` into :class:`ReceivedSlice` objects; it applies no clock and no rule. The loop
owns the deadline (when to stop waiting for a missing symbol), the universe check and the order check
(a bar not after the last decided), and settles the bars: it acks a slice's bars once its decision is
booked (:meth:`ReceivedSlice.ack_all`) and rejects the duplicates (:attr:`ReceivedSlice.duplicates`,
reason ``duplicate_bar``).

    buffer.add(received)                                    # for every received bar
    ready = buffer.oldest()                                 # the loop's deadline rule decides when
    if ready and (not ready.missing(universe) or deadline_passed):
        decide(buffer.pop(ready.key).to_bar_slice())        # features.online.BarSlice, universe order
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd

from trading_core.features.online import BarSlice
from trading_core.serving.transport.base import ReceivedBar


class SliceKey(NamedTuple):
    interval: str
    timestamp: datetime


@dataclass
class ReceivedSlice:
    """The bars received so far for one bar time: the first per symbol, and any later duplicates."""

    key: SliceKey
    bars: dict[str, ReceivedBar] = field(default_factory=dict)
    duplicates: list[ReceivedBar] = field(default_factory=list)
    """Further bars for a symbol already in the slice (a republished or corrected bar): the loop rejects them."""

    @property
    def timestamp(self) -> datetime:
        return self.key.timestamp

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def missing(self, universe: Iterable[str]) -> list[str]:
        """Symbols of ``universe`` without a bar in this slice (in universe order)."""
        return [s for s in universe if s not in self.bars]

    def to_bar_slice(self, order: Sequence[str] | None = None) -> BarSlice:
        """The features' :class:`~trading_core.features.online.BarSlice`, symbols in ``order`` (those present)."""
        symbols = [s for s in order if s in self.bars] if order is not None else sorted(self.bars)
        bars = [self.bars[s].bar for s in symbols]

        def column(name: str) -> np.ndarray:
            return np.fromiter((getattr(b, name) for b in bars), dtype=np.float64, count=len(bars))

        return BarSlice(
            pd.Timestamp(self.timestamp), symbols, *(column(c) for c in ("open", "high", "low", "close", "volume"))
        )

    async def ack_all(self) -> None:
        """Ack every bar of the slice (after its decision is booked); duplicates are the loop's to reject."""
        for received in self.bars.values():
            await received.ack()

    async def nak_all(self, delay: float | None = None) -> None:
        """Have the whole slice redelivered (booking failed and may succeed later)."""
        for received in (*self.bars.values(), *self.duplicates):
            await received.nak(delay)


class SliceBuffer:
    """Open slices by ``(interval, bar start)``; see the module docstring."""

    def __init__(self) -> None:
        self._open: dict[SliceKey, ReceivedSlice] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, received: ReceivedBar) -> ReceivedSlice:
        """File one bar under its slice (a second bar of the same symbol goes to ``duplicates``)."""
        key = SliceKey(received.bar.interval, received.bar.timestamp)
        slice_ = self._open.get(key)
        if slice_ is None:
            slice_ = self._open[key] = ReceivedSlice(key)
        if received.bar.symbol in slice_.bars:
            slice_.duplicates.append(received)
        else:
            slice_.bars[received.bar.symbol] = received
        return slice_

    def slice_keys(self) -> list[SliceKey]:
        """Open slices, oldest bar time first."""
        return sorted(self._open, key=lambda k: (k.timestamp, k.interval))

    def oldest(self) -> ReceivedSlice | None:
        keys = self.slice_keys()
        return self._open[keys[0]] if keys else None

    def get(self, key: SliceKey) -> ReceivedSlice | None:
        return self._open.get(key)

    def pop(self, key: SliceKey) -> ReceivedSlice:
        """Remove and return a slice (the loop then decides on it and settles its bars)."""
        return self._open.pop(key)

    def complete(self, universe: Iterable[str]) -> list[SliceKey]:
        """Open slices holding a bar for every symbol of ``universe``, oldest first."""
        wanted = list(universe)
        return [k for k in self.slice_keys() if not self._open[k].missing(wanted)]
