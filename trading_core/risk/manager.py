"""The RiskManager: adjusts or halts every action, in the training env and at inference alike.

A batch of E portfolios (the vectorised env) or one (the policy) proposes target weights w (E, N),
fractions of equity. :meth:`RiskManager.validate_batch` returns the weights it lets through, in
this order (docs/risk.md):

1. drawdown state: ``peak := max(peak, equity)``, ``drawdown := 1 - equity / peak``;
2. a portfolio halted or cooling down is flat (w := 0, HALTED); its cooldown counts down and, when
   it reaches 0, the breaker re-arms with ``peak := equity``;
3. a portfolio with ``drawdown >= max_drawdown - 1e-12`` halts now: w := 0, HALTED, ``cooldown`` more flat bars;
4. otherwise the limits, each of which only shrinks |w|, so none undoes an earlier one:
   short clip (w := max(w, 0) if shorts are not allowed) -> per-asset clip to +-max_position ->
   gross scale (w *= max_gross / sum|w| when above) -> VaR scale (w *= var_limit / VaR(w) when
   above; exact because VaR is positively homogeneous). ADJUSTED if a step moved a weight by more
   than 1e-12, else APPROVED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from trading_core.risk.limits import RiskLimits
from trading_core.risk.scaling import confidence_scale
from trading_core.risk.var import ReturnsHistory

__all__ = [
    "ADJUSTED",
    "APPROVED",
    "DECISION_NAMES",
    "HALTED",
    "REASON_COOLDOWN",
    "REASON_DRAWDOWN_HALT",
    "REASON_GROSS",
    "REASON_NAMES",
    "REASON_POSITION",
    "REASON_SHORT",
    "REASON_VAR",
    "BatchDecision",
    "PortfolioState",
    "ReturnsHistory",
    "RiskInputs",
    "RiskManager",
    "confidence_scale",
    "describe_reasons",
]

APPROVED, ADJUSTED, HALTED = 0, 1, 2
DECISION_NAMES: tuple[str, ...] = ("approved", "adjusted", "halted")
"""Decision code -> name."""

REASON_POSITION = 1
REASON_GROSS = 2
REASON_SHORT = 4
REASON_VAR = 8
REASON_DRAWDOWN_HALT = 16
REASON_COOLDOWN = 32
REASON_NAMES: dict[int, str] = {
    REASON_POSITION: "position",
    REASON_GROSS: "gross",
    REASON_SHORT: "short",
    REASON_VAR: "var",
    REASON_DRAWDOWN_HALT: "drawdown_halt",
    REASON_COOLDOWN: "cooldown",
}
"""Reason bit -> name."""

TOLERANCE = 1e-12
"""A step that moves no weight by more than this does not count as an adjustment; also the slack of the
drawdown test (1 - 80/100 is 0.19999999999999996 in floating point: a 20% drop must halt at 20%)."""


def describe_reasons(mask: int) -> list[str]:
    """Names of the bits set in a reasons bitmask, in bit order."""
    return [name for bit, name in REASON_NAMES.items() if int(mask) & bit]


class BatchDecision(NamedTuple):
    """What :meth:`RiskManager.validate_batch` let through, per portfolio."""

    weights: np.ndarray
    """(E, N) float64 adjusted weights (zeros when halted)."""
    decision: np.ndarray
    """(E,) int8: APPROVED 0, ADJUSTED 1, HALTED 2."""
    reasons: np.ndarray
    """(E,) int32 bitmask of REASON_* (0 when approved)."""
    var: np.ndarray
    """(E,) VaR of the adjusted weights (0 when halted)."""
    drawdown: np.ndarray
    """(E,) drawdown 1 - equity / peak (>= 0) at this step, before any re-arm."""
    var_requested: np.ndarray
    """(E,) VaR of the weights within the position and gross limits, before the VaR scaling (0 when halted):
    how much risk was asked for (the RL reward penalises asking beyond the limit)."""


@dataclass
class RiskInputs:
    """Market state for :meth:`RiskManager.validate_action` (inference, one portfolio)."""

    returns_window: np.ndarray
    """(L, N) trailing simple asset returns up to and including the current bar (NaN = missing)."""
    symbols: tuple[str, ...] | None = None
    """Asset names for the reasons (default: "asset i")."""


@dataclass
class PortfolioState:
    """The portfolio the action is for."""

    equity: float
    """Current equity (> 0), in any currency unit: only ratios to the peak matter."""
    weights: np.ndarray | None = None
    """Current weights (N,); informational, the limits apply to the target weights."""


class _Limited(NamedTuple):
    weights: np.ndarray
    reasons: np.ndarray
    var: np.ndarray
    var_before: np.ndarray
    gross_before: np.ndarray


class RiskManager:
    """Position, gross, VaR and drawdown limits for ``n_portfolios`` portfolios, with their breaker state.

    The manager holds, per portfolio, the equity peak and the cooldown bars left. A portfolio that
    was never :meth:`reset` starts its peak at the first equity it sees.
    """

    def __init__(self, limits: RiskLimits, n_portfolios: int = 1) -> None:
        if not isinstance(limits, RiskLimits):
            raise TypeError(f"limits must be a RiskLimits, got {type(limits).__name__}")
        if isinstance(n_portfolios, bool) or not isinstance(n_portfolios, int | np.integer) or n_portfolios < 1:
            raise ValueError(f"n_portfolios must be an int >= 1, got {n_portfolios!r}")
        self.limits = limits
        self.n_portfolios = int(n_portfolios)
        self._peak = np.full(self.n_portfolios, np.nan)  # NaN: not started, the next equity becomes the peak
        self._cooldown = np.zeros(self.n_portfolios, dtype=np.int64)

    # -- state -------------------------------------------------------------------------------------

    def reset(self, equity: np.ndarray | float, mask: np.ndarray | None = None) -> None:
        """(Re)start portfolios: peak := equity, breaker armed.

        :param equity: a scalar, one value per portfolio (E,), or one per selected portfolio (mask.sum(),).
        :param mask: (E,) bool, which portfolios to restart (default all).
        """
        sel = np.ones(self.n_portfolios, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if sel.shape != (self.n_portfolios,):
            raise ValueError(f"mask must have shape ({self.n_portfolios},), got {sel.shape}")
        eq = np.asarray(equity, dtype=np.float64)
        k = int(sel.sum())
        if eq.shape == (self.n_portfolios,):
            eq = eq[sel]
        elif eq.ndim == 0 or eq.shape == (k,):
            eq = np.broadcast_to(eq, (k,))
        else:
            raise ValueError(f"equity must be a scalar or have shape ({self.n_portfolios},) or ({k},), got {eq.shape}")
        if not (np.isfinite(eq).all() and (eq > 0).all()):
            raise ValueError(f"equity must be finite and > 0 at reset, got {eq}")
        self._peak[sel] = eq
        self._cooldown[sel] = 0

    def restore(self, peak: np.ndarray | float, cooldown: np.ndarray | int) -> None:
        """Set every portfolio's breaker state (equity peak, flat bars left) as it was stored after a
        previous bar: how a stateless deployed policy continues a portfolio's breaker where it stood."""
        p = np.broadcast_to(np.asarray(peak, dtype=np.float64), (self.n_portfolios,))
        c = np.broadcast_to(np.asarray(cooldown, dtype=np.int64), (self.n_portfolios,))
        if not (np.isfinite(p).all() and (p > 0).all()) or (c < 0).any():
            raise ValueError(f"peak must be finite and > 0 and cooldown >= 0, got {p} and {c}")
        self._peak = p.copy()
        self._cooldown = c.copy()

    @property
    def peak(self) -> np.ndarray:
        """(E,) equity peak since the last (re)start or re-arm (NaN before the first step)."""
        return self._peak.copy()

    @property
    def cooldown_left(self) -> np.ndarray:
        """(E,) flat bars still to come (0: armed)."""
        return self._cooldown.copy()

    @property
    def halted(self) -> np.ndarray:
        """(E,) True while a portfolio is held flat by the breaker."""
        return self._cooldown > 0

    # -- batch -------------------------------------------------------------------------------------

    def validate_batch(
        self, weights: np.ndarray, equity: np.ndarray, t: np.ndarray, history: ReturnsHistory
    ) -> BatchDecision:
        """Validate target weights (E, N) of all portfolios at equity (E,) and bars ``t`` (E,) of ``history``.

        Updates the breaker state (one call = one bar). The input array is not modified.
        """
        return self._validate(weights, equity, t, history, slice(None))[0]

    def _validate(
        self, weights: np.ndarray, equity: np.ndarray, t: np.ndarray, history: ReturnsHistory, rows: slice
    ) -> tuple[BatchDecision, _Limited]:
        lim = self.limits
        peak_all = self._peak[rows]
        w = np.asarray(weights, dtype=np.float64)
        eq = np.asarray(equity, dtype=np.float64)
        if w.ndim != 2 or w.shape != (len(peak_all), history.n_assets):
            raise ValueError(f"weights must have shape ({len(peak_all)}, {history.n_assets}), got {w.shape}")
        if eq.shape != (len(peak_all),):
            raise ValueError(f"equity must have shape ({len(peak_all)},), got {eq.shape}")
        if history.lookback != lim.var_lookback:
            raise ValueError(f"history lookback {history.lookback} != RiskLimits.var_lookback {lim.var_lookback}")
        if not np.isfinite(w).all():
            raise ValueError(f"weights must be finite; portfolio(s) {np.flatnonzero(~np.isfinite(w).all(1))}")
        t = history.check_t(t, len(peak_all))
        peak = np.fmax(peak_all, eq)
        if not (np.isfinite(eq).all() and (peak > 0).all()):
            raise ValueError(f"equity must be finite with a positive peak, got equity {eq} and peak {peak}")

        drawdown = 1.0 - eq / peak  # >= 0; equals -(equity / peak - 1) exactly in IEEE arithmetic
        cool = self._cooldown[rows]
        cooling = cool > 0
        breach = ~cooling & (drawdown >= lim.max_drawdown - TOLERANCE)  # a drop of exactly 20% halts
        halted = cooling | breach
        armed = ~halted

        limited = _apply_limits(w, lim, history, t, armed)
        reasons = (limited.reasons * armed + breach * REASON_DRAWDOWN_HALT + cooling * REASON_COOLDOWN).astype(np.int32)
        decision = (halted * HALTED + (armed & (reasons != 0)) * ADJUSTED).astype(np.int8)

        left = np.where(cooling, cool - 1, breach * lim.cooldown)
        rearm = halted & (left == 0)
        self._peak[rows] = np.where(rearm, eq, peak)
        self._cooldown[rows] = left
        requested = limited.var_before * armed
        return BatchDecision(limited.weights, decision, reasons, limited.var, drawdown, requested), limited

    # -- one portfolio (inference) -----------------------------------------------------------------

    def validate_action(
        self, action: np.ndarray, state: RiskInputs, portfolio: PortfolioState
    ) -> tuple[np.ndarray, str, list[str]]:
        """Validate the target weights (N,) of portfolio 0 now; returns (weights, decision name, reasons).

        The VaR window is the last ``var_lookback`` rows of ``state.returns_window``; the breaker
        state of portfolio 0 advances by one bar, exactly as one :meth:`validate_batch` step.
        """
        lim = self.limits
        window = np.asarray(state.returns_window, dtype=np.float64)
        w = np.asarray(action, dtype=np.float64)
        if window.ndim != 2 or window.shape[0] < 1:
            raise ValueError(f"returns_window must be a non-empty (L, N) array, got shape {window.shape}")
        if w.shape != (window.shape[1],):
            raise ValueError(f"action must have shape ({window.shape[1]},) like the returns window, got {w.shape}")
        names = list(state.symbols) if state.symbols is not None else [f"asset {i}" for i in range(w.size)]
        if len(names) != w.size:
            raise ValueError(f"{len(names)} symbols for {w.size} assets")
        history = ReturnsHistory(window[-lim.var_lookback :], lim.var_lookback, precompute=False)
        t = np.array([history.n_bars - 1])
        cool_before = int(self._cooldown[0])
        res, limited = self._validate(w[None, :], np.array([float(portfolio.equity)]), t, history, slice(0, 1))
        code, mask = int(res.decision[0]), int(res.reasons[0])
        if code == HALTED:
            if mask & REASON_DRAWDOWN_HALT:
                reasons = [
                    f"drawdown {res.drawdown[0]:.1%} >= {lim.max_drawdown:.1%}: halted, flat now and for the next "
                    f"{lim.cooldown} bars"
                ]
            else:
                reasons = [f"cooling down after a drawdown halt: flat, {cool_before - 1} bar(s) left after this one"]
            return res.weights[0], DECISION_NAMES[code], reasons
        return res.weights[0], DECISION_NAMES[code], _explain(w, lim, limited, mask, names)


