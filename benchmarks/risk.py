"""Cost of the risk manager per env step: ``RiskManager.validate_batch`` for E portfolios of N assets.

    .venv/bin/python benchmarks/risk.py [--envs 64] [--assets 30] [--bars 2500] [--lookback 60]

Synthetic correlated returns (T bars x N assets), random target weights (about half the rows
beyond some limit) and random bars per portfolio, as in the vectorised env. Timed: parametric VaR
with the per-bar moments precomputed (the default) and computed on demand, historical VaR, the
``history.var`` call alone, and ``validate_action`` (one portfolio, inference). Each figure is the
best of 5 repeats of ``--calls`` calls, in microseconds per call; the constructor's precomputation
is timed once. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np

from trading_core.risk import PortfolioState, ReturnsHistory, RiskInputs, RiskLimits, RiskManager


def best_us(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    for _ in range(min(calls, 200)):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--assets", type=int, default=30)
    parser.add_argument("--bars", type=int, default=2500)
    parser.add_argument("--lookback", type=int, default=60)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    e, n = args.envs, args.assets
    rng = np.random.default_rng(args.seed)
    mix = rng.normal(size=(n, n)) / np.sqrt(n)
    returns = (rng.standard_t(4, size=(args.bars, n)) @ mix) * 0.015 + 0.0003
    weights = rng.normal(0, 0.15, size=(e, n))
    t = rng.integers(args.lookback, args.bars, size=e)
    equity = np.ones(e)
    print(f"E={e} portfolios, N={n} assets, T={args.bars} bars, lookback={args.lookback}, cpus={os.cpu_count()}")

    start = time.perf_counter()
    history = ReturnsHistory.from_returns(returns, args.lookback)
    precompute_s = time.perf_counter() - start
    lazy = ReturnsHistory.from_returns(returns, args.lookback, precompute=False)
    print(f"precomputation of the per-bar moments: {precompute_s * 1e3:.1f} ms")

    figures: dict[str, float] = {"precompute_ms": round(precompute_s * 1e3, 2)}
    for name, hist, method in [
        ("parametric", history, "parametric"),
        ("parametric_on_demand", lazy, "parametric"),
        ("historical", history, "historical"),
    ]:
        limits = RiskLimits(var_method=method, var_lookback=args.lookback)  # type: ignore[arg-type]
        manager = RiskManager(limits, e)
        manager.reset(1.0)
        batch = best_us(lambda m=manager, h=hist: m.validate_batch(weights, equity, t, h), args.calls)
        var = best_us(lambda h=hist, m=method: h.var(weights, t, 0.99, m), args.calls)
        print(f"{name:22s} validate_batch {batch:8.1f} us/call   of which var() {var:8.1f} us")
        figures[f"{name}_validate_batch_us"] = round(batch, 1)
        figures[f"{name}_var_us"] = round(var, 1)

    single = RiskManager(RiskLimits(var_lookback=args.lookback))
    state, portfolio = RiskInputs(returns[-args.lookback :]), PortfolioState(1.0)
    action = weights[0]
    figures["validate_action_us"] = round(best_us(lambda: single.validate_action(action, state, portfolio), 500), 1)
    print(f"validate_action (one portfolio, inference): {figures['validate_action_us']:.1f} us/call")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
