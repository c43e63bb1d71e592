"""Environment throughput: our TradingEnv and VecTradingEnv vs FinRL's StockTradingEnv, same data, same steps.

    .venv/bin/python benchmarks/env.py [--steps 20000] [--n-envs 64] [--skip-finrl] [--rebuild-finrl]

**Universe.** The S&P 500 daily file (1,259 days) read through the project's ``FileProvider`` and
``validate_bars``; of the symbols with a clean bar on every day, the 30 with the largest median
dollar volume (close x volume), alphabetically ordered. FinRL gets the same 30 names.

**Our side.** ``compute_features`` on those 30 symbols (the full catalogue: market, technical,
regime, microstructure), standardised over the whole period (values only shape the observation;
a scaler fitted on a training split is what the pipeline uses), then ``MarketData.from_frames``.
The env config is the default :class:`EnvConfig` as pure RL (no forecaster, hence no ``forecast``
block and no confidence scaling): costs, slippage, square-root impact, the RiskManager (limits,
VaR, drawdown breaker) and the accounting check run on every step, episodes of 252 steps from
random starts.

**FinRL's side.** ``benchmarks/finrl_env/run_finrl.py`` in its own virtualenv
(``<home>/bench/finrl-venv``, built once from ``benchmarks/finrl_env/requirements.txt``: finrl
0.3.7 conflicts with our pins), FinRL's own preprocessing (FeatureEngineer with its 8 stockstats
INDICATORS, data_split) and ``StockTradingEnv(hmax=100, initial_amount=1e6, costs 0.1 %,
reward_scaling=1e-4, make_plots=False, print_verbosity=huge)``: episodes over the whole period.

**Timed.** Each env gets the same ``--steps`` env-steps of seeded uniform actions in [-1, 1]^30
(drawn before the clock starts; the single env and FinRL see the very same sequence), resets at
episode end included. The vectorised env counts n_envs env-steps per ``step`` call and runs
ceil(steps / n_envs) calls. Ours are timed ``--repeats`` times (median reported), FinRL once.
asset-steps/s = steps/s x 30. Then SB3 PPO (``MlpPolicy``, n_steps=64, batch_size=1024) learns
``--ppo-steps`` timesteps on a fresh vectorised env: training steps/s including the updates.

The last line is one JSON object: finrl_steps_per_s, single_steps_per_s, vec_steps_per_s,
ratio_single, ratio_vec (ours / FinRL), ppo_steps_per_s and the setup.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
DEFAULT = ROOT.parents[1] / "shared" / "data" / "sp500_daily_2013-02-08_2018-02-07.csv.gz"
FINRL_DIR = ROOT / "finrl_env"
REQUIREMENTS = FINRL_DIR / "requirements.txt"
RUNNER = FINRL_DIR / "run_finrl.py"
N_ASSETS = 30


# ------------------------------------------------------------------------------------- data


def load_universe(path: Path, n_assets: int) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Validated bars of the ``n_assets`` most traded symbols that have a clean bar on every day."""
    from trading_core.data.providers.files import FileProvider
    from trading_core.data.request import ValidationPolicy
    from trading_core.data.validation import validate_bars

    t0 = time.perf_counter()
    provider = FileProvider(path, layout="sp500_all_stocks")
    raw = provider.fetch([], None, None)
    bars = validate_bars(raw, provider.calendar, "1d", ValidationPolicy()).clean
    n_days = bars["timestamp"].nunique()
    counts = bars.groupby("symbol")["timestamp"].nunique()
    full = counts.index[counts == n_days]
    full_bars = bars[bars["symbol"].isin(full)]
    dollar_volume = (full_bars["close"] * full_bars["volume"]).groupby(full_bars["symbol"]).median()
    symbols = sorted(dollar_volume.sort_values(ascending=False).index[:n_assets])
    chosen = bars[bars["symbol"].isin(symbols)].sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    info = {"rows_read": len(raw), "symbols_total": bars["symbol"].nunique(), "symbols_full": len(full)}
    info |= {"days": n_days, "load_s": time.perf_counter() - t0}
    return chosen, symbols, info


def build_market(bars: pd.DataFrame, symbols: list[str]) -> tuple[Any, dict[str, Any]]:
    """Our features for the universe, standardised, as the dense panel the envs replay."""
    from trading_core.features import IndicatorConfig, compute_features
    from trading_core.features.scaling import StandardScaler
    from trading_core.features.specs import feature_specs
    from trading_core.rl.data import MarketData

    t0 = time.perf_counter()
    config = IndicatorConfig()
    features = compute_features(bars, config)
    specs = feature_specs(config, len(symbols))
    names = [s.name for s in specs]
    scaler = StandardScaler.fit(features[names].to_numpy(np.float64), names, clip=5.0)
    features[names] = scaler.transform(features[names].to_numpy(np.float64))
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec.name)
    data = MarketData.from_frames(bars, features, groups, None, symbols)
    return data, {
        "n_features": len(names),
        "groups": {g: len(c) for g, c in groups.items()},
        "build_s": time.perf_counter() - t0,
    }


