"""The bar interval a file's timestamps are spaced by (``1m`` .. ``1h``, ``1d``), inferred per symbol.

Files do not say their interval; :func:`infer_interval` reads it from the spacing of the parsed
timestamps (:mod:`trading_core.data.timestamps`), so the file provider can check it against a
requested ``--interval`` and the calendar checks know which bars to expect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trading_core.errors import SchemaError

_DAILY_MAX = pd.Timedelta(days=4)
"""Spacing up to which bars count as daily: Friday -> Monday is 3 days, plus one holiday."""

# Supported bar spacings; the names are the platform's interval names (schema.INTERVALS).
_SPACINGS: dict[pd.Timedelta, str] = {
    pd.Timedelta(minutes=1): "1m",
    pd.Timedelta(minutes=5): "5m",
    pd.Timedelta(minutes=15): "15m",
    pd.Timedelta(minutes=30): "30m",
    pd.Timedelta(hours=1): "1h",
}


def _spacing_name(gap: pd.Timedelta) -> str | None:
    if gap in _SPACINGS:
        return _SPACINGS[gap]
    return "1d" if pd.Timedelta(days=1) <= gap <= _DAILY_MAX else None


def infer_interval(timestamps: pd.Series, symbols: pd.Series) -> tuple[str | None, dict[str, str]]:
    """The interval the bars are spaced by, and each symbol's own spacing name.

    Per symbol, the most frequent gap between consecutive distinct timestamps (ties: the smaller)
    names its interval: one of the supported intraday spacings, or ``1d`` for 1 to 4 days (weekends
    and holidays). Symbols with at least three bars decide when there are any (two bars of a
    sparse symbol are weak evidence); a symbol whose spacing is no supported interval is left to
    the calendar checks when others name one. Returns ``(None, {})`` when no symbol has two bars.
    Raises :class:`SchemaError` when no symbol's spacing is supported, or when the deciding
    symbols' intervals disagree (daily and hourly bars in one file).
    """
    ok = (timestamps.notna() & symbols.notna()).to_numpy()
    codes, labels = pd.factorize(symbols[ok].astype(str))
    ns = timestamps[ok].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    order = np.lexsort((ns, codes))
    codes, ns = codes[order], ns[order]
    gap = np.diff(ns)
    same = (codes[1:] == codes[:-1]) & (gap > 0)
    if not same.any():
        return None, {}
    pairs = pd.DataFrame({"code": codes[1:][same], "gap": gap[same]})
    counts = pairs.value_counts().rename("n").reset_index()
    support = counts.groupby("code")["n"].transform("sum")
    counts = counts.assign(support=support)
    counts = counts.sort_values(["code", "n", "gap"], ascending=[True, False, True], kind="stable")
    first = counts.drop_duplicates("code")
    modes = pd.DataFrame(
        {"gap": pd.to_timedelta(first["gap"].to_numpy()), "support": first["support"].to_numpy()},
        index=labels[first["code"].to_numpy()],
    )
    named = {str(s): _spacing_name(row.gap) for s, row in modes.iterrows()}
    names = {s: n for s, n in named.items() if n is not None}
    if not names:
        symbol, row = next(iter(modes.sort_values("support", ascending=False, kind="stable").iterrows()))
        supported = ", ".join([*_SPACINGS.values(), "1d"])
        raise SchemaError(f"symbol {symbol}'s bars are mostly {row.gap} apart: not a supported interval ({supported})")
    strong = [s for s in names if modes.loc[s, "support"] >= 2]
    deciding = {s: names[s] for s in (strong or names)}
    distinct = sorted(set(deciding.values()), key=list(deciding.values()).index)
    if len(distinct) > 1:
        example = {name: next(s for s, n in deciding.items() if n == name) for name in distinct}
        shown = ", ".join(f"{s} {n}" for n, s in example.items())
        raise SchemaError(
            f"symbols hold bars of different intervals ({shown}); ingest each interval separately with --symbols"
        )
    return distinct[0], names
