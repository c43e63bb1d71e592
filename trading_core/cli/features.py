"""``trading features build|list|show``: feature sets from a dataset (what the features DAG runs), and what they hold.

trading features build --horizon 5 --threshold-k 0.5 --seq-len 30   # latest dataset -> feature set
trading features list            # recorded feature sets: samples per split, test majority rate
trading features show fs-...     # feature names by group, splits, class balance per split
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from trading_core.cli.common import pct
from trading_core.config import Settings

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
            f"{pct(majority):>13}  {fs.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


def print_feature_set_summary(summary: dict[str, Any]) -> None:
    """Samples per split and class balance per split (shared by ``features show`` and the demo)."""
    splits = summary["splits"]
    print(
        f"splits          : train {splits['train']}, val {splits['val']} from {splits['val_start'][:10]}, "
        f"test {splits['test']} from {splits['test_start'][:10]} "
        f"(purged {splits['purged']}, embargoed {splits['embargoed']})"
    )
    print(f"class balance   : {'split':<6} {'labelled':>8} {'hold':>7} {'buy':>7} {'sell':>7}  majority (baseline)")
    for name, balance in summary["class_balance"].items():
        shares = [pct(balance.get(f"{label}_share")) for label in ("hold", "buy", "sell")]
        print(
            f"{'':<18}{name:<6} {balance['labelled']:>8} {shares[0]:>7} {shares[1]:>7} {shares[2]:>7}  "
            f"{balance['majority_class'] or '-'} {pct(balance['majority_rate'])}"
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
    print_feature_set_summary(fs.summary)
    return 0


def add_parsers(sub: Any) -> None:
    """Register ``features build|list|show``."""
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