def _apply_limits(w: np.ndarray, lim: RiskLimits, history: ReturnsHistory, t: np.ndarray, keep: np.ndarray) -> _Limited:
    """Short clip -> per-asset clip -> gross scale -> VaR scale, with a reason bit per step that moved a weight.

    Rows where ``keep`` is False come out as zeros (var 0). Both scalings are applied in one
    multiplication at the end: the VaR of the gross-scaled weights is ``scale * VaR(clipped)``
    (positive homogeneity), so the VaR is computed once, on the clipped weights.
    """
    mp = lim.max_position
    if lim.allow_short:
        short = False
        a = np.abs(w)
        clipped = np.clip(w, -mp, mp)
    else:
        short = w.min(axis=1) < -TOLERANCE
        a = np.maximum(w, 0.0)
        clipped = np.minimum(a, mp)
    absmax = a.max(axis=1)
    position = absmax > mp + TOLERANCE  # the clip moves the largest |w| by max|w| - mp
    np.minimum(absmax, mp, out=absmax)
    gross = np.minimum(a, mp, out=a) @ np.ones(a.shape[1])  # a row sum, faster than .sum(axis=1) for small N

    over = gross > lim.max_gross
    scale = np.ones_like(gross)
    np.divide(lim.max_gross, gross, out=scale, where=over)
    var = history.var_unchecked(clipped, t, lim.var_confidence, lim.var_method) * scale
    over_var = var > lim.var_limit
    vscale = np.ones_like(var)
    np.divide(lim.var_limit, var, out=vscale, where=over_var)

    reasons = (
        position * REASON_POSITION
        + (absmax * (1.0 - scale) > TOLERANCE) * REASON_GROSS
        + np.multiply(short, REASON_SHORT)
        + (absmax * scale * (1.0 - vscale) > TOLERANCE) * REASON_VAR
    )
    total = scale * vscale * keep
    return _Limited(clipped * total[:, None], reasons, var * vscale * keep, var, gross)


