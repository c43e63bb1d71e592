"""Tables of the app DB. Lineage of every ingest, and the rows it rejected.

* ``ingest_runs``: one row per ingest attempt, successful or not (who asked for what, counts,
  the validation report, the error if it failed). Failed runs are kept: their quarantine explains why.
* ``quarantined_rows``: each rejected input row with its rule, reason, source position and raw values.
* ``datasets``: one row per distinct ``dataset_version`` (content hash of a lake slice), pointing at
  the run that first produced it; re-ingesting identical content finds the existing row.
* ``feature_sets``: one row per ``feature_set_version`` and the dataset it was computed from.
* ``audit_events``: every governance decision (gates, aliases, A/B verdicts, promotions, rollbacks).
* ``ab_tests``: one row per A/B test of a challenger against the champion, its pre-declared rule and verdict.
* ``paper_accounts``, ``paper_decisions``, ``paper_fills``, ``paper_equity``: the A/B paper-trading
  books, one account per (A/B test, arm); enough to replay every fill and mark (see
  :mod:`trading_core.rollout.broker`).
* ``drift_checks``: one row per drift / performance-decay check of a model, its verdict and the training run it
  started, if any (see :mod:`trading_core.monitoring.store`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    feed: Mapped[str] = mapped_column(String(128))
    interval: Mapped[str] = mapped_column(String(8))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """running | succeeded | failed"""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows_read: Mapped[int | None] = mapped_column(Integer)
    rows_clean: Mapped[int | None] = mapped_column(Integer)
    rows_quarantined: Mapped[int | None] = mapped_column(Integer)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    dataset_version: Mapped[str | None] = mapped_column(String(80), index=True)

    quarantined: Mapped[list[QuarantinedRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


class QuarantinedRow(Base):
    __tablename__ = "quarantined_rows"
    __table_args__ = (Index("ix_quarantined_rows_run_rule", "run_id", "rule"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("ingest_runs.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rule: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    source_row: Mapped[int | None] = mapped_column(BigInteger)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)

    run: Mapped[IngestRun] = relationship(back_populates="quarantined")


class Dataset(Base):
    __tablename__ = "datasets"

    version: Mapped[str] = mapped_column(String(80), primary_key=True)
    feed: Mapped[str] = mapped_column(String(128))
    interval: Mapped[str] = mapped_column(String(8))
    symbols: Mapped[list[str]] = mapped_column(JSON)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_count: Mapped[int] = mapped_column(Integer)
    first_run_id: Mapped[str] = mapped_column(ForeignKey("ingest_runs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    """source, request, quarantine counts, calendar: how the content came to be."""
    rows_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    bad_share: Mapped[float] = mapped_column(Float, default=0.0)


class FeatureSet(Base):
    """One row per ``feature_set_version``: which dataset it was computed from, where it lives, and
    what it holds (manifest, split sizes, class balance) so the registry can trace a model to it."""

    __tablename__ = "feature_sets"

    version: Mapped[str] = mapped_column(String(80), primary_key=True)
    dataset_version: Mapped[str] = mapped_column(ForeignKey("datasets.version"), index=True)
    path: Mapped[str] = mapped_column(Text)
    n_features: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Split boundaries and sizes, class balance per split."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """One governance decision: which gate/alias/A-B step decided what about which model version, why,
    and who (a person or an Airflow task) decided it. Rows are only ever added."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    event: Mapped[str] = mapped_column(String(64), index=True)
    """gate.governance | gate.drift | gate.approval | alias.challenger | alias.champion | ab.start | ab.decision |
    promote | rollback | restore ..."""
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(32))
    """passed | failed | approved | rejected | timeout | promote | rollback | wait ..."""
    reasons: Mapped[list[str]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(200))
    """Who or what decided: ``airflow:<dag>/<run>/<task>`` or a reviewer's name."""
    dag_run: Mapped[str | None] = mapped_column(String(250))


class ABTest(Base):
    """One A/B test: which versions, the rule declared at its start (:class:`trading_core.rollout.ab.ABConfig`),
    the first bar it trades after, and how it ended. Its arms are the paper accounts ``f"{id}:{arm}"``."""

    __tablename__ = "ab_tests"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    champion_version: Mapped[str] = mapped_column(String(32))
    challenger_version: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    """running | promoted | rolled_back | superseded (a newer challenger replaced it)"""
    start_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The sequential rule's verdict (:meth:`SequentialResult.as_dict`) that closed the test."""


