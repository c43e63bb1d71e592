"""The CNN+LSTM+attention forecaster and its ensemble.

One member reads a window of scaled features ``(batch, seq_len, n_features)``:

    Conv1d blocks (local patterns over time) -> LSTM (order and memory) -> multi-head attention
    pooling (the last hidden state asks which bars matter) -> heads: Hold/Buy/Sell logits and an
    auxiliary forward-return regression (a denser training signal than three classes).

The ensemble stacks K independently initialised and resampled members. Its prediction is the
mean of the members' temperature-scaled probabilities; their spread is the uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ForecasterConfig:
    """Architecture of one member and the ensemble size."""

    input_dim: int
    """Features per bar (the feature set's manifest length)."""
    seq_len: int = 30
    """Bars per window (the feature set's seq_len)."""
    output_size: int = 3
    """Classes: Hold, Buy, Sell."""
    cnn_filters: tuple[int, ...] = (32,)
    """Channels of each Conv1d block; empty = no convolution."""
    kernel_size: int = 3
    lstm_units: int = 32
    """Defaults sized for CPU inference (5 members: p99 < 5 ms per window, < 50 ms per 500 windows on
    2 cores; see benchmarks/forecaster.py). The seed's (32, 64) filters and 256 units are a valid
    configuration for a GPU, about 20x the FLOPs."""
    lstm_layers: int = 1
    attention: bool = True
    attention_heads: int = 4
    dropout: float = 0.1
    ensemble_size: int = 5
    return_head: bool = True
    """Auxiliary forward-return regression head."""

    def __post_init__(self) -> None:
        for name in (
            "input_dim",
            "seq_len",
            "output_size",
            "kernel_size",
            "lstm_units",
            "lstm_layers",
            "attention_heads",
            "ensemble_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ForecasterConfig.{name} must be >= 1, got {getattr(self, name)}")
        if any(c < 1 for c in self.cnn_filters):
            raise ValueError(f"ForecasterConfig.cnn_filters must be positive, got {self.cnn_filters}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ForecasterConfig.dropout must be in [0, 1), got {self.dropout}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ForecasterConfig:
        values = dict(values)
        values["cnn_filters"] = tuple(values.get("cnn_filters", ()))
        return cls(**values)


class ConvBlock(nn.Module):
    """Conv1d over time with 'same' padding, GELU, dropout. Every bar in a window is already in the
    past of the decision bar, so a symmetric kernel cannot look ahead."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding="same")
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        return self.drop(F.gelu(self.conv(x)))


class AttentionPool(nn.Module):
    """Multi-head attention with the last LSTM state as the query over all states: a learned,
    input-dependent weighting of the bars in the window. Returns (context, attention weights)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T, D)
        query = states[:, -1:, :]
        context, weights = self.attn(query, states, states, need_weights=True)
        return self.norm(context[:, 0] + states[:, -1]), weights[:, 0]


class CNNLSTMAttention(nn.Module):
    """One ensemble member."""

    def __init__(self, cfg: ForecasterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        channels = [cfg.input_dim, *cfg.cnn_filters]
        self.convs = nn.Sequential(
            *[ConvBlock(a, b, cfg.kernel_size, cfg.dropout) for a, b in zip(channels[:-1], channels[1:], strict=True)]
        )
        self.lstm = nn.LSTM(
            channels[-1],
            cfg.lstm_units,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        heads = cfg.attention_heads if cfg.lstm_units % cfg.attention_heads == 0 else 1
        self.pool = AttentionPool(cfg.lstm_units, heads, cfg.dropout) if cfg.attention else None
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.lstm_units, cfg.output_size)
        self.regressor = nn.Linear(cfg.lstm_units, 1) if cfg.return_head else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, F) -> (logits (B, classes), predicted forward return (B,) or None)."""
        h = self.convs(x.transpose(1, 2)).transpose(1, 2)
        states, _ = self.lstm(h)
        summary = self.pool(states)[0] if self.pool is not None else states[:, -1]
        summary = self.drop(summary)
        ret = self.regressor(summary)[:, 0] if self.regressor is not None else None
        return self.classifier(summary), ret


@dataclass
class Prediction:
    """Per-sample outputs of the ensemble (tensors on CPU)."""

    probs: torch.Tensor
    """(B, classes): mean of the members' calibrated probabilities."""
    confidence: torch.Tensor
    """(B,): probability of the predicted class (calibrated)."""
    entropy: torch.Tensor
    """(B,): predictive entropy of the mean (total uncertainty, nats)."""
    mutual_info: torch.Tensor
    """(B,): entropy of the mean - mean member entropy (epistemic part: members disagree)."""
    disagreement: torch.Tensor
    """(B,): share of members whose argmax differs from the ensemble's."""
    expected_return: torch.Tensor | None = None
    member_probs: torch.Tensor | None = field(default=None, repr=False)
    """(K, B, classes) when asked for."""

    @property
    def label(self) -> torch.Tensor:
        return self.probs.argmax(dim=-1)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=-1)


