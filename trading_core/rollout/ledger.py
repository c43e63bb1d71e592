"""Reading a paper account's books: its state, equity curve, decisions, fills and row counts.

The read side of the paper broker (:mod:`trading_core.rollout.broker`); :mod:`~trading_core.rollout.booking`
writes what these functions read. Every function opens its own session and returns plain values or
DataFrames with UTC timestamps, so the A/B rule, the monitor and reports never touch the tables themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trading_core.db.audit import as_utc
from trading_core.db.models import PaperAccount, PaperDecision, PaperEquity, PaperFill
from trading_core.db.session import session_scope
from trading_core.errors import TradingError

__all__ = [
    "AccountNotFound",
    "AccountState",
    "BarLike",
    "EquityRow",
    "account_state",
    "count_rows",
    "decisions",
    "equity_curve",
    "fills",
]

BarLike: TypeAlias = pd.Timestamp | datetime | np.datetime64 | str
"""A bar's timestamp; naive values are UTC."""


class AccountNotFound(TradingError, LookupError):
    """No paper account has the requested id."""


@dataclass(frozen=True)
class AccountState:
    """The books after the last marked bar (the initial cash and no position before any)."""

    account_id: str
    cash: float
    shares: dict[str, float]
    entry_price: dict[str, float]
    equity: float
    peak_equity: float
    last_bar: pd.Timestamp | None
    """The last marked bar (UTC), None before the first."""
    weights: dict[str, float]
    """shares x last close / equity (0 before the first bar)."""
    risk_state: dict[str, Any]
    """The risk state stored with the latest decision ({} before any): where the next risk manager starts."""
    pending_decision_bar: pd.Timestamp | None = None
    """The bar of a decision not filled yet (it fills at the next marked bar's open), or None."""


@dataclass(frozen=True)
class EquityRow:
    """The books at the close of ``bar``."""

    account_id: str
    bar: pd.Timestamp
    cash: float
    equity: float
    shares: dict[str, float]
    entry_price: dict[str, float]
    close: dict[str, float]
    portfolio_return: float
    peak_equity: float
    drawdown: float
    costs: float
    """Fees + impact paid at this bar's open (0 without a fill)."""


# ------------------------------------------------------------------------------------------------ helpers


