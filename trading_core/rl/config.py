"""Configuration of the trading environment: market frictions, observation blocks, reward weights."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trading_core.risk.limits import RiskLimits

OBSERVATION_BLOCKS: tuple[str, ...] = (
    "market", "technical", "regime", "forecast", "portfolio", "risk", "execution",
)  # fmt: skip
"""Switchable parts of the observation; 'pure RL' = every block but 'forecast'."""


class RewardWeights(BaseModel):
    """reward_t = core_t + alpha * alignment_t - beta * var_excess_t - gamma * drawdown_t - impact_weight * impact_t

    * core: portfolio return over the bar net of all costs, divided by the universe's average
      daily volatility at the decision (a risk-adjusted return, comparable across regimes);
    * alignment: sum_i w_i * (p_buy_i - p_sell_i) * confidence_i, the executed weights' agreement
      with the forecaster (0 when the forecast block is absent);
    * var_excess: max(0, VaR(requested weights) / limit - 1), how far the agent asked beyond the VaR
      limit (requested = within the position and gross limits, before the risk manager's VaR scaling;
      the manager enforces the limit, this teaches the agent not to ask);
    * drawdown: current drawdown from the episode's peak equity (>= 0);
    * impact: square-root market-impact cost of the bar's trades, as a fraction of equity.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.1, ge=0)
    beta: float = Field(default=0.1, ge=0)
    gamma: float = Field(default=0.1, ge=0)
    impact_weight: float = Field(default=1.0, ge=0)
    scale: float = Field(default=1.0, gt=0)
    """Multiplies the whole reward (PPO likes rewards of order 1 per step)."""


class EnvConfig(BaseModel):
    """One trading environment. Every friction is a parameter; defaults are a liquid US equity market."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    initial_cash: float = Field(default=1_000_000.0, gt=0)
    cost_bps: float = Field(default=1.0, ge=0)
    """Commission + fees per traded notional, basis points."""
    slippage_bps: float = Field(default=2.0, ge=0)
    """Half-spread paid on every trade, basis points."""
    impact_coef: float = Field(default=0.1, ge=0)
    """Square-root impact: cost = coef * sigma_daily * sqrt(traded / ADV) * traded (Almgren et al. 2005)."""
    adv_window: int = Field(default=21, ge=1)
    """Bars of the average daily dollar volume and of the daily volatility used by impact."""
    window: int = Field(default=5, ge=1)
    """Bars of market features in the observation (the market block is a window; other blocks the last bar)."""
    episode_length: int | None = Field(default=252, ge=2)
    """Steps per episode from a random start (None = from the first usable bar to the end of the data)."""
    blocks: tuple[str, ...] = OBSERVATION_BLOCKS
    confidence_scaling: bool = True
    """final = action * min(slope * confidence, 1) before the risk manager (needs the forecast data)."""
    confidence_slope: float = Field(default=2.0, gt=0)
    risk: RiskLimits = RiskLimits()
    reward: RewardWeights = RewardWeights()
    obs_clip: float = Field(default=10.0, gt=0)
    mode: Literal["portfolio", "single"] = "portfolio"
    """'single': one asset (the data must hold exactly one); 'portfolio': weights over all assets."""
