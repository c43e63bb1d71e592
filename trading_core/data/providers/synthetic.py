"""A synthetic multi-asset market, deterministic by seed: the embedded default for demo and tests.

The market is a fixed universe ``SYN000 .. SYN{n-1}`` simulated day by day from ``origin`` on the
exchange calendar. Any request is a slice of that one path, so overlapping requests agree bar for
bar (the lake's upsert relies on it).

Per day ``t`` and asset ``i``, with regime ``s_t`` (a Markov chain over calm / trending / crisis):

* shocks ``x = a_s * m_t + b_s * f_{sector(i),t} + c_s * e_{i,t}`` with market ``m``, sector ``f``
  and idiosyncratic ``e`` unit-variance Student-t draws (fat tails) and ``a²+b²+c² = 1``; the
  crisis regime raises ``a`` (correlations go to one in a crash);
* the predictable component: ``z_t = kappa * u_{t-1} + sqrt(1 - kappa²) * x_t`` where
  ``u_t = (x_t + ... + x_{t-k+1}) / sqrt(k)`` is the k-bar momentum of the shocks; ``u`` and ``z``
  have unit variance, so ``corr(u_t, z_{t+1}) = kappa`` exactly (``signal_strength``), and the
  momentum of observed returns inherits it; ``kappa = 0`` gives a martingale market;
* GARCH(1,1) volatility clustering ``var_t = w + alpha * (sigma_{t-1} z_{t-1})² + beta * var_{t-1}``,
  scaled by the regime's volatility multiplier;
* log return ``r = mu_s - sigma²/2 + sigma * z + J`` with compound-Poisson jumps ``J`` (overnight gaps).

Bars: ``open = prev_close * exp(gap)`` (the overnight share of the move plus any jump), the intraday
move is a Brownian bridge whose maximum and minimum are sampled exactly, so ``low <= open, close <=
high`` always; volume rises with ``|z|`` and in crisis. Intraday intervals subdivide each session
with a bridge from that day's open to its close on the calendar's intraday bars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from trading_core.data.calendars import expected_bars
from trading_core.data.providers.defects import inject_defects
from trading_core.data.schema import SOURCE_ROW, empty_ohlcv, validate_interval
from trading_core.errors import ConfigError

log = logging.getLogger(__name__)

REGIMES: tuple[str, ...] = ("calm", "trending", "crisis")


@dataclass(frozen=True)
class RegimeParams:
    """Per-regime drift, volatility multiplier and factor loadings."""

    annual_drift: float
    vol_multiplier: float
    market_loading: float
    """a in x = a*m + b*f + c*e: market-factor share of each asset's shock."""
    sector_loading: float
    """b: sector-factor share."""


