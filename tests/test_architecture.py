"""The import contracts of pyproject.toml ([tool.importlinter], drawn in docs/architecture.md) hold,
and each of them is real: a copy of the code with one deliberate violation breaks exactly the
contract that forbids it (a contract nothing can break would guard nothing).

``lint-imports`` runs on the repository itself, then on copies of ``trading_core``, ``dags`` and
``plugins`` in a temporary folder (import-linter puts its working directory first on ``sys.path``,
so the copy is what it analyses: the violation tests would pass vacuously otherwise, and they fail).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c for c in CONFIG["contracts"]}
NAMES = {key: contract["name"] for key, contract in CONTRACTS.items()}


def lint_imports(where: Path) -> tuple[int, dict[str, str], str]:
    """Run ``lint-imports`` in ``where``: exit code, KEPT/BROKEN per contract id, and the whole output."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install the pins (make venv)"
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(where / "pyproject.toml")],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    flat = " ".join(out.split())  # long contract names wrap in the report
    verdicts = {}
    for key, name in NAMES.items():
        found = re.search(re.escape(" ".join(name.split())) + r" (KEPT|BROKEN)", flat)
        assert found, f"contract {key!r} missing from the lint-imports report:\n{out}"
        verdicts[key] = found.group(1)
    return proc.returncode, verdicts, out


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """trading_core, dags, plugins and pyproject.toml copied into a fresh folder."""
    for folder in ("trading_core", "dags", "plugins"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_repository_keeps_every_contract() -> None:
    code, verdicts, out = lint_imports(ROOT)
    assert code == 0 and set(verdicts.values()) == {"KEPT"}, out
    assert set(NAMES) == {"layers", "no-airflow", "acyclic"}


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write("\n" + text + "\n")


VIOLATIONS = {
    # The cycle this contract was written against: the governance gates reaching up into the A/B.
    "registry imports rollout (the old gates <-> ab cycle)": (
        "trading_core/registry/gates.py",
        "from trading_core.rollout.ab import evaluate_ab  # noqa: E402",
        {"layers", "acyclic"},
    ),
    # A lazy import inside a function is a dependency all the same (gates used to import training so).
    "a lazy import from registry up into training": (
        "trading_core/registry/governance.py",
        "def _lazy() -> object:\n    from trading_core.training import summary_metrics\n\n    return summary_metrics",
        {"layers", "acyclic"},
    ),
    "monitoring reads the training pipeline": (
        "trading_core/monitoring/check.py",
        "import trading_core.training  # noqa: E402",
        {"layers"},
    ),
    "data imports features": (
        "trading_core/data/leak.py",
        "from trading_core.features import config",
        {"layers", "acyclic"},
    ),
    "forecast imports risk (siblings of one layer stay independent)": (
        "trading_core/forecast/limits.py",
        "from trading_core.risk.limits import RiskLimits",
        {"layers"},
    ),
    "the shared tracking helpers import a stage": (
        "trading_core/tracking.py",
        "from trading_core.forecast import reporting  # noqa: E402",
        {"layers", "acyclic"},
    ),
    "a module directly under trading_core without a layer": ("trading_core/helpers.py", "X = 1", {"layers"}),
    "the live service (optional layer) imports the training pipeline": (
        "trading_core/serving/__init__.py",
        "from trading_core.training import summary_metrics",
        {"layers"},
    ),
    "trading_core imports Airflow": (
        "trading_core/monitoring/alerts.py",
        "from airflow.sdk import Variable",
        {"no-airflow"},
    ),
    "trading_core imports a plugin by the name Airflow gives it": (
        "trading_core/registry/sensors.py",
        "import trading_gates",
        {"no-airflow"},
    ),
    "trading_core imports a DAG file": ("trading_core/rollout/wiring.py", "import dags.promotion", {"no-airflow"}),
    "two modules of one package import each other": (
        "trading_core/data/lake.py",
        "import trading_core.data.ingest  # noqa: E402",
        {"acyclic"},
    ),
}


@pytest.mark.parametrize("case", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_a_deliberate_violation_breaks_its_contract(copy: Path, case: str) -> None:
    path, line, broken = VIOLATIONS[case]
    _append(copy / path, line)
    code, verdicts, out = lint_imports(copy)
    assert code != 0, out
    assert {key for key, verdict in verdicts.items() if verdict == "BROKEN"} == broken, out


def test_the_optional_serving_layer_may_use_rollout_and_registry(copy: Path) -> None:
    """The live decision service will sit above rollout and monitoring: importing down is allowed."""
    _append(
        copy / "trading_core/serving/__init__.py",
        "from trading_core.rollout import ab\nfrom trading_core import registry",
    )
    code, verdicts, out = lint_imports(copy)
    assert code == 0 and set(verdicts.values()) == {"KEPT"}, out


def test_every_dag_and_plugin_file_is_forbidden_to_trading_core_by_its_bare_name() -> None:
    """Airflow puts dags/ and plugins/ on sys.path, so ``import trading_gates`` works in a worker: each
    file's bare module name must be in the no-airflow contract, or a new DAG file would escape it."""
    forbidden = set(CONTRACTS["no-airflow"]["forbidden_modules"])
    files = {p.stem for folder in ("dags", "plugins") for p in (ROOT / folder).glob("*.py")}
    assert files, "no DAG or plugin files found"
    assert files - forbidden == set(), "add these to forbidden_modules in pyproject.toml"
    assert {"airflow", "dags", "plugins"} <= forbidden


def test_the_picture_in_docs_architecture_md_shows_the_contract_layers() -> None:
    """docs/architecture.md draws one box per layer (subgraph L1 = the highest): same layers, same order."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    boxes = re.findall(r'subgraph L(\d+)\["([^"]+)"\]', doc)
    drawn = [label.split(":")[0].strip() for _, label in sorted(boxes, key=lambda box: int(box[0]))]
    assert drawn == CONTRACTS["layers"]["layers"]
