"""The A/B decision rule: a mixture sequential probability ratio test with a pre-declared sample range.

The A/B test looks at the paired daily return differences ``d_i = r_challenger_i - r_champion_i``
every day, so a fixed-sample t-test would be peeked at ~100 times and its false-positive rate would
balloon. The mSPRT (Johari, Pekelis & Walsh 2017, "Always valid inference") keeps its type-I error
below ``alpha`` however often it is looked at: with a normal mixing prior ``N(0, tau^2)`` on the mean
difference and the differences' standard deviation ``sigma``, the likelihood ratio of "mean != 0"
against "mean = 0" after n days is

    log L_n = 0.5 * log(sigma^2 / (sigma^2 + n tau^2)) + n^2 tau^2 xbar_n^2 / (2 sigma^2 (sigma^2 + n tau^2))

and ``P_0(sup_n L_n >= 1/alpha) <= alpha`` (Ville's inequality). We plug in the sample standard deviation
(the differences' scale is unknown) and express ``tau`` in its units, so one configuration fits every
market. Around it, the rollout's pre-declared rules (:class:`SequentialConfig`):

* guard first: a challenger in drawdown beyond ``max_challenger_drawdown`` rolls back at once;
* no test verdict before ``min_samples`` days (the plug-in sigma needs data; a week of luck is not evidence);
* a verdict when ``log L_n >= log(1/alpha)``: promote if the mean difference is positive, else roll back;
* at ``max_samples`` days without a verdict: roll back, the challenger did not prove itself.

Pure: no I/O, the result is a function of the differences (and the guard input) only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SequentialConfig", "SequentialResult", "decide", "msprt_log_lr", "running_log_lr"]

Verdict = Literal["promote", "rollback", "wait"]
Rule = Literal["guard", "msprt", "max_samples", "none"]


class SequentialConfig(BaseModel):
    """The A/B test's rules, declared before it starts (stored with the test; never changed mid-way)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Always-valid type-I error: the chance of any verdict when champion and challenger are equally good."""
    min_samples: int = Field(default=20, ge=2)
    """Paired days before the test may give a verdict (the guard may act earlier)."""
    max_samples: int = Field(default=120, ge=2)
    """Paired days after which a test without a verdict rolls back."""
    tau: float = Field(default=1.0, gt=0)
    """Standard deviation of the mixing prior on the mean difference, in units of the differences' std."""
    max_challenger_drawdown: float = Field(default=0.15, gt=0, le=1)
    """Guard: a challenger drawdown at or beyond this rolls back immediately."""

    @model_validator(mode="after")
    def _samples_ordered(self) -> SequentialConfig:
        if self.max_samples < self.min_samples:
            raise ValueError(f"max_samples ({self.max_samples}) must be >= min_samples ({self.min_samples})")
        return self


@dataclass(frozen=True)
class SequentialResult:
    """The verdict after ``n`` paired days, with the statistics it rests on."""

    decision: Verdict
    n: int
    mean: float
    """Mean daily difference challenger - champion (0 when n = 0)."""
    std: float
    """Sample std (ddof=1) of the differences (0 when n < 2)."""
    log_lr: float
    """mSPRT log likelihood ratio at n (0 when there is no evidence yet: n < 2 or std 0)."""
    threshold: float
    """log(1 / alpha)."""
    p_value: float
    """Always-valid p-value ``min(1, 1 / max_k L_k)`` over the days ``min_samples <= k <= n`` at which the test may
    stop (1 before ``min_samples``: a plug-in std of 2 or 3 days can make ``L_k`` huge without evidence)."""
    reason: str
    rule: Rule
    """What decided: the drawdown ``guard``, the ``msprt`` itself, the ``max_samples`` cap, or ``none`` (wait)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def msprt_log_lr(d: np.ndarray, tau: float, sigma: float | np.ndarray) -> np.ndarray:
    """Running mSPRT log likelihood ratio ``log L_n`` for n = 1..len(d), normal mixture ``N(0, (tau*sigma)^2)``.

    :param d: (n,) the differences.
    :param tau: the prior's std in units of ``sigma`` (the absolute prior std is ``tau * sigma``).
    :param sigma: the differences' std, a scalar or one value per n (a plug-in estimate at each n); > 0.
    """
    x = np.asarray(d, dtype=np.float64)
    n = np.arange(1, len(x) + 1, dtype=np.float64)
    # The same formula divided through by sigma^2 (with z = xbar / sigma): no square of a tiny sigma underflows.
    z = (np.cumsum(x) / n) / np.broadcast_to(np.asarray(sigma, dtype=np.float64), x.shape)
    n_tau2 = n * tau**2
    return -0.5 * np.log1p(n_tau2) + n * n_tau2 * z**2 / (2.0 * (1.0 + n_tau2))


def _running_mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean_k, std_k with ddof=1) of x[:k] for k = 1..n; std is 0 for k = 1. The sums of squares are taken about
    x[0] against cancellation; both statistics of -x are exactly the negatives / equals of those of x."""
    n = np.arange(1, len(x) + 1, dtype=np.float64)
    mean = np.cumsum(x) / n  # the same xbar as msprt_log_lr
    y = x - x[0]
    s1 = np.cumsum(y)
    s2 = np.cumsum(y * y)
    var = np.zeros_like(x)
    var[1:] = np.maximum(s2[1:] - s1[1:] ** 2 / n[1:], 0.0) / (n[1:] - 1.0)
    return mean, np.sqrt(var)


