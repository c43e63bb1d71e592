"""Assets shared by the trading DAGs: the contracts between stages, in one place.

Each asset event carries references in its ``extra`` (versions, paths), never data.
"""

from __future__ import annotations

from airflow.sdk import Asset

OHLCV = Asset(name="ohlcv", uri="trading://lake/ohlcv", group="trading")
"""Validated OHLCV bars in the lake; extra: dataset_version, feed, interval, symbols, range."""
