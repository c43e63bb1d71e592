"""The provider protocol: anything that returns the long OHLCV frame for symbols and dates."""

from __future__ import annotations

from datetime import date
from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class OHLCVProvider(Protocol):
    """Returns ``[timestamp (UTC), symbol, open, high, low, close, volume]`` (+ ``source_row``).

    ``calendar`` names the session calendar the bars follow (gap checks use it). Providers do no
    cleaning: bad rows come back as they are, so validation can quarantine them with a reason.
    """

    name: str
    calendar: str

    def fetch(self, symbols: list[str], start: date, end: date, interval: str = "1d") -> pd.DataFrame:
        """Bars for ``symbols`` (all the source has when empty) with timestamps in ``[start, end]``."""
        ...
