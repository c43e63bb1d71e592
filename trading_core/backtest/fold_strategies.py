"""The strategies of a walk-forward fold: the market panel they trade, their training on the fold's
past, and their back-tests on its test window.

:class:`StrategyPlan` resolves once per run what every fold trains with (each strategy's
environment configuration, the agents' algorithm, the ensemble's members and their SB3 overrides).
Per fold and seed, :func:`fold_panel` is the panel (features scaled by the fold's scaler, the
fold's forecasts) and :func:`evaluate_strategies` trains the agents on the fold's training bars only
(the panel is sliced at the end of the training window, so no environment can read a later bar) and
back-tests every strategy on the test window, once per cost multiplier:

* pure RL (no forecast block, no confidence scaling), hybrid RL, and hybrid RL without confidence
  scaling (same algorithm, same seed);
* the ensemble agent (``members``, hybrid), whose members train on the bars before the validation
  tail and are weighted by their Sharpe ratio on it;
* buy and hold and the forecaster-only rule, which need no training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from trading_core.backtest.config import WalkForwardConfig
from trading_core.backtest.engine import BacktestResult, Policy, run_backtest
from trading_core.backtest.fold_data import FoldFeatureSet
from trading_core.backtest.fold_forecaster import fold_forecasts
from trading_core.backtest.folds import Fold
from trading_core.backtest.strategies import (
    BUY_AND_HOLD,
    ENSEMBLE,
    FORECASTER_RULE,
    HYBRID_NO_CONF,
    HYBRID_RL,
    PURE_RL,
    STRATEGIES,
    agent_policy,
    buy_and_hold_policy,
    forecaster_rule_policy,
    strategy_config,
)
from trading_core.config import Settings
from trading_core.data.ingest import load_dataset
from trading_core.errors import ConfigError
from trading_core.features.store import FeatureSet
from trading_core.forecast.model import ForecasterEnsemble
from trading_core.rl.agents import EnsembleAgent, make_agent, member_names
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import MarketData
from trading_core.rl.market import Period, feature_groups, slice_market
from trading_core.rl.pipeline import member_overrides, resolve_env_config, validation_env
from trading_core.rl.vec_env import VecTradingEnv


class FoldResult(NamedTuple):
    """One strategy's back-test of one fold's test window, for one seed and one cost multiplier."""

    strategy: str
    seed: int
    fold: int
    cost_multiplier: float
    result: BacktestResult


@dataclass(frozen=True)
class StrategyPlan:
    """What every fold trains its strategies with, resolved once from the run's configuration."""

    cfg: WalkForwardConfig
    configs: dict[str, EnvConfig]
    """Per strategy, the environment configuration it is trained and back-tested under (at 1x costs)."""
    algo: str
    """The algorithm of the pure RL and hybrid agents."""
    agent_kwargs: dict[str, Any]
    """Their SB3 overrides."""
    members: list[str]
    """The ensemble members' names (one per entry of ``cfg.members``)."""
    member_algos: list[str]
    member_kwargs: dict[str, dict[str, Any]]

    @classmethod
    def from_config(cls, cfg: WalkForwardConfig) -> StrategyPlan:
        algos = [a.lower() for a in cfg.members]
        hybrid_cfg = resolve_env_config(cfg.env, True)
        configs = {strategy: strategy_config(strategy, hybrid_cfg) for strategy in STRATEGIES}
        names = member_names(algos)
        member_kwargs = member_overrides(names, algos, cfg.agent)
        algo = cfg.algo.lower()
        single_kwargs = member_overrides([algo], [algo], cfg.agent)[algo]
        return cls(cfg, configs, algo, single_kwargs, names, algos, member_kwargs)


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


def fold_panel(
    view: FoldFeatureSet,
    base: MarketData,
    bars: pd.DataFrame,
    forecaster: ForecasterEnsemble | None,
    strategies: Sequence[str],
) -> MarketData:
    """The panel the fold's ``strategies`` trade: the fold's scaled features with the fold's
    ``forecaster``'s forecasts up to the end of the test window (when it was trained), the fold's
    features alone for pure RL, else the dataset's ``base`` panel (bars are all a baseline reads)."""
    symbols = list(base.symbols)
    if forecaster is not None:
        forecasts = fold_forecasts(view, forecaster, symbols, view.test_end)
        data = fold_market(view, bars, symbols, forecasts)
        if not np.array_equal(data.timestamps, base.timestamps):
            raise AssertionError("the fold's panel has other bars than the dataset's panel")
        return data
    if PURE_RL in strategies:
        return fold_market(view, bars, symbols, None)
    return base


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


def train_policies(
    plan: StrategyPlan, data: MarketData, fold: Fold, view: FoldFeatureSet, seed: int
) -> dict[str, Policy]:
    """Every strategy of the run as a policy, its agents trained on the fold's training bars of ``data``."""
    cfg, configs, wanted = plan.cfg, plan.configs, plan.cfg.strategies
    policies: dict[str, Policy] = {}
    # rolling: nothing before the window either (the env's warm-up reads the window's own bars)
    train_data_start = fold.train[0] if cfg.mode == "rolling" else 0
    train_data = slice_market(data, train_data_start, fold.train[1])
    if BUY_AND_HOLD in wanted:
        policies[BUY_AND_HOLD] = buy_and_hold_policy(data.n_assets, configs[BUY_AND_HOLD].risk.max_position)
    if FORECASTER_RULE in wanted:
        policies[FORECASTER_RULE] = forecaster_rule_policy(
            data, allow_short=cfg.allow_short, max_position=cfg.rule_max_position
        )
    for strategy in (PURE_RL, HYBRID_RL, HYBRID_NO_CONF):
        if strategy in wanted:
            agent = _train_agent(plan.algo, train_data, configs[strategy], cfg, seed, plan.agent_kwargs)
            policies[strategy] = agent_policy(agent)
    if ENSEMBLE in wanted:
        val_period = Period(view.val_bars[0], view.val_bars[1])
        before_val = slice_market(data, train_data_start, val_period.start)
        members = {
            name: _train_agent(algo, before_val, configs[ENSEMBLE], cfg, seed + k, plan.member_kwargs[name])
            for k, (name, algo) in enumerate(zip(plan.members, plan.member_algos, strict=True))
        }
        val_env, val_start = validation_env(data, val_period, configs[ENSEMBLE])
        ensemble, _ = EnsembleAgent.from_validation(members, val_env, val_start)
        policies[ENSEMBLE] = agent_policy(ensemble)
    return policies


def evaluate_strategies(
    plan: StrategyPlan, data: MarketData, fold: Fold, view: FoldFeatureSet, seed: int
) -> list[FoldResult]:
    """Train the fold's strategies (:func:`train_policies`) and back-test each on the fold's test
    window, once per cost multiplier (the agents were trained at 1x)."""
    policies = train_policies(plan, data, fold, view, seed)
    results = []
    for strategy in plan.cfg.strategies:
        for mult in plan.cfg.cost_multipliers:
            config = scaled_costs(plan.configs[strategy], mult)
            result = run_backtest(data, config, policies[strategy], fold.test[0], fold.test[1])
            results.append(FoldResult(strategy, seed, fold.index, mult, result))
    return results
