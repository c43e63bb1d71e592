"""The seam between the live decision loop and what it drives: a deciding policy and a paper book.

The service loop (:mod:`trading_core.serving.service`) is wiring: it receives bar slices from a
transport, asks a :class:`DecidingPolicy` for a :class:`LiveDecision`, books it through a
:class:`Book`, publishes it, then acknowledges the bars. These protocols say exactly what the loop
may rely on, so the loop can be read (and tested) without the model code, and the model code
without NATS. The implementations are :class:`trading_core.serving.live_policy.LivePolicy` (the
registered ``TradingPolicy`` fed from incremental feature state) and
:class:`trading_core.serving.book.PaperBook` (the paper broker over the execution kernel).

Ordering contract, per policy and account, for a bar time ``t`` (decide at the close of ``t``, fill
at the open of ``t+1``, as in the backtest):

1. ``book.fill_and_mark(account, slice_t)`` fills the decision pending from ``t-1`` at ``t``'s open
   and marks ``t``'s close (idempotent per (account, t));
2. ``policy.decide(slice_t, book.policy_state(account))`` consumes ``t`` into the policy's state and
   returns the decision at ``t``'s close;
3. ``book.record(account, decision)`` stores it once per (policy version, account, t); a second call
   with the same key returns the stored record and books nothing;
4. the loop publishes the decision (idempotency id = the same key) and only then acks ``t``'s bars.

A restart rebuilds every piece of state from the lake and the app DB (never from Redis alone):
``policy.warm(history)`` with the bars up to the last bar time the book recorded for that version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from trading_core.features.online import BarSlice
from trading_core.registry.decision import PolicyState


@dataclass(frozen=True)
class DecisionKey:
    """What makes a booked decision unique: a redelivered bar, a replica or a restart maps to the same key."""

    model_name: str
    version: str
    account: str
    bar_time: pd.Timestamp

    def idempotency_id(self) -> str:
        return f"{self.model_name}:{self.version}:{self.account}:{self.bar_time.isoformat()}"


@dataclass(frozen=True)
class LiveDecision:
    """A policy's decision at the close of one bar time, before booking."""

    model_name: str
    version: str
    bar_time: pd.Timestamp
    output: pd.DataFrame
    """One row per traded symbol, the columns of ``trading_core.registry.policy.OUTPUT_COLUMNS``."""
    held: tuple[str, ...] = ()
    """Symbols without a bar by the deadline: their position is held (target = current weight), see docs/serving.md."""
    stage_seconds: Mapping[str, float] = field(default_factory=dict)
    """Wall time per stage: features, forecaster, agent, risk (booking is timed by the loop)."""

    def key(self, account: str) -> DecisionKey:
        return DecisionKey(self.model_name, self.version, account, self.bar_time)


@dataclass(frozen=True)
class BookedDecision:
    """What the book stored for a decision: ``created`` is False when the key was already booked."""

    key: DecisionKey
    created: bool
    record: Mapping[str, Any]


class DecidingPolicy(Protocol):
    """A deployed model version that decides bar by bar from incremental state (O(window) per bar)."""

    model_name: str
    version: str

    @property
    def symbols(self) -> list[str]: ...

    @property
    def universe(self) -> list[str]: ...

    @property
    def last_bar_time(self) -> pd.Timestamp | None:
        """The newest bar time consumed (warm-up included); None before :meth:`warm`."""

    def warm(self, history: pd.DataFrame) -> None:
        """Consume OHLCV ``history`` (long frame, bars strictly before the first live bar) into the state."""

    def decide(self, bar_slice: BarSlice, state: PolicyState, held: Sequence[str] = ()) -> LiveDecision:
        """Consume ``bar_slice`` and decide at its close for the portfolio ``state``; books nothing."""


class Book(Protocol):
    """Paper accounts booked by the execution kernel, idempotent per (policy version, account, bar time)."""

    def fill_and_mark(self, account: str, bar_slice: BarSlice) -> Mapping[str, Any] | None:
        """Fill the pending decision at the slice's opens and mark its closes; None when nothing is pending."""

    def policy_state(self, account: str) -> PolicyState:
        """The account's portfolio and breaker state after its last mark (the input of the next decision)."""

    def record(self, account: str, decision: LiveDecision) -> BookedDecision:
        """Store ``decision`` once per :class:`DecisionKey`; a repeated key returns the stored record."""

    def last_recorded(self, account: str) -> pd.Timestamp | None:
        """The newest bar time with a recorded decision on ``account`` (where a restart resumes)."""
