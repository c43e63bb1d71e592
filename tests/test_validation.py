"""Every validation rule on small frames, the known defects of the real S&P 500 file, and invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading_core.data.request import ValidationPolicy
from trading_core.data.validation import validate_bars
from trading_core.errors import DataQualityError, SchemaError

POLICY = ValidationPolicy()


def bars(symbol: str = "AAA", n: int = 10, start: str = "2024-01-02", price: float = 100.0) -> pd.DataFrame:
    days = pd.bdate_range(start, periods=n, tz="UTC")
    close = price * np.exp(np.cumsum(np.full(n, 0.001)))
    return pd.DataFrame(
        {
            "timestamp": days,
            "symbol": symbol,
            "open": close * 0.999,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e6,
        }
    )


def run(frame: pd.DataFrame, policy: ValidationPolicy = POLICY, calendar: str = "weekdays"):  # type: ignore[no-untyped-def]
    return validate_bars(frame, calendar, "1d", policy)


def quarantined(result, rule: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    return result.quarantine[result.quarantine.rule == rule]


def test_clean_frame_passes_untouched() -> None:
    frame = bars()
    result = run(frame)
    assert result.report.rows_quarantined == 0 and result.report.passed
    pd.testing.assert_frame_equal(result.clean, frame)


def test_schema_rule_names_the_field_and_value() -> None:
    frame = bars().astype({"open": object})
    frame.loc[3, "open"] = "n/a?"
    frame.loc[4, "timestamp"] = pd.NaT
    frame.loc[5, "symbol"] = "../etc"
    result = run(frame)
    q = quarantined(result, "schema")
    assert len(q) == 3
    assert "field 'open' = n/a? is not a finite number" in q.reason.iloc[0]
    assert "timestamp" in q.reason.iloc[1]
    assert "not a valid ticker" in q.reason.iloc[2]
    assert q.source_row.tolist() == [4, 5, 6]


def test_missing_values_lists_the_fields() -> None:
    frame = bars()
    frame.loc[2, ["open", "high"]] = np.nan
    result = run(frame)
    assert quarantined(result, "missing_values").reason.iloc[0] == "missing_values: missing open, high"


def test_non_positive_price_and_negative_volume() -> None:
    frame = bars()
    frame.loc[1, "low"] = 0.0
    frame.loc[6, "volume"] = -5
    result = run(frame)
    assert "low 0 <= 0" in quarantined(result, "non_positive_price").reason.iloc[0]
    assert "volume -5 < 0" in quarantined(result, "negative_volume").reason.iloc[0]


def test_ohlc_order_catches_both_sides_with_tolerance() -> None:
    frame = bars()
    frame.loc[2, "high"] = frame.loc[2, "close"] * 0.98  # high below the close (AOS 2014-05-19 style)
    frame.loc[5, "low"] = frame.loc[5, "open"] * 1.02  # low above the open
    frame.loc[7, "high"] = frame.loc[7, "close"] * (1 - 1e-12)  # float noise: tolerated
    result = run(frame)
    q = quarantined(result, "ohlc_order")
    assert q.source_row.tolist() == [3, 6]
    assert "high" in q.reason.iloc[0] and "< max(open, close)" in q.reason.iloc[0]
    assert "> min(open, close)" in q.reason.iloc[1]


def test_duplicates_keep_the_first_and_say_whether_they_conflict() -> None:
    frame = bars()
    frame = pd.concat([frame, frame.iloc[[3]], frame.iloc[[4]].assign(close=frame.close[4] * 1.001)], ignore_index=True)
    result = run(frame)
    q = quarantined(result, "duplicate")
    assert len(q) == 2 and len(result.clean) == 10
    assert "identical" in q.reason.iloc[0] and "source row 4" in q.reason.iloc[0]
    assert "conflicting: close" in q.reason.iloc[1]


def test_out_of_order_rows_are_flagged_and_sorted() -> None:
    frame = bars().iloc[[0, 1, 4, 2, 3, 5, 6, 7, 8, 9]].reset_index(drop=True)
    result = run(frame)
    assert result.report.flagged_by_rule["out_of_order"] == 2
    assert result.clean["timestamp"].is_monotonic_increasing


def test_bad_print_is_quarantined_but_a_split_like_move_is_kept() -> None:
    spike = bars("LNT", 8, price=35.7)
    spike.loc[4, ["close", "low", "open"]] = [17.87, 17.8, 17.9]  # like LNT 2016-05-19: half price for one bar
    spike.loc[4, "high"] = 18.0
    spin_off = bars("EBAY", 8, price=66.0)
    spin_off.loc[4:, ["open", "high", "low", "close"]] *= 0.43  # like EBAY 2015-07-20: -57% that stays
    result = run(pd.concat([spike, spin_off], ignore_index=True))
    q = quarantined(result, "extreme_jump")
    assert q.symbol.tolist() == ["LNT"] and "bad print" in q.reason.iloc[0]
    assert result.report.flagged_by_rule == {"split_like_move": 1}
    flag = next(f for f in result.report.flags if f.rule == "split_like_move")
    assert flag.symbol == "EBAY" and "-57%" in flag.detail


def test_gaps_against_the_exchange_calendar() -> None:
    frame = bars(n=15, start="2024-06-24")  # weekdays including 2024-07-04 (an NYSE holiday)
    frame = frame[frame.timestamp != pd.Timestamp("2024-07-02", tz="UTC")]
    result = run(frame, calendar="XNYS")
    gaps = {f.rule: f for f in result.report.flags}
    assert gaps["calendar_gap"].count == 1 and "2024-07-02" in gaps["calendar_gap"].detail
    assert gaps["off_calendar"].count == 1 and "2024-07-04" in gaps["off_calendar"].detail


def test_stale_prices_and_zero_volume_are_flagged() -> None:
    frame = bars(n=12)
    frame.loc[3:8, ["open", "high", "low", "close"]] = 50.0
    frame.loc[3:8, "volume"] = 0.0
    result = run(frame, ValidationPolicy(jump_threshold=5.0))
    assert result.report.flagged_by_rule["stale_price"] == 5
    assert result.report.flagged_by_rule["zero_volume"] == 6
    assert result.report.rows_quarantined == 0


def test_known_defects_of_the_sp500_file() -> None:
    """Rows reproduced from ../shared/data/README.md's list of defects in sp500_daily."""
    raw = pd.DataFrame(
        [
            ["2016-01-11", "DHR", 88.0, 88.9, 87.5, 88.4, 2.1e6],
            ["2016-01-12", "DHR", np.nan, np.nan, np.nan, 88.1, 0.0],  # placeholder row, volume 0
            ["2016-01-13", "DHR", 88.2, 88.6, 86.9, 87.0, 2.4e6],
            ["2014-05-16", "AOS", 24.1, 24.5, 23.9, 24.4, 5.0e5],
            ["2014-05-19", "AOS", 24.3, 23.595, 23.85, 24.445, 6.0e5],  # high < max(open, close), low > high
            ["2016-05-18", "LNT", 35.5, 35.9, 35.2, 35.6, 1.0e6],
            ["2016-05-19", "LNT", 35.6, 35.9, 35.085, 17.87, 1.1e6],  # wrong close
            ["2016-05-20", "LNT", 35.7, 36.0, 35.4, 35.8, 1.0e6],
        ],
        columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"],
    )
    raw["timestamp"] = pd.to_datetime(raw["timestamp"], utc=True)
    result = run(raw, ValidationPolicy(max_bad_share=1.0))
    q = result.quarantine.set_index("symbol")
    assert q.loc["DHR", "rule"] == "missing_values"
    assert q.loc["AOS", "rule"] == "ohlc_order"
    assert q.loc["LNT", "rule"] == "ohlc_order" and "17.87" in q.loc["LNT", "reason"]
    assert result.report.rows_clean == 5


