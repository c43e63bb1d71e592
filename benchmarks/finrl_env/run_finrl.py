"""FinRL's StockTradingEnv throughput: the FinRL side of benchmarks/env.py.

Runs INSIDE the FinRL virtualenv (benchmarks/finrl_env/requirements.txt); imports nothing of
trading_core. benchmarks/env.py creates that venv and calls this script; by hand:

    <home>/bench/finrl-venv/bin/python benchmarks/finrl_env/run_finrl.py \
        --csv ../shared/data/sp500_daily_2013-02-08_2018-02-07.csv.gz --tickers AAPL,MSFT,... --steps 20000

The frame is prepared the way FinRL's own tutorials do it, untimed: the file's rows of the given
tickers renamed to FinRL's columns (date, tic, open, high, low, close, volume),
``FeatureEngineer(tech_indicator_list=INDICATORS).preprocess_data`` (clean_data, stockstats
indicators, ffill/bfill; no VIX, no turbulence: those download data), then ``data_split`` over the
whole period, which sorts by (date, tic) and sets the index to the day number that the env's
``df.loc[day, :]`` looks up.

Timed: ``--steps`` calls of ``env.step`` with seeded uniform actions in [-1, 1]^n (generated before
the clock starts), ``env.reset`` at every episode end included. The env is built as FinRL's
tutorials build it, with ``make_plots=False`` (the default) and ``print_verbosity`` so large that
the end-of-episode summary is never printed; ``model_name``/``mode`` stay empty, so no CSV or PNG
is written at episode end. The per-episode statistics FinRL computes (a DataFrame of the account
value, its Sharpe ratio) stay in: they are the env's own work, not I/O.

FinRL's step costs grow with the frame: every step calls ``unique()`` on the frame's whole index and
``tic`` column (in ``step``, ``_update_state`` and ``_get_date``) and looks the day up with
``df.loc``. ``--days N`` keeps the last N days only, to measure that sensitivity.

The last line printed is one JSON object: steps, seconds, steps_per_s, episodes, and the setup.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from importlib.metadata import version

import numpy as np
import pandas as pd


def load_frame(csv: str, tickers: list[str]) -> pd.DataFrame:
    """The file's rows of ``tickers`` in FinRL's column names, with string dates as its downloaders give."""
    raw = pd.read_csv(csv)
    raw = raw[raw["Name"].isin(tickers)].rename(columns={"Name": "tic"})
    missing = sorted(set(tickers) - set(raw["tic"]))
    if missing:
        raise SystemExit(f"tickers not in {csv}: {missing}")
    return raw[["date", "tic", "open", "high", "low", "close", "volume"]].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", required=True, help="the S&P 500 daily file (date,open,high,low,close,volume,Name)")
    parser.add_argument("--tickers", required=True, help="comma-separated symbols (the same as our env's)")
    parser.add_argument("--steps", type=int, default=20_000, help="env.step calls timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=0, help="last N days only (0: all; a sensitivity check)")
    args = parser.parse_args()
    tickers = [t for t in args.tickers.split(",") if t]

    t_import = time.perf_counter()
    from finrl.config import INDICATORS
    from finrl.meta.env_stock_trading.env_stocktrading import StockTradingEnv
    from finrl.meta.preprocessor.preprocessors import FeatureEngineer, data_split

    import_s = time.perf_counter() - t_import

    t0 = time.perf_counter()
    raw = load_frame(args.csv, tickers)
    if args.days:
        raw = raw[raw["date"].isin(sorted(raw["date"].unique())[-args.days :])]
    processed = FeatureEngineer(
        use_technical_indicator=True,
        tech_indicator_list=INDICATORS,
        use_vix=False,
        use_turbulence=False,
        user_defined_feature=False,
    ).preprocess_data(raw)
    dates = sorted(processed["date"].unique())
    end = (pd.Timestamp(dates[-1]) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    df = data_split(processed, dates[0], end)
    prep_s = time.perf_counter() - t0

    stock_dim = df["tic"].nunique()
    if stock_dim != len(tickers):
        # FinRL's clean_data drops a ticker missing on any date; the env needs stock_dim rows every day.
        raise SystemExit(f"FinRL kept {stock_dim} of {len(tickers)} tickers (some lack full history)")
    n_days = len(df.index.unique())
    state_space = 1 + 2 * stock_dim + len(INDICATORS) * stock_dim
    env = StockTradingEnv(
        df=df,
        stock_dim=stock_dim,
        hmax=100,
        initial_amount=1_000_000,
        num_stock_shares=[0] * stock_dim,
        buy_cost_pct=[0.001] * stock_dim,
        sell_cost_pct=[0.001] * stock_dim,
        reward_scaling=1e-4,
        state_space=state_space,
        action_space=stock_dim,
        tech_indicator_list=INDICATORS,
        make_plots=False,
        print_verbosity=10**9,
    )
    actions = np.random.default_rng(args.seed).uniform(-1.0, 1.0, (args.steps, stock_dim)).astype(np.float32)
    state, _ = env.reset(seed=args.seed)
    if len(state) != state_space:
        raise SystemExit(f"FinRL state has {len(state)} entries, expected {state_space}")

    episodes = 0
    t0 = time.perf_counter()
    for i in range(args.steps):
        state, reward, terminated, truncated, _ = env.step(actions[i])
        if terminated or truncated:
            episodes += 1
            state, _ = env.reset()
    seconds = time.perf_counter() - t0

    print(
        f"finrl {version('finrl')}, python {platform.python_version()}, pandas {pd.__version__}, "
        f"numpy {np.__version__}, stockstats {version('stockstats')}; import {import_s:.1f} s, "
        f"frame {len(df):,} rows ({n_days} days x {stock_dim} tickers, {len(INDICATORS)} indicators) "
        f"prepared in {prep_s:.1f} s",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "steps": args.steps,
                "seconds": round(seconds, 4),
                "steps_per_s": round(args.steps / seconds, 2),
                "episodes": episodes,
                "episode_len": n_days - 1,
                "stock_dim": stock_dim,
                "state_space": state_space,
                "indicators": list(INDICATORS),
                "frame_rows": len(df),
                "prep_s": round(prep_s, 2),
                "import_s": round(import_s, 2),
                "finrl": version("finrl"),
                "pandas": pd.__version__,
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
