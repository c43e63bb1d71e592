"""Agents, the ensemble, determinism, pure RL vs hybrid, and the agent stage end to end (MLflow, CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from stable_baselines3.common.base_class import BaseAlgorithm

from trading_core.cli import main
from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider
from trading_core.data.request import IngestRequest
from trading_core.errors import ConfigError
from trading_core.features import (
    DatasetConfig,
    FeatureSetConfig,
    IndicatorConfig,
    LabelConfig,
    build_feature_set,
    compute_features,
    feature_store,
)
from trading_core.features.specs import feature_specs
from trading_core.forecast.pipeline import train_forecaster
from trading_core.risk.limits import RiskLimits
from trading_core.rl.agents import DEFAULTS, EnsembleAgent, agent_policy, evaluate, make_agent
from trading_core.rl.config import EnvConfig
from trading_core.rl.data import FORECAST_COLUMNS, MarketData
from trading_core.rl.env import TradingEnv
from trading_core.rl.market import Period, forecasts_from_model, market_from_feature_set, slice_market, window_end_rows
from trading_core.rl.pipeline import buy_and_hold, resolve_env_config, torch_threads, train_agent, validation_env
from trading_core.rl.vec_env import VecTradingEnv

pytestmark = pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")

IND = IndicatorConfig(vol_regime_window=40, corr_window=20, turbulence_window=30, sma_periods=(10, 30),
                      return_horizons=(1, 5, 21))  # fmt: skip
TINY_AGENT: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [32, 32]}},
    "a2c": {"n_steps": 8, "policy_kwargs": {"net_arch": [32, 32]}},
    "sac": {"learning_starts": 64, "batch_size": 32, "buffer_size": 5_000, "policy_kwargs": {"net_arch": [32, 32]}},
    "td3": {"learning_starts": 64, "batch_size": 32, "buffer_size": 5_000, "policy_kwargs": {"net_arch": [32, 32]}},
}  # fmt: skip
CFG = EnvConfig(episode_length=40, risk=RiskLimits(max_position=0.5, max_gross=1.5, var_limit=0.05))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny MLPs train many times faster on one thread (as the agent stage trains them)."""
    with torch_threads(1):
        yield


def _market(n_assets: int = 3, seed: int = 5) -> MarketData:
    provider = SyntheticProvider(SyntheticMarketConfig(n_assets=n_assets, seed=seed))
    bars = provider.fetch(provider.available_symbols(), date(2021, 1, 4), date(2022, 6, 30))
    feats = compute_features(bars, IND)
    names = [c for c in feats.columns if c not in ("timestamp", "symbol")]
    groups: dict[str, list[str]] = {}
    for spec in feature_specs(IND, n_assets):
        groups.setdefault(spec.group, []).append(spec.name)
    values = feats[names].to_numpy()
    feats[names] = np.clip((values - np.nanmean(values, 0)) / (np.nanstd(values, 0) + 1e-9), -5, 5)
    p = np.random.default_rng(0).dirichlet([1.0, 1.0, 1.0], len(feats))
    forecasts = feats[["timestamp", "symbol"]].copy()
    forecasts[list(FORECAST_COLUMNS[:3])] = p
    forecasts["confidence"] = p.max(axis=1)
    return MarketData.from_frames(bars, feats, groups, forecasts)


DATA = _market()
TRAIN, VAL = slice_market(DATA, 0, 260), slice_market(DATA, 0, DATA.n_steps)


def _train(algo: str, data: MarketData, config: EnvConfig, steps: int, seed: int = 0) -> BaseAlgorithm:
    agent = make_agent(algo, VecTradingEnv(data, config, n_envs=2), seed=seed, device="cpu", **TINY_AGENT[algo])
    return agent.learn(total_timesteps=steps)


@pytest.fixture(scope="module")
def agents() -> dict[str, BaseAlgorithm]:
    return {algo: _train(algo, TRAIN, CFG, 256) for algo in TINY_AGENT}