@dataclass(frozen=True)
class SyntheticMarketConfig:
    """Everything that defines one synthetic market; same config, same bars."""

    seed: int = 42
    """Root seed; every random stream derives from it."""
    n_assets: int = 20
    """Universe size; symbols are SYN000 .. SYN{n-1}."""
    n_sectors: int = 4
    """Assets are assigned to sectors round-robin; sector shocks correlate them."""
    origin: date = date(2010, 1, 4)
    """First simulated session; requests must start on or after it."""
    calendar: str = "XNYS"
    """Session calendar of the market."""
    signal_strength: float = 0.05
    """kappa: correlation of the k-bar shock momentum with the next standardised return (0 = none)."""
    signal_lookback: int = 5
    """k: bars in the momentum signal."""
    t_dof: float = 4.0
    """Degrees of freedom of the Student-t shocks (fat tails); must be > 2."""
    annual_vol: float = 0.25
    """Long-run annualised volatility of the diffusion part."""
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    jump_intensity: float = 0.01
    """Expected jumps per asset per day."""
    jump_mean: float = -0.01
    jump_std: float = 0.05
    overnight_share: float = 0.2
    """Share of the daily diffusion variance that falls overnight (the gap)."""
    defect_rate: float = 0.0
    """Share of bars damaged like a bad vendor feed (see providers.defects); 0 = clean."""
    regimes: tuple[RegimeParams, ...] = field(
        default=(
            RegimeParams(annual_drift=0.08, vol_multiplier=0.8, market_loading=0.45, sector_loading=0.35),
            RegimeParams(annual_drift=0.20, vol_multiplier=1.0, market_loading=0.55, sector_loading=0.35),
            RegimeParams(annual_drift=-0.40, vol_multiplier=2.5, market_loading=0.85, sector_loading=0.25),
        )
    )
    transition: tuple[tuple[float, ...], ...] = (
        (0.985, 0.010, 0.005),
        (0.015, 0.980, 0.005),
        (0.030, 0.020, 0.950),
    )
    """Daily regime transition matrix (rows sum to one), order calm, trending, crisis."""

    def __post_init__(self) -> None:
        if not 0 <= self.signal_strength < 1:
            raise ConfigError(f"signal_strength must be in [0, 1), got {self.signal_strength}")
        if self.t_dof <= 2:
            raise ConfigError(f"t_dof must be > 2 for a finite variance, got {self.t_dof}")
        if not 0 <= self.defect_rate < 0.5:
            raise ConfigError(f"defect_rate must be in [0, 0.5), got {self.defect_rate}")
        if self.n_assets < 1 or self.n_sectors < 1:
            raise ConfigError("n_assets and n_sectors must be >= 1")
        if self.garch_alpha + self.garch_beta >= 1:
            raise ConfigError("garch_alpha + garch_beta must be < 1 (stationary variance)")
        for row in self.transition:
            if abs(sum(row) - 1) > 1e-9:
                raise ConfigError(f"transition rows must sum to 1, got {row}")

    @property
    def symbols(self) -> list[str]:
        return [f"SYN{i:03d}" for i in range(self.n_assets)]


@dataclass(frozen=True)
class SimulatedPath:
    """Daily bars of the whole universe plus the latent state, from ``origin`` to the last session."""

    sessions: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regime: np.ndarray
    """Regime index per day (0 calm, 1 trending, 2 crisis)."""
    sigma: np.ndarray
    """Daily volatility (GARCH x regime multiplier) per day and asset."""
    z: np.ndarray
    """Standardised diffusion shock per day and asset."""
    signal: np.ndarray
    """u_t, the momentum signal known at the close of day t."""


def _student_t(rng: np.random.Generator, dof: float, size: tuple[int, ...]) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(dof, size=size) * np.sqrt((dof - 2) / dof)


def simulate(config: SyntheticMarketConfig, last_day: date) -> SimulatedPath:
    """Simulate the universe from ``config.origin`` through ``last_day`` (inclusive)."""
    return _simulate_cached(config, pd.Timestamp(last_day).date())


