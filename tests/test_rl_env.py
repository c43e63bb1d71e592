"""The trading environment: gymnasium/SB3 contracts, accounting, next-bar execution, no look-ahead,
the vectorised engine against single environments, determinism."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider
from trading_core.features import IndicatorConfig, compute_features
from trading_core.features.specs import feature_specs
from trading_core.risk.limits import RiskLimits
from trading_core.rl.config import OBSERVATION_BLOCKS, EnvConfig, RewardWeights
from trading_core.rl.data import FORECAST_COLUMNS, MarketData
from trading_core.rl.env import TradingEnv
from trading_core.rl.vec_env import VecTradingEnv

IND = IndicatorConfig(
    vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30), return_horizons=(1, 5, 21)
)


def _bars(n_assets: int = 4, seed: int = 3) -> pd.DataFrame:
    provider = SyntheticProvider(SyntheticMarketConfig(n_assets=n_assets, seed=seed))
    return provider.fetch(provider.available_symbols(), date(2021, 1, 4), date(2022, 12, 30))


def _market(bars: pd.DataFrame, with_forecast: bool = True) -> MarketData:
    feats = compute_features(bars, IND)
    names = [c for c in feats.columns if c not in ("timestamp", "symbol")]
    groups: dict[str, list[str]] = {}
    for spec in feature_specs(IND, bars["symbol"].nunique()):
        groups.setdefault(spec.group, []).append(spec.name)
    scaled = feats.copy()
    values = scaled[names].to_numpy()
    early = (feats["timestamp"] < feats["timestamp"].min() + pd.Timedelta(days=300)).to_numpy()
    fit = values[early]  # a scaler fitted on an early period only, as the feature store does
    scaled[names] = np.clip((values - np.nanmean(fit, 0)) / (np.nanstd(fit, 0) + 1e-9), -5, 5)
    forecasts = None
    if with_forecast:
        rng = np.random.default_rng(0)
        p = rng.dirichlet([1.0, 1.0, 1.0], len(feats))
        forecasts = feats[["timestamp", "symbol"]].copy()
        forecasts[list(FORECAST_COLUMNS[:3])] = p
        forecasts["confidence"] = p.max(axis=1)
    return MarketData.from_frames(bars, scaled, groups, forecasts)


BARS = _bars()
DATA = _market(BARS)
CFG = EnvConfig(episode_length=60, risk=RiskLimits(max_position=0.5, max_gross=1.5, var_limit=0.05))


def test_passes_gymnasium_and_sb3_checkers() -> None:
    check_env(TradingEnv(DATA, CFG), skip_render_check=True)
    sb3_check_env(TradingEnv(DATA, CFG), warn=True)


def test_blocks_switch_parts_of_the_observation_off() -> None:
    full = TradingEnv(DATA, CFG)
    pure = TradingEnv(
        DATA,
        CFG.model_copy(
            update={"blocks": tuple(b for b in OBSERVATION_BLOCKS if b != "forecast"), "confidence_scaling": False}
        ),
    )
    assert full.observation_space.shape[0] - pure.observation_space.shape[0] == 4 * DATA.n_assets
    with pytest.raises(ValueError, match="forecast"):
        TradingEnv(_market(BARS, with_forecast=False), CFG)


def _run(env: TradingEnv, actions: np.ndarray, seed: int = 0, start: int | None = None) -> list[dict]:
    env.reset(seed=seed, options={"start": start} if start is not None else None)
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append({"obs": obs, "reward": reward, **info})
        if terminated or truncated:
            break
    return out


def test_accounting_identity_and_next_bar_execution() -> None:
    cfg = CFG.model_copy(
        update={
            "confidence_scaling": False,
            "cost_bps": 0.0,
            "slippage_bps": 0.0,
            "impact_coef": 0.0,
            "risk": RiskLimits(max_position=1.0, max_gross=1.0, var_limit=1.0, max_drawdown=0.99),
        }
    )
    single = MarketData(
        timestamps=DATA.timestamps,
        symbols=DATA.symbols[:1],
        open=DATA.open[:, :1],
        close=DATA.close[:, :1],
        volume=DATA.volume[:, :1],
        features=DATA.features[:, :1],
        feature_names=DATA.feature_names,
        feature_groups=DATA.feature_groups,
        forecast=DATA.forecast[:, :1],
        first_valid=DATA.first_valid,
    )
    env = TradingEnv(single, cfg)
    start = env.engine.min_start + 5
    steps = _run(env, np.ones((3, 1)), start=start)
    # Fully long from the open of start+1: equity follows close_{t+1} / open_{start+1}, nothing earlier.
    o, c = single.open[:, 0], single.close[:, 0]
    expected = cfg.initial_cash * c[start + 1] / o[start + 1]
    assert steps[0]["equity"] == pytest.approx(expected, rel=1e-12)
    assert steps[1]["equity"] == pytest.approx(expected * c[start + 2] / c[start + 1], rel=1e-12)
    e = env.engine
    assert e.equity[0] == pytest.approx(e.cash[0] + (e.shares[0] * c[e.t[0]]).sum(), rel=1e-12)


def test_costs_slippage_and_impact_are_charged() -> None:
    free = CFG.model_copy(update={"cost_bps": 0.0, "slippage_bps": 0.0, "impact_coef": 0.0})
    paid = CFG.model_copy(update={"cost_bps": 10.0, "slippage_bps": 5.0, "impact_coef": 1.0})
    actions = np.tile([1.0, -1.0, 0.5, 0.0], (10, 1))
    a, b = _run(TradingEnv(DATA, free), actions), _run(TradingEnv(DATA, paid), actions)
    assert all(s["costs"] == 0 for s in a) and b[0]["costs"] > 0 and b[0]["impact"] > 0
    assert b[-1]["equity"] < a[-1]["equity"]
    # First bar: commission + slippage = 15 bps of traded notional, plus impact.
    traded = b[0]["turnover"] * CFG.initial_cash  # equity at the first open is the initial cash
    assert b[0]["costs"] - b[0]["impact"] == pytest.approx(traded * 15e-4, rel=1e-6)


def test_the_risk_manager_has_the_last_word() -> None:
    env = TradingEnv(DATA, CFG)
    steps = _run(env, np.ones((5, DATA.n_assets)))
    for s in steps:
        weights = env.engine.shares[0] * DATA.close[env.engine.t[0]] / env.engine.equity[0]
        assert s["risk_decision"] in ("approved", "adjusted", "halted")
    assert np.abs(weights).sum() <= CFG.risk.max_gross * 1.05  # marked at the close, so drift is allowed
    assert any(s["risk_decision"] == "adjusted" for s in steps), "all-in on 4 assets breaks the gross limit"


def test_observation_at_t_ignores_bars_after_t() -> None:
    env = TradingEnv(DATA, CFG)
    start = env.engine.episode_bounds()[1] - 5  # after the test scaler's fitting period
    obs0, _ = env.reset(seed=1, options={"start": start})
    altered = BARS.copy()
    cut = pd.Timestamp(DATA.timestamps[start], tz="UTC")
    later = altered.timestamp > cut
    for col in ("open", "high", "low", "close"):
        altered.loc[later, col] *= 1.3
    data2 = _market(altered)
    env2 = TradingEnv(data2, CFG)
    obs1, _ = env2.reset(seed=1, options={"start": start})
    np.testing.assert_allclose(obs1, obs0, rtol=1e-5, atol=1e-6)


def test_vectorised_env_matches_single_envs() -> None:
    n, steps = 4, 130  # longer than an episode: auto-resets are exercised
    vec = VecTradingEnv(DATA, CFG, n_envs=n)
    vec.seed(7)
    obs = vec.reset()
    singles = [TradingEnv(DATA, CFG) for _ in range(n)]
    single_obs = [env.reset(seed=7 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_array_equal(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (n, DATA.n_assets)).astype(np.float32)
        obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            o, r, term, trunc, info = env.step(actions[i])
            assert r == pytest.approx(float(rewards[i]), rel=1e-6, abs=1e-9)
            assert dones[i] == (term or trunc)
            if term or trunc:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o)


def test_same_seed_same_trajectory_and_reward_components() -> None:
    rng = np.random.default_rng(5)
    actions = rng.uniform(-1, 1, (40, DATA.n_assets))
    a, b = _run(TradingEnv(DATA, CFG), actions, seed=3), _run(TradingEnv(DATA, CFG), actions, seed=3)
    assert [s["reward"] for s in a] == [s["reward"] for s in b]
    calm = CFG.model_copy(update={"reward": RewardWeights(alpha=0, beta=0, gamma=0, impact_weight=0)})
    c = _run(TradingEnv(DATA, calm), actions, seed=3)
    env = TradingEnv(DATA, calm)
    env.reset(seed=3)
    t0 = int(env.engine.t[0])
    first = c[0]
    assert first["reward"] == pytest.approx(first["portfolio_return"] / (env.engine.market_vol[t0] + 1e-4))