def test_every_algorithm_learns_on_the_vectorised_env(agents: dict[str, BaseAlgorithm]) -> None:
    env = TradingEnv(VAL, CFG)
    obs, _ = env.reset(seed=0)
    for algo, agent in agents.items():
        assert agent.num_timesteps >= 256, algo
        action = agent.predict(obs, deterministic=True)[0]
        assert action.shape == (DATA.n_assets,) and env.action_space.contains(np.clip(action, -1, 1))
    with pytest.raises(ValueError, match="unknown algorithm"):
        make_agent("dqn", VecTradingEnv(TRAIN, CFG, n_envs=2))
    # SB3 edits policy_kwargs in place (A2C adds its optimizer): neither the defaults nor the caller's dict change.
    assert TINY_AGENT["a2c"]["policy_kwargs"] == {"net_arch": [32, 32]}
    assert DEFAULTS["a2c"]["policy_kwargs"] == {"net_arch": [128, 128]}


@dataclass
class Constant:
    """A stand-in agent that always asks for the same action."""

    value: float

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.full(DATA.n_assets, self.value, dtype=np.float32), None


def test_ensemble_weights_are_validation_sharpe_floored_at_zero() -> None:
    fake: dict[str, Any] = {"a": Constant(1.0), "b": Constant(-1.0), "c": Constant(0.5)}
    assert EnsembleAgent(fake, {"a": 2.0, "b": -1.0, "c": 1.0}).weights == pytest.approx(
        {"a": 2 / 3, "b": 0, "c": 1 / 3}
    )
    assert EnsembleAgent(fake, {"a": -2.0, "b": -1.0, "c": 0.0}).weights == pytest.approx(dict.fromkeys(fake, 1 / 3))
    env = TradingEnv(VAL, CFG.model_copy(update={"episode_length": 60}))
    ensemble, results = EnsembleAgent.from_validation(fake, env, start=300)
    sharpe = {name: max(r.sharpe, 0.0) for name, r in results.items()}
    assert results["a"].sharpe == pytest.approx(-results["b"].sharpe, abs=0.5)  # mirror images, up to costs
    total = sum(sharpe.values())
    expected = {k: v / total for k, v in sharpe.items()} if total > 0 else dict.fromkeys(fake, 1 / 3)
    assert ensemble.weights == pytest.approx(expected)
    obs, _ = env.reset(seed=0, options={"start": 300})
    combined = sum(expected[k] * fake[k].value for k in fake)
    np.testing.assert_allclose(ensemble.predict(obs)[0], np.full(DATA.n_assets, combined), rtol=1e-6)


def test_ensemble_save_load_round_trip_gives_identical_actions(
    agents: dict[str, BaseAlgorithm], tmp_path: Path
) -> None:
    ensemble = EnsembleAgent({"sac": agents["sac"], "td3": agents["td3"], "ppo": agents["ppo"]},
                             {"sac": 1.0, "td3": 2.0, "ppo": 0.5})  # fmt: skip
    ensemble.save(tmp_path)
    loaded = EnsembleAgent.load(tmp_path, device="cpu")
    assert loaded.weights == pytest.approx(ensemble.weights)
    env = TradingEnv(VAL, CFG)
    obs, _ = env.reset(seed=1)
    for _ in range(20):
        a, b = ensemble.predict(obs)[0], loaded.predict(obs)[0]
        np.testing.assert_array_equal(a, b)
        obs, *_ = env.step(a)


def test_same_seed_same_data_same_evaluation_metrics() -> None:
    def metrics(seed: int) -> dict[str, float | int]:
        agent = _train("ppo", TRAIN, CFG, 512, seed=seed)
        env, start = validation_env(VAL, Period(260, DATA.n_steps), CFG)
        return evaluate(agent_policy(agent), env, start).as_dict()

    first = metrics(7)
    assert metrics(7) == first
    assert metrics(8) != first


