"""One source for the training defaults: ``TrainingConfig`` (trading_core/training_config.py).

The training DAG's form and the CLI's training flags are derived from the model, the library's
fallbacks read it, and the stage libraries that keep defaults of their own (the forecaster's
TrainConfig/ForecasterConfig, the HPO worker, the RL pipeline, the env) must agree with it: each test
here fails when one of them says something else than the model.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trading_core.training_config import SYMBOL_PATTERN, TRAINING_DEFAULTS, TrainingConfig, form_fields

DAGS = Path(__file__).resolve().parents[1] / "dags"
DEFAULTS: dict[str, Any] = TRAINING_DEFAULTS.model_dump(mode="json")


# ------------------------------------------------------------------------------------------ the model


def test_every_field_has_a_one_line_description_and_a_default() -> None:
    fields = form_fields()
    assert list(fields) == list(TrainingConfig.model_fields)
    for name, spec in fields.items():
        assert spec["description"] and "\n" not in spec["description"], name
        assert spec["default"] == DEFAULTS[name], name


def test_from_params_takes_defaults_for_missing_and_none_and_ignores_other_keys() -> None:
    config = TrainingConfig.from_params({"n_envs": None, "folds": 5, "turbulence_window": 30, "seeds": [3]})
    assert config.n_envs == TRAINING_DEFAULTS.n_envs and config.folds == 5 and config.seeds == [3]
    assert TrainingConfig.from_params({}) == TRAINING_DEFAULTS
    assert TrainingConfig.from_params({"start": "2024-01-02"}).start == date(2024, 1, 2)
    with pytest.raises(ValidationError, match="n_envs"):
        TrainingConfig.from_params({"n_envs": 0})
    with pytest.raises(ValidationError, match="symbols"):
        TrainingConfig.from_params({"symbols": ["../etc"]})


def test_the_demo_conf_is_a_valid_training_config() -> None:
    """The demo's small run names only real knobs (extra keys are refused by the model)."""
    from trading_core.cli.demo import DEMO_TRAINING_CONF

    config = TrainingConfig(**DEMO_TRAINING_CONF)
    assert config.model_dump(include=set(DEMO_TRAINING_CONF)) == DEMO_TRAINING_CONF
    with pytest.raises(ValidationError, match="n_env"):
        TrainingConfig(n_env=4)  # type: ignore[call-arg]


