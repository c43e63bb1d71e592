"""``trading demo``: the ingest, features and training DAGs, then the promotion gates, on the embedded default.

What each DAG made is printed as it finishes (dataset, feature set, candidate with its walk-forward
summary, the drift and governance gates' verdicts), with the next command to look further.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from trading_core.cli.features import print_feature_set_summary
from trading_core.config import Settings
from trading_core.errors import TradingError
from trading_core.security import redact_url

DEMO_CONF: dict[str, Any] = {
    "source": "synthetic",
    "symbols": [f"SYN{i:03d}" for i in range(8)],
    "start": "2022-01-03",
    "end": "2024-12-31",
    "defect_rate": 0.002,
}
DEMO_TRAINING_CONF: dict[str, Any] = {
    # Small enough for a 2-core laptop in a few minutes; the DAG's form has the full-size defaults
    # (trading_core.training_config.TrainingConfig, which a test validates these keys against).
    "hpo_workers": 1,
    "hpo_trials_per_worker": 2,
    "hpo_epochs": 1,
    "epochs": 3,
    "ensemble_size": 2,
    "max_train_samples": 2000,
    "algo": "ppo",
    "timesteps": 4000,
    "n_envs": 4,
    "folds": 2,
    "test_size": 60,
    "seeds": [0],
    "wf_timesteps": 2000,
    "wf_epochs": 2,
}


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage
    from trading_core.embedded import run_dag_test

    print(
        f"Running DAG market_data with airflow dags test (AIRFLOW_HOME={settings.resolved_airflow_home}) ...",
        flush=True,
    )
    run_dag_test(settings, "market_data", DEMO_CONF)
    url = settings.resolved_database_url
    dataset = lineage.latest_dataset(url)
    if dataset is None:
        raise TradingError("the demo DAG run finished but recorded no dataset")
    run = lineage.get_run(url, dataset.first_run_id)
    print("\n=== market_data: ingest finished ===")
    print(f"dataset_version : {dataset.version}")
    print(f"feed / interval : {dataset.feed} / {dataset.interval}")
    print(f"symbols         : {', '.join(dataset.symbols)}")
    print(f"range           : {dataset.start:%Y-%m-%d} .. {dataset.end:%Y-%m-%d}, {dataset.row_count} bars in the lake")
    if run is not None and run.report:
        report = run.report
        print(
            f"validation      : {report['rows_read']} read, {report['rows_quarantined']} quarantined "
            f"{report['quarantined_by_rule']}, flagged {report['flagged_by_rule']}"
        )
        print(f"quarantine      : trading quarantine {run.id}")
    print(f"lake            : {settings.lake_dir}")
    print(f"app DB          : {redact_url(url)}")

    print(f"\nRunning DAG features with airflow dags test on {dataset.version} ...", flush=True)
    run_dag_test(settings, "features", {"dataset_version": dataset.version})
    feature_set = lineage.latest_feature_set(url, dataset.version)
    if feature_set is None:
        raise TradingError("the features DAG run finished but recorded no feature set")
    print("\n=== features: feature set built ===")
    print(f"feature set     : {feature_set.version}")
    print(f"features        : {feature_set.n_features} over {feature_set.rows} rows  ({feature_set.path})")
    print_feature_set_summary(feature_set.summary)
    print(f"details         : trading features show {feature_set.version}")

    print(f"\nRunning DAG training with airflow dags test on {feature_set.version} ...", flush=True)
    run_dag_test(settings, "training", {"feature_set_version": feature_set.version, **DEMO_TRAINING_CONF})
    _print_candidate(settings)
    _print_gates(settings)
    print("Airflow / MLflow UIs: make ui  (Airflow http://127.0.0.1:8080, MLflow http://127.0.0.1:5000)")
    return 0


def _print_gates(settings: Settings) -> None:
    """The candidate through the drift and governance gates (what the promotion DAG checks first)."""
    from trading_core.registry.aliases import CANDIDATE, alias_version, client_for
    from trading_core.registry.gates import drift_gate, governance_gate

    name = settings.model_name
    version = alias_version(client_for(settings), name, CANDIDATE)
    if version is None:
        return
    print(f"\n=== promotion gates: {name} v{version} ===")
    outcomes = [gate(settings, name, version, actor="trading demo") for gate in (drift_gate, governance_gate)]
    for outcome in outcomes:
        print(f"{outcome.gate:<15} : {outcome.status}")
        for reason in outcome.reasons:
            print(f"                  {reason}")
    if all(o.status == "passed" for o in outcomes):
        print(f"next            : trading registry approve {version}  (or tag approval=approved in the MLflow UI),")
        print("                  then the promotion DAG makes it the challenger (docs/registry.md)")
    else:
        print("next            : not promotable as trained: the gates fail closed (thresholds: config/governance.yaml)")
    print("audit           : trading audit --limit 5")


def _print_candidate(settings: Settings) -> None:
    """The registered candidate, its walk-forward summary and where the report is."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from trading_core.registry.candidate import CANDIDATE
    from trading_core.tracking import use_tracking_store

    model_name = settings.model_name
    use_tracking_store(settings)
    client = MlflowClient(settings.resolved_mlflow_tracking_uri)
    version = client.get_model_version_by_alias(model_name, CANDIDATE)
    validation_run = version.tags.get("link.validation_run")
    print("\n=== training: candidate registered ===")
    print(
        f"model version   : {model_name} v{version.version} (alias '{CANDIDATE}', approval "
        f"{version.tags.get('approval')})"
    )
    print(
        f"lineage         : {version.tags.get('dataset_version')} -> {version.tags.get('feature_set_version')} "
        f"(git {version.tags.get('git_sha', '')[:10]})"
    )
    print(
        f"runs            : forecaster {version.tags.get('link.forecaster_run')}, agent "
        f"{version.tags.get('link.agent_run')}, walk-forward {validation_run}"
    )
    if not validation_run:
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder = mlflow.artifacts.download_artifacts(run_id=validation_run, artifact_path="walk_forward")
    summary = Path(folder) / "summary.csv"
    if summary.exists():
        table = pd.read_csv(summary)

        def ci(metric: str, row: Any) -> str:
            low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
            interval = f" [{low:.2f}, {high:.2f}]" if pd.notna(low) else ""
            return f"{row[f'{metric}_mean']:.2f}{interval}"

        folds_csv = Path(folder) / "folds.csv"
        if folds_csv.exists():
            folds = pd.read_csv(folds_csv)
            folds = folds[folds["fold"] >= 0]
            pivot = folds.pivot_table(index="strategy", columns="fold", values="sharpe", aggfunc="mean", sort=False)
            print("fold table      : out-of-sample Sharpe per fold (mean over seeds)")
            print("  " + f"{'strategy':<24}" + "".join(f"{'fold ' + str(c):>10}" for c in pivot.columns))
            for strategy, values in pivot.iterrows():
                print("  " + f"{strategy!s:<24}" + "".join(f"{v:>10.2f}" for v in values))
        basis = "seeds" if table["basis"].iloc[0] == "overall" else "seeds x folds"
        print(f"walk-forward    : whole out-of-sample curve; mean [95% CI] over {basis} (n = {table['n'].iloc[0]})")
        print(f"  {'strategy':<24} {'sharpe':>22} {'return':>8} {'max dd':>7} {'turnover':>9} {'costs':>7}")
        for _, row in table.iterrows():
            print(
                f"  {row['strategy']:<24} {ci('sharpe', row):>22} {row['total_return_mean']:>8.2%} "
                f"{row['max_drawdown_mean']:>7.2%} {row['turnover_mean']:>9.3f} {row['cost_paid_mean']:>7.3%}"
            )
    report = client.get_run(validation_run).info.artifact_uri.removeprefix("file://") + "/walk_forward/report.html"
    print(f"report          : {report}")


def add_parsers(sub: Any) -> None:
    """Register ``demo``."""
    sub.add_parser(
        "demo", help="run the ingest, features and training DAGs, then the promotion gates, on the embedded default"
    ).set_defaults(func=_demo)
