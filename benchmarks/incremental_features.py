"""The online FeatureState on the real files: parity with the batch, update latency, warm-start cost.

    .venv/bin/python benchmarks/incremental_features.py [--data ../shared/data] [--skip-etf] [--bars 250]

1. **Parity, whole files.** The ETF file (80 ETFs, 1993-2025) and the S&P 500 file (505 stocks,
   2013-2018), each read through ``FileProvider`` + ``validate_bars`` as the lake would hold it, go
   through ``compute_features`` (batch) and through ``FeatureState.replay`` bar time by bar time
   (the warm start from the whole history). Per feature group: features bit-identical, NaN
   mismatches, max |abs| and relative error. Default ``IndicatorConfig``.
2. **Update latency.** S&P universes of 30 (the first 30 symbols alphabetically) and all 505
   symbols: warm on all but the last ``--bars`` bar times, then ``update(BarSlice)`` timed for each
   of those (slices built before the clock; turbulence and every window active). p50 / p99 / mean.
   Peer, measured in the same run: what a decision costs without state today
   (``TradingPolicy.features``): ``compute_features`` over the trailing ``max_warmup`` bars per
   symbol, on ``--peer-samples`` of the same bar times; the JSON ratio is peer p50 / online p50.
3. **Warm-up length trade-off** (ETF): warm on only the last N bar times (``warmup_bars=N``), then
   the last 20 bar times compared with the batch on the whole history: the largest relative error
   of the recursive features (EMA, MACD, RSI, ATR, ADX/DX restart at the tail) and of the others.

The last line is one JSON object. The machine is shared (2 cores, other jobs): the load average is
printed with the figures. Latencies are wall-clock (``*_ms``) and this thread's CPU time
(``cpu_*_ms``, less sensitive to other jobs: what an idle core would take, roughly); the peer
ratio uses wall-clock on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trading_core.features import FeatureSetConfig, IndicatorConfig, compute_features
from trading_core.features.online import BarSlice, FeatureState
from trading_core.features.online.parity import feature_gaps, group_summary, read_file_bars
from trading_core.features.pipeline import max_warmup

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ETF = "etfs_daily_1993-01-29_2025-12-26.csv.gz"
SP500 = "sp500_daily_2013-02-08_2018-02-07.csv.gz"
TAILS = (250, 500, 1000, 2000, 4000)


def _fmt_groups(groups: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"    {g:<15}{s['exact']:>3}/{s['features']:<3} exact  nan mismatches {s['nan_mismatches']:<4} "
        f"max abs {s['max_abs']:.3g}  max rel {s['max_rel']:.3g}"
        for g, s in groups.items()
    )


def parity(bars: pd.DataFrame, label: str) -> tuple[dict[str, Any], pd.DataFrame]:
    config = IndicatorConfig()
    t0 = time.perf_counter()
    batch = compute_features(bars, config)
    batch_s = time.perf_counter() - t0
    state = FeatureState(config, bars["symbol"].unique())
    t0 = time.perf_counter()
    n_times, online = state.replay(bars)
    warm_s = time.perf_counter() - t0
    assert online is not None
    gaps = feature_gaps(batch, online, config)
    groups = group_summary(gaps)
    inexact = [f"{g.name} (rel {g.max_rel:.2g})" for g in gaps if not g.exact]
    print(
        f"{label}: {len(bars):,} rows, {bars['symbol'].nunique()} symbols, {n_times:,} bar times; batch "
        f"{batch_s:.1f} s, online replay (= warm start on the whole history) {warm_s:.1f} s "
        f"({warm_s / n_times * 1e3:.2f} ms per bar time)\n{_fmt_groups(groups)}\n"
        f"    not bit-identical: {', '.join(inexact) or 'none'}"
    )
    return {
        "rows": len(bars),
        "symbols": int(bars["symbol"].nunique()),
        "bar_times": n_times,
        "batch_s": round(batch_s, 2),
        "warm_s": round(warm_s, 2),
        "exact_features": sum(g.exact for g in gaps),
        "features": len(gaps),
        "groups": {
            g: {k: (float(f"{v:.3g}") if isinstance(v, float) else v) for k, v in s.items()} for g, s in groups.items()
        },
    }, batch


def latency(bars: pd.DataFrame, timed_bars: int, peer_samples: int, label: str) -> dict[str, Any]:
    config = IndicatorConfig()
    times = np.sort(bars["timestamp"].unique())
    cut = times[-timed_bars]
    history, live = bars[bars["timestamp"] < cut], bars[bars["timestamp"] >= cut]
    t0 = time.perf_counter()
    state = FeatureState.warm(history, config, symbols=bars["symbol"].unique())
    warm_s = time.perf_counter() - t0
    slices = [BarSlice.from_frame(g) for _, g in live.groupby("timestamp", sort=True)]
    seconds, cpu = [], []
    for s in slices:
        t0, c0 = time.perf_counter(), time.thread_time()
        state.update(s)
        cpu.append(time.thread_time() - c0)
        seconds.append(time.perf_counter() - t0)
    ms, cpu_ms = np.array(seconds) * 1e3, np.array(cpu) * 1e3
    # the peer: the whole pipeline on the trailing window a stateless decision needs
    need = max_warmup(FeatureSetConfig(indicators=config))
    peer = []
    for t in np.linspace(0, len(slices) - 1, peer_samples).astype(int):
        stamp = slices[t].timestamp
        window = bars[bars["timestamp"] <= stamp].groupby("symbol", sort=False).tail(need)
        t0 = time.perf_counter()
        compute_features(window, config)
        peer.append(time.perf_counter() - t0)
    peer_ms = np.array(peer) * 1e3
    out = {
        "symbols": int(bars["symbol"].nunique()),
        "timed_bars": len(slices),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 3),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 3),
        "warm_s": round(warm_s, 2),
        "warm_bar_times": int((times < cut).sum()),
        "peer_window_bars": need,
        "peer_p50_ms": round(float(np.percentile(peer_ms, 50)), 1),
        "ratio": round(float(np.percentile(peer_ms, 50) / np.percentile(ms, 50)), 1),
    }
    print(
        f"{label}: update p50 {out['p50_ms']} ms, p99 {out['p99_ms']} ms, mean {out['mean_ms']} ms "
        f"(thread CPU p50 {out['cpu_p50_ms']} ms, p99 {out['cpu_p99_ms']} ms) over "
        f"{out['timed_bars']} bar times (warm start on {out['warm_bar_times']} bar times: {warm_s:.1f} s); "
        f"peer compute_features on the last {need} bars: p50 {out['peer_p50_ms']} ms -> {out['ratio']}x"
    )
    return out


def tail_tradeoff(bars: pd.DataFrame, batch: pd.DataFrame) -> dict[str, Any]:
    config = IndicatorConfig()
    times = np.sort(bars["timestamp"].unique())
    cut = times[-20]
    history, last = bars[bars["timestamp"] < cut], bars[bars["timestamp"] >= cut]
    expected = batch[batch["timestamp"] >= cut].reset_index(drop=True)
    out: dict[str, Any] = {}
    print("warm-up length (ETF, last 20 bar times vs the batch on the whole history):")
    for n in TAILS:
        t0 = time.perf_counter()
        state = FeatureState.warm(history, config, warmup_bars=n)
        warm_s = time.perf_counter() - t0
        _, got = state.replay(last)
        assert got is not None
        gaps = feature_gaps(expected, got, config)
        rec = [g for g in gaps if g.recursive]
        other = [g for g in gaps if not g.recursive]
        worst = max(rec, key=lambda g: g.max_rel)
        worst_other = max(other, key=lambda g: g.max_rel)
        out[str(n)] = {
            "warm_s": round(warm_s, 2),
            "recursive_max_rel": float(f"{worst.max_rel:.3g}"),
            "worst_recursive": worst.name,
            "other_max_rel": float(f"{worst_other.max_rel:.3g}"),
            "worst_other": worst_other.name,
            "nan_mismatches": sum(g.nan_mismatches for g in gaps),
        }
        print(
            f"    warmup_bars={n:<5} warm {warm_s:5.1f} s; recursive max rel {worst.max_rel:.2e} ({worst.name}), "
            f"others {worst_other.max_rel:.2e} ({worst_other.name}), NaN mismatches {out[str(n)]['nan_mismatches']}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="folder with the ETF and S&P 500 files")
    parser.add_argument("--bars", type=int, default=250, help="bar times timed per latency run")
    parser.add_argument("--peer-samples", type=int, default=5, help="bar times the peer recomputes")
    parser.add_argument("--skip-etf", action="store_true", help="S&P only (skips the ETF parity and tail study)")
    args = parser.parse_args()
    if not (args.data / SP500).is_file():
        raise SystemExit(f"{args.data / SP500} not found (the data folder is not in the repository; pass --data)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    result: dict[str, Any] = {}
    if not args.skip_etf:
        etf = read_file_bars(args.data / ETF)
        result["etf"], etf_batch = parity(etf, "ETF file")
        result["warmup_tradeoff"] = tail_tradeoff(etf, etf_batch)
        del etf, etf_batch
    sp = read_file_bars(args.data / SP500)
    result["sp500"], _ = parity(sp, "S&P 500 file")
    first30 = sorted(sp["symbol"].unique())[:30]
    result["latency_30"] = latency(sp[sp["symbol"].isin(first30)], args.bars, args.peer_samples, "30 symbols")
    result["latency_500"] = latency(sp, args.bars, args.peer_samples, f"{sp['symbol'].nunique()} symbols")
    result["load_average"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
