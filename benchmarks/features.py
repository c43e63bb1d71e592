"""Our feature engine vs FinRL's (stockstats) on the S&P 500 daily file: speed, peak memory, agreement.

    .venv/bin/python benchmarks/features.py [--path ../shared/data/sp500_daily_2013-02-08_2018-02-07.csv.gz]

Both engines get the same bars: the file read through the project's ``FileProvider`` and
``validate_bars``, exactly as the ingest would keep them. Of its 619,040 rows, 23 are quarantined
(11 with a missing open/high/low, 12 with high/low out of order), leaving 619,017 rows of 505
symbols. Reading and validating are timed apart and excluded from both engines' timings.

* **ours**: :func:`trading_core.features.compute_features`, the full catalogue (48 features, a
  superset of FinRL's 8), run ``--runs`` times in one fresh process. The JSON uses the median;
  the best and every run are printed (the first run of a process pays first-touch costs).
* **stockstats**: FinRL's ``FeatureEngineer.add_technical_indicator`` reproduced below (one
  StockDataFrame, then per indicator a loop over tickers, concat, merge) with FinRL's
  ``INDICATORS`` and stockstats 0.6.5, run once: it takes minutes. Its input is our frame renamed
  to FinRL's columns (date as ``YYYY-MM-DD`` strings, tic), prepared before its clock starts.
  FinRL's ``clean_data`` (which keeps only tickers present on every date) is not applied: both
  engines see all 505 symbols.

Each engine runs in its own freshly spawned process, so the peaks are separable: the process's
peak RSS (``VmHWM``) and its increase over the RSS once the input frame is loaded.

Then the indicators both engines define are compared, bar by bar, after a warm-up of the first
``--warmup`` bars of every symbol (conventions and measured differences: docs/features.md).
The last line is one JSON object: rows, ours_s (median), stockstats_s, ratio (stockstats_s / ours_s).
Thread counts matter on a small machine: the BLAS thread pool is printed in the header.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_daily_2013-02-08_2018-02-07.csv.gz"

FINRL_INDICATORS = ["macd", "boll_ub", "boll_lb", "rsi_30", "cci_30", "dx_30", "close_30_sma", "close_60_sma"]
"""finrl/config.py INDICATORS (the default tech_indicator_list of FeatureEngineer)."""

OURS_COMPARED = ["rsi_30", "cci_30", "dx_30", "macd", "bb_upper", "bb_lower", "sma_ratio_30", "sma_ratio_60"]
BB_PERIOD = 20  # both engines' Bollinger window (ours: IndicatorConfig.bbands_period; stockstats: 'boll')


# ------------------------------------------------------------------------------------- input


def load_bars(path: Path, limit_symbols: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The file through the project's provider and validation: the clean bars the lake would hold."""
    from trading_core.data.providers.files import FileProvider
    from trading_core.data.request import ValidationPolicy
    from trading_core.data.validation import validate_bars

    t0 = time.perf_counter()
    provider = FileProvider(path, layout="sp500_all_stocks")
    raw = provider.fetch([], None, None)
    t1 = time.perf_counter()
    result = validate_bars(raw, provider.calendar, "1d", ValidationPolicy())
    t2 = time.perf_counter()
    bars = result.clean
    if limit_symbols:
        bars = bars[bars["symbol"].isin(sorted(bars["symbol"].unique())[:limit_symbols])].reset_index(drop=True)
    info = {
        "rows_read": len(raw),
        "quarantined": result.quarantine["rule"].value_counts().to_dict(),
        "read_s": t1 - t0,
        "validate_s": t2 - t1,
    }
    return bars, info


# ------------------------------------------------------------------------------------- engines


