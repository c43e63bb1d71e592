"""The feature catalogue: which columns a configuration produces, with group, parameters and source.

:func:`feature_specs` is the single source of truth for feature names. The computing code fills
exactly these columns (checked at run time), the manifest lists them, and the training matrix is
built from them and nothing else: labels can never slip into the inputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trading_core.features.config import IndicatorConfig

PER_SYMBOL_GROUPS = ("market", "technical", "microstructure")


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column."""

    name: str
    group: str
    source: str
    """'talib.<FUNC>' when TA-Lib computes it, 'numpy' when written here (no library provides it)."""
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    cross_asset: bool = False
    """Computed after the merge of all symbols (needs the whole universe at each timestamp)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _market(c: IndicatorConfig) -> list[FeatureSpec]:
    specs = [
        FeatureSpec(f"ret_{k}", "market", "numpy", f"log return over {k} bars", {"bars": k}) for k in c.return_horizons
    ]
    specs += [
        FeatureSpec(f"rvol_{w}", "market", "numpy", "realized volatility: std of 1-bar log returns", {"window": w})
        for w in c.vol_windows
    ]
    w = c.range_vol_window
    specs += [
        FeatureSpec(f"parkinson_{w}", "market", "numpy", "Parkinson (1980) high-low volatility", {"window": w}),
        FeatureSpec(f"garman_klass_{w}", "market", "numpy", "Garman-Klass (1980) OHLC volatility", {"window": w}),
        FeatureSpec(
            f"volume_z_{c.volume_window}", "market", "numpy", "z-score of ln(1+volume)", {"window": c.volume_window}
        ),
        FeatureSpec("gap", "market", "numpy", "overnight gap ln(open_t / close_t-1)"),
        FeatureSpec("range", "market", "numpy", "bar range ln(high / low)"),
        FeatureSpec("body", "market", "numpy", "bar body ln(close / open)"),
    ]
    return specs


def _technical(c: IndicatorConfig) -> list[FeatureSpec]:
    specs = [
        FeatureSpec(f"rsi_{p}", "technical", "talib.RSI", "relative strength index", {"period": p})
        for p in c.rsi_periods
    ]
    fast, slow, signal = c.macd
    macd_params = {"fast": fast, "slow": slow, "signal": signal}
    specs += [
        FeatureSpec("macd", "technical", "talib.MACD", "MACD line / close", macd_params),
        FeatureSpec("macd_signal", "technical", "talib.MACD", "MACD signal line / close", macd_params),
        FeatureSpec("macd_hist", "technical", "talib.MACD", "MACD histogram / close", macd_params),
    ]
    bb = {"period": c.bbands_period, "dev": c.bbands_dev}
    specs += [
        FeatureSpec("bb_upper", "technical", "talib.BBANDS", "upper Bollinger band / close - 1", bb),
        FeatureSpec("bb_lower", "technical", "talib.BBANDS", "lower Bollinger band / close - 1", bb),
        FeatureSpec("bb_pos", "technical", "talib.BBANDS", "(close - lower) / (upper - lower)", bb),
        FeatureSpec("bb_width", "technical", "talib.BBANDS", "(upper - lower) / middle", bb),
        FeatureSpec(
            f"atr_{c.atr_period}", "technical", "talib.ATR", "average true range / close", {"period": c.atr_period}
        ),
        FeatureSpec(
            f"adx_{c.adx_period}", "technical", "talib.ADX", "average directional index", {"period": c.adx_period}
        ),
    ]
    specs += [
        FeatureSpec(f"dx_{p}", "technical", "talib.DX", "directional movement index", {"period": p})
        for p in c.dx_periods
    ]
    specs += [
        FeatureSpec(f"cci_{p}", "technical", "talib.CCI", "commodity channel index", {"period": p})
        for p in c.cci_periods
    ]
    w = c.flow_window
    specs += [
        FeatureSpec(
            f"obv_flow_{w}", "technical", "talib.OBV", "OBV change over the window / volume in it", {"window": w}
        ),
        FeatureSpec(f"mfi_{c.mfi_period}", "technical", "talib.MFI", "money flow index", {"period": c.mfi_period}),
    ]
    k, sk, sd = c.stoch
    st = {"fastk": k, "slowk": sk, "slowd": sd}
    specs += [
        FeatureSpec("stoch_k", "technical", "talib.STOCH", "stochastic %K (slow)", st),
        FeatureSpec("stoch_d", "technical", "talib.STOCH", "stochastic %D (slow)", st),
    ]
    specs += [
        FeatureSpec(f"sma_ratio_{p}", "technical", "talib.SMA", "close / SMA - 1", {"period": p}) for p in c.sma_periods
    ]
    specs += [
        FeatureSpec(f"ema_ratio_{p}", "technical", "talib.EMA", "close / EMA - 1", {"period": p}) for p in c.ema_periods
    ]
    return specs


def _microstructure(c: IndicatorConfig) -> list[FeatureSpec]:
    w = c.flow_window
    return [
        FeatureSpec(
            f"cs_spread_{w}",
            "microstructure",
            "numpy",
            "Corwin-Schultz (2012) bid-ask spread estimate, overnight-adjusted, window mean",
            {"window": w},
        ),
        FeatureSpec(
            f"amihud_{w}",
            "microstructure",
            "numpy",
            "ln of Amihud (2002) illiquidity: mean |return| per $1M traded",
            {"window": w},
        ),
        FeatureSpec(
            f"ofi_clv_{w}",
            "microstructure",
            "numpy",
            "close-location order-flow imbalance (Chaikin money flow)",
            {"window": w},
        ),
        FeatureSpec(
            f"ofi_bvc_{w}",
            "microstructure",
            "numpy",
            "bulk-volume-classification imbalance (Easley, Lopez de Prado, O'Hara 2012)",
            {"window": w},
        ),
    ]


def _regime(c: IndicatorConfig, n_symbols: int) -> list[FeatureSpec]:
    short = c.vol_windows[0]
    specs = [
        FeatureSpec(
            "vol_regime_z",
            "regime",
            "numpy",
            f"z-score of ln(rvol_{short}) over its trailing window",
            {"short": short, "window": c.vol_regime_window},
        ),
        FeatureSpec(
            "vol_regime",
            "regime",
            "numpy",
            "-1 low / 0 normal / +1 high volatility regime",
            {"short": short, "window": c.vol_regime_window, "threshold": c.vol_regime_threshold},
        ),
        FeatureSpec(
            "mkt_ret_21",
            "regime",
            "numpy",
            "21-bar sum of the equal-weight universe log return",
            {"window": 21},
            cross_asset=True,
        ),
        FeatureSpec(
            "mkt_rvol_21",
            "regime",
            "numpy",
            "21-bar volatility of the equal-weight universe return",
            {"window": 21},
            cross_asset=True,
        ),
        FeatureSpec(
            f"corr_mkt_{c.corr_window}",
            "regime",
            "numpy",
            "rolling correlation of the symbol's return with the universe return",
            {"window": c.corr_window},
            cross_asset=True,
        ),
    ]
    if n_symbols >= 2:  # an average pairwise correlation needs a pair
        specs.append(
            FeatureSpec(
                f"avg_corr_{c.corr_window}",
                "regime",
                "numpy",
                "average pairwise correlation of the universe's returns",
                {"window": c.corr_window},
                cross_asset=True,
            )
        )
    specs += [
        FeatureSpec(
            "turbulence",
            "regime",
            "numpy",
            "FinRL turbulence: Mahalanobis distance of today's returns from the trailing window",
            {"window": c.turbulence_window},
            cross_asset=True,
        ),
        FeatureSpec(
            "turbulence_log_norm",
            "regime",
            "numpy",
            "ln(turbulence / assets used): size-free",
            {"window": c.turbulence_window},
            cross_asset=True,
        ),
    ]
    return specs


def feature_specs(config: IndicatorConfig, n_symbols: int) -> list[FeatureSpec]:
    """The ordered feature columns of ``config`` over a universe of ``n_symbols``."""
    specs: list[FeatureSpec] = []
    builders = {"market": _market, "technical": _technical, "microstructure": _microstructure}
    for group in config.groups:
        specs += _regime(config, n_symbols) if group == "regime" else builders[group](config)
    names = [s.name for s in specs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"feature names collide: {sorted(duplicated)}")
    return specs
