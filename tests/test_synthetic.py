"""The synthetic market: deterministic, consistent across requests, and statistically realistic."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from trading_core.data.providers.defects import inject_defects
from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider, simulate
from trading_core.errors import ConfigError

CONFIG = SyntheticMarketConfig(seed=3, n_assets=6, origin=date(2010, 1, 4))


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = SyntheticProvider(CONFIG).fetch(["SYN000", "SYN001"], date(2020, 1, 1), date(2020, 3, 1))
    b = SyntheticProvider(CONFIG).fetch(["SYN000", "SYN001"], date(2020, 1, 1), date(2020, 3, 1))
    c = SyntheticProvider(SyntheticMarketConfig(seed=4, n_assets=6)).fetch(
        ["SYN000"], date(2020, 1, 1), date(2020, 3, 1)
    )
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[a.symbol == "SYN000"]["close"].to_numpy(), c["close"].to_numpy())


def test_overlapping_requests_agree_bar_for_bar() -> None:
    provider = SyntheticProvider(CONFIG)
    short = provider.fetch(["SYN002"], date(2015, 6, 1), date(2015, 9, 30)).drop(columns="source_row")
    long = provider.fetch([], date(2015, 1, 1), date(2016, 12, 31)).drop(columns="source_row")
    overlap = long[(long.symbol == "SYN002") & long.timestamp.between(short.timestamp.min(), short.timestamp.max())]
    pd.testing.assert_frame_equal(short.reset_index(drop=True), overlap.reset_index(drop=True))


def test_bars_follow_the_exchange_calendar_and_are_consistent() -> None:
    frame = SyntheticProvider(CONFIG).fetch([], date(2019, 1, 1), date(2019, 12, 31))
    days = pd.DatetimeIndex(frame["timestamp"].unique())
    assert pd.Timestamp("2019-07-04", tz="UTC") not in days  # NYSE holiday
    assert pd.Timestamp("2019-07-05", tz="UTC") in days
    assert (days.dayofweek < 5).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert frame.groupby("symbol").size().nunique() == 1


def test_unknown_symbol_and_early_start_are_refused() -> None:
    with pytest.raises(ConfigError, match="SYN999"):
        SyntheticProvider(CONFIG).fetch(["SYN999"], date(2020, 1, 1), date(2020, 2, 1))
    with pytest.raises(ConfigError, match="origin"):
        SyntheticProvider(CONFIG).fetch(["SYN000"], date(2005, 1, 1), date(2020, 2, 1))


@pytest.fixture(scope="module")
def path():  # type: ignore[no-untyped-def]
    return simulate(SyntheticMarketConfig(seed=11, n_assets=10, signal_strength=0.0), date(2024, 12, 31))


@pytest.fixture(scope="module")
def signal_path():  # type: ignore[no-untyped-def]
    return simulate(SyntheticMarketConfig(seed=11, n_assets=10, signal_strength=0.3), date(2024, 12, 31))


def test_fat_tails_and_volatility_clustering(path) -> None:  # type: ignore[no-untyped-def]
    returns = np.diff(np.log(path.close), axis=0)
    standardised = (returns - returns.mean(axis=0)) / returns.std(axis=0)
    kurtosis = (standardised**4).mean()
    assert kurtosis > 4.0, kurtosis  # a normal market has 3
    squared = standardised**2
    acf1 = np.mean([np.corrcoef(squared[1:, i], squared[:-1, i])[0, 1] for i in range(squared.shape[1])])
    raw_acf1 = np.mean([np.corrcoef(standardised[1:, i], standardised[:-1, i])[0, 1] for i in range(squared.shape[1])])
    assert acf1 > 0.1, acf1  # volatility clusters ...
    assert acf1 > 3 * abs(raw_acf1)  # ... much more than returns themselves autocorrelate


def test_assets_are_correlated_and_more_so_in_crisis(path) -> None:  # type: ignore[no-untyped-def]
    returns = np.diff(np.log(path.close), axis=0)
    regime = path.regime[1:]
    calm, crisis = returns[regime == 0], returns[regime == 2]
    assert len(crisis) > 30, "the chain should visit the crisis regime in 15 years"

    def mean_corr(block: np.ndarray) -> float:
        c = np.corrcoef(block.T)
        return float(c[np.triu_indices_from(c, 1)].mean())

    assert mean_corr(calm) > 0.1
    assert mean_corr(crisis) > mean_corr(calm) + 0.1
    assert crisis.std() > 1.5 * calm.std()


def test_predictable_component_has_the_documented_strength(signal_path) -> None:  # type: ignore[no-untyped-def]
    path = signal_path
    u, z = path.signal[:-1].ravel(), path.z[1:].ravel()
    corr = np.corrcoef(u, z)[0, 1]
    n = len(u)
    assert abs(corr - 0.3) < 4 / np.sqrt(n) + 0.03, corr
    # Visible from prices alone: the 5-day return predicts the next day's return.
    logp = np.log(path.close)
    past = (logp[5:-1] - logp[:-6]).ravel()
    nxt = (logp[6:] - logp[5:-1]).ravel()
    assert np.corrcoef(past, nxt)[0, 1] > 0.1


def test_no_signal_means_no_predictability(path) -> None:  # type: ignore[no-untyped-def]
    p = path
    corr = np.corrcoef(p.signal[:-1].ravel(), p.z[1:].ravel())[0, 1]
    assert abs(corr) < 4 / np.sqrt(p.z[1:].size)


def test_intraday_bars_share_the_daily_open_and_close() -> None:
    provider = SyntheticProvider(CONFIG)
    daily = provider.fetch(["SYN001"], date(2021, 3, 1), date(2021, 3, 5))
    hourly = provider.fetch(["SYN001"], date(2021, 3, 1), date(2021, 3, 5), "1h")
    hourly["day"] = hourly["timestamp"].dt.normalize()
    per_day = hourly.groupby("day").agg(open=("open", "first"), close=("close", "last"), n=("open", "size"))
    np.testing.assert_allclose(per_day["open"].to_numpy(), daily["open"].to_numpy())
    np.testing.assert_allclose(per_day["close"].to_numpy(), daily["close"].to_numpy())
    assert (per_day["n"] >= 6).all()
    assert (hourly["low"] <= hourly[["open", "close"]].min(axis=1) + 1e-9).all()
    assert (hourly["high"] >= hourly[["open", "close"]].max(axis=1) - 1e-9).all()
    again = provider.fetch(["SYN001"], date(2021, 3, 3), date(2021, 3, 3), "1h")
    pd.testing.assert_frame_equal(
        again.drop(columns="source_row").reset_index(drop=True),
        hourly[hourly.day == pd.Timestamp("2021-03-03", tz="UTC")]
        .drop(columns=["day", "source_row"])
        .reset_index(drop=True),
    )


def test_defects_are_deterministic_per_bar() -> None:
    frame = SyntheticProvider(CONFIG).fetch([], date(2018, 1, 1), date(2019, 12, 31)).drop(columns="source_row")
    damaged = inject_defects(frame, 0.05, seed=1)
    again = inject_defects(frame.iloc[::-1].reset_index(drop=True), 0.05, seed=1)
    key = ["symbol", "timestamp", "volume"]
    pd.testing.assert_frame_equal(
        damaged.sort_values(key).reset_index(drop=True), again.sort_values(key).reset_index(drop=True)
    )
    assert len(damaged) > len(frame)  # duplicates were added
    assert damaged["open"].isna().sum() > 0
    assert (damaged["volume"] < 0).sum() > 0
