"""Yahoo and Polygon providers against recorded HTTP responses (tests/fixtures/http).

Every test runs inside an active ``responses`` mock (autouse fixture), so a request that no
recorded response matches raises ConnectionError instead of reaching the network.
"""

from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import responses
from responses import matchers

from trading_core.data.providers.base import OHLCVProvider
from trading_core.data.providers.http import safe_url
from trading_core.data.providers.polygon import PolygonProvider
from trading_core.data.providers.yahoo import YahooProvider
from trading_core.data.schema import OHLCV_COLUMNS, SOURCE_ROW
from trading_core.errors import ConfigError, ProviderError, ProviderUnavailable

FIXTURES = Path(__file__).parent / "fixtures" / "http"
YAHOO = "https://query2.finance.yahoo.com/v8/finance/chart"
POLYGON = "https://api.polygon.io/v2/aggs/ticker"
KEY = "pk_TEST_s3cr3t_4p1_k3y"
JAN2, JAN5 = date(2024, 1, 2), date(2024, 1, 5)
DAYS = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], utc=True)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(autouse=True)
def rsps() -> Any:
    """Every test runs offline: unmatched requests raise, and every registered response must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def check_contract(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [*OHLCV_COLUMNS, SOURCE_ROW]
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["symbol"].map(type).eq(str).all()
    for col in ("open", "high", "low", "close", "volume"):
        assert frame[col].dtype == np.float64
    assert frame[SOURCE_ROW].dtype == np.int64
    assert frame.equals(frame.sort_values(["symbol", "timestamp"]).reset_index(drop=True))


# --- Yahoo -------------------------------------------------------------------------------------


def yahoo_params(interval: str = "1d", period2: str = "1704542400") -> dict[str, str]:
    # 2024-01-02 00:00 UTC - 14h and 2024-01-06 00:00 UTC + 12h: every zone's local 01-02..01-05.
    return {
        "period1": "1704103200",
        "period2": period2,
        "interval": interval,
        "includePrePost": "false",
        "events": "div,split",
    }


JAN2_ONLY = "1704283200"  # period2 for end 2024-01-02: 2024-01-03 00:00 UTC + 12h


def add_yahoo(rsps: Any, symbol: str, fixture: str, status: int = 200, interval: str = "1d") -> None:
    rsps.get(
        f"{YAHOO}/{symbol}",
        json=load(fixture),
        status=status,
        match=[matchers.query_param_matcher(yahoo_params(interval))],
    )


def test_yahoo_daily_frame_exact(rsps: Any) -> None:
    add_yahoo(rsps, "AAPL", "yahoo_chart_AAPL_1d.json")
    frame = YahooProvider(timeout_s=5, calendar="XNYS").fetch(["AAPL"], JAN2, JAN5)
    check_contract(frame)
    expected = pd.DataFrame(
        {
            "timestamp": DAYS,
            "symbol": "AAPL",
            "open": [187.14999389648438, 184.22000122070312, 182.14999389648438, 181.99000549316406],
            "high": [188.44000244140625, 185.8800048828125, 183.08999633789062, 182.75999450683594],
            "low": [183.88999938964844, 183.42999267578125, 180.8800048828125, 180.1699981689453],
            "close": [185.63999938964844, 184.25, 181.91000366210938, 181.17999267578125],
            "volume": [82488700.0, 58414500.0, 71983600.0, 62303300.0],
            SOURCE_ROW: np.array([1, 2, 3, 4], dtype="int64"),
        }
    )
    pd.testing.assert_frame_equal(frame, expected)
    sent = rsps.calls[0].request
    assert "Mozilla/5.0" in sent.headers["User-Agent"]


def test_yahoo_provider_protocol_and_name() -> None:
    provider = YahooProvider(timeout_s=1.0, calendar="XNYS")
    assert isinstance(provider, OHLCVProvider)
    assert provider.name == "yfinance" and provider.calendar == "XNYS"


def test_yahoo_local_trading_date_east_of_utc(rsps: Any) -> None:
    # ASX opens 10:00 AEDT = 23:00 UTC the day before: the bar still belongs to its Sydney date.
    add_yahoo(rsps, "BHP.AX", "yahoo_chart_BHP.AX_1d.json")
    frame = YahooProvider(calendar="XASX").fetch(["BHP.AX"], JAN2, JAN5)
    assert list(frame["timestamp"]) == list(DAYS[:2])


def test_yahoo_gmtoffset_fallback(rsps: Any) -> None:
    body = load("yahoo_chart_BHP.AX_1d.json")
    del body["chart"]["result"][0]["meta"]["exchangeTimezoneName"]
    rsps.get(f"{YAHOO}/BHP.AX", json=body)
    frame = YahooProvider().fetch(["BHP.AX"], JAN2, JAN5)
    assert list(frame["timestamp"]) == list(DAYS[:2])


def test_yahoo_bars_outside_range_dropped_source_row_kept(rsps: Any) -> None:
    rsps.get(f"{YAHOO}/AAPL", json=load("yahoo_chart_AAPL_1d.json"))  # more days than asked for
    frame = YahooProvider().fetch(["AAPL"], date(2024, 1, 3), date(2024, 1, 4))
    assert list(frame["timestamp"]) == list(DAYS[1:3])
    assert list(frame[SOURCE_ROW]) == [2, 3]


def test_yahoo_null_stays_nan(rsps: Any) -> None:
    add_yahoo(rsps, "MSFT", "yahoo_chart_MSFT_1d_nulls.json")
    frame = YahooProvider().fetch(["MSFT"], JAN2, JAN5)
    check_contract(frame)
    assert len(frame) == 4  # no row dropped
    row = frame.iloc[1]
    assert np.isnan(row["close"]) and np.isnan(row["volume"]) and row["open"] == 369.010009765625
    assert row[SOURCE_ROW] == 2


def test_yahoo_multiple_symbols_sorted(rsps: Any) -> None:
    add_yahoo(rsps, "MSFT", "yahoo_chart_MSFT_1d_nulls.json")
    add_yahoo(rsps, "AAPL", "yahoo_chart_AAPL_1d.json")
    frame = YahooProvider().fetch(["MSFT", "AAPL"], JAN2, JAN5)
    check_contract(frame)
    assert list(frame["symbol"]) == ["AAPL"] * 4 + ["MSFT"] * 4
    assert list(frame[SOURCE_ROW]) == [1, 2, 3, 4] * 2


def test_yahoo_adjusted_scales_ohlc_by_adjclose(rsps: Any) -> None:
    add_yahoo(rsps, "AAPL", "yahoo_chart_AAPL_1d.json")
    frame = YahooProvider(adjusted=True).fetch(["AAPL"], JAN2, JAN5)
    body = load("yahoo_chart_AAPL_1d.json")["chart"]["result"][0]["indicators"]
    factor = np.array(body["adjclose"][0]["adjclose"]) / np.array(body["quote"][0]["close"])
    np.testing.assert_allclose(frame["close"], body["adjclose"][0]["adjclose"])
    np.testing.assert_allclose(frame["open"], np.array(body["quote"][0]["open"]) * factor)
    np.testing.assert_allclose(frame["volume"], body["quote"][0]["volume"])


def test_yahoo_intraday_interval_mapping(rsps: Any) -> None:
    rsps.get(
        f"{YAHOO}/AAPL",
        json=load("yahoo_chart_AAPL_5m.json"),
        match=[matchers.query_param_matcher(yahoo_params("5m", JAN2_ONLY))],
    )
    frame = YahooProvider().fetch(["AAPL"], JAN2, JAN2, interval="5m")
    check_contract(frame)
    assert list(frame["timestamp"]) == list(
        pd.to_datetime(["2024-01-02 14:30", "2024-01-02 14:35", "2024-01-02 14:40"], utc=True)
    )


def test_yahoo_hourly_is_60m(rsps: Any) -> None:
    body = load("yahoo_chart_AAPL_5m.json")
    rsps.get(f"{YAHOO}/AAPL", json=body, match=[matchers.query_param_matcher(yahoo_params("60m", JAN2_ONLY))])
    assert len(YahooProvider().fetch(["AAPL"], JAN2, JAN2, interval="1h")) == 3


def test_yahoo_symbol_is_url_quoted(rsps: Any) -> None:
    body = load("yahoo_chart_AAPL_1d.json")
    rsps.get(f"{YAHOO}/%5EGSPC", json=body)
    YahooProvider().fetch(["^GSPC"], JAN2, JAN5)
    assert rsps.calls[0].request.url.startswith(f"{YAHOO}/%5EGSPC?")


def test_yahoo_unknown_symbol_404(rsps: Any) -> None:
    rsps.get(f"{YAHOO}/ZZZZZ", json=load("yahoo_chart_404.json"), status=404)
    with pytest.raises(ProviderError, match=r"'ZZZZZ'.*HTTP 404.*symbol may be delisted") as info:
        YahooProvider().fetch(["ZZZZZ"], JAN2, JAN5)
    assert not isinstance(info.value, ProviderUnavailable)


def test_yahoo_error_in_200_body(rsps: Any) -> None:
    rsps.get(f"{YAHOO}/AAPL", json=load("yahoo_chart_404.json"))
    with pytest.raises(ProviderError, match=r"'AAPL'.*symbol may be delisted"):
        YahooProvider().fetch(["AAPL"], JAN2, JAN5)


@pytest.mark.parametrize(("status", "pattern"), [(429, "rate limited"), (500, "HTTP 500"), (503, "HTTP 503")])
def test_yahoo_http_errors(rsps: Any, status: int, pattern: str) -> None:
    body = "Too Many Requests\n" if status == 429 else "<html>oops</html>"
    rsps.get(f"{YAHOO}/AAPL", body=body, status=status)
    with pytest.raises(ProviderError, match=pattern) as info:
        YahooProvider().fetch(["AAPL"], JAN2, JAN5)
    assert not isinstance(info.value, ProviderUnavailable)
    assert "query2.finance.yahoo.com/v8/finance/chart/AAPL" in str(info.value)


@pytest.mark.parametrize("exc", [requests.ConnectionError("DNS failure"), requests.ReadTimeout()])
def test_yahoo_offline_is_unavailable_fast(rsps: Any, exc: Exception) -> None:
    rsps.get(f"{YAHOO}/AAPL", body=exc)
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"cannot reach query2\.finance\.yahoo\.com.*offline"):
        YahooProvider(timeout_s=0.5).fetch(["AAPL"], JAN2, JAN5)
    assert time.monotonic() - began < 1.0
    assert len(rsps.calls) == 1  # no retries


def test_yahoo_request_validation() -> None:
    with pytest.raises(ConfigError, match="symbols"):
        YahooProvider().fetch([], JAN2, JAN5)
    with pytest.raises(ConfigError, match="interval"):
        YahooProvider().fetch(["AAPL"], JAN2, JAN5, interval="2h")
    with pytest.raises(ConfigError, match="before"):
        YahooProvider().fetch(["AAPL"], JAN5, JAN2)
    with pytest.raises(ConfigError, match="daily"):
        YahooProvider(adjusted=True).fetch(["AAPL"], JAN2, JAN5, interval="5m")


# --- Polygon -----------------------------------------------------------------------------------

POLY_PARAMS = {"adjusted": "true", "sort": "asc", "limit": "50000"}
AAPL_DAILY = f"{POLYGON}/AAPL/range/1/day/2024-01-02/2024-01-05"
MSFT_DAILY = f"{POLYGON}/MSFT/range/1/day/2024-01-02/2024-01-05"
PAGE2 = f"{POLYGON}/AAPL/range/1/day/1704344400000/2024-01-05"


def add_polygon_pages(rsps: Any) -> None:
    auth = matchers.header_matcher({"Authorization": f"Bearer {KEY}"})
    rsps.get(
        AAPL_DAILY,
        json=load("polygon_aggs_AAPL_1d_page1.json"),
        match=[matchers.query_param_matcher(POLY_PARAMS), auth],
    )
    rsps.get(
        PAGE2,
        json=load("polygon_aggs_AAPL_1d_page2.json"),
        match=[matchers.query_param_matcher({"cursor": "bGltaXQ9MiZzb3J0PWFzYw"}), auth],
    )


def polygon(**kwargs: Any) -> PolygonProvider:
    return PolygonProvider(**{"api_key": KEY, "timeout_s": 5.0, "calendar": "XNYS", **kwargs})


def test_polygon_daily_pages_into_exact_frame(rsps: Any) -> None:
    add_polygon_pages(rsps)
    frame = polygon().fetch(["AAPL"], JAN2, JAN5)
    check_contract(frame)
    expected = pd.DataFrame(
        {
            "timestamp": DAYS,
            "symbol": "AAPL",
            "open": [187.15, 184.22, 182.15, 181.99],
            "high": [188.44, 185.88, 183.0872, 182.76],
            "low": [183.885, 183.43, 180.88, 180.17],
            "close": [185.64, 184.25, 181.91, 181.18],
            "volume": [82488674.0, 58414460.0, 71878670.0, 62379661.0],
            SOURCE_ROW: np.array([1, 2, 3, 4], dtype="int64"),  # counted across pages
        }
    )
    pd.testing.assert_frame_equal(frame, expected)
    assert isinstance(polygon(), OHLCVProvider) and polygon().name == "polygon"


def test_polygon_key_only_in_header(rsps: Any) -> None:
    add_polygon_pages(rsps)
    polygon().fetch(["AAPL"], JAN2, JAN5)
    assert len(rsps.calls) == 2
    for call in rsps.calls:
        assert call.request.headers["Authorization"] == f"Bearer {KEY}"
        assert KEY not in call.request.url
    assert KEY not in repr(polygon())


def test_polygon_null_and_missing_fields_stay_nan(rsps: Any) -> None:
    rsps.get(MSFT_DAILY, json=load("polygon_aggs_MSFT_1d_nulls.json"))
    frame = polygon().fetch(["MSFT"], JAN2, JAN5)
    check_contract(frame)
    assert len(frame) == 3
    assert np.isnan(frame.loc[1, "close"]) and frame.loc[1, "open"] == 369.01
    assert np.isnan(frame.loc[2, "volume"])  # "v" absent from the bar


def test_polygon_multiple_symbols_sorted(rsps: Any) -> None:
    rsps.get(MSFT_DAILY, json=load("polygon_aggs_MSFT_1d_nulls.json"))
    add_polygon_pages(rsps)
    rsps.get(f"{POLYGON}/ZZZZ/range/1/day/2024-01-02/2024-01-05", json=load("polygon_aggs_empty.json"))
    frame = polygon().fetch(["MSFT", "ZZZZ", "AAPL"], JAN2, JAN5)
    check_contract(frame)
    assert list(frame["symbol"]) == ["AAPL"] * 4 + ["MSFT"] * 3


def test_polygon_intraday_mapping_keeps_utc_start(rsps: Any) -> None:
    rsps.get(
        f"{POLYGON}/AAPL/range/1/hour/2024-01-02/2024-01-02",
        json=load("polygon_aggs_AAPL_1h.json"),
        match=[matchers.query_param_matcher(POLY_PARAMS)],
    )
    rsps.get(f"{POLYGON}/AAPL/range/15/minute/2024-01-02/2024-01-02", json=load("polygon_aggs_empty.json"))
    frame = polygon().fetch(["AAPL"], JAN2, JAN2, interval="1h")
    check_contract(frame)
    assert list(frame["timestamp"]) == list(
        pd.to_datetime(["2024-01-02 09:00", "2024-01-02 14:00", "2024-01-02 15:00"], utc=True)
    )
    assert polygon().fetch(["AAPL"], JAN2, JAN2, interval="15m").empty


def test_polygon_crypto_ticker_keeps_colon(rsps: Any) -> None:
    rsps.get(f"{POLYGON}/X:BTCUSD/range/1/day/2024-01-02/2024-01-05", json=load("polygon_aggs_empty.json"))
    polygon().fetch(["X:BTCUSD"], JAN2, JAN5)


def test_polygon_missing_key_is_unavailable() -> None:
    for key in (None, "", "  "):
        with pytest.raises(ProviderUnavailable, match=r"TRADING_POLYGON_API_KEY.*polygon_default"):
            PolygonProvider(api_key=key, timeout_s=5, calendar="XNYS")


@pytest.mark.parametrize(
    ("status", "fixture", "pattern"),
    [
        (401, "polygon_401.json", r"HTTP 401.*Unknown API Key"),
        (403, "polygon_403.json", r"HTTP 403.*not entitled"),
        (404, None, r"HTTP 404"),
        (429, "polygon_429.json", r"rate limited"),
        (500, None, r"HTTP 500"),
    ],
)
def test_polygon_http_errors_never_show_key(rsps: Any, status: int, fixture: str | None, pattern: str) -> None:
    body = json.dumps(load(fixture)) if fixture else f"internal error for key {KEY}"
    rsps.get(AAPL_DAILY, body=body, status=status)
    with pytest.raises(ProviderError, match=pattern) as info:
        polygon().fetch(["AAPL"], JAN2, JAN5)
    assert not isinstance(info.value, ProviderUnavailable)
    assert KEY not in str(info.value) and "'AAPL'" in str(info.value)
    assert "api.polygon.io/v2/aggs/ticker/AAPL" in str(info.value)


def test_polygon_error_status_in_200_body(rsps: Any) -> None:
    rsps.get(AAPL_DAILY, json=load("polygon_401.json"))
    with pytest.raises(ProviderError, match=r"status 'ERROR'.*Unknown API Key"):
        polygon().fetch(["AAPL"], JAN2, JAN5)


def test_polygon_offline_is_unavailable_fast_without_key(rsps: Any) -> None:
    exc = requests.ConnectionError(f"Max retries exceeded with url: /v2/aggs?apiKey={KEY}")
    rsps.get(AAPL_DAILY, body=exc)
    began = time.monotonic()
    with pytest.raises(ProviderUnavailable, match=r"cannot reach api\.polygon\.io.*offline") as info:
        polygon(timeout_s=0.5).fetch(["AAPL"], JAN2, JAN5)
    assert time.monotonic() - began < 1.0
    assert KEY not in str(info.value)


def test_polygon_next_url_to_other_host_refused(rsps: Any) -> None:
    body = load("polygon_aggs_AAPL_1d_page1.json")
    body["next_url"] = "https://evil.example.com/v2/aggs?cursor=x"
    rsps.get(AAPL_DAILY, json=body)
    with pytest.raises(ProviderError, match="refusing to send the API key") as info:
        polygon().fetch(["AAPL"], JAN2, JAN5)
    assert KEY not in str(info.value)
    assert len(rsps.calls) == 1


def test_polygon_base_url_override(rsps: Any) -> None:
    rsps.get(
        "http://localhost:9999/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05",
        json=load("polygon_aggs_empty.json"),
    )
    assert polygon(base_url="http://localhost:9999/").fetch(["AAPL"], JAN2, JAN5).empty


def test_safe_url_masks_key_params() -> None:
    url = f"https://api.polygon.io/v2/aggs?apiKey={KEY}&cursor=abc"
    assert safe_url(url) == "https://api.polygon.io/v2/aggs?apiKey=***&cursor=abc"
    assert KEY not in safe_url(f"https://x.test/{KEY}/y", secrets=[KEY])
