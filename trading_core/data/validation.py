"""Named validation rules for OHLCV bars, quarantine of bad rows, and the validation report.

Rules that condemn a row send it to quarantine with the rule, a reason naming the field and
values, and its source row; the rest of the data goes on. Rules about the series rather than a
row (gaps, stale prices, split-like moves, out-of-order arrival, bars off the calendar) are
*flags*: reported, rows kept. Order matters: a row is quarantined under the first rule it breaks,
and every rule it breaks is listed in its reason.

Quarantine rules: ``schema`` (unparseable timestamp, non-numeric field, invalid symbol, or the
reason a provider gave in ``schema_error``), ``missing_values``, ``non_positive_price``,
``ohlc_order`` (low <= open, close <= high), ``negative_volume``, ``implausible_value`` (a price
field or the volume outside the policy's absolute bounds, or absurd relative to the same bar's close
or to the symbol's own recent history), ``duplicate`` (same symbol and timestamp; the first row in
source order wins), ``extreme_jump`` when the move is a bad print (reversed on the next bar).

Flag rules: ``out_of_order``, ``calendar_gap``, ``off_calendar``, ``split_like_move`` (an extreme
move that persists: split, spin-off, real crash), ``stale_price`` (one flag per run of flat bars
repeating the close, or of a bit-identical OHLC tuple with a range), ``zero_volume``.

Session filter: intraday bars on an exchange calendar outside its regular session (pre-/after-market,
after an early close, a lunch break) are removed before the rules with ``session='regular'`` (the
default) and counted as ``rows_outside_session``: not quarantined, not in the bad share, never lost
silently (``rows_read == rows_clean + rows_quarantined + rows_outside_session``). With
``session='extended'`` they are kept and not flagged off-calendar; gaps are judged on regular bars.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trading_core.data.calendars import EXTENDED, expected_bars, is_exchange_calendar, session_position
from trading_core.data.magnitudes import implausible_vs_history, outside_bounds
from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import (
    INTERVALS,
    NUMERIC_COLUMNS,
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    SCHEMA_ERROR,
    SOURCE_ROW,
    SYMBOL_RE,
    require_columns,
)
from trading_core.errors import DataQualityError

log = logging.getLogger(__name__)

QUARANTINE_RULES = (
    "schema",
    "missing_values",
    "non_positive_price",
    "ohlc_order",
    "negative_volume",
    "implausible_value",
    "duplicate",
    "extreme_jump",
)
FLAG_RULES = ("out_of_order", "calendar_gap", "off_calendar", "split_like_move", "stale_price", "zero_volume")
MAX_EXAMPLES = 5
MAX_EXPECTED_BARS = 10_000_000
"""Gap checks are skipped (with a warning) when the calendar would expect more bars than this over
the delivered range: only a far-off bogus timestamp gets there, and the rules still judge it."""


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


@dataclass
class ValidationResult:
    clean: pd.DataFrame
    """Rows that passed, sorted by symbol and timestamp, contract columns only."""
    quarantine: pd.DataFrame
    """Rejected rows: symbol, timestamp, rule, reason, source_row, raw (dict of the row's fields)."""
    report: ValidationReport


class _Marks:
    """Collects per-row rule violations: first rule wins, all reasons are kept."""

    def __init__(self, index: pd.Index) -> None:
        self.rule = pd.Series(None, index=index, dtype="object")
        self.reasons: dict[int, list[str]] = {}

    def add(self, rule: str, mask: pd.Series, reasons: pd.Series | str) -> None:
        hit = mask[mask].index
        if len(hit) == 0:
            return
        fresh = hit[self.rule.loc[hit].isna().to_numpy()]
        self.rule.loc[fresh] = rule
        texts = reasons.loc[hit] if isinstance(reasons, pd.Series) else pd.Series(reasons, index=hit)
        for i, text in zip(hit, texts, strict=True):
            self.reasons.setdefault(i, []).append(f"{rule}: {text}")

    @property
    def bad(self) -> pd.Series:
        return self.rule.notna()


def _fmt(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:.6g}" if isinstance(v, float) else repr(v)).astype(object)


def _row_rules(frame: pd.DataFrame, policy: ValidationPolicy, marks: _Marks) -> pd.DataFrame:
    """Row-level rules; returns the frame with numeric columns coerced to float."""
    numeric = frame.copy()
    for col in NUMERIC_COLUMNS:
        coerced = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        coerced = coerced.where(np.isfinite(coerced))
        junk = frame[col].notna() & coerced.isna()
        marks.add(
            "schema",
            junk,
            f"field '{col}' = " + frame.loc[junk, col].astype(str).str.slice(0, 40) + " is not a finite number",
        )
        numeric[col] = coerced
    unread = frame["timestamp"].isna()
    if SCHEMA_ERROR in frame.columns:  # the provider's own reason (the raw value it could not read)
        given = frame[SCHEMA_ERROR].notna()
        marks.add("schema", given, frame.loc[given, SCHEMA_ERROR].astype(str))
        unread &= ~given
    marks.add("schema", unread, "field 'timestamp' is missing or unparseable")
    symbols = frame["symbol"].astype("string")
    bad_symbol = (
        symbols.isna()
        | ~symbols.fillna("").str.match(SYMBOL_RE.pattern)
        | symbols.fillna("").str.contains("..", regex=False)
    )
    marks.add("schema", bad_symbol, "field 'symbol' = " + symbols[bad_symbol].astype(str) + " is not a valid ticker")

    nan = numeric[list(NUMERIC_COLUMNS)].isna() & frame[list(NUMERIC_COLUMNS)].isna()
    missing = nan.any(axis=1)
    marks.add(
        "missing_values",
        missing,
        nan[missing].apply(lambda r: "missing " + ", ".join(r.index[r]), axis=1) if missing.any() else "",
    )

    prices = numeric[list(PRICE_COLUMNS)]
    non_pos = (prices <= 0).any(axis=1)
    if non_pos.any():
        marks.add(
            "non_positive_price",
            non_pos,
            prices[non_pos].apply(
                lambda r: ", ".join(f"{k} {v:.6g}" for k, v in r.items() if v <= 0) + " <= 0", axis=1
            ),
        )

    tol = policy.ohlc_tolerance
    o, h, low, c = (numeric[k] for k in PRICE_COLUMNS)
    body_hi, body_lo = np.maximum(o, c), np.minimum(o, c)
    high_bad = h < body_hi * (1 - tol)
    low_bad = low > body_lo * (1 + tol)
    order_bad = (high_bad | low_bad | (low > h)).fillna(False)
    if order_bad.any():
        text = pd.Series("", index=frame.index)
        text[high_bad] += "high " + _fmt(h[high_bad]) + " < max(open, close) " + _fmt(body_hi[high_bad]) + "; "
        text[low_bad] += "low " + _fmt(low[low_bad]) + " > min(open, close) " + _fmt(body_lo[low_bad]) + "; "
        text[low > h] += "low " + _fmt(low[low > h]) + " > high " + _fmt(h[low > h]) + "; "
        marks.add("ohlc_order", order_bad, text.str.rstrip("; "))

    neg_vol = numeric["volume"] < 0
    marks.add("negative_volume", neg_vol, "volume " + _fmt(numeric.loc[neg_vol, "volume"]) + " < 0")
    _mark("implausible_value", outside_bounds(numeric, policy), marks)
    return numeric


def _mark(rule: str, reasons: pd.Series, marks: _Marks) -> None:
    """Mark the rows ``reasons`` is indexed by with ``rule``."""
    mask = pd.Series(False, index=marks.rule.index)
    mask.loc[reasons.index] = True
    marks.add(rule, mask, reasons)


def _duplicates(frame: pd.DataFrame, marks: _Marks) -> None:
    ok = frame[~marks.bad]
    dup = ok.duplicated(subset=["symbol", "timestamp"], keep="first")
    if not dup.any():
        return
    first_rows = ok[~dup].set_index(["symbol", "timestamp"])
    reasons = []
    for i in dup[dup].index:
        row = ok.loc[i]
        first = first_rows.loc[(row["symbol"], row["timestamp"])]
        diffs = [f"{c} {first[c]:.6g} vs {row[c]:.6g}" for c in NUMERIC_COLUMNS if first[c] != row[c]]
        what = "conflicting: " + ", ".join(diffs) if diffs else "identical"
        reasons.append(f"same symbol and timestamp as source row {first[SOURCE_ROW]} ({what}); first row kept")
    mask = pd.Series(False, index=frame.index)
    mask.loc[dup[dup].index] = True
    marks.add("duplicate", mask, pd.Series(reasons, index=dup[dup].index))


def _out_of_order(frame: pd.DataFrame) -> list[Flag]:
    ts = frame["timestamp"].astype("int64")
    running_max = ts.groupby(frame["symbol"]).cummax().groupby(frame["symbol"]).shift(1)
    late = ts < running_max
    counts = frame.loc[late, "symbol"].value_counts()
    return [
        Flag("out_of_order", s, int(n), f"{n} bar(s) arrived after a later bar; sorted by timestamp")
        for s, n in counts.items()
    ]


def _jumps(clean: pd.DataFrame, policy: ValidationPolicy, marks: _Marks) -> list[Flag]:
    """Extreme close-to-close moves: reversed next bar -> bad print (quarantine), else split-like flag."""
    log_close = np.log(clean["close"])
    by = clean["symbol"]
    move = log_close.groupby(by).diff()
    nxt = move.groupby(by).shift(-1)
    extreme = move.abs() > policy.jump_threshold
    reversed_ = extreme & (np.sign(nxt) == -np.sign(move)) & (nxt.abs() >= policy.reversal_share * move.abs())
    if reversed_.any():
        prev = clean["close"].groupby(by).shift(1)
        text = (
            "close "
            + _fmt(clean.loc[reversed_, "close"])
            + " vs previous "
            + _fmt(prev[reversed_])
            + " (log move "
            + move[reversed_].map("{:+.2f}".format)
            + ", undone by "
            + nxt[reversed_].map("{:+.2f}".format)
            + " on the next bar): bad print"
        )
        mask = pd.Series(False, index=marks.rule.index)
        mask.loc[reversed_[reversed_].index] = True
        marks.add("extreme_jump", mask, text)
    # The bar after a bad print moves back by as much; that move is the repair, not a new event.
    repair = reversed_.groupby(by).shift(1, fill_value=False).astype(bool)
    persistent = extreme & ~reversed_ & ~repair
    flags = []
    for symbol, rows in clean[persistent].groupby("symbol"):
        examples = "; ".join(
            f"{ts:%Y-%m-%d %H:%M} {np.expm1(move[i]):+.0%}" for i, ts in rows["timestamp"].head(MAX_EXAMPLES).items()
        )
        flags.append(
            Flag(
                "split_like_move",
                str(symbol),
                len(rows),
                f"moves beyond ±{policy.jump_threshold} log that persisted: {examples}",
            )
        )
    return flags


def _stale_runs(clean: pd.DataFrame, policy: ValidationPolicy) -> dict[str, list[Flag]]:
    """``stale_price`` flags, one per run: flat bars repeating the previous close (``stale_run``), or
    a bit-identical OHLC tuple with high > low repeated bar after bar (``stale_ohlc_run``).

    A run's count is the number of repeating bars (the bar they repeat is not counted); it is
    flagged when the repeated bar plus its repeats reach the run length of the policy.
    """
    prices = clean[list(PRICE_COLUMNS)]
    prev = prices.groupby(clean["symbol"], sort=False).shift(1)
    flat = (clean["close"] == prev["close"]) & (clean["high"] == clean["low"])
    same = (prices == prev).all(axis=1) & (clean["high"] > clean["low"])
    since = clean["timestamp"].groupby(clean["symbol"], sort=False).shift(1)  # the bar the run repeats
    flags: dict[str, list[Flag]] = {}
    for mask, length, kind in ((flat, policy.stale_run, "flat"), (same, policy.stale_ohlc_run, "tuple")):
        if not mask.any():
            continue
        run_id = (~mask).cumsum()  # a symbol's first bar never repeats, so runs never span two symbols
        rows = clean[mask].assign(_run=run_id[mask], _printing=clean.loc[mask, "volume"] > 0, _since=since[mask])
        runs = rows.groupby("_run", sort=False).agg(
            symbol=("symbol", "first"),
            first=("_since", "first"),
            last=("timestamp", "last"),
            n=("symbol", "size"),
            printing=("_printing", "sum"),
            open=("open", "first"),
            high=("high", "first"),
            low=("low", "first"),
            close=("close", "first"),
        )
        for run in runs[runs["n"] + 1 >= length].itertuples():
            span = f"{run.first:%Y-%m-%d %H:%M}..{run.last:%Y-%m-%d %H:%M}"
            if kind == "flat":
                detail = f"{run.n} flat bar(s) repeating the close {run.close:.6g}, {span}"
            else:
                detail = (
                    f"OHLC {run.open:.6g}/{run.high:.6g}/{run.low:.6g}/{run.close:.6g} on {run.n + 1} consecutive "
                    f"bars, bit-identical, {span} (volume printing on {run.printing} of the {run.n} repeats)"
                )
            flags.setdefault(str(run.symbol), []).append(Flag("stale_price", str(run.symbol), int(run.n), detail))
    return flags


def _expected(delivered: pd.DataFrame, calendar: str, interval: str) -> pd.DatetimeIndex | None:
    """The calendar's bars over the delivered range, or None when that range is absurdly long."""
    first, last = delivered["timestamp"].min(), delivered["timestamp"].max()
    span = 1 + (last - first) / pd.Timedelta(INTERVALS[interval])
    if span > MAX_EXPECTED_BARS:
        log.warning("gap checks skipped: %s..%s would need %.3g %s bars of %s", first, last, span, interval, calendar)
        return None
    return expected_bars(calendar, first, last, interval)


def _series_flags(
    clean: pd.DataFrame, delivered: pd.DataFrame, calendar: str, interval: str, policy: ValidationPolicy
) -> list[Flag]:
    """Gaps and off-calendar bars are judged on what the source delivered (quarantined rows
    included: their absence from the lake is already explained by quarantine); stale prices and
    zero volume on the clean bars. Extended-hours bars kept (``session='extended'``) are neither
    off-calendar nor expected."""
    flags: list[Flag] = []
    if clean.empty:
        return flags
    expected = _expected(delivered, calendar, interval)
    stale = _stale_runs(clean, policy)
    extended = delivered["_extended"] if "_extended" in delivered.columns else pd.Series(False, index=delivered.index)
    delivered_by_symbol = dict(tuple(delivered.groupby("symbol", sort=False)["timestamp"]))
    extended_by_symbol = dict(tuple(delivered[extended].groupby("symbol", sort=False)["timestamp"]))
    for symbol, rows in clean.groupby("symbol", sort=False):
        ts = pd.DatetimeIndex(delivered_by_symbol[symbol].sort_values().unique())
        if expected is not None:
            window = expected[(expected >= ts[0]) & (expected <= ts[-1])]
            missing = window.difference(ts)
            extra = ts.difference(expected)
            if symbol in extended_by_symbol:
                extra = extra.difference(pd.DatetimeIndex(extended_by_symbol[symbol]))
            if len(missing):
                shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in missing[:MAX_EXAMPLES])
                flags.append(
                    Flag(
                        "calendar_gap",
                        str(symbol),
                        len(missing),
                        f"{len(missing)} expected {calendar} bar(s) missing: {shown}",
                    )
                )
            if len(extra):
                shown = ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in extra[:MAX_EXAMPLES])
                flags.append(
                    Flag(
                        "off_calendar",
                        str(symbol),
                        len(extra),
                        f"{len(extra)} bar(s) not on the {calendar} calendar: {shown}",
                    )
                )
        flags += stale.get(str(symbol), [])
        zero = int((rows["volume"] == 0).sum())
        if zero:
            first = rows.loc[rows["volume"] == 0, "timestamp"].iloc[0]
            flags.append(
                Flag("zero_volume", str(symbol), zero, f"{zero} bar(s) with zero volume, first {first:%Y-%m-%d}")
            )
    return flags


