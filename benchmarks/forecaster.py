"""Forecaster throughput and latency: training samples/s and ensemble inference latency.

    python benchmarks/forecaster.py                 # CPU (and CUDA too when a GPU is present)
    python benchmarks/forecaster.py --device cuda   # one device only

Training throughput is measured with the real training loop (``train_ensemble``: window
gathering from the memory-mapped matrix, loss, backward, optimizer, validation) on a synthetic
feature set built in a temporary home. Inference is ``ForecasterEnsemble.predict`` (all members,
temperature, uncertainty) under ``torch.inference_mode``: one window (p50/p99 over 1,000 calls)
and a batch of 500 windows (one per S&P 500 symbol; median of 30). The seed's configuration
(filters 32/64, 256 LSTM units) is measured beside ours for comparison. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trading_core.config import get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.features import DatasetConfig, FeatureSetConfig, LabelConfig, build_feature_set, feature_store
from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble
from trading_core.forecast.train import TrainConfig, resolve_device, train_ensemble

N_FEATURES, SEQ_LEN = 48, 30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _single(model: ForecasterEnsemble, one: torch.Tensor, device: torch.device, calls: int) -> list[float]:
    times = []
    for _ in range(50):
        model.predict(one)
    for _ in range(calls):
        t = time.perf_counter()
        model.predict(one)
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def latency(cfg: ForecasterConfig, device: torch.device, single_calls: int = 1000) -> dict[str, float]:
    """One window with one intra-op thread (the serving setting: a batch of one cannot use more, and
    waking idle threads only adds jitter) and with all threads; a batch of 500 with all threads."""
    torch.manual_seed(0)
    model = ForecasterEnsemble(cfg).to(device).eval()
    one = torch.randn(1, cfg.seq_len, cfg.input_dim, device=device)
    batch = torch.randn(500, cfg.seq_len, cfg.input_dim, device=device)
    threads = torch.get_num_threads()
    with torch.inference_mode():
        torch.set_num_threads(1)
        single = _single(model, one, device, single_calls)
        torch.set_num_threads(threads)
        single_all = _single(model, one, device, single_calls)
        for _ in range(3):
            model.predict(batch)
        batch_times = []
        for _ in range(30):
            t = time.perf_counter()
            model.predict(batch)
            _sync(device)
            batch_times.append(time.perf_counter() - t)
    return {
        "params": model.num_params(),
        "mflops_per_window": model.flops_per_window() / 1e6,
        "p50_single_ms": float(np.percentile(single, 50) * 1e3),
        "p99_single_ms": float(np.percentile(single, 99) * 1e3),
        "p99_single_all_threads_ms": float(np.percentile(single_all, 99) * 1e3),
        "batch500_ms": float(np.median(batch_times) * 1e3),
        "threads": threads,
    }


def training_throughput(device: torch.device, epochs: int, samples: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-forecaster-"))
    settings = get_settings(home=home)
    request = IngestRequest(source="synthetic", n_assets=30, start=date(2018, 1, 1), end=date(2023, 12, 31))
    dataset = ingest(request, settings).dataset_version
    recipe = FeatureSetConfig(labels=LabelConfig(horizon=5), dataset=DatasetConfig(seq_len=SEQ_LEN))
    fs = feature_store(settings).open(build_feature_set(dataset, recipe, settings).feature_set_version)
    cfg = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len)
    train_cfg = TrainConfig(epochs=epochs, patience=epochs, device=str(device), max_train_samples=samples)
    result = train_ensemble(fs, cfg, train_cfg, home / "ckpt")
    epoch_rates = [h["samples_per_s"] for h in result.history]
    return {
        "train_samples": len(fs.split("train")),
        "train_samples_per_s": float(np.median(epoch_rates)),
        "train_total_s": result.seconds,
        "members_x_epochs": len(result.history),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="all", help="cpu, cuda or all (default: cpu, plus cuda when present)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=20_000, help="training samples per epoch")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) if args.device == "all" else [args.device]
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"cuda {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}"
    )
    ours = ForecasterConfig(input_dim=N_FEATURES, seq_len=SEQ_LEN)
    seed = ForecasterConfig(input_dim=N_FEATURES, seq_len=SEQ_LEN, cnn_filters=(32, 64), lstm_units=256)
    results: dict[str, dict[str, Any]] = {}
    for name in devices:
        device = resolve_device(name)
        lat = latency(ours, device)
        seed_lat = latency(seed, device, single_calls=200)
        train = training_throughput(device, args.epochs, args.samples)
        results[name] = {**lat, **train, "seed_config": seed_lat}
        print(
            f"[{name}] ours: {lat['params']:,} params ({ours.ensemble_size} members, filters {ours.cnn_filters}, "
            f"{ours.lstm_units} LSTM units), {lat['mflops_per_window']:.1f} MFLOP/window"
        )
        print(
            f"[{name}]   inference one window (1 thread) p50 {lat['p50_single_ms']:.2f} ms, p99 "
            f"{lat['p99_single_ms']:.2f} ms (target < 5; with {lat['threads']} threads p99 "
            f"{lat['p99_single_all_threads_ms']:.2f} ms); batch of 500 ({lat['threads']} threads) "
            f"{lat['batch500_ms']:.1f} ms (target < 50)"
        )
        print(
            f"[{name}]   training {train['train_samples_per_s']:,.0f} samples/s (median over "
            f"{train['members_x_epochs']} member-epochs of {args.samples:,} samples; bf16 autocast on CUDA)"
        )
        print(
            f"[{name}] seed config: {seed_lat['params']:,} params, {seed_lat['mflops_per_window']:.1f} MFLOP/window, "
            f"one window p99 {seed_lat['p99_single_ms']:.2f} ms, batch of 500 {seed_lat['batch500_ms']:.1f} ms"
        )
    main_device = devices[-1]
    r = results[main_device]
    summary = {
        "params": r["params"],
        "train_samples_per_s": round(r["train_samples_per_s"], 1),
        "p99_single_ms": round(r["p99_single_ms"], 3),
        "batch500_ms": round(r["batch500_ms"], 2),
        "device": main_device,
        **(
            {
                "cpu": {
                    k: round(v, 3) if isinstance(v, float) else v
                    for k, v in results["cpu"].items()
                    if k != "seed_config"
                }
            }
            if "cpu" in results and main_device != "cpu"
            else {}
        ),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
