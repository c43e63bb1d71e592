"""The A/B decision rule: the mSPRT formula, its invariants (hypothesis), its always-valid type-I error and
its power under simulation, and the guards."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from trading_core.rollout.sequential import (
    SequentialConfig,
    SequentialResult,
    decide,
    msprt_log_lr,
    running_log_lr,
)

CFG = SequentialConfig()
SWAP = {"promote": "rollback", "rollback": "promote", "wait": "wait"}


@st.composite
def daily_differences(draw: st.DrawFn, max_size: int = 150) -> list[float]:
    """Paired daily return differences: noise of a drawn scale around a drawn edge (often 0)."""
    n = draw(st.integers(0, max_size))
    edge = draw(st.sampled_from([0.0, 0.0, 0.002, -0.002, 0.01]))
    scale = draw(st.sampled_from([1e-4, 5e-3, 2e-2]))
    if draw(st.booleans()):  # hypothesis' own floats (tiny, repeated, extreme) on short paths
        noise = draw(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=min(n, 30), max_size=min(n, 30)))
    else:  # long Gaussian paths, cheaply
        noise = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(size=n).tolist()
    return [edge + scale * z for z in noise]


configs = st.builds(
    SequentialConfig,
    alpha=st.sampled_from([0.01, 0.05, 0.2]),
    min_samples=st.integers(2, 30),
    max_samples=st.integers(30, 120),
    tau=st.sampled_from([0.3, 1.0, 3.0]),
)


# ------------------------------------------------------------------------------------------------ the statistic


def test_msprt_log_lr_is_the_normal_mixture_formula() -> None:
    d = np.array([0.3, -0.1, 0.8, 0.4, 0.0])
    tau, sigma = 0.7, 0.5
    got = msprt_log_lr(d, tau, sigma)
    t2 = (tau * sigma) ** 2
    for n in range(1, len(d) + 1):
        xbar = d[:n].mean()
        expected = 0.5 * math.log(sigma**2 / (sigma**2 + n * t2)) + n**2 * t2 * xbar**2 / (
            2 * sigma**2 * (sigma**2 + n * t2)
        )
        assert got[n - 1] == pytest.approx(expected, rel=1e-12)
    # A per-n sigma gives each n its own formula.
    sigmas = np.array([1.0, 0.5, 0.25, 2.0, 1.0])
    per_n = msprt_log_lr(d, tau, sigmas)
    assert all(per_n[k] == pytest.approx(msprt_log_lr(d, tau, sigmas[k])[k]) for k in range(len(d)))


def test_running_log_lr_uses_the_plug_in_std_and_is_prefix_consistent() -> None:
    d = np.random.default_rng(1).normal(0.2, 1.0, 50)
    path = running_log_lr(d, 1.0)
    assert path[0] == 0.0  # one observation: no std, no evidence
    for k in (2, 7, 50):
        assert path[k - 1] == pytest.approx(msprt_log_lr(d[:k], 1.0, float(np.std(d[:k], ddof=1)))[-1], rel=1e-9)
        np.testing.assert_array_equal(running_log_lr(d[:k], 1.0), path[:k])
    assert (running_log_lr(np.full(30, 0.01), 1.0) == 0).all()  # no variation: no evidence


# ------------------------------------------------------------------------------------------------ invariants


@settings(max_examples=100, deadline=None)
@given(d=daily_differences(), config=configs)
def test_no_verdict_before_min_samples_without_the_guard(d: list[float], config: SequentialConfig) -> None:
    result = decide(d[: config.min_samples - 1], config)
    assert result.decision == "wait" and result.rule == "none" and result.p_value == 1.0


@settings(max_examples=100, deadline=None)
@given(d=daily_differences(), config=configs)
def test_the_decision_is_a_function_of_the_data_only(d: list[float], config: SequentialConfig) -> None:
    first = decide(d, config)
    assert decide(np.array(d), config) == first == decide(tuple(d), config) == decide(list(d), config)
    assert first.n == len(d)
    if len(d) >= 2:
        assert first.mean == pytest.approx(np.mean(d), rel=1e-9, abs=1e-15)
        assert first.std == pytest.approx(np.std(d, ddof=1), rel=1e-6, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(d=daily_differences(), config=configs)
def test_negating_the_differences_swaps_promote_and_rollback(d: list[float], config: SequentialConfig) -> None:
    result, mirrored = decide(d, config), decide([-x for x in d], config)
    assert mirrored.log_lr == result.log_lr and mirrored.p_value == result.p_value
    assert mirrored.rule == result.rule
    if result.rule == "max_samples":  # the cap rolls back whatever the sign: the challenger did not prove itself
        assert mirrored.decision == result.decision == "rollback"
    else:
        assert mirrored.decision == SWAP[result.decision]


@settings(max_examples=150, deadline=None)
@given(d=daily_differences(), config=configs)
def test_every_verdict_rests_on_its_rule(d: list[float], config: SequentialConfig) -> None:
    result = decide(d, config)
    assert result.threshold == pytest.approx(math.log(1 / config.alpha))
    if result.rule == "msprt":
        assert result.n >= config.min_samples and result.log_lr >= result.threshold and result.p_value <= config.alpha
        assert (result.decision == "promote") == (result.mean > 0)
    elif result.rule == "max_samples":
        assert result.n >= config.max_samples and result.decision == "rollback"
        assert result.reason.startswith(f"roll back: no significant difference after {result.n} days")
    else:
        assert result.decision == "wait" and result.n < config.max_samples
    json.dumps(result.as_dict(), allow_nan=False)  # goes to XCom and the audit trail as is


# ------------------------------------------------------------------------------------------------ simulation


def _first_verdicts(paths: np.ndarray, config: SequentialConfig) -> list[SequentialResult]:
    """The verdict each path ends with when decided daily, as the A/B DAG does: the running log LR (prefix-
    consistent) finds the first day the test could stop, and :func:`decide` is asked on that day."""
    threshold = math.log(1 / config.alpha)
    out = []
    for d in paths:
        path = running_log_lr(d, config.tau)
        crossed = np.flatnonzero(path[config.min_samples - 1 :] >= threshold)
        day = config.min_samples + int(crossed[0]) if len(crossed) else config.max_samples
        result = decide(d[:day], config)
        assert decide(d[: day - 1], config).decision == "wait"  # it is the first day with a verdict
        out.append(result)
    return out


def test_the_shortcut_is_the_daily_loop() -> None:
    rng = np.random.default_rng(7)
    paths = rng.normal(0.25, 1.0, (6, CFG.max_samples))
    for d, shortcut in zip(paths, _first_verdicts(paths, CFG), strict=True):
        daily = next(r for n in range(1, CFG.max_samples + 1) if (r := decide(d[:n], CFG)).decision != "wait")
        assert daily == shortcut


def test_type_one_error_is_at_most_alpha_under_the_null() -> None:
    paths, config = 400, CFG
    results = _first_verdicts(np.random.default_rng(2024).normal(0.0, 1.0, (paths, config.max_samples)), config)
    by_test = sum(r.rule == "msprt" for r in results) / paths
    standard_error = math.sqrt(config.alpha * (1 - config.alpha) / paths)
    assert by_test <= config.alpha + 3 * standard_error, f"{by_test:.3f} false verdicts"
    assert all(r.decision == "rollback" for r in results if r.rule == "max_samples")  # the rest roll back at the cap


@pytest.mark.parametrize("edge, verdict", [(0.5, "promote"), (-0.5, "rollback")])
def test_a_clearly_different_challenger_is_decided_before_max_samples(edge: float, verdict: str) -> None:
    results = _first_verdicts(np.random.default_rng(99).normal(edge, 1.0, (200, CFG.max_samples)), CFG)
    early = [r for r in results if r.rule == "msprt" and r.n < CFG.max_samples]
    assert len(early) >= 0.95 * len(results), f"{len(early)} of {len(results)} decided before max_samples"
    assert all(r.decision == verdict for r in results if r.rule == "msprt")


# ------------------------------------------------------------------------------------------------ guards and errors


def test_the_drawdown_guard_rolls_back_at_once() -> None:
    good = np.random.default_rng(3).normal(1.0, 1.0, 60)  # would promote
    assert decide(good, CFG).decision == "promote"
    guarded = decide(good, CFG, challenger_drawdown=0.15)
    assert (guarded.decision, guarded.rule) == ("rollback", "guard")
    assert "challenger drawdown 15.00% >= the guard's 15.00%" in guarded.reason
    assert decide([], CFG, challenger_drawdown=0.4).decision == "rollback"  # even on day 0
    assert decide(good, CFG, challenger_drawdown=0.1499).decision == "promote"
    with pytest.raises(ValueError, match="challenger_drawdown must be a finite number >= 0"):
        decide(good, CFG, challenger_drawdown=float("nan"))


def test_bad_differences_and_configs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"differences\[3\] is nan"):
        decide([0.1, 0.2, -0.1, float("nan"), 0.0], CFG)
    with pytest.raises(ValueError, match=r"differences\[0\] is inf"):
        decide([float("inf")], CFG)
    with pytest.raises(ValueError, match="one-dimensional"):
        decide(np.zeros((3, 2)), CFG)
    with pytest.raises(ValidationError, match="max_samples"):
        SequentialConfig(min_samples=50, max_samples=40)
    with pytest.raises(ValidationError):
        SequentialConfig(alpha=0.05, beta=0.2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        SequentialConfig(alpha=1.5)


def test_reasons_are_readable_with_their_numbers() -> None:
    early = decide([0.01, 0.02, -0.005], CFG)
    assert early.reason.startswith("wait: 3 of at least 20 paired days")
    d = np.random.default_rng(5).normal(0.0, 0.01, 120)
    capped = decide(d, CFG)
    assert capped.rule == "max_samples" and "after 120 days" in capped.reason and "p = " in capped.reason
    flat = decide(np.full(30, 0.001), CFG)
    assert flat.decision == "wait" and "do not vary" in flat.reason
    promoted = decide(np.random.default_rng(3).normal(1.0, 1.0, 60), CFG)
    assert promoted.reason.startswith(f"promote: the challenger is better after {promoted.n} days")
    assert f"log LR {promoted.log_lr:.2f} vs {promoted.threshold:.2f}" in promoted.reason
