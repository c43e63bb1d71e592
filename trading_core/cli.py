"""``trading``: every stage runnable without Airflow, calling the same functions the DAGs call.

trading ingest --source synthetic --start 2024-01-01 --end 2024-06-30
trading ingest --source csv --path data/sp500_daily_2013-02-08_2018-02-07.csv.gz --symbols AAPL,MSFT  # README: data
trading ingest --source csv --path bars_5m.csv --calendar XNYS --tz America/New_York   # intraday (docs/ingest.md)
trading datasets                 # recorded dataset versions
trading quarantine RUN_ID        # rejected rows of one ingest run, with rule and reason
trading features build --horizon 5 --threshold-k 0.5 --seq-len 30   # latest dataset -> feature set
trading features list            # recorded feature sets: samples per split, test majority rate
trading features show fs-...     # feature names by group, splits, class balance per split
trading train-forecaster --epochs 10 --ensemble-size 3   # latest feature set -> MLflow run + pyfunc model
trading hpo-forecaster --trials 8 --epochs 3             # Optuna search; --study/--worker to share one
trading train-agent --algo ensemble --forecaster-uri models:/m-...   # RL agent(s) on the latest feature set
trading train-agent --algo ppo --pure-rl --timesteps 20000          # the same without the forecaster
trading walk-forward --folds 3 --seeds 1,2                # every strategy retrained per fold, judged out of sample
trading db upgrade               # apply migrations to the app DB
trading demo                     # ingest, features and training DAGs, then the promotion gates (embedded default)
trading ui                       # Airflow + MLflow UIs on the local stores
trading info                     # the resolved settings, secrets masked
trading registry gates|approve|aliases, trading ab status|step, trading monitor check|list, trading audit
                                 # (see trading_core/cli_registry.py)
trading stream replay|tail       # bars to the live service over NATS, decisions back (trading_core/cli_stream.py)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trading_core import cli_registry, cli_stream
from trading_core.config import Settings, get_settings
from trading_core.errors import ConfigError, TradingError
from trading_core.security import redact_url

DEMO_CONF: dict[str, Any] = {
    "source": "synthetic",
    "symbols": [f"SYN{i:03d}" for i in range(8)],
    "start": "2022-01-03",
    "end": "2024-12-31",
    "defect_rate": 0.002,
}
DEMO_TRAINING_CONF: dict[str, Any] = {
    # Small enough for a 2-core laptop in a few minutes; the DAG's form has the full-size defaults.
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


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.data.ingest import ingest
    from trading_core.data.request import IngestRequest, ValidationPolicy

    fields = {k: v for k, v in vars(args).items() if k in IngestRequest.model_fields and v is not None}
    if args.columns:
        try:
            fields["columns"] = json.loads(args.columns)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--columns is not JSON ({exc}); e.g. --columns '{COLUMNS_EXAMPLE}'") from None
        if not isinstance(fields["columns"], dict):
            raise ConfigError(f"--columns must be a JSON object, e.g. --columns '{COLUMNS_EXAMPLE}'")
    try:
        request = IngestRequest(**fields, policy=ValidationPolicy(max_bad_share=args.max_bad_share))
    except ValidationError as exc:  # one line: field and message, without pydantic's URLs
        problems = (f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
        raise ConfigError("; ".join(problems)) from None
    result = ingest(request, settings)
    print(json.dumps(result.as_reference(), indent=2, default=str))
    return 0


COLUMNS_EXAMPLE = '{"timestamp": "Date/Time", "symbol": "Ticker", "adj_close": "Adj Close"}'


def _datasets(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    upgrade_database(settings.resolved_database_url)
    for d in lineage.list_datasets(settings.resolved_database_url, args.limit):
        print(
            f"{d.version}  {d.feed:<28} {d.interval:<4} {len(d.symbols):>4} symbols  "
            f"{d.start:%Y-%m-%d}..{d.end:%Y-%m-%d}  "
            f"{d.row_count:>8} rows  quarantined {d.rows_quarantined}  run {d.first_run_id}"
        )
    return 0


def _quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    url = settings.resolved_database_url
    upgrade_database(url)
    run = lineage.get_run(url, args.run_id)
    if run is None:
        print(f"no ingest run {args.run_id!r}", file=sys.stderr)
        return 1
    counts = lineage.quarantine_counts(url, run.id)
    outside = (run.report or {}).get("rows_outside_session") or 0
    filtered = f", {outside} outside the regular session (filtered)" if outside else ""
    print(f"run {run.id}: {run.status}, {run.rows_quarantined} of {run.rows_read} rows quarantined {counts}{filtered}")
    if run.error:
        print(f"error: {run.error}")
    for row in lineage.quarantined_rows(url, run.id, args.limit):
        print(f"  row {row.source_row}  {row.symbol}  {row.timestamp}  [{row.rule}] {row.reason}")
    return 0


FEATURE_FLAGS = (
    "horizon",
    "threshold_k",
    "entry",
    "vol_window",
    "seq_len",
    "val_fraction",
    "test_fraction",
    "embargo",
    "groups",
    "turbulence_window",
    "vol_regime_window",
    "corr_window",
)
"""Recipe flags of ``trading features build``: the features DAG's params of the same names."""


