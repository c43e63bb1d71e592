"""The knobs of a training run and their defaults, in one place.

:class:`TrainingConfig` is the single source of the training defaults. Everything else is derived
from it or reads it:

* the training DAG's form: ``dags/training_params.py`` turns :func:`form_fields` (the model's JSON
  schema, flattened to the keywords Airflow's ``Param`` takes) into ``Param`` objects;
* the ``trading`` CLI's training flags (``train-forecaster``, ``hpo-forecaster``, ``train-agent``,
  ``walk-forward``): their defaults, types, choices and help come from the fields
  (``trading_core/cli/options.py``);
* the library's fallbacks: :class:`~trading_core.forecast.resolve.TrainingPlan`, ``TrainConfig``,
  ``ForecasterConfig`` and the steps of :mod:`trading_core.training` read :data:`TRAINING_DEFAULTS`.

tests/test_training_config.py fails when any of them disagrees with the model. Where the places
disagreed before (``n_envs`` 8 in the form, 4 in the walk-forward fallback; the CLI's 100000 agent
steps, 8 HPO trials, 252-bar test windows...), the DAG form's value won: it is what users ran.

The module imports nothing but pydantic: Airflow imports it when it parses ``dags/training.py``, and
every stage may read it (it sits at the bottom of the layers, beside ``config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9.\-_=/:^]{0,39}$"
"""A ticker as the lake accepts it (``trading_core.data.schema.SYMBOL_RE``, which imports pandas; a test
holds the two equal)."""

Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN)]
Seed = Annotated[int, Field(ge=0)]


class TrainingConfig(BaseModel):
    """One run of the training pipeline: data, forecaster (HPO and final ensemble), RL agent,
    walk-forward validation and registration. The fields are the training DAG's form, in its order;
    each docstring is the form's description and the CLI flag's help."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    feature_set_version: str | None = Field(default=None, pattern=r"^fs-[0-9a-f]{1,64}$")
    """Feature set to train on; empty = the triggering features event's, else the latest recorded."""
    hpo_workers: int = Field(default=2, ge=0, le=64)
    """Mapped HPO tasks sharing the study; 0 = no search."""
    hpo_trials_per_worker: int = Field(default=4, ge=1, le=1000)
    """Trials per worker."""
    hpo_epochs: int = Field(default=3, ge=1, le=200)
    """Epochs of each HPO trial."""
    epochs: int = Field(default=20, ge=1, le=1000)
    """Epochs of each final member."""
    ensemble_size: int = Field(default=5, ge=1, le=50)
    """Members of the ensemble."""
    max_train_samples: int | None = Field(default=None, ge=1)
    """Training samples per epoch (a random subset each epoch); empty = all."""
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:[0-9]{1,2})?)$")
    """auto = CUDA when the worker has it (bf16 AMP), else CPU."""
    cpu_threads: int = Field(default=1, ge=1, le=256)
    """Torch CPU threads of forecaster training; results are bit-identical for a given count."""
    seed: int = Field(default=42, ge=0)
    """Seed of the sampler, initial weights and batches."""
    source: Literal["synthetic", "csv"] | None = None
    """Ingest this source first (then build features); empty = existing feature set."""
    symbols: list[Symbol] = Field(default_factory=list)
    """Universe (empty = all the source or feature set has)."""
    start: date | None = None
    """First date to ingest."""
    end: date | None = None
    """Last date to ingest."""
    path: str | None = None
    """File for source=csv."""
    n_assets: int = Field(default=8, ge=1, le=2000)
    """Synthetic universe size."""
    signal_strength: float = Field(default=0.05, ge=0, le=0.99)
    """Synthetic signal."""
    algo: Literal["ppo", "sac", "td3", "a2c", "ensemble"] = "ppo"
    """RL agent."""
    timesteps: int = Field(default=20_000, ge=100, le=100_000_000)
    """Agent env steps."""
    n_envs: int = Field(default=8, ge=1, le=1024)
    """Portfolios in the vec env."""
    cost_bps: float = Field(default=1.0, ge=0, le=1000)
    """Commission, bps of notional."""
    slippage_bps: float = Field(default=2.0, ge=0, le=1000)
    """Slippage, bps."""
    folds: int = Field(default=3, ge=1, le=50)
    """Walk-forward folds."""
    test_size: int = Field(default=63, ge=5, le=5000)
    """Bars per out-of-sample fold."""
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1], min_length=1)
    """Walk-forward seeds (mean and 95% CI over them)."""
    wf_timesteps: int = Field(default=10_000, ge=100)
    """Agent env steps per fold."""
    wf_epochs: int = Field(default=5, ge=1)
    """Forecaster epochs per fold."""
    model_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    """Registered model of the candidate version; empty = TRADING_MODEL_NAME (trading-policy)."""
    trigger_reason: str | None = None
    """Why this run started (the drift monitor writes its finding here)."""
    drift_check_id: str | int | None = None
    """The drift_checks row that triggered this run."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainingConfig:
        """The config of flat DAG/CLI params: a missing or None value takes the default; keys that are
        not fields are ignored (a DAG run's conf may carry e.g. a feature recipe for ``prepare``);
        a bad value raises pydantic's ``ValidationError`` naming the field."""
        return cls.model_validate({k: v for k, v in params.items() if k in cls.model_fields and v is not None})


TRAINING_DEFAULTS = TrainingConfig()
"""The defaults, as an instance: what the library falls back on when a caller gives nothing."""


def form_fields(model: type[BaseModel] = TrainingConfig) -> dict[str, dict[str, Any]]:
    """Each field of ``model`` as the keyword arguments of an Airflow ``Param``: ``default``,
    ``description`` and the JSON-schema keywords (type, bounds, pattern, format, enum, items).

    Pydantic writes an optional field as ``anyOf: [<schema>, {"type": "null"}]``, which Airflow's form
    cannot render; it becomes one schema with ``type: ["null", <type>]`` (and ``None`` first in an
    ``enum``), the form the DAGs have always used. A JSON-schema bound applies to its own type only,
    so ``minimum`` still lets ``null`` through.

    :raises ValueError: for a field the form cannot express (alternatives with conflicting keywords).
    """
    defaults = model().model_dump(mode="json")
    fields: dict[str, dict[str, Any]] = {}
    for name, schema in model.model_json_schema()["properties"].items():
        schema = {k: v for k, v in schema.items() if k not in ("title", "default")}
        description = schema.pop("description", None)
        if "anyOf" in schema:
            branches = schema.pop("anyOf")
            schema |= _flatten(name, branches)
        fields[name] = {"default": defaults[name], "description": description, **schema}
    return fields


def _flatten(name: str, branches: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf`` alternatives of one field as a single schema with a list of types."""
    nullable = {"type": "null"} in branches
    others = [b for b in branches if b != {"type": "null"}]
    others = [{**_without(b, "const"), "enum": [b["const"]]} if "const" in b else b for b in others]
    if any("type" not in b for b in others) or len({"enum" in b for b in others}) > 1:
        raise ValueError(f"field {name!r}: these alternatives cannot be one form field: {branches}")
    flat: dict[str, Any] = {}
    for branch in others:
        for key, value in branch.items():
            if key not in ("type", "enum") and flat.get(key, value) != value:
                raise ValueError(f"field {name!r}: alternatives disagree on {key!r} ({flat[key]!r} vs {value!r})")
            flat.setdefault(key, value)
    types = ["null"] * nullable + [b["type"] for b in others]
    flat["type"] = types if len(types) > 1 else types[0]
    if "enum" in others[0]:
        flat["enum"] = [None] * nullable + [v for b in others for v in b["enum"]]
    return flat


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}
