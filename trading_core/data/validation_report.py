"""What validation found: the report per rule and per symbol, and the series-level flags it lists.

:class:`ValidationReport` is what the ingest stores beside a dataset version (JSON via
:meth:`~ValidationReport.to_dict`), prints as its summary, and raises on when the bad share is over
the policy's budget. :func:`build_report` counts it from the rows read, kept and quarantined.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from trading_core.data.request import ValidationPolicy
from trading_core.errors import DataQualityError

MAX_EXAMPLES = 5
"""Examples (timestamps, moves) a flag's detail shows."""


@dataclass(frozen=True)
class Flag:
    """A series-level finding: rows are kept, the report says what and where."""

    rule: str
    symbol: str
    count: int
    detail: str


@dataclass
class SymbolReport:
    symbol: str
    rows_read: int = 0
    rows_clean: int = 0
    rows_outside_session: int = 0
    first: str | None = None
    last: str | None = None
    quarantined: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """What validation found, per rule and per symbol; JSON-serialisable via :meth:`to_dict`."""

    rows_read: int
    rows_clean: int
    rows_quarantined: int
    max_bad_share: float
    quarantined_by_rule: dict[str, int]
    flagged_by_rule: dict[str, int]
    symbols: list[SymbolReport]
    flags: list[Flag]
    rows_outside_session: int = 0
    """Bars outside the regular session, filtered before the rules (see the module docstring)."""
    session: str | None = None
    """The session filter applied: 'regular', 'extended', or None (daily bars, 24/7, weekdays)."""

    @property
    def rows_judged(self) -> int:
        """Rows the rules judged: rows read less those filtered as outside the session."""
        return self.rows_read - self.rows_outside_session

    @property
    def bad_share(self) -> float:
        return self.rows_quarantined / self.rows_judged if self.rows_judged else 0.0

    @property
    def passed(self) -> bool:
        return self.bad_share <= self.max_bad_share

    def to_dict(self, max_flags: int = 200) -> dict[str, Any]:
        data = asdict(self)
        data["flags"] = data["flags"][:max_flags]
        data["flags_truncated"] = max(0, len(self.flags) - max_flags)
        data.update(bad_share=self.bad_share, passed=self.passed, rows_judged=self.rows_judged)
        return data

    def summary(self) -> str:
        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"

        outside = f", {self.rows_outside_session} outside the regular session (filtered)" if self.session else ""
        return (
            f"{self.rows_read} rows read, {self.rows_clean} clean, {self.rows_quarantined} quarantined "
            f"({self.bad_share:.3%}; policy {self.max_bad_share:.1%}){outside}. "
            f"Quarantined: {fmt(self.quarantined_by_rule)}. Flagged: {fmt(self.flagged_by_rule)}."
        )

    def raise_if_failed(self, where: str) -> None:
        """Raise :class:`DataQualityError` naming the worst rules and symbols when over budget."""
        if self.passed:
            return
        worst = sorted(self.symbols, key=lambda s: -sum(s.quarantined.values()))[:5]
        by_symbol = ", ".join(f"{s.symbol} {sum(s.quarantined.values())}/{s.rows_read}" for s in worst)
        raise DataQualityError(
            f"{where}: {self.summary()} Worst symbols: {by_symbol}. Nothing was written to the lake."
        )


def printable(text: object) -> str:
    """Text safe for any DB and terminal: control characters (NUL...) escaped, as repr() would."""
    value = str(text)
    return value if value.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def build_report(
    read: pd.DataFrame,
    outside: pd.Series,
    clean: pd.DataFrame,
    quarantine: pd.DataFrame,
    flags: list[Flag],
    policy: ValidationPolicy,
    session: str | None,
) -> ValidationReport:
    """Count the report of one validation: rows read / outside the session / clean / quarantined per
    symbol and per rule, and each flag added to its symbol's and its rule's count."""
    symbols: dict[str, SymbolReport] = {}
    names = read["symbol"].astype("string").fillna("")
    for symbol, n in names.value_counts().items():
        symbols[printable(symbol)] = SymbolReport(printable(symbol), rows_read=int(n))
    for symbol, n in names[outside].value_counts().items():
        symbols[printable(symbol)].rows_outside_session = int(n)
    for symbol, rows in clean.groupby("symbol"):
        rep = symbols[printable(symbol)]
        rep.rows_clean = len(rows)
        rep.first, rep.last = rows["timestamp"].iloc[0].isoformat(), rows["timestamp"].iloc[-1].isoformat()
    for (symbol, rule), n in quarantine.groupby(["symbol", "rule"]).size().items():
        symbols[str(symbol)].quarantined[str(rule)] = int(n)
    flagged: Counter[str] = Counter()
    for flag in flags:
        rep = symbols[printable(flag.symbol)]
        rep.flags[flag.rule] = rep.flags.get(flag.rule, 0) + flag.count
        flagged[flag.rule] += flag.count
    return ValidationReport(
        rows_read=len(read),
        rows_clean=len(clean),
        rows_quarantined=len(quarantine),
        max_bad_share=policy.max_bad_share,
        quarantined_by_rule={str(k): int(v) for k, v in quarantine["rule"].value_counts().items()},
        flagged_by_rule=dict(flagged),
        symbols=sorted(symbols.values(), key=lambda s: s.symbol),
        flags=flags,
        rows_outside_session=int(outside.sum()),
        session=session,
    )
