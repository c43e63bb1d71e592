"""The servable TradingPolicy: bundle from real training runs, pickle-free actor equal to the trained
agent, decisions through the risk manager, and an MLflow pyfunc that loads by alias in a fresh
process and gives the in-process outputs exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from builders import TINY

from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.errors import DataQualityError, SchemaError
from trading_core.features import build_feature_set
from trading_core.registry.bundle import build_policy, example_bars, log_policy_run
from trading_core.registry.decision import OUTPUT_COLUMNS, PolicyState
from trading_core.registry.policy import TradingPolicy
from trading_core.registry.pyfunc import model_input


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A tiny hybrid (forecaster + PPO agent) trained on a synthetic market, in its own home."""
    from trading_core.forecast.pipeline import train_forecaster
    from trading_core.rl.pipeline import train_agent

    home = tmp_path_factory.mktemp("policy-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRADING_HOME", str(home))
        mp.chdir(home)
        settings = get_settings()
        request = IngestRequest(source="synthetic", n_assets=3, start="2022-01-03", end="2023-12-29")
        dataset = ingest(request, settings).dataset_version
        fsv = build_feature_set(dataset, TINY, settings).feature_set_version
        forecaster = train_forecaster(
            fsv, settings, model={"ensemble_size": 2}, train={"epochs": 1, "max_train_samples": 256, "device": "cpu"}
        )
        agent = train_agent(fsv, settings, algo="ppo", timesteps=256, forecaster_uri=forecaster.model_uri, n_envs=2)
        policy = build_policy(
            settings, feature_set_version=fsv, forecaster_uri=forecaster.model_uri, agent_uri=agent.model_uri,
            workdir=home / "build",
        )  # fmt: skip
        yield {"settings": settings, "fsv": fsv, "forecaster": forecaster, "agent": agent, "policy": policy}


def test_the_actor_rebuilt_from_json_and_tensors_acts_like_the_trained_agent(trained: dict, tmp_path: Path) -> None:
    from trading_core.registry.actors import AgentActor
    from trading_core.rl.agents import EnsembleAgent

    settings: Settings = trained["settings"]
    folder = Path(mlflow.artifacts.download_artifacts(trained["agent"].model_uri, dst_path=str(tmp_path)))
    ensemble = EnsembleAgent.load(folder, device="cpu")
    policy: TradingPolicy = trained["policy"]
    policy.actor.save(tmp_path / "actor")  # type: ignore[union-attr]
    rebuilt = AgentActor.load(tmp_path / "actor", policy.spec.obs_dim or 0, len(policy.symbols))
    obs = np.random.default_rng(0).normal(size=(50, policy.spec.obs_dim or 0)).astype(np.float32)
    for row in obs:
        np.testing.assert_array_equal(rebuilt.predict(row), ensemble.predict(row)[0])
    assert settings.home.exists()
    assert not any(p.suffix == ".zip" for p in (tmp_path / "actor").iterdir()), "no SB3 zip (cloudpickle) in a bundle"