def test_pure_rl_and_hybrid_from_the_same_code_path() -> None:
    pure, hybrid = resolve_env_config({"episode_length": 40}, hybrid=False), resolve_env_config(None, hybrid=True)
    assert "forecast" not in pure.blocks and not pure.confidence_scaling
    assert "forecast" in hybrid.blocks and hybrid.confidence_scaling
    dims = {}
    for name, config in (("pure", pure), ("hybrid", hybrid)):
        agent = _train("ppo", TRAIN, config, 64)
        dims[name] = agent.observation_space.shape[0]  # type: ignore[index]
    assert dims["hybrid"] - dims["pure"] == 4 * DATA.n_assets
    no_forecast = MarketData(**{**DATA.__dict__, "forecast": None})
    _train("ppo", no_forecast, pure, 64)  # pure RL needs no forecaster data
    with pytest.raises(ValueError, match="forecast"):
        VecTradingEnv(no_forecast, hybrid, n_envs=2)
    with pytest.raises(ConfigError, match="pure RL"):
        resolve_env_config({"blocks": ["market", "forecast"]}, hybrid=False)
    with pytest.raises(ConfigError, match="cost_bps"):
        resolve_env_config({"cost_bps": -1}, hybrid=True)
    assert resolve_env_config({"risk": {"max_position": 0.1}}, hybrid=True).risk.max_gross == RiskLimits().max_gross


def test_training_episodes_never_reach_past_the_training_period() -> None:
    whole = CFG.model_copy(update={"episode_length": None})  # every episode runs to the slice's end
    env = VecTradingEnv(slice_market(DATA, 0, 200), whole, n_envs=4)
    env.seed(0)
    env.reset()
    rng, last = np.random.default_rng(0), 0
    for _ in range(300):
        *_, infos = env.step(rng.uniform(-1, 1, (4, DATA.n_assets)).astype(np.float32))
        last = max(last, *(info["bar"] for info in infos))
    assert last == 199  # fills reach the slice's last bar and never a later one
    val_env, start = validation_env(DATA, Period(260, 300), CFG)
    assert val_env.engine.data.n_steps == 300 and start == 260
    assert evaluate(lambda obs: np.zeros(DATA.n_assets), val_env, start).steps == 300 - 1 - 260


def test_buy_and_hold_reference_follows_prices() -> None:
    cfg = CFG.model_copy(update={"cost_bps": 0.0, "slippage_bps": 0.0})
    bh = buy_and_hold(DATA, 300, 20, cfg)
    expected = (DATA.close[320] / DATA.open[301]).mean() - 1.0
    assert bh.steps == 20 and bh.total_return == pytest.approx(expected)


# ------------------------------------------------------------------------------ the stage end to end

TINY_FS = FeatureSetConfig(indicators=IND, labels=LabelConfig(horizon=3, threshold_k=0.5),
                           dataset=DatasetConfig(seq_len=8, embargo=2))  # fmt: skip


TINY_FORECASTER: dict[str, Any] = {"ensemble_size": 1, "lstm_units": 8, "cnn_filters": [4], "attention_heads": 1}


@dataclass
class Stage:
    settings: Settings
    feature_set_version: str
    forecaster_uri: str


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """A 4-symbol, 2-year feature set and a tiny forecaster (one member, one epoch) trained on it."""
    root = tmp_path_factory.mktemp("agent")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(root / "home"))  # the CLI builds its own Settings
        mp.chdir(root)
        settings = get_settings()
        request = IngestRequest(source="synthetic", n_assets=4, start=date(2022, 1, 3), end=date(2023, 12, 29),
                                signal_strength=0.5)  # fmt: skip
        version = build_feature_set(ingest(request, settings).dataset_version, TINY_FS, settings).feature_set_version
        forecaster = train_forecaster(version, settings, model=TINY_FORECASTER, train={"epochs": 1, "batch_size": 256})
        yield Stage(settings, version, forecaster.model_uri)


def test_market_from_a_feature_set_and_a_forecaster(stage: Stage, tmp_path: Path) -> None:
    fs = feature_store(stage.settings).open(stage.feature_set_version)
    data, periods = market_from_feature_set(fs, stage.settings, stage.forecaster_uri)
    splits = fs.summary["splits"]
    assert str(data.timestamps[periods.val.start]) == splits["val_start"][:29]
    assert str(data.timestamps[periods.test.start]) == splits["test_start"][:29]
    assert periods.train == (data.first_valid, periods.val.start) and periods.test.stop == data.n_steps
    assert data.feature_names == tuple(fs.feature_names)
    assert set(data.feature_groups) == {"market", "technical", "regime", "microstructure"}
    # Every bar that ends a complete window has a forecast, labelled or not (the last bars have no label).
    assert data.forecast is not None and (data.forecast[-1, :, 3] > 0).all()
    rows = window_end_rows(fs.matrix, fs.features([])["symbol"].to_numpy(), fs.seq_len)
    assert len(rows) > len(fs.samples)
    # Per-bar forecasts from any source: a file with the same columns gives the same panel.
    frame = forecasts_from_model(fs, stage.forecaster_uri, stage.settings)
    path = tmp_path / "forecasts.parquet"
    frame.to_parquet(path)
    from_file, _ = market_from_feature_set(fs, stage.settings, str(path), symbols=["SYN001", "SYN000"])
    assert from_file.symbols == ("SYN000", "SYN001")
    np.testing.assert_allclose(from_file.forecast, data.forecast[:, :2], rtol=1e-6)  # type: ignore[index]
    with pytest.raises(ConfigError, match="not in feature set"):
        market_from_feature_set(fs, stage.settings, symbols=["NOPE"])


