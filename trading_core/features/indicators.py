"""Per-symbol features: market, technical (TA-Lib), microstructure, and the volatility regime.

Every function returns ``{feature name: float64 array aligned with the panel's rows}`` and uses
only bars at or before each row (TA-Lib's indicators are recursive from the first bar forward;
window statistics use trailing windows; nothing is shifted backwards). Scale-dependent outputs
(MACD, ATR, bands, moving averages) are divided by the close so one model can pool symbols of
any price level.
"""

from __future__ import annotations

import math

import numpy as np
import talib
from scipy.special import ndtr

from trading_core.features.config import IndicatorConfig
from trading_core.features.panel import Panel

Columns = dict[str, np.ndarray]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 or not finite (never inf)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = np.isfinite(den) & (den != 0)
    np.divide(num, den, out=out, where=ok)
    return out


def log_returns(panel: Panel) -> np.ndarray:
    """1-bar log return of the close (NaN at each symbol's first bar)."""
    return np.log(panel.close) - np.log(panel.shift(panel.close))


def market_features(panel: Panel, c: IndicatorConfig) -> Columns:
    log_c = np.log(panel.close)
    r1 = log_returns(panel)
    out: Columns = {f"ret_{k}": log_c - np.log(panel.shift(panel.close, k)) for k in c.return_horizons}
    for w in c.vol_windows:
        out[f"rvol_{w}"] = panel.rolling(r1, w, "std")
    w = c.range_vol_window
    hl = np.log(panel.high / panel.low)
    co = np.log(panel.close / panel.open)
    out[f"parkinson_{w}"] = np.sqrt(panel.rolling(hl**2, w, "mean") / (4.0 * math.log(2.0)))
    gk_var = panel.rolling(0.5 * hl**2 - (2.0 * math.log(2.0) - 1.0) * co**2, w, "mean")
    out[f"garman_klass_{w}"] = np.sqrt(np.clip(gk_var, 0.0, None))
    lv = np.log1p(panel.volume)
    vw = c.volume_window
    out[f"volume_z_{vw}"] = _safe_div(lv - panel.rolling(lv, vw, "mean"), panel.rolling(lv, vw, "std"))
    out["gap"] = np.log(panel.open) - np.log(panel.shift(panel.close))
    out["range"] = hl
    out["body"] = co
    return out


def technical_features(panel: Panel, c: IndicatorConfig) -> Columns:
    """TA-Lib indicators per symbol (recursive indicators cannot share a concatenated array)."""
    n = len(panel)
    names: list[str] = [f"rsi_{p}" for p in c.rsi_periods]
    names += ["macd", "macd_signal", "macd_hist", "bb_upper", "bb_lower", "bb_pos", "bb_width"]
    names += [f"atr_{c.atr_period}", f"adx_{c.adx_period}"]
    names += [f"dx_{p}" for p in c.dx_periods] + [f"cci_{p}" for p in c.cci_periods]
    names += [f"mfi_{c.mfi_period}", "stoch_k", "stoch_d", "_obv"]
    names += [f"sma_ratio_{p}" for p in c.sma_periods] + [f"ema_ratio_{p}" for p in c.ema_periods]
    out: Columns = {name: np.full(n, np.nan) for name in names}
    fast, slow, signal = c.macd
    fastk, slowk, slowd = c.stoch
    for _, s in panel.segments():
        h, lo, cl, v = panel.high[s], panel.low[s], panel.close[s], panel.volume[s]
        if len(cl) < 2:
            continue
        for p in c.rsi_periods:
            out[f"rsi_{p}"][s] = talib.RSI(cl, timeperiod=p)
        macd, macd_signal, macd_hist = talib.MACD(cl, fastperiod=fast, slowperiod=slow, signalperiod=signal)
        out["macd"][s], out["macd_signal"][s], out["macd_hist"][s] = macd / cl, macd_signal / cl, macd_hist / cl
        upper, middle, lower = talib.BBANDS(
            cl, timeperiod=c.bbands_period, nbdevup=c.bbands_dev, nbdevdn=c.bbands_dev, matype=talib.MA_Type.SMA
        )
        out["bb_upper"][s], out["bb_lower"][s] = upper / cl - 1.0, lower / cl - 1.0
        out["bb_pos"][s] = _safe_div(cl - lower, upper - lower)
        out["bb_width"][s] = _safe_div(upper - lower, middle)
        out[f"atr_{c.atr_period}"][s] = talib.ATR(h, lo, cl, timeperiod=c.atr_period) / cl
        out[f"adx_{c.adx_period}"][s] = talib.ADX(h, lo, cl, timeperiod=c.adx_period)
        for p in c.dx_periods:
            out[f"dx_{p}"][s] = talib.DX(h, lo, cl, timeperiod=p)
        for p in c.cci_periods:
            out[f"cci_{p}"][s] = talib.CCI(h, lo, cl, timeperiod=p)
        out[f"mfi_{c.mfi_period}"][s] = talib.MFI(h, lo, cl, v, timeperiod=c.mfi_period)
        k, d = talib.STOCH(
            h,
            lo,
            cl,
            fastk_period=fastk,
            slowk_period=slowk,
            slowk_matype=talib.MA_Type.SMA,
            slowd_period=slowd,
            slowd_matype=talib.MA_Type.SMA,
        )
        out["stoch_k"][s], out["stoch_d"][s] = k, d
        out["_obv"][s] = talib.OBV(cl, v)
        for p in c.sma_periods:
            out[f"sma_ratio_{p}"][s] = cl / talib.SMA(cl, timeperiod=p) - 1.0
        for p in c.ema_periods:
            out[f"ema_ratio_{p}"][s] = cl / talib.EMA(cl, timeperiod=p) - 1.0
    w = c.flow_window
    obv = out.pop("_obv")
    out[f"obv_flow_{w}"] = _safe_div(obv - panel.shift(obv, w), panel.rolling(panel.volume, w, "sum"))
    return out


