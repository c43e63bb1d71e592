"""The :class:`~trading_core.registry.policy.TradingPolicy` as an MLflow pyfunc (models from code).

The logged model holds the policy bundle directory as its one artifact (``artifacts/bundle``:
JSON, tensors, the drift reference) and :mod:`.policy_code` as its code: loading it runs no pickle.

* **Input**: a frame of recent OHLCV bars, columns ``timestamp`` (naive, UTC: MLflow's datetime
  schema has no time zone), ``symbol, open, high, low, close, volume``; every universe symbol at
  every timestamp, at least ``min_history`` bars per symbol (recorded in the model's metadata); the
  decision is for the last timestamp.
* **Params** (optional): the portfolio state, :class:`~trading_core.registry.decision.PolicyState`
  (equity, weights and entry prices per symbol, the breaker's peak and cooldown, ...).
* **Output**: one row per traded symbol, :data:`~trading_core.registry.decision.OUTPUT_COLUMNS`.

    model = mlflow.pyfunc.load_model("models:/trading-policy@champion")
    decisions = model.predict(bars, params={"equity": 1e6, "weights": [0.1, 0.0, 0.2]})
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel, log_model

from trading_core.forecast.pyfunc_model import pip_requirements
from trading_core.registry.decision import PolicyState
from trading_core.registry.policy import TradingPolicy

MODEL_CODE = Path(__file__).with_name("policy_code.py")
ARTIFACT_KEY = "bundle"


class TradingPolicyPyfunc(PythonModel):
    """``mlflow.pyfunc`` wrapper: bars (+ portfolio state params) in, per-symbol decisions out."""

    def __init__(self) -> None:
        self.policy: TradingPolicy | None = None

    def load_context(self, context: Any) -> None:
        self.policy = TradingPolicy.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self.policy is None:
            raise RuntimeError("TradingPolicyPyfunc.predict called before load_context")
        return self.policy.decide(model_input, PolicyState.from_params(params))


def model_input(bars: pd.DataFrame) -> pd.DataFrame:
    """``bars`` with naive UTC timestamps, as the logged signature (MLflow's datetime type) expects."""
    frame = bars.copy()
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    frame["timestamp"] = stamps.dt.tz_localize(None)
    return frame


def log_policy(policy: TradingPolicy, example_bars: pd.DataFrame, name: str = "policy") -> Any:
    """Log ``policy`` into the active MLflow run; returns MLflow's ``ModelInfo``.

    The signature comes from ``example_bars`` (the input example) and the in-memory policy's
    decision on it, so the logged schema is exactly what ``predict`` returns."""
    example = model_input(policy.validate_bars(example_bars))
    output = policy.decide(example)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        signature = infer_signature(example, output, params=PolicyState.PARAM_DEFAULTS)
    with tempfile.TemporaryDirectory(prefix="policy-bundle-") as tmp:
        bundle = policy.save(Path(tmp) / ARTIFACT_KEY)
        return log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={ARTIFACT_KEY: str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements() + _extra_requirements(),
            metadata={"min_history": policy.min_history, "symbols": policy.symbols, "kind": policy.spec.kind},
        )


def _extra_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{dist}=={version(dist)}" for dist in ("stable-baselines3", "TA-Lib", "gymnasium", "pydantic")]