def env_config() -> Any:
    from trading_core.rl.config import OBSERVATION_BLOCKS, EnvConfig

    return EnvConfig(blocks=tuple(b for b in OBSERVATION_BLOCKS if b != "forecast"), confidence_scaling=False)


# ------------------------------------------------------------------------------------- ours


def time_single(data: Any, steps: int, seed: int) -> dict[str, Any]:
    from trading_core.rl.env import TradingEnv

    env = TradingEnv(data, env_config())
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (steps, data.n_assets)).astype(np.float32)
    env.reset(seed=seed)
    episodes = 0
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(actions[i])
        if terminated or truncated:
            episodes += 1
            env.reset()
    seconds = time.perf_counter() - t0
    return {"steps": steps, "seconds": seconds, "episodes": episodes, "obs_dim": int(env.observation_space.shape[0])}


def time_vec(data: Any, steps: int, n_envs: int, seed: int) -> dict[str, Any]:
    from trading_core.rl.vec_env import VecTradingEnv

    venv = VecTradingEnv(data, env_config(), n_envs=n_envs)
    calls = math.ceil(steps / n_envs)
    actions = np.random.default_rng(seed).uniform(-1.0, 1.0, (calls, n_envs, data.n_assets)).astype(np.float32)
    venv.seed(seed)
    venv.reset()
    episodes = 0
    t0 = time.perf_counter()
    for i in range(calls):
        _, _, dones, _ = venv.step(actions[i])
        episodes += int(dones.sum())
    seconds = time.perf_counter() - t0
    return {"steps": calls * n_envs, "calls": calls, "seconds": seconds, "episodes": episodes}


def time_ppo(data: Any, total: int, n_envs: int, seed: int) -> dict[str, Any]:
    """PPO learning on a fresh vectorised env; the rollouts (env + policy forward) timed apart from the updates."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from trading_core.rl.vec_env import VecTradingEnv

    class RolloutClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds, self.rollouts, self._t = 0.0, 0, 0.0

        def _on_rollout_start(self) -> None:
            self._t = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.seconds += time.perf_counter() - self._t
            self.rollouts += 1

        def _on_step(self) -> bool:
            return True

    venv = VecTradingEnv(data, env_config(), n_envs=n_envs)
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=1024, seed=seed, device="cpu", verbose=0)
    clock = RolloutClock()
    t0 = time.perf_counter()
    model.learn(total_timesteps=total, callback=clock)
    seconds = time.perf_counter() - t0
    return {
        "steps": int(model.num_timesteps),
        "seconds": seconds,
        "rollout_s": clock.seconds,
        "rollouts": clock.rollouts,
        "torch_threads": torch.get_num_threads(),
    }


def repeat(fn: Any, repeats: int, *args: Any) -> tuple[dict[str, Any], list[float]]:
    """Median run (by steps/s) of ``repeats`` and every run's steps/s."""
    runs = [fn(*args) for _ in range(repeats)]
    rates = [r["steps"] / r["seconds"] for r in runs]
    median = statistics.median(rates)
    best_match = min(range(len(runs)), key=lambda i: abs(rates[i] - median))
    return runs[best_match] | {"steps_per_s": median}, rates


# ------------------------------------------------------------------------------------- FinRL


def finrl_venv(rebuild: bool) -> Path:
    """``<home>/bench/finrl-venv`` with the FinRL requirements; built once (stamp = requirements' hash)."""
    from trading_core.config import get_settings

    venv = get_settings().home / "bench" / "finrl-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not rebuild and python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        print(f"FinRL venv : {venv} (reused; --rebuild-finrl to recreate)")
        return python
    if venv.exists():
        shutil.rmtree(venv)
    print(f"FinRL venv : building {venv} from {REQUIREMENTS.relative_to(ROOT.parent)} ...", flush=True)
    t0 = time.perf_counter()
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"  # pip's note on absent local index folders
        tail = [line for line in (install.stdout + install.stderr).splitlines() if noise not in line][-30:]
        raise SystemExit("FinRL venv: pip install failed:\n" + "\n".join(tail))
    stamp.write_text(digest + "\n")
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 2**20
    print(f"FinRL venv : installed in {time.perf_counter() - t0:.0f} s ({size:,.0f} MiB)")
    return python


