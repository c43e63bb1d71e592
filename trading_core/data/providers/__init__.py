"""Data providers and the factory that builds one from an ingest request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trading_core.data.providers.base import OHLCVProvider
from trading_core.errors import ConfigError

if TYPE_CHECKING:
    from trading_core.config import Settings
    from trading_core.data.request import IngestRequest

SOURCES: tuple[str, ...] = ("synthetic", "csv", "yfinance", "polygon")


def build_provider(request: IngestRequest, settings: Settings) -> OHLCVProvider:
    """The provider a request names, configured from the request and settings.

    Remote providers are imported here, lazily, so a machine without their optional
    dependencies (or without a network) can still use the others.
    """
    if request.source == "synthetic":
        from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider

        seed = request.seed if request.seed is not None else settings.seed
        return SyntheticProvider(
            SyntheticMarketConfig(
                seed=seed,
                n_assets=request.n_assets,
                signal_strength=request.signal_strength,
                defect_rate=request.defect_rate,
            )
        )
    if request.source == "csv":
        from trading_core.data.providers.files import FileProvider
        from trading_core.security import resolve_input_file

        if request.path is None:  # IngestRequest enforces it; not an assert (python -O drops those)
            raise ConfigError("source 'csv' needs path")
        # An existing regular file, symlinks resolved, inside TRADING_INGEST_ROOTS when that is set.
        path = resolve_input_file(request.path, field="path", roots=settings.ingest_roots)
        return FileProvider(
            path,
            layout=request.layout,
            columns=request.columns,
            calendar=request.calendar,
            tz=request.tz,
            adj_close=request.adj_close,
            # A file without a symbol column (a Yahoo download) holds the one symbol requested.
            symbol=request.symbols[0] if len(request.symbols) == 1 else None,
        )
    if request.source == "yfinance":
        from trading_core.data.providers.yahoo import YahooProvider

        return YahooProvider(timeout_s=settings.http_timeout_s, calendar=request.calendar or "XNYS")
    if request.source == "polygon":
        from trading_core.data.providers.polygon import PolygonProvider

        key = settings.polygon_api_key.get_secret_value() if settings.polygon_api_key else None
        return PolygonProvider(api_key=key, timeout_s=settings.http_timeout_s, calendar=request.calendar or "XNYS")
    raise ValueError(f"unknown source {request.source!r}")  # unreachable: IngestRequest validates it


__all__ = ["SOURCES", "OHLCVProvider", "build_provider"]
