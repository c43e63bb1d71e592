"""Row rules: what condemns one row to quarantine, with a reason naming the field and the values.

:class:`Marks` collects the verdicts (the first rule a row breaks names it, every broken rule is in
its reason). :func:`row_rules` applies the per-row rules (``schema``, ``missing_values``,
``non_positive_price``, ``ohlc_order``, ``negative_volume``, the absolute bounds of
``implausible_value``), :func:`duplicates` the ``duplicate`` rule and :func:`extreme_jumps`
``extreme_jump``, which also flags the extreme moves that persist (``split_like_move``). The order
in which :func:`~trading_core.data.validation.validate_bars` calls them is part of the contract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trading_core.data.magnitudes import outside_bounds
from trading_core.data.request import ValidationPolicy
from trading_core.data.schema import NUMERIC_COLUMNS, PRICE_COLUMNS, SCHEMA_ERROR, SOURCE_ROW, SYMBOL_RE
from trading_core.data.validation_report import MAX_EXAMPLES, Flag


class Marks:
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

    def add_reasons(self, rule: str, reasons: pd.Series) -> None:
        """Mark the rows ``reasons`` is indexed by with ``rule`` (a check that returns its reasons)."""
        mask = pd.Series(False, index=self.rule.index)
        mask.loc[reasons.index] = True
        self.add(rule, mask, reasons)


def _fmt(values: pd.Series) -> pd.Series:
    return values.map(lambda v: f"{v:.6g}" if isinstance(v, float) else repr(v)).astype(object)


def row_rules(frame: pd.DataFrame, policy: ValidationPolicy, marks: Marks) -> pd.DataFrame:
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
    marks.add_reasons("implausible_value", outside_bounds(numeric, policy))
    return numeric


def duplicates(frame: pd.DataFrame, marks: Marks) -> None:
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


def extreme_jumps(clean: pd.DataFrame, policy: ValidationPolicy, marks: Marks) -> list[Flag]:
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
