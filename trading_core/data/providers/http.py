"""What the remote providers share: one GET helper, so they fail the same, clear way, and the
code that turns a vendor's arrays into the long OHLCV frame, so both stamp bars the same way.

Network failures (DNS, refused, timeout) become :class:`ProviderUnavailable`: the caller can tell
"cannot reach the vendor" (retry later, or the machine is offline) from "the vendor said no"
(:class:`ProviderError`: bad symbol, bad key, rate limit). Messages name the host or URL but never
a secret: query parameters that look like keys are masked and every string in ``secrets`` is
replaced, because these messages end up in Airflow logs and quarantine reports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, tzinfo
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import requests

from trading_core.data.schema import NUMERIC_COLUMNS, SOURCE_ROW, empty_ohlcv, validate_symbol
from trading_core.errors import ConfigError, ProviderError, ProviderUnavailable

log = logging.getLogger(__name__)

# Query parameters whose value is a credential; masked in every message.
_SECRET_PARAMS = frozenset({"apikey", "api_key", "key", "token", "access_token", "secret"})
_EXCERPT_CHARS = 200
MASK = "***"


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def safe_url(url: str, secrets: Iterable[str | None] = ()) -> str:
    """``url`` with credential-like query parameters (and any known secret) masked."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
    masked = urlunsplit(parts._replace(query=urlencode(query, safe="*,:/")))
    return redact(masked, secrets)


def body_excerpt(response: requests.Response) -> str:
    """The start of a response body on one line, so an error shows what the vendor said."""
    text = " ".join((response.text or "").split())
    if not text:
        return "<empty body>"
    return text[:_EXCERPT_CHARS] + ("..." if len(text) > _EXCERPT_CHARS else "")


def get_json(
    session: requests.Session,
    url: str,
    *,
    timeout_s: float,
    context: str,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> Any:
    """GET ``url`` and return its decoded JSON body.

    ``context`` (e.g. ``"yfinance symbol 'AAPL'"``) starts every error message so it says which request
    failed. No retries: a scheduler retries the whole task, and a fast failure is easier to read.
    """
    secrets = tuple(secrets)
    host = urlsplit(url).netloc
    log.debug("%s: GET %s", context, safe_url(url, secrets))
    try:
        response = session.get(url, params=params, headers=dict(headers or {}), timeout=timeout_s)
    except (requests.ConnectionError, requests.Timeout) as exc:
        reason = redact(str(exc), secrets)[:_EXCERPT_CHARS]
        raise ProviderUnavailable(
            f"{context}: cannot reach {host} ({type(exc).__name__}: {reason}); "
            "the machine may be offline, or the host down or blocked by a firewall"
        ) from None
    except requests.RequestException as exc:
        raise ProviderError(f"{context}: request to {host} failed: {redact(str(exc), secrets)}") from None
    _raise_for_status(response, context, secrets)
    try:
        return response.json()
    except ValueError:
        raise ProviderError(
            f"{context}: {safe_url(response.url, secrets)} returned a body that is not JSON: "
            f"{redact(body_excerpt(response), secrets)}"
        ) from None


def _raise_for_status(response: requests.Response, context: str, secrets: tuple[str | None, ...]) -> None:
    """Turn an HTTP error status into a :class:`ProviderError` that shows status, URL and body."""
    if response.status_code < 400:
        return
    where = safe_url(response.url, secrets)
    excerpt = redact(body_excerpt(response), secrets)
    if response.status_code == 429:
        retry = response.headers.get("Retry-After")
        hint = f"; retry after {retry}s" if retry else "; wait and retry, or request fewer symbols"
        raise ProviderError(f"{context}: rate limited (HTTP 429) by {where}{hint}: {excerpt}")
    reason = f" {response.reason}" if response.reason else ""
    raise ProviderError(f"{context}: HTTP {response.status_code}{reason} from {where}: {excerpt}")


def require_symbols(symbols: Sequence[str], provider: str) -> list[str]:
    """Validated, de-duplicated symbols; a remote source cannot list "everything", so none is an error."""
    if not symbols:
        raise ConfigError(f"{provider}: give the symbols to fetch (a remote source has no 'all symbols')")
    return list(dict.fromkeys(validate_symbol(s) for s in symbols))


def bars_frame(
    symbol: str,
    starts_utc: pd.DatetimeIndex,
    values: Mapping[str, Sequence[Any]],
    *,
    tz: str | tzinfo,
    interval: str,
    start: date,
    end: date,
) -> pd.DataFrame:
    """One symbol's bars on the contract, from the vendor's bar start times and value arrays.

    A bar belongs to the exchange-local date it starts on (as exchange calendars count sessions):
    daily bars are restamped to midnight UTC of that date, intraday bars keep their UTC start, and
    bars whose local date is outside ``[start, end]`` are dropped. ``source_row`` is the 1-based
    position in the response, counted before that filter, so it points at the raw input. Nothing
    is cleaned: a null value stays NaN and a null time NaT, for validation to quarantine.
    """
    n = len(starts_utc)
    columns: dict[str, pd.Series] = {}
    for name in NUMERIC_COLUMNS:
        raw = values.get(name)
        if raw is None:
            raw = [None] * n
        if len(raw) != n:
            raise ProviderError(f"{symbol}: response has {len(raw)} {name} values for {n} timestamps")
        columns[name] = pd.to_numeric(pd.Series(list(raw), dtype="object"), errors="coerce").astype("float64")
    local_dates = starts_utc.tz_convert(tz).tz_localize(None).normalize()
    stamps = local_dates.tz_localize("UTC") if interval == "1d" else starts_utc.tz_convert("UTC")
    frame = pd.DataFrame({"timestamp": stamps.astype("datetime64[ns, UTC]"), "symbol": symbol, **columns})
    frame[SOURCE_ROW] = np.arange(1, n + 1, dtype="int64")
    keep = ((local_dates >= pd.Timestamp(start)) & (local_dates <= pd.Timestamp(end))) | local_dates.isna()
    return frame[np.asarray(keep)].reset_index(drop=True)


def combine(parts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-symbol frames, sorted by symbol then timestamp (the contract's order)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        frame = empty_ohlcv()
        frame[SOURCE_ROW] = pd.Series(dtype="int64")
        return frame
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