def run_finrl(python: Path, csv: Path, symbols: list[str], steps: int, seed: int) -> dict[str, Any]:
    cmd = [str(python), str(RUNNER), "--csv", str(csv), "--tickers", ",".join(symbols)]
    cmd += ["--steps", str(steps), "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT.parent)
    if proc.returncode != 0:
        raise SystemExit(f"FinRL run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    for line in proc.stderr.splitlines():
        print(f"FinRL      : {line}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return json.loads(last)


# ------------------------------------------------------------------------------------- report


def line(name: str, rate: float, extra: str = "", finrl: float | None = None) -> str:
    ratio = f"  {rate / finrl:7.1f}x FinRL" if finrl else ""
    return f"{name:<11}: {rate:>12,.0f} steps/s {rate * N_ASSETS:>14,.0f} asset-steps/s{ratio}  {extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, default=DEFAULT, help="the S&P 500 daily file (date..Name layout)")
    parser.add_argument("--steps", type=int, default=20_000, help="env-steps per env (vec: n_envs per call)")
    parser.add_argument("--n-envs", type=int, default=64, help="portfolios in the vectorised env")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of our envs (median reported)")
    parser.add_argument("--ppo-steps", type=int, default=20_480, help="PPO timesteps (0: skip PPO)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-finrl", action="store_true", help="ours only (no FinRL venv, no ratios)")
    parser.add_argument("--rebuild-finrl", action="store_true", help="recreate the FinRL venv")
    args = parser.parse_args()
    if not args.path.is_file():
        raise SystemExit(
            f"data file not found: {args.path}\n(the data folder is not part of the repository: pass --path, "
            "see 'Real market data' in README.md)"
        )

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}; "
        f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    bars, symbols, info = load_universe(args.path, N_ASSETS)
    print(
        f"universe   : {info['rows_read']:,} rows read and validated in {info['load_s']:.1f} s; "
        f"{info['symbols_full']} of {info['symbols_total']} symbols clean on all {info['days']} days; "
        f"top {N_ASSETS} by median dollar volume: {','.join(symbols)}"
    )
    data, built = build_market(bars, symbols)
    print(
        f"ours       : {built['n_features']} features {built['groups']} built in {built['build_s']:.1f} s; "
        f"panel {data.n_steps} bars x {data.n_assets} assets, first valid bar {data.first_valid}"
    )

    finrl: dict[str, Any] | None = None
    if not args.skip_finrl:
        python = finrl_venv(args.rebuild_finrl)
        print(f"FinRL      : {args.steps:,} steps ...", flush=True)
        finrl = run_finrl(python, args.path, symbols, args.steps, args.seed)
    single, single_rates = repeat(time_single, args.repeats, data, args.steps, args.seed)
    vec, vec_rates = repeat(time_vec, args.repeats, data, args.steps, args.n_envs, args.seed)

    print(f"\nsame {args.steps:,} env-steps of seeded random actions each, {N_ASSETS} assets:")
    finrl_rate = finrl["steps_per_s"] if finrl else None
    if finrl:
        print(
            line(
                "FinRL",
                finrl["steps_per_s"],
                f"({finrl['seconds']:.1f} s; state {finrl['state_space']}, {finrl['episodes']} episodes of "
                f"{finrl['episode_len']})",
            )
        )
    print(
        line(
            "single",
            single["steps_per_s"],
            f"(median of {', '.join(f'{r:,.0f}' for r in single_rates)}; obs {single['obs_dim']}, "
            f"{single['episodes']} episodes of {env_config().episode_length})",
            finrl_rate,
        )
    )
    print(
        line(
            f"vec x{args.n_envs}",
            vec["steps_per_s"],
            f"(median of {', '.join(f'{r:,.0f}' for r in vec_rates)}; {vec['calls']} calls, "
            f"{vec['steps_per_s'] / args.n_envs:,.0f} calls/s)",
            finrl_rate,
        )
    )

    ppo: dict[str, Any] | None = None
    if args.ppo_steps:
        ppo = time_ppo(data, args.ppo_steps, args.n_envs, args.seed)
        ppo["steps_per_s"] = ppo["steps"] / ppo["seconds"]
        print(
            line(
                "PPO train",
                ppo["steps_per_s"],
                f"({ppo['steps']:,} timesteps in {ppo['seconds']:.1f} s: {ppo['rollouts']} rollouts of 64 x "
                f"{args.n_envs} {ppo['rollout_s']:.1f} s, updates {ppo['seconds'] - ppo['rollout_s']:.1f} s; "
                f"torch threads {ppo['torch_threads']})",
            )
        )

    result: dict[str, Any] = {
        "finrl_steps_per_s": round(finrl["steps_per_s"], 1) if finrl else None,
        "single_steps_per_s": round(single["steps_per_s"], 1),
        "vec_steps_per_s": round(vec["steps_per_s"], 1),
        "ratio_single": round(single["steps_per_s"] / finrl["steps_per_s"], 2) if finrl else None,
        "ratio_vec": round(vec["steps_per_s"] / finrl["steps_per_s"], 2) if finrl else None,
        "ppo_steps_per_s": round(ppo["steps_per_s"], 1) if ppo else None,
        "ppo_rollout_share": round(ppo["rollout_s"] / ppo["seconds"], 3) if ppo else None,
        "steps": args.steps,
        "n_envs": args.n_envs,
        "n_assets": N_ASSETS,
        "asset_steps_per_s": {
            "finrl": round(finrl["steps_per_s"] * N_ASSETS) if finrl else None,
            "single": round(single["steps_per_s"] * N_ASSETS),
            "vec": round(vec["steps_per_s"] * N_ASSETS),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