@lru_cache(maxsize=4)
def _simulate_cached(config: SyntheticMarketConfig, last_day: date) -> SimulatedPath:
    sessions = expected_bars(config.calendar, config.origin, last_day, "1d")
    n_days, n = len(sessions), config.n_assets
    if n_days == 0:
        raise ConfigError(f"no {config.calendar} session between origin {config.origin} and {last_day}")
    # One independent stream per kind of draw: the i-th draw of a stream never depends on how many
    # days are simulated, so a longer simulation extends a shorter one exactly.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(11)]
    (r_regime, r_market, r_sector, r_idio, r_jump_n, r_jump_s, r_gap, r_high, r_low, r_vol, r_init) = streams

    uniforms = r_regime.random(n_days)
    m = _student_t(r_market, config.t_dof, (n_days,))
    f = _student_t(r_sector, config.t_dof, (n_days, config.n_sectors))
    e = _student_t(r_idio, config.t_dof, (n_days, n))
    jump_count = r_jump_n.poisson(config.jump_intensity, size=(n_days, n))
    jump_size = r_jump_s.normal(config.jump_mean, config.jump_std, size=(n_days, n)) * np.sqrt(jump_count)
    jumps = np.where(jump_count > 0, jump_size + config.jump_mean * (jump_count - 1), 0.0)
    gap_noise = r_gap.standard_normal((n_days, n))
    u_high, u_low = r_high.random((n_days, n)), r_low.random((n_days, n))
    vol_noise = r_vol.standard_normal((n_days, n))
    start_price = np.exp(r_init.uniform(np.log(20), np.log(300), size=n))
    base_volume = np.exp(r_init.uniform(np.log(2e5), np.log(2e7), size=n))
    sector = np.arange(n) % config.n_sectors

    # Regime chain.
    cumulative = np.cumsum(np.asarray(config.transition), axis=1)
    regime = np.zeros(n_days, dtype=np.int8)
    for t in range(1, n_days):
        regime[t] = min(int(np.searchsorted(cumulative[regime[t - 1]], uniforms[t], side="right")), 2)

    params = config.regimes
    drift = np.array([p.annual_drift for p in params])[regime] / 252.0
    vol_mult = np.array([p.vol_multiplier for p in params])[regime]
    a = np.array([p.market_loading for p in params])[regime]
    b = np.array([p.sector_loading for p in params])[regime]
    c = np.sqrt(np.clip(1 - a**2 - b**2, 0.0, None))
    x = a[:, None] * m[:, None] + b[:, None] * f[:, sector] + c[:, None] * e

    kappa, k = config.signal_strength, config.signal_lookback
    daily_var = config.annual_vol**2 / 252.0
    omega = daily_var * (1 - config.garch_alpha - config.garch_beta)
    var = np.full(n, daily_var)
    z = np.empty((n_days, n))
    sigma = np.empty((n_days, n))
    signal = np.zeros((n_days, n))
    prev_u = np.zeros(n)
    prev_shock = np.zeros(n)
    for t in range(n_days):
        var = omega + config.garch_alpha * prev_shock**2 + config.garch_beta * var
        z[t] = kappa * prev_u + np.sqrt(1 - kappa**2) * x[t]
        sigma[t] = np.sqrt(var) * vol_mult[t]
        prev_shock = np.sqrt(var) * z[t]
        window = x[max(0, t - k + 1) : t + 1]
        prev_u = window.sum(axis=0) / np.sqrt(k)
        signal[t] = prev_u

    diffusion = sigma * z
    log_ret = drift[:, None] - 0.5 * sigma**2 + diffusion + jumps
    close = start_price * np.exp(np.cumsum(log_ret, axis=0))
    prev_close = np.vstack([start_price, close[:-1]])

    # Split each day's move into the overnight gap and the intraday part.
    s = config.overnight_share
    gap = s * (drift[:, None] + diffusion) + np.sqrt(s * (1 - s)) * sigma * gap_noise + jumps
    intraday = log_ret - gap
    open_ = prev_close * np.exp(gap)
    sigma_day = sigma * np.sqrt(1 - s)
    # Exact extremes of a Brownian bridge from 0 to `intraday` with variance sigma_day².
    up = 0.5 * (intraday + np.sqrt(intraday**2 - 2 * sigma_day**2 * np.log(u_high)))
    down = 0.5 * (intraday - np.sqrt(intraday**2 - 2 * sigma_day**2 * np.log(u_low)))
    high = open_ * np.exp(up)
    low = open_ * np.exp(down)
    volume = np.round(base_volume * np.exp(0.6 * (np.abs(z) - 0.8) + 0.5 * (vol_mult[:, None] - 1) + 0.25 * vol_noise))
    return SimulatedPath(sessions, open_, high, low, close, volume, regime, sigma, z, signal)


