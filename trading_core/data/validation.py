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

This module runs the rules in that order and builds the quarantine; the rules live beside it: row
rules in :mod:`~trading_core.data.row_rules` (``implausible_value`` in
:mod:`~trading_core.data.magnitudes`), series flags in :mod:`~trading_core.data.series_flags`, and
the report in :mod:`~trading_core.data.validation_report`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trading_core.data.calendars import EXTENDED, is_exchange_calendar, session_position
from trading_core.data.magnitudes import implausible_vs_history
from trading_core.data.request import ValidationPolicy
from trading_core.data.row_rules import Marks, duplicates, extreme_jumps, row_rules
from trading_core.data.schema import OHLCV_COLUMNS, SOURCE_ROW, require_columns
from trading_core.data.series_flags import out_of_order, series_flags
from trading_core.data.validation_report import ValidationReport, build_report, printable

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


@dataclass
class ValidationResult:
    clean: pd.DataFrame
    """Rows that passed, sorted by symbol and timestamp, contract columns only."""
    quarantine: pd.DataFrame
    """Rejected rows: symbol, timestamp, rule, reason, source_row, raw (dict of the row's fields)."""
    report: ValidationReport


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
    marks = Marks(frame.index)
    numeric = row_rules(frame, policy, marks)
    duplicates(numeric, marks)
    flags = out_of_order(numeric[~marks.bad])

    standing = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    marks.add_reasons("implausible_value", implausible_vs_history(standing, policy))
    ordered = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    flags += extreme_jumps(ordered, policy, marks)
    clean = numeric[~marks.bad].sort_values(["symbol", "timestamp"], kind="stable")
    delivered = frame[frame["timestamp"].notna() & frame["symbol"].notna()]
    flags += series_flags(clean, delivered, calendar, interval, policy)

    bad_index = marks.rule[marks.bad].index
    raw = (
        frame.loc[bad_index, list(OHLCV_COLUMNS)]
        .astype(object)
        .where(frame.loc[bad_index, list(OHLCV_COLUMNS)].notna(), None)
    )
    quarantine = pd.DataFrame(
        {
            "symbol": frame.loc[bad_index, "symbol"].astype("string").fillna("").map(printable).astype(object),
            "timestamp": frame.loc[bad_index, "timestamp"],
            "rule": marks.rule.loc[bad_index],
            "reason": [printable("; ".join(marks.reasons[i])) for i in bad_index],
            SOURCE_ROW: frame.loc[bad_index, SOURCE_ROW].astype("int64"),
            "raw": [
                {k: (printable(v) if v is not None else None) for k, v in row.items()}
                for row in raw.to_dict("records")
            ],
        }
    )
    report = build_report(read, outside, clean, quarantine, flags, policy, mode)
    log.info("validation: %s", report.summary())
    return ValidationResult(
        clean=clean[list(OHLCV_COLUMNS)].reset_index(drop=True),
        quarantine=quarantine.reset_index(drop=True),
        report=report,
    )
