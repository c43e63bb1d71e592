"""Walk-forward validation: every strategy retrained on each fold's past, judged on the next window.

:func:`run_walk_forward` is what ``trading walk-forward``, the training DAG and the tests call. Read
top to bottom: open the feature set -> the market panel of its dataset (bars where every symbol
trades) -> folds over those bars (:func:`~trading_core.backtest.folds.make_folds`, purge defaults to
the label horizon) -> one MLflow run -> per fold, per seed:

1. the fold's view of the feature set (:class:`~trading_core.backtest.fold_data.FoldFeatureSet`):
   splits and the scaler recomputed from the fold's training bars only;
2. a forecaster ensemble trained on it (``train_ensemble``, early stopping on the training window's
   last ``val_fraction``), scored on the fold's test samples against the majority class (binomial
   p-value);
3. its forecasts at every bar up to the end of the test window. **What the agents train on**: the
   forecasts over the training bars are in-sample for the forecaster (it was fitted on them; there
   is no way around this without nesting a second walk-forward inside each fold); the forecasts over
   the test window are out of sample. The agents are therefore evaluated on honest forecasts but
   trained on optimistic ones, which, if anything, handicaps the hybrid agents;
4. the market panel of the fold (features scaled by the fold's scaler, the fold's forecasts);
5. agents trained on the fold's training bars only (the panel is sliced at the end of the training
   window, so no environment can read a later bar): pure RL (no forecast block, no confidence
   scaling), hybrid RL, hybrid RL without confidence scaling (same algorithm, same seed), and the
   ensemble agent (``members``, hybrid), whose members train on the bars before the validation
   tail and are weighted by their Sharpe ratio on it;
6. every strategy back-tested on the fold's test window (``run_backtest``), once per cost multiplier.

Then the table (strategy x seed x fold x cost multiplier -> metrics), the summary (mean and 95%
confidence interval over folds and seeds), the deflated Sharpe ratio of the selected strategy (the
best mean Sharpe; the other strategies' Sharpe ratios are the trials), and the report, all logged to
the one run with lineage tags (dataset_version, feature_set_version, git sha).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import stats

from trading_core import tracking
from trading_core.backtest.engine import BacktestResult, concatenate, run_backtest
from trading_core.backtest.fold_data import FoldFeatureSet, naive_utc
from trading_core.backtest.folds import make_folds
from trading_core.backtest.metrics import OVERALL, deflated_sharpe, performance, return_moments, summarize
from trading_core.backtest.report import log_report_to_mlflow, write_report
from trading_core.backtest.strategies import (
    STRATEGIES,
    agent_policy,
    buy_and_hold_policy,
    forecaster_rule_policy,
    strategy_config,
)
from trading_core.config import Settings
from trading_core.data.ingest import load_dataset
from trading_core.errors import ConfigError
from trading_core.features import feature_store
from trading_core.features.store import FeatureSet
from trading_core.forecast.metrics import N_CLASSES, evaluation_report, persistence_baseline
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.forecast.pipeline import resolve_configs
from trading_core.forecast.pyfunc_model import predict_frame
from trading_core.forecast.train import predict_split, train_ensemble
from trading_core.rl.agents import ALGORITHMS, EnsembleAgent, make_agent, member_names
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import FORECAST_COLUMNS, MarketData
from trading_core.rl.market import Period, feature_groups, slice_market, window_end_rows
from trading_core.rl.pipeline import member_overrides, resolve_env_config, torch_threads, validation_env
from trading_core.rl.vec_env import VecTradingEnv

log = logging.getLogger(__name__)

STAGE = "walk_forward"
BUY_AND_HOLD, FORECASTER_RULE, PURE_RL, HYBRID_RL, HYBRID_NO_CONF, ENSEMBLE = STRATEGIES
ACTIVE: tuple[str, ...] = STRATEGIES[1:]
NEEDS_FORECASTER = frozenset({FORECASTER_RULE, HYBRID_RL, HYBRID_NO_CONF, ENSEMBLE})
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


@dataclass
class WalkForwardResult:
    run_id: str
    feature_set_version: str
    dataset_version: str
    table: pd.DataFrame
    """One row per strategy x seed x fold x cost multiplier: the back-test metrics of the test window."""
    summary: pd.DataFrame
    """Per strategy (cost multiplier 1): mean and 95% CI of the metrics over folds and seeds."""
    forecaster: pd.DataFrame
    """Per fold x seed: test accuracy, majority rate, binomial p-value, n, log-loss (model and majority)."""
    selected: str
    deflated_sharpe: float
    report: dict[str, Path] = field(default_factory=dict)
    folds: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_reference(self) -> dict[str, Any]:
        """Small JSON for XCom and the CLI."""
        acc = self.forecaster
        return {
            "run_id": self.run_id,
            "feature_set_version": self.feature_set_version,
            "dataset_version": self.dataset_version,
            "selected_strategy": self.selected,
            "deflated_sharpe": _finite(self.deflated_sharpe),
            "forecaster_accuracy": _finite(float(acc["accuracy"].mean())) if len(acc) else None,
            "majority_rate": _finite(float(acc["majority_rate"].mean())) if len(acc) else None,
            "report": {k: str(v) for k, v in self.report.items()},
            "folds": self.folds,
            "seconds": round(self.seconds, 3),
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------- pieces


def base_market(fs: FeatureSet, settings: Settings, symbols: Sequence[str] | None) -> tuple[MarketData, pd.DataFrame]:
    """The panel of the feature set's dataset (stored scaler, no forecasts) and its bars."""
    keys = fs.features([])
    available = sorted(keys["symbol"].unique().tolist())
    if symbols is not None and (unknown := sorted(set(symbols) - set(available))):
        raise ConfigError(f"symbol(s) {unknown} are not in feature set {fs.version} (it has {available})")
    chosen = sorted(symbols) if symbols is not None else available
    bars = load_dataset(str(fs.manifest["dataset_version"]), settings)
    bars = bars[bars["symbol"].isin(chosen)]
    return fold_market(fs, bars, chosen, None), bars


