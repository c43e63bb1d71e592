"""Training the forecaster ensemble: one member after another, each resumable epoch by epoch.

Read top to bottom: device -> data -> for each member (seeded, block-bootstrapped) -> epochs
(class-weighted CE or focal loss + auxiliary return loss, AdamW, cosine LR, gradient clipping,
early stopping on validation loss, a checkpoint after every epoch) -> temperature scaling on the
validation split -> test metrics against the baselines.

A checkpoint holds everything needed to continue (finished members, the current member's weights,
optimizer and scheduler, early-stopping state, history). Each epoch's randomness is derived from
(seed, member, epoch), and torch's intra-op CPU threads are pinned to ``cpu_threads`` for the whole
call (see :mod:`trading_core.forecast.threads`), so on CPU a run gives the same bits whatever the
machine's load or the caller's thread setting, and a run killed and resumed (possibly on another
worker) ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from trading_core.features.store import FeatureSet
from trading_core.features.windows import WindowedDataset
from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble, fit_temperature
from trading_core.forecast.threads import intra_op_threads

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, int, dict[str, float]], None]
"""(member, epoch, metrics) after every epoch: MLflow logging, Optuna pruning."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of each member. Every field is a knob the HPO may turn."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    """Max global gradient norm."""
    patience: int = 4
    """Epochs without a better validation loss before a member stops."""
    loss: Literal["weighted_ce", "focal"] = "weighted_ce"
    """Imbalance handling: inverse-frequency class weights, or focal loss (with the same weights)."""
    focal_gamma: float = 2.0
    return_loss_weight: float = 0.1
    """Weight of the auxiliary forward-return (Huber) loss; 0 disables it."""
    bootstrap_block: int = 20
    """Members train on resamples of time blocks of this many timestamps (0: all members see all data)."""
    max_train_samples: int | None = None
    """Cap on training samples per epoch (a random subset each epoch); None = all."""
    max_eval_samples: int | None = 20_000
    """Cap on validation samples used for early stopping and calibration (time-stratified)."""
    device: str = "auto"
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1', ..."""
    seed: int = 42
    cpu_threads: int = 1
    """Torch intra-op CPU threads while training, whatever the process had set: CPU results depend on
    the thread count (reductions are split per thread), so it is part of the recipe and its
    fingerprint. One is also the fastest for the CPU-sized members on a busy machine
    (benchmarks/forecaster_threads.py); a dedicated many-core machine may set more."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "cpu_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.grad_clip > 0 and self.return_loss_weight >= 0):
            raise ValueError("TrainConfig: lr and grad_clip must be > 0, weight_decay and return_loss_weight >= 0")
        if self.loss not in ("weighted_ce", "focal"):
            raise ValueError(f"TrainConfig.loss must be 'weighted_ce' or 'focal', got {self.loss!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available on this machine")
    return device


@dataclass
class TrainResult:
    model: ForecasterEnsemble
    history: list[dict[str, float]]
    temperature: float
    seconds: float
    samples_seen: int
    resumed_from: dict[str, int] | None = None
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def train_samples_per_s(self) -> float:
        return self.samples_seen / self.seconds if self.seconds else float("nan")


# ------------------------------------------------------------------------------------------ data


class Batches:
    """Turns sample indices of a split into (x, label, return) tensors on the device."""

    def __init__(self, ds: WindowedDataset, device: torch.device, return_scale: float) -> None:
        self.ds = ds
        self.device = device
        self.return_scale = return_scale
        self.pin = device.type == "cuda"

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(self.ds.batch(idx))
        y = torch.from_numpy(self.ds.labels[idx])
        r = torch.from_numpy(np.clip(self.ds.fwd_ret[idx] / self.return_scale, -5.0, 5.0))
        if self.pin:
            x, y, r = x.pin_memory(), y.pin_memory(), r.pin_memory()
        nb = self.device.type == "cuda"
        return (
            x.to(self.device, non_blocking=nb),
            y.to(self.device, non_blocking=nb),
            r.to(self.device, non_blocking=nb),
        )


def _time_blocks(timestamps: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap over timestamps: draw blocks of ``block`` consecutive timestamps with
    replacement until the sample is as large as the original; all symbols of a timestamp go together."""
    times, inverse = np.unique(timestamps, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(times)))
    ends = np.r_[starts[1:], len(order)]
    n_blocks = max(1, math.ceil(len(times) / block))
    picked = rng.integers(0, max(1, len(times) - block + 1), n_blocks)
    chunks = [order[starts[b] : ends[min(b + block, len(times)) - 1]] for b in picked]
    return np.concatenate(chunks)