def _running_statistics(x: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean_k, std_k, log L_k) for k = 1..n: log L_k with the plug-in std of the first k differences, 0 (no
    evidence) where k < 2 or that std is 0."""
    mean, std = _running_mean_std(x)
    usable = std > 0
    llr = np.zeros_like(x)
    if usable.any():
        llr[usable] = msprt_log_lr(x, tau, np.where(usable, std, 1.0))[usable]
    return mean, std, llr


def running_log_lr(d: np.ndarray, tau: float) -> np.ndarray:
    """log L_k for k = 1..n as :func:`decide` sees it on day k (plug-in std of the first k differences; 0 where
    k < 2 or that std is 0). Prefix-consistent: ``running_log_lr(d[:k])`` is ``running_log_lr(d)[:k]``."""
    x = np.asarray(d, dtype=np.float64)
    return _running_statistics(x, tau)[2] if len(x) else np.zeros(0)


def _differences(differences: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(differences, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"differences must be one-dimensional, got shape {x.shape}")
    bad = np.flatnonzero(~np.isfinite(x))
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"differences[{i}] is {x[i]} (every paired daily difference must be a finite number)")
    return x


def decide(
    differences: Sequence[float] | np.ndarray,
    config: SequentialConfig,
    *,
    challenger_drawdown: float | None = None,
) -> SequentialResult:
    """The verdict of the A/B test after ``len(differences)`` paired days (see the module docstring for the rules).

    :param differences: daily return differences challenger - champion, oldest first.
    :param challenger_drawdown: the challenger's current drawdown (>= 0), for the guard; None = no guard.
    """
    x = _differences(differences)
    n = len(x)
    threshold = math.log(1.0 / config.alpha)
    if n:
        means, stds, llr_path = _running_statistics(x, config.tau)
        mean, std = float(means[-1]), float(stds[-1])
        log_lr = float(llr_path[-1])
        tail = llr_path[config.min_samples - 1 :]
        p_value = float(min(1.0, math.exp(-max(float(tail.max()), 0.0)))) if len(tail) else 1.0
    else:
        mean, std, log_lr, p_value = 0.0, 0.0, 0.0, 1.0

    def result(decision: Verdict, reason: str, rule: Rule) -> SequentialResult:
        return SequentialResult(decision, n, mean, std, log_lr, threshold, p_value, reason, rule)

    stats = (
        f"mean daily difference {mean:+.4%} (sd {std:.4%}), log LR {log_lr:.2f} vs {threshold:.2f}, p = {p_value:.4f}"
    )
    if challenger_drawdown is not None:
        dd = float(challenger_drawdown)
        if not math.isfinite(dd) or dd < 0:
            raise ValueError(f"challenger_drawdown must be a finite number >= 0, got {challenger_drawdown!r}")
        if dd >= config.max_challenger_drawdown:
            return result(
                "rollback",
                f"roll back: challenger drawdown {dd:.2%} >= the guard's {config.max_challenger_drawdown:.2%} "
                f"after {n} days ({stats})",
                "guard",
            )
    if n >= config.min_samples and std > 0 and log_lr >= threshold:
        if mean > 0:
            return result("promote", f"promote: the challenger is better after {n} days: {stats}", "msprt")
        return result("rollback", f"roll back: the challenger is worse after {n} days: {stats}", "msprt")
    if n >= config.max_samples:
        return result(
            "rollback",
            f"roll back: no significant difference after {n} days (max_samples {config.max_samples}): {stats}",
            "max_samples",
        )
    if n < config.min_samples:
        reason = f"wait: {n} of at least {config.min_samples} paired days before any verdict ({stats})"
    elif std == 0:
        reason = f"wait: the {n} differences do not vary (sd 0): no evidence either way yet"
    else:
        reason = f"wait: not significant after {n} days, at most {config.max_samples - n} more ({stats})"
    return result("wait", reason, "none")