class _Tiny(BaseModel):
    """A model with every shape the flattening handles."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    count: int | None = Field(default=None, ge=1)
    """Optional bounded integer."""
    kind: Literal["a", "b"] | None = None
    """Optional choice."""
    day: date | None = None
    """Optional date."""
    ident: str | int | None = None
    """Text or number."""


def test_form_fields_flattens_optional_fields_to_a_list_of_types() -> None:
    fields = form_fields(_Tiny)
    assert fields["count"] == {"default": None, "description": "Optional bounded integer.", "type": ["null", "integer"],
                               "minimum": 1}  # fmt: skip
    assert fields["kind"]["type"] == ["null", "string"] and fields["kind"]["enum"] == [None, "a", "b"]
    assert fields["day"]["type"] == ["null", "string"] and fields["day"]["format"] == "date"
    assert fields["ident"]["type"] == ["null", "string", "integer"]


def test_form_fields_refuses_alternatives_a_form_cannot_show() -> None:
    class Clash(BaseModel):
        x: int | float = Field(default=1)

    class Mixed(BaseModel):
        y: Literal["a", "b"] | int = "a"

    class Bounds(BaseModel):
        z: list[int] | None = None
        one: Literal["only"] | None = None

    with pytest.raises(ValueError, match="'y'"):
        form_fields(Mixed)
    form_fields(Clash)  # two types, no conflicting keyword: fine
    assert form_fields(Bounds)["z"]["type"] == ["null", "array"]
    assert form_fields(Bounds)["one"]["enum"] == [None, "only"]  # a one-value Literal is a const to pydantic


# ------------------------------------------------------------------------------------------ the DAG form


def _candidates(spec: dict[str, Any]) -> list[Any]:
    """Values around each bound, pattern and choice of a field (JSON types only, as the form sends them)."""
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    values: list[Any] = [spec["default"], None]
    step = {"integer": 1, "number": 0.01}
    for kind in types:
        if kind in step:
            for bound, sign in (("minimum", -1), ("maximum", 1)):
                if bound in spec:
                    values += [spec[bound], spec[bound] + sign * step[kind]]
        elif kind == "string":
            values += [*spec.get("enum", []), "nope", "fs-0a", "cuda:1", "2024-02-30", "2024-02-29", "a" * 101]
        elif kind == "array":
            values += [[], [0], [-1], ["SYN000"], ["../etc"]]
    return values


def test_the_form_accepts_and_rejects_what_the_model_does() -> None:
    """dags/training_params.py: one Param per field, its value the model's default; for values around each
    bound, pattern and choice, the form's JSON schema and the model agree on every one."""
    from airflow.sdk.definitions.param import Param
    from airflow.sdk.exceptions import ParamValidationError
    from training_params import training_params

    form = training_params()
    assert list(form) == list(TrainingConfig.model_fields)
    checked = 0
    for name, param in form.items():
        assert isinstance(param, Param) and param.value == DEFAULTS[name], name
        assert param.description == TrainingConfig.model_fields[name].description, name
        for value in _candidates({**param.schema, "default": DEFAULTS[name]}):
            try:
                param.resolve(value)
                form_ok = True
            except ParamValidationError:
                form_ok = False
            try:
                TrainingConfig.model_validate({name: value})
                model_ok = True
            except ValidationError:
                model_ok = False
            assert form_ok == model_ok, (name, value, form_ok, model_ok)
            checked += not form_ok
    assert checked > 40, "the candidates must include many rejected values"