def bar_utc(value: BarLike) -> datetime:
    """A bar timestamp as an aware UTC datetime (naive input is taken as UTC, the lake's convention)."""
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise ValueError(f"bar must be a timestamp, got {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _ts(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(as_utc(value))


def get_account(session: Session, account_id: str, *, lock: bool = False) -> PaperAccount:
    """The account row (``lock``: SELECT ... FOR UPDATE on PostgreSQL, one writer per account)."""
    account = session.get(PaperAccount, account_id, with_for_update=lock)
    if account is None:
        known = session.scalars(select(PaperAccount.id).order_by(PaperAccount.created_at.desc()).limit(5)).all()
        raise AccountNotFound(f"paper account {account_id!r} does not exist (latest: {list(known)})")
    return account


def equity_row(row: PaperEquity) -> EquityRow:
    """The stored row as the value callers get."""
    return EquityRow(
        account_id=row.account_id,
        bar=pd.Timestamp(as_utc(row.bar)),
        cash=row.cash,
        equity=row.equity,
        shares=dict(row.shares),
        entry_price=dict(row.entry_price),
        close=dict(row.close),
        portfolio_return=row.portfolio_return,
        peak_equity=row.peak_equity,
        drawdown=row.drawdown,
        costs=row.costs,
    )


def last_equity(session: Session, account_id: str) -> PaperEquity | None:
    """The newest marked bar of the account, or None."""
    query = select(PaperEquity).where(PaperEquity.account_id == account_id).order_by(PaperEquity.bar.desc())
    return session.scalars(query.limit(1)).first()


def pending_decisions(session: Session, account_id: str) -> list[PaperDecision]:
    """The account's decisions not filled yet, oldest first."""
    query = select(PaperDecision).where(PaperDecision.account_id == account_id, PaperDecision.filled_at_bar.is_(None))
    return list(session.scalars(query.order_by(PaperDecision.bar)))


# ------------------------------------------------------------------------------------------------ queries


def account_state(url: str, account_id: str) -> AccountState:
    """The account's books after its last marked bar, and the risk state of its latest decision."""
    with session_scope(url) as session:
        account = get_account(session, account_id)
        symbols = list(account.symbols)
        last = last_equity(session, account_id)
        latest = session.scalars(
            select(PaperDecision).where(PaperDecision.account_id == account_id).order_by(PaperDecision.bar.desc())
        ).first()
        pending = pending_decisions(session, account_id)
        if last is None:
            zeros = dict.fromkeys(symbols, 0.0)
            cash = equity = peak = account.initial_cash
            shares, entry, weights, last_bar = zeros, dict(zeros), dict(zeros), None
        else:
            cash, equity, peak = last.cash, last.equity, last.peak_equity
            shares, entry, last_bar = dict(last.shares), dict(last.entry_price), _ts(last.bar)
            weights = {s: shares[s] * last.close[s] / equity if equity else 0.0 for s in symbols}
        return AccountState(
            account_id=account_id,
            cash=cash,
            shares=shares,
            entry_price=entry,
            equity=equity,
            peak_equity=peak,
            last_bar=last_bar,
            weights=weights,
            risk_state=dict(latest.risk_state) if latest is not None else {},
            pending_decision_bar=_ts(pending[-1].bar) if pending else None,
        )


def equity_curve(url: str, account_id: str) -> pd.DataFrame:
    """bar (UTC), equity, portfolio_return, drawdown, costs of every marked bar, oldest first."""
    with session_scope(url) as session:
        get_account(session, account_id)
        rows = session.execute(
            select(
                PaperEquity.bar,
                PaperEquity.equity,
                PaperEquity.portfolio_return,
                PaperEquity.drawdown,
                PaperEquity.costs,
            )
            .where(PaperEquity.account_id == account_id)
            .order_by(PaperEquity.bar)
        ).all()
    frame = pd.DataFrame(rows, columns=["bar", "equity", "portfolio_return", "drawdown", "costs"])
    frame["bar"] = pd.to_datetime([as_utc(b) for b in frame["bar"]], utc=True)
    return frame.astype({"equity": float, "portfolio_return": float, "drawdown": float, "costs": float})


def decisions(url: str, account_id: str) -> pd.DataFrame:
    """Every decision of the account, oldest first: bar, target_weights, sigma, adv_value, policy_output,
    risk_state, filled_at_bar (NaT while pending)."""
    columns = ["bar", "target_weights", "sigma", "adv_value", "policy_output", "risk_state", "filled_at_bar"]
    with session_scope(url) as session:
        get_account(session, account_id)
        rows = session.scalars(
            select(PaperDecision).where(PaperDecision.account_id == account_id).order_by(PaperDecision.bar)
        ).all()
    frame = pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)
    for column in ("bar", "filled_at_bar"):
        frame[column] = pd.to_datetime([None if v is None else as_utc(v) for v in frame[column]], utc=True)
    return frame


FILL_COLUMNS: tuple[str, ...] = (
    "bar", "decision_bar", "symbol", "shares_before", "shares_after", "price", "traded_notional", "fees", "impact",
)  # fmt: skip
"""The columns of :func:`fills`."""


def fills(url: str, account_id: str) -> pd.DataFrame:
    """Every fill of the account, by bar then symbol: bar, decision_bar, symbol, shares_before, shares_after,
    price, traded_notional, fees, impact."""
    columns = list(FILL_COLUMNS)
    with session_scope(url) as session:
        get_account(session, account_id)
        rows = session.scalars(
            select(PaperFill).where(PaperFill.account_id == account_id).order_by(PaperFill.bar, PaperFill.symbol)
        ).all()
    frame = pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)
    for column in ("bar", "decision_bar"):
        frame[column] = pd.to_datetime([as_utc(v) for v in frame[column]], utc=True)
    return frame


def count_rows(url: str, account_id: str) -> dict[str, int]:
    """Rows booked for the account per table (decisions, fills, equity): what an idempotent re-run must not change."""
    with session_scope(url) as session:
        return {
            name: int(
                session.scalar(select(func.count()).select_from(model).where(model.account_id == account_id)) or 0
            )
            for name, model in (("decisions", PaperDecision), ("fills", PaperFill), ("equity", PaperEquity))
        }