def _explain(w: np.ndarray, lim: RiskLimits, limited: _Limited, mask: int, names: list[str]) -> list[str]:
    """Human-readable reasons for one portfolio (row 0 of ``limited``), in the order of :func:`_apply_limits`."""
    reasons: list[str] = []
    cur = w
    if not lim.allow_short:
        for i in np.flatnonzero(cur < -TOLERANCE):
            reasons.append(f"{names[i]} weight {cur[i]:.2f} set to 0: shorting not allowed")
        cur = np.maximum(cur, 0.0)
    for i in np.flatnonzero(np.abs(cur) > lim.max_position + TOLERANCE):
        clipped = float(np.sign(cur[i]) * lim.max_position)
        reasons.append(f"{names[i]} weight {cur[i]:.2f} clipped to {clipped:.2f}")
    if mask & REASON_GROSS:
        gross = float(limited.gross_before[0])
        reasons.append(f"gross {gross:.2f} > limit {lim.max_gross:.2f}: scaled by {lim.max_gross / gross:.2f}")
    if mask & REASON_VAR:
        var = float(limited.var_before[0])
        reasons.append(
            f"{lim.var_method} VaR({lim.var_confidence * 100:g}%) {var:.2%} > limit {lim.var_limit:.2%}: "
            f"scaled by {lim.var_limit / var:.2f}"
        )
    return reasons
