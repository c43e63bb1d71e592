"""False-alarm rate and detection delay of the drift monitor's statistic, against Evidently's defaults.

    .venv/bin/python benchmarks/drift_calibration.py [--seeds 5] [--window 63]

Three ways to call a 63-bar window of features "drifted" against the training reference, each as
the share of drifted columns >= 0.3 (governance ``max_drift_share``):

* ``calibrated``: normed Wasserstein distance per column, thresholds calibrated on the training
  period (``trading_core.monitoring.calibration.calibrate``, what ``run_check`` does);
* ``ks``: two-sample K-S, drifted at p <= 0.05 (Evidently's default up to 1,000 reference rows);
* ``wasserstein_0.1``: normed Wasserstein >= 0.1 (Evidently's default above 1,000 reference rows).

Markets (features of the TINY recipe of the tests, 46 columns):

* ``trend``: three symbols, iid returns with a planted drift (``tests/builders.trending_market``);
* ``regimes``: five symbols of the platform's synthetic market (GARCH volatility, fat tails, jumps,
  calm/trending/crisis regimes): stationary as a process, far from iid;

Training period = the first ``--train`` bars after warm-up. **False alarms**: every 5th window that
ends in the next ``--eval`` bars (same process, nothing changed). **Detection delay**: the ``trend``
market with a break planted after the training period (volatility x4, drift reversed, as in
``tests/builders.planted_break``); bars of the new regime in the window when the share first reaches
0.3, scanned bar by bar. The scores use scipy (Evidently's formulas: ``ks_2samp`` p-value,
``wasserstein_distance / max(std(ref), 0.001)``); one JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SHARE = 0.3
STEP = 5


def trend_market(days: int, seed: int, break_at: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamps = pd.bdate_range("2015-01-02", periods=days, tz="UTC")
    frames = []
    for k, symbol in enumerate(("AAA", "BBB", "CCC")):
        drift, vol = np.full(days, 0.004), np.full(days, 0.008)
        if break_at is not None:
            drift[break_at:], vol[break_at:] = -0.004, 0.032
        close = np.exp(np.log(50.0 + 10 * k) + np.cumsum(drift + vol * rng.standard_normal(days)))
        open_ = close * np.exp(0.002 * rng.standard_normal(days))
        high = np.maximum(open_, close) * (1 + 0.004 * rng.random(days))
        low = np.minimum(open_, close) * (1 - 0.004 * rng.random(days))
        volume = rng.uniform(2e7, 9e7, days) / close
        frames.append(pd.DataFrame({"timestamp": stamps, "symbol": symbol, "open": open_, "high": high, "low": low,
                                    "close": close, "volume": volume}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def regime_market(days: int, seed: int) -> pd.DataFrame:
    from trading_core.data.providers.synthetic import SyntheticMarketConfig, SyntheticProvider

    provider = SyntheticProvider(SyntheticMarketConfig(seed=seed, n_assets=5))
    bars = provider.fetch([], date(2010, 1, 4), (pd.Timestamp("2010-01-04") + pd.offsets.BDay(days)).date())
    return bars[["timestamp", "symbol", "open", "high", "low", "close", "volume"]]


def features(bars: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    from builders import TINY

    from trading_core.features.pipeline import compute_features

    frame = compute_features(bars, TINY.indicators)
    names = [c for c in frame.columns if c not in ("timestamp", "symbol")]
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna(subset=names)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame.reset_index(drop=True), names


class Judge:
    """The three rules, fitted on one training period."""

    def __init__(self, train: pd.DataFrame, names: list[str], window: int) -> None:
        from trading_core.monitoring.calibration import calibrate

        self.train, self.names = train, names
        self.calibration = calibrate(train, train, names, window)
        self.thresholds = np.array([self.calibration.thresholds[c] for c in names])

    def shares(self, current: pd.DataFrame) -> dict[str, float]:
        from trading_core.monitoring.calibration import normed_wasserstein

        ks, wd = [], []
        for column in self.names:
            a, b = self.train[column].to_numpy(np.float64), current[column].to_numpy(np.float64)
            ks.append(ks_2samp(a, b).pvalue <= 0.05)
            wd.append(normed_wasserstein(a, b))
        distances = np.asarray(wd)
        return {
            "calibrated": float((distances >= self.thresholds).mean()),
            "ks": float(np.mean(ks)),
            "wasserstein_0.1": float((distances >= 0.1).mean()),
        }


def bar_stamps(frame: pd.DataFrame) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(frame["timestamp"].unique()).sort_values()


def window_at(frame: pd.DataFrame, stamps: pd.DatetimeIndex, end: int, window: int) -> pd.DataFrame:
    return frame[frame["timestamp"].between(stamps[end - window + 1], stamps[end])]


def false_alarms(bars: pd.DataFrame, n_train: int, n_eval: int, window: int) -> dict[str, list[float]]:
    frame, names = features(bars)
    stamps = bar_stamps(frame)
    judge = Judge(frame[frame["timestamp"] <= stamps[n_train - 1]], names, window)
    out: dict[str, list[float]] = {"calibrated": [], "ks": [], "wasserstein_0.1": []}
    for end in range(n_train + window - 1, min(len(stamps), n_train + n_eval), STEP):
        for rule, share in judge.shares(window_at(frame, stamps, end, window)).items():
            out[rule].append(share)
    return out


def delay(seed: int, n_train: int, window: int) -> dict[str, int | None]:
    warmup = 60  # bars the TINY recipe needs before its first complete row
    brk = warmup + n_train + 3 * window
    frame, names = features(trend_market(brk + window + 10, seed, break_at=brk))
    stamps = bar_stamps(frame)
    judge = Judge(frame[frame["timestamp"] <= stamps[n_train - 1]], names, window)
    first = int(stamps.searchsorted(pd.bdate_range("2015-01-02", periods=brk + 1, tz="UTC")[-1]))
    found: dict[str, int | None] = {"calibrated": None, "ks": None, "wasserstein_0.1": None}
    for bars_in in range(1, window + 1):
        shares = judge.shares(window_at(frame, stamps, first + bars_in - 1, window))
        for rule, share in shares.items():
            if found[rule] is None and share >= SHARE:
                found[rule] = bars_in
        if all(v is not None for v in found.values()):
            break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--window", type=int, default=63)
    parser.add_argument("--train", type=int, default=800, help="training-period bars (after warm-up)")
    parser.add_argument("--eval", type=int, default=800, help="bars after it scanned for false alarms")
    args = parser.parse_args()
    t0 = time.perf_counter()
    summary: dict[str, object] = {"window": args.window, "share": SHARE, "train_bars": args.train}
    for market, build in (("trend", trend_market), ("regimes", regime_market)):
        shares: dict[str, list[float]] = {"calibrated": [], "ks": [], "wasserstein_0.1": []}
        for seed in range(args.seeds):
            for rule, values in false_alarms(build(args.train + args.eval + 100, seed), args.train, args.eval,
                                             args.window).items():  # fmt: skip
                shares[rule] += values
        rates = {rule: round(float(np.mean(np.asarray(v) >= SHARE)), 4) for rule, v in shares.items()}
        medians = {rule: round(float(np.median(v)), 3) for rule, v in shares.items()}
        n = len(shares["calibrated"])
        print(f"{market:8s} false-alarm rate over {n} stationary windows: {rates}; median share {medians}")
        summary[f"{market}_false_alarm_rate"] = rates
        summary[f"{market}_median_share"] = medians
        summary[f"{market}_windows"] = n
    delays = [delay(seed, args.train, args.window) for seed in range(args.seeds)]
    for seed, found in enumerate(delays):
        print(f"break seed {seed}: bars of the new regime in the window at the first alarm {found}")
    summary["detection_delay_bars"] = {rule: [d[rule] for d in delays] for rule in delays[0]}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
