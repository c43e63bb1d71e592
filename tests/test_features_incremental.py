"""The online FeatureState against the batch pipeline: same numbers, bar by bar, for every feature.

* parity with ``compute_features`` on synthetic universes (hypothesis over configurations, lengths,
  listing dates, missing bars, flat and untraded bars): bit-identical for every column except
  turbulence, whose Gram/covariance products the batch computes in BLAS blocks of other shapes;
* each TA-Lib recursion against the installed TA-Lib on a single series, and the fma emulation
  against exact rational arithmetic;
* a snapshot restored mid-stream continues exactly like the uninterrupted state; snapshots are
  plain npz (no pickle);
* look-ahead: features at t do not change when the bars after t do;
* bad slices are refused with the symbol/field named and leave the state untouched;
* real data (../shared/data, when present): a subset of the ETF and S&P files.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_core.errors import ConfigError
from trading_core.features import FEATURE_GROUPS, IndicatorConfig, compute_features
from trading_core.features.online import BarSlice, BarSliceError, FeatureState
from trading_core.features.online import talib_state as ta
from trading_core.features.online.numerics import fma
from trading_core.features.online.parity import feature_gaps, read_file_bars

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BLAS_FEATURES = {"turbulence", "turbulence_log_norm"}
"""Equal to the batch within float reassociation only: its products come from BLAS calls on
differently shaped blocks (the batch multiplies many dates' windows at once)."""

SP_SYMBOLS = [
    *("AAPL", "ABT", "ADBE", "AMZN", "BA", "BAC", "C", "CAT", "CSCO", "CVX", "DIS", "GE", "GOOGL", "GS", "HD"),
    *("IBM", "INTC", "JNJ", "JPM", "KO", "MCD", "MMM", "MRK", "MSFT", "NKE", "ORCL", "PEP", "PFE", "PG", "T"),
    *("UNH", "UPS", "V", "VZ", "WFC", "WMT", "XOM"),
    *("APTV", "FTV", "DHR"),  # a 44-bar history, a 2016 listing, a quarantined placeholder row
]

SMALL = IndicatorConfig(vol_regime_window=30, corr_window=10, turbulence_window=20, sma_periods=(5, 20))


def _universe(lengths: dict[str, tuple[int, int]], seed: int, gaps: float = 0.05) -> pd.DataFrame:
    """Random-walk bars: symbol -> (first business day index, bar count); some bars missing, some
    flat (open = high = low = close), some untraded (volume 0)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", periods=max(a + n for a, n in lengths.values()) + 1, tz="UTC")
    frames = []
    for symbol, (start, n) in lengths.items():
        close = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.01, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.01, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.01, n)))
        volume = rng.uniform(1e4, 1e6, n)
        volume[rng.random(n) < 0.05] = 0.0
        flat = rng.random(n) < 0.04
        open_[flat] = high[flat] = low[flat] = close[flat]
        keep = rng.random(n) >= gaps
        keep[:2] = True  # a one-bar symbol: see test_a_symbol_with_a_single_bar
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": days[start : start + n][keep],
                    "symbol": symbol,
                    "open": open_[keep],
                    "high": high[keep],
                    "low": low[keep],
                    "close": close[keep],
                    "volume": volume[keep],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _assert_parity(bars: pd.DataFrame, config: IndicatorConfig) -> None:
    batch = compute_features(bars, config)
    _, online = FeatureState(config, bars["symbol"].unique()).replay(bars)
    assert online is not None
    for gap in feature_gaps(batch, online, config):
        assert gap.nan_mismatches == 0, f"{gap.name}: warm-up NaNs differ from the batch ({gap})"
        if gap.name in BLAS_FEATURES:
            assert gap.max_rel <= 1e-9, gap
        else:
            assert gap.exact, f"{gap.name} differs from the batch: {gap}"


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("config", [SMALL, IndicatorConfig()], ids=["small-windows", "defaults"])
def test_replay_equals_compute_features_for_every_column(config: IndicatorConfig) -> None:
    bars = _universe({"AAA": (0, 330), "BBB": (25, 280), "CCC": (300, 12), "DDD": (3, 310)}, seed=1)
    _assert_parity(bars, config)


def _periods(lo: int, hi: int, size: int = 2) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(lo, hi), min_size=1, max_size=size).map(tuple)


CONFIGS = st.builds(
    IndicatorConfig,
    groups=st.sets(st.sampled_from(FEATURE_GROUPS), min_size=1).map(tuple),
    return_horizons=_periods(1, 30, 3),
    vol_windows=_periods(2, 25),
    range_vol_window=st.integers(2, 20),
    volume_window=st.integers(2, 20),
    rsi_periods=_periods(2, 20),
    macd=st.tuples(st.integers(2, 15), st.integers(2, 30), st.integers(1, 9)),
    bbands_period=st.integers(2, 25),
    bbands_dev=st.sampled_from([1.0, 1.5, 2.0, 2.7]),
    atr_period=st.integers(2, 20),
    adx_period=st.integers(2, 15),
    dx_periods=_periods(2, 20),
    cci_periods=_periods(2, 25),
    mfi_period=st.integers(2, 20),
    stoch=st.tuples(st.integers(1, 15), st.integers(1, 5), st.integers(1, 5)),
    sma_periods=_periods(1, 40, 3),
    ema_periods=_periods(1, 30),
    flow_window=st.integers(2, 25),
    vol_regime_window=st.integers(20, 40),
    vol_regime_threshold=st.sampled_from([0.5, 1.0, 1.7]),
    corr_window=st.integers(5, 30),
    turbulence_window=st.integers(20, 40),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=CONFIGS,
    shapes=st.lists(st.tuples(st.integers(0, 60), st.integers(2, 160)), min_size=1, max_size=4),
    gaps=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_parity_over_configs_lengths_and_gaps(
    config: IndicatorConfig, shapes: list[tuple[int, int]], gaps: float, seed: int
) -> None:
    bars = _universe({f"S{i}": shape for i, shape in enumerate(shapes)}, seed=seed, gaps=gaps)
    _assert_parity(bars, config)


def test_tiny_quotes_and_flat_windows_follow_talib_zero_rules() -> None:
    """Prices of 1e-6 and long flat stretches: TA-Lib's scale-aware zero tests, not fixed bands."""
    bars = _universe({"TINY": (0, 120), "FLAT": (0, 120)}, seed=3)
    tiny = bars["symbol"] == "TINY"
    bars.loc[tiny, ["open", "high", "low", "close"]] *= 1e-6
    flat = (bars["symbol"] == "FLAT") & (bars.index % 120 >= 40) & (bars.index % 120 < 90)
    bars.loc[flat, ["open", "high", "low", "close"]] = 7.5
    _assert_parity(bars, SMALL)


# ------------------------------------------------------------------- each recursion vs TA-Lib


def _series(n: int = 400, seed: int = 5) -> tuple[np.ndarray, ...]:
    b = _universe({"X": (0, n)}, seed=seed, gaps=0.0)
    return tuple(b[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))


def _run(n: int, step: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Feed bars 0..n-1 of one symbol through ``step(idx, pos)``; rows = bars."""
    return np.stack([step(np.array([0]), np.array([i])) for i in range(n)]).reshape(n, -1)


@pytest.mark.parametrize("period", [2, 14, 30])
def test_talib_recursions_continue_exactly(period: int) -> None:
    o, h, lo, c, v = _series()
    n = len(c)
    prev_c = np.r_[np.nan, c[:-1]]
    change = c - prev_c
    with np.errstate(all="ignore"):
        rsi = ta.Rsi(period, 1)
        got = _run(n, lambda i, p: rsi.update(i, p, change[p]))
        np.testing.assert_array_equal(got[:, 0], talib.RSI(c, period))
        ema = ta.EmaBank([period], [0], 1)
        got = _run(n, lambda i, p: ema.update(i, p, c[p])[0])
        np.testing.assert_array_equal(got[:, 0], talib.EMA(c, period))
        tr = np.maximum(np.maximum(h - lo, np.abs(prev_c - h)), np.abs(prev_c - lo))
        atr = ta.Atr(period, 1)
        got = _run(n, lambda i, p: atr.update(i, p, tr[p]))
        np.testing.assert_array_equal(got[:, 0], talib.ATR(h, lo, c, period))
        cci = ta.Cci(period, 1)
        got = _run(n, lambda i, p: cci.update(i, p, (h[p] + lo[p] + c[p]) / 3))
        np.testing.assert_array_equal(got[:, 0], talib.CCI(h, lo, c, period))
        mfi = ta.Mfi(period, 1)
        got = _run(n, lambda i, p: mfi.update(i, p, (h[p] + lo[p] + c[p]) / 3.0, v[p]))
        np.testing.assert_array_equal(got[:, 0], talib.MFI(h, lo, c, v, period))
        bb = ta.BBands(period, 1.7, 1)
        got = _run(n, lambda i, p: np.concatenate(bb.update(i, p, c[p])))
        for j, ref in enumerate(talib.BBANDS(c, period, 1.7, 1.7)):
            np.testing.assert_array_equal(got[:, j], ref)


def test_fma_emulation_is_correctly_rounded() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=4000) * 10.0 ** rng.integers(-3, 4, 4000)
    y = rng.normal(size=4000) * 10.0 ** rng.integers(-3, 4, 4000)
    z = np.where(np.arange(4000) % 2 == 0, -(x * y), rng.normal(size=4000))  # heavy cancellation half the time
    got = fma(x, y, z)
    exact = [float(Fraction(a) * Fraction(b) + Fraction(c)) for a, b, c in zip(x, y, z, strict=True)]
    np.testing.assert_array_equal(got, np.array(exact))


# ------------------------------------------------------------------------ snapshot / restore


def _slices(bars: pd.DataFrame) -> list[BarSlice]:
    return [BarSlice.from_frame(g) for _, g in bars.sort_values(["timestamp", "symbol"]).groupby("timestamp")]


def test_snapshot_restore_continues_exactly_like_the_uninterrupted_state() -> None:
    bars = _universe({"AAA": (0, 200), "BBB": (10, 180), "CCC": (0, 150)}, seed=7)
    slices = _slices(bars)
    straight = FeatureState(SMALL, bars["symbol"].unique())
    expected = [straight.update(s) for s in slices]
    first = FeatureState(SMALL, bars["symbol"].unique())
    for s in slices[:120]:
        first.update(s)
    preview = first.copy().update(slices[120])  # a copy consumes the bar, the original does not
    np.testing.assert_array_equal(preview, expected[120])
    blob = first.snapshot()
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:  # plain arrays: loads without pickle
        assert data["__meta__"].dtype == np.uint8
    resumed = FeatureState.restore(blob)
    assert resumed.symbols == first.symbols and resumed.feature_names == first.feature_names
    for s, want in zip(slices[120:], expected[120:], strict=True):
        np.testing.assert_array_equal(resumed.update(s), want)
    again = dict(FeatureState.restore(resumed.snapshot())._arrays())
    for key, value in resumed._arrays():
        np.testing.assert_array_equal(again[key], value, err_msg=key)


def test_restore_refuses_what_is_not_a_snapshot() -> None:
    with pytest.raises(ConfigError, match="not a feature-state snapshot"):
        FeatureState.restore(b"not an npz")


# -------------------------------------------------------------------------------- look-ahead


def test_features_at_t_do_not_depend_on_later_bars() -> None:
    bars = _universe({"AAA": (0, 160), "BBB": (0, 160), "CCC": (5, 150)}, seed=11)
    cut = np.sort(bars["timestamp"].unique())[100]
    later = bars["timestamp"] > cut
    rng = np.random.default_rng(2)
    altered = bars.copy()
    shock = np.exp(rng.normal(0.0, 0.3, later.sum()))
    for col in ("open", "high", "low", "close"):
        altered.loc[later, col] *= shock
    altered.loc[later, "volume"] *= rng.uniform(0.1, 10.0, later.sum())
    symbols = bars["symbol"].unique()
    a, b = FeatureState(SMALL, symbols), FeatureState(SMALL, symbols)
    seen = 0
    for sa, sb in zip(_slices(bars), _slices(altered), strict=True):
        ra, rb = a.update(sa), b.update(sb)
        if sa.timestamp <= cut:
            np.testing.assert_array_equal(ra, rb)
            seen += 1
        else:
            assert not np.array_equal(ra, rb, equal_nan=True)
    assert seen == 101


# ------------------------------------------------------------------------ bad slices, gaps


def test_bad_slices_are_refused_and_leave_the_state_unchanged() -> None:
    bars = _universe({"AAA": (0, 40), "BBB": (0, 40)}, seed=2, gaps=0.0)
    state = FeatureState(SMALL, ["AAA", "BBB"])
    for s in _slices(bars)[:30]:
        state.update(s)
    before = dict(state._arrays())
    nxt = _slices(bars)[30]
    cases = {
        "not in this state's universe": BarSlice(nxt.timestamp, ["AAA", "ZZZ"], *_ohlcv(2)),
        "repeats a symbol": BarSlice(nxt.timestamp, ["AAA", "AAA"], *_ohlcv(2)),
        "close=nan": BarSlice(nxt.timestamp, ["AAA"], *_ohlcv(1, close=np.nan)),
        "volume=-1.0": BarSlice(nxt.timestamp, ["BBB"], *_ohlcv(1, volume=-1.0)),
        "not after the last one": BarSlice(_slices(bars)[29].timestamp, ["AAA"], *_ohlcv(1)),
        "holds no bars": BarSlice(nxt.timestamp, [], *_ohlcv(0)),
    }
    for message, bad in cases.items():
        with pytest.raises(BarSliceError, match=message.replace("(", r"\(")):
            state.update(bad)
    after = dict(state._arrays())
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def _ohlcv(n: int, close: float = 10.0, volume: float = 100.0) -> list[np.ndarray]:
    return [np.full(n, 10.0), np.full(n, 11.0), np.full(n, 9.0), np.full(n, close), np.full(n, volume)]


def test_a_missing_symbol_gets_a_nan_row_and_continues_its_own_sequence() -> None:
    bars = _universe({"AAA": (0, 60), "BBB": (0, 60)}, seed=4, gaps=0.0)
    slices = _slices(bars)
    state = FeatureState(SMALL, ["AAA", "BBB"])
    for s in slices[:40]:
        state.update(s)
    only_a = slices[40]
    keep = [i for i, sym in enumerate(only_a.symbols) if sym == "AAA"]
    sub = BarSlice(
        only_a.timestamp, ["AAA"], *(getattr(only_a, k)[keep] for k in ("open", "high", "low", "close", "volume"))
    )
    row = state.update(sub)
    assert state.present.tolist() == [True, False] and np.isnan(row[1]).all() and np.isfinite(row[0]).any()
    assert state.bars.tolist() == [41, 40]  # BBB's next bar is its 41st, whatever the calendar says
    frame = state.frame(row)
    assert frame["symbol"].tolist() == ["AAA"] and list(frame.columns[2:]) == state.feature_names


def test_a_symbol_with_a_single_bar_differs_only_in_period_one_talib_outputs() -> None:
    """The batch skips TA-Lib for a symbol with one bar (all NaN); with a second bar it fills period-1
    SMA/EMA/STOCH at the first bar. The state cannot know a second bar will come: it gives TA-Lib's
    value, the batch's value once the symbol has two bars. Every other column agrees."""
    config = SMALL.model_copy(update={"sma_periods": (1, 5), "ema_periods": (1, 3), "stoch": (1, 1, 1)})
    bars = _universe({"AAA": (0, 50), "BBB": (10, 1)}, seed=1)
    batch = compute_features(bars, config)
    _, online = FeatureState(config, ["AAA", "BBB"]).replay(bars)
    assert online is not None
    differ = {g.name for g in feature_gaps(batch, online, config) if not g.exact}
    assert differ == {"sma_ratio_1", "ema_ratio_1", "stoch_k", "stoch_d"}
    single = online["symbol"] == "BBB"
    assert np.isfinite(online.loc[single, sorted(differ)].to_numpy()).all()
    assert batch.loc[batch["symbol"] == "BBB", sorted(differ)].isna().all().all()


def test_technical_parameters_talib_rejects_are_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="cci period 1"):
        FeatureState(IndicatorConfig(cci_periods=(1, 20)), ["AAA"])


# ------------------------------------------------------------------------------- warm start


def test_warm_on_the_whole_history_equals_replay_and_a_tail_restarts_only_recursions() -> None:
    bars = _universe({"AAA": (0, 400), "BBB": (0, 400), "CCC": (0, 400)}, seed=9, gaps=0.0)
    last = bars["timestamp"].max()
    batch = compute_features(bars, SMALL)
    batch_last = batch[batch["timestamp"] == last].reset_index(drop=True)
    head, tail = bars[bars["timestamp"] < last], bars[bars["timestamp"] == last]
    full = FeatureState.warm(head, SMALL, symbols=np.array(["CCC", "BBB", "AAA"]))  # any order: sorted
    assert full.symbols == ["AAA", "BBB", "CCC"]
    with pytest.raises(ConfigError, match="outside the universe"):
        FeatureState.warm(head, SMALL, symbols=["AAA", "BBB"])
    np.testing.assert_array_equal(
        full.frame(full.update(BarSlice.from_frame(tail)))[full.feature_names], batch_last[full.feature_names]
    )
    short = FeatureState.warm(head, SMALL, warmup_bars=150)
    got = short.frame(short.update(BarSlice.from_frame(tail)))
    gaps = {g.name: g for g in feature_gaps(batch_last, got, SMALL)}
    for name, gap in gaps.items():
        assert gap.nan_mismatches == 0, name
        if not gap.recursive:  # windows shorter than the tail: equal up to rounding of the restarted sums
            assert gap.max_rel <= 1e-9, gap
    assert any(not gaps[n].exact for n in ("ema_ratio_12", "rsi_14", "adx_14")), "a 150-bar tail restarts EMA/RSI/ADX"


# --------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not on this machine")
def test_real_etf_and_sp500_bars_replay_to_the_batch_features() -> None:
    """ETFs over 10 years (listing dates, zero-volume days) and 40 S&P stocks over 3 years with
    windows small enough that turbulence takes the many-assets (Gram) path."""
    from datetime import date

    etf = read_file_bars(
        SHARED / "etfs_daily_1993-01-29_2025-12-26.csv.gz", ["SPY", "TLT", "GLD", "XLE", "EEM"], date(2015, 1, 1)
    )
    assert etf["symbol"].nunique() == 5 and len(etf) > 10_000
    _assert_parity(etf, IndicatorConfig())
    sp = read_file_bars(SHARED / "sp500_daily_2013-02-08_2018-02-07.csv.gz", SP_SYMBOLS, date(2015, 6, 1))
    assert sp["symbol"].nunique() == len(SP_SYMBOLS)
    _assert_parity(sp, IndicatorConfig(corr_window=20, turbulence_window=30, vol_regime_window=60))