def finrl_add_technical_indicator(data: pd.DataFrame, indicators: list[str]) -> pd.DataFrame:
    """FinRL's ``FeatureEngineer.add_technical_indicator`` (finrl/meta/preprocessor/preprocessors.py).

    Same steps as FinRL: sort by (tic, date), wrap a copy in a StockDataFrame (date becomes the
    index), then for each indicator and each ticker select the ticker's rows (stockstats computes
    the indicator on that slice), attach tic and date, append to the indicator's frame with
    ``pd.concat``; merge it into the data on (tic, date); finally sort by (date, tic). A ticker
    whose indicator fails is printed and skipped, as in FinRL.
    """
    from stockstats import StockDataFrame

    df = data.copy().sort_values(by=["tic", "date"])
    stock = StockDataFrame.retype(df.copy())
    tickers = stock["tic"].unique()
    for indicator in indicators:
        indicator_df = pd.DataFrame()
        for tic in tickers:
            try:
                values = pd.DataFrame(stock[stock["tic"] == tic][indicator])
                values["tic"] = tic
                values["date"] = df[df["tic"] == tic]["date"].to_list()
                indicator_df = pd.concat([indicator_df, values], axis=0, ignore_index=True)
            except Exception as exc:  # FinRL prints and goes on; we keep its behaviour
                print(f"stockstats {indicator} {tic}: {exc}")
        df = df.merge(indicator_df[["tic", "date", indicator]], on=["tic", "date"], how="left")
    return df.sort_values(by=["date", "tic"])


def _proc_status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (Linux) in MiB, or None where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mib() -> float:
    """Current resident set size."""
    return _proc_status_mib("VmRSS") or _peak_mib()


def _peak_mib() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across execve, so a
    spawned child would report its parent's peak whenever that was higher."""
    return _proc_status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_engine(engine: str, input_path: str, output_path: str, runs: int) -> dict[str, Any]:
    """Runs in a fresh process: load the input, time the engine, write the compared columns."""
    bars = pd.read_parquet(input_path)
    if engine == "ours":
        from trading_core.features import IndicatorConfig, compute_features
        from trading_core.features.specs import feature_specs

        rss_in = _rss_mib()
        seconds = []
        for _ in range(runs):
            t0 = time.perf_counter()
            out = compute_features(bars)
            seconds.append(time.perf_counter() - t0)
        n_features = len(feature_specs(IndicatorConfig(), bars["symbol"].nunique()))
        if len(out.columns) - 2 != n_features:
            raise AssertionError(f"compute_features returned {len(out.columns) - 2} features, catalogue {n_features}")
        out[["timestamp", "symbol", *OURS_COMPARED]].to_parquet(output_path, index=False)
    else:
        import stockstats  # noqa: F401  (imported before the clock starts, like FinRL's module import)

        finrl = bars.rename(columns={"timestamp": "date", "symbol": "tic"})
        finrl["date"] = finrl["date"].dt.strftime("%Y-%m-%d")  # FinRL's downloaders give string dates
        rss_in = _rss_mib()
        t0 = time.perf_counter()
        out = finrl_add_technical_indicator(finrl, FINRL_INDICATORS)
        seconds = [time.perf_counter() - t0]
        n_features = len(out.columns) - len(finrl.columns)
        out[["date", "tic", "close", *FINRL_INDICATORS]].to_parquet(output_path, index=False)
    peak = _peak_mib()
    return {"seconds": seconds, "peak_mib": peak, "peak_over_input_mib": peak - rss_in, "n_features": n_features}


def in_fresh_process(engine: str, input_path: Path, output_path: Path, runs: int) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(run_engine, engine, str(input_path), str(output_path), runs).result()


# ------------------------------------------------------------------------------------- agreement


def _bb_upper_ddof0(t: pd.DataFrame) -> pd.Series:
    """stockstats' upper band with its sample std (ddof=1) rescaled to the population std (ddof=0)."""
    mid = (t["boll_ub"] + t["boll_lb"]) / 2
    return (mid + (t["boll_ub"] - mid) * np.sqrt((BB_PERIOD - 1) / BB_PERIOD)) / t["close"] - 1


