"""The forecaster as an MLflow pyfunc, logged as "models from code" so nothing is pickled.

The logged model directory holds (beside MLmodel, the input example and the environment files):

    pyfunc_code.py                     the entry point MLflow runs on load (it names :class:`ForecasterPyfunc`)
    artifacts/ensemble.pt              the ensemble's ``state_dict`` (``torch.save``; loaded ``weights_only=True``)
    artifacts/forecaster_config.json   :class:`~trading_core.forecast.model.ForecasterConfig`
    artifacts/scaler.json              the feature set's training-only scaler (to scale raw features upstream)
    artifacts/manifest.json            the feature set's manifest (feature names and order, labels, versions)

Input: float32 ``(n, seq_len, n_features)`` windows of already-scaled features (a TensorSpec
signature). Output: one row per window with the calibrated class probabilities, the predicted
label (0 hold, 1 buy, 2 sell) and the ensemble's uncertainty.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel, log_model

from trading_core.forecast.model import ForecasterConfig, ForecasterEnsemble

OUTPUT_COLUMNS: tuple[str, ...] = (
    "prob_hold",
    "prob_buy",
    "prob_sell",
    "label",
    "confidence",
    "entropy",
    "mutual_info",
    "disagreement",
)
"""Columns of the pyfunc's output frame, in order."""

MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")
"""The models-from-code entry point handed to ``mlflow.pyfunc.log_model``."""

ARTIFACTS = {
    "weights": "ensemble.pt",
    "config": "forecaster_config.json",
    "scaler": "scaler.json",
    "manifest": "manifest.json",
}
"""Artifact key -> file name inside the logged model."""

PREDICT_BATCH = 4096


def predict_frame(model: ForecasterEnsemble, windows: np.ndarray, batch_size: int = PREDICT_BATCH) -> pd.DataFrame:
    """Calibrated ensemble outputs for ``windows`` (n, seq_len, n_features) as a frame of :data:`OUTPUT_COLUMNS`."""
    x = np.asarray(windows, dtype=np.float32)
    cfg = model.cfg
    if x.ndim != 3 or x.shape[1:] != (cfg.seq_len, cfg.input_dim):
        raise ValueError(
            f"expected windows of shape (n, {cfg.seq_len}, {cfg.input_dim}) (n, seq_len, n_features), got {x.shape}"
        )
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("probs", "confidence", "entropy", "mutual_info", "disagreement")
    }
    for start in range(0, len(x), batch_size):
        pred = model.predict(torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])))
        for key, values in parts.items():
            values.append(getattr(pred, key).numpy())
    if len(x) == 0:
        probs = np.empty((0, cfg.output_size), dtype=np.float32)
        rest = {k: np.empty(0, dtype=np.float32) for k in parts if k != "probs"}
    else:
        probs = np.concatenate(parts.pop("probs"))
        rest = {k: np.concatenate(v) for k, v in parts.items() if k != "probs"}
    return pd.DataFrame(
        {
            "prob_hold": probs[:, 0],
            "prob_buy": probs[:, 1],
            "prob_sell": probs[:, 2],
            "label": probs.argmax(axis=1).astype(np.int64),
            **rest,
        },
        columns=list(OUTPUT_COLUMNS),
    )


def save_artifacts(model: ForecasterEnsemble, feature_set_path: Path, directory: Path) -> dict[str, str]:
    """Write the model's artifacts into ``directory``; returns artifact key -> path (for ``log_model``)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {key: directory / name for key, name in ARTIFACTS.items()}
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, paths["weights"])
    paths["config"].write_text(json.dumps(model.cfg.as_dict(), indent=1))
    for key in ("scaler", "manifest"):
        paths[key].write_text((feature_set_path / ARTIFACTS[key]).read_text())
    return {key: str(path) for key, path in paths.items()}


def load_ensemble(config_path: str | Path, weights_path: str | Path) -> ForecasterEnsemble:
    """Rebuild the ensemble from its config JSON and weights (tensors only: ``weights_only=True``)."""
    cfg = ForecasterConfig.from_dict(json.loads(Path(config_path).read_text()))
    model = ForecasterEnsemble(cfg)
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.eval()


def pip_requirements() -> list[str]:
    """What the pyfunc imports at load time, pinned to the versions that trained it. Given explicitly:
    MLflow's inference would start a subprocess that loads the model only to find the same list.
    ``trading-core`` itself is installed from this repository (the model's code imports it)."""
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("mlflow", "torch", "numpy", "pandas")] + ["trading-core"]


class ForecasterPyfunc(PythonModel):
    """``mlflow.pyfunc`` wrapper of :class:`ForecasterEnsemble`: windows in, probabilities and uncertainty out."""

    def __init__(self) -> None:
        self.model: ForecasterEnsemble | None = None

    def load_context(self, context: Any) -> None:
        self.model = load_ensemble(context.artifacts["config"], context.artifacts["weights"])

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self.model is None:
            raise RuntimeError("ForecasterPyfunc.predict called before load_context")
        return predict_frame(self.model, model_input)


def log_forecaster_model(
    model: ForecasterEnsemble, feature_set_path: Path, input_example: np.ndarray, name: str = "forecaster"
) -> Any:
    """Log ``model`` as a pyfunc (models from code) into the active run; returns MLflow's ``ModelInfo``.

    The signature is inferred from ``input_example`` (a few scaled windows) and the in-memory
    model's output on it, so the logged schema is exactly what ``predict`` returns."""
    example = np.ascontiguousarray(input_example, dtype=np.float32)
    with warnings.catch_warnings():  # 'label' is an integer column and never missing
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        signature = infer_signature(example, predict_frame(model, example))
    with tempfile.TemporaryDirectory(prefix="forecaster-artifacts-") as tmp:
        artifacts = save_artifacts(model, feature_set_path, Path(tmp))
        return log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts=artifacts,
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
        )
