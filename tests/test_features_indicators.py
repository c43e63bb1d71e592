"""Each feature against an independent reference: TA-Lib where it defines the indicator, a plain
per-symbol pandas/numpy implementation of the published formula where it does not."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from trading_core.errors import SchemaError
from trading_core.features import IndicatorConfig, compute_features
from trading_core.features.cross_asset import average_correlation, turbulence

CONFIG = IndicatorConfig(vol_regime_window=40, corr_window=20, turbulence_window=30)


def _bars(lengths: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Random-walk OHLCV per symbol, of different lengths (a short symbol included)."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol, n in lengths.items():
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n)))
        volume = rng.uniform(1e5, 1e6, n)
        volume[::17] = 0.0  # untraded bars exist in real data (ETFs' early history)
        ts = pd.bdate_range("2020-01-01", periods=n, tz="UTC")
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": ts,
                    "symbol": symbol,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


BARS = _bars({"AAA": 300, "BBB": 260, "CCC": 12, "DDD": 280})
FEATURES = compute_features(BARS, CONFIG)


def _per_symbol(symbol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return BARS[BARS.symbol == symbol].reset_index(drop=True), FEATURES[FEATURES.symbol == symbol].reset_index(
        drop=True
    )


def _close(actual: pd.Series | np.ndarray, expected: pd.Series | np.ndarray, name: str) -> None:
    a, e = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert np.isfinite(e).sum() > 0 or len(e) < 30, f"{name}: reference never defined"
    np.testing.assert_allclose(a, e, rtol=1e-7, atol=1e-9, equal_nan=True, err_msg=name)


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])
def test_talib_indicators_match_talib_on_each_symbol_alone(symbol: str) -> None:
    bars, f = _per_symbol(symbol)
    o, h, lo, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    _close(f.rsi_14, talib.RSI(c, 14), "rsi_14")
    _close(f.rsi_30, talib.RSI(c, 30), "rsi_30")
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    _close(f.macd, macd / c, "macd")
    _close(f.macd_signal, signal / c, "macd_signal")
    _close(f.macd_hist, hist / c, "macd_hist")
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0)
    _close(f.bb_upper, upper / c - 1, "bb_upper")
    _close(f.bb_lower, lower / c - 1, "bb_lower")
    _close(f.bb_width, (upper - lower) / middle, "bb_width")
    _close(f.atr_14, talib.ATR(h, lo, c, 14) / c, "atr_14")
    _close(f.adx_14, talib.ADX(h, lo, c, 14), "adx_14")
    _close(f.dx_30, talib.DX(h, lo, c, 30), "dx_30")
    _close(f.cci_30, talib.CCI(h, lo, c, 30), "cci_30")
    _close(f.mfi_14, talib.MFI(h, lo, c, v, 14), "mfi_14")
    k, d = talib.STOCH(h, lo, c, 14, 3, 0, 3, 0)
    _close(f.stoch_k, k, "stoch_k")
    _close(f.stoch_d, d, "stoch_d")
    _close(f.sma_ratio_60, c / talib.SMA(c, 60) - 1, "sma_ratio_60")
    _close(f.ema_ratio_26, c / talib.EMA(c, 26) - 1, "ema_ratio_26")
    obv = talib.OBV(c, v)
    _close(f.obv_flow_21, (obv - pd.Series(obv).shift(21)) / talib.SUM(v, 21), "obv_flow_21")


@pytest.mark.parametrize("symbol", ["AAA", "DDD"])
def test_hand_written_features_match_their_formulas(symbol: str) -> None:
    bars, f = _per_symbol(symbol)
    o, h, lo, c, v = (bars[k] for k in ("open", "high", "low", "close", "volume"))
    r = np.log(c).diff()
    _close(f.ret_5, np.log(c / c.shift(5)), "ret_5")
    _close(f.rvol_21, r.rolling(21).std(), "rvol_21")
    # Window statistics against TA-Lib's own (population std -> sample std).
    _close(f.rvol_63, talib.STDDEV(r.to_numpy(), 63) * math.sqrt(63 / 62), "rvol_63 vs talib.STDDEV")
    hl, co = np.log(h / lo), np.log(c / o)
    _close(f.parkinson_21, np.sqrt((hl**2).rolling(21).mean() / (4 * math.log(2))), "parkinson_21")
    gk = (0.5 * hl**2 - (2 * math.log(2) - 1) * co**2).rolling(21).mean()
    _close(f.garman_klass_21, np.sqrt(gk.clip(lower=0)), "garman_klass_21")
    lv = np.log1p(v)
    _close(f.volume_z_21, (lv - lv.rolling(21).mean()) / lv.rolling(21).std(), "volume_z_21")
    _close(f.gap, np.log(o / c.shift()), "gap")
    # Chaikin money flow = change of TA-Lib's accumulation/distribution line over the window / volume.
    ad = talib.AD(h.to_numpy(), lo.to_numpy(), c.to_numpy(), v.to_numpy())
    reference = (ad - pd.Series(ad).shift(21)) / v.rolling(21).sum()  # defined from bar 21 (AD needs bar t-21)
    _close(f.ofi_clv_21[21:], reference[21:], "ofi_clv_21 vs talib.AD")
    dollar = (c * v).where(v > 0)
    amihud = (r.abs() / (dollar / 1e6)).rolling(21, min_periods=10).mean()
    _close(f.amihud_21, np.log(amihud + 1e-12), "amihud_21")


def _corwin_schultz_reference(bars: pd.DataFrame) -> np.ndarray:
    """Corwin & Schultz (2012), eq. (14)-(18), with their overnight adjustment, row by row."""
    h, lo, c = bars.high.to_numpy(), bars.low.to_numpy(), bars.close.to_numpy()
    out = np.full(len(bars), np.nan)
    k = 3 - 2 * math.sqrt(2)
    for t in range(1, len(bars)):
        adj = 0.0
        if lo[t] > c[t - 1]:
            adj = lo[t] - c[t - 1]
        elif h[t] < c[t - 1]:
            adj = h[t] - c[t - 1]
        h0, l0, h1, l1 = h[t - 1], lo[t - 1], h[t] - adj, lo[t] - adj
        # The previous bar carries its own adjustment (relative to the close before it).
        if t >= 2:
            if lo[t - 1] > c[t - 2]:
                h0, l0 = h[t - 1] - (lo[t - 1] - c[t - 2]), lo[t - 1] - (lo[t - 1] - c[t - 2])
            elif h[t - 1] < c[t - 2]:
                h0, l0 = h[t - 1] - (h[t - 1] - c[t - 2]), lo[t - 1] - (h[t - 1] - c[t - 2])
        else:
            continue
        beta = math.log(h1 / l1) ** 2 + math.log(h0 / l0) ** 2
        gamma = math.log(max(h0, h1) / min(l0, l1)) ** 2
        alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
        out[t] = max(0.0, 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha)))
    return out


def test_corwin_schultz_spread_matches_the_paper_row_by_row() -> None:
    bars, f = _per_symbol("AAA")
    daily = pd.Series(_corwin_schultz_reference(bars))
    _close(f.cs_spread_21, daily.rolling(21, min_periods=10).mean(), "cs_spread_21")
    assert (f.cs_spread_21.dropna() >= 0).all()


def _finrl_turbulence(returns: np.ndarray, window: int) -> np.ndarray:
    """FinRL's loop (finrl/meta/preprocessor/preprocessors.py, calculate_turbulence), minus its
    zeroing of the first values: pinv of the window covariance, assets with a complete window."""
    out = np.full(len(returns), np.nan)
    for t in range(window, len(returns)):
        hist, today = returns[t - window : t], returns[t]
        ok = np.isfinite(hist).all(axis=0) & np.isfinite(today)
        if not ok.any():
            continue
        h = hist[:, ok]
        v = today[ok] - h.mean(axis=0)
        out[t] = v @ np.linalg.pinv(np.cov(h, rowvar=False).reshape(ok.sum(), ok.sum())) @ v
    return out


@pytest.mark.parametrize(("n_assets", "window"), [(5, 30), (60, 30), (40, 41), (3, 60)])
def test_turbulence_equals_finrls_pinv_definition(n_assets: int, window: int) -> None:
    rng = np.random.default_rng(n_assets)
    returns = rng.standard_normal((150, n_assets)) * 0.01 + rng.standard_normal((150, 1)) * 0.01
    returns[:12, 1] = np.nan  # a late listing
    returns[70:74, n_assets - 1] = np.nan  # a gap: the asset leaves the window for a while
    ours, used = turbulence(returns, window)
    reference = _finrl_turbulence(returns, window)
    np.testing.assert_allclose(ours, reference, rtol=1e-8, equal_nan=True)
    assert np.isnan(ours[:window]).all() and (used[window:] > 0).all()
    assert used[72 + 1] == n_assets - 1 and used[-1] == n_assets


def test_average_correlation_is_the_mean_off_diagonal_correlation() -> None:
    rng = np.random.default_rng(3)
    m = rng.standard_normal((80, 6)) + rng.standard_normal((80, 1))
    m[:25, 0] = np.nan
    ours = average_correlation(m, 20)
    for t in (19, 30, 79):
        block = m[t - 19 : t + 1]
        block = block[:, np.isfinite(block).all(axis=0)]
        corr = np.corrcoef(block, rowvar=False)
        p = corr.shape[0]
        assert ours[t] == pytest.approx((corr.sum() - p) / (p * (p - 1)), rel=1e-10)


def test_correlation_with_the_market_matches_pandas() -> None:
    wide = FEATURES.pivot(index="timestamp", columns="symbol", values="ret_1")
    market = wide.mean(axis=1)
    a = wide["AAA"]
    expected = a.rolling(20).corr(market)
    got = FEATURES[FEATURES.symbol == "AAA"].set_index("timestamp")["corr_mkt_20"]
    _close(got, expected.reindex(got.index), "corr_mkt_20")


def test_feature_values_are_finite_or_nan_never_infinite_and_deterministic() -> None:
    numeric = FEATURES.drop(columns=["timestamp", "symbol"]).to_numpy()
    assert not np.isinf(numeric).any()
    again = compute_features(BARS.sample(frac=1.0, random_state=1), CONFIG)  # row order must not matter
    pd.testing.assert_frame_equal(again, FEATURES)


def test_bars_must_be_validated_first() -> None:
    dup = pd.concat([BARS, BARS.iloc[[5]]], ignore_index=True)
    with pytest.raises(SchemaError, match="duplicate timestamp .* AAA"):
        compute_features(dup, CONFIG)
    with pytest.raises(SchemaError, match="volume"):
        compute_features(BARS.drop(columns=["volume"]), CONFIG)
