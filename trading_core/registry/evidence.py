"""Evidence readers shared by everything that judges or runs a registered version: the version's
:class:`~trading_core.registry.policy.TradingPolicy` bundle and the recent bars of its universe.

The governance gates (:mod:`.gates`), the A/B rollout (:mod:`trading_core.rollout.ab`) and the monitor
(:mod:`trading_core.monitoring.check`) all read the same two things; they live here, in the registry
layer, so that each of them imports downward only (docs/architecture.md). Heavy imports (the lake,
the policy with its torch forecaster) happen inside the functions, so importing this module is light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from trading_core.config import Settings
from trading_core.errors import TradingError


def recent_bars(settings: Settings, feed: str, interval: str, symbols: list[str], n_bars: int,
                end: pd.Timestamp | None = None) -> pd.DataFrame:  # fmt: skip
    """Each of ``symbols``' last ``n_bars`` bars (up to ``end``, inclusive) in the lake."""
    from trading_core.data.lake import Lake
    from trading_core.registry.policy import tail_bars

    bars = Lake(settings.lake_dir).read(feed, interval, symbols, end=end)
    return bars if bars.empty else tail_bars(bars, symbols, n_bars)


def load_version_policy(settings: Settings, name: str, version: str, dst: Path) -> Any:
    """Download version ``version`` of ``name`` and read its :class:`TradingPolicy` bundle (no pickle)."""
    from trading_core.registry.policy import TradingPolicy
    from trading_core.registry.pyfunc import ARTIFACT_KEY
    from trading_core.tracking import use_tracking_store

    uri = use_tracking_store(settings)  # models:/ URIs resolve through the global registry client
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(dst),
                                                     tracking_uri=uri))  # fmt: skip
    bundle = local / "artifacts" / ARTIFACT_KEY
    if not bundle.exists():
        raise TradingError(f"{name} v{version} is not a TradingPolicy (no artifacts/{ARTIFACT_KEY} in the model)")
    return TradingPolicy.load(bundle)
