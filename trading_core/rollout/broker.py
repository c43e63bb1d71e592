"""The paper-trading broker of the A/B rollout: the backtest's execution model, booked in the app DB.

One account per (A/B test, arm). Every bar the DAG

1. :func:`mark_bar` (bar t+1): fills the decision pending from the close of t at the **open of t+1**, trading
   to the target weights of the equity valued at that open (``shares = w * equity_open / open``), paying
   commission + slippage and square-root impact priced by :func:`trading_core.rl.engine.execution_costs` with
   the sigma and ADV known at t; then marks to the close of t+1 and checks the books: the equity must equal
   cash + sum(shares x close) and an independent ledger (previous equity + overnight P&L of the old position
   + intraday P&L of the new one - costs), else :class:`~trading_core.rl.engine.AccountingError`;
2. asks the policy for the weights at the close of t+1 and :func:`record_decision` books them.

That is :meth:`trading_core.rl.engine.PortfolioEngine.step` split at the close, so a paper account and a
backtest fed the same weights and prices end at the same equity (tests/test_rollout_broker.py checks it
to 1e-9). Each step is idempotent (a retried Airflow task books nothing twice), and each function opens
its own session, like :mod:`trading_core.db.lineage`. The books of a bar live on its ``paper_equity`` row
(cash, shares, entry prices, the closes they were marked at), so the next bar starts from the DB alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from trading_core.db.audit import as_utc, jsonable
from trading_core.db.models import PaperAccount, PaperDecision, PaperEquity, PaperFill
from trading_core.db.session import session_scope, upgrade_database
from trading_core.errors import DataQualityError, SchemaError, TradingError
from trading_core.rl.config import EnvConfig
from trading_core.rl.engine import AccountingError, execution_costs

__all__ = [
    "ARMS",
    "AccountNotFound",
    "AccountState",
    "AccountingError",
    "EquityRow",
    "account_state",
    "count_rows",
    "decisions",
    "equity_curve",
    "fills",
    "mark_bar",
    "open_account",
    "record_decision",
]

log = logging.getLogger(__name__)

BarLike: TypeAlias = pd.Timestamp | datetime | np.datetime64 | str
"""A bar's timestamp; naive values are UTC."""

ARMS: tuple[str, ...] = ("champion", "challenger")
EXECUTION_FIELDS: tuple[str, ...] = ("cost_bps", "slippage_bps", "impact_coef", "adv_window")
"""The EnvConfig fields stored on an account: what its fills are priced with (adv_window: how sigma/ADV were made)."""


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


