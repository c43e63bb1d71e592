"""``trading train-forecaster|hpo-forecaster|train-agent|walk-forward``: the training stages by hand.

trading train-forecaster --epochs 10 --ensemble-size 3   # latest feature set -> MLflow run + pyfunc model
trading hpo-forecaster --trials 8 --epochs 3             # Optuna search; --study/--worker to share one
trading train-agent --algo ensemble --forecaster-uri models:/m-...   # RL agent(s) on the latest feature set
trading train-agent --algo ppo --pure-rl --timesteps 20000          # the same without the forecaster
trading walk-forward --folds 3 --seeds 1,2                # every strategy retrained per fold, judged out of sample

The flags the training DAG's form also has (epochs, trials, timesteps, n_envs, folds, test size, seeds,
device, seed...) take their defaults, types, choices and help from
:class:`~trading_core.training_config.TrainingConfig` (:func:`~trading_core.cli.options.training_option`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trading_core.cli.common import items, json_object, pct
from trading_core.cli.options import training_option
from trading_core.config import Settings
from trading_core.errors import TradingError

FORECASTER_MODEL_FLAGS = ("ensemble_size", "lstm_units", "cnn_filters")
FORECASTER_TRAIN_FLAGS = ("epochs", "batch_size", "lr", "loss", "max_train_samples", "device", "cpu_threads", "seed")
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
        cpu_threads=args.cpu_threads,
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
    env = json_object(args.env_overrides, "--env-overrides")
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
        agent=json_object(args.agent_overrides, "--agent-overrides"),
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
    env = json_object(args.env_overrides, "--env-overrides")
    if args.episode_length is not None:
        env["episode_length"] = args.episode_length or None
    values |= {"forecaster": forecaster, "forecaster_train": training, "env": env,
               "agent": json_object(args.agent_overrides, "--agent-overrides")}  # fmt: skip
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


def _print_baseline_table(metrics: dict[str, float]) -> None:
    """Model vs majority class vs persistence on the test split, and the p-value against the majority rate."""
    columns = {"accuracy": "accuracy", "balanced_accuracy": "balanced acc", "macro_f1": "macro-F1"}
    columns |= {"log_loss": "log-loss", "ece": "ECE"}
    print(f"\ntest split: {int(metrics['test_n'])} samples, majority class rate {pct(metrics['test_majority_rate'])}")
    print(f"{'':<12}" + "".join(f"{title:>13}" for title in columns.values()))
    for row, prefix in (("model", "test_"), ("majority", "test_majority_"), ("persistence", "test_persistence_")):
        print(f"{row:<12}" + "".join(f"{metrics[prefix + c]:>13.4f}" for c in columns))
    print(f"p-value (model accuracy > majority rate, one-sided binomial): {metrics['p_value_vs_majority']:.4g}")


def add_parsers(sub: Any) -> None:
    """Register ``train-forecaster``, ``hpo-forecaster``, ``train-agent`` and ``walk-forward``."""
    p = sub.add_parser("train-forecaster", help="feature set -> trained forecaster ensemble in MLflow (pyfunc)")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    training_option(p, "--epochs", "epochs", help_text="max epochs per member")
    training_option(p, "--ensemble-size", "ensemble_size", help_text="members K")
    p.add_argument("--lstm-units", dest="lstm_units", type=int, help="LSTM hidden size (32)")
    p.add_argument("--cnn-filters", dest="cnn_filters", help="comma-separated Conv1d channels, e.g. 32,64 (32)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="(256)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (0.002)")
    p.add_argument("--loss", choices=["weighted_ce", "focal"], help="class-imbalance loss (weighted_ce)")
    training_option(p, "--max-train-samples", "max_train_samples", help_text="cap per epoch (all)")
    training_option(p, "--device", "device", help_text="auto (CUDA when present), cpu, cuda, cuda:1")
    training_option(p, "--cpu-threads", "cpu_threads")
    training_option(p, "--seed", "seed")
    p.add_argument("--experiment", default="forecaster", help="MLflow experiment (forecaster)")
    p.set_defaults(func=_train_forecaster)

    p = sub.add_parser("hpo-forecaster", help="Optuna search of the forecaster (one worker of a shared study)")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    p.add_argument("--study", help="study to create or resume (default: a new one); share it between workers")
    p.add_argument("--worker", type=int, default=0, help="worker index: seeds its sampler; distinct per process (0)")
    training_option(p, "--trials", "hpo_trials_per_worker", help_text="trials of this worker")
    training_option(p, "--epochs", "hpo_epochs", help_text="epochs per trial")
    training_option(p, "--max-train-samples", "max_train_samples", help_text="cap per epoch (all)")
    training_option(p, "--device", "device", help_text="auto (CUDA when present), cpu, cuda, cuda:1")
    training_option(p, "--cpu-threads", "cpu_threads")
    training_option(p, "--seed", "seed")
    p.set_defaults(func=_hpo_forecaster)

    p = sub.add_parser("train-agent", help="feature set (+ forecaster) -> trained RL agent(s) in MLflow")
    p.add_argument("--feature-set-version", dest="feature_set_version", help="default: the latest recorded feature set")
    training_option(p, "--algo", "algo")
    p.add_argument("--members", help="comma-separated algorithms of --algo ensemble (sac,td3)")
    training_option(p, "--timesteps", "timesteps", help_text="env steps per agent")
    variant = p.add_mutually_exclusive_group(required=True)
    variant.add_argument("--forecaster-uri", dest="forecaster_uri", help="hybrid: a logged forecaster (models:/...) "
                         "or a Parquet/CSV of per-bar prob_hold, prob_buy, prob_sell, confidence")  # fmt: skip
    variant.add_argument("--pure-rl", dest="pure_rl", action="store_true", help="no forecaster inputs")
    training_option(p, "--n-envs", "n_envs", help_text="parallel portfolios in the vec env")
    training_option(p, "--seed", "seed")
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
    training_option(p, "--folds", "folds")
    training_option(p, "--test-size", "test_size", help_text="bars per test window")
    p.add_argument("--mode", choices=["expanding", "rolling"], default="expanding", help="(expanding)")
    p.add_argument("--train-size", dest="train_size", type=int, help="bars per training window (rolling only)")
    p.add_argument("--purge", type=int, help="bars between training and test windows (the label horizon)")
    p.add_argument("--embargo", type=int, help="bars between consecutive test windows (0)")
    training_option(p, "--seeds", "seeds", help_text="comma-separated seeds")
    training_option(p, "--algo", "algo", help_text="pure/hybrid RL agents", choices=["ppo", "sac", "td3", "a2c"])
    p.add_argument("--members", help="comma-separated algorithms of the ensemble agent (sac,td3)")
    training_option(p, "--timesteps", "wf_timesteps", help_text="env steps per agent")
    training_option(p, "--n-envs", "n_envs")
    p.add_argument("--strategies", help="comma-separated subset of the six strategies (all)")
    p.add_argument("--symbols", help="comma-separated subset of the feature set's symbols (all)")
    p.add_argument("--cost-multipliers", dest="cost_multipliers", help="e.g. 1,2: back-test at these cost levels (1)")
    training_option(p, "--epochs", "wf_epochs", help_text="forecaster epochs per member")
    p.add_argument("--ensemble-size", dest="ensemble_size", type=int, help="forecaster members (3)")
    p.add_argument("--max-train-samples", dest="max_train_samples", type=int, help="forecaster cap per epoch (30000)")
    p.add_argument("--episode-length", dest="episode_length", type=int, help="bars per training episode (252)")
    p.add_argument("--env-overrides", dest="env_overrides", help="JSON EnvConfig fields")
    p.add_argument("--agent-overrides", dest="agent_overrides", help="JSON SB3 kwargs")
    p.add_argument("--experiment", default="walk_forward", help="MLflow experiment (walk_forward)")
    p.set_defaults(func=_walk_forward)