class SyntheticProvider:
    """Provider over :func:`simulate`; the symbols are the universe's ``SYNnnn`` names."""

    name = "synthetic"

    def __init__(self, config: SyntheticMarketConfig | None = None) -> None:
        self.config = config or SyntheticMarketConfig()
        self.calendar = self.config.calendar

    def available_symbols(self) -> list[str]:
        return self.config.symbols

    def fetch(self, symbols: list[str], start: date, end: date, interval: str = "1d") -> pd.DataFrame:
        validate_interval(interval)
        universe = self.config.symbols
        wanted = symbols or universe
        unknown = sorted(set(wanted) - set(universe))
        if unknown:
            raise ConfigError(
                f"synthetic market has no symbol(s) {unknown}: its universe is {universe[0]}..{universe[-1]} "
                f"(n_assets={self.config.n_assets})"
            )
        if pd.Timestamp(start).date() < self.config.origin:
            raise ConfigError(f"start {start} is before the synthetic market's origin {self.config.origin}")
        path = simulate(self.config, end)
        mask = path.sessions >= pd.Timestamp(start, tz="UTC")
        columns = [universe.index(s) for s in wanted]
        if not mask.any():
            return empty_ohlcv()
        if interval == "1d":
            frame = self._daily_frame(path, mask, columns, wanted)
        else:
            frame = self._intraday_frame(path, mask, columns, wanted, interval)
        frame = inject_defects(frame, self.config.defect_rate, self.config.seed)
        frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
        log.info("synthetic: %d bars for %d symbols %s..%s (%s)", len(frame), len(wanted), start, end, interval)
        return frame

    @staticmethod
    def _daily_frame(path: SimulatedPath, mask: np.ndarray, columns: list[int], symbols: list[str]) -> pd.DataFrame:
        days = path.sessions[mask]
        parts = []
        for col, symbol in zip(columns, symbols, strict=True):
            parts.append(
                pd.DataFrame(
                    {
                        "timestamp": days,
                        "symbol": symbol,
                        "open": path.open[mask, col],
                        "high": path.high[mask, col],
                        "low": path.low[mask, col],
                        "close": path.close[mask, col],
                        "volume": path.volume[mask, col],
                    }
                )
            )
        return pd.concat(parts, ignore_index=True)

    def _intraday_frame(
        self, path: SimulatedPath, mask: np.ndarray, columns: list[int], symbols: list[str], interval: str
    ) -> pd.DataFrame:
        cols = np.asarray(columns)
        parts: list[pd.DataFrame] = []
        for day_index in np.flatnonzero(mask):
            day = path.sessions[day_index]
            bars = expected_bars(self.calendar, day, day, interval)
            n_bars = len(bars)
            if n_bars == 0:
                continue
            # A per-day stream: intraday bars of a day never depend on which days were requested.
            rng = np.random.default_rng([self.config.seed, 7, int(day_index)])
            o, cl = np.log(path.open[day_index, cols]), np.log(path.close[day_index, cols])
            step_sigma = path.sigma[day_index, cols] * np.sqrt((1 - self.config.overnight_share) / n_bars)
            steps = rng.standard_normal((n_bars, len(cols))) * step_sigma
            walk = np.cumsum(steps, axis=0)
            fraction = (np.arange(1, n_bars + 1) / n_bars)[:, None]
            bridge = o + walk - fraction * walk[-1] + fraction * (cl - o)  # ends exactly at the close
            bar_open = np.vstack([o, bridge[:-1]])
            bar_close = bridge
            move = bar_close - bar_open
            u1, u2 = rng.random((2, n_bars, len(cols)))
            hi = bar_open + 0.5 * (move + np.sqrt(move**2 - 2 * step_sigma**2 * np.log(u1)))
            lo = bar_open + 0.5 * (move - np.sqrt(move**2 - 2 * step_sigma**2 * np.log(u2)))
            profile = 1.5 - np.sin(np.linspace(0, np.pi, n_bars))  # U-shaped intraday volume
            weights = rng.dirichlet(profile * 20, size=len(cols)).T
            vol = np.round(path.volume[day_index, cols] * weights)
            for j, symbol in enumerate(symbols):
                parts.append(
                    pd.DataFrame(
                        {
                            "timestamp": bars,
                            "symbol": symbol,
                            "open": np.exp(bar_open[:, j]),
                            "high": np.exp(hi[:, j]),
                            "low": np.exp(lo[:, j]),
                            "close": np.exp(bar_close[:, j]),
                            "volume": vol[:, j],
                        }
                    )
                )
        if not parts:
            return empty_ohlcv()
        return pd.concat(parts, ignore_index=True).sort_values(["symbol", "timestamp"], ignore_index=True)