class PaperAccount(Base):
    """One arm of an A/B test: the model version it trades, its universe, its capital, and the execution
    model (cost_bps, slippage_bps, impact_coef) its fills are priced with, so a run can be replayed."""

    __tablename__ = "paper_accounts"

    id: Mapped[str] = mapped_column(String(140), primary_key=True)
    """``f"{ab_id}:{arm}"``."""
    ab_id: Mapped[str] = mapped_column(String(120), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    """champion | challenger"""
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(32))
    symbols: Mapped[list[str]] = mapped_column(JSON)
    initial_cash: Mapped[float] = mapped_column(Float)
    execution: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaperDecision(Base):
    """What the policy decided at the close of ``bar``: target weights, the volatility and ADV its fill will be
    priced with, the raw policy output and the risk manager's state. Filled at the next marked bar's open."""

    __tablename__ = "paper_decisions"
    __table_args__ = (UniqueConstraint("account_id", "bar", name="uq_paper_decisions_account_bar"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("paper_accounts.id", ondelete="CASCADE"))
    bar: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    target_weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    sigma: Mapped[dict[str, Any]] = mapped_column(JSON)
    adv_value: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_output: Mapped[dict[str, Any]] = mapped_column(JSON)
    risk_state: Mapped[dict[str, Any]] = mapped_column(JSON)
    """peak_equity, cooldown_left, halted after this decision (what the next decision's risk manager starts from)."""
    filled_at_bar: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PaperFill(Base):
    """One symbol traded (or left alone) at the open of ``bar`` to fill the decision of ``decision_bar``."""

    __tablename__ = "paper_fills"
    __table_args__ = (UniqueConstraint("account_id", "bar", "symbol", name="uq_paper_fills_account_bar_symbol"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("paper_accounts.id", ondelete="CASCADE"))
    bar: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision_bar: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    symbol: Mapped[str] = mapped_column(String(64))
    shares_before: Mapped[float] = mapped_column(Float)
    shares_after: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    """The open of ``bar``."""
    traded_notional: Mapped[float] = mapped_column(Float)
    fees: Mapped[float] = mapped_column(Float)
    impact: Mapped[float] = mapped_column(Float)


class PaperEquity(Base):
    """The books at the close of ``bar``: cash, positions and the prices they were marked at, so the next bar's
    ledger check (and anyone auditing) can recompute the equity from this row alone."""

    __tablename__ = "paper_equity"
    __table_args__ = (UniqueConstraint("account_id", "bar", name="uq_paper_equity_account_bar"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("paper_accounts.id", ondelete="CASCADE"))
    bar: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    shares: Mapped[dict[str, Any]] = mapped_column(JSON)
    entry_price: Mapped[dict[str, Any]] = mapped_column(JSON)
    close: Mapped[dict[str, Any]] = mapped_column(JSON)
    """{symbol: close of ``bar``}: the marks of ``shares``."""
    portfolio_return: Mapped[float] = mapped_column(Float)
    peak_equity: Mapped[float] = mapped_column(Float)
    drawdown: Mapped[float] = mapped_column(Float)
    costs: Mapped[float] = mapped_column(Float)
    """Fees + impact paid at this bar's open."""


class DriftCheck(Base):
    """One drift / decay check of a model version: the window it looked at, the feature and prediction drift
    shares, the decay figures, the verdict, and the training DAG run it triggered (the retraining cooldown
    reads the newest such run)."""

    __tablename__ = "drift_checks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    model_name: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str | None] = mapped_column(String(32))
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    drift_share: Mapped[float | None] = mapped_column(Float)
    """Share of drifted features (None: feature drift not measured)."""
    drifted_columns: Mapped[list[str]] = mapped_column(JSON)
    prediction_drift_share: Mapped[float | None] = mapped_column(Float)
    decay: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """:meth:`DecayResult.as_dict` (None: decay not measured)."""
    decision: Mapped[str] = mapped_column(String(32))
    """ok | drift | decay | drift+decay | error"""
    reason: Mapped[str] = mapped_column(Text)
    triggered_run: Mapped[str | None] = mapped_column(String(250))
    """The training DAG run this check started, if any."""
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    """The MLflow run holding the check's HTML reports and scores."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Per-column drift results and any other evidence."""
