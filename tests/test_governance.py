"""The governance policy: each threshold, and every way the evidence can be missing (fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trading_core.errors import ConfigError
from trading_core.registry.governance import DEFAULT_POLICY_PATH, GovernancePolicy, evaluate_policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = GovernancePolicy(
    min_sharpe=0.5,
    min_sharpe_ci_low=0.0,
    max_drawdown=0.2,
    min_improvement_over_champion=0.1,
    max_drift_share=0.3,
    min_folds_passing=2,
)
GOOD = {"wf_hybrid_rl_sharpe_mean": 1.2, "wf_hybrid_rl_sharpe_ci_low": 0.3, "wf_hybrid_rl_max_drawdown_mean": 0.1}


def _evaluate(metrics: dict | None = GOOD, **kwargs):  # type: ignore[no-untyped-def]
    defaults = {"drift_share": 0.1, "fold_sharpes": [0.5, 1.0, -0.2]}
    return evaluate_policy(POLICY, metrics, **{**defaults, **kwargs})


def test_a_good_candidate_passes_every_check() -> None:
    result = _evaluate()
    assert result.passed and result.reasons == []
    assert {c.name for c in result.checks} == {
        "sharpe",
        "sharpe_ci_low",
        "max_drawdown",
        "improvement",
        "drift",
        "folds_passing",
    }
    tags = result.as_tags()
    assert tags["gate.governance"] == "passed" and tags["gate.governance.sharpe"].startswith("pass: ")


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"wf_hybrid_rl_sharpe_mean": 0.4}, "sharpe"),
        ({"wf_hybrid_rl_sharpe_ci_low": -0.1}, "sharpe_ci_low"),
        ({"wf_hybrid_rl_max_drawdown_mean": 0.3}, "max_drawdown"),
    ],
)
def test_each_threshold_fails_its_check(change: dict, failing: str) -> None:
    result = _evaluate({**GOOD, **change})
    assert not result.passed and [c.name for c in result.checks if not c.passed] == [failing]


def test_champion_improvement_drift_and_folds() -> None:
    assert not _evaluate(has_champion=True, champion_metrics={"wf_hybrid_rl_sharpe_mean": 1.15}).passed
    assert _evaluate(has_champion=True, champion_metrics={"wf_hybrid_rl_sharpe_mean": 1.0}).passed
    assert not _evaluate(drift_share=0.5).passed
    assert not _evaluate(fold_sharpes=[0.5, -1.0, -0.2]).passed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"metrics": None},
        {"metrics": {**GOOD, "wf_hybrid_rl_sharpe_mean": float("nan")}},
        {"metrics": {k: v for k, v in GOOD.items() if "ci_low" not in k}},
        {"drift_share": None},
        {"fold_sharpes": None},
        {"has_champion": True, "champion_metrics": None},
    ],
    ids=["no-metrics", "nan-sharpe", "no-ci", "no-drift-evidence", "no-fold-evidence", "champion-without-metrics"],
)
def test_missing_evidence_fails_closed(kwargs: dict) -> None:
    result = _evaluate(**kwargs)
    assert not result.passed
    assert any("missing" in reason for reason in result.reasons)


def test_policy_file_loads_and_bad_files_name_the_problem(tmp_path: Path) -> None:
    shipped = GovernancePolicy.from_yaml(ROOT / DEFAULT_POLICY_PATH)
    assert shipped.strategy == "hybrid_rl" and 0 < shipped.max_drawdown <= 1
    bad = tmp_path / "policy.yaml"
    bad.write_text("min_sharpe: 0.5\nmax_drawdown: 2\n")
    with pytest.raises(ConfigError, match="max_drawdown"):
        GovernancePolicy.from_yaml(bad)
    bad.write_text("min_shrape: 0.5\n")
    with pytest.raises(ConfigError, match="min_shrape"):
        GovernancePolicy.from_yaml(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        GovernancePolicy.from_yaml(tmp_path / "missing.yaml")


def test_fold_sharpes_read_back_what_training_writes_in_fold_order() -> None:
    """The training pipeline writes per-fold Sharpes under ``fold_sharpe_key``; the governance gate reads
    them back with ``fold_sharpes``: the same values, numerically ordered by fold (fold 10 after fold 2),
    other strategies, cost multipliers and the overall row left out, a NaN fold dropped (no evidence)."""
    import pandas as pd

    from trading_core.registry.governance import fold_sharpe_key, fold_sharpes
    from trading_core.training import fold_sharpe_metrics

    rows = [("hybrid_rl", fold, seed, 1.0, 0.1 * fold + seed) for fold in (0, 2, 10) for seed in (0, 1)]
    rows += [("hybrid_rl", 3, 0, 1.0, float("nan")), ("hybrid_rl", 2, 0, 2.0, -9.0), ("hybrid_rl", -1, 0, 1.0, -9.0)]
    rows += [("buy_and_hold", 0, 0, 1.0, 7.0)]
    table = pd.DataFrame(rows, columns=["strategy", "fold", "seed", "cost_multiplier", "sharpe"])
    metrics = fold_sharpe_metrics(table) | GOOD
    assert fold_sharpe_key("hybrid_rl", 10) == "wf_hybrid_rl_fold10_sharpe"
    assert "wf_hybrid_rl_fold10_sharpe" in metrics and "wf_hybrid_rl_fold3_sharpe" not in metrics
    assert fold_sharpes(metrics, "hybrid_rl") == pytest.approx([0.5, 0.7, 1.5])
    assert fold_sharpes(metrics, "buy_and_hold") == [7.0]
    assert fold_sharpes(GOOD, "hybrid_rl") is None