def corwin_schultz(panel: Panel) -> np.ndarray:
    """Two-bar Corwin-Schultz (2012) spread estimate with their overnight adjustment; negatives -> 0.

    The high and low of bar t are shifted by the overnight move when bar t lies wholly above or
    below the previous close, so a gap is not mistaken for a spread.
    """
    prev_close = panel.shift(panel.close)
    up = np.where(panel.low > prev_close, panel.low - prev_close, 0.0)
    down = np.where(panel.high < prev_close, panel.high - prev_close, 0.0)
    adj = np.where(np.isnan(prev_close), np.nan, up + down)  # first bar: adjustment unknown -> no estimate
    high, low = panel.high - adj, panel.low - adj
    hl2 = np.log(high / low) ** 2
    beta = hl2 + panel.shift(hl2)
    h2 = np.maximum(high, panel.shift(high))
    l2 = np.minimum(low, panel.shift(low))
    gamma = np.log(h2 / l2) ** 2
    k = 3.0 - 2.0 * math.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return np.where(np.isnan(spread), np.nan, np.clip(spread, 0.0, None))


def microstructure_features(panel: Panel, c: IndicatorConfig) -> Columns:
    w = c.flow_window
    r1 = log_returns(panel)
    dollar_volume = panel.close * panel.volume
    vol_sum = panel.rolling(panel.volume, w, "sum")
    # Amihud: bars without trading carry no information about price impact; skip them in the mean.
    impact = _safe_div(np.abs(r1), dollar_volume / 1e6)
    amihud = panel.rolling(impact, w, "mean", min_periods=max(2, w // 2))
    clv = _safe_div((panel.close - panel.low) - (panel.high - panel.close), panel.high - panel.low)
    clv = np.where(panel.high == panel.low, 0.0, clv)
    sigma = panel.shift(panel.rolling(r1, w, "std"))  # sigma known before bar t
    buy_share = ndtr(_safe_div(r1, sigma))
    return {
        f"cs_spread_{w}": panel.rolling(corwin_schultz(panel), w, "mean", min_periods=max(2, w // 2)),
        f"amihud_{w}": np.log(amihud + 1e-12),
        f"ofi_clv_{w}": _safe_div(panel.rolling(clv * panel.volume, w, "sum"), vol_sum),
        f"ofi_bvc_{w}": _safe_div(panel.rolling((2.0 * buy_share - 1.0) * panel.volume, w, "sum"), vol_sum),
    }


def volatility_regime(panel: Panel, c: IndicatorConfig) -> Columns:
    """How today's short-term volatility compares with the symbol's own trailing year."""
    short = c.vol_windows[0]
    log_vol = np.log(panel.rolling(log_returns(panel), short, "std"))
    log_vol[~np.isfinite(log_vol)] = np.nan
    w = c.vol_regime_window
    z = _safe_div(log_vol - panel.rolling(log_vol, w, "mean"), panel.rolling(log_vol, w, "std"))
    regime = np.where(z > c.vol_regime_threshold, 1.0, np.where(z < -c.vol_regime_threshold, -1.0, 0.0))
    return {"vol_regime_z": z, "vol_regime": np.where(np.isnan(z), np.nan, regime)}


def per_symbol_features(panel: Panel, c: IndicatorConfig) -> Columns:
    """All features of ``c.groups`` that need one symbol's bars only."""
    out: Columns = {}
    if "market" in c.groups:
        out |= market_features(panel, c)
    if "technical" in c.groups:
        out |= technical_features(panel, c)
    if "microstructure" in c.groups:
        out |= microstructure_features(panel, c)
    if "regime" in c.groups:
        out |= volatility_regime(panel, c)
    return out
