"""The forecaster network and ensemble: shapes, uncertainty definitions, calibration, batch independence."""

from __future__ import annotations

import math

import pytest
import torch

from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble, fit_temperature

CFG = ForecasterConfig(input_dim=7, seq_len=12, cnn_filters=(8, 8), lstm_units=16, attention_heads=4, ensemble_size=3)


def _model(cfg: ForecasterConfig = CFG, seed: int = 0) -> ForecasterEnsemble:
    torch.manual_seed(seed)
    return ForecasterEnsemble(cfg).eval()


def test_outputs_have_the_documented_shapes_and_ranges() -> None:
    model = _model()
    x = torch.randn(5, CFG.seq_len, CFG.input_dim)
    logits, rets = model(x)
    assert logits.shape == (3, 5, 3) and rets is not None and rets.shape == (3, 5)
    pred = model.predict(x, keep_members=True)
    assert pred.probs.shape == (5, 3)
    torch.testing.assert_close(pred.probs.sum(dim=1), torch.ones(5))
    assert ((pred.confidence >= 1 / 3 - 1e-6) & (pred.confidence <= 1)).all()
    assert ((pred.entropy >= 0) & (pred.entropy <= math.log(3) + 1e-6)).all()
    assert ((pred.mutual_info >= 0) & (pred.mutual_info <= pred.entropy + 1e-6)).all()
    assert ((pred.disagreement >= 0) & (pred.disagreement <= 1)).all()
    assert pred.member_probs is not None and pred.member_probs.shape == (3, 5, 3)


def test_uncertainty_is_zero_when_members_agree_and_grows_when_they_do_not() -> None:
    model = _model(ForecasterConfig(input_dim=7, seq_len=12, ensemble_size=2, lstm_units=16, cnn_filters=(8,)))
    x = torch.randn(4, 12, 7)
    model.members[1].load_state_dict(model.members[0].state_dict())
    same = model.predict(x)
    assert torch.allclose(same.mutual_info, torch.zeros(4), atol=1e-6) and (same.disagreement == 0).all()
    with torch.no_grad():
        model.members[1].classifier.bias.add_(torch.tensor([5.0, -5.0, 0.0]))
        model.members[0].classifier.bias.add_(torch.tensor([-5.0, 5.0, 0.0]))
    split = model.predict(x)
    assert (split.mutual_info > 0.3).all(), "members that contradict each other are epistemic uncertainty"


def test_mc_dropout_adds_passes_and_leaves_the_model_in_eval_mode() -> None:
    model = _model(ForecasterConfig(input_dim=7, seq_len=12, dropout=0.3, ensemble_size=2, lstm_units=16))
    x = torch.randn(3, 12, 7)
    pred = model.predict(x, mc_samples=4, keep_members=True)
    assert pred.member_probs is not None and pred.member_probs.shape[0] == 2 * 5
    assert not any(m.training for m in model.modules())


def test_a_sample_s_prediction_does_not_depend_on_the_rest_of_the_batch() -> None:
    model = _model()
    x = torch.randn(6, CFG.seq_len, CFG.input_dim)
    alone = model.predict(x[2:3]).probs
    together = model.predict(x).probs[2:3]
    torch.testing.assert_close(alone, together, rtol=1e-5, atol=1e-6)


def test_parameter_count_and_flops_are_reported_honestly() -> None:
    model = _model()
    counted = sum(p.numel() for p in model.parameters())
    assert model.num_params() == counted
    assert model.describe()["params_per_member"] * CFG.ensemble_size == counted
    assert model.flops_per_window() > 0
    bigger = _model(ForecasterConfig(input_dim=7, seq_len=24, cnn_filters=(8, 8), lstm_units=16, ensemble_size=3))
    assert bigger.flops_per_window() > model.flops_per_window(), "FLOPs grow with the window length"
    assert bigger.num_params() == model.num_params(), "parameters do not"


def test_temperature_scaling_recovers_a_known_temperature() -> None:
    torch.manual_seed(1)
    true_logits = torch.randn(1, 4000, 3) * 2.0
    labels = torch.distributions.Categorical(logits=true_logits[0]).sample()
    overconfident = true_logits * 3.0  # a model 3x too sure of itself
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.1)


def test_config_round_trips_through_a_dict() -> None:
    assert ForecasterConfig.from_dict(CFG.as_dict()) == CFG
    no_attention = _model(
        ForecasterConfig(input_dim=7, seq_len=12, attention=False, return_head=False, ensemble_size=1, lstm_units=16)
    )
    logits, rets = no_attention(torch.randn(2, 12, 7))
    assert logits.shape == (1, 2, 3) and rets is None