def test_bad_share_over_policy_raises_with_the_worst_symbols() -> None:
    frame = bars(n=20)
    frame.loc[:4, "open"] = np.nan
    result = run(frame, ValidationPolicy(max_bad_share=0.1))
    assert not result.report.passed
    with pytest.raises(DataQualityError, match=r"5 quarantined \(25.000%.*AAA 5/20"):
        result.report.raise_if_failed("test")


def test_missing_column_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="volume"):
        run(bars().drop(columns="volume"))


finite = st.one_of(st.floats(min_value=-10, max_value=1e4), st.just(float("nan")))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "C/D"]), st.integers(0, 30), finite, finite, finite, finite, finite),
        min_size=1,
        max_size=60,
    )
)
def test_clean_output_always_satisfies_the_contract(rows) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(rows, columns=["symbol", "day", "open", "high", "low", "close", "volume"])
    frame.insert(0, "timestamp", pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(frame.pop("day"), unit="D"))
    result = validate_bars(frame, "24/7", "1d", ValidationPolicy(max_bad_share=1.0))
    clean, report = result.clean, result.report
    assert report.rows_clean + report.rows_quarantined == report.rows_read == len(frame)
    assert not clean.duplicated(["symbol", "timestamp"]).any()
    assert clean.notna().all().all()
    assert (clean[["open", "high", "low", "close"]] > 0).all().all() and (clean["volume"] >= 0).all()
    assert (clean["low"] <= clean[["open", "close"]].min(axis=1) * (1 + 1e-9)).all()
    assert (clean["high"] >= clean[["open", "close"]].max(axis=1) * (1 - 1e-9)).all()
    for _, g in clean.groupby("symbol"):
        assert g["timestamp"].is_monotonic_increasing


