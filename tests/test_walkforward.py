"""Walk-forward validation: fold views that never see the future, reproducibility, costs, a leakage canary."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from trading_core.backtest.config import WalkForwardConfig
from trading_core.backtest.fold_data import FoldFeatureSet, naive_utc
from trading_core.backtest.fold_strategies import base_market
from trading_core.backtest.folds import make_folds
from trading_core.backtest.metrics import OVERALL
from trading_core.backtest.strategies import ACTIVE, STRATEGIES
from trading_core.backtest.walkforward import WalkForwardResult, run_walk_forward
from trading_core.cli import main
from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.features import (
    DatasetConfig,
    FeatureSetConfig,
    IndicatorConfig,
    LabelConfig,
    build_feature_set,
    feature_store,
)
from trading_core.features.scaling import StandardScaler
from trading_core.features.splits import TEST, TRAIN, VAL
from trading_core.rl.pipeline import torch_threads

pytestmark = pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")

IND = IndicatorConfig(vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30),
                      return_horizons=(1, 5, 21))  # fmt: skip
TINY_FS = FeatureSetConfig(indicators=IND, labels=LabelConfig(horizon=3, threshold_k=0.5),
                           dataset=DatasetConfig(seq_len=8, embargo=2))  # fmt: skip
TINY_AGENT: dict[str, Any] = {
    "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}},
    "a2c": {"n_steps": 8, "policy_kwargs": {"net_arch": [16, 16]}},
}
TINY = WalkForwardConfig(
    n_folds=2, test_size=60, seeds=(3,), timesteps=128, n_envs=2, members=("ppo", "a2c"), agent=TINY_AGENT,
    env={"episode_length": 40}, cost_multipliers=(1.0, 2.0),
    forecaster={"ensemble_size": 1, "lstm_units": 8, "cnn_filters": (4,), "attention_heads": 1},
    forecaster_train={"epochs": 1, "batch_size": 256},
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@dataclass
class Home:
    settings: Settings
    version: str


def _home(root: Any, request: IngestRequest, recipe: FeatureSetConfig) -> Home:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(root / "home"))
        mp.chdir(root)
        settings = get_settings()
        version = build_feature_set(ingest(request, settings).dataset_version, recipe, settings).feature_set_version
    return Home(settings, version)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    request = IngestRequest(source="synthetic", n_assets=3, start=date(2022, 1, 3), end=date(2023, 12, 29),
                            signal_strength=0.5, seed=7)  # fmt: skip
    return _home(tmp_path_factory.mktemp("wf"), request, TINY_FS)


@pytest.fixture(scope="module")
def runs(home: Home) -> tuple[WalkForwardResult, WalkForwardResult]:
    """The same tiny configuration twice (every strategy, costs at 1x and 2x)."""
    return run_walk_forward(home.version, home.settings, TINY), run_walk_forward(home.version, home.settings, TINY)


# --------------------------------------------------------------------------------------- fold views


def test_fold_views_never_let_training_see_the_test_window(home: Home) -> None:
    fs = feature_store(home.settings).open(home.version)
    data, _ = base_market(fs, home.settings, None)
    horizon = 3
    folds = make_folds(data.n_steps, n_folds=3, test_size=50, purge=horizon, first_bar=data.first_valid)
    raw = fs.features(["label_end", *fs.feature_names])
    label_end = naive_utc(raw["label_end"])
    for fold in folds:
        view = FoldFeatureSet(fs, data.timestamps, fold.train, fold.test, embargo=1, name=f"f{fold.index}")
        samples = view.samples
        ts = naive_utc(samples["timestamp"])
        ends = label_end[samples["row"].to_numpy()]
        test_start = data.timestamps[fold.test[0]]
        fitted = samples["split"].isin([TRAIN, VAL]).to_numpy()
        # Training and early stopping read neither a decision nor a label price inside the test window,
        # nor within `purge` bars of it.
        assert ts[fitted].max() < test_start and ends[fitted].max() < test_start
        assert ends[fitted].max() <= data.timestamps[fold.train[1] - 1] < data.timestamps[fold.test[0] - horizon]
        train, val = samples["split"].to_numpy() == TRAIN, samples["split"].to_numpy() == VAL
        assert ends[train].max() < ts[val].min()  # purged against the validation tail
        test = samples["split"].to_numpy() == TEST
        assert ts[test].min() >= test_start and ts[test].max() <= data.timestamps[fold.test[1] - 1]
        # The scaler is the one fitted on the raw features of the fold's training bars, nothing later.
        rows = naive_utc(raw["timestamp"])
        window = (rows >= data.timestamps[fold.train[0]]) & (rows <= data.timestamps[fold.train[1] - 1])
        values = raw[fs.feature_names].to_numpy(np.float64)
        expected = StandardScaler.fit(values[window], fs.feature_names, view.scaler.clip)
        assert view.scaler == expected
        np.testing.assert_array_equal(view.matrix, expected.transform(values))
        assert len(view.split("train")) == int(train.sum()) and view.version.endswith(f"f{fold.index}")
    first, last = (FoldFeatureSet(fs, data.timestamps, f.train, f.test) for f in (folds[0], folds[-1]))
    assert first.scaler.fitted_rows < last.scaler.fitted_rows  # expanding: later folds see more past


# ------------------------------------------------------------------------------------- the stage


def test_same_seed_gives_identical_fold_metrics(runs: tuple[WalkForwardResult, WalkForwardResult]) -> None:
    a, b = runs
    assert a.run_id != b.run_id
    assert set(a.table["strategy"]) == set(STRATEGIES)
    assert set(a.table["fold"]) == {0, 1, OVERALL}
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.forecaster, b.forecaster)
    assert a.selected == b.selected and a.selected in STRATEGIES
    assert (0.0 <= a.deflated_sharpe <= 1.0) or math.isnan(a.deflated_sharpe)


def test_doubling_costs_lowers_every_active_strategys_net_return(
    runs: tuple[WalkForwardResult, WalkForwardResult],
) -> None:
    table = runs[0].table
    wide = table.pivot_table(index=["strategy", "seed", "fold"], columns="cost_multiplier", values="total_return")
    for (strategy, seed, fold), row in wide.iterrows():
        if strategy in ACTIVE:
            assert row[2.0] < row[1.0], (strategy, seed, fold, row.to_dict())
        else:
            assert row[2.0] <= row[1.0] + 1e-12, (strategy, seed, fold, row.to_dict())
    paid = table.pivot_table(index=["strategy", "seed", "fold"], columns="cost_multiplier", values="cost_paid")
    assert (paid[2.0] >= paid[1.0]).all()


def test_everything_is_logged_to_one_run_with_lineage(home: Home, runs: tuple[WalkForwardResult, ...]) -> None:
    result = runs[0]
    run = MlflowClient(home.settings.resolved_mlflow_tracking_uri).get_run(result.run_id)
    tags = run.data.tags
    assert tags["feature_set_version"] == home.version and tags["dataset_version"] == result.dataset_version
    assert "git_sha" in tags and tags["selected_strategy"] == result.selected
    assert "forecaster_pooled/accuracy" in run.data.metrics
    assert {"report", "summary", "folds", "equity"} <= set(result.report)
    assert all(p.exists() for p in result.report.values())
    summary = result.summary.set_index("strategy")
    assert set(summary.index) == set(STRATEGIES) and (summary["basis"] == "overall").all()
    folds = result.folds
    assert all(f["train"][1] <= f["test"][0] - 3 for f in folds)  # purge = label horizon


def test_cli_walk_forward(home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_HOME", str(home.settings.home))
    argv = ["walk-forward", "--feature-set-version", home.version, "--folds", "2", "--test-size", "40",
            "--mode", "rolling", "--train-size", "200", "--strategies", "buy_and_hold,forecaster_rule,pure_rl",
            "--epochs", "1", "--ensemble-size", "1", "--seeds", "1", "--timesteps", "64", "--n-envs", "2",
            "--episode-length", "30", "--agent-overrides", json.dumps(TINY_AGENT)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "forecaster_rule" in out and "pure_rl" in out and "report:" in out
    reference = json.loads(out[: out.index("\n}\n") + 2])
    assert [f["train"][1] - f["train"][0] for f in reference["folds"]] == [200, 200]  # rolling windows
    assert main(["walk-forward", "--strategies", "nope"]) == 2


def test_baselines_without_a_forecaster(home: Home, runs: tuple[WalkForwardResult, WalkForwardResult]) -> None:
    """Strategies that need no forecaster run without one (buy and hold used to demand the forecast block),
    and buy and hold's figures do not depend on whether a forecaster was trained beside it."""
    def only(*strategies: str) -> WalkForwardResult:
        config = TINY.model_copy(update={"strategies": strategies, "cost_multipliers": (1.0,)})
        return run_walk_forward(home.version, home.settings, config)

    alone, with_rl = only("buy_and_hold"), only("buy_and_hold", "pure_rl")
    columns = ["fold", "seed", "sharpe", "total_return", "turnover", "cost_paid", "max_drawdown"]

    def rows(table: pd.DataFrame) -> pd.DataFrame:
        bh = table[(table["strategy"] == "buy_and_hold") & (table["cost_multiplier"] == 1.0)]
        return bh[columns].astype({"fold": str}).sort_values(["fold", "seed"]).reset_index(drop=True)
    full = runs[0].table
    pd.testing.assert_frame_equal(rows(alone.table), rows(full))
    pd.testing.assert_frame_equal(rows(with_rl.table), rows(full))


