"""The governance policy and its evaluation: a pure function from evidence to pass/fail with reasons.

The policy is a YAML file (``config/governance.yaml``). :func:`evaluate_policy` checks the
candidate's walk-forward metrics (and, when given, the champion's, the drift share and the per-fold
Sharpe ratios) against it. Every check **fails closed**: missing or non-finite evidence fails the
check that needs it, so an incomplete run can never be promoted. The Airflow gates (sensors) call
this function; their results go to MLflow tags and the audit table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trading_core.errors import ConfigError

DEFAULT_POLICY_PATH = Path("config/governance.yaml")


class GovernancePolicy(BaseModel):
    """Thresholds a candidate must meet (see config/governance.yaml for the meaning of each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = "hybrid_rl"
    min_sharpe: float = 0.5
    min_sharpe_ci_low: float = 0.0
    max_drawdown: float = Field(default=0.25, gt=0, le=1)
    min_improvement_over_champion: float = 0.0
    max_drift_share: float = Field(default=0.3, ge=0, le=1)
    min_folds_passing: int = Field(default=2, ge=0)

    @classmethod
    def from_yaml(cls, path: Path = DEFAULT_POLICY_PATH) -> GovernancePolicy:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"governance policy {path}: cannot read it ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"governance policy {path}: expected a mapping of thresholds, got {type(data).__name__}")
        try:
            return cls(**data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"governance policy {path}: {problems}") from exc


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: float
    reason: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    def as_tags(self, prefix: str = "gate.governance") -> dict[str, str]:
        """MLflow version tags: overall result plus one tag per check."""
        tags = {prefix: "passed" if self.passed else "failed"}
        for c in self.checks:
            tags[f"{prefix}.{c.name}"] = ("pass: " if c.passed else "fail: ") + c.reason
        return tags

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _at_least(name: str, value: Any, threshold: float, what: str) -> Check:
    v = _number(value)
    if v is None:
        return Check(name, False, None, threshold, f"{what} is missing: no evidence, no promotion")
    ok = v >= threshold
    return Check(name, ok, v, threshold, f"{what} {v:.3f} {'>=' if ok else '<'} {threshold:.3f}")


def _at_most(name: str, value: Any, threshold: float, what: str) -> Check:
    v = _number(value)
    if v is None:
        return Check(name, False, None, threshold, f"{what} is missing: no evidence, no promotion")
    ok = v <= threshold
    return Check(name, ok, v, threshold, f"{what} {v:.3f} {'<=' if ok else '>'} {threshold:.3f}")


def fold_sharpe_key(strategy: str, fold: int) -> str:
    """The metric name of ``strategy``'s Sharpe ratio on test fold ``fold``: ``wf_<strategy>_fold<k>_sharpe``.

    Written by the training pipeline on the validation run and the candidate version, read back by
    :func:`fold_sharpes` for the ``folds_passing`` check: one spelling for both sides."""
    return f"wf_{strategy}_fold{int(fold)}_sharpe"


def fold_sharpes(metrics: Mapping[str, Any], strategy: str) -> list[float] | None:
    """The per-fold Sharpe ratios of ``strategy`` among ``metrics``, in fold order (None when there are none)."""
    prefix, suffix = f"wf_{strategy}_fold", "_sharpe"  # fold_sharpe_key's spelling (tests/test_governance.py)
    found = {}
    for key, value in metrics.items():
        middle = key[len(prefix) : -len(suffix)] if key.startswith(prefix) and key.endswith(suffix) else ""
        if middle.isdigit():
            found[int(middle)] = float(value)
    return [found[k] for k in sorted(found)] or None


def evaluate_policy(
    policy: GovernancePolicy,
    metrics: Mapping[str, Any] | None,
    *,
    champion_metrics: Mapping[str, Any] | None = None,
    has_champion: bool = False,
    drift_share: float | None = None,
    fold_sharpes: Sequence[float] | None = None,
) -> GateResult:
    """Check a candidate's walk-forward ``metrics`` (keys ``wf_<strategy>_<metric>_mean`` and
    ``wf_<strategy>_sharpe_ci_low``, as registered) against ``policy``.

    ``has_champion`` says whether a champion exists; when it does, its metrics are required (missing
    champion evidence fails the improvement check). ``drift_share`` and ``fold_sharpes`` are required
    evidence too: None fails their checks.
    """
    m = metrics or {}
    key = f"wf_{policy.strategy}"
    checks = [
        _at_least("sharpe", m.get(f"{key}_sharpe_mean"), policy.min_sharpe, f"{policy.strategy} Sharpe"),
        _at_least(
            "sharpe_ci_low",
            m.get(f"{key}_sharpe_ci_low"),
            policy.min_sharpe_ci_low,
            f"{policy.strategy} Sharpe 95% CI lower bound",
        ),
        _at_most(
            "max_drawdown", m.get(f"{key}_max_drawdown_mean"), policy.max_drawdown, f"{policy.strategy} max drawdown"
        ),
    ]
    if has_champion:
        own = _number(m.get(f"{key}_sharpe_mean"))
        theirs = _number((champion_metrics or {}).get(f"{key}_sharpe_mean"))
        diff = None if own is None or theirs is None else own - theirs
        checks.append(
            _at_least("improvement", diff, policy.min_improvement_over_champion, "Sharpe improvement over the champion")
        )
    else:
        checks.append(
            Check(
                "improvement",
                True,
                None,
                policy.min_improvement_over_champion,
                "no champion yet: nothing to improve on",
            )
        )
    checks.append(_at_most("drift", drift_share, policy.max_drift_share, "drifted feature share"))
    if fold_sharpes is None:
        checks.append(
            Check(
                "folds_passing",
                False,
                None,
                policy.min_folds_passing,
                "per-fold Sharpe ratios are missing: no evidence, no promotion",
            )
        )
    else:
        passing = sum(1 for s in fold_sharpes if (_number(s) or 0.0) > 0.0)
        ok = passing >= policy.min_folds_passing
        checks.append(
            Check(
                "folds_passing",
                ok,
                float(passing),
                policy.min_folds_passing,
                f"{passing} of {len(fold_sharpes)} folds with Sharpe > 0 "
                f"({'>=' if ok else '<'} {policy.min_folds_passing})",
            )
        )
    return GateResult(all(c.passed for c in checks), tuple(checks))
