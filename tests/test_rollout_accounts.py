"""What the monitor reads of the paper ledger (trading_core/rollout/accounts.py): the newest account that
traded a version and its daily returns, booked for real by the broker in a SQLite app DB."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trading_core.db.session import upgrade_database
from trading_core.rl.config import EnvConfig
from trading_core.rollout.accounts import latest_account, paper_returns
from trading_core.rollout.broker import equity_curve, mark_bar, open_account, record_decision

SYMBOLS = ["AAA", "BBB"]
BARS = pd.date_range("2024-03-01", periods=6, freq="B", tz="UTC")
CLOSES = {"AAA": [10.0, 10.5, 10.2, 11.0, 11.4, 11.1], "BBB": [20.0, 19.5, 19.9, 20.4, 20.1, 20.8]}


def _prices(k: int) -> pd.DataFrame:
    closes = [CLOSES[s][k] for s in SYMBOLS]
    opens = [CLOSES[s][k - 1] if k else CLOSES[s][0] for s in SYMBOLS]
    return pd.DataFrame({"symbol": SYMBOLS, "open": opens, "close": closes})


def _trade(url: str, ab_id: str, version: str, bars: range) -> str:
    """Open an arm trading ``version`` and book ``bars``: half in AAA from the first close on."""
    account = open_account(
        url, ab_id=ab_id, arm="challenger", model_name="hybrid", model_version=version, symbols=SYMBOLS,
        initial_cash=1e6, execution=EnvConfig(),
    )  # fmt: skip
    for k in bars:
        mark_bar(url, account, BARS[k], _prices(k))
        weights = {"AAA": 0.5, "BBB": 0.0}
        record_decision(url, account, BARS[k], target_weights=weights, sigma={s: 0.02 for s in SYMBOLS},
                        adv_value={s: 1e9 for s in SYMBOLS}, policy_output={}, risk_state={})  # fmt: skip
    return account


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade_database(url)
    return url


def test_a_version_that_never_traded_has_no_returns(url: str) -> None:
    _trade(url, "ab-1", "3", range(4))
    assert latest_account(url, "hybrid", "4") is None and paper_returns(url, "hybrid", "4") is None
    assert latest_account(url, "other-model", "3") is None


def test_one_mark_is_no_return_yet(url: str) -> None:
    account = _trade(url, "ab-1", "3", range(1))
    assert latest_account(url, "hybrid", "3") == account
    assert paper_returns(url, "hybrid", "3") is None


def test_the_returns_of_the_newest_account_from_its_second_mark(url: str) -> None:
    old = _trade(url, "ab-1", "3", range(5))
    new = _trade(url, "ab-2", "3", range(2, 6))
    assert latest_account(url, "hybrid", "3") == new != old
    returns = paper_returns(url, "hybrid", "3")
    assert returns is not None
    curve = equity_curve(url, new)
    assert list(returns.index) == list(BARS[3:6])
    assert returns.tolist() == curve["portfolio_return"].iloc[1:].tolist()
    assert returns.abs().sum() > 0, "half the book in AAA moves with it"