def _bar(value: BarLike) -> datetime:
    """A bar timestamp as an aware UTC datetime (naive input is taken as UTC, the lake's convention)."""
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        raise ValueError(f"bar must be a timestamp, got {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _ts(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(as_utc(value))


def _account(session: Session, account_id: str, *, lock: bool = False) -> PaperAccount:
    account = session.get(PaperAccount, account_id, with_for_update=lock)  # PostgreSQL: one writer per account
    if account is None:
        known = session.scalars(select(PaperAccount.id).order_by(PaperAccount.created_at.desc()).limit(5)).all()
        raise AccountNotFound(f"paper account {account_id!r} does not exist (latest: {list(known)})")
    return account


def _execution(account: PaperAccount) -> EnvConfig:
    return EnvConfig(**{k: account.execution[k] for k in EXECUTION_FIELDS})


def _vector(name: str, values: Mapping[str, Any], symbols: Sequence[str], bar: datetime) -> np.ndarray:
    """``values`` as an array in the account's symbol order: every symbol present, no other, all finite."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} at bar {bar.isoformat()} must be a mapping symbol -> number, got {type(values)}")
    unknown = sorted(set(values) - set(symbols))
    missing = [s for s in symbols if s not in values]
    if unknown or missing:
        raise ValueError(
            f"{name} at bar {bar.isoformat()} must hold exactly the account's symbols {list(symbols)}: "
            f"missing {missing}, unknown {unknown}"
        )
    out = np.array([float(values[s]) for s in symbols], dtype=np.float64)
    bad = [s for s, v in zip(symbols, out, strict=True) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} at bar {bar.isoformat()} is not finite for {bad}")
    return out


def _as_dict(symbols: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {s: float(v) for s, v in zip(symbols, values, strict=True)}


def _prices(prices: pd.DataFrame, symbols: Sequence[str], bar: datetime) -> tuple[np.ndarray, np.ndarray]:
    """(open, close) of the account's symbols at ``bar`` from a frame with one row per symbol."""
    missing_cols = {"symbol", "open", "close"} - set(prices.columns)
    if missing_cols:
        raise SchemaError(f"prices at bar {bar.isoformat()} lack the columns {sorted(missing_cols)}")
    rows = prices[prices["symbol"].isin(symbols)]
    duplicated = sorted(rows.loc[rows["symbol"].duplicated(), "symbol"].astype(str).unique())
    if duplicated:
        raise DataQualityError(f"prices at bar {bar.isoformat()} have several rows for {duplicated}")
    indexed = rows.set_index("symbol")
    out: list[np.ndarray] = []
    for column in ("open", "close"):
        values = np.empty(len(symbols))
        for j, symbol in enumerate(symbols):
            if symbol not in indexed.index:
                raise DataQualityError(f"no price for {symbol} at bar {bar.isoformat()}")
            value = float(indexed.at[symbol, column])
            if not (math.isfinite(value) and value > 0):
                raise DataQualityError(
                    f"{symbol} {column} at bar {bar.isoformat()} is {value}: prices must be finite and > 0"
                )
            values[j] = value
        out.append(values)
    return out[0], out[1]


def _entry_prices(
    old: np.ndarray, target: np.ndarray, entry: np.ndarray, trade: np.ndarray, price: np.ndarray
) -> np.ndarray:
    """The engine's average entry price: adds average in, flips restart at the fill price, 0 when flat."""
    same_side = np.sign(target) == np.sign(old)
    growing = same_side & (np.abs(target) > np.abs(old))
    blended = np.divide(old * entry + trade * price, target, out=np.zeros_like(target), where=target != 0)
    return np.where(target == 0, 0.0, np.where(~same_side, price, np.where(growing, blended, entry)))


def _equity_row(row: PaperEquity) -> EquityRow:
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


def _last_equity(session: Session, account_id: str) -> PaperEquity | None:
    query = select(PaperEquity).where(PaperEquity.account_id == account_id).order_by(PaperEquity.bar.desc())
    return session.scalars(query.limit(1)).first()


def _pending(session: Session, account_id: str) -> list[PaperDecision]:
    query = select(PaperDecision).where(PaperDecision.account_id == account_id, PaperDecision.filled_at_bar.is_(None))
    return list(session.scalars(query.order_by(PaperDecision.bar)))


# ------------------------------------------------------------------------------------------------ accounts


def open_account(
    url: str,
    *,
    ab_id: str,
    arm: str,
    model_name: str,
    model_version: str,
    symbols: Sequence[str],
    initial_cash: float,
    execution: EnvConfig,
) -> str:
    """Open the paper account of one arm of an A/B test (migrating the DB first) and return its id.

    Idempotent: the same arguments return the same id ``f"{ab_id}:{arm}"`` and write nothing. Re-opening an
    existing (ab_id, arm) with other terms (another model version, universe, capital or execution model)
    raises ValueError naming them: an A/B test's arms are fixed when it starts.
    """
    if not isinstance(ab_id, str) or not ab_id.strip() or len(ab_id) > 120:
        raise ValueError(f"ab_id must be a non-empty string of at most 120 characters, got {ab_id!r}")
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {arm!r}")
    if not isinstance(model_name, str) or not model_name.strip() or len(model_name) > 200:
        raise ValueError(f"model_name must be a non-empty string of at most 200 characters, got {model_name!r}")
    version = str(model_version)
    if not version.strip() or len(version) > 32:
        raise ValueError(f"model_version must be a non-empty string of at most 32 characters, got {model_version!r}")
    if isinstance(symbols, str) or not symbols:
        raise ValueError(f"symbols must be a non-empty list of symbols, got {symbols!r}")
    bad = [s for s in symbols if not isinstance(s, str) or not s or len(s) > 64]
    if bad or len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols must be distinct non-empty strings of at most 64 characters, got {list(symbols)}")
    cash = float(initial_cash)
    if not (math.isfinite(cash) and cash > 0):
        raise ValueError(f"initial_cash must be a finite number > 0, got {initial_cash!r}")
    if not isinstance(execution, EnvConfig):
        raise TypeError(f"execution must be an EnvConfig, got {type(execution).__name__}")
    terms: dict[str, Any] = {
        "model_name": model_name,
        "model_version": version,
        "symbols": sorted(symbols),
        "initial_cash": cash,
        "execution": {k: getattr(execution, k) for k in EXECUTION_FIELDS},
    }
    account_id = f"{ab_id}:{arm}"
    upgrade_database(url)
    with session_scope(url) as session:
        existing = session.get(PaperAccount, account_id)
        if existing is None:
            session.add(PaperAccount(id=account_id, ab_id=ab_id, arm=arm, **terms))
            log.info("opened paper account %s: %s v%s on %d symbols", account_id, model_name, version, len(symbols))
            return account_id
        differ = {k: (getattr(existing, k), v) for k, v in terms.items() if getattr(existing, k) != v}
        if differ:
            details = "; ".join(f"{k}: existing {old!r}, requested {new!r}" for k, (old, new) in differ.items())
            raise ValueError(f"paper account {account_id} exists with other terms ({details})")
        return account_id


def account_state(url: str, account_id: str) -> AccountState:
    """The account's books after its last marked bar, and the risk state of its latest decision."""
    with session_scope(url) as session:
        account = _account(session, account_id)
        symbols = list(account.symbols)
        last = _last_equity(session, account_id)
        latest = session.scalars(
            select(PaperDecision).where(PaperDecision.account_id == account_id).order_by(PaperDecision.bar.desc())
        ).first()
        pending = _pending(session, account_id)
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


# ------------------------------------------------------------------------------------------------ trading


def record_decision(
    url: str,
    account_id: str,
    bar: BarLike,
    *,
    target_weights: Mapping[str, float],
    sigma: Mapping[str, float],
    adv_value: Mapping[str, float],
    policy_output: Mapping[str, Any],
    risk_state: Mapping[str, Any],
) -> bool:
    """Book the policy's decision at the close of ``bar``; it fills at the open of the next marked bar.

    :param target_weights: {symbol: weight}, fractions of equity after the risk manager (every account symbol).
    :param sigma: {symbol: daily volatility} known at ``bar`` (>= 0), for the fill's impact.
    :param adv_value: {symbol: average daily dollar volume} known at ``bar`` (> 0).
    :param policy_output: what the policy returned (probabilities, actions, risk decision and reasons).
    :param risk_state: the risk manager's state after this decision (peak_equity, cooldown_left, halted).
    :returns: False when a decision for (account, bar) exists already (nothing is written twice), else True.
    :raises ValueError: bad inputs; ``bar`` older than the last marked bar (it could no longer fill at the next
        open); another decision still waiting for its fill.
    """
    when = _bar(bar)
    with session_scope(url) as session:
        account = _account(session, account_id, lock=True)
        symbols = list(account.symbols)
        weights = _vector("target_weights", target_weights, symbols, when)
        vol = _vector("sigma", sigma, symbols, when)
        adv = _vector("adv_value", adv_value, symbols, when)
        if (vol < 0).any() or (adv <= 0).any():
            raise ValueError(f"at bar {when.isoformat()} sigma must be >= 0 and adv_value > 0, got {vol} and {adv}")
        if not isinstance(policy_output, Mapping) or not isinstance(risk_state, Mapping):
            raise ValueError(f"policy_output and risk_state at bar {when.isoformat()} must be mappings")
        exists = session.scalars(
            select(PaperDecision.id).where(PaperDecision.account_id == account_id, PaperDecision.bar == when)
        ).first()
        if exists is not None:
            return False
        last = _last_equity(session, account_id)
        if last is not None and when < as_utc(last.bar):
            raise ValueError(
                f"decision at bar {when.isoformat()} for {account_id} is older than its last marked bar "
                f"{as_utc(last.bar).isoformat()}: it can no longer be filled at the next open"
            )
        pending = _pending(session, account_id)
        if pending:
            raise ValueError(
                f"{account_id} still has the decision of bar {as_utc(pending[0].bar).isoformat()} to fill: "
                f"mark a later bar before deciding at {when.isoformat()}"
            )
        session.add(
            PaperDecision(
                account_id=account_id,
                bar=when,
                target_weights=_as_dict(symbols, weights),
                sigma=_as_dict(symbols, vol),
                adv_value=_as_dict(symbols, adv),
                policy_output=jsonable(dict(policy_output)),
                risk_state=jsonable(dict(risk_state)),
            )
        )
        return True


def mark_bar(url: str, account_id: str, bar: BarLike, prices: pd.DataFrame) -> EquityRow:
    """Fill the pending decision at this bar's open (if any), mark to its close, check and book the result.

    :param prices: one row per symbol with columns ``symbol``, ``open``, ``close`` at ``bar`` (others ignored).
    :returns: the bar's books. Idempotent: when (account, bar) is booked already, that row is returned and
        nothing is written. The first bar ever marked starts from the initial cash.
    :raises DataQualityError: a symbol's price is missing or not a finite positive number (names symbol and bar).
    :raises ValueError: ``bar`` is older than the last marked bar (bars only move forward).
    :raises AccountingError: the books do not add up (the previous row was altered, or a bug).
    """
    when = _bar(bar)
    with session_scope(url) as session:
        account = _account(session, account_id, lock=True)
        booked = session.scalars(
            select(PaperEquity).where(PaperEquity.account_id == account_id, PaperEquity.bar == when)
        ).first()
        if booked is not None:
            return _equity_row(booked)
        last = _last_equity(session, account_id)
        if last is not None and when < as_utc(last.bar):
            raise ValueError(
                f"bar {when.isoformat()} of {account_id} is older than its last marked bar "
                f"{as_utc(last.bar).isoformat()}: bars only move forward"
            )
        symbols = list(account.symbols)
        o, c1 = _prices(prices, symbols, when)
        if last is None:
            cash, equity_prev, peak_prev = account.initial_cash, account.initial_cash, account.initial_cash
            old, entry, c0 = np.zeros(len(symbols)), np.zeros(len(symbols)), np.zeros(len(symbols))
        else:
            cash, equity_prev, peak_prev = last.cash, last.equity, last.peak_equity
            old = np.array([last.shares[s] for s in symbols], dtype=np.float64)
            entry = np.array([last.entry_price[s] for s in symbols], dtype=np.float64)
            c0 = np.array([last.close[s] for s in symbols], dtype=np.float64)
        due = [d for d in _pending(session, account_id) if as_utc(d.bar) < when]
        if len(due) > 1:
            raise AccountingError(f"{account_id} has {len(due)} unfilled decisions before {when.isoformat()}")

        target, fees, impact = old, np.zeros(len(symbols)), np.zeros(len(symbols))
        if due:
            decision = due[0]
            w = np.array([decision.target_weights[s] for s in symbols], dtype=np.float64)
            sigma = np.array([decision.sigma[s] for s in symbols], dtype=np.float64)
            adv = np.array([decision.adv_value[s] for s in symbols], dtype=np.float64)
            equity_open = cash + (old * o).sum()
            target = w * equity_open / o
            trade = target - old
            traded = np.abs(trade) * o
            fees, impact = execution_costs(traded, sigma, adv, _execution(account))
            cash = cash - (trade * o).sum() - fees.sum() - impact.sum()
            entry = _entry_prices(old, target, entry, trade, o)
            decision.filled_at_bar = when
            decision_bar = as_utc(decision.bar)
            session.execute(
                insert(PaperFill),
                [
                    {
                        "account_id": account_id,
                        "bar": when,
                        "decision_bar": decision_bar,
                        "symbol": s,
                        "shares_before": float(old[j]),
                        "shares_after": float(target[j]),
                        "price": float(o[j]),
                        "traded_notional": float(traded[j]),
                        "fees": float(fees[j]),
                        "impact": float(impact[j]),
                    }
                    for j, s in enumerate(symbols)
                ],
            )
        costs = float(fees.sum() + impact.sum())
        equity = float(cash + (target * c1).sum())
        ledger = equity_prev + (old * (o - c0)).sum() + (target * (c1 - o)).sum() - fees.sum() - impact.sum()
        if not abs(equity - ledger) <= 1e-6 + 1e-9 * abs(ledger):
            raise AccountingError(
                f"{account_id} at bar {when.isoformat()}: equity {equity:.6f} (cash + shares x close) != "
                f"ledger {ledger:.6f} (previous equity {equity_prev:.6f} + P&L - costs {costs:.6f})"
            )
        if equity <= 0:
            log.warning("paper account %s is bankrupt at %s: equity %.2f", account_id, when.isoformat(), equity)
        peak = max(peak_prev, equity)
        row = PaperEquity(
            account_id=account_id,
            bar=when,
            cash=float(cash),
            equity=equity,
            shares=_as_dict(symbols, target),
            entry_price=_as_dict(symbols, entry),
            close=_as_dict(symbols, c1),
            portfolio_return=equity / equity_prev - 1.0,
            peak_equity=peak,
            drawdown=1.0 - equity / peak,
            costs=costs,
        )
        session.add(row)
        session.flush()
        return _equity_row(row)


# ------------------------------------------------------------------------------------------------ reading


def equity_curve(url: str, account_id: str) -> pd.DataFrame:
    """bar (UTC), equity, portfolio_return, drawdown, costs of every marked bar, oldest first."""
    with session_scope(url) as session:
        _account(session, account_id)
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
        _account(session, account_id)
        rows = session.scalars(
            select(PaperDecision).where(PaperDecision.account_id == account_id).order_by(PaperDecision.bar)
        ).all()
    frame = pd.DataFrame([[getattr(r, c) for c in columns] for r in rows], columns=columns)
    for column in ("bar", "filled_at_bar"):
        frame[column] = pd.to_datetime([None if v is None else as_utc(v) for v in frame[column]], utc=True)
    return frame


def fills(url: str, account_id: str) -> pd.DataFrame:
    """Every fill of the account, by bar then symbol: bar, decision_bar, symbol, shares_before, shares_after,
    price, traded_notional, fees, impact."""
    columns = [
        "bar", "decision_bar", "symbol", "shares_before", "shares_after", "price", "traded_notional", "fees", "impact",
    ]  # fmt: skip
    with session_scope(url) as session:
        _account(session, account_id)
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
