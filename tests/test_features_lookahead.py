"""Proof that no feature looks ahead: the value at t is the same whatever happens after t.

Every feature of the manifest is computed on bars [0, t] and on bars [0, T] (T > t) whose later
bars were altered (prices, volumes, and a symbol that only starts trading after t); rows <= t must
agree. Labels are the one thing allowed to see the future: they must change, features must not.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider
from trading_core.features import IndicatorConfig, LabelConfig, compute_features
from trading_core.features.labels import LABEL_COLUMNS, make_labels
from trading_core.features.panel import Panel
from trading_core.features.specs import feature_specs

SMALL = IndicatorConfig(
    vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30), return_horizons=(1, 5, 21)
)


def _market(n_assets: int = 6, start: date = date(2021, 1, 4), end: date = date(2022, 12, 30)) -> pd.DataFrame:
    provider = SyntheticProvider(SyntheticMarketConfig(n_assets=n_assets, seed=7))
    return provider.fetch(provider.available_symbols(), start, end).drop(columns=["source_row"])


BARS = _market()
TIMES = np.sort(BARS["timestamp"].unique())


def _alter_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Scramble every bar after ``cut`` (still a valid OHLC bar) and add a symbol listed after it."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    later = out["timestamp"] > cut
    shock = np.exp(rng.normal(0.0, 0.2, later.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col] * shock
    out.loc[later, "volume"] = out.loc[later, "volume"] * rng.uniform(0.1, 10.0, later.sum())
    newcomer = out[later & (out["symbol"] == out["symbol"].iloc[0])].copy()
    newcomer["symbol"] = "LATE00"
    return pd.concat([out, newcomer], ignore_index=True)


def _assert_prefix_equal(config: IndicatorConfig, cut_index: int, seed: int) -> None:
    cut = pd.Timestamp(TIMES[cut_index])
    prefix = compute_features(BARS[BARS["timestamp"] <= cut], config)
    full = compute_features(_alter_after(BARS, cut, seed), config)
    full = full[full["timestamp"] <= cut].reset_index(drop=True)
    assert len(full) == len(prefix) and (full["symbol"] == prefix["symbol"]).all()
    names = [s.name for s in feature_specs(config, n_symbols=BARS["symbol"].nunique())]
    assert names, "the manifest is empty"
    for name in names:  # every feature of the manifest, one by one, so a failure names it
        a, b = prefix[name].to_numpy(), full[name].to_numpy()
        assert np.isfinite(a).any(), f"{name} is never defined before t: the comparison would prove nothing"
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=f"{name} looks ahead")


@pytest.mark.parametrize("config", [SMALL, IndicatorConfig()], ids=["small-windows", "defaults"])
def test_features_at_t_ignore_every_later_bar(config: IndicatorConfig) -> None:
    _assert_prefix_equal(config, cut_index=len(TIMES) - 60, seed=1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_index=st.integers(min_value=80, max_value=len(TIMES) - 2), seed=st.integers(0, 2**16))
def test_no_feature_looks_ahead_at_any_cut(cut_index: int, seed: int) -> None:
    _assert_prefix_equal(SMALL, cut_index, seed)


def test_labels_see_the_future_and_never_enter_the_features() -> None:
    config = IndicatorConfig()
    names = {s.name for s in feature_specs(config, n_symbols=6)}
    assert not names & set(LABEL_COLUMNS), "a label column is among the model inputs"
    cut = pd.Timestamp(TIMES[-40])
    original, altered = Panel.from_frame(BARS), Panel.from_frame(_alter_after(BARS, cut, 3).query("symbol != 'LATE00'"))
    la, lb = make_labels(original, LabelConfig()), make_labels(altered, LabelConfig())
    before = original.timestamp <= cut.tz_localize(None).to_datetime64()
    # Labels of the last h bars before the cut read bars after it: they must change ...
    assert (la.fwd_ret[before] != lb.fwd_ret[before])[np.isfinite(la.fwd_ret[before])].any()
    # ... while the features of those rows, computed from the same altered bars, do not.
    fa = compute_features(BARS, config)
    fb = compute_features(_alter_after(BARS, cut, 3).query("symbol != 'LATE00'"), config)
    cols = sorted(names)
    np.testing.assert_allclose(
        fb.loc[before, cols].to_numpy(), fa.loc[before, cols].to_numpy(), rtol=1e-9, atol=1e-12, equal_nan=True
    )