def _eval_subset(n: int, cap: int | None) -> np.ndarray:
    """Evenly spaced samples (time-stratified, deterministic)."""
    if cap is None or n <= cap:
        return np.arange(n)
    return np.linspace(0, n - 1, cap).round().astype(np.int64)


def class_weights(labels: np.ndarray, n_classes: int = 3) -> torch.Tensor:
    """Inverse class frequency, normalised so the weighted mean over the data is 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def classification_loss(
    logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, kind: str, gamma: float
) -> torch.Tensor:
    if kind == "focal":
        log_p = F.log_softmax(logits.float(), dim=-1)
        log_pt = log_p.gather(1, y[:, None])[:, 0]
        loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt * weights[y]
        return loss.sum() / weights[y].sum()
    return F.cross_entropy(logits.float(), y, weight=weights)


# ------------------------------------------------------------------------------------ checkpoints


class Checkpoint:
    """One file, replaced atomically after every epoch; loaded with ``weights_only=True``."""

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.path = directory / "checkpoint.pt"
        self.fingerprint = fingerprint
        directory.mkdir(parents=True, exist_ok=True)

    def save(self, state: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({**state, "fingerprint": self.fingerprint}, tmp)
        os.replace(tmp, self.path)

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s belongs to another configuration: starting afresh", self.path)
            return None
        return dict(state)


def fingerprint(feature_set_version: str, model_cfg: ForecasterConfig, train_cfg: TrainConfig) -> str:
    payload = json.dumps([feature_set_version, model_cfg.as_dict(), train_cfg.as_dict()], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- training


def _val_loss(model: torch.nn.Module, batches: Batches, idx: np.ndarray, batch_size: int, amp: bool) -> float:
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad(), torch.autocast(batches.device.type, dtype=torch.bfloat16, enabled=amp):
        for start in range(0, len(idx), batch_size * 4):
            x, y, _ = batches(idx[start : start + batch_size * 4])
            logits, _ = model(x)
            total += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            n += len(y)
    return total / max(n, 1)


def train_ensemble(
    fs: FeatureSet,
    model_cfg: ForecasterConfig,
    train_cfg: TrainConfig,
    checkpoint_dir: Path,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train every member of the ensemble on ``fs`` (resuming from ``checkpoint_dir`` if a run of
    the same configuration stopped), then fit the temperature on the validation split; with torch's
    intra-op threads pinned to ``train_cfg.cpu_threads`` throughout (restored after)."""
    with intra_op_threads(train_cfg.cpu_threads):
        return _train_ensemble(fs, model_cfg, train_cfg, checkpoint_dir, on_epoch)


