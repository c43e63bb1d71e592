"""One monitoring check of a deployed policy version: feature drift, prediction drift, performance decay.

:func:`run_check` is what the ``drift_monitor`` DAG, the CLI and the tests call:

1. the version (default: the ``champion``) and its bundle (the policy computes its own features);
2. **feature drift**: the last ``window`` bars of the universe in the lake, as of ``as_of``, against
   the training reference sample stored with the version (Evidently, :func:`.drift.feature_drift`);
3. **prediction drift**: the forecaster's class probabilities over the same recent bars against its
   probabilities over the training period (:func:`.drift.prediction_drift`);
4. **performance decay**: the version's paper-trading returns (its A/B account) against its
   walk-forward Sharpe (:func:`.decay.performance_decay`); not measured when it never traded;
5. the decision (``ok`` / ``drift`` / ``decay`` / ``drift+decay``), a row in ``drift_checks``, and an
   MLflow run in experiment ``monitoring`` with the HTML report and the per-column scores.

**Calibrated thresholds.** Rolling-window features are autocorrelated, so a per-column K-S test
flags most columns of a stationary window, and a fixed distance threshold fits no feature in
particular (:mod:`.calibration`). The check therefore recomputes the features over the whole training
period and calibrates one normed-Wasserstein threshold per column on windows of the same length
(:func:`.calibration.calibrate`); Evidently then runs its ``wasserstein`` test with those thresholds,
and dataset drift is a drifted share of at least ``drift_share`` (governance ``max_drift_share``).
The forecaster's class probabilities are calibrated the same way, on its output over the training
period.

Retraining is decided here too (``should_retrain``), with a **cooldown**: a drift alarm within
``cooldown_days`` of the last check that triggered a retraining does not trigger another.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from trading_core import tracking
from trading_core.config import Settings
from trading_core.db import upgrade_database
from trading_core.errors import DataQualityError, TradingError

log = logging.getLogger(__name__)

EXPERIMENT = "monitoring"
DEFAULT_WINDOW = 63
PROB_COLUMNS = ["prob_hold", "prob_buy", "prob_sell"]


@dataclass(frozen=True)
class CheckOutcome:
    check_id: int
    model_name: str
    version: str
    decision: str
    reason: str
    should_retrain: bool
    window_start: str | None
    window_end: str | None
    drift_share: float | None
    prediction_drift_share: float | None
    decay: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    drifted_columns: list[str] = field(default_factory=list)
    """Features whose distance crossed their calibrated threshold."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def run_check(
    settings: Settings, name: str, version: str | None = None, *, as_of: Any = None,
    window: int = DEFAULT_WINDOW, drift_share: float | None = None, cooldown_days: float = 20.0,
    actor: str | None = None,
) -> CheckOutcome:  # fmt: skip
    """Check ``name`` v``version`` (default: the champion) as of ``as_of`` (default: the newest bar)."""
    from trading_core.monitoring.calibration import METHOD as CALIBRATED_METHOD
    from trading_core.monitoring.calibration import calibrate
    from trading_core.monitoring.decay import performance_decay
    from trading_core.monitoring.drift import feature_drift, prediction_drift
    from trading_core.monitoring.store import last_trigger, record_check
    from trading_core.registry.aliases import CHAMPION, alias_version, client_for
    from trading_core.registry.evidence import load_version_policy, recent_bars
    from trading_core.registry.governance import GovernancePolicy
    from trading_core.registry.reference import SAMPLE_FILE
    from trading_core.rollout.accounts import paper_returns

    url = settings.resolved_database_url
    upgrade_database(url)
    client = client_for(settings)
    version = version or alias_version(client, name, CHAMPION)
    if not version:
        raise TradingError(f"{name} has no champion to monitor; pass a version")
    threshold = (
        drift_share
        if drift_share is not None
        else GovernancePolicy.from_yaml(settings.governance_policy).max_drift_share
    )
    end = _utc(as_of) if as_of is not None else None
    with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
        policy = load_version_policy(settings, name, str(version), Path(tmp) / "model")
        lineage = policy.spec.lineage
        feed, interval = lineage.get("feed", ""), lineage.get("interval", "1d")
        if policy.reference_dir is None or not (policy.reference_dir / SAMPLE_FILE).exists():
            raise DataQualityError(f"{name} v{version} stores no reference sample")
        reference = pd.read_parquet(policy.reference_dir / SAMPLE_FILE)
        bars = recent_bars(settings, feed, interval, policy.universe, policy.min_history + window, end)
        features = policy.features(policy.validate_bars(bars))
        stamps = np.sort(features["timestamp"].unique())[-window:]
        current = features[features["timestamp"].isin(stamps)]
        names = policy.feature_names
        ref_stamps = pd.to_datetime(reference["timestamp"], utc=True)
        ref_start, ref_end = ref_stamps.min(), ref_stamps.max()
        span = policy.min_history + int(ref_stamps.nunique())
        training = policy.features(policy.validate_bars(
            recent_bars(settings, feed, interval, policy.universe, span, ref_end)))  # fmt: skip
        training = training[pd.to_datetime(training["timestamp"], utc=True) >= ref_start]
        calibration = calibrate(reference, training, names, window)
        html = Path(tmp) / "feature_drift.html"
        drift = feature_drift(reference, current, names, drift_share=threshold, html_path=html,
                              method=CALIBRATED_METHOD, threshold=calibration.thresholds)  # fmt: skip

        prediction, prediction_calibration = None, None
        if policy.forecaster is not None:
            ref_probs = policy.forecast(training, last=len(training))
            cur_probs = policy.forecast(features, last=window)
            prediction_calibration = calibrate(ref_probs, ref_probs, PROB_COLUMNS, window)
            prediction = prediction_drift(
                ref_probs[PROB_COLUMNS], cur_probs[PROB_COLUMNS], drift_share=threshold, include_label=False,
                method=CALIBRATED_METHOD, threshold=prediction_calibration.thresholds,
            )  # fmt: skip

        tags = dict(client.get_model_version(name, str(version)).tags)
        validation = tags.get("metric.wf_hybrid_rl_sharpe_mean")
        returns = paper_returns(url, name, str(version))
        decay = (
            performance_decay(returns, validation_sharpe=float(validation) if validation else None)
            if returns is not None
            else None
        )
        drifted = drift.dataset_drift or bool(prediction and prediction.dataset_drift)
        decayed = bool(decay and decay.decayed)
        decision = "drift+decay" if drifted and decayed else "drift" if drifted else "decay" if decayed else "ok"
        reasons = [
            f"feature drift: {len(drift.drifted_columns)} of {len(drift.columns)} columns drifted (share "
            f"{drift.drift_share:.3f}, drift at {threshold:.2f}; per-column thresholds calibrated on "
            f"{calibration.n_windows} training-period windows of {window} bars)"
            + (f": {', '.join(drift.drifted_columns[:8])}" if drift.drifted_columns else ""),
        ]
        if prediction is not None:
            drifted_probs = ", ".join(prediction.drifted_columns) or "none"
            reasons.append(f"prediction drift: share {prediction.drift_share:.3f} ({drifted_probs})")
        reasons.append(
            "; ".join(decay.reasons) if decay else "performance decay: not measured (the version never paper-traded)"
        )
        window_start, window_end = _utc(stamps[0]), _utc(stamps[-1])
        should_retrain = decision != "ok"
        if should_retrain:
            previous = last_trigger(url, name)
            if previous is not None and previous.window_end is not None:
                age = _utc(window_end) - _utc(previous.window_end)
                if age < pd.Timedelta(days=cooldown_days):
                    should_retrain = False
                    reasons.append(
                        f"cooldown: check {previous.id} triggered {previous.triggered_run} {age.days} days ago"
                    )
        reason = " | ".join(reasons)
        run_id = _log_check(settings, name, str(version), drift, prediction, decay, decision, html)
        check_id = record_check(
            url, model_name=name, version=str(version), window_start=window_start.to_pydatetime(),
            window_end=window_end.to_pydatetime(), drift=drift, prediction=prediction, decay=decay,
            decision=decision, reason=reason, mlflow_run_id=run_id,
            details={"actor": actor, "should_retrain": should_retrain, "window": window,
                     "calibration": calibration.as_dict(),
                     "prediction_calibration": prediction_calibration.as_dict() if prediction_calibration else None},
        )  # fmt: skip
    log.info("monitoring %s v%s: %s (%s)", name, version, decision, reason)
    return CheckOutcome(
        check_id, name, str(version), decision, reason, should_retrain, str(window_start.date()),
        str(window_end.date()), drift.drift_share, prediction.drift_share if prediction else None,
        decay.as_dict() if decay else {}, run_id, list(drift.drifted_columns),
    )  # fmt: skip


def _log_check(settings: Settings, name: str, version: str, drift: Any, prediction: Any, decay: Any,
               decision: str, html: Path) -> str:  # fmt: skip
    """An MLflow run in experiment ``monitoring``: the HTML report, per-column scores, the decision."""
    tracking.use_tracking_store(settings)
    experiment_id = tracking.ensure_experiment(EXPERIMENT, settings)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tags({"model_name": name, "model_version": version, "decision": decision})
        metrics = {"drift_share": drift.drift_share}
        metrics |= {f"drift_score.{c.column}": c.score for c in drift.columns if np.isfinite(c.score)}
        if prediction is not None:
            metrics["prediction_drift_share"] = prediction.drift_share
        if decay is not None and decay.sharpe is not None:
            metrics["paper_sharpe"] = decay.sharpe
        mlflow.log_metrics(metrics)
        if html.exists():
            mlflow.log_artifact(str(html), artifact_path="reports")
        return str(run.info.run_id)
