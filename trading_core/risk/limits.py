"""The risk limits: one frozen dataclass, validated on construction, saved with the model bundle.

The same :class:`RiskLimits` object configures the :class:`~trading_core.risk.manager.RiskManager`
inside the RL environment during training and in the policy at inference, so the agent is trained
under exactly the constraints it will trade under. Weights are fractions of equity (signed:
negative = short).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any, Literal

from trading_core.errors import ConfigError

VAR_METHODS: tuple[str, ...] = ("parametric", "historical")
"""The VaR estimators; see :mod:`trading_core.risk.var`."""


@dataclass(frozen=True)
class RiskLimits:
    """Position, leverage, VaR and drawdown limits of one portfolio (every portfolio of a batch)."""

    max_position: float = 0.25
    """Largest |weight| of any one asset, as a fraction of equity (> 0)."""
    max_gross: float = 1.0
    """Largest gross exposure sum(|w|) (gross leverage, > 0)."""
    allow_short: bool = True
    """False: negative weights are clipped to 0 before any other check."""
    var_confidence: float = 0.99
    """Confidence c of the 1-bar VaR, in (0.5, 1)."""
    var_limit: float = 0.03
    """Largest 1-bar VaR, as a positive fraction of equity; weights are scaled down to fit."""
    var_method: Literal["parametric", "historical"] = "parametric"
    """"parametric" (Gaussian: z_c * sd - mean of the portfolio return) or "historical" (empirical quantile)."""
    var_lookback: int = 60
    """Trailing bars of asset returns the VaR is estimated from (>= 2)."""
    max_drawdown: float = 0.20
    """Circuit breaker: halt (flatten) when equity / peak - 1 <= -max_drawdown; in (0, 1]."""
    cooldown: int = 10
    """Bars held flat after the halting bar; then the breaker re-arms with peak := current equity (>= 0)."""

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("max_position", _finite(self.max_position) and self.max_position > 0, "a finite number > 0"),
            ("max_gross", _finite(self.max_gross) and self.max_gross > 0, "a finite number > 0"),
            ("allow_short", isinstance(self.allow_short, bool), "a bool"),
            ("var_confidence", _finite(self.var_confidence) and 0.5 < self.var_confidence < 1, "in (0.5, 1)"),
            ("var_limit", _finite(self.var_limit) and self.var_limit > 0, "a finite number > 0"),
            ("var_method", self.var_method in VAR_METHODS, f"one of {VAR_METHODS}"),
            ("var_lookback", _int(self.var_lookback) and self.var_lookback >= 2, "an int >= 2"),
            ("max_drawdown", _finite(self.max_drawdown) and 0 < self.max_drawdown <= 1, "in (0, 1]"),
            ("cooldown", _int(self.cooldown) and self.cooldown >= 0, "an int >= 0"),
        ]
        for field, ok, expected in checks:
            if not ok:
                raise ConfigError(f"RiskLimits.{field} must be {expected}, got {getattr(self, field)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for the model bundle and MLflow params)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskLimits:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not pass silently)."""
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"RiskLimits has no field(s) {unknown}")
        return cls(**data)


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
