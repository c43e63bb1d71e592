"""The Parquet feature store under ``<home>/features/<feature_set_version>/``.

    manifest.json     names, parameters, versions (see manifest.py)
    features.parquet  timestamp, symbol, raw features (float32), label columns
    matrix.npy        scaled features, float32, rows in features.parquet order (memory-mappable)
    samples.parquet   one row per training sample: end row, symbol, timestamp, label, fwd_ret, split
    scaler.json       the standardisation fitted on the training rows
    summary.json      split boundaries and counts, class balance per split

A set is written to a temporary directory and renamed into place, so readers never see half a
set; writing an existing version is a no-op (same inputs, same content).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from trading_core.errors import DatasetNotFound
from trading_core.features.scaling import StandardScaler
from trading_core.features.splits import SPLIT_NAMES
from trading_core.features.windows import WindowedDataset

VERSION_PREFIX = "fs-"
_VERSION_RE = re.compile(rf"{VERSION_PREFIX}[A-Za-z0-9]{{1,64}}")


@dataclass
class FeatureSetFiles:
    """What a build hands to the store."""

    manifest: dict[str, Any]
    features: pd.DataFrame
    matrix: np.ndarray
    samples: pd.DataFrame
    scaler: StandardScaler
    summary: dict[str, Any]


class FeatureSet:
    """A stored feature set, read lazily: the matrix is memory-mapped, Parquet columns on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: dict[str, Any] = json.loads((path / "manifest.json").read_text())
        self.summary: dict[str, Any] = json.loads((path / "summary.json").read_text())
        self.scaler = StandardScaler.load(path / "scaler.json")
        self._samples: pd.DataFrame | None = None

    @property
    def version(self) -> str:
        return str(self.manifest["feature_set_version"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    @property
    def seq_len(self) -> int:
        return int(self.manifest["config"]["dataset"]["seq_len"])

    @property
    def matrix(self) -> np.ndarray:
        """Scaled features (rows x features), memory-mapped read-only."""
        return np.load(self.path / "matrix.npy", mmap_mode="r")

    @property
    def samples(self) -> pd.DataFrame:
        if self._samples is None:
            self._samples = pd.read_parquet(self.path / "samples.parquet")
        return self._samples

    def features(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Raw (unscaled) features and labels; only the requested columns are read."""
        wanted = (
            None
            if columns is None
            else ["timestamp", "symbol", *[c for c in columns if c not in ("timestamp", "symbol")]]
        )
        return pq.read_table(self.path / "features.parquet", columns=wanted).to_pandas()

    def split(self, name: str) -> WindowedDataset:
        """Windows of one split ('train', 'val', 'test')."""
        codes = {v: k for k, v in SPLIT_NAMES.items()}
        if name not in codes:
            raise ValueError(f"unknown split {name!r}; expected one of {sorted(codes)}")
        rows = self.samples[self.samples["split"] == codes[name]]
        return WindowedDataset(
            self.matrix, rows["row"].to_numpy(), rows["label"].to_numpy(), rows["fwd_ret"].to_numpy(), self.seq_len
        )


class FeatureStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, version: str) -> Path:
        # ASCII letters and digits only (str.isalnum() also takes other scripts): one path component.
        if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
            raise DatasetNotFound(f"{version!r} is not a feature set version (expected fs-<hex>)")
        return self.root / version

    def exists(self, version: str) -> bool:
        return (self.path(version) / "summary.json").exists()

    def open(self, version: str) -> FeatureSet:
        if not self.exists(version):
            raise DatasetNotFound(f"feature set {version} is not in the store at {self.root}")
        return FeatureSet(self.path(version))

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.name.startswith(VERSION_PREFIX) and (p / "summary.json").exists()
        )

    def write(self, files: FeatureSetFiles) -> Path:
        version = str(files.manifest["feature_set_version"])
        target = self.path(version)
        if self.exists(version):
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            (tmp / "manifest.json").write_text(json.dumps(files.manifest, indent=1, default=str))
            # Dictionary-encoding float columns costs 3x the write time and saves nothing.
            files.features.to_parquet(
                tmp / "features.parquet",
                index=False,
                compression="zstd",
                compression_level=1,
                use_dictionary=["symbol"],
            )
            np.save(tmp / "matrix.npy", np.ascontiguousarray(files.matrix, dtype=np.float32))
            files.samples.to_parquet(tmp / "samples.parquet", index=False)
            files.scaler.save(tmp / "scaler.json")
            (tmp / "summary.json").write_text(json.dumps(files.summary, indent=1, default=str))
            if target.exists():  # a half-written leftover without summary.json
                shutil.rmtree(target)
            try:
                os.replace(tmp, target)
            except OSError:
                if not self.exists(version):  # not a concurrent writer of the same content
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target