# -------------------------------------------------------------------------------- leakage canary

CANARY_FS = FeatureSetConfig(
    indicators=IndicatorConfig(vol_regime_window=60, corr_window=20, turbulence_window=40),
    labels=LabelConfig(horizon=1, threshold_k=0.3),
    dataset=DatasetConfig(seq_len=10),
)
CANARY = WalkForwardConfig(
    n_folds=3, test_size=150, seeds=(5,), strategies=("buy_and_hold", "forecaster_rule"), cost_multipliers=(0.0, 1.0),
    forecaster={"ensemble_size": 2, "cnn_filters": (16,), "lstm_units": 24, "attention_heads": 2},
    forecaster_train={"epochs": 4, "patience": 2},
)  # fmt: skip


@pytest.mark.parametrize("strength", [0.5, 0.0], ids=["planted-signal", "no-signal"])
def test_leakage_canary(tmp_path: Any, strength: float) -> None:
    """The whole pipeline on a market without a signal finds no edge; with a planted one it does.

    Accuracy: pooled over the folds' test samples, against the majority rate with a binomial 3-SE
    tolerance. Sharpe: of the forecaster rule's chained test curve without costs, against 0 with a
    3-SE tolerance (SE of an annualised Sharpe over T bars ~ sqrt(252 (1 + sr^2 / 2) / T), sr per bar, Lo 2002)."""
    request = IngestRequest(source="synthetic", n_assets=8, start=date(2020, 1, 1), end=date(2023, 12, 31),
                            signal_strength=strength, seed=11)  # fmt: skip
    home = _home(tmp_path, request, CANARY_FS)
    result = run_walk_forward(home.version, home.settings, CANARY)
    acc = result.forecaster.groupby("fold")[["n", "accuracy", "majority_rate"]].mean()
    n = float(acc["n"].sum())
    accuracy = float((acc["accuracy"] * acc["n"]).sum() / n)
    base = float((acc["majority_rate"] * acc["n"]).sum() / n)
    se = math.sqrt(base * (1 - base) / n)
    rule = result.table[(result.table["strategy"] == "forecaster_rule") & (result.table["fold"] == OVERALL)]
    frictionless = float(rule.loc[rule["cost_multiplier"] == 0.0, "sharpe"].iloc[0])
    bars = float(rule.loc[rule["cost_multiplier"] == 0.0, "steps"].iloc[0])
    sharpe_se = math.sqrt(252 * (1 + frictionless**2 / 252 / 2) / bars)  # Lo (2002), per-bar SR inside
    report = {"accuracy": accuracy, "majority": base, "se": se, "sharpe": frictionless, "sharpe_se": sharpe_se}
    if strength > 0:
        assert accuracy > base + 3 * se, report
        assert frictionless > 3 * sharpe_se, report
    else:
        assert abs(accuracy - base) < 3 * se, report
        assert abs(frictionless) < 3 * sharpe_se, report
