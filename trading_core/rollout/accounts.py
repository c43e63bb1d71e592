"""Which paper account traded a model version, and what it earned: the rollout's answer to the monitor.

The drift monitor's performance-decay check needs a version's paper-trading returns. It asks here
instead of querying the paper tables itself, so the ledger has one owner (the rollout layer, through
the broker's :func:`~trading_core.rollout.equity_curve`) and the monitor imports downward only
(docs/architecture.md).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from trading_core.db import session_scope
from trading_core.db.models import PaperAccount
from trading_core.rollout import equity_curve


def latest_account(url: str, model_name: str, version: str) -> str | None:
    """The id of the newest paper account that traded ``model_name`` v``version`` (None: it never traded)."""
    with session_scope(url) as session:
        account = session.scalars(
            select(PaperAccount)
            .where(PaperAccount.model_name == model_name, PaperAccount.model_version == str(version))
            .order_by(PaperAccount.created_at.desc())
        ).first()
        return account.id if account is not None else None


def paper_returns(url: str, model_name: str, version: str) -> pd.Series | None:
    """Daily returns (indexed by bar) of the newest paper account that traded the version, from its
    second mark on (the first mark has no return); None when it never traded or marked one bar only."""
    account_id = latest_account(url, model_name, version)
    if account_id is None:
        return None
    curve = equity_curve(url, account_id)
    return curve.set_index("bar")["portfolio_return"].iloc[1:] if len(curve) > 1 else None