def fold_market(fs: FeatureSet, bars: pd.DataFrame, symbols: list[str], forecasts: pd.DataFrame | None) -> MarketData:
    """A panel whose features are ``fs.matrix`` (a fold view: scaled by the fold's scaler)."""
    keys = fs.features([])
    mask = keys["symbol"].isin(symbols).to_numpy()
    scaled = pd.DataFrame(np.asarray(fs.matrix[mask]), columns=fs.feature_names)
    features = pd.concat([keys.loc[mask].reset_index(drop=True), scaled], axis=1)
    return MarketData.from_frames(bars, features, feature_groups(fs), forecasts, symbols)


def fold_forecasts(
    view: FoldFeatureSet, model: ForecasterEnsemble, symbols: list[str], until: np.datetime64
) -> pd.DataFrame:
    """The fold's forecaster at every bar (of ``symbols``) that ends a complete window, up to ``until``."""
    keys = view.features([])
    matrix = view.matrix
    rows = window_end_rows(matrix, keys["symbol"].to_numpy(), view.seq_len)
    ts = naive_utc(keys["timestamp"])
    rows = rows[np.isin(keys["symbol"].to_numpy()[rows], symbols) & (ts[rows] <= until)]
    windows = np.swapaxes(np.lib.stride_tricks.sliding_window_view(matrix, view.seq_len, axis=0), 1, 2)
    parts = []
    for lo in range(0, len(rows), 8192):
        chunk = rows[lo : lo + 8192]
        batch = np.ascontiguousarray(windows[chunk - view.seq_len + 1], dtype=np.float32)
        parts.append(predict_frame(model, batch)[list(FORECAST_COLUMNS)])
    predictions = (
        pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(FORECAST_COLUMNS), dtype=float)
    )
    return pd.concat([keys.iloc[rows].reset_index(drop=True), predictions], axis=1)


def forecaster_report(view: FoldFeatureSet, model: ForecasterEnsemble) -> dict[str, float]:
    """Test accuracy of the fold's forecaster vs the training majority class (binomial p-value) and persistence."""
    test, train = view.split("test"), view.split("train")
    probs = predict_split(model, test)["probs"]
    frame = view.features(["label"])
    horizon = int(view.manifest["config"]["labels"]["horizon"])
    majority = int(np.bincount(train.labels, minlength=N_CLASSES).argmax())
    persistence = persistence_baseline(
        frame["label"].to_numpy(), frame["symbol"].to_numpy(), test.end_rows, horizon, majority
    )
    report = evaluation_report(probs, test.labels, train.labels, persistence)
    return {
        "n": float(report["n"]),
        "accuracy": report["model"]["accuracy"],
        "majority_rate": report["majority_rate"],
        "persistence_accuracy": report["persistence"]["accuracy"],
        "p_value_vs_majority": report["p_value_vs_majority"],
        "log_loss": report["model"]["log_loss"],
        "majority_log_loss": report["majority"]["log_loss"],
        "balanced_accuracy": report["model"]["balanced_accuracy"],
    }