def _train_ensemble(
    fs: FeatureSet,
    model_cfg: ForecasterConfig,
    train_cfg: TrainConfig,
    checkpoint_dir: Path,
    on_epoch: EpochCallback | None,
) -> TrainResult:
    t0 = time.perf_counter()
    device = resolve_device(train_cfg.device)
    amp = device.type == "cuda"  # bf16 autocast on GPU; full precision on CPU, where every kernel is deterministic
    train, val = fs.split("train"), fs.split("val")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"feature set {fs.version} has an empty train or validation split")
    return_scale = float(np.std(train.fwd_ret)) or 1.0
    tb, vb = Batches(train, device, return_scale), Batches(val, device, return_scale)
    weights = class_weights(train.labels).to(device)
    val_idx = _eval_subset(len(val), train_cfg.max_eval_samples)
    train_ts = fs.samples.loc[fs.samples["split"] == 0, "timestamp"].to_numpy()

    torch.manual_seed(train_cfg.seed)  # members draw different initial weights from one seeded stream
    model = ForecasterEnsemble(model_cfg)
    ckpt = Checkpoint(checkpoint_dir, fingerprint(fs.version, model_cfg, train_cfg))
    state = ckpt.load()
    resumed_from = None
    history: list[dict[str, float]] = []
    finished: list[dict[str, torch.Tensor]] = []
    start_member, samples_seen = 0, 0
    if state is not None:
        finished = list(state["finished"])
        history = list(state["history"])
        start_member = int(state["member"])
        samples_seen = int(state["samples_seen"])
        resumed_from = {"member": start_member, "epoch": int(state["epoch"])}
        log.info("resuming from member %d, epoch %d", start_member, int(state["epoch"]))

    for k in range(start_member, model_cfg.ensemble_size):
        member = model.members[k].to(device)
        member_rng = np.random.default_rng([train_cfg.seed, k])
        pool = (
            _time_blocks(train_ts, train_cfg.bootstrap_block, member_rng)
            if train_cfg.bootstrap_block
            else np.arange(len(train))
        )
        opt = torch.optim.AdamW(member.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, train_cfg.epochs))
        best_val, best_state, bad, first_epoch = math.inf, None, 0, 0
        if state is not None and int(state["member"]) == k:
            member.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            best_val, bad, first_epoch = float(state["best_val"]), int(state["bad_epochs"]), int(state["epoch"]) + 1
            best_state = state["best_state"]
        state = None

        for epoch in range(first_epoch, train_cfg.epochs):
            if bad >= train_cfg.patience:
                break
            te = time.perf_counter()
            rng = np.random.default_rng([train_cfg.seed, k, epoch])
            torch.manual_seed(train_cfg.seed * 7919 + k * 131 + epoch)  # dropout masks
            order = rng.permutation(pool)
            if train_cfg.max_train_samples:
                order = order[: train_cfg.max_train_samples]
            member.train()
            running, n = 0.0, 0
            for s in range(0, len(order), train_cfg.batch_size):
                x, y, r = tb(order[s : s + train_cfg.batch_size])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    logits, ret = member(x)
                loss = classification_loss(logits, y, weights, train_cfg.loss, train_cfg.focal_gamma)
                if ret is not None and train_cfg.return_loss_weight > 0:
                    loss = loss + train_cfg.return_loss_weight * F.huber_loss(ret.float(), r)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(member.parameters(), train_cfg.grad_clip)
                opt.step()
                running += float(loss.detach()) * len(y)
                n += len(y)
            sched.step()
            samples_seen += n
            val_loss = _val_loss(member, vb, val_idx, train_cfg.batch_size, amp)
            if val_loss < best_val - 1e-6:
                best_val, bad = val_loss, 0
                best_state = {name: t.detach().cpu().clone() for name, t in member.state_dict().items()}
            else:
                bad += 1
            metrics = {
                "member": float(k),
                "epoch": float(epoch),
                "train_loss": running / max(n, 1),
                "val_loss": val_loss,
                "lr": float(sched.get_last_lr()[0]),
                "epoch_seconds": time.perf_counter() - te,
                "samples_per_s": n / (time.perf_counter() - te),
            }
            history.append(metrics)
            log.info(
                "member %d epoch %d: train %.4f val %.4f (%.0f samples/s)",
                k,
                epoch,
                metrics["train_loss"],
                val_loss,
                metrics["samples_per_s"],
            )
            ckpt.save(
                {
                    "member": k,
                    "epoch": epoch,
                    "model": member.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "best_val": best_val,
                    "best_state": best_state or {},
                    "bad_epochs": bad,
                    "finished": finished,
                    "history": history,
                    "samples_seen": samples_seen,
                }
            )
            if on_epoch is not None:
                on_epoch(k, epoch, metrics)
        if best_state:
            member.load_state_dict(best_state)
        finished.append({name: t.detach().cpu().clone() for name, t in member.state_dict().items()})

    for k, weights_k in enumerate(finished):
        model.members[k].load_state_dict(weights_k)
    model.to(device).eval()
    temperature = fit_temperature(
        ensemble_logits(model, val, val_idx, device, amp), torch.from_numpy(val.labels[val_idx])
    )
    model.set_temperature(temperature)
    model.cpu()
    return TrainResult(model, history, temperature, time.perf_counter() - t0, samples_seen, resumed_from, str(device))


@torch.no_grad()
def ensemble_logits(
    model: ForecasterEnsemble,
    ds: WindowedDataset,
    idx: np.ndarray,
    device: torch.device,
    amp: bool = False,
    batch_size: int = 2048,
) -> torch.Tensor:
    """(K, len(idx), classes) member logits, on CPU."""
    model.eval()
    out = []
    batches = Batches(ds, device, 1.0)
    for s in range(0, len(idx), batch_size):
        x, _, _ = batches(idx[s : s + batch_size])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = model(x)
        out.append(logits.float().cpu())
    return torch.cat(out, dim=1)


@torch.no_grad()
def predict_split(model: ForecasterEnsemble, ds: WindowedDataset, batch_size: int = 2048) -> dict[str, np.ndarray]:
    """Calibrated probabilities, confidence and uncertainty for every sample of a split (CPU)."""
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("probs", "confidence", "entropy", "mutual_info", "disagreement")
    }
    for s in range(0, len(ds), batch_size):
        pred = model.predict(torch.from_numpy(ds.batch(np.arange(s, min(s + batch_size, len(ds))))))
        for key in parts:
            parts[key].append(getattr(pred, key).numpy())
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in parts.items()}
