"""The app DB: SQLAlchemy 2 models, Alembic migrations, and small repository functions."""

from trading_core.db.models import Base, Dataset, IngestRun, QuarantinedRow
from trading_core.db.session import make_engine, session_scope, upgrade_database

__all__ = ["Base", "Dataset", "IngestRun", "QuarantinedRow", "make_engine", "session_scope", "upgrade_database"]