def test_train_agent_logs_a_run_the_ensemble_can_be_loaded_from(stage: Stage) -> None:
    settings = stage.settings
    result = train_agent(stage.feature_set_version, settings, algo="ensemble", timesteps=160, n_envs=2, seed=3,
                         forecaster_uri=stage.forecaster_uri, env={"episode_length": 40},
                         agent=TINY_AGENT, members=["sac", "td3"], eval_every=80)  # fmt: skip
    assert result.variant == "hybrid" and set(result.weights) == {"sac", "td3"}
    assert sum(result.weights.values()) == pytest.approx(1.0)
    assert result.metrics["val_steps"] == result.metrics["val_buy_hold_steps"]
    for key in ("val_sharpe", "val_total_return", "val_max_drawdown", "val_turnover", "val_halted_share",
                "val_buy_hold_sharpe", "sac/val_sharpe", "td3/weight"):  # fmt: skip
        assert key in result.metrics, key
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.tags["variant"] == "hybrid" and run.data.tags["forecaster_uri"] == stage.forecaster_uri
    assert run.data.tags["feature_set_version"] == stage.feature_set_version
    assert run.data.params["algo"] == "ensemble" and run.data.params["env.confidence_scaling"] == "True"
    assert run.data.params["agent.sac.learning_starts"] == "64" and "env.risk.var_limit" in run.data.params
    history = client.get_metric_history(result.run_id, "sac/val_sharpe")
    assert [m.step for m in history] == [80, 160]
    files = {a.path for a in client.list_artifacts(result.run_id, "agent")}
    assert files == {f"agent/{f}" for f in ("sac.zip", "td3.zip", "ensemble.json", "env_config.json", "market.json")}
    assert not (settings.home / "checkpoints" / "agent" / result.run_id).exists()

    local = Path(
        mlflow.artifacts.download_artifacts(result.model_uri, tracking_uri=settings.resolved_mlflow_tracking_uri)
    )
    loaded = EnsembleAgent.load(local, device="auto")  # where the stage trained them (SAC/TD3: CUDA if present)
    assert loaded.weights == pytest.approx(result.weights)
    config = EnvConfig.model_validate(json.loads((local / "env_config.json").read_text()))
    fs = feature_store(settings).open(stage.feature_set_version)
    data, periods = market_from_feature_set(fs, settings, stage.forecaster_uri)
    env, start = validation_env(data, periods.val, config)
    replay = evaluate(lambda obs: loaded.predict(obs)[0], env, start)
    assert replay.sharpe == pytest.approx(result.metrics["val_sharpe"], rel=1e-6, abs=1e-9)


def test_cli_train_agent_pure_rl(stage: Stage, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train-agent", "--algo", "a2c", "--pure-rl", "--timesteps", "64", "--n-envs", "2", "--episode-length",
            "30", "--agent-overrides", json.dumps(TINY_AGENT["a2c"])]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variant"] == "pure_rl" and out["feature_set_version"] == stage.feature_set_version
    run = MlflowClient(stage.settings.resolved_mlflow_tracking_uri).get_run(out["run_id"])
    assert run.data.params["env.blocks"].split(",") == [b for b in EnvConfig().blocks if b != "forecast"]
    assert run.data.params["env.episode_length"] == "30"
    with pytest.raises(SystemExit):
        main(["train-agent", "--algo", "ppo"])  # neither --forecaster-uri nor --pure-rl
    assert main(["train-agent", "--pure-rl", "--agent-overrides", "[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