def test_parsing_the_training_dag_loads_nothing_heavy() -> None:
    """The form needs trading_core.training_config at parse time: it must stay light (pydantic only)."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(DAGS)!r}); import training; "  # the DAG file, as parsed
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = {"pandas", "numpy", "torch", "mlflow", "stable_baselines3", "evidently", "optuna", "sklearn", "pyarrow"}
    assert {m for m in modules if m.split(".")[0] in heavy} == set()
    assert {m for m in modules if m.split(".")[0] == "trading_core"} == {"trading_core", "trading_core.training_config"}


# ------------------------------------------------------------------------------------------ the CLI

CLI_FLAGS: dict[tuple[str, ...], dict[str, str]] = {
    ("train-forecaster",): {"epochs": "epochs", "ensemble_size": "ensemble_size", "max_train_samples":
                            "max_train_samples", "device": "device", "cpu_threads": "cpu_threads", "seed": "seed"},
    ("hpo-forecaster",): {"trials": "hpo_trials_per_worker", "epochs": "hpo_epochs", "max_train_samples":
                          "max_train_samples", "device": "device", "cpu_threads": "cpu_threads", "seed": "seed"},
    ("train-agent", "--pure-rl"): {"algo": "algo", "timesteps": "timesteps", "n_envs": "n_envs", "seed": "seed"},
    ("walk-forward",): {"folds": "folds", "test_size": "test_size", "seeds": "seeds", "algo": "algo",
                        "timesteps": "wf_timesteps", "n_envs": "n_envs", "epochs": "wf_epochs"},
}  # fmt: skip
"""Per command: the parsed argument -> the TrainingConfig field whose default it must have."""


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub: argparse.ArgumentParser = action.choices[command]
    return sub


@pytest.mark.parametrize("argv", list(CLI_FLAGS), ids=[argv[0] for argv in CLI_FLAGS])
def test_cli_defaults_are_the_model_defaults(argv: tuple[str, ...]) -> None:
    from trading_core.cli import build_parser
    from trading_core.cli.common import items

    parser = build_parser()
    args = parser.parse_args(list(argv))
    for dest, field in CLI_FLAGS[argv].items():
        value = getattr(args, dest)
        if field == "seeds":
            value = [int(s) for s in items(value)]  # the command parses its comma-separated value so
        assert value == getattr(TRAINING_DEFAULTS, field), (argv, dest)
        action = next(a for a in _subparser(parser, argv[0])._actions if a.dest == dest)
        default = getattr(TRAINING_DEFAULTS, field)
        if default is not None:
            shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
            assert action.help and action.help.endswith(f"({shown})"), (argv, dest, action.help)


# ------------------------------------------------------------------------------------------ the library


def test_the_training_plan_and_the_steps_fall_back_on_the_model() -> None:
    from trading_core.forecast.resolve import TrainingPlan
    from trading_core.training import agent_arguments, walk_forward_config_from_params

    plan = TrainingPlan(feature_set_version="fs-0", study_name=None)
    for field in ("hpo_workers", "hpo_trials_per_worker", "hpo_epochs", "epochs", "ensemble_size",
                  "max_train_samples", "device", "cpu_threads", "seed"):  # fmt: skip
        assert getattr(plan, field) == getattr(TRAINING_DEFAULTS, field), field

    agent = agent_arguments(TrainingConfig.from_params({}))
    assert (agent["algo"], agent["timesteps"], agent["n_envs"], agent["seed"], agent["symbols"]) == (
        TRAINING_DEFAULTS.algo, TRAINING_DEFAULTS.timesteps, TRAINING_DEFAULTS.n_envs, TRAINING_DEFAULTS.seed, None
    )  # fmt: skip
    assert agent["env"] == {"cost_bps": TRAINING_DEFAULTS.cost_bps, "slippage_bps": TRAINING_DEFAULTS.slippage_bps}

    wf = walk_forward_config_from_params({})
    assert (wf.n_folds, wf.test_size, list(wf.seeds)) == (
        TRAINING_DEFAULTS.folds, TRAINING_DEFAULTS.test_size, TRAINING_DEFAULTS.seeds
    )  # fmt: skip
    assert (wf.timesteps, wf.n_envs, wf.algo) == (
        TRAINING_DEFAULTS.wf_timesteps, TRAINING_DEFAULTS.n_envs, TRAINING_DEFAULTS.algo
    )  # fmt: skip
    assert wf.forecaster_train["epochs"] == TRAINING_DEFAULTS.wf_epochs
    assert wf.env == agent["env"]
    assert walk_forward_config_from_params({"seed": 0, "algo": "ensemble"}).algo == TRAINING_DEFAULTS.algo


def test_the_stage_libraries_defaults_agree_with_the_model() -> None:
    """Defaults the stages keep for direct callers: where they mean the same knob, the same value."""
    from trading_core.data.schema import SYMBOL_RE
    from trading_core.forecast.hpo import run_hpo_worker
    from trading_core.forecast.model import ForecasterConfig
    from trading_core.forecast.train import TrainConfig
    from trading_core.rl.config import EnvConfig
    from trading_core.rl.pipeline import train_agent

    d = TRAINING_DEFAULTS
    train = TrainConfig()
    assert (train.epochs, train.max_train_samples, train.device, train.cpu_threads, train.seed) == (
        d.epochs, d.max_train_samples, d.device, d.cpu_threads, d.seed
    )  # fmt: skip
    assert ForecasterConfig(input_dim=1).ensemble_size == d.ensemble_size
    hpo = inspect.signature(run_hpo_worker).parameters
    assert (hpo["epochs"].default, hpo["seed"].default, hpo["device"].default) == (d.hpo_epochs, d.seed, d.device)
    assert hpo["max_train_samples"].default == d.max_train_samples
    assert hpo["cpu_threads"].default == d.cpu_threads
    agent = inspect.signature(train_agent).parameters
    assert (agent["algo"].default, agent["n_envs"].default) == (d.algo, d.n_envs)
    env = EnvConfig()
    assert (env.cost_bps, env.slippage_bps) == (d.cost_bps, d.slippage_bps)
    assert SYMBOL_RE.pattern == SYMBOL_PATTERN
