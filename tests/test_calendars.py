from __future__ import annotations

import pandas as pd
import pytest

from trading_core.data.calendars import expected_bars
from trading_core.errors import ConfigError


def test_nyse_sessions_skip_weekends_and_holidays() -> None:
    days = expected_bars("XNYS", "2024-12-23", "2025-01-03")
    assert pd.Timestamp("2024-12-25", tz="UTC") not in days
    assert pd.Timestamp("2025-01-01", tz="UTC") not in days
    assert len(days) == 8
    assert str(days.tz) == "UTC"


def test_continuous_and_weekdays() -> None:
    assert len(expected_bars("24/7", "2024-01-01", "2024-01-07")) == 7
    assert len(expected_bars("24/7", "2024-01-01", "2024-01-01", "1h")) == 24
    assert len(expected_bars("weekdays", "2024-01-01", "2024-01-07")) == 5


def test_intraday_nyse_bars_follow_the_session_in_utc() -> None:
    summer = expected_bars("XNYS", "2024-07-01", "2024-07-01", "1h")
    winter = expected_bars("XNYS", "2024-01-02", "2024-01-02", "1h")
    assert summer[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")
    assert winter[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")


def test_unknown_calendar() -> None:
    with pytest.raises(ConfigError, match="unknown calendar"):
        expected_bars("NOPE", "2024-01-01", "2024-01-05")