PAIRS: list[tuple[str, str, Callable[[pd.DataFrame], pd.Series]]] = [
    ("rsi_30", "rsi_30", lambda t: t["rsi_30"]),
    ("cci_30", "cci_30", lambda t: t["cci_30"]),
    ("dx_30", "dx_30", lambda t: t["dx_30"]),
    ("macd", "macd / close", lambda t: t["macd"] / t["close"]),
    ("bb_upper", "boll_ub / close - 1", lambda t: t["boll_ub"] / t["close"] - 1),
    ("bb_lower", "boll_lb / close - 1", lambda t: t["boll_lb"] / t["close"] - 1),
    ("bb_upper", "same, std rescaled to ddof=0", _bb_upper_ddof0),
    ("sma_ratio_30", "close / close_30_sma - 1", lambda t: t["close"] / t["close_30_sma"] - 1),
    ("sma_ratio_60", "close / close_60_sma - 1", lambda t: t["close"] / t["close_60_sma"] - 1),
]


def agreement(ours_path: Path, theirs_path: Path, warmups: list[int]) -> list[dict[str, Any]]:
    """Per indicator pair: rows only one engine defines, then |ours - theirs| after each warm-up."""
    ours = pd.read_parquet(ours_path)
    theirs = pd.read_parquet(theirs_path).rename(columns={"tic": "symbol", **{c: f"ss_{c}" for c in FINRL_INDICATORS}})
    theirs["timestamp"] = pd.to_datetime(theirs.pop("date"), utc=True)
    both = ours.merge(theirs, on=["symbol", "timestamp"], how="inner", validate="one_to_one")
    both = both.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    bar = both.groupby("symbol", sort=False).cumcount().to_numpy()
    ss = both[["close", *(f"ss_{c}" for c in FINRL_INDICATORS)]].rename(columns=lambda c: c.removeprefix("ss_"))
    rows = []
    for ours_col, label, theirs_of in PAIRS:
        mine = both[ours_col].to_numpy(dtype=np.float64)
        other = theirs_of(ss).to_numpy(dtype=np.float64)
        ok_mine, ok_other = np.isfinite(mine), np.isfinite(other)
        row: dict[str, Any] = {
            "ours": ours_col,
            "stockstats": label,
            "only_stockstats": int((ok_other & ~ok_mine).sum()),
            "only_ours": int((ok_mine & ~ok_other).sum()),
            "after": {},
        }
        for w in warmups:
            keep = ok_mine & ok_other & (bar >= w)
            diff = np.abs(mine[keep] - other[keep])
            row["after"][w] = {
                "n": int(keep.sum()),
                "median": float(np.median(diff)) if len(diff) else float("nan"),
                "p99": float(np.quantile(diff, 0.99)) if len(diff) else float("nan"),
                "max": float(diff.max()) if len(diff) else float("nan"),
                "corr": float(np.corrcoef(mine[keep], other[keep])[0, 1]) if len(diff) > 1 else float("nan"),
            }
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------- report


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl missing)"
    pools = [f"{p.get('internal_api')}={p.get('num_threads')}" for p in threadpool_info()]
    return ", ".join(pools) or "none loaded"