def _features_build(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database
    from trading_core.features import FeatureSetConfig, build_feature_set
    from trading_core.features.resolve import DEFAULT_SHARD_SIZE, resolve_dataset_version

    config = FeatureSetConfig.from_params({k: getattr(args, k) for k in FEATURE_FLAGS})
    upgrade_database(settings.resolved_database_url)
    version = resolve_dataset_version(args.dataset_version, [], settings)
    shard_size = DEFAULT_SHARD_SIZE if args.shard_size is None else args.shard_size
    result = build_feature_set(version, config, settings, shard_size, args.history)
    print(json.dumps({**result.as_reference(), "seconds": result.seconds, "reused": result.reused}, indent=2))
    return 0


def _features_list(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    upgrade_database(settings.resolved_database_url)
    print(
        f"{'feature_set_version':<23} {'dataset_version':<23} {'rows':>8} {'feats':>5} "
        f"{'train':>7} {'val':>6} {'test':>6} {'test_majority':>13}  created"
    )
    for fs in lineage.list_feature_sets(settings.resolved_database_url, args.limit):
        splits = fs.summary.get("splits", {})
        majority = fs.summary.get("class_balance", {}).get("test", {}).get("majority_rate")
        print(
            f"{fs.version:<23} {fs.dataset_version:<23} {fs.rows:>8} {fs.n_features:>5} "
            f"{splits.get('train', 0):>7} {splits.get('val', 0):>6} {splits.get('test', 0):>6} "
            f"{_pct(majority):>13}  {fs.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


def _pct(value: Any) -> str:
    return "-" if value is None or value != value else f"{100 * float(value):.1f}%"  # value != value: NaN


def _print_feature_set_summary(summary: dict[str, Any]) -> None:
    """Samples per split and class balance per split (shared by ``features show`` and the demo)."""
    splits = summary["splits"]
    print(
        f"splits          : train {splits['train']}, val {splits['val']} from {splits['val_start'][:10]}, "
        f"test {splits['test']} from {splits['test_start'][:10]} "
        f"(purged {splits['purged']}, embargoed {splits['embargoed']})"
    )
    print(f"class balance   : {'split':<6} {'labelled':>8} {'hold':>7} {'buy':>7} {'sell':>7}  majority (baseline)")
    for name, balance in summary["class_balance"].items():
        shares = [_pct(balance.get(f"{label}_share")) for label in ("hold", "buy", "sell")]
        print(
            f"{'':<18}{name:<6} {balance['labelled']:>8} {shares[0]:>7} {shares[1]:>7} {shares[2]:>7}  "
            f"{balance['majority_class'] or '-'} {_pct(balance['majority_rate'])}"
        )


def _features_show(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database

    upgrade_database(settings.resolved_database_url)
    fs = lineage.get_feature_set(settings.resolved_database_url, args.version)
    manifest, config = fs.manifest, fs.manifest["config"]
    labels, dataset = config["labels"], config["dataset"]
    print(f"feature set     : {fs.version}  ({fs.created_at:%Y-%m-%d %H:%M})")
    print(f"dataset_version : {fs.dataset_version}, {manifest['n_symbols']} symbols, {fs.rows} rows")
    print(f"path            : {fs.path}")
    print(
        f"labels          : horizon {labels['horizon']}, threshold_k {labels['threshold_k']}, "
        f"vol_window {labels['vol_window']}, entry {labels['entry']}"
    )
    print(
        f"windows         : seq_len {dataset['seq_len']}, val/test {dataset['val_fraction']}/"
        f"{dataset['test_fraction']}, embargo {dataset['embargo']}, clip {dataset['clip']}"
    )
    by_group: dict[str, list[str]] = {}
    for spec in manifest["features"]:
        by_group.setdefault(spec["group"], []).append(spec["name"])
    print(f"features        : {fs.n_features} in {len(by_group)} groups")
    for group, names in by_group.items():
        print(f"  {group} ({len(names)}): {', '.join(names)}")
    _print_feature_set_summary(fs.summary)
    return 0


FORECASTER_MODEL_FLAGS = ("ensemble_size", "lstm_units", "cnn_filters")
FORECASTER_TRAIN_FLAGS = ("epochs", "batch_size", "lr", "loss", "max_train_samples", "device", "seed")
"""Flags of ``trading train-forecaster``: overrides of ForecasterConfig / TrainConfig fields of the same names."""


def _train_forecaster(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import lineage, upgrade_database
    from trading_core.forecast.pipeline import train_forecaster

    version = args.feature_set_version
    if version is None:
        upgrade_database(settings.resolved_database_url)
        latest = lineage.latest_feature_set(settings.resolved_database_url)
        if latest is None:
            raise TradingError("no feature set recorded to train on: run `trading features build` first")
        version = latest.version
    model = {k: getattr(args, k) for k in FORECASTER_MODEL_FLAGS if getattr(args, k) is not None}
    if "cnn_filters" in model:
        model["cnn_filters"] = [c.strip() for c in model["cnn_filters"].split(",") if c.strip()]  # validated as ints
    train = {k: getattr(args, k) for k in FORECASTER_TRAIN_FLAGS if getattr(args, k) is not None}
    result = train_forecaster(version, settings, model=model, train=train, experiment=args.experiment)
    print(json.dumps(result.as_reference(), indent=2))
    _print_baseline_table(result.metrics)
    return 0


def _hpo_forecaster(args: argparse.Namespace, settings: Settings) -> int:
    """One HPO worker on a study (created or resumed); run several with the same --study and distinct
    --worker to search in parallel. Logs the study to MLflow and prints the best overrides."""
    import uuid

    from trading_core.forecast import hpo
    from trading_core.forecast.resolve import resolve_feature_set_version

    version = resolve_feature_set_version(args.feature_set_version, [], settings)
    study = args.study or hpo.study_name_for(version, f"cli:{uuid.uuid4().hex}")
    hpo.create_study(study, settings, feature_set_version=version, seed=args.seed)
    summary = hpo.run_hpo_worker(
        study,
        version,
        settings,
        args.trials,
        worker=args.worker,
        epochs=args.epochs,
        seed=args.seed,
        max_train_samples=args.max_train_samples,
        device=args.device,
    )
    summary["mlflow_run_id"] = hpo.log_study(study, settings)
    if summary["best_params"] is not None:
        summary["overrides"] = hpo.best_params(study, settings)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _train_agent(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.forecast.resolve import resolve_feature_set_version
    from trading_core.rl.pipeline import DEFAULT_MEMBERS, train_agent

    version = resolve_feature_set_version(args.feature_set_version, [], settings)
    env = _json_object(args.env_overrides, "--env-overrides")
    if args.episode_length is not None:
        env["episode_length"] = args.episode_length or None  # 0: the whole training period
    result = train_agent(
        version,
        settings,
        algo=args.algo,
        timesteps=args.timesteps,
        forecaster_uri=None if args.pure_rl else args.forecaster_uri,
        n_envs=args.n_envs,
        seed=args.seed,
        env=env,
        agent=_json_object(args.agent_overrides, "--agent-overrides"),
        members=[m.strip() for m in args.members.split(",") if m.strip()] if args.members else DEFAULT_MEMBERS,
        symbols=[s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None,
        device=args.device,
        threads=args.threads or None,
        experiment=args.experiment,
    )
    print(json.dumps(result.as_reference(), indent=2))
    return 0


def _walk_forward(args: argparse.Namespace, settings: Settings) -> int:
    """Walk-forward validation of every strategy on one feature set; prints the summary and the report path."""
    from trading_core.backtest.walkforward import WalkForwardConfig, run_walk_forward
    from trading_core.forecast.resolve import resolve_feature_set_version

    def items(text: str | None) -> list[str]:
        return [x.strip() for x in (text or "").split(",") if x.strip()]

    version = resolve_feature_set_version(args.feature_set_version, [], settings)
    values: dict[str, Any] = {"n_folds": args.folds, "test_size": args.test_size, "mode": args.mode,
                              "algo": args.algo, "timesteps": args.timesteps, "n_envs": args.n_envs}  # fmt: skip
    if args.train_size is not None:
        values["train_size"] = args.train_size
    if args.purge is not None:
        values["purge"] = args.purge
    if args.embargo is not None:
        values["embargo"] = args.embargo
    if args.seeds:
        values["seeds"] = [int(s) for s in items(args.seeds)]
    if args.members:
        values["members"] = items(args.members)
    if args.strategies:
        values["strategies"] = items(args.strategies)
    if args.symbols:
        values["symbols"] = items(args.symbols)
    if args.cost_multipliers:
        values["cost_multipliers"] = [float(m) for m in items(args.cost_multipliers)]
    defaults = WalkForwardConfig()
    forecaster = dict(defaults.forecaster)
    if args.ensemble_size is not None:
        forecaster["ensemble_size"] = args.ensemble_size
    training = dict(defaults.forecaster_train)
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if args.max_train_samples is not None:
        training["max_train_samples"] = args.max_train_samples
    env = _json_object(args.env_overrides, "--env-overrides")
    if args.episode_length is not None:
        env["episode_length"] = args.episode_length or None
    values |= {"forecaster": forecaster, "forecaster_train": training, "env": env,
               "agent": _json_object(args.agent_overrides, "--agent-overrides")}  # fmt: skip
    result = run_walk_forward(version, settings, WalkForwardConfig.model_validate(values), experiment=args.experiment)
    print(json.dumps(result.as_reference(), indent=2))
    if len(result.forecaster):
        print("\nforecaster (test windows):")
        print(result.forecaster.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    columns = ["strategy", "n", *[f"{m}_{s}" for m in ("sharpe", "total_return", "max_drawdown")
                                  for s in ("mean", "ci_low", "ci_high")]]  # fmt: skip
    print("\nsummary (chained out-of-sample curves, mean and 95% CI over seeds):")
    print(result.summary[[c for c in columns if c in result.summary.columns]].to_string(index=False,
          float_format=lambda x: f"{x:.4f}"))  # fmt: skip
    print(f"\nreport: {result.report.get('report')}")
    return 0


def _json_object(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {text!r}")
    return value


def _print_baseline_table(metrics: dict[str, float]) -> None:
    """Model vs majority class vs persistence on the test split, and the p-value against the majority rate."""
    columns = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc", "macro_f1": "macro-F1"}
    columns |= {"log_loss": "log-loss", "ece": "ECE"}
    print(f"\ntest split: {int(metrics['test_n'])} samples, majority class rate {_pct(metrics['test_majority_rate'])}")
    print(f"{'':<12}" + "".join(f"{title:>13}" for title in columns.values()))
    for row, prefix in (("model", "test_"), ("majority", "test_majority_"), ("persistence", "test_persistence_")):
        print(f"{row:<12}" + "".join(f"{metrics[prefix + c]:>13.4f}" for c in columns))
    print(f"p-value (model accuracy > majority rate, one-sided binomial): {metrics['p_value_vs_majority']:.4g}")


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
    _print_feature_set_summary(feature_set.summary)
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


def _db(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.db import upgrade_database

    upgrade_database(settings.resolved_database_url)
    print(f"app DB at head: {redact_url(settings.resolved_database_url)}")
    return 0


def _ui(args: argparse.Namespace, settings: Settings) -> int:
    from trading_core.embedded import start_ui

    start_ui(settings, args.airflow_port, args.mlflow_port)
    return 0


def _info(args: argparse.Namespace, settings: Settings) -> int:
    # Secrets masked: the app DB's password (redact_url) and the API key; a tracking URI may hold one too.
    data = settings.model_dump(mode="json")
    data["polygon_api_key"] = "***" if settings.polygon_api_key else None
    data.update(
        database_url=settings.safe_database_url,
        mlflow_tracking_uri=redact_url(settings.resolved_mlflow_tracking_uri),
        airflow_home=str(settings.resolved_airflow_home),
        lake_dir=str(settings.lake_dir),
    )
    print(json.dumps(data, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trading", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="fetch -> validate -> lake -> dataset_version")
    p.add_argument("--source", default="synthetic", choices=["synthetic", "csv", "yfinance", "polygon"])
    p.add_argument("--symbols", help="comma-separated tickers (default: all the source has)")
    p.add_argument("--start")
    p.add_argument("--end")
    p.add_argument("--interval", help="1d, 1h, 30m, 15m, 5m, 1m (default: a file's is inferred, else 1d)")
    p.add_argument("--path", help="file for --source csv")
    p.add_argument("--layout", default="auto")
    p.add_argument(
        "--columns",
        help=f"JSON column mapping for --source csv (completes the auto-detection), e.g. '{COLUMNS_EXAMPLE}'",
    )
    p.add_argument("--calendar", help="session calendar for gap checks (XNYS, 24/7, weekdays)")
    p.add_argument("--tz", help="zone of a file's naive timestamps (default: the calendar's; UTC for 24/7, weekdays)")
    p.add_argument(
        "--session",
        choices=["regular", "extended"],
        help="intraday exchange bars: regular filters pre/after-market bars (default), extended keeps them",
    )
    p.add_argument(
        "--adj-close",
        dest="adj_close",
        choices=["ignore", "use"],
        help="a file's adjusted close: ignore (default: raw prices) or use (prices scaled, feed csv-*-adj)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--n-assets", dest="n_assets", type=int)
    p.add_argument("--signal-strength", dest="signal_strength", type=float)
    p.add_argument("--defect-rate", dest="defect_rate", type=float)
    p.add_argument("--max-bad-share", dest="max_bad_share", type=float, default=0.05)
    p.set_defaults(func=_ingest)

    p = sub.add_parser("datasets", help="list recorded dataset versions")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_datasets)

    p = sub.add_parser("quarantine", help="show the rows an ingest run rejected")
    p.add_argument("run_id")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_quarantine)

    p = sub.add_parser("db", help="app DB maintenance")
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(func=_db)

    p = sub.add_parser("features", help="feature sets: build from a dataset, list, show")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="dataset_version -> feature_set_version (what the features DAG runs)")
    b.add_argument("--dataset-version", dest="dataset_version", help="default: the latest recorded dataset")
    b.add_argument("--horizon", type=int, help="label horizon in bars (default 5)")
    b.add_argument("--threshold-k", dest="threshold_k", type=float, help="Buy/Sell threshold in vol units (0.5)")
    b.add_argument("--entry", choices=["next_open", "close"], help="label entry price (next_open)")
    b.add_argument("--vol-window", dest="vol_window", type=int, help="bars of the label volatility (21)")
    b.add_argument("--seq-len", dest="seq_len", type=int, help="bars per forecaster window (30)")
    b.add_argument("--val-fraction", dest="val_fraction", type=float)
    b.add_argument("--test-fraction", dest="test_fraction", type=float)
    b.add_argument("--embargo", type=int, help="bars skipped after each split boundary (5)")
    b.add_argument("--groups", help="comma-separated: market,technical,regime,microstructure (all)")
    b.add_argument("--turbulence-window", dest="turbulence_window", type=int, help="(252)")
    b.add_argument("--vol-regime-window", dest="vol_regime_window", type=int, help="(252)")
    b.add_argument("--corr-window", dest="corr_window", type=int, help="(63)")
    b.add_argument("--shard-size", dest="shard_size", type=int, help="symbols per shard (100)")
    b.add_argument(
        "--history",
        choices=["full", "dataset"],
        default="full",
        help="full: the lake's whole history of the dataset's symbols up to its end (default); dataset: exactly it",
    )
    b.set_defaults(func=_features_build)
    b = actions.add_parser("list", help="recorded feature sets")
    b.add_argument("--limit", type=int, default=20)
    b.set_defaults(func=_features_list)
    b = actions.add_parser("show", help="one feature set: features by group, splits, class balance")
    b.add_argument("version")
    b.set_defaults(func=_features_show)

    p = sub.add_parser("train-forecaster", help="feature set -> trained forecaster ensemble in MLflow (pyfunc)")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    p.add_argument("--epochs", type=int, help="max epochs per member (20)")
    p.add_argument("--ensemble-size", dest="ensemble_size", type=int, help="members K (5)")
    p.add_argument("--lstm-units", dest="lstm_units", type=int, help="LSTM hidden size (32)")
    p.add_argument("--cnn-filters", dest="cnn_filters", help="comma-separated Conv1d channels, e.g. 32,64 (32)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="(256)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (0.002)")
    p.add_argument("--loss", choices=["weighted_ce", "focal"], help="class-imbalance loss (weighted_ce)")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int, help="cap per epoch (all)")
    p.add_argument("--device", help="auto (CUDA when present), cpu, cuda, cuda:1 (auto)")
    p.add_argument("--seed", type=int, help="(TRADING_SEED, 42)")
    p.add_argument("--experiment", default="forecaster", help="MLflow experiment (forecaster)")
    p.set_defaults(func=_train_forecaster)
    p = sub.add_parser("hpo-forecaster", help="Optuna search of the forecaster (one worker of a shared study)")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    p.add_argument("--study", help="study to create or resume (default: a new one); share it between workers")
    p.add_argument("--worker", type=int, default=0, help="worker index: seeds its sampler; distinct per process (0)")
    p.add_argument("--trials", type=int, default=8, help="trials of this worker (8)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (3)")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int, help="cap per epoch (all)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 (auto)")
    p.add_argument("--seed", type=int, default=42, help="(42)")
    p.set_defaults(func=_hpo_forecaster)

    p = sub.add_parser("train-agent", help="feature set (+ forecaster) -> trained RL agent(s) in MLflow")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    p.add_argument("--algo", default="ppo", choices=["ppo", "sac", "td3", "a2c", "ensemble"], help="(ppo)")
    p.add_argument("--members", help="comma-separated algorithms of --algo ensemble (sac,td3)")
    p.add_argument("--timesteps", type=int, default=100_000, help="env steps per agent (100000)")
    variant = p.add_mutually_exclusive_group(required=True)
    variant.add_argument("--forecaster-uri", dest="forecaster_uri", help="hybrid: a logged forecaster (models:/...) "
                         "or a Parquet/CSV of per-bar prob_hold, prob_buy, prob_sell, confidence")  # fmt: skip
    variant.add_argument("--pure-rl", dest="pure_rl", action="store_true", help="no forecaster inputs")
    p.add_argument("--n-envs", dest="n_envs", type=int, default=8, help="parallel portfolios in the vec env (8)")
    p.add_argument("--seed", type=int, help="(TRADING_SEED, 42)")
    p.add_argument("--episode-length", dest="episode_length", type=int, help="bars per episode; 0 = whole period (252)")
    p.add_argument("--symbols", help="comma-separated subset of the feature set's symbols (all)")
    p.add_argument("--env-overrides", dest="env_overrides", help='JSON EnvConfig fields, e.g. {"cost_bps": 2}')
    p.add_argument("--agent-overrides", dest="agent_overrides", help='JSON SB3 kwargs, e.g. {"learning_rate": 1e-4}')
    p.add_argument("--device", default="auto", help="auto (PPO/A2C on CPU, SAC/TD3 on CUDA when present), cpu, cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads; 0 = torch's default (1)")
    p.add_argument("--experiment", default="agent", help="MLflow experiment (agent)")
    p.set_defaults(func=_train_agent)

    p = sub.add_parser(
        "walk-forward", help="walk-forward validation: every strategy retrained per fold, judged out of sample"
    )
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    p.add_argument("--folds", type=int, default=3, help="(3)")
    p.add_argument("--test-size", dest="test_size", type=int, default=252, help="bars per test window (252)")
    p.add_argument("--mode", choices=["expanding", "rolling"], default="expanding", help="(expanding)")
    p.add_argument("--train-size", dest="train_size", type=int, help="bars per training window (rolling only)")
    p.add_argument("--purge", type=int, help="bars between training and test windows (the label horizon)")
    p.add_argument("--embargo", type=int, help="bars between consecutive test windows (0)")
    p.add_argument("--seeds", help="comma-separated seeds (0)")
    p.add_argument("--algo", default="ppo", choices=["ppo", "sac", "td3", "a2c"], help="pure/hybrid RL agents (ppo)")
    p.add_argument("--members", help="comma-separated algorithms of the ensemble agent (sac,td3)")
    p.add_argument("--timesteps", type=int, default=30_000, help="env steps per agent (30000)")
    p.add_argument("--n-envs", dest="n_envs", type=int, default=4, help="(4)")
    p.add_argument("--strategies", help="comma-separated subset of the six strategies (all)")
    p.add_argument("--symbols", help="comma-separated subset of the feature set's symbols (all)")
    p.add_argument("--cost-multipliers", dest="cost_multipliers", help="e.g. 1,2: back-test at these cost levels (1)")
    p.add_argument("--epochs", type=int, help="forecaster epochs per member (5)")
    p.add_argument("--ensemble-size", dest="ensemble_size", type=int, help="forecaster members (3)")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int, help="forecaster cap per epoch (30000)")
    p.add_argument("--episode-length", dest="episode_length", type=int, help="bars per training episode (252)")
    p.add_argument("--env-overrides", dest="env_overrides", help="JSON EnvConfig fields")
    p.add_argument("--agent-overrides", dest="agent_overrides", help="JSON SB3 kwargs")
    p.add_argument("--experiment", default="walk_forward", help="MLflow experiment (walk_forward)")
    p.set_defaults(func=_walk_forward)

    sub.add_parser(
        "demo", help="run the ingest, features and training DAGs, then the promotion gates, on the embedded default"
    ).set_defaults(func=_demo)

    p = sub.add_parser("ui", help="start Airflow standalone and MLflow UI on the local stores")
    p.add_argument("--airflow-port", type=int, default=8080)
    p.add_argument("--mlflow-port", type=int, default=5000)
    p.set_defaults(func=_ui)

    sub.add_parser("info", help="show the resolved settings").set_defaults(func=_info)
    cli_registry.add_parsers(sub)
    cli_stream.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # The platform never phones home: MLflow's usage telemetry stays off unless a user turns it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    settings: Settings | None = None
    try:
        settings = get_settings()
        if getattr(args, "model", "unset") is None:
            args.model = settings.model_name
        return int(args.func(args, settings))
    except (TradingError, ValidationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if not isinstance(exc, OperationalError):
            raise
        # Unreachable server, unknown database, refused login: a message naming the (redacted) URL.
        reason = (str(exc.orig or exc).strip().splitlines() or ["no reason given"])[0]
        where = settings.safe_database_url if settings is not None else "?"
        print(f"error: database unavailable: {reason} (app DB {where}, TRADING_DATABASE_URL)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
