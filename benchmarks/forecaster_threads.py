"""What pinning the forecaster's training to ``TrainConfig.cpu_threads`` costs: training samples/s on
the CPU with 1 intra-op thread (the default) against all cores, measured in the same run.

    .venv/bin/python benchmarks/forecaster_threads.py [--samples 4096] [--repeats 3] [--load N]

The real loop (``train_ensemble``: window gathering, loss, backward, AdamW, validation loss, temperature)
trains one member for one epoch of ``--samples`` samples on a synthetic feature set (20 symbols,
2019-2023, windows of 30 bars), for three architectures: ours (the ``ForecasterConfig`` defaults),
the test suite's small one, and the seed's (filters 32/64, 256 LSTM units, sized for a GPU). Each
(architecture, threads) pair runs ``--repeats`` times, interleaved, and the median epoch rate is
reported. ``--load N`` adds N busy-loop processes, as on a shared CI runner. Ends with one JSON line
whose ``ratio_1_vs_all`` is samples/s with one thread divided by samples/s with all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trading_core.config import get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.features import DatasetConfig, FeatureSetConfig, LabelConfig, build_feature_set, feature_store
from trading_core.features.store import FeatureSet
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.train import TrainConfig, train_ensemble

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "ours": {},
    "tests_small": {"cnn_filters": (16,), "lstm_units": 24},
    "seed": {"cnn_filters": (32, 64), "lstm_units": 256},
}
BUSY = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6): pass"


def feature_set(home: Path) -> FeatureSet:
    settings = get_settings(home=home)
    request = IngestRequest(source="synthetic", n_assets=20, start=date(2019, 1, 1), end=date(2023, 12, 31))
    dataset = ingest(request, settings).dataset_version
    recipe = FeatureSetConfig(labels=LabelConfig(horizon=5), dataset=DatasetConfig(seq_len=30))
    return feature_store(settings).open(build_feature_set(dataset, recipe, settings).feature_set_version)


def samples_per_s(fs: FeatureSet, arch: dict[str, Any], threads: int, samples: int, work: Path) -> float:
    cfg = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len, ensemble_size=1, **arch)
    train_cfg = TrainConfig(epochs=1, max_train_samples=samples, max_eval_samples=2048, cpu_threads=threads)
    result = train_ensemble(fs, cfg, train_cfg, Path(tempfile.mkdtemp(dir=work)))
    return float(result.history[0]["samples_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4096, help="training samples in the timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes running meanwhile")
    args = parser.parse_args()
    all_cores = os.cpu_count() or 1
    print(f"torch {torch.__version__}, {all_cores} CPUs, threads 1 vs {all_cores}, load {args.load}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-forecaster-threads-"))
    fs = feature_set(work / "home")
    rates: dict[tuple[str, int], list[float]] = {}
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        for _ in range(args.repeats):
            for name, arch in ARCHITECTURES.items():
                for threads in (1, all_cores):
                    rate = samples_per_s(fs, arch, threads, args.samples, work)
                    rates.setdefault((name, threads), []).append(rate)
                    print(f"{name:12s} threads {threads}: {rate:8.0f} samples/s", flush=True)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    out: dict[str, Any] = {"benchmark": "forecaster_threads", "cpus": all_cores, "load_processes": args.load}
    for name in ARCHITECTURES:
        one, every = float(np.median(rates[name, 1])), float(np.median(rates[name, all_cores]))
        out[name] = {
            "samples_per_s_1": round(one),
            "samples_per_s_all": round(every),
            "ratio_1_vs_all": round(one / every, 2),
        }
    out |= {"samples": args.samples, "repeats": args.repeats, "torch": torch.__version__}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
