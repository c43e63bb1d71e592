"""Bars from Yahoo Finance's chart API, the same endpoint the ``yfinance`` package calls.

Calling the endpoint directly (with ``requests``, already a dependency) instead of through
``yfinance`` keeps the request and the parsing visible and testable against recorded responses,
and avoids yfinance's caches, threads and silent cleaning. One request per symbol.

Yahoo stamps a daily bar at the session's opening instant in exchange time; the contract wants
midnight UTC of the exchange-local date, so the date is taken in ``meta.exchangeTimezoneName``
(or, failing that, the fixed ``meta.gmtoffset``). Prices are as traded (split-adjusted, not
dividend-adjusted) unless ``adjusted=True``, which scales open/high/low/close by adjclose/close.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import requests

from trading_core.data.providers.http import bars_frame, combine, get_json, require_symbols
from trading_core.data.schema import PRICE_COLUMNS, empty_ohlcv, validate_interval
from trading_core.errors import ConfigError, ProviderError

log = logging.getLogger(__name__)

YAHOO_BASE_URL = "https://query2.finance.yahoo.com"
# Yahoo answers scripts that announce themselves with 429s; a browser User-Agent is what yfinance sends too.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
YAHOO_INTERVALS: dict[str, str] = {
    "1d": "1d",
    "1h": "60m",
    "30m": "30m",
    "15m": "15m",
    "5m": "5m",
    "1m": "1m",
}
# Any local date D lies within [D 00:00 UTC - 14h, D+1 00:00 UTC + 12h) whatever the time zone, so
# this window catches every bar of [start, end] without asking for days the caller did not want
# (Yahoo caps intraday windows: 1m bars only ~8 days per request).
_BEFORE, _AFTER = pd.Timedelta(hours=14), pd.Timedelta(hours=12)


class YahooProvider:
    """OHLCV from Yahoo Finance (no API key). See the module docstring."""

    name = "yfinance"

    def __init__(
        self,
        timeout_s: float = 10.0,
        calendar: str = "XNYS",
        *,
        adjusted: bool = False,
        session: requests.Session | None = None,
        base_url: str = YAHOO_BASE_URL,
    ) -> None:
        self.timeout_s = timeout_s
        self.calendar = calendar
        self.adjusted = adjusted
        self.session = session or requests.Session()
        self.base_url = base_url.rstrip("/")

    def fetch(self, symbols: list[str], start: date, end: date, interval: str = "1d") -> pd.DataFrame:
        """Bars of ``symbols`` whose exchange-local date is in ``[start, end]``, one request each."""
        validate_interval(interval)
        if end < start:
            raise ConfigError(f"yfinance: end {end} is before start {start}")
        if self.adjusted and interval != "1d":
            raise ConfigError(f"yfinance: adjusted prices need daily bars (no adjclose for {interval} bars)")
        wanted = require_symbols(symbols, self.name)
        frame = combine(self._fetch_symbol(s, start, end, interval) for s in wanted)
        log.info("yfinance: %d bars, %d symbol(s), %s..%s %s", len(frame), len(wanted), start, end, interval)
        return frame

    def chart_url(self, symbol: str) -> str:
        return f"{self.base_url}/v8/finance/chart/{quote(symbol, safe='')}"

    def _params(self, start: date, end: date, interval: str) -> dict[str, str | int]:
        first = pd.Timestamp(start, tz="UTC") - _BEFORE
        last = pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1) + _AFTER
        return {
            "period1": int(first.timestamp()),
            "period2": int(last.timestamp()),
            "interval": YAHOO_INTERVALS[interval],
            "includePrePost": "false",
            "events": "div,split",
        }

    def _fetch_symbol(self, symbol: str, start: date, end: date, interval: str) -> pd.DataFrame:
        payload = get_json(
            self.session,
            self.chart_url(symbol),
            timeout_s=self.timeout_s,
            context=f"yfinance symbol {symbol!r}",
            params=self._params(start, end, interval),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        result = chart_result(payload, symbol)
        frame = parse_chart(result, symbol, interval, start, end, adjusted=self.adjusted)
        log.info("yfinance: %s: %d bars", symbol, len(frame))
        return frame


def chart_result(payload: Any, symbol: str) -> dict[str, Any]:
    """The one ``chart.result`` entry, or a :class:`ProviderError` with Yahoo's own reason."""
    chart = payload.get("chart") if isinstance(payload, dict) else None
    if not isinstance(chart, dict):
        raise ProviderError(f"yfinance symbol {symbol!r}: response has no 'chart' object")
    error = chart.get("error")
    if error:
        detail = error.get("description") or error.get("code") if isinstance(error, dict) else error
        raise ProviderError(f"yfinance symbol {symbol!r}: Yahoo reports an error: {detail}")
    results = chart.get("result")
    if not results or not isinstance(results[0], dict):
        raise ProviderError(f"yfinance symbol {symbol!r}: response has no chart result")
    return results[0]


def exchange_tz(meta: dict[str, Any], symbol: str) -> tzinfo:
    """The exchange's zone: its IANA name, else its current fixed UTC offset (right for daily dates)."""
    name = meta.get("exchangeTimezoneName")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("yfinance: %s: unknown time zone %r, using gmtoffset", symbol, name)
    offset = meta.get("gmtoffset")
    if isinstance(offset, int | float):
        return timezone(timedelta(seconds=offset))
    log.warning("yfinance: %s: response names no time zone; dating bars in UTC", symbol)
    return UTC


def parse_chart(
    result: dict[str, Any], symbol: str, interval: str, start: date, end: date, *, adjusted: bool = False
) -> pd.DataFrame:
    """One chart result as the long frame (see :func:`bars_frame` for stamping and filtering)."""
    timestamps = result.get("timestamp") or []
    if not timestamps:
        log.warning("yfinance: %s: no bars between %s and %s", symbol, start, end)
        return empty_ohlcv()
    indicators = result.get("indicators") or {}
    quotes = (indicators.get("quote") or [{}])[0] or {}
    values: dict[str, Any] = {c: quotes.get(c) for c in (*PRICE_COLUMNS, "volume")}
    if adjusted:
        values.update(_adjusted_prices(indicators, values, symbol))
    starts = pd.DatetimeIndex(pd.to_datetime(pd.Series(timestamps, dtype="object"), unit="s", utc=True))
    tz = exchange_tz(result.get("meta") or {}, symbol)
    return bars_frame(symbol, starts, values, tz=tz, interval=interval, start=start, end=end)


def _adjusted_prices(indicators: dict[str, Any], values: dict[str, Any], symbol: str) -> dict[str, np.ndarray]:
    """Open/high/low/close scaled by adjclose/close, as yfinance's ``auto_adjust`` does."""
    adj = (indicators.get("adjclose") or [{}])[0].get("adjclose")
    if adj is None:
        raise ProviderError(f"yfinance symbol {symbol!r}: adjusted prices wanted, response has no adjclose")

    def floats(raw: Any) -> np.ndarray:
        return pd.to_numeric(pd.Series(raw, dtype="object"), errors="coerce").to_numpy(dtype="float64")

    adj_values, close = floats(adj), floats(values["close"])
    if len(adj_values) != len(close):
        raise ProviderError(f"yfinance symbol {symbol!r}: {len(adj_values)} adjclose for {len(close)} closes")
    factor = adj_values / close
    return {c: floats(values[c]) * factor for c in PRICE_COLUMNS}