def test_implausible_magnitudes_on_every_field_never_reach_the_clean_bars() -> None:
    frame = bars(n=30)
    frame.loc[10, ["open", "high"]] = 1e30  # the cases: absurd open/high/low and volume, close untouched
    frame.loc[12, "high"] = 1e30
    frame.loc[14, "low"] = 1e-30
    frame.loc[16, "volume"] = 1e25
    frame.loc[18, "volume"] = 1e6 * 5e4  # under max_volume, 50,000x the symbol's usual volume
    frame.loc[20, "high"] = frame.loc[20, "close"] * 30  # 30x the bar's own close
    frame.loc[22, ["open", "high", "low", "close"]] *= 500  # a whole bar 500x the recent closes
    result = run(frame, ValidationPolicy(max_bad_share=0.5))
    q = quarantined(result, "implausible_value").set_index("source_row")
    assert sorted(q.index) == [11, 13, 15, 17, 19, 21, 23]
    assert "open 1e+30 > max_price 1e+09" in q.loc[11, "reason"] and "(absolute bounds)" in q.loc[11, "reason"]
    assert "low 1e-30 < min_price 1e-10" in q.loc[15, "reason"]
    assert "volume 1e+25 > max_volume 1e+17" in q.loc[17, "reason"]
    assert "volume 5e+10 is 5e+04x the median 1e+06 of the previous 20 positive volumes" in q.loc[19, "reason"]
    assert "is 30x the bar's close" in q.loc[21, "reason"]
    assert "close " in q.loc[23, "reason"] and "of the previous 20 closes (limit 100x)" in q.loc[23, "reason"]
    clean = result.clean
    assert clean[["open", "high", "low", "close"]].max().max() < 200 and clean["volume"].max() == 1e6


def test_real_but_large_moves_are_kept() -> None:
    frame = bars(n=40)
    frame.loc[20:, ["open", "high", "low", "close"]] *= 10  # a 1:10 reverse split that stays
    frame.loc[30, "volume"] = 5e8  # a 500x volume day (the S&P 500 file's largest is 489x)
    frame.loc[5, "high"] = frame.loc[5, "close"] * 8  # an 8x intrabar high (the real files' largest is 8.2x)
    result = run(frame, ValidationPolicy(jump_threshold=5.0))
    assert result.report.rows_quarantined == 0


def test_thresholds_are_policy_fields() -> None:
    frame = bars(n=30)
    frame.loc[25, "volume"] = 1e6 * 50
    assert run(frame).report.rows_quarantined == 0
    strict = run(frame, ValidationPolicy(max_volume_ratio=20, max_bad_share=1.0))
    assert quarantined(strict, "implausible_value").source_row.tolist() == [26]


def test_repeated_ohlc_tuples_with_a_range_are_flagged_per_run() -> None:
    frame = bars(n=30)
    frame.loc[5:8, ["open", "high", "low", "close"]] = [50.0, 51.0, 49.0, 50.5]  # 4 bars: 3 repeats
    frame.loc[15:16, ["open", "high", "low", "close"]] = [60.0, 61.0, 59.0, 60.5]  # 2 bars: below the run length
    frame.loc[20:24, ["open", "high", "low", "close"]] = [70.0, 71.0, 69.0, 70.5]  # 5 bars: 4 repeats
    result = run(frame, ValidationPolicy(jump_threshold=5.0))
    stale = [f for f in result.report.flags if f.rule == "stale_price"]
    assert [f.count for f in stale] == [3, 4]
    assert stale[0].detail == (
        "OHLC 50/51/49/50.5 on 4 consecutive bars, bit-identical, 2024-01-09 00:00..2024-01-12 00:00 "
        "(volume printing on 3 of the 3 repeats)"
    )
    assert result.report.flagged_by_rule["stale_price"] == 7 and result.report.rows_quarantined == 0
    longer = run(frame, ValidationPolicy(jump_threshold=5.0, stale_ohlc_run=5))
    assert [f.count for f in longer.report.flags if f.rule == "stale_price"] == [4]