def _printable(text: object) -> str:
    """Text safe for any DB and terminal: control characters (NUL...) escaped, as repr() would."""
    value = str(text)
    return value if value.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)


def _session_mode(calendar: str, interval: str, session: str | None) -> str | None:
    """The session filter that applies: only intraday bars on an exchange calendar have sessions."""
    if interval != "1d" and is_exchange_calendar(calendar):
        return session or "regular"
    if session:
        log.info("session %r ignored: %s bars on calendar %s have no hours to filter", session, interval, calendar)
    return None


def validate_bars(
    frame: pd.DataFrame, calendar: str, interval: str, policy: ValidationPolicy, session: str | None = None
) -> ValidationResult:
    """Apply every rule to a provider's frame; see the module docstring for the rules and sessions."""
    require_columns(frame, OHLCV_COLUMNS, "provider frame")
    frame = frame.reset_index(drop=True)
    if SOURCE_ROW not in frame.columns:
        frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    mode = _session_mode(calendar, interval, session)
    position = session_position(frame["timestamp"], calendar) if mode else pd.Series("", index=frame.index)
    outside = (position == EXTENDED) & (mode == "regular")
    read = frame
    frame = frame[~outside].copy()
    frame["_extended"] = position[~outside] == EXTENDED
    marks = _Marks(frame.index)
    numeric = _row_rules(frame, policy, marks)
    _duplicates(numeric, marks)
    flags = _out_of_order(numeric[~marks.bad])

    standing = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    _mark("implausible_value", implausible_vs_history(standing, policy), marks)
    ordered = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    flags += _jumps(ordered, policy, marks)
    clean = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    delivered = frame[frame["timestamp"].notna() & frame["symbol"].notna()]
    flags += _series_flags(clean, delivered, calendar, interval, policy)

    bad_index = marks.rule[marks.bad].index
    raw = (
        frame.loc[bad_index, list(OHLCV_COLUMNS)]
        .astype(object)
        .where(frame.loc[bad_index, list(OHLCV_COLUMNS)].notna(), None)
    )
    quarantine = pd.DataFrame(
        {
            "symbol": frame.loc[bad_index, "symbol"].astype("string").fillna("").map(_printable).astype(object),
            "timestamp": frame.loc[bad_index, "timestamp"],
            "rule": marks.rule.loc[bad_index],
            "reason": [_printable("; ".join(marks.reasons[i])) for i in bad_index],
            SOURCE_ROW: frame.loc[bad_index, SOURCE_ROW].astype("int64"),
            "raw": [
                {k: (_printable(v) if v is not None else None) for k, v in row.items()}
                for row in raw.to_dict("records")
            ],
        }
    )
    report = _report(read, outside, clean, quarantine, flags, policy, mode)
    log.info("validation: %s", report.summary())
    return ValidationResult(
        clean=clean[list(OHLCV_COLUMNS)].reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        report=report,
    )


def _report(
    read: pd.DataFrame,
    outside: pd.Series,
    clean: pd.DataFrame,
    quarantine: pd.DataFrame,
    flags: list[Flag],
    policy: ValidationPolicy,
    session: str | None,
) -> ValidationReport:
    symbols: dict[str, SymbolReport] = {}
    names = read["symbol"].astype("string").fillna("")
    for symbol, n in names.value_counts().items():
        symbols[_printable(symbol)] = SymbolReport(_printable(symbol), rows_read=int(n))
    for symbol, n in names[outside].value_counts().items():
        symbols[_printable(symbol)].rows_outside_session = int(n)
    for symbol, rows in clean.groupby("symbol"):
        rep = symbols[_printable(symbol)]
        rep.rows_clean = len(rows)
        rep.first, rep.last = rows["timestamp"].iloc[0].isoformat(), rows["timestamp"].iloc[-1].isoformat()
    for (symbol, rule), n in quarantine.groupby(["symbol", "rule"]).size().items():
        symbols[str(symbol)].quarantined[str(rule)] = int(n)
    flagged: Counter[str] = Counter()
    for flag in flags:
        rep = symbols[_printable(flag.symbol)]
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
