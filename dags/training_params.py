"""The training DAG's form: every knob a user can set on a manual run, validated by JSON schema.

Kept beside ``training.py`` so the DAG file shows the pipeline; defaults equal the library's
(TrainingPlan, TrainConfig, ForecasterConfig), which tests/test_training_dag.py checks.
"""

from __future__ import annotations

from airflow.sdk import Param

TRAINING_PARAMS = {
    "feature_set_version": Param(
        None,
        type=["null", "string"],
        pattern=r"^fs-[0-9a-f]{1,64}$",
        description="Feature set to train on; empty = the triggering features event's, else the latest recorded.",
    ),
    "hpo_workers": Param(
        2, type="integer", minimum=0, maximum=64, description="Mapped HPO tasks sharing the study; 0 = no search."
    ),
    "hpo_trials_per_worker": Param(4, type="integer", minimum=1, maximum=1000, description="Trials per worker."),
    "hpo_epochs": Param(3, type="integer", minimum=1, maximum=200, description="Epochs of each HPO trial."),
    "epochs": Param(20, type="integer", minimum=1, maximum=1000, description="Epochs of each final member."),
    "ensemble_size": Param(5, type="integer", minimum=1, maximum=50, description="Members of the ensemble."),
    "max_train_samples": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        description="Training samples per epoch (a random subset each epoch); empty = all.",
    ),
    "device": Param(
        "auto",
        type="string",
        pattern=r"^(auto|cpu|cuda(:[0-9]{1,2})?)$",
        description="auto = CUDA when the worker has it (bf16 AMP), else CPU.",
    ),
    "seed": Param(42, type="integer", minimum=0, description="Seed of the sampler, initial weights and batches."),
    # Data: empty source = train on an existing feature set (params, triggering event, latest).
    "source": Param(
        None,
        type=["null", "string"],
        enum=[None, "synthetic", "csv"],
        description="Ingest this source first (then build features); empty = existing feature set.",
    ),
    "symbols": Param(
        [],
        type="array",
        items={"type": "string", "pattern": r"^[A-Za-z0-9^][A-Za-z0-9.\-_=/:^]{0,39}$"},
        description="Universe (empty = all the source or feature set has).",
    ),
    "start": Param(None, type=["null", "string"], format="date", description="First date to ingest."),
    "end": Param(None, type=["null", "string"], format="date", description="Last date to ingest."),
    "path": Param(None, type=["null", "string"], description="File for source=csv."),
    "n_assets": Param(8, type="integer", minimum=1, maximum=2000, description="Synthetic universe size."),
    "signal_strength": Param(0.05, type="number", minimum=0, maximum=0.99, description="Synthetic signal."),
    # RL agent and validation.
    "algo": Param("ppo", type="string", enum=["ppo", "sac", "td3", "a2c", "ensemble"], description="RL agent."),
    "timesteps": Param(20000, type="integer", minimum=100, maximum=100_000_000, description="Agent env steps."),
    "n_envs": Param(8, type="integer", minimum=1, maximum=1024, description="Portfolios in the vec env."),
    "cost_bps": Param(1.0, type="number", minimum=0, maximum=1000, description="Commission, bps of notional."),
    "slippage_bps": Param(2.0, type="number", minimum=0, maximum=1000, description="Slippage, bps."),
    "folds": Param(3, type="integer", minimum=1, maximum=50, description="Walk-forward folds."),
    "test_size": Param(63, type="integer", minimum=5, maximum=5000, description="Bars per out-of-sample fold."),
    "seeds": Param(
        [0, 1],
        type="array",
        items={"type": "integer", "minimum": 0},
        minItems=1,
        description="Walk-forward seeds (mean and 95% CI over them).",
    ),
    "wf_timesteps": Param(10000, type="integer", minimum=100, description="Agent env steps per fold."),
    "wf_epochs": Param(5, type="integer", minimum=1, description="Forecaster epochs per fold."),
    "model_name": Param(
        None,
        type=["null", "string"],
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Registered model of the candidate version; empty = TRADING_MODEL_NAME (trading-policy).",
    ),
    "trigger_reason": Param(
        None, type=["null", "string"], description="Why this run started (the drift monitor writes its finding here)."
    ),
    "drift_check_id": Param(
        None, type=["null", "string", "integer"], description="The drift_checks row that triggered this run."
    ),
}
