"""Walk-forward engine: folds, the backtest against the training environment, costs, baselines,
metrics against hand computations, confidence intervals, the deflated Sharpe ratio, reports, MLflow."""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trading_core.backtest import (
    OVERALL,
    BacktestResult,
    buy_and_hold_policy,
    concatenate,
    deflated_sharpe,
    flat_policy,
    forecaster_rule_policy,
    make_folds,
    mean_ci,
    performance,
    run_backtest,
    strategy_config,
    summarize,
)
from trading_core.backtest.metrics import expected_max_sharpe, return_moments
from trading_core.risk.limits import RiskLimits
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.env import TradingEnv

T, N = 320, 3


def _market(seed: int = 0, forecast: np.ndarray | None = None, gaps: bool = True) -> MarketData:
    """Random-walk prices; opens gap from the previous close unless ``gaps`` is False."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, (T, N)), axis=0))
    open_ = np.empty_like(close)
    open_[0] = close[0]
    open_[1:] = close[:-1] * (np.exp(rng.normal(0, 0.004, (T - 1, N))) if gaps else 1.0)
    if forecast is None:
        p = rng.dirichlet([1.0, 1.0, 1.0], (T, N))
        forecast = np.concatenate([p, p.max(axis=2, keepdims=True)], axis=2)
    return MarketData(
        timestamps=pd.date_range("2022-01-03", periods=T, freq="B").to_numpy(dtype="datetime64[ns]"),
        symbols=tuple(f"S{i}" for i in range(N)),
        open=open_,
        close=close,
        volume=np.full((T, N), 1e6),
        features=np.zeros((T, N, 0), dtype=np.float32),
        forecast=forecast.astype(np.float32),
    )


LOOSE = RiskLimits(max_position=0.5, max_gross=1.0, var_limit=1.0, max_drawdown=1.0)
CFG = EnvConfig(risk=RiskLimits(max_position=0.5, max_gross=1.5, var_limit=0.05))
DATA = _market()


# ------------------------------------------------------------------------------------------ folds


@pytest.mark.parametrize("mode", ["rolling", "expanding"])
def test_folds_tile_the_end_with_purge_and_embargo(mode: str) -> None:
    folds = make_folds(
        300, n_folds=4, test_size=30, mode=mode, train_size=100 if mode == "rolling" else None,
        purge=5, embargo=3, first_bar=20,
    )  # fmt: skip
    assert [f.index for f in folds] == [0, 1, 2, 3]
    assert folds[-1].test[1] == 299  # the last decision needs the last bar to fill
    for f in folds:
        assert f.test_size == 30
        assert f.train[1] == f.test[0] - 5  # purge gap, no overlap
        assert f.train[0] >= 20 and f.train_size >= 1
        if mode == "rolling":
            assert f.train_size == 100
        else:
            assert f.train[0] == 20
    for a, b in zip(folds, folds[1:], strict=False):
        assert b.test[0] - a.test[1] == 3  # embargo between test windows
    if mode == "expanding":
        assert all(b.train_size > a.train_size for a, b in zip(folds, folds[1:], strict=False))


def test_folds_without_gaps_are_contiguous() -> None:
    folds = make_folds(101, n_folds=2, test_size=10)
    assert [f.test for f in folds] == [(80, 90), (90, 100)]
    assert [f.train for f in folds] == [(0, 80), (0, 90)]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_folds": 5, "test_size": 30, "purge": 10}, "too short"),
        ({"n_folds": 2, "test_size": 30, "mode": "rolling", "train_size": 100}, "too short"),
        ({"n_folds": 0, "test_size": 10}, "n_folds"),
        ({"n_folds": 2, "test_size": 0}, "test_size"),
        ({"n_folds": 2, "test_size": 10, "mode": "rolling"}, "train_size"),
        ({"n_folds": 2, "test_size": 10, "purge": -1}, "purge"),
    ],
)
def test_folds_reject_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_folds(150, **kwargs)


# ----------------------------------------------------------------------------- engine vs env


def _actions(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (T, N))


def test_backtest_equals_stepping_the_training_env_by_hand() -> None:
    actions, start, stop = _actions(), 40, 140
    res = run_backtest(DATA, CFG, lambda obs, t: actions[t], start, stop)
    env = TradingEnv(DATA, CFG.model_copy(update={"episode_length": stop - start}))
    env.reset(seed=123, options={"start": start})
    equity, done, t = [CFG.initial_cash], False, start
    while not done:
        _, _, term, trunc, info = env.step(actions[t])
        equity.append(info["equity"])
        t, done = t + 1, term or trunc
    assert res.steps == stop - start == len(equity) - 1
    np.testing.assert_allclose(res.equity, equity, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.returns, np.diff(res.equity) / res.equity[:-1], rtol=0, atol=1e-14)
    assert res.timestamps[0] == DATA.timestamps[start] and res.timestamps[-1] == DATA.timestamps[stop]
    assert res.weights.shape == (stop - start, N) and (res.exposure <= 1.5 + 1e-9).all()
    assert (res.costs > 0).all() and res.halted.dtype == bool


def test_backtest_window_is_checked() -> None:
    with pytest.raises(ValueError, match="n_bars - 1"):
        run_backtest(DATA, CFG, flat_policy(N), 100, T)
    with pytest.raises(ValueError, match="first usable bar"):
        run_backtest(DATA, CFG, flat_policy(N), 2, 50)
    assert run_backtest(DATA, CFG, flat_policy(N), 100, 101).steps == 1


def test_costs_lower_an_active_strategy_and_not_a_flat_one() -> None:
    actions = _actions(2)
    cheap = CFG.model_copy(update={"cost_bps": 5.0})
    dear = CFG.model_copy(update={"cost_bps": 10.0})

    def run(cfg: EnvConfig, policy):  # type: ignore[no-untyped-def]
        return run_backtest(DATA, cfg, policy, 40, 200)

    active_cheap, active_dear = run(cheap, lambda o, t: actions[t]), run(dear, lambda o, t: actions[t])
    assert active_dear.equity[-1] < active_cheap.equity[-1]
    assert active_dear.costs.sum() > active_cheap.costs.sum()
    flat_cheap, flat_dear = run(cheap, flat_policy(N)), run(dear, flat_policy(N))
    np.testing.assert_array_equal(flat_cheap.equity, flat_dear.equity)
    assert (flat_cheap.equity == CFG.initial_cash).all() and flat_cheap.costs.sum() == 0


def test_buy_and_hold_is_the_equal_weight_portfolio() -> None:
    """An independent simulation of a constant-mix 1/N portfolio with next-open fills and fees."""
    bps = 3.0
    cfg = strategy_config("buy_and_hold", EnvConfig(risk=LOOSE, cost_bps=1.0, slippage_bps=2.0, impact_coef=0.0))
    res = run_backtest(DATA, cfg, buy_and_hold_policy(N, LOOSE.max_position), 30, 250)
    np.testing.assert_allclose(res.weights, 1.0 / N, atol=1e-12)
    cash, shares, equity = cfg.initial_cash, np.zeros(N), [cfg.initial_cash]
    for t in range(30, 250):
        o, c = DATA.open[t + 1], DATA.close[t + 1]
        eq_open = cash + shares @ o
        target = eq_open / N / o
        cash -= (target - shares) @ o + np.abs(target - shares) @ o * bps * 1e-4
        shares = target
        equity.append(cash + shares @ c)
    np.testing.assert_allclose(res.equity, equity, rtol=1e-10)
    # Costs are small: close to the frictionless equal-weight portfolio.
    free = run_backtest(DATA, cfg.model_copy(update={"cost_bps": 0.0, "slippage_bps": 0.0}),
                        buy_and_hold_policy(N, LOOSE.max_position), 30, 250)  # fmt: skip
    assert free.equity[-1] > res.equity[-1] > 0.99 * free.equity[-1]


def _perfect_forecast(data: MarketData, reverse: bool = False) -> np.ndarray:
    up = np.zeros((T, N), dtype=bool)
    up[:-1] = data.close[1:] > data.close[:-1]  # TEST ONLY: the future
    if reverse:
        up = ~up
    f = np.zeros((T, N, 4))
    f[..., 1] = np.where(up, 0.8, 0.1)
    f[..., 2] = np.where(up, 0.1, 0.8)
    f[..., 0] = 0.1
    f[..., 3] = 0.8
    return f


@pytest.mark.parametrize("allow_short", [True, False])
def test_forecaster_rule_makes_money_on_a_perfect_forecast(allow_short: bool) -> None:
    base = _market(seed=5, gaps=False)
    cfg = strategy_config("forecaster_rule", EnvConfig(risk=replace(LOOSE, max_gross=1.5)))
    results = {}
    for reverse in (False, True):
        data = _market(seed=5, forecast=_perfect_forecast(base, reverse), gaps=False)
        policy = forecaster_rule_policy(data, allow_short=allow_short, max_position=1.0)
        results[reverse] = run_backtest(data, cfg, policy, 30, 300)
    assert results[False].equity[-1] > 1.5 * cfg.initial_cash
    assert results[True].equity[-1] < 0.8 * cfg.initial_cash
    if not allow_short:
        assert (results[False].weights >= 0).all()
    np.testing.assert_allclose(np.abs(results[False].weights).max(), 0.8 * LOOSE.max_position, rtol=1e-6)


def test_forecaster_rule_sides() -> None:
    f = np.zeros((T, N, 4))
    f[:, 0, :] = [0.6, 0.2, 0.2, 0.6]  # hold
    f[:, 1, :] = [0.2, 0.7, 0.1, 0.7]  # buy
    f[:, 2, :] = [0.1, 0.3, 0.6, 0.5]  # sell
    data = _market(forecast=f)
    np.testing.assert_allclose(forecaster_rule_policy(data, True, 0.5)(np.zeros(1), 7), [0.0, 0.35, -0.25], atol=1e-6)
    np.testing.assert_allclose(forecaster_rule_policy(data, False, 1.0)(np.zeros(1), 7), [0.0, 0.7, 0.0], atol=1e-6)


def test_strategy_configs() -> None:
    assert strategy_config("hybrid_rl", CFG) is CFG
    pure = strategy_config("pure_rl", CFG)
    assert "forecast" not in pure.blocks and not pure.confidence_scaling
    assert not strategy_config("hybrid_rl_no_confidence", CFG).confidence_scaling
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy_config("magic", CFG)


def test_concatenate_chains_folds() -> None:
    a = run_backtest(DATA, CFG, lambda o, t: _actions()[t], 40, 80)
    b = run_backtest(DATA, CFG, lambda o, t: _actions()[t], 90, 120)
    c = concatenate([a, b])
    assert c.steps == 70 and len(c.timestamps) == 71
    np.testing.assert_allclose(c.equity[-1] / c.equity[0], (a.equity[-1] / a.equity[0]) * (b.equity[-1] / b.equity[0]))
    np.testing.assert_allclose(c.costs[:40], a.costs)


# ----------------------------------------------------------------------------------- metrics


def _result(equity: list[float], exposure: float = 1.0) -> BacktestResult:
    eq = np.asarray(equity, dtype=float)
    n = len(eq) - 1
    return BacktestResult(
        timestamps=pd.date_range("2024-01-01", periods=n + 1).to_numpy(),
        equity=eq,
        returns=eq[1:] / eq[:-1] - 1,
        turnover=np.full(n, 0.1),
        costs=np.full(n, 2.0),
        exposure=np.full(n, exposure),
        weights=np.full((n, 1), exposure),
        halted=np.zeros(n, dtype=bool),
    )


def test_metrics_against_hand_computations() -> None:
    eq = [100.0, 110.0, 99.0, 120.0, 90.0, 100.0]
    m = performance(_result(eq), periods_per_year=252)
    r = np.array([0.1, -0.1, 120 / 99 - 1, -0.25, 100 / 90 - 1])
    assert m["total_return"] == pytest.approx(0.0)
    assert m["annual_return"] == pytest.approx(0.0, abs=1e-12)
    sd = math.sqrt(sum((x - r.mean()) ** 2 for x in r) / 4)
    assert m["volatility"] == pytest.approx(sd * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(r.mean() / sd * math.sqrt(252))
    dd = math.sqrt((0.1**2 + 0.25**2) / 5)
    assert m["sortino"] == pytest.approx(r.mean() / dd * math.sqrt(252))
    assert m["max_drawdown"] == pytest.approx(0.25)
    assert m["calmar"] == pytest.approx(0.0, abs=1e-12)
    assert m["hit_rate"] == pytest.approx(3 / 5)
    assert m["turnover"] == pytest.approx(0.1) and m["exposure"] == pytest.approx(1.0)
    assert m["cost_paid"] == pytest.approx(10.0 / 100.0)

    growth = performance(_result([100.0, 101.0, 100.0, 102.0, 103.0]), periods_per_year=4)
    assert growth["annual_return"] == pytest.approx(0.03)  # 4 bars = one year
    assert growth["max_drawdown"] == pytest.approx(1 - 100 / 101)
    assert growth["calmar"] == pytest.approx(0.03 / (1 - 100 / 101))
    up_only = performance(_result([100.0, 101.0, 102.0]))
    assert math.isnan(up_only["sortino"]) and math.isnan(up_only["calmar"])
    assert math.isnan(performance(_result([100.0, 101.0], exposure=0.0))["hit_rate"])


def test_mean_ci_matches_scipy() -> None:
    x = [0.3, 1.2, -0.4, 0.9, 0.5, 1.7]
    mean, low, high = mean_ci(x, 0.95)
    ref = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert mean == pytest.approx(np.mean(x))
    assert (low, high) == pytest.approx(ref)
    one = mean_ci([2.0])
    assert one[0] == 2.0 and math.isnan(one[1]) and math.isnan(one[2])
    assert mean_ci([1.0, float("nan"), 3.0])[0] == pytest.approx(2.0)


def test_deflated_sharpe_worked_example_and_monotone() -> None:
    # Bailey & Lopez de Prado (2014), section 5: annualised SR 2.5 over 5 years of daily bars, 100 trials whose
    # annualised Sharpe variance is 0.5, skew -3, kurtosis 10 -> DSR ~ 0.90.
    rng = np.random.default_rng(0)
    trials = rng.normal(size=100)
    trials = (trials - trials.mean()) / trials.std(ddof=1) * math.sqrt(0.5 / 252)
    sr, n = 2.5 / math.sqrt(252), 1250
    sr0 = math.sqrt(0.5 / 252) * (
        (1 - 0.5772156649) * stats.norm.ppf(1 - 1 / 100) + 0.5772156649 * stats.norm.ppf(1 - 1 / (100 * math.e))
    )
    assert expected_max_sharpe(trials) == pytest.approx(sr0)
    expected = stats.norm.cdf((sr - sr0) * math.sqrt(n - 1) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2))
    dsr = deflated_sharpe(sr, n, -3.0, 10.0, trials)
    assert dsr == pytest.approx(expected)
    assert dsr == pytest.approx(0.90, abs=0.01)
    # More trials (same dispersion) -> a higher bar -> a lower probability; one trial -> the PSR against 0.
    values = [deflated_sharpe(sr, n, -3.0, 10.0, rng.normal(0, math.sqrt(0.5 / 252), k)) for k in (2, 10, 100, 1000)]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))
    assert deflated_sharpe(sr, n, 0.0, 3.0, [sr]) > deflated_sharpe(sr, n, -3.0, 10.0, [sr])
    sharpe, skew, kurt = return_moments(np.array([0.01, -0.02, 0.03, 0.0, 0.01]))
    assert kurt == pytest.approx(stats.kurtosis([0.01, -0.02, 0.03, 0.0, 0.01], fisher=False))
    assert sharpe == pytest.approx(0.006 / np.std([0.01, -0.02, 0.03, 0.0, 0.01], ddof=1))


def _table() -> pd.DataFrame:
    rows = []
    for strategy, shift in (("buy_and_hold", 0.0), ("hybrid_rl", 0.5)):
        for seed in range(3):
            for fold in (0, 1, OVERALL):
                rows.append({"strategy": strategy, "seed": seed, "fold": fold, "sharpe": shift + seed + 0.1 * fold,
                             "total_return": 0.01 * seed})  # fmt: skip
    rows.append({"strategy": "forecaster_rule", "seed": 0, "fold": 0, "sharpe": 1.0, "total_return": 0.0})
    rows.append({"strategy": "forecaster_rule", "seed": 0, "fold": 1, "sharpe": 2.0, "total_return": 0.0})
    return pd.DataFrame(rows)


def test_summarize_uses_overall_rows_over_seeds() -> None:
    s = summarize(_table()).set_index("strategy")
    assert s.loc["hybrid_rl", "basis"] == "overall" and s.loc["hybrid_rl", "n"] == 3
    assert s.loc["hybrid_rl", "sharpe_mean"] == pytest.approx(0.5 + 1.0 - 0.1)
    _, low, high = mean_ci([0.4, 1.4, 2.4])
    assert (s.loc["hybrid_rl", "sharpe_ci_low"], s.loc["hybrid_rl", "sharpe_ci_high"]) == pytest.approx((low, high))
    assert s.loc["forecaster_rule", "basis"] == "folds" and s.loc["forecaster_rule", "sharpe_mean"] == 1.5
    assert "seed_mean" not in s.columns and "fold_mean" not in s.columns


# ----------------------------------------------------------------------------------- reports


def _curves() -> dict[str, BacktestResult]:
    return {
        "buy_and_hold": run_backtest(DATA, CFG, buy_and_hold_policy(N, 0.5), 40, 100),
        "flat": run_backtest(DATA, CFG, flat_policy(N), 40, 100),
    }


def test_write_report(tmp_path: Path) -> None:
    from trading_core.backtest.report import write_report

    table = _table()
    paths = write_report(table, summarize(table), _curves(), tmp_path / "r", "Walk-forward <test>", {"git_sha": "abc"})
    assert {p.name for p in paths.values()} == {"equity.png", "drawdown.png", "folds.csv", "summary.csv", "report.html"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert paths["equity"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["report"].read_text()
    assert page.count('src="data:image/png;base64,') == 2 and 'src="http' not in page
    assert 'class="dataframe folds"' in page and 'class="dataframe summary"' in page
    assert "Walk-forward &lt;test&gt;" in page and "abc" in page and "forecaster_rule" in page
    assert len(pd.read_csv(paths["folds"])) == len(table)


def test_log_report_to_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from trading_core.backtest.report import log_report_to_mlflow, write_report

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.create_experiment("wf", artifact_location=(tmp_path / "artifacts").as_uri())
        table = _table()
        summary = summarize(table)
        paths = write_report(table, summary, _curves(), tmp_path / "r", "wf", {"dataset_version": "d1"})
        with pytest.raises(RuntimeError, match="active MLflow run"):
            log_report_to_mlflow(paths, summary, {})
        with mlflow.start_run(experiment_id=exp, run_name="validation") as run:
            log_report_to_mlflow(paths, summary, {"dataset_version": "d1", "feature_set_version": "f1"})
        client = MlflowClient(uri)
        data = client.get_run(run.info.run_id).data
        assert data.tags["dataset_version"] == "d1" and data.tags["feature_set_version"] == "f1"
        assert data.metrics["hybrid_rl_sharpe_mean"] == pytest.approx(1.4)
        assert "forecaster_rule_sharpe_ci_low" in data.metrics
        names = {os.path.basename(a.path) for a in client.list_artifacts(run.info.run_id, "walk_forward")}
        assert names == {"equity.png", "drawdown.png", "folds.csv", "summary.csv", "report.html"}
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