def intraday(day: str, start: str, end: str, symbol: str = "AAA") -> pd.DataFrame:
    """5-minute bars between two New York wall-clock times of ``day``, stamped in UTC."""
    stamps = pd.date_range(f"{day} {start}", f"{day} {end}", freq="5min", inclusive="left", tz="America/New_York")
    frame = bars(symbol, n=len(stamps))
    frame["timestamp"] = stamps.tz_convert("UTC")
    return frame


def test_extended_hours_are_filtered_and_counted_not_quarantined() -> None:
    days = [
        intraday("2024-11-27", "07:00", "18:00"),  # pre- and after-market around a full session
        intraday("2024-11-29", "09:30", "15:00"),  # early close at 13:00: 13:00-15:00 is after-market
        intraday("2024-12-02", "09:30", "16:00"),
    ]
    frame = pd.concat(days, ignore_index=True)
    frame.loc[3, "open"] = np.nan  # a bad pre-market bar: filtered, not quarantined
    frame.loc[60, "open"] = np.nan  # a bad regular bar: quarantined
    result = validate_bars(frame, "XNYS", "5m", ValidationPolicy(max_bad_share=0.02))
    report = result.report
    outside = 30 + 24 + 24  # 07:00-09:30, 16:00-18:00 and 13:00-15:00
    assert (report.session, report.rows_outside_session) == ("regular", outside)
    assert report.rows_read == report.rows_clean + report.rows_quarantined + report.rows_outside_session
    assert report.rows_quarantined == 1 and report.bad_share == 1 / (len(frame) - outside)
    assert report.symbols[0].rows_outside_session == outside
    assert not {"calendar_gap", "off_calendar"} & set(report.flagged_by_rule)  # overnight, holiday, early close
    assert result.clean.timestamp.dt.tz_convert("America/New_York").dt.strftime("%H:%M").between("09:30", "15:55").all()
    assert "outside the regular session (filtered)" in report.summary()


def test_extended_session_keeps_the_bars_and_a_missing_regular_bar_is_still_a_gap() -> None:
    frame = intraday("2024-11-27", "07:00", "18:00")
    frame = frame[frame.timestamp != pd.Timestamp("2024-11-27 15:00", tz="UTC")]  # 10:00 New York
    result = validate_bars(frame, "XNYS", "5m", ValidationPolicy(), session="extended")
    report = result.report
    assert report.rows_outside_session == 0 and report.rows_clean == len(frame)
    assert report.flagged_by_rule == {"calendar_gap": 1}
    assert "2024-11-27 15:00" in next(f.detail for f in report.flags if f.rule == "calendar_gap")
    assert validate_bars(frame, "XNYS", "1d", ValidationPolicy()).report.session is None  # daily: no sessions


def test_provider_reasons_and_control_characters_reach_quarantine_safely() -> None:
    frame = bars(n=5).astype({"open": object})
    frame["schema_error"] = None
    frame.loc[1, "timestamp"] = pd.NaT
    frame.loc[1, "schema_error"] = "field 'timestamp' = '2024-13-45' is not a date/time"
    frame.loc[2, "open"] = "1\x00"
    frame.loc[3, "symbol"] = "BAD\x00SYM"
    result = run(frame, ValidationPolicy(max_bad_share=1.0))
    q = result.quarantine.set_index("source_row")
    assert q.loc[2, "reason"] == "schema: field 'timestamp' = '2024-13-45' is not a date/time"
    assert "\x00" not in "".join(q.reason) + "".join(q.symbol) and "1\\x00" in q.loc[3, "reason"]
    assert q.loc[4, "symbol"] == "BAD\\x00SYM" and q.loc[3, "raw"]["open"] == "1\\x00"
