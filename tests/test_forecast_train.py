"""Training: it learns a planted signal and nothing when there is none; it is deterministic; a run
killed with SIGKILL resumes from its last checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch

from trading_core.config import Settings, get_settings
from trading_core.data.ingest import ingest
from trading_core.data.request import IngestRequest
from trading_core.features import (
    DatasetConfig,
    FeatureSetConfig,
    IndicatorConfig,
    LabelConfig,
    build_feature_set,
    feature_store,
)
from trading_core.features.store import FeatureSet
from trading_core.forecast.metrics import evaluation_report, persistence_baseline
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.threads import intra_op_threads
from trading_core.forecast.train import TrainConfig, TrainResult, predict_split, train_ensemble

RECIPE = FeatureSetConfig(
    indicators=IndicatorConfig(vol_regime_window=60, corr_window=20, turbulence_window=40),
    labels=LabelConfig(horizon=1, threshold_k=0.3),
    dataset=DatasetConfig(seq_len=10),
)
SMALL = dict(cnn_filters=(16,), lstm_units=24, ensemble_size=2)


def _feature_set(home: Path, signal_strength: float, n_assets: int = 10, years: int = 5) -> FeatureSet:
    settings: Settings = get_settings(home=home)
    request = IngestRequest(
        source="synthetic",
        n_assets=n_assets,
        start=date(2024 - years, 1, 1),
        end=date(2023, 12, 31),
        signal_strength=signal_strength,
        seed=11,
    )
    version = ingest(request, settings).dataset_version
    result = build_feature_set(version, RECIPE, settings)
    return feature_store(settings).open(result.feature_set_version)


def _test_report(fs: FeatureSet, model_cfg: ForecasterConfig, train_cfg: TrainConfig, ckpt: Path) -> dict:
    result = train_ensemble(fs, model_cfg, train_cfg, ckpt)
    test, train = fs.split("test"), fs.split("train")
    probs = predict_split(result.model, test)["probs"]
    frame = fs.features(["label"])
    majority = int(np.bincount(train.labels).argmax())
    persistence = persistence_baseline(frame.label.to_numpy(), frame.symbol.to_numpy(), test.end_rows, 1, majority)
    return evaluation_report(probs, test.labels, train.labels, persistence)


@pytest.mark.parametrize("strength", [0.5, 0.0], ids=["planted-signal", "no-signal"])
def test_it_learns_a_planted_signal_and_nothing_without_one(tmp_path: Path, strength: float) -> None:
    fs = _feature_set(tmp_path / "home", strength)
    model_cfg = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len, **SMALL)
    report = _test_report(fs, model_cfg, TrainConfig(epochs=5, patience=2), tmp_path / "ckpt")
    acc, base, n = report["model"]["accuracy"], report["majority_rate"], report["n"]
    se = math.sqrt(base * (1 - base) / n)  # binomial standard error of an accuracy at the baseline rate
    if strength > 0:
        assert acc > base + 3 * se, report
        assert report["p_value_vs_majority"] < 0.01
        assert report["model"]["log_loss"] < report["majority"]["log_loss"]
    else:
        assert abs(acc - base) < 3 * se, report
        assert report["p_value_vs_majority"] > 0.01


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> FeatureSet:
    return _feature_set(tmp_path_factory.mktemp("fs") / "home", 0.3, n_assets=4, years=3)


def _cfgs(fs: FeatureSet) -> tuple[ForecasterConfig, TrainConfig]:
    model_cfg = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len, **SMALL)
    return model_cfg, TrainConfig(epochs=4, patience=10, max_train_samples=1024, batch_size=128)


def _assert_same_model(got: TrainResult, want: TrainResult) -> None:
    """Every weight bit-identical (the first differing one named), then the temperature fitted on them.
    The weights come first: 'temperature' is the first key of the state dict, so comparing the
    state dicts in order reported any difference as a temperature difference."""
    want_state, got_state = want.model.state_dict(), got.model.state_dict()
    assert list(got_state) == list(want_state)
    for key, value in want_state.items():
        if key != "temperature":
            torch.testing.assert_close(got_state[key], value, rtol=0, atol=0, msg=lambda m, key=key: f"{key}: {m}")
    assert got.temperature == want.temperature
    torch.testing.assert_close(got_state["temperature"], want_state["temperature"], rtol=0, atol=0)


@pytest.fixture
def ambient_threads() -> Iterator[Callable[[int], None]]:
    """Sets torch's intra-op threads as a caller of the stage might have (restored after the test)."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_training_is_deterministic_on_cpu_whatever_the_thread_count(
    small_set: FeatureSet, tmp_path: Path, ambient_threads: Callable[[int], None]
) -> None:
    """Two runs, the first in a process set to 1 intra-op thread, the second to 2 (as after
    ``OMP_NUM_THREADS``, another core count or a caller's own setting): the same bits, because
    training pins its own thread count; and the caller's setting is back afterwards."""
    model_cfg, train_cfg = _cfgs(small_set)
    seen: list[int] = []

    def record_threads(member: int, epoch: int, metrics: dict[str, float]) -> None:
        seen.append(torch.get_num_threads())

    ambient_threads(1)
    a = train_ensemble(small_set, model_cfg, train_cfg, tmp_path / "a", on_epoch=record_threads)
    ambient_threads(2)
    b = train_ensemble(small_set, model_cfg, train_cfg, tmp_path / "b", on_epoch=record_threads)
    _assert_same_model(b, a)
    assert torch.get_num_threads() == 2
    assert seen == [train_cfg.cpu_threads] * len(a.history + b.history)
    timing = ("epoch_seconds", "samples_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in a.history] == [
        {k: v for k, v in h.items() if k not in timing} for h in b.history
    ]


