"""Real-data check of the drift monitor: ETFs, reference before 2020-02, monthly checks through 2020-21.

    .venv/bin/python benchmarks/drift_etf.py [--path ../shared/data/etfs_daily_1993-01-29_2025-12-26.csv.gz]

Ingests 10 liquid ETFs (2012-2021) into a temporary home, builds a feature set on the bars up to
2020-01-31 (training period = its first 90 %, so the reference ends in 2019), registers a
buy-and-hold policy on it as the champion, then runs the monitoring check (Evidently's normed
Wasserstein test with per-column thresholds calibrated on the training period,
``trading_core.monitoring.check.run_check``) as of each month end below on a 63-bar window. Prints one
line per check and a JSON summary: when it fires.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SYMBOLS = ["SPY", "QQQ", "IWM", "EFA", "EEM", "TLT", "GLD", "XLE", "XLF", "XLK"]
DATES = ["2019-09-30", "2019-10-31", "2019-11-29", "2019-12-31", "2020-01-31", "2020-02-14", "2020-02-28",
         "2020-03-13", "2020-03-31", "2020-04-30", "2020-05-29", "2020-06-30", "2020-07-31", "2020-08-31",
         "2020-09-30", "2020-12-31", "2021-03-31", "2021-06-30", "2021-09-30", "2021-12-31"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", default="../shared/data/etfs_daily_1993-01-29_2025-12-26.csv.gz")
    parser.add_argument("--window", type=int, default=63)
    args = parser.parse_args()
    path = Path(args.path).resolve()
    home = Path(tempfile.mkdtemp(prefix="drift-etf-"))
    policy_file = Path(__file__).resolve().parents[1] / "config" / "governance.yaml"
    os.environ["TRADING_HOME"] = str(home)
    os.environ["TRADING_GOVERNANCE_POLICY"] = str(policy_file)
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from builders import GOOD_METRICS, register_baseline

    from trading_core.config import get_settings
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest
    from trading_core.features import DatasetConfig, FeatureSetConfig, build_feature_set
    from trading_core.monitoring.check import run_check
    from trading_core.registry import aliases

    settings = get_settings()
    t0 = time.perf_counter()
    before = ingest(IngestRequest(source="csv", path=str(path), symbols=tuple(SYMBOLS), start="2012-01-03",
                                  end="2020-01-31"), settings).dataset_version  # fmt: skip
    recipe = FeatureSetConfig(dataset=DatasetConfig(val_fraction=0.05, test_fraction=0.05))
    fsv = build_feature_set(before, recipe, settings).feature_set_version
    ingest(IngestRequest(source="csv", path=str(path), symbols=tuple(SYMBOLS), start="2012-01-03", end="2021-12-31"),
           settings)  # fmt: skip
    version = register_baseline(settings, fsv, home, None, GOOD_METRICS, "etf-buy-and-hold")
    aliases.crown(settings, "trading-policy", version, reason="drift benchmark")
    print(f"setup {time.perf_counter() - t0:.0f} s (feature set {fsv})", file=sys.stderr)
    rows = []
    for date in DATES:
        start = time.perf_counter()
        outcome = run_check(settings, "trading-policy", as_of=date, window=args.window, cooldown_days=0)
        rows.append({"as_of": date, "window": f"{outcome.window_start}..{outcome.window_end}",
                     "decision": outcome.decision, "drift_share": round(outcome.drift_share or 0.0, 3),
                     "seconds": round(time.perf_counter() - start, 1)})  # fmt: skip
        drifted = ", ".join(outcome.drifted_columns[:8])
        print(f"{date}  {rows[-1]['window']}  {outcome.decision:<6} share {rows[-1]['drift_share']:.3f}  {drifted}")
    print(json.dumps({"symbols": SYMBOLS, "checks": rows}))


if __name__ == "__main__":
    main()
