"""The features DAG's form: the feature recipe (labels, windows, groups, regime windows) and the fan-out.

Kept beside ``features.py`` so the DAG file shows the pipeline. The defaults equal the library's
(``trading_core.features.config``), which tests/test_features_dag.py checks; the recipe becomes a
``FeatureSetConfig`` (``FeatureSetConfig.from_params``), which validates it again.
"""

from __future__ import annotations

from airflow.sdk import Param

FEATURE_GROUPS = ["market", "technical", "regime", "microstructure"]


def features_params() -> dict[str, Param]:
    """The features DAG's Params, fresh on each call (a DAG owns its Param objects)."""
    return {
        "dataset_version": Param(
            None,
            type=["null", "string"],
            pattern=r"^ds-[0-9a-f]{1,64}$",
            description="Dataset to read; empty = the triggering ohlcv event's, else the latest recorded.",
        ),
        "history": Param(
            "full",
            type="string",
            enum=["full", "dataset"],
            description="full: the lake's whole history of the dataset's symbols up to its end (a daily ingest "
            "announces a few days; the warm-ups need years); dataset: exactly the dataset.",
        ),
        "horizon": Param(5, type="integer", minimum=1, maximum=252, description="Label horizon h in bars."),
        "threshold_k": Param(
            0.5,
            type="number",
            minimum=0,
            maximum=10,
            description="Buy/Sell threshold k in units of the horizon's volatility (k * sigma * sqrt(h)).",
        ),
        "entry": Param(
            "next_open",
            type="string",
            enum=["next_open", "close"],
            description="Label entry price: the next bar's open (the platform's execution) or this close.",
        ),
        "vol_window": Param(21, type="integer", minimum=2, description="Bars of the label's volatility estimate."),
        "seq_len": Param(30, type="integer", minimum=1, maximum=1024, description="Bars per forecaster window."),
        "val_fraction": Param(0.15, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5),
        "test_fraction": Param(0.15, type="number", exclusiveMinimum=0, exclusiveMaximum=0.5),
        "embargo": Param(5, type="integer", minimum=0, description="Bars skipped after each split boundary."),
        "groups": Param(
            list(FEATURE_GROUPS),
            type="array",
            items={"type": "string", "enum": list(FEATURE_GROUPS)},
            minItems=1,
            uniqueItems=True,
            description="Feature groups to compute.",
        ),
        "turbulence_window": Param(
            252, type="integer", minimum=20, description="History of the turbulence index (bars)."
        ),
        "vol_regime_window": Param(
            252, type="integer", minimum=20, description="Window over which volatility is z-scored (regime)."
        ),
        "corr_window": Param(63, type="integer", minimum=5, description="Window of the rolling correlations."),
        "shard_size": Param(
            100, type="integer", minimum=1, maximum=10000, description="Symbols per mapped compute_shard task."
        ),
    }