_CHILD = """
import sys, time
from pathlib import Path
import torch
from trading_core.features.store import FeatureSet
from trading_core.forecast.model import ForecasterConfig
from trading_core.forecast.train import TrainConfig, train_ensemble
torch.set_num_threads(int(sys.argv[3]))  # this worker's own setting: training must not depend on it
fs = FeatureSet(Path(sys.argv[1]))
model_cfg = ForecasterConfig(input_dim=len(fs.feature_names), seq_len=fs.seq_len, cnn_filters=(16,), lstm_units=24,
                             ensemble_size=2)
def slow(member, epoch, metrics):  # give the parent time to kill us between epochs; never finish
    time.sleep(0.5 if (member, epoch) < (1, 1) else 3600)
train_ensemble(fs, model_cfg, TrainConfig(epochs=4, patience=10, max_train_samples=1024, batch_size=128),
               Path(sys.argv[2]), on_epoch=slow)
"""


def test_a_run_killed_with_sigkill_resumes_from_its_checkpoint(
    small_set: FeatureSet, tmp_path: Path, ambient_threads: Callable[[int], None]
) -> None:
    """The killed run had 2 intra-op threads set, the resuming process and the uninterrupted one 1
    (an Airflow retry on another worker): the resumed run still ends bit-identical. The child
    blocks after member 1's second epoch, so however slow the machine, it is killed mid-training."""
    model_cfg, train_cfg = _cfgs(small_set)
    ckpt = tmp_path / "ckpt"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(small_set.path), str(ckpt), "2"])
    deadline = time.monotonic() + 300  # a hang guard, not a speed target: the machine may be busy
    try:
        while time.monotonic() < deadline:  # wait for the second member's first checkpoint
            if (ckpt / "checkpoint.pt").exists():
                state = torch.load(ckpt / "checkpoint.pt", weights_only=True)
                if int(state["member"]) == 1:
                    break
            if child.poll() is not None:
                pytest.fail(f"the child exited with {child.returncode} before member 1")
            time.sleep(0.05)
        else:
            pytest.fail("the child never reached member 1")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    ambient_threads(1)
    resumed = train_ensemble(small_set, model_cfg, train_cfg, ckpt)
    assert resumed.resumed_from is not None and resumed.resumed_from["member"] == 1
    fresh = train_ensemble(small_set, model_cfg, train_cfg, tmp_path / "fresh")
    _assert_same_model(resumed, fresh)
    assert len(resumed.history) == len(fresh.history)
    timing = ("epoch_seconds", "samples_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in resumed.history] == [
        {k: v for k, v in h.items() if k not in timing} for h in fresh.history
    ]


def test_focal_loss_and_a_stale_checkpoint(small_set: FeatureSet, tmp_path: Path) -> None:
    model_cfg, train_cfg = _cfgs(small_set)
    first = train_ensemble(small_set, model_cfg, train_cfg, tmp_path)
    focal = TrainConfig(**{**train_cfg.as_dict(), "loss": "focal", "epochs": 2})
    other = train_ensemble(small_set, model_cfg, focal, tmp_path)  # another recipe: the old checkpoint is ignored
    assert other.resumed_from is None and len(other.history) == 2 * model_cfg.ensemble_size
    assert first.history != other.history
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        if torch.cuda.is_available():
            raise RuntimeError("CUDA is not available (skipped: this machine has CUDA)")
        train_ensemble(small_set, model_cfg, TrainConfig(device="cuda"), tmp_path / "gpu")


def test_the_thread_pin_is_undone_even_on_error() -> None:
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    with pytest.raises(RuntimeError, match="stopped"), intra_op_threads(target):
        assert torch.get_num_threads() == target
        raise RuntimeError("stopped")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="must be >= 1"):
        TrainConfig(cpu_threads=0)
