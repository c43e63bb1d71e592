"""The execution kernel against a plain per-asset reference, row independence, held assets and the ledger check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading_core.execution import Books, execute, unbalanced
from trading_core.rl.config import EnvConfig

COSTS = EnvConfig(cost_bps=1.5, slippage_bps=2.5, impact_coef=0.3)


def _reference(books: Books, e: int, w: list[float], o: list[float], c1: list[float], c0: list[float],
               sigma: list[float], adv: list[float], hold: list[bool]) -> dict[str, float | list[float]]:  # fmt: skip
    """Portfolio ``e`` booked one asset at a time in plain floats: the arithmetic the kernel must equal."""
    n = len(w)
    cash, equity_prev, peak = float(books.cash[e]), float(books.equity[e]), float(books.peak[e])
    old = [float(x) for x in books.shares[e]]
    entry = [float(x) for x in books.entry_price[e]]
    equity_open = cash + sum(old[j] * o[j] for j in range(n))
    new, new_entry, fees, impact = [], [], [], []
    for j in range(n):
        target = old[j] if hold[j] else w[j] * equity_open / o[j]
        trade = target - old[j]
        traded = abs(trade) * o[j]
        fees.append(traded * (COSTS.cost_bps + COSTS.slippage_bps) * 1e-4)
        impact.append(COSTS.impact_coef * sigma[j] * math.sqrt(traded / adv[j]) * traded)
        cash -= trade * o[j]
        if target == 0:
            price = 0.0
        elif old[j] == 0 or (target > 0) != (old[j] > 0):  # opened or flipped: restart at the fill
            price = o[j]
        elif abs(target) > abs(old[j]):  # added: average in
            price = (old[j] * entry[j] + trade * o[j]) / target
        else:  # reduced: unchanged
            price = entry[j]
        new.append(target)
        new_entry.append(price)
    cash -= sum(fees) + sum(impact)
    equity = cash + sum(new[j] * c1[j] for j in range(n))
    overnight = sum(old[j] * (o[j] - c0[j]) for j in range(n))
    intraday = sum(new[j] * (c1[j] - o[j]) for j in range(n))
    return {
        "shares": new, "entry": new_entry, "cash": cash, "equity": equity, "fees": sum(fees), "impact": sum(impact),
        "ledger": equity_prev + overnight + intraday - sum(fees) - sum(impact), "peak": max(peak, equity),
    }  # fmt: skip


def _case(seed: int, e: int, n: int, hold_share: float) -> tuple[Books, dict[str, np.ndarray]]:
    """Consistent books (equity = cash + shares x previous close) with long, short and flat positions."""
    rng = np.random.default_rng(seed)
    c0 = rng.uniform(10.0, 200.0, (e, n))
    shares = rng.choice([-1.0, 0.0, 1.0], (e, n)) * rng.uniform(10.0, 3000.0, (e, n))
    cash = rng.uniform(2e5, 1e6, e)
    equity = cash + (shares * c0).sum(axis=1)
    entry = np.where(shares != 0, c0 * rng.uniform(0.8, 1.2, (e, n)), 0.0)
    books = Books(cash, shares, entry, equity, equity * rng.uniform(1.0, 1.3, e))
    o = c0 * rng.uniform(0.95, 1.05, (e, n))
    inputs = {
        "weights": rng.choice([-1.0, 0.0, 0.5, 1.0], (e, n)) * rng.uniform(0.0, 0.4, (e, n)),
        "open_": o,
        "close": o * rng.uniform(0.95, 1.05, (e, n)),
        "prev_close": c0,
        "sigma": rng.uniform(0.0, 0.05, (e, n)),
        "adv_value": rng.uniform(1e5, 1e8, (e, n)),
        "hold": rng.random((e, n)) < hold_share,
    }
    return books, inputs


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    e=st.integers(1, 4),
    n=st.integers(1, 6),
    hold_share=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_the_kernel_equals_a_per_asset_reference(seed: int, e: int, n: int, hold_share: float) -> None:
    books, x = _case(seed, e, n, hold_share)
    out = execute(books, **{k: v for k, v in x.items() if k != "hold"}, params=COSTS, hold=x["hold"])
    assert not unbalanced(out).any()
    for i in range(e):
        ref = _reference(books, i, *(x[k][i].tolist() for k in ("weights", "open_", "close", "prev_close")),
                         x["sigma"][i].tolist(), x["adv_value"][i].tolist(), x["hold"][i].tolist())  # fmt: skip
        np.testing.assert_allclose(out.books.shares[i], ref["shares"], rtol=1e-12)
        np.testing.assert_allclose(out.books.entry_price[i], ref["entry"], rtol=1e-12)
        for name, got in (("cash", out.books.cash), ("equity", out.books.equity), ("fees", out.fees_total),
                          ("impact", out.impact_total), ("ledger", out.ledger), ("peak", out.books.peak)):  # fmt: skip
            assert got[i] == pytest.approx(ref[name], rel=1e-11, abs=1e-6), (name, i)
        assert out.portfolio_return[i] == pytest.approx(ref["equity"] / float(books.equity[i]) - 1.0, abs=1e-12)
    held = x["hold"]
    assert (out.trade[held] == 0).all() and (out.fees[held] == 0).all() and (out.impact[held] == 0).all()
    assert (out.books.shares[held] == books.shares[held]).all()
    assert (out.books.entry_price[held] == books.entry_price[held]).all()


def test_portfolios_are_booked_independently_bit_for_bit() -> None:
    """Stepping E portfolios at once (the vectorised env) gives each exactly what it gets alone (a paper account)."""
    books, x = _case(7, 5, 30, 0.0)
    together = execute(books, **{k: v for k, v in x.items() if k != "hold"}, params=COSTS)
    for i in range(5):
        alone = execute(
            Books(*(np.ascontiguousarray(a[i : i + 1]) for a in books)),
            **{k: np.ascontiguousarray(v[i : i + 1]) for k, v in x.items() if k != "hold"},
            params=COSTS,
        )
        for name in ("equity_open", "traded", "fees", "impact", "ledger", "portfolio_return", "drawdown"):
            assert (getattr(alone, name)[0] == getattr(together, name)[i]).all(), name
        for a, b in zip(alone.books, together.books, strict=True):
            assert (a[0] == b[i]).all()


def test_a_full_hold_trades_nothing_and_only_marks() -> None:
    books, x = _case(3, 2, 4, 1.0)
    out = execute(books, **{k: v for k, v in x.items() if k != "hold"}, params=COSTS, hold=x["hold"])
    assert (out.books.cash == books.cash).all() and (out.costs == 0).all()
    np.testing.assert_array_equal(out.books.equity, books.cash + (books.shares * x["close"]).sum(axis=1))


def test_unbalanced_books_are_flagged_per_portfolio() -> None:
    books, x = _case(5, 3, 4, 0.0)
    args = {k: v for k, v in x.items() if k != "hold"}
    assert not unbalanced(execute(books, **args, params=COSTS)).any()
    wrong = books._replace(equity=books.equity + np.array([0.0, 250.0, 0.0]))  # stored equity altered for one
    assert unbalanced(execute(wrong, **args, params=COSTS)).tolist() == [False, True, False]
    nan = books._replace(cash=np.array([np.nan, 1e6, 1e6]))
    assert unbalanced(execute(nan, **args, params=COSTS))[0]
