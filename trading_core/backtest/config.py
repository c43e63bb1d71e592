"""The configuration of a walk-forward run: folds, seeds and the size of everything trained in each fold.

:class:`WalkForwardConfig` is what ``trading walk-forward`` and the training DAG build and
:func:`~trading_core.backtest.walkforward.run_walk_forward` reads; its defaults are a small CPU run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trading_core.backtest.strategies import STRATEGIES

SMALL_FORECASTER: dict[str, Any] = {"ensemble_size": 3, "cnn_filters": (16,), "lstm_units": 16, "attention_heads": 2}
SMALL_TRAINING: dict[str, Any] = {"epochs": 5, "patience": 2, "max_train_samples": 30_000}


class WalkForwardConfig(BaseModel):
    """Folds, seeds and the size of everything trained in each fold (defaults: a small CPU run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_folds: int = Field(default=3, ge=1)
    test_size: int = Field(default=252, ge=3)
    """Bars per test window."""
    mode: Literal["expanding", "rolling"] = "expanding"
    train_size: int | None = Field(default=None, ge=10)
    """Bars per training window (rolling mode; expanding: None = from the first usable bar)."""
    purge: int | None = Field(default=None, ge=0)
    """Bars between a training window and its test window; None = the label horizon."""
    embargo: int = Field(default=0, ge=0)
    """Bars after a test window that later training windows skip (rolling/expanding alike), and bars
    dropped from the head of each fold's validation tail."""
    val_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    """Tail of each training window used for early stopping and the ensemble's weights."""
    seeds: tuple[int, ...] = (0,)
    forecaster: dict[str, Any] = Field(default_factory=lambda: dict(SMALL_FORECASTER))
    """ForecasterConfig overrides."""
    forecaster_train: dict[str, Any] = Field(default_factory=lambda: dict(SMALL_TRAINING))
    """TrainConfig overrides (the seed is the fold's seed)."""
    algo: str = "ppo"
    """Algorithm of the pure RL and hybrid agents."""
    timesteps: int = Field(default=30_000, ge=1)
    """Environment steps per agent (and per ensemble member)."""
    members: tuple[str, ...] = ("sac", "td3")
    """The ensemble agent's members (('ppo', 'a2c') is much cheaper on a CPU)."""
    n_envs: int = Field(default=4, ge=1)
    env: dict[str, Any] = Field(default_factory=dict)
    """EnvConfig overrides (every strategy, before the per-variant blocks and confidence scaling)."""
    agent: dict[str, Any] = Field(default_factory=dict)
    """SB3 overrides (a dict under an algorithm's name applies to it only)."""
    strategies: tuple[str, ...] = STRATEGIES
    symbols: tuple[str, ...] | None = None
    cost_multipliers: tuple[float, ...] = (1.0,)
    """Each strategy is back-tested once per multiplier of commission, slippage and impact (the agents
    are trained at 1x); the summary and the selection use 1x."""
    allow_short: bool = True
    """Forecaster-only rule: short on Sell (else flat)."""
    rule_max_position: float = Field(default=1.0, gt=0.0, le=1.0)
    """Forecaster-only rule: its action at full confidence, a fraction of the per-asset risk limit."""
    threads: int | None = 1
    device: str = "cpu"

    @field_validator("strategies")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if unknown := sorted(set(value) - set(STRATEGIES)):
            raise ValueError(f"unknown strategies {unknown}; expected some of {list(STRATEGIES)}")
        if not value:
            raise ValueError("at least one strategy")
        return value

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one seed")
        return value

    @field_validator("cost_multipliers")
    @classmethod
    def _has_one(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if 1.0 not in value or any(m < 0 for m in value):
            raise ValueError("cost_multipliers must include 1.0 and be >= 0")
        return value
