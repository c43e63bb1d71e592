"""Latency of a live decision: the TradingPolicy in process vs the MLflow pyfunc loaded from the registry,
and the A/B paper broker's cost per booked bar.

    .venv/bin/python benchmarks/policy.py [--assets 30] [--timesteps 2000] [--repeats 20]

Trains a small hybrid (forecaster ensemble of 2, PPO) on a synthetic market of ``--assets`` symbols
in a temporary home, bundles it, logs and registers it, then times on the same input (the last
``min_history`` bars):

* ``decide``: ``TradingPolicy.decide`` in process (features -> forecaster -> observation -> actor ->
  risk manager), median and p95 over ``--repeats`` calls;
* ``pyfunc``: ``mlflow.pyfunc.load_model("models:/bench-policy@champion").predict`` (MLflow's schema
  enforcement included), and the load itself once;
* ``features``: the share of ``decide`` spent computing the features;
* ``book``: one A/B bar for one arm (fill + mark + decide + three DB writes) on the app DB (SQLite).

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=30)
    parser.add_argument("--timesteps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    os.environ["TRADING_HOME"] = str(home)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from trading_core.config import get_settings
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest
    from trading_core.features import FeatureSetConfig, build_feature_set
    from trading_core.forecast.pipeline import train_forecaster
    from trading_core.registry.bundle import build_policy, example_bars, log_policy_run
    from trading_core.registry.pyfunc import model_input
    from trading_core.rl.pipeline import train_agent

    settings = get_settings()
    t0 = time.perf_counter()
    request = IngestRequest(source="synthetic", n_assets=args.assets, start="2021-01-04", end="2023-12-29")
    dataset = ingest(request, settings).dataset_version
    fsv = build_feature_set(dataset, FeatureSetConfig(), settings).feature_set_version
    forecaster = train_forecaster(
        fsv, settings, model={"ensemble_size": 2}, train={"epochs": 1, "max_train_samples": 2048, "device": "cpu"}
    )
    agent = train_agent(fsv, settings, algo="ppo", timesteps=args.timesteps, forecaster_uri=forecaster.model_uri)
    policy = build_policy(settings, feature_set_version=fsv, forecaster_uri=forecaster.model_uri,
                          agent_uri=agent.model_uri, workdir=home / "build")  # fmt: skip
    _, uri = log_policy_run(settings, policy)
    version = mlflow.register_model(uri, "bench-policy").version
    MlflowClient(settings.resolved_mlflow_tracking_uri).set_registered_model_alias("bench-policy", "champion", version)
    print(f"setup (ingest, features, training, bundle, register): {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    bars = example_bars(settings, policy)
    decide = timed(lambda: policy.decide(bars), args.repeats)
    frame = policy.validate_bars(bars)
    features = timed(lambda: policy.features(frame), args.repeats)
    start = time.perf_counter()
    model = mlflow.pyfunc.load_model("models:/bench-policy@champion")
    load_s = time.perf_counter() - start
    model_bars = model_input(bars)
    pyfunc = timed(lambda: model.predict(model_bars), args.repeats)
    pd.testing.assert_frame_equal(model.predict(model_bars), policy.decide(bars), check_dtype=False)

    from trading_core.data.ingest import load_dataset

    full = load_dataset(dataset, settings)
    recent = np.sort(full["timestamp"].unique())[-(policy.min_history + args.repeats + 1) :]
    book_ms = _book_bar(settings, policy, full[full["timestamp"].isin(recent)], args.repeats)

    def ms(values: list[float], q: float) -> float:
        return round(1000 * statistics.quantiles(values, n=100)[int(q * 100) - 1] if q < 1 else 1000 * max(values), 2)

    result = {
        "assets": args.assets,
        "bars_in": int(bars["timestamp"].nunique()),
        "min_history": policy.min_history,
        "decide_ms_median": round(1000 * statistics.median(decide), 2),
        "decide_ms_p95": ms(decide, 0.95),
        "features_ms_median": round(1000 * statistics.median(features), 2),
        "pyfunc_ms_median": round(1000 * statistics.median(pyfunc), 2),
        "pyfunc_ms_p95": ms(pyfunc, 0.95),
        "pyfunc_over_decide": round(statistics.median(pyfunc) / statistics.median(decide), 3),
        "pyfunc_load_s": round(load_s, 2),
        "book_bar_ms": book_ms,
        "cpus": os.cpu_count(),
    }
    print(f"decide (in process)  median {result['decide_ms_median']} ms, p95 {result['decide_ms_p95']} ms "
          f"({result['features_ms_median']} ms of it features)")  # fmt: skip
    print(f"pyfunc (registry)    median {result['pyfunc_ms_median']} ms, p95 {result['pyfunc_ms_p95']} ms "
          f"= {result['pyfunc_over_decide']}x in process; load {result['pyfunc_load_s']} s")  # fmt: skip
    print(f"A/B book one bar     {book_ms} ms per arm (fill, mark, decide, DB)")
    print(json.dumps(result))


def _book_bar(settings, policy, bars, repeats: int) -> float:  # type: ignore[no-untyped-def]
    """Median ms of one arm's bar (:func:`trading_core.rollout.ab.book_bar`) on the app DB."""
    import numpy as np
    import pandas as pd

    from trading_core.rollout import broker
    from trading_core.rollout.ab import book_bar

    url = settings.resolved_database_url
    account = broker.open_account(url, ab_id="bench", arm="challenger", model_name="bench-policy", model_version="1",
                                  symbols=policy.symbols, initial_cash=1e6, execution=policy.spec.env)  # fmt: skip
    stamps = np.sort(bars["timestamp"].unique())
    times = []
    for i in range(repeats):
        bar = pd.Timestamp(stamps[-repeats + i])
        start = time.perf_counter()
        book_bar(url, account, bar, bars[bars["timestamp"] <= stamps[-repeats + i]], policy, policy.min_history)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


if __name__ == "__main__":
    main()
