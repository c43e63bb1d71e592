"""Bars from Polygon.io's aggregates API (``/v2/aggs/ticker/...``), which needs an API key.

The key travels only in the ``Authorization: Bearer`` header, never in a URL: URLs end up in
logs, error messages and proxies. For the same reason ``next_url`` (pagination) is followed only
when it points at the configured host, so the key is never sent anywhere else.

Polygon stamps a daily aggregate at the start of its day in New York (midnight ET, i.e. 04:00 or
05:00 UTC); the contract wants midnight UTC of that trading date, so the date is taken in
``market_tz``. Prices are split-adjusted (``adjusted=true``), as traded otherwise.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from urllib.parse import quote, urlsplit

import pandas as pd
import requests

from trading_core.data.providers.http import bars_frame, combine, get_json, redact, require_symbols
from trading_core.data.schema import validate_interval
from trading_core.errors import ConfigError, ProviderError, ProviderUnavailable

log = logging.getLogger(__name__)

POLYGON_BASE_URL = "https://api.polygon.io"
MARKET_TZ = "America/New_York"
PAGE_LIMIT = 50_000  # the most bars Polygon returns per page
MAX_PAGES = 1_000  # a guard against a server that keeps sending next_url
# Platform interval -> Polygon (multiplier, timespan).
POLYGON_TIMESPANS: dict[str, tuple[int, str]] = {
    "1d": (1, "day"),
    "1h": (1, "hour"),
    "30m": (30, "minute"),
    "15m": (15, "minute"),
    "5m": (5, "minute"),
    "1m": (1, "minute"),
}
_OK_STATUSES = frozenset({"OK", "DELAYED"})  # DELAYED: valid data on plans without real-time access
_FIELDS = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}


class PolygonProvider:
    """OHLCV from Polygon.io. See the module docstring."""

    name = "polygon"

    def __init__(
        self,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        calendar: str = "XNYS",
        *,
        session: requests.Session | None = None,
        base_url: str = POLYGON_BASE_URL,
        market_tz: str = MARKET_TZ,
    ) -> None:
        if not api_key or not api_key.strip():
            raise ProviderUnavailable(
                "polygon: no API key: set TRADING_POLYGON_API_KEY, or the password of the Airflow "
                "connection 'polygon_default'"
            )
        self._api_key = api_key.strip()
        self.timeout_s = timeout_s
        self.calendar = calendar
        self.session = session or requests.Session()
        self.base_url = base_url.rstrip("/")
        self.market_tz = market_tz

    def __repr__(self) -> str:  # explicit, so the key can never show up in a repr
        return f"PolygonProvider(base_url={self.base_url!r}, calendar={self.calendar!r})"

    def fetch(self, symbols: list[str], start: date, end: date, interval: str = "1d") -> pd.DataFrame:
        """Bars of ``symbols`` whose New York date is in ``[start, end]``, following pagination."""
        validate_interval(interval)
        if end < start:
            raise ConfigError(f"polygon: end {end} is before start {start}")
        wanted = require_symbols(symbols, self.name)
        frame = combine(self._fetch_symbol(s, start, end, interval) for s in wanted)
        log.info("polygon: %d bars, %d symbol(s), %s..%s (%s)", len(frame), len(wanted), start, end, interval)
        return frame

    def aggs_url(self, ticker: str, start: date, end: date, interval: str) -> str:
        multiplier, timespan = POLYGON_TIMESPANS[interval]
        return (
            f"{self.base_url}/v2/aggs/ticker/{quote(ticker, safe=':')}/range/{multiplier}/{timespan}/"
            f"{start.isoformat()}/{end.isoformat()}"
        )

    def _fetch_symbol(self, ticker: str, start: date, end: date, interval: str) -> pd.DataFrame:
        results = self._results(ticker, start, end, interval)
        if not results:
            log.warning("polygon: %s: no bars between %s and %s (unknown ticker?)", ticker, start, end)
        starts = pd.DatetimeIndex(
            pd.to_datetime(pd.Series([r.get("t") for r in results], dtype="object"), unit="ms", utc=True)
        )
        values = {col: [r.get(key) for r in results] for col, key in _FIELDS.items()}
        frame = bars_frame(ticker, starts, values, tz=self.market_tz, interval=interval, start=start, end=end)
        log.info("polygon: %s: %d bars", ticker, len(frame))
        return frame

    def _results(self, ticker: str, start: date, end: date, interval: str) -> list[dict[str, Any]]:
        """Every ``results`` entry of every page, in order."""
        context = f"polygon ticker {ticker!r}"
        url: str = self.aggs_url(ticker, start, end, interval)
        params: dict[str, str | int] | None = {"adjusted": "true", "sort": "asc", "limit": PAGE_LIMIT}
        results: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            payload = get_json(
                self.session,
                url,
                timeout_s=self.timeout_s,
                context=context,
                params=params,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                secrets=(self._api_key,),
            )
            results.extend(page_results(payload, context, secrets=(self._api_key,)))
            next_url = payload.get("next_url")
            if not next_url:
                return results
            url, params = self._same_host(next_url, context), None  # the cursor in next_url carries them
            log.info("polygon: %s: page %d had %d bars so far, fetching the next", ticker, page, len(results))
        raise ProviderError(f"{context}: more than {MAX_PAGES} pages; narrow the date range")

    def _same_host(self, next_url: str, context: str) -> str:
        """``next_url`` if it stays on our host, so the bearer key is never sent elsewhere."""
        ours, theirs = urlsplit(self.base_url), urlsplit(next_url)
        if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
            raise ProviderError(
                f"{context}: next_url points at {theirs.scheme}://{theirs.netloc}, not {self.base_url}; "
                "refusing to send the API key there"
            )
        return next_url


def page_results(payload: Any, context: str, secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A page's ``results``; a status other than OK/DELAYED is a :class:`ProviderError`."""
    if not isinstance(payload, dict):
        raise ProviderError(f"{context}: response is not a JSON object")
    status = payload.get("status")
    if status not in _OK_STATUSES:
        detail = str(payload.get("error") or payload.get("message") or "no reason given")
        raise ProviderError(f"{context}: Polygon status {status!r}: {redact(detail, secrets)}")
    results = payload.get("results") or []
    if not isinstance(results, list):
        raise ProviderError(f"{context}: 'results' is not a list")
    return results
