"""Booking a paper account: open it, record the policy's decision at a close, fill and mark the next bar.

The write side of the paper broker (:mod:`trading_core.rollout.broker`). :func:`mark_bar` hands the
account's books, the pending decision and the bar's prices to the execution kernel
(:func:`trading_core.execution.execute`, the same call the training env and the backtest make) and
stores what it returns: one fill row per symbol and the bar's books, after the kernel's ledger check.
Every function is idempotent per (account, bar) and opens its own session (one writer per account on
PostgreSQL: the account row is locked).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select

from trading_core.db.audit import as_utc, jsonable
from trading_core.db.models import PaperAccount, PaperDecision, PaperEquity, PaperFill
from trading_core.db.session import session_scope, upgrade_database
from trading_core.errors import DataQualityError, SchemaError
from trading_core.execution import AccountingError, Books, execute, unbalanced
from trading_core.rl.config import EnvConfig
from trading_core.rollout.ledger import (
    BarLike,
    EquityRow,
    bar_utc,
    equity_row,
    get_account,
    last_equity,
    pending_decisions,
)

__all__ = ["ARMS", "EXECUTION_FIELDS", "mark_bar", "open_account", "record_decision"]

log = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("champion", "challenger")
EXECUTION_FIELDS: tuple[str, ...] = ("cost_bps", "slippage_bps", "impact_coef", "adv_window")
"""The EnvConfig fields stored on an account: what its fills are priced with (adv_window: how sigma/ADV were made)."""


def _execution(account: PaperAccount) -> EnvConfig:
    return EnvConfig(**{k: account.execution[k] for k in EXECUTION_FIELDS})


# ------------------------------------------------------------------------------------------------ helpers


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
    when = bar_utc(bar)
    with session_scope(url) as session:
        account = get_account(session, account_id, lock=True)
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
        last = last_equity(session, account_id)
        if last is not None and when < as_utc(last.bar):
            raise ValueError(
                f"decision at bar {when.isoformat()} for {account_id} is older than its last marked bar "
                f"{as_utc(last.bar).isoformat()}: it can no longer be filled at the next open"
            )
        pending = pending_decisions(session, account_id)
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
    when = bar_utc(bar)
    with session_scope(url) as session:
        account = get_account(session, account_id, lock=True)
        booked = session.scalars(
            select(PaperEquity).where(PaperEquity.account_id == account_id, PaperEquity.bar == when)
        ).first()
        if booked is not None:
            return equity_row(booked)
        last = last_equity(session, account_id)
        if last is not None and when < as_utc(last.bar):
            raise ValueError(
                f"bar {when.isoformat()} of {account_id} is older than its last marked bar "
                f"{as_utc(last.bar).isoformat()}: bars only move forward"
            )
        symbols = list(account.symbols)
        n = len(symbols)
        o, c1 = _prices(prices, symbols, when)
        if last is None:
            cash = np.array([account.initial_cash])
            books = Books(cash, np.zeros((1, n)), np.zeros((1, n)), cash.copy(), cash.copy())
            c0 = np.zeros(n)  # no position yet: the overnight P&L is 0 whatever the previous close
        else:
            books = Books(
                np.array([last.cash]),
                np.array([[last.shares[s] for s in symbols]], dtype=np.float64),
                np.array([[last.entry_price[s] for s in symbols]], dtype=np.float64),
                np.array([last.equity]),
                np.array([last.peak_equity]),
            )
            c0 = np.array([last.close[s] for s in symbols], dtype=np.float64)
        due = [d for d in pending_decisions(session, account_id) if as_utc(d.bar) < when]
        if len(due) > 1:
            raise AccountingError(f"{account_id} has {len(due)} unfilled decisions before {when.isoformat()}")

        if due:
            decision = due[0]
            w = np.array([[decision.target_weights[s] for s in symbols]], dtype=np.float64)
            sigma = np.array([[decision.sigma[s] for s in symbols]], dtype=np.float64)
            adv = np.array([[decision.adv_value[s] for s in symbols]], dtype=np.float64)
            hold = None
        else:  # no decision to fill: every position is held, nothing is traded or paid
            w, sigma, adv = np.zeros((1, n)), np.zeros((1, n)), np.ones((1, n))
            hold = np.ones((1, n), dtype=bool)
        fill = execute(books, w, o[None, :], c1[None, :], c0[None, :], sigma, adv, _execution(account), hold=hold)
        equity, ledger, costs = float(fill.books.equity[0]), float(fill.ledger[0]), float(fill.costs[0])
        if unbalanced(fill)[0]:
            raise AccountingError(
                f"{account_id} at bar {when.isoformat()}: equity {equity:.6f} (cash + shares x close) != "
                f"ledger {ledger:.6f} (previous equity {float(books.equity[0]):.6f} + P&L - costs {costs:.6f})"
            )
        if due:
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
                        "shares_before": float(fill.shares_before[0, j]),
                        "shares_after": float(fill.books.shares[0, j]),
                        "price": float(o[j]),
                        "traded_notional": float(fill.traded[0, j]),
                        "fees": float(fill.fees[0, j]),
                        "impact": float(fill.impact[0, j]),
                    }
                    for j, s in enumerate(symbols)
                ],
            )
        if equity <= 0:
            log.warning("paper account %s is bankrupt at %s: equity %.2f", account_id, when.isoformat(), equity)
        row = PaperEquity(
            account_id=account_id,
            bar=when,
            cash=float(fill.books.cash[0]),
            equity=equity,
            shares=_as_dict(symbols, fill.books.shares[0]),
            entry_price=_as_dict(symbols, fill.books.entry_price[0]),
            close=_as_dict(symbols, c1),
            portfolio_return=float(fill.portfolio_return[0]),
            peak_equity=float(fill.books.peak[0]),
            drawdown=float(fill.drawdown[0]),
            costs=costs,
        )
        session.add(row)
        session.flush()
        return equity_row(row)
