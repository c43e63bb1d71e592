"""What a feature set is made of: indicator parameters, the label rule and the dataset layout.

One frozen pydantic model per concern, combined in :class:`FeatureSetConfig`. The DAG builds it
from its params, the CLI from flags, the tests directly; the same object is written into the
manifest, so a feature set can always say how it was made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FEATURE_GROUPS: tuple[str, ...] = ("market", "technical", "regime", "microstructure")
"""The feature groups; a feature set may use any non-empty subset."""

LABEL_NAMES: tuple[str, ...] = ("hold", "buy", "sell")
"""Class index -> name. Hold=0, Buy=1, Sell=2 everywhere (labels, logits, the RL observation)."""


class IndicatorConfig(BaseModel):
    """Windows and periods of every indicator. Defaults include FinRL's INDICATORS list
    (macd, boll_ub/lb, rsi_30, cci_30, dx_30, close_30_sma, close_60_sma) so the set is a superset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: tuple[str, ...] = FEATURE_GROUPS
    """Feature groups to compute (market, technical, regime, microstructure)."""
    return_horizons: tuple[int, ...] = (1, 5, 21, 63)
    """Log-return lookbacks in bars: ret_k = ln(close_t / close_{t-k})."""
    vol_windows: tuple[int, ...] = (21, 63)
    """Realized-volatility windows (std of 1-bar log returns)."""
    range_vol_window: int = Field(default=21, ge=2)
    """Window of the Parkinson and Garman-Klass range-based volatility estimators."""
    volume_window: int = Field(default=21, ge=2)
    """Window of the volume z-score (of ln(1 + volume))."""
    rsi_periods: tuple[int, ...] = (14, 30)
    macd: tuple[int, int, int] = (12, 26, 9)
    """MACD fast, slow and signal periods."""
    bbands_period: int = Field(default=20, ge=2)
    bbands_dev: float = Field(default=2.0, gt=0)
    atr_period: int = Field(default=14, ge=2)
    adx_period: int = Field(default=14, ge=2)
    dx_periods: tuple[int, ...] = (14, 30)
    cci_periods: tuple[int, ...] = (20, 30)
    mfi_period: int = Field(default=14, ge=2)
    stoch: tuple[int, int, int] = (14, 3, 3)
    """Stochastic oscillator fastk, slowk and slowd periods (SMA smoothing)."""
    sma_periods: tuple[int, ...] = (10, 30, 60)
    ema_periods: tuple[int, ...] = (12, 26)
    flow_window: int = Field(default=21, ge=2)
    """Window of the OBV flow and the order-flow / liquidity proxies."""
    vol_regime_window: int = Field(default=252, ge=20)
    """Trailing window over which the short-term volatility is z-scored (volatility regime)."""
    vol_regime_threshold: float = Field(default=1.0, gt=0)
    """|z| beyond which the volatility regime is high (+1) or low (-1)."""
    corr_window: int = Field(default=63, ge=5)
    """Window of the rolling correlation with the market and the average pairwise correlation."""
    turbulence_window: int = Field(default=252, ge=20)
    """History of FinRL's turbulence index (Mahalanobis distance of today's returns)."""

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(FEATURE_GROUPS))
        if unknown or not value:
            raise ValueError(f"feature groups must be a non-empty subset of {FEATURE_GROUPS}, got {value}")
        return tuple(g for g in FEATURE_GROUPS if g in value)  # canonical order: stable manifest and version

    @field_validator(
        "return_horizons", "vol_windows", "rsi_periods", "dx_periods", "cci_periods", "sma_periods", "ema_periods"
    )
    @classmethod
    def _positive_periods(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(p < 1 for p in value):
            raise ValueError(f"periods must be >= 1, got {value}")
        return tuple(sorted(set(value)))


class LabelConfig(BaseModel):
    """The Hold/Buy/Sell rule.

    ``fwd_ret_t = ln(close_{t+h} / entry_t)`` with ``entry_t = open_{t+1}`` (``entry='next_open'``,
    the platform's execution: decide at the close of t, fill at the next open) or ``close_t``.
    ``threshold_t = k * sigma_t * sqrt(h)`` where ``sigma_t`` is the std of 1-bar log returns over
    the ``vol_window`` bars up to t (known at decision time). Label = Buy if fwd_ret > threshold,
    Sell if fwd_ret < -threshold, Hold otherwise; undefined (no label) for the last h bars.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    horizon: int = Field(default=5, ge=1, le=252)
    """h: bars between the decision and the exit."""
    threshold_k: float = Field(default=0.5, ge=0.0, le=10.0)
    """k: threshold in units of the horizon's expected volatility (0.43 splits a Gaussian in thirds)."""
    vol_window: int = Field(default=21, ge=2)
    entry: Literal["next_open", "close"] = "next_open"


class DatasetConfig(BaseModel):
    """How labelled features become training windows and time-ordered splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: int = Field(default=30, ge=1, le=1024)
    """Bars per input window of the forecaster: a sample at t sees rows t-seq_len+1..t."""
    val_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    embargo: int = Field(default=5, ge=0)
    """Bars skipped at the start of validation and test, after the purge (serial correlation)."""
    clip: float = Field(default=5.0, gt=0.0)
    """Scaled features are clipped to [-clip, clip] standard deviations."""


class FeatureSetConfig(BaseModel):
    """Everything that defines a feature set besides its input dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    indicators: IndicatorConfig = IndicatorConfig()
    labels: LabelConfig = LabelConfig()
    dataset: DatasetConfig = DatasetConfig()

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> FeatureSetConfig:
        if self.dataset.val_fraction + self.dataset.test_fraction >= 0.8:
            raise ValueError("val_fraction + test_fraction must leave at least 20% for training")
        return self

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FeatureSetConfig:
        """Build from flat DAG/CLI params (horizon, threshold_k, seq_len, groups, ...); None = default.

        Unknown keys are ignored here (the DAG's params also carry e.g. ``dataset_version``);
        known keys are validated by the models, so a bad value fails with the field name.
        """

        def pick(model: type[BaseModel]) -> dict[str, Any]:
            return {k: params[k] for k in model.model_fields if params.get(k) is not None}

        indicator_args = pick(IndicatorConfig)
        if isinstance(indicator_args.get("groups"), str):
            indicator_args["groups"] = tuple(g.strip() for g in indicator_args["groups"].split(",") if g.strip())
        return cls(
            indicators=IndicatorConfig(**indicator_args),
            labels=LabelConfig(**pick(LabelConfig)),
            dataset=DatasetConfig(**pick(DatasetConfig)),
        )