def print_agreement(rows: list[dict[str, Any]], warmups: list[int]) -> None:
    print("\nAgreement where both engines define the indicator (|ours - stockstats|; RSI/CCI/DX in points,")
    print("the rest as fractions of the close). only_*: rows that one engine leaves NaN, all bars counted.")
    head = f"{'ours':<13}{'stockstats':<30}{'only_ss':>8}{'only_ours':>10}"
    for w in warmups:
        head += f" | {f'bars>={w}: median':>17}{'p99':>10}{'max':>10}{'corr':>9}"
    print(head)
    for r in rows:
        line = f"{r['ours']:<13}{r['stockstats']:<30}{r['only_stockstats']:>8}{r['only_ours']:>10}"
        for w in warmups:
            s = r["after"][w]
            line += f" | {s['median']:>17.3g}{s['p99']:>10.3g}{s['max']:>10.3g}{s['corr']:>9.6f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, default=DEFAULT, help="the S&P 500 daily file (date..Name layout)")
    parser.add_argument("--runs", type=int, default=3, help="runs of our engine (the JSON reports the median)")
    parser.add_argument("--warmup", default="100,250", help="bars skipped per symbol before comparing, comma list")
    parser.add_argument("--limit-symbols", type=int, default=0, help="first N symbols only (0: all), for a quick try")
    args = parser.parse_args()
    if not args.path.is_file():
        raise SystemExit(
            f"data file not found: {args.path}\n(the data folder is not part of the repository: pass --path, "
            "see 'Real market data' in README.md)"
        )
    warmups = [int(w) for w in args.warmup.split(",") if w.strip()]

    import talib

    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"TA-Lib {talib.__version__}, stockstats {version('stockstats')}; "
        f"{os.cpu_count()} CPUs; BLAS threads: {blas_threads()}"
    )
    bars, info = load_bars(args.path, args.limit_symbols)
    rows, n_symbols = len(bars), bars["symbol"].nunique()
    print(
        f"input: {info['rows_read']:,} rows read in {info['read_s']:.2f} s, validated in {info['validate_s']:.2f} s, "
        f"quarantined {info['quarantined']} -> {rows:,} rows, {n_symbols} symbols "
        "(not timed below)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        work = Path(tmp)
        bars.to_parquet(work / "bars.parquet", index=False)
        del bars
        ours = in_fresh_process("ours", work / "bars.parquet", work / "ours.parquet", args.runs)
        runs = ours["seconds"]
        ours_s, best_s = statistics.median(runs), min(runs)
        print(
            f"ours       : {ours['n_features']} features, runs {', '.join(f'{s:.2f}' for s in runs)} s -> "
            f"median {ours_s:.2f} s ({rows / ours_s:,.0f} rows/s), best {best_s:.2f} s ({rows / best_s:,.0f} rows/s); "
            f"peak RSS {ours['peak_mib']:.0f} MiB (+{ours['peak_over_input_mib']:.0f} MiB over the loaded input)"
        )
        print("stockstats : FinRL's per-ticker loop, one run (minutes)...", flush=True)
        theirs = in_fresh_process("stockstats", work / "bars.parquet", work / "theirs.parquet", 1)
        ss_s = theirs["seconds"][0]
        print(
            f"stockstats : {theirs['n_features']} features, {ss_s:.2f} s ({rows / ss_s:,.0f} rows/s); "
            f"peak RSS {theirs['peak_mib']:.0f} MiB (+{theirs['peak_over_input_mib']:.0f} MiB over the loaded input)"
        )
        ratio = ss_s / ours_s
        print(
            f"ratio      : stockstats / ours (median) = {ratio:.1f}x (best: {ss_s / best_s:.1f}x); "
            f"ours per feature {ours_s / ours['n_features'] * 1e3:.0f} ms vs stockstats "
            f"{ss_s / theirs['n_features'] * 1e3:.0f} ms"
        )
        print_agreement(agreement(work / "ours.parquet", work / "theirs.parquet", warmups), warmups)

    print(
        json.dumps(
            {
                "rows": rows,
                "symbols": n_symbols,
                "ours_s": round(ours_s, 3),
                "ours_best_s": round(best_s, 3),
                "stockstats_s": round(ss_s, 3),
                "ratio": round(ratio, 2),
                "ours_rows_per_s": round(rows / ours_s),
                "stockstats_rows_per_s": round(rows / ss_s),
                "ours_peak_mib": round(ours["peak_mib"]),
                "stockstats_peak_mib": round(theirs["peak_mib"]),
                "n_features_ours": ours["n_features"],
                "n_features_stockstats": theirs["n_features"],
            }
        )
    )


if __name__ == "__main__":
    main()
