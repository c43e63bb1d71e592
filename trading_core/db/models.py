"""Tables of the app DB. Lineage of every ingest, and the rows it rejected.

* ``ingest_runs``: one row per ingest attempt, successful or not (who asked for what, counts,
  the validation report, the error if it failed). Failed runs are kept: their quarantine explains why.
* ``quarantined_rows``: each rejected input row with its rule, reason, source position and raw values.
* ``datasets``: one row per distinct ``dataset_version`` (content hash of a lake slice), pointing at
  the run that first produced it; re-ingesting identical content finds the existing row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
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