def test_decide_runs_features_forecaster_agent_and_risk_manager(trained: dict) -> None:
    policy: TradingPolicy = trained["policy"]
    bars = example_bars(trained["settings"], policy)
    out = policy.decide(bars)
    assert list(out.columns) == list(OUTPUT_COLUMNS) and list(out["symbol"]) == policy.symbols
    assert (out["timestamp"] == pd.Timestamp(bars["timestamp"].max())).all()
    probs = out[["prob_hold", "prob_buy", "prob_sell"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    confidence = out["confidence"].to_numpy()
    scale = np.minimum(2.0 * confidence, 1.0)  # the hybrid rule: action * min(2 * confidence, 1)
    np.testing.assert_allclose(out["action_scaled"], out["action"] * scale, rtol=1e-6, atol=1e-9)
    limits = policy.spec.env.risk
    np.testing.assert_allclose(out["proposed_weight"], out["action_scaled"] * limits.max_position)
    assert (out["target_weight"].abs() <= limits.max_position + 1e-12).all()
    assert out["risk_decision"].nunique() == 1 and out["risk_decision"].iloc[0] in ("approved", "adjusted")


def test_a_deep_drawdown_in_the_state_halts_the_policy(trained: dict) -> None:
    policy: TradingPolicy = trained["policy"]
    bars = example_bars(trained["settings"], policy)
    limit = policy.spec.env.risk.max_drawdown
    state = PolicyState(equity=1.0 - limit - 0.01, peak_equity=1.0)
    out = policy.decide(bars, state)
    assert (out["risk_decision"] == "halted").all() and (out["target_weight"] == 0).all()
    assert "drawdown_halt" in out["risk_reasons"].iloc[0]
    assert out["cooldown_left"].iloc[0] == policy.spec.env.risk.cooldown, "the breaker's state goes out"
    cooling = policy.decide(bars, PolicyState(equity=1.0, peak_equity=1.0, cooldown_left=2, halted=True))
    assert (cooling["risk_decision"] == "halted").all() and cooling["cooldown_left"].iloc[0] == 1


def test_the_live_path_feeds_the_stages_from_incremental_feature_state(trained: dict) -> None:
    """What the live service will do: raw features from a FeatureState updated bar by bar (no
    recomputation over the history), then the policy's stages from the scaler on: the same decisions
    as decide() on the bar history, to the rounding of the incremental features."""
    from trading_core.features.online import BarSlice, FeatureState

    policy: TradingPolicy = trained["policy"]
    bars = policy.validate_bars(example_bars(trained["settings"], policy))
    stamps = np.sort(bars["timestamp"].unique())
    state = FeatureState(policy.feature_config.indicators, policy.universe)
    _, raw = state.replay(bars[bars["timestamp"] < stamps[-3]])
    rows = [raw]
    for stamp in stamps[-3:]:
        rows.append(state.frame(state.update(BarSlice.from_frame(bars[bars["timestamp"] == stamp]))))
    live_raw = pd.concat(rows).sort_values(["symbol", "timestamp"], kind="stable")
    n = len(policy.symbols)
    account = PolicyState(equity=1.5e6, weights=tuple([0.05] * n), peak_equity=1.6e6)
    live = policy.decide_from_features(bars, policy.scale(live_raw), account)
    expected = policy.decide(bars, account)
    assert list(live.columns) == list(OUTPUT_COLUMNS)
    exact = ["timestamp", "symbol", "label", "risk_decision", "risk_reasons", "cooldown_left"]
    pd.testing.assert_frame_equal(live[exact], expected[exact])
    pd.testing.assert_frame_equal(live, expected, check_exact=False, rtol=1e-6, atol=1e-9)
    forecasts = policy.forecast(policy.scale(live_raw))
    windows, ends, symbols = policy.forecaster_windows(policy.scale(live_raw))
    assert windows.shape[0] == n and symbols == policy.symbols
    pd.testing.assert_frame_equal(policy.predict_windows(windows, ends, symbols), forecasts)

def test_bad_input_is_named(trained: dict) -> None:
    policy: TradingPolicy = trained["policy"]
    bars = example_bars(trained["settings"], policy)
    with pytest.raises(SchemaError, match="close"):
        policy.decide(bars.drop(columns=["close"]))
    with pytest.raises(DataQualityError, match=policy.universe[0]):
        policy.decide(bars[bars["symbol"] != policy.universe[0]])
    with pytest.raises(DataQualityError, match="at least"):
        policy.decide(bars.groupby("symbol").tail(policy.min_history - 1))
    broken = bars.copy()
    broken.loc[5, "close"] = -1.0
    with pytest.raises(DataQualityError, match="non-positive"):
        policy.decide(broken)
    with pytest.raises(SchemaError, match="weights"):
        policy.decide(bars, PolicyState(weights=(0.1,)))


def test_pyfunc_loads_by_alias_in_a_fresh_process_and_matches(trained: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    settings: Settings = trained["settings"]
    policy: TradingPolicy = trained["policy"]
    run_id, uri = log_policy_run(settings, policy)
    version = mlflow.register_model(uri, "trading-policy")
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    client.set_registered_model_alias("trading-policy", "champion", version.version)

    bars = example_bars(settings, policy)
    n = len(policy.symbols)
    state = PolicyState(equity=2e6, weights=tuple([0.1] * n), entry_prices=tuple([100.0] * n), peak_equity=2.1e6)
    expected = policy.decide(bars, state)
    model_input(bars).to_parquet(tmp_path / "bars.parquet")
    (tmp_path / "params.json").write_text(json.dumps(state.as_params()))
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        f"mlflow.set_tracking_uri({settings.resolved_mlflow_tracking_uri!r})\n"
        "model = mlflow.pyfunc.load_model('models:/trading-policy@champion')\n"
        f"bars = pd.read_parquet({str(tmp_path / 'bars.parquet')!r})\n"
        f"params = json.load(open({str(tmp_path / 'params.json')!r}))\n"
        f"model.predict(bars, params=params).to_parquet({str(tmp_path / 'out.parquet')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = pd.read_parquet(tmp_path / "out.parquet")
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/policy", dst_path=str(tmp_path / "m")))
    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert "artifacts/bundle/policy.json" in files and "artifacts/bundle/reference/stats.json" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".zip"))], files
    meta = (local / "MLmodel").read_text()
    assert "signature" in meta and "min_history" in meta and "params" in meta


def test_a_symbol_with_missing_bars_still_gets_a_decision(trained: dict) -> None:
    """Quarantined rows leave gaps: the per-symbol tail still feeds min_history bars to every symbol."""
    from trading_core.data.ingest import load_dataset
    from trading_core.registry.policy import tail_bars

    policy: TradingPolicy = trained["policy"]
    bars = load_dataset(policy.spec.lineage["dataset_version"], trained["settings"])
    victim = policy.universe[0]
    rows = bars.index[bars["symbol"] == victim][-60:-55]  # five bars missing inside the window
    gappy = tail_bars(bars.drop(index=rows), policy.universe, policy.min_history)
    assert (gappy.groupby("symbol").size() == policy.min_history).all()
    out = policy.decide(gappy)
    assert list(out["symbol"]) == policy.symbols and out["target_weight"].notna().all()