class ForecasterEnsemble(nn.Module):
    """K members + one temperature (fitted on validation) shared by all of them."""

    def __init__(self, cfg: ForecasterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList([CNNLSTMAttention(cfg) for _ in range(cfg.ensemble_size)])
        self.register_buffer("temperature", torch.ones(()))

    @property
    def temperature_value(self) -> float:
        return float(self.get_buffer("temperature"))

    def set_temperature(self, value: float) -> None:
        self.get_buffer("temperature").fill_(float(value))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(member logits (K, B, classes), member returns (K, B) or None)."""
        outs = [m(x) for m in self.members]
        logits = torch.stack([o[0] for o in outs])
        rets = torch.stack([o[1] for o in outs]) if outs[0][1] is not None else None
        return logits, rets

    @torch.no_grad()
    def predict(self, x: torch.Tensor, mc_samples: int = 0, keep_members: bool = False) -> Prediction:
        """Calibrated ensemble prediction. ``mc_samples`` > 0 adds MC-dropout passes per member."""
        was_training = self.training
        if was_training:  # toggling walks every submodule: skip it on the serving path (already eval)
            self.eval()
        try:
            logits, rets = self(x)
            probs = torch.softmax(logits.float() / self.temperature, dim=-1)  # (K, B, C)
            if mc_samples:
                self.train()
                extra = [torch.softmax(self(x)[0].float() / self.temperature, dim=-1) for _ in range(mc_samples)]
                probs = torch.cat([probs, *extra])
                self.eval()
        finally:
            if was_training:
                self.train()
        mean = probs.mean(dim=0)
        entropy = _entropy(mean)
        label = mean.argmax(dim=-1)
        return Prediction(
            probs=mean,
            confidence=mean.max(dim=-1).values,
            entropy=entropy,
            mutual_info=(entropy - _entropy(probs).mean(dim=0)).clamp_min(0.0),
            disagreement=(probs.argmax(dim=-1) != label).float().mean(dim=0),
            expected_return=rets.float().mean(dim=0) if rets is not None else None,
            member_probs=probs if keep_members else None,
        )

    def num_params(self) -> int:
        """Trainable parameters of the whole ensemble."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def flops_per_window(self) -> int:
        """Multiply-adds x 2 of one forward pass of the ensemble over one window (estimate:
        convolutions, LSTM gates, attention projections and scores, heads)."""
        c, t = self.cfg, self.cfg.seq_len
        channels = [c.input_dim, *c.cnn_filters]
        macs = sum(a * b * c.kernel_size * t for a, b in zip(channels[:-1], channels[1:], strict=True))
        d_in = channels[-1]
        for _ in range(c.lstm_layers):
            macs += 4 * c.lstm_units * (d_in + c.lstm_units) * t
            d_in = c.lstm_units
        if c.attention:
            d = c.lstm_units
            macs += d * d + 2 * t * d * d + 2 * t * d + d * d  # q, k/v projections, scores+mix, out
        macs += c.lstm_units * (c.output_size + 1)
        return 2 * macs * c.ensemble_size

    def describe(self) -> dict[str, Any]:
        return {
            "params": self.num_params(),
            "params_per_member": self.num_params() // max(1, len(self.members)),
            "flops_per_window": self.flops_per_window(),
            "temperature": self.temperature_value,
            **{f"cfg_{k}": v for k, v in self.cfg.as_dict().items()},
        }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """Temperature T minimising the validation NLL of mean-ensemble probabilities softmax(logits/T)
    (Guo et al. 2017); ``logits`` is (K, N, C). Optimised over log T, so T stays positive."""
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    logits = logits.detach().float()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        probs = torch.softmax(logits / log_t.exp(), dim=-1).mean(dim=0)
        loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(log_t.detach().exp())
    return value if math.isfinite(value) else 1.0
