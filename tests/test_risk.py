"""The risk manager: limits never exceeded, VaR computed right and without look-ahead, the drawdown breaker.

The property tests draw a seed and the limits with hypothesis and then a whole batch (64 portfolios,
several bars) from numpy, so every example checks thousands of weights at little cost.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from trading_core.errors import ConfigError
from trading_core.risk import (
    ADJUSTED,
    APPROVED,
    HALTED,
    REASON_COOLDOWN,
    REASON_DRAWDOWN_HALT,
    REASON_GROSS,
    REASON_POSITION,
    REASON_SHORT,
    REASON_VAR,
    PortfolioState,
    ReturnsHistory,
    RiskInputs,
    RiskLimits,
    RiskManager,
    confidence_scale,
    describe_reasons,
)

E = 64
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _returns(rng: np.random.Generator, n_bars: int, n_assets: int, nan_share: float = 0.05) -> np.ndarray:
    """Correlated returns with fat tails, some missing values and some all-missing bars."""
    mix = rng.normal(size=(n_assets, n_assets)) / np.sqrt(n_assets)
    vol = rng.uniform(0.005, 0.04, n_assets)
    r = (rng.standard_t(4, size=(n_bars, n_assets)) @ mix) * vol + rng.normal(0, 0.001, n_assets)
    r[rng.random(r.shape) < nan_share] = np.nan
    r[rng.random(n_bars) < nan_share] = np.nan  # whole bars missing
    return r


def _weights(rng: np.random.Generator, n: int, n_assets: int) -> np.ndarray:
    """Target weights at every scale: tiny, ordinary, far beyond the limits; some exact zeros."""
    scale = 10.0 ** rng.uniform(-4, 1, size=(n, 1))
    w = rng.normal(size=(n, n_assets)) * scale
    w[rng.random(w.shape) < 0.1] = 0.0
    return w


limits_st = st.builds(
    RiskLimits,
    max_position=st.floats(0.01, 1.0),
    max_gross=st.floats(0.05, 3.0),
    allow_short=st.booleans(),
    var_confidence=st.sampled_from([0.9, 0.95, 0.975, 0.99]),
    var_limit=st.floats(0.001, 0.1),
    var_method=st.sampled_from(["parametric", "historical"]),
    var_lookback=st.integers(2, 40),
    max_drawdown=st.floats(0.05, 0.5),
    cooldown=st.integers(0, 5),
)


# -- RiskLimits and confidence scaling -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_position", 0.0),
        ("max_position", float("nan")),
        ("max_gross", -1.0),
        ("allow_short", 1),
        ("var_confidence", 1.0),
        ("var_confidence", 0.4),
        ("var_limit", 0.0),
        ("var_method", "monte-carlo"),
        ("var_lookback", 1),
        ("var_lookback", 2.5),
        ("max_drawdown", 0.0),
        ("max_drawdown", 1.5),
        ("cooldown", -1),
    ],
)
def test_limits_reject_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"RiskLimits.{field} must be"):
        RiskLimits(**{field: value})  # type: ignore[arg-type]
    assert issubclass(ConfigError, ValueError)


def test_limits_round_trip_through_dict() -> None:
    lim = RiskLimits(max_position=0.1, var_method="historical", cooldown=3)
    assert RiskLimits.from_dict(lim.to_dict()) == lim
    with pytest.raises(ConfigError, match="no field"):
        RiskLimits.from_dict({"max_postion": 0.1})


def test_confidence_scale_formula_slope_and_off() -> None:
    a = np.array([[0.5, -1.0, 0.2], [1.0, 1.0, -0.4]])
    conf = np.array([0.1, 0.5, 0.8])  # one per asset, broadcast over the portfolios
    np.testing.assert_allclose(confidence_scale(a, conf), a * np.array([0.2, 1.0, 1.0]))
    np.testing.assert_allclose(confidence_scale(a, conf, slope=1.0), a * conf)
    np.testing.assert_allclose(confidence_scale(a, 0.25, slope=3.0), a * 0.75)
    np.testing.assert_allclose(confidence_scale(a, np.full((2, 3), 0.0)), 0.0)
    off = confidence_scale(a, conf, enabled=False)
    np.testing.assert_array_equal(off, a)
    assert off is not a
    with pytest.raises(ValueError, match="confidence"):
        confidence_scale(a, np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="confidence"):
        confidence_scale(a, 1.5)
    with pytest.raises(ValueError, match="slope"):
        confidence_scale(a, 0.5, slope=-1.0)


@given(seed=st.integers(0, 2**32 - 1), slope=st.floats(0.0, 10.0))
@settings(max_examples=100, deadline=None)
def test_confidence_scale_never_grows_or_flips_an_action(seed: int, slope: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(E, 7))
    c = rng.random((E, 7))
    out = confidence_scale(a, c, slope=slope)
    assert (np.abs(out) <= np.abs(a)).all()
    assert (out * a >= 0).all()
    np.testing.assert_allclose(out, a * np.minimum(slope * c, 1.0))


# -- VaR -------------------------------------------------------------------------------------------


def _usable_window(r: np.ndarray, t: int, lookback: int) -> np.ndarray:
    """Reference: the rows of the window ending at t that hold any value, NaN -> 0."""
    window = r[max(0, t - lookback + 1) : t + 1]
    window = window[~np.isnan(window).all(axis=1)]
    return np.nan_to_num(window, nan=0.0)


def _reference_var(r: np.ndarray, w: np.ndarray, t: int, lookback: int, c: float, method: str) -> float:
    x = _usable_window(r, t, lookback)
    if len(x) < 2:
        return 0.0
    if method == "parametric":
        cov = np.atleast_2d(np.cov(x, rowvar=False, ddof=1))
        return float(norm.ppf(c) * np.sqrt(w @ cov @ w) - w @ x.mean(axis=0))
    return float(-np.quantile(x @ w, 1 - c))


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("method", ["parametric", "historical"])
@given(seed=st.integers(0, 2**32 - 1), lookback=st.integers(2, 30), confidence=st.floats(0.8, 0.999))
@settings(max_examples=40, deadline=None)
def test_var_equals_a_direct_numpy_computation(
    method: str, precompute: bool, seed: int, lookback: int, confidence: float
) -> None:
    rng = np.random.default_rng(seed)
    n_bars, n_assets = int(rng.integers(1, 80)), int(rng.integers(1, 6))
    r = _returns(rng, n_bars, n_assets, nan_share=0.15)
    history = ReturnsHistory(r, lookback, precompute=precompute)
    assert history.precomputed is precompute
    t = rng.integers(0, n_bars, size=16)
    w = _weights(rng, 16, n_assets)
    got = history.var(w, t, confidence, method)
    want = [_reference_var(r, w[i], int(t[i]), lookback, confidence, method) for i in range(16)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)


def test_var_is_zero_without_two_usable_bars_and_counts_them() -> None:
    r = np.array([[np.nan, np.nan], [0.01, np.nan], [np.nan, np.nan], [0.02, -0.01], [0.0, 0.03]])
    history = ReturnsHistory.from_returns(r, lookback=3)
    np.testing.assert_array_equal(history.counts, [0, 1, 1, 2, 2])
    w = np.ones((5, 2))
    for method in ("parametric", "historical"):
        var = history.var(w, np.arange(5), 0.99, method)
        assert (var[:3] == 0).all() and (var[3:] != 0).all()


def test_returns_from_prices_and_input_checks() -> None:
    prices = np.array([[100.0, 10.0], [101.0, 10.5], [99.0, np.nan], [100.0, 10.0]])
    h = ReturnsHistory.from_prices(prices, 2)
    assert np.isnan(h.returns[0]).all()
    np.testing.assert_allclose(h.returns[1], [0.01, 0.05])
    assert np.isnan(h.returns[2, 1]) and np.isnan(h.returns[3, 1])
    with pytest.raises(ValueError, match="infinite"):
        ReturnsHistory.from_returns(np.array([[0.0], [np.inf]]), 2)
    with pytest.raises(ValueError, match="lookback"):
        ReturnsHistory.from_returns(np.zeros((3, 2)), 1)
    with pytest.raises(ValueError, match=r"bar indices must be in \[0, 4\)"):
        h.var(np.ones((1, 2)), np.array([4]), 0.99, "parametric")
    with pytest.raises(ValueError, match="bar indices"):
        h.var(np.ones((1, 2)), np.array([-1]), 0.99, "parametric")
    with pytest.raises(ValueError, match="method"):
        h.var(np.ones((1, 2)), np.array([3]), 0.99, "cornish-fisher")


@pytest.mark.parametrize("method", ["parametric", "historical"])
@given(seed=st.integers(0, 2**32 - 1), lookback=st.integers(2, 40))
@settings(max_examples=30, deadline=None)
def test_var_has_no_look_ahead(method: str, seed: int, lookback: int) -> None:
    """Rewriting every return after bar t changes no VaR at bars <= t (precomputed or not)."""
    rng = np.random.default_rng(seed)
    n_bars, n_assets = int(rng.integers(2, 120)), int(rng.integers(1, 6))
    r = _returns(rng, n_bars, n_assets)
    cut = int(rng.integers(0, n_bars - 1))
    changed = r.copy()
    changed[cut + 1 :] = _returns(rng, n_bars - cut - 1, n_assets) * 10
    t = np.arange(cut + 1)
    w = _weights(rng, cut + 1, n_assets)
    for precompute in (True, False):
        a = ReturnsHistory(r, lookback, precompute=precompute).var(w, t, 0.99, method)
        b = ReturnsHistory(changed, lookback, precompute=precompute).var(w, t, 0.99, method)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["parametric", "historical"])
def test_var_is_positively_homogeneous(method: str) -> None:
    rng = np.random.default_rng(3)
    history = ReturnsHistory.from_returns(_returns(rng, 200, 5), 30)
    w, t = _weights(rng, E, 5), rng.integers(0, 200, E)
    s = rng.uniform(0.01, 5.0, size=(E, 1))
    np.testing.assert_allclose(history.var(w * s, t, 0.95, method), history.var(w, t, 0.95, method) * s[:, 0])


# -- limits: the property test ---------------------------------------------------------------------


def _reference_limits(w: np.ndarray, lim: RiskLimits, history: ReturnsHistory, t: int) -> np.ndarray:
    """The four steps, one portfolio at a time, as docs/risk.md states them."""
    w = w.copy()
    if not lim.allow_short:
        w = np.maximum(w, 0.0)
    w = np.clip(w, -lim.max_position, lim.max_position)
    gross = np.abs(w).sum()
    if gross > lim.max_gross:
        w *= lim.max_gross / gross
    var = history.var(w[None, :], np.array([t]), lim.var_confidence, lim.var_method)[0]
    if var > lim.var_limit:
        w *= lim.var_limit / var
    return w


@given(seed=st.integers(0, 2**32 - 1), lim=limits_st)
@PROPERTY
def test_limits_are_never_exceeded_after_validation(seed: int, lim: RiskLimits) -> None:
    rng = np.random.default_rng(seed)
    n_bars, n_assets = int(rng.integers(1, 150)), int(rng.integers(1, 9))
    history = ReturnsHistory.from_returns(_returns(rng, n_bars, n_assets), lim.var_lookback)
    lim = dataclasses.replace(lim, max_drawdown=1.0)  # the breaker has its own tests: keep every portfolio armed
    manager = RiskManager(lim, E)
    manager.reset(1.0)
    for _ in range(4):
        w_in = _weights(rng, E, n_assets)
        t = rng.integers(0, n_bars, E)
        res = manager.validate_batch(w_in, np.ones(E), t, history)
        w = res.weights

        assert w.shape == (E, n_assets) and w.dtype == np.float64
        assert res.decision.dtype == np.int8 and res.reasons.dtype == np.int32
        assert (np.abs(w) <= lim.max_position).all()
        assert (np.abs(w).sum(axis=1) <= lim.max_gross + 1e-12).all()
        if not lim.allow_short:
            assert (w >= 0).all()
        var = history.var(w, t, lim.var_confidence, lim.var_method)
        assert (var <= lim.var_limit + 1e-12).all()
        np.testing.assert_allclose(res.var, var, rtol=1e-9, atol=1e-15)

        # decisions agree with the reasons and with what happened to the weights
        assert not (res.decision == HALTED).any()
        assert ((res.decision == ADJUSTED) == (res.reasons != 0)).all()
        moved = np.abs(w - w_in).max(axis=1)
        assert (moved[res.decision == ADJUSTED] > 1e-12).all()
        assert (moved[res.decision == APPROVED] <= 4e-12).all()
        assert ((res.reasons & REASON_SHORT != 0) == ((w_in.min(axis=1) < -1e-12) & (not lim.allow_short))).all()
        clipped_in = np.maximum(w_in, 0) if not lim.allow_short else w_in
        assert (
            (res.reasons & REASON_POSITION != 0) == (np.abs(clipped_in).max(axis=1) > lim.max_position + 1e-12)
        ).all()
        assert (res.reasons & (REASON_DRAWDOWN_HALT | REASON_COOLDOWN) == 0).all()

        want = np.stack([_reference_limits(w_in[i], lim, history, int(t[i])) for i in range(E)])
        np.testing.assert_allclose(w, want, rtol=1e-9, atol=1e-15)


def test_each_limit_sets_its_reason() -> None:
    history = ReturnsHistory.from_returns(np.random.default_rng(0).normal(0, 0.01, (100, 3)), 60)
    lim = RiskLimits(max_position=0.5, max_gross=0.8, allow_short=False, var_limit=0.5)
    manager = RiskManager(lim, 4)
    w = np.array([[0.1, 0.1, 0.1], [0.7, 0.0, 0.0], [0.4, 0.4, 0.4], [-0.2, 0.1, 0.0]])
    res = manager.validate_batch(w, np.ones(4), np.full(4, 99), history)
    np.testing.assert_array_equal(res.decision, [APPROVED, ADJUSTED, ADJUSTED, ADJUSTED])
    np.testing.assert_array_equal(res.reasons, [0, REASON_POSITION, REASON_GROSS, REASON_SHORT])
    np.testing.assert_allclose(res.weights, [[0.1, 0.1, 0.1], [0.5, 0, 0], [0.8 / 3] * 3, [0, 0.1, 0]])
    assert describe_reasons(REASON_POSITION | REASON_VAR) == ["position", "var"]

    tight = RiskManager(RiskLimits(var_limit=0.001), 1)
    res = tight.validate_batch(np.full((1, 3), 0.2), np.ones(1), np.array([99]), history)
    assert res.reasons[0] == REASON_VAR and res.decision[0] == ADJUSTED
    assert res.var[0] == pytest.approx(0.001, rel=1e-12)


def test_inputs_are_checked_and_not_modified() -> None:
    history = ReturnsHistory.from_returns(np.zeros((10, 2)), 60)
    manager = RiskManager(RiskLimits(), 2)
    w = np.array([[1.0, -1.0], [0.1, 0.1]])
    manager.validate_batch(w, np.ones(2), np.array([5, 9]), history)
    np.testing.assert_array_equal(w, [[1.0, -1.0], [0.1, 0.1]])
    with pytest.raises(ValueError, match="finite"):
        manager.validate_batch(np.array([[np.nan, 0], [0, 0]]), np.ones(2), np.array([5, 9]), history)
    with pytest.raises(ValueError, match="shape"):
        manager.validate_batch(np.zeros((3, 2)), np.ones(3), np.array([5, 9, 9]), history)
    with pytest.raises(ValueError, match="lookback"):
        manager.validate_batch(w, np.ones(2), np.array([5, 9]), ReturnsHistory.from_returns(np.zeros((10, 2)), 5))
    with pytest.raises(ValueError, match="equity"):
        manager.validate_batch(w, np.array([1.0, np.nan]), np.array([5, 9]), history)


# -- the drawdown circuit breaker ------------------------------------------------------------------


def _reference_breaker(path: np.ndarray, max_dd: float, cooldown: int) -> tuple[np.ndarray, np.ndarray]:
    """Per bar: halted?, and the reason (DRAWDOWN_HALT, COOLDOWN or 0), from the state machine of docs/risk.md."""
    peak, left = path[0], 0
    halted = np.zeros(len(path), dtype=bool)
    reason = np.zeros(len(path), dtype=np.int64)
    for k, eq in enumerate(path):
        peak = max(peak, eq)
        if left > 0:
            halted[k], reason[k] = True, REASON_COOLDOWN
            left -= 1
        elif eq / peak - 1 <= -max_dd + 1e-12:
            halted[k], reason[k] = True, REASON_DRAWDOWN_HALT
            left = cooldown
        else:
            continue
        if left == 0:
            peak = eq  # re-arm
    return halted, reason


@given(
    seed=st.integers(0, 2**32 - 1),
    max_dd=st.floats(0.02, 0.5),
    cooldown=st.integers(0, 12),
    vol=st.floats(0.001, 0.08),
)
@PROPERTY
def test_breaker_halts_on_the_breach_and_holds_flat_through_the_cooldown(
    seed: int, max_dd: float, cooldown: int, vol: float
) -> None:
    rng = np.random.default_rng(seed)
    n_steps, n_assets = 60, 4
    paths = 100.0 * np.exp(np.cumsum(rng.normal(-vol / 4, vol, size=(n_steps, E)), axis=0))
    history = ReturnsHistory.from_returns(_returns(rng, n_steps, n_assets), 20)
    lim = RiskLimits(max_drawdown=max_dd, cooldown=cooldown, var_lookback=20, var_limit=1.0)
    manager = RiskManager(lim, E)
    manager.reset(paths[0])
    halted = np.zeros((n_steps, E), dtype=bool)
    breaker_bits = np.zeros((n_steps, E), dtype=np.int64)
    for k in range(n_steps):
        res = manager.validate_batch(rng.normal(0, 2, size=(E, n_assets)), paths[k], np.full(E, k), history)
        halted[k] = res.decision == HALTED
        breaker_bits[k] = res.reasons & (REASON_DRAWDOWN_HALT | REASON_COOLDOWN)
        # no action while halted, whatever was asked
        assert (res.weights[halted[k]] == 0).all() and (res.var[halted[k]] == 0).all()
        assert (res.drawdown >= 0).all()
        assert (halted[k] == (breaker_bits[k] != 0)).all()
        # armed portfolios trade (the weights drawn are never all zero)
        assert (np.abs(res.weights[~halted[k]]).sum(axis=1) > 0).all()
    for e in range(E):
        ref_halted, ref_reason = _reference_breaker(paths[:, e], max_dd, cooldown)
        np.testing.assert_array_equal(halted[:, e], ref_halted)
        np.testing.assert_array_equal(breaker_bits[:, e], ref_reason)

    # every halt is followed by exactly `cooldown` flat bars (or the end of the path), then trading resumes
    for e in range(E):
        starts = np.flatnonzero(np.diff(np.concatenate([[0], halted[:, e].astype(int)])) == 1)
        for s in starts:
            run = halted[s:, e]
            length = int(np.argmin(run)) if not run.all() else len(run)
            assert length % (cooldown + 1) == 0 or s + length == n_steps


@given(seed=st.integers(0, 2**32 - 1), max_dd=st.floats(0.05, 0.5))
@PROPERTY
def test_breaker_never_halts_a_path_that_stays_above_the_threshold(seed: int, max_dd: float) -> None:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.05, size=(80, E))
    paths = 50.0 * np.exp(np.cumsum(steps, axis=0))
    peaks = np.maximum.accumulate(paths, axis=0)
    # squeeze every drawdown into [0, max_dd) while keeping the peaks where they are
    paths = peaks * (1 - (1 - paths / peaks) * (max_dd * 0.999) / max(1 - (paths / peaks).min(), max_dd))
    history = ReturnsHistory.from_returns(_returns(rng, 80, 3), 10)
    manager = RiskManager(RiskLimits(max_drawdown=max_dd, var_lookback=10), E)
    for k in range(80):  # never reset: the first equity seen starts the peak
        res = manager.validate_batch(rng.normal(0, 0.1, (E, 3)), paths[k], np.full(E, k), history)
        assert (res.decision != HALTED).all()
        np.testing.assert_allclose(res.drawdown, 1 - paths[k] / peaks[k], atol=1e-12)


def test_breaker_story_halt_cooldown_rearm() -> None:
    lim = RiskLimits(max_drawdown=0.2, cooldown=3, var_lookback=2, var_limit=1.0)
    history = ReturnsHistory.from_returns(np.zeros((20, 1)), 2)
    manager = RiskManager(lim, 1)
    manager.reset(100.0)
    path = [100.0, 110.0, 90.0, 88.0, 70.0, 60.0, 65.0, 66.0, 53.0, 53.5, 80.0]
    #                     dd 18% 20%:halt cool  cool  cool+re-arm at 65  dd 19.7% dd 18.9%
    decisions, peaks = [], []
    for k, eq in enumerate(path):
        res = manager.validate_batch(np.array([[0.1]]), np.array([eq]), np.array([k]), history)
        decisions.append(int(res.decision[0]))
        peaks.append(float(manager.peak[0]))
    assert decisions == [APPROVED] * 3 + [HALTED] * 4 + [APPROVED] * 4
    assert peaks[6] == 65.0 and peaks[7] == 66.0 and peaks[-1] == 80.0
    assert manager.cooldown_left[0] == 0 and not manager.halted[0]

    # an exact 20% drop halts despite 1 - 80/100 == 0.19999999999999996 in floating point
    manager.reset(100.0)
    res = manager.validate_batch(np.array([[0.1]]), np.array([80.0]), np.array([0]), history)
    assert res.decision[0] == HALTED and res.reasons[0] == REASON_DRAWDOWN_HALT

    # cooldown 0: flat on the halting bar only, re-armed at its equity
    quick = RiskManager(dataclasses.replace(lim, cooldown=0), 1)
    quick.reset(100.0)
    codes = [
        int(quick.validate_batch(np.array([[0.1]]), np.array([eq]), np.array([0]), history).decision[0])
        for eq in (75.0, 75.0, 74.0)
    ]
    assert codes == [HALTED, APPROVED, APPROVED]


def test_reset_selected_portfolios() -> None:
    manager = RiskManager(RiskLimits(cooldown=5), 3)
    history = ReturnsHistory.from_returns(np.zeros((5, 1)), 60)
    manager.reset(100.0)
    manager.validate_batch(np.zeros((3, 1)), np.array([50.0, 50.0, 100.0]), np.zeros(3, dtype=int), history)
    np.testing.assert_array_equal(manager.halted, [True, True, False])
    manager.reset(np.array([7.0]), np.array([False, True, False]))  # one value per selected portfolio
    np.testing.assert_array_equal(manager.halted, [True, False, False])
    np.testing.assert_array_equal(manager.peak, [100.0, 7.0, 100.0])  # a halted peak stays until re-arm
    manager.reset(np.array([1.0, 2.0, 3.0]), np.array([True, False, False]))  # one value per portfolio
    np.testing.assert_array_equal(manager.peak, [1.0, 7.0, 100.0])
    with pytest.raises(ValueError, match="equity"):
        manager.reset(0.0)


# -- one portfolio at inference --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["parametric", "historical"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_validate_action_matches_validate_batch(method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_assets, n_bars = int(rng.integers(1, 8)), int(rng.integers(1, 100))
    lim = RiskLimits(var_method=method, var_lookback=30, allow_short=bool(rng.integers(2)), var_limit=0.01)
    window = _returns(rng, n_bars, n_assets)
    single, batch = RiskManager(lim), RiskManager(lim)
    history = ReturnsHistory.from_returns(window, 30)  # the full window, precomputed
    equity = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.1, 12)))
    for k in range(12):
        action = _weights(rng, 1, n_assets)[0]
        w, decision, reasons = single.validate_action(action, RiskInputs(window), PortfolioState(float(equity[k])))
        res = batch.validate_batch(action[None, :], equity[k : k + 1], np.array([n_bars - 1]), history)
        np.testing.assert_allclose(w, res.weights[0], rtol=1e-9, atol=1e-15)
        assert decision == ("approved", "adjusted", "halted")[res.decision[0]]
        assert (decision == "approved") == (reasons == [])
        assert all(isinstance(r, str) and r for r in reasons)


def test_validate_action_reasons_are_readable() -> None:
    rng = np.random.default_rng(1)
    window = rng.normal(0, 0.02, size=(100, 3))
    lim = RiskLimits(max_position=0.25, max_gross=0.4, allow_short=False, var_limit=0.005, max_drawdown=0.2, cooldown=2)
    manager = RiskManager(lim)
    state = RiskInputs(window, symbols=("AAPL", "MSFT", "SPY"))
    w, decision, reasons = manager.validate_action(np.array([0.4, -0.1, 0.2]), state, PortfolioState(100.0))
    assert decision == "adjusted"
    assert reasons[0] == "MSFT weight -0.10 set to 0: shorting not allowed"
    assert reasons[1] == "AAPL weight 0.40 clipped to 0.25"
    assert reasons[2] == "gross 0.45 > limit 0.40: scaled by 0.89"
    assert reasons[3].startswith("parametric VaR(99%) ") and "> limit 0.50%: scaled by" in reasons[3]
    assert w[1] == 0 and np.abs(w).sum() < 0.4

    w, decision, reasons = manager.validate_action(np.array([0.1, 0.1, 0.1]), state, PortfolioState(120.0))
    assert decision in ("approved", "adjusted")
    w, decision, reasons = manager.validate_action(np.array([0.1, 0.1, 0.1]), state, PortfolioState(90.0))
    assert (decision, reasons) == ("halted", ["drawdown 25.0% >= 20.0%: halted, flat now and for the next 2 bars"])
    assert (w == 0).all()
    w, decision, reasons = manager.validate_action(np.array([0.1, 0.1, 0.1]), state, PortfolioState(90.0))
    assert (decision, reasons) == ("halted", ["cooling down after a drawdown halt: flat, 1 bar(s) left after this one"])
    w, decision, reasons = manager.validate_action(np.array([0.1, 0.1, 0.1]), state, PortfolioState(91.0))
    assert decision == "halted" and reasons[0].endswith("0 bar(s) left after this one")
    _, decision, _ = manager.validate_action(np.array([0.01, 0.01, 0.01]), state, PortfolioState(91.0))
    assert decision == "approved"