def scaled_costs(config: EnvConfig, multiplier: float) -> EnvConfig:
    if multiplier == 1.0:
        return config
    return config.model_copy(
        update={
            "cost_bps": config.cost_bps * multiplier,
            "slippage_bps": config.slippage_bps * multiplier,
            "impact_coef": config.impact_coef * multiplier,
        }
    )


def _train_agent(
    algo: str, data: MarketData, config: EnvConfig, cfg: WalkForwardConfig, seed: int, overrides: Mapping[str, Any]
) -> Any:
    env = VecTradingEnv(data, config, n_envs=cfg.n_envs)
    device = "cpu" if cfg.device == "auto" and algo in ("ppo", "a2c") else cfg.device
    agent = make_agent(algo, env, seed=seed, device=device, **overrides)
    return agent.learn(total_timesteps=cfg.timesteps)


def select_and_deflate(
    summary: pd.DataFrame, overall: Mapping[tuple[str, int], BacktestResult], seed: int
) -> tuple[str, float]:
    """The strategy with the best mean Sharpe (over seeds, of the chained out-of-sample curves) and its
    deflated Sharpe ratio on seed ``seed``'s chained curve. The trials are every (strategy, seed)
    curve's per-bar Sharpe ratio: every one of them was a candidate for selection."""
    selected = str(summary.loc[summary["sharpe_mean"].idxmax(), "strategy"])
    trials = [return_moments(r.returns)[0] for r in overall.values()]
    chosen = overall[(selected, seed)].returns
    sharpe, skew, kurtosis = return_moments(chosen)
    return selected, deflated_sharpe(sharpe, len(chosen), skew, kurtosis, trials)


# ------------------------------------------------------------------------------------------ stage


def run_walk_forward(
    feature_set_version: str,
    settings: Settings,
    config: WalkForwardConfig | None = None,
    experiment: str = "walk_forward",
    tags: Mapping[str, str] | None = None,
    *,
    run_name: str | None = None,
    report_dir: Path | None = None,
) -> WalkForwardResult:
    """Walk-forward validation of every strategy of ``config`` on a stored feature set (see the module
    docstring); one MLflow run in ``experiment`` holds the table, the summary and the report."""
    t0 = time.perf_counter()
    cfg = config or WalkForwardConfig()
    algos = [a.lower() for a in cfg.members]
    if cfg.algo.lower() not in ALGORITHMS or set(algos) - set(ALGORITHMS):
        raise ConfigError(f"algo and members must be some of {list(ALGORITHMS)}, got {cfg.algo!r}, {list(cfg.members)}")
    fs = feature_store(settings).open(feature_set_version)
    dataset_version = str(fs.manifest["dataset_version"])
    horizon = int(fs.manifest["config"]["labels"]["horizon"])
    purge = horizon if cfg.purge is None else cfg.purge
    base, bars = base_market(fs, settings, cfg.symbols)
    symbols = list(base.symbols)
    folds = make_folds(
        base.n_steps, n_folds=cfg.n_folds, test_size=cfg.test_size, mode=cfg.mode, train_size=cfg.train_size,
        purge=purge, embargo=cfg.embargo, first_bar=base.first_valid,
    )  # fmt: skip
    hybrid_cfg = resolve_env_config(cfg.env, True)
    configs = {strategy: strategy_config(strategy, hybrid_cfg) for strategy in STRATEGIES}
    names = member_names(algos)
    member_kwargs = member_overrides(names, algos, cfg.agent)
    single_kwargs = member_overrides([cfg.algo.lower()], [cfg.algo.lower()], cfg.agent)[cfg.algo.lower()]
    wanted = list(cfg.strategies)
    fold_info = [
        {"fold": f.index, "train": list(f.train), "test": list(f.test),
         "train_first": str(base.timestamps[f.train[0]])[:10], "train_last": str(base.timestamps[f.train[1] - 1])[:10],
         "test_first": str(base.timestamps[f.test[0]])[:10], "test_last": str(base.timestamps[f.test[1] - 1])[:10]}
        for f in folds
    ]  # fmt: skip
    lineage = {
        "dataset_version": dataset_version,
        "feature_set_version": fs.version,
        "git_sha": tracking.git_sha(),
        "trading.stage": STAGE,
    }

    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(experiment, settings)
    rows: list[dict[str, Any]] = []
    accuracy_rows: list[dict[str, Any]] = []
    windows: dict[tuple[str, int, float], list[BacktestResult]] = {}
    with (
        torch_threads(cfg.threads),
        mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name or f"{STAGE}-{fs.version[3:11]}",
            tags={**dict(tags or {}), **lineage},
            nested=mlflow.active_run() is not None,
        ) as run,
    ):
        run_id = run.info.run_id
        mlflow.log_params(
            {
                "n_folds": len(folds), "test_size": cfg.test_size, "mode": cfg.mode, "train_size": cfg.train_size,
                "purge": purge, "embargo": cfg.embargo, "seeds": ",".join(map(str, cfg.seeds)), "algo": cfg.algo,
                "timesteps": cfg.timesteps, "members": ",".join(names), "n_envs": cfg.n_envs,
                "strategies": ",".join(wanted), "symbols": ",".join(symbols),
                "cost_multipliers": ",".join(map(str, cfg.cost_multipliers)), "val_fraction": cfg.val_fraction,
                "forecaster": str(cfg.forecaster), "forecaster_train": str(cfg.forecaster_train),
                "env": str(cfg.env), "agent": str(cfg.agent),
            }
        )  # fmt: skip
        mlflow.log_dict({"folds": fold_info}, "walk_forward/folds.json")
        work = settings.home / "checkpoints" / STAGE / run_id
        try:
            for fold in folds:
                view = FoldFeatureSet(
                    fs, base.timestamps, fold.train, fold.test, val_fraction=cfg.val_fraction,
                    embargo=cfg.embargo, name=f"wf{fold.index}",
                )  # fmt: skip
                val_period = Period(view.val_bars[0], view.val_bars[1])
                for seed in cfg.seeds:
                    tf = time.perf_counter()
                    data = base
                    policies: dict[str, Any] = {}
                    if NEEDS_FORECASTER & set(wanted):
                        model_cfg, train_cfg = resolve_configs(
                            view, settings, cfg.forecaster, {**cfg.forecaster_train, "seed": seed}
                        )
                        trained = train_ensemble(view, model_cfg, train_cfg, work / f"fold{fold.index}-seed{seed}")
                        acc = forecaster_report(view, trained.model)
                        accuracy_rows.append({"fold": fold.index, "seed": seed, **acc})
                        prefix = f"forecaster/fold{fold.index}_seed{seed}"
                        mlflow.log_metrics({f"{prefix}/{k}": v for k, v in acc.items() if math.isfinite(v)})
                        forecasts = fold_forecasts(view, trained.model, symbols, view.test_end)
                        data = fold_market(view, bars, symbols, forecasts)
                        if not np.array_equal(data.timestamps, base.timestamps):
                            raise AssertionError("the fold's panel has other bars than the dataset's panel")
                    elif PURE_RL in wanted:
                        data = fold_market(view, bars, symbols, None)
                    # rolling: nothing before the window either (the env's warm-up reads the window's own bars)
                    train_data_start = fold.train[0] if cfg.mode == "rolling" else 0
                    train_data = slice_market(data, train_data_start, fold.train[1])
                    if BUY_AND_HOLD in wanted:
                        policies[BUY_AND_HOLD] = buy_and_hold_policy(
                            data.n_assets, configs[BUY_AND_HOLD].risk.max_position
                        )
                    if FORECASTER_RULE in wanted:
                        policies[FORECASTER_RULE] = forecaster_rule_policy(
                            data, allow_short=cfg.allow_short, max_position=cfg.rule_max_position
                        )
                    for strategy in (PURE_RL, HYBRID_RL, HYBRID_NO_CONF):
                        if strategy in wanted:
                            agent = _train_agent(
                                cfg.algo.lower(), train_data, configs[strategy], cfg, seed, single_kwargs
                            )
                            policies[strategy] = agent_policy(agent)
                    if ENSEMBLE in wanted:
                        before_val = slice_market(data, train_data_start, val_period.start)
                        members = {
                            name: _train_agent(algo, before_val, configs[ENSEMBLE], cfg, seed + k, member_kwargs[name])
                            for k, (name, algo) in enumerate(zip(names, algos, strict=True))
                        }
                        val_env, val_start = validation_env(data, val_period, configs[ENSEMBLE])
                        ensemble, _ = EnsembleAgent.from_validation(members, val_env, val_start)
                        policies[ENSEMBLE] = agent_policy(ensemble)
                    for strategy in wanted:
                        for mult in cfg.cost_multipliers:
                            result = run_backtest(
                                data, scaled_costs(configs[strategy], mult), policies[strategy], fold.test[0],
                                fold.test[1],
                            )  # fmt: skip
                            metrics = {k: float(v) for k, v in performance(result).items()}
                            rows.append(
                                {"strategy": strategy, "seed": seed, "fold": fold.index, "cost_multiplier": mult,
                                 **metrics}
                            )  # fmt: skip
                            windows.setdefault((strategy, seed, mult), []).append(result)
                    log.info("fold %d seed %d done in %.1fs", fold.index, seed, time.perf_counter() - tf)
                    shutil.rmtree(work / f"fold{fold.index}-seed{seed}", ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)

        overall: dict[tuple[str, int], BacktestResult] = {}
        for (strategy, seed, mult), results in windows.items():
            chained = concatenate(results)
            rows.append({"strategy": strategy, "seed": seed, "fold": OVERALL, "cost_multiplier": mult,
                         **{k: float(v) for k, v in performance(chained).items()}})  # fmt: skip
            if mult == 1.0:
                overall[(strategy, seed)] = chained
        table = pd.DataFrame(rows)
        forecaster = pd.DataFrame(accuracy_rows)
        summary = summarize(table[table["cost_multiplier"] == 1.0].drop(columns=["cost_multiplier"]))
        selected, dsr = select_and_deflate(summary, overall, cfg.seeds[0])
        curves = {strategy: overall[(strategy, cfg.seeds[0])] for strategy in wanted}
        report_lineage = {**lineage, "run_id": run_id, "selected_strategy": selected}
        out_dir = report_dir or settings.home / "reports" / STAGE / run_id
        paths = write_report(
            table, summary, curves, out_dir, f"Walk-forward validation of {fs.version}", report_lineage
        )
        log_report_to_mlflow(paths, summary, report_lineage)
        mlflow.log_table(table, "walk_forward/table.json")
        if len(forecaster):
            mlflow.log_table(forecaster, "walk_forward/forecaster.json")
            pooled = forecaster_pooled(forecaster)
            mlflow.log_metrics({f"forecaster_pooled/{k}": v for k, v in pooled.items() if math.isfinite(v)})
        if math.isfinite(dsr):
            mlflow.log_metric("deflated_sharpe", dsr)
        mlflow.set_tag("selected_strategy", selected)

    seconds = time.perf_counter() - t0
    log.info("walk-forward run %s: %d folds x %d seeds in %.1fs; selected %s (DSR %.3f)", run_id, len(folds),
             len(cfg.seeds), seconds, selected, dsr)  # fmt: skip
    return WalkForwardResult(
        run_id=run_id,
        feature_set_version=fs.version,
        dataset_version=dataset_version,
        table=table,
        summary=summary,
        forecaster=forecaster,
        selected=selected,
        deflated_sharpe=dsr,
        report=paths,
        folds=fold_info,
        seconds=seconds,
    )


def forecaster_pooled(forecaster: pd.DataFrame) -> dict[str, float]:
    """Accuracy over every fold's and seed's test samples together vs the pooled majority rate, with
    a one-sided binomial p-value (samples of different seeds are the same samples: the test counts
    each fold once, with the seeds' mean accuracy)."""
    per_fold = forecaster.groupby("fold")[["n", "accuracy", "majority_rate"]].mean()
    n = float(per_fold["n"].sum())
    if n <= 0:
        return {"n": 0.0, "accuracy": float("nan"), "majority_rate": float("nan"), "p_value": float("nan")}
    acc = float((per_fold["accuracy"] * per_fold["n"]).sum() / n)
    base = float((per_fold["majority_rate"] * per_fold["n"]).sum() / n)
    p = float(stats.binomtest(int(round(acc * n)), int(n), base, alternative="greater").pvalue)
    return {"n": n, "accuracy": acc, "majority_rate": base, "p_value": p}
