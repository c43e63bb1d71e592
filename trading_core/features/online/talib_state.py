"""TA-Lib 0.8's indicators as per-symbol recursions, vectorised over symbols, one bar at a time.

Each class continues exactly the recursion TA-Lib runs from a symbol's first bar (default
compatibility, unstable period 0): the same seed (a sum accumulated in input order, divided by the
period), the same step, the same operation order, the fused multiply-adds where TA-Lib's build fuses
(EMA, MACD: ``fma(x - prev, k, prev)``; ATR: ``fma(beta, prev, alpha * tr)``), and the same
zero tests (exact, ``TA_EPSILON`` or ``TA_IS_ZERO_SCALED``). So the value at a symbol's n-th bar is
the value ``talib.X`` returns at index n of the symbol's whole history, bit for bit; the tests hold
every indicator to that against the installed TA-Lib.

Convention of every ``update``: ``idx`` are the symbols with a bar now, ``pos`` (aligned) the index of
that bar in each symbol's own sequence (0 = its first bar); the inputs are aligned with ``idx``.
Outputs are NaN before TA-Lib's first output (its lookback).
"""

from __future__ import annotations

import numpy as np

from trading_core.features.online.base import Stateful
from trading_core.features.online.numerics import TA_EPSILON, fma, is_zero_scaled, sum_rows_in_order


class Sma(Stateful):
    """``TA_SMA``: a running total (add the new value, emit total / p, drop the oldest)."""

    _state = ("total", "ring")

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.total = np.zeros(n)
        self.ring = np.zeros((period, n))

    def update(self, idx: np.ndarray, lp: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``lp``: index of this value in the SMA's own input sequence (< 0: no input yet, skipped)."""
        live = lp >= 0
        slot = np.where(live, lp, 0) % self.p
        self.ring[slot[live], idx[live]] = x[live]
        total = self.total[idx] + np.where(live, x, 0.0)
        full = lp >= self.p - 1
        out = np.where(full, total / self.p, np.nan)
        oldest = self.ring[np.where(full, lp - self.p + 1, 0) % self.p, idx]
        self.total[idx] = np.where(full, total - oldest, total)
        return out


class Ema(Stateful):
    """``TA_EMA``: seed = mean of the first p inputs, then ``fma(x - prev, 2 / (p + 1), prev)``."""

    _state = ("seed", "prev")

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.k = 2.0 / (period + 1)
        self.seed = np.zeros(n)
        self.prev = np.full(n, np.nan)

    def update(self, idx: np.ndarray, lp: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = self.p
        seeding = (lp >= 0) & (lp < p)
        seed = self.seed[idx] + np.where(seeding, x, 0.0)
        self.seed[idx] = seed
        prev = self.prev[idx]
        step = fma(x - prev, self.k, prev)
        prev = np.where(lp == p - 1, seed / p, np.where(lp >= p, step, prev))
        self.prev[idx] = prev
        return np.where(lp >= p - 1, prev, np.nan)


class EmaBank(Stateful):
    """Several ``TA_EMA`` recursions over the same input, stepped together (one fused multiply-add for
    all): row j has period ``periods[j]`` and starts ``offsets[j]`` bars into each symbol's sequence."""

    _state = ("seed", "prev")

    def __init__(self, periods: list[int], offsets: list[int], n: int) -> None:
        self.p = np.array(periods, dtype=np.int64)[:, None]
        self.offset = np.array(offsets, dtype=np.int64)[:, None]
        self.k = 2.0 / (self.p + 1.0)
        self.seed = np.zeros((len(periods), n))
        self.prev = np.full((len(periods), n), np.nan)

    def update(self, idx: np.ndarray, pos: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(rows x symbols) EMA values of this bar; NaN before each row's first output."""
        lp = pos[None, :] - self.offset
        p = self.p
        seed = self.seed[:, idx] + np.where((lp >= 0) & (lp < p), x, 0.0)
        self.seed[:, idx] = seed
        prev = self.prev[:, idx]
        step = fma(x - prev, self.k, prev)
        prev = np.where(lp == p - 1, seed / p, np.where(lp >= p, step, prev))
        self.prev[:, idx] = prev
        return np.where(lp >= p - 1, prev, np.nan)


class Macd(Stateful):
    """``TA_MACD``: EMA(slow) from the first bar, EMA(fast) seeded on the slow seed's last ``fast``
    bars (both rows of the caller's :class:`EmaBank`), their difference, and its EMA(signal) seeded on
    the first ``signal`` differences."""

    _children = ("signal",)

    def __init__(self, fast: int, slow: int, signal: int, n: int) -> None:
        if slow < fast:  # TA-Lib swaps them
            fast, slow = slow, fast
        self.fast_period, self.slow_period = fast, slow
        self.fast_offset = slow - fast
        self.first = slow - 1
        self.lookback = slow - 1 + signal - 1
        self.signal = Ema(signal, n)

    def update(
        self, idx: np.ndarray, pos: np.ndarray, fast: np.ndarray, slow: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``fast`` / ``slow``: this bar's EMA rows (NaN before their seeds)."""
        line = fast - slow
        sig = self.signal.update(idx, pos - self.first, line)
        ready = pos >= self.lookback
        line = np.where(ready, line, np.nan)
        return line, sig, np.where(ready, line - sig, np.nan)


class BBands(Stateful):
    """``TA_BBANDS`` (SMA middle band): TA-Lib's one-pass SMA running total plus its shifted-data
    variance with reseeding (when the variance falls under 1e-6 of the mean square, a squared
    deviation leaving dwarfs the rest, or every 32 periods), reproduced step for step."""

    _state = ("ma_total", "shift", "v1", "v2", "reseed_in", "ring")

    def __init__(self, period: int, dev: float, n: int) -> None:
        self.p = period
        self.dev = dev
        self.inv = 1.0 / period
        self.ma_total = np.zeros(n)
        self.shift = np.zeros(n)
        self.v1 = np.zeros(n)
        self.v2 = np.zeros(n)
        self.reseed_in = np.zeros(n, dtype=np.int64)
        self.ring = np.zeros((period, n))

    def update(self, idx: np.ndarray, pos: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, inv = self.p, self.inv
        self.ring[pos % p, idx] = x
        shift = np.where(pos == 0, x, self.shift[idx])
        ma = self.ma_total[idx] + x
        d = x - shift
        v1 = self.v1[idx] + d
        v2 = self.v2[idx] + d * d
        out_ready = pos >= p - 1
        middle = np.where(out_ready, ma / p, np.nan)
        m1 = v1 * inv
        variance = v2 * inv - m1 * m1
        old = self.ring[np.where(out_ready, pos - p + 1, 0) % p, idx]
        ma = np.where(out_ready, ma - old, ma)
        dt = old - shift
        v1 = np.where(out_ready, v1 - dt, v1)
        dt = dt * dt
        v2 = np.where(out_ready, v2 - dt, v2)
        countdown = np.where(pos == p - 1, 32 * p, self.reseed_in[idx]) - out_ready
        reseed = out_ready & ((variance < 0.000001 * (v2 * inv)) | (dt > 1000000.0 * v2) | (countdown <= 0))
        if reseed.any():
            r = np.flatnonzero(reseed)
            shift, v1, v2, variance, countdown = (a.copy() for a in (shift, v1, v2, variance, countdown))
            self._reseed(idx[r], pos[r], r, shift, v1, v2, variance, countdown)
        sd = np.where(variance != 0.0, np.sqrt(np.where(variance != 0.0, variance, 0.0)), 0.0)
        tmp = sd * self.dev
        self.ma_total[idx] = ma
        self.shift[idx] = shift
        self.v1[idx] = v1
        self.v2[idx] = v2
        self.reseed_in[idx] = countdown
        upper = np.where(out_ready, middle + tmp, np.nan)
        lower = np.where(out_ready, middle - tmp, np.nan)
        return upper, middle, lower

    def _reseed(
        self,
        sym: np.ndarray,
        pos: np.ndarray,
        r: np.ndarray,
        shift: np.ndarray,
        v1: np.ndarray,
        v2: np.ndarray,
        variance: np.ndarray,
        countdown: np.ndarray,
    ) -> None:
        """Recompute the shifted sums over the window ending at ``pos`` (in place on the r rows)."""
        p, inv = self.p, self.inv
        window = self.ring[(pos[None, :] - np.arange(p - 1, -1, -1)[:, None]) % p, sym[None, :]]  # oldest first
        total = np.zeros(len(r))
        for j in range(p):
            total = total + window[j]
        new_shift = total * inv
        a1 = np.zeros(len(r))
        a2 = np.zeros(len(r))
        for j in range(p):
            dd = window[j] - new_shift
            a1 = a1 + dd
            a2 = a2 + dd * dd
        mm = a1 * inv
        var = a2 * inv - mm * mm
        var = np.where(var < 0.000000000001 * (a2 * inv), 0.0, var)
        dd = window[0] - new_shift
        shift[r] = new_shift
        v1[r] = a1 - dd
        v2[r] = a2 - dd * dd
        variance[r] = var
        countdown[r] = 32 * p


class Rsi(Stateful):
    """``TA_RSI``: Wilder's smoothed gain/loss, seeded with the mean of the first p changes."""

    _state = ("gain", "loss")

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.inv = 1.0 / period
        self.gain = np.zeros(n)
        self.loss = np.zeros(n)

    def update(self, idx: np.ndarray, pos: np.ndarray, change: np.ndarray) -> np.ndarray:
        """``change``: close minus the previous close (ignored at pos 0)."""
        p = self.p
        g, lo = self.gain[idx], self.loss[idx]
        gd = np.where(change > 0.0, change, 0.0)
        seeding = (pos >= 1) & (pos <= p)
        smooth = pos > p
        g_s, lo_s = g + gd, lo + (gd - change)
        g_s = np.where(pos == p, g_s * self.inv, g_s)
        lo_s = np.where(pos == p, lo_s * self.inv, lo_s)
        g_w = (g * (p - 1) + gd) * self.inv
        lo_w = (lo * (p - 1) + (gd - change)) * self.inv
        g = np.where(seeding, g_s, np.where(smooth, g_w, g))
        lo = np.where(seeding, lo_s, np.where(smooth, lo_w, lo))
        self.gain[idx], self.loss[idx] = g, lo
        total = g + lo
        value = np.where(total > 0.0, 100.0 * (g / total), 0.0)
        return np.where(pos >= p, value, np.nan)


class Atr(Stateful):
    """``TA_ATR``: seed = mean of the first p true ranges, then ``fma(beta, prev, alpha * tr)``."""

    _state = ("seed", "prev")

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.beta = (period - 1.0) / period
        self.alpha = 1.0 - self.beta
        self.seed = np.zeros(n)
        self.prev = np.full(n, np.nan)

    def update(self, idx: np.ndarray, pos: np.ndarray, tr: np.ndarray) -> np.ndarray:
        p = self.p
        seed = self.seed[idx] + np.where((pos >= 1) & (pos <= p), tr, 0.0)
        self.seed[idx] = seed
        prev = self.prev[idx]
        step = fma(self.beta, prev, self.alpha * tr)
        prev = np.where(pos == p, seed / p, np.where(pos > p, step, prev))
        self.prev[idx] = prev
        return np.where(pos >= p, prev, np.nan)


class DirectionalMovement(Stateful):
    """``TA_DX`` and ``TA_ADX`` of one period: Wilder-smoothed +DM, -DM and true range."""

    _state = ("plus", "minus", "tr", "last_dx", "dx_sum", "adx")

    def __init__(self, period: int, n: int, with_adx: bool) -> None:
        self.p = period
        self.with_adx = with_adx
        self.plus, self.minus, self.tr = np.zeros(n), np.zeros(n), np.zeros(n)
        self.last_dx = np.zeros(n)
        self.dx_sum = np.zeros(n)
        self.adx = np.zeros(n)

    def update(
        self, idx: np.ndarray, pos: np.ndarray, pdm: np.ndarray, mdm: np.ndarray, tr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One-bar +DM, -DM and true range in (zero at pos 0); (DX, ADX) out."""
        p = self.p
        plus, minus, trs = self.plus[idx], self.minus[idx], self.tr[idx]
        acc = (pos >= 1) & (pos < p)
        smooth = pos >= p
        minus = np.where(acc, minus + mdm, np.where(smooth, (minus - minus / p) + mdm, minus))
        plus = np.where(acc, plus + pdm, np.where(smooth, (plus - plus / p) + pdm, plus))
        trs = np.where(acc, trs + tr, np.where(smooth, trs - trs / p + tr, trs))
        self.plus[idx], self.minus[idx], self.tr[idx] = plus, minus, trs
        minus_di = 100.0 * (minus / trs)
        plus_di = 100.0 * (plus / trs)
        di_sum = minus_di + plus_di
        dx = 100.0 * (np.abs(minus_di - plus_di) / di_sum)
        defined = smooth & (trs > 0.0) & ~((di_sum > -TA_EPSILON) & (di_sum < TA_EPSILON))
        last = self.last_dx[idx]
        dx_out = np.where(defined, dx, np.where(pos == p, 0.0, last))
        self.last_dx[idx] = np.where(smooth, dx_out, last)
        dx_out = np.where(smooth, dx_out, np.nan)
        if not self.with_adx:
            return dx_out, np.full(len(idx), np.nan)
        dx_sum = self.dx_sum[idx] + np.where(defined & (pos < 2 * p), dx, 0.0)
        self.dx_sum[idx] = dx_sum
        adx = self.adx[idx]
        adx = np.where(
            pos == 2 * p - 1,
            dx_sum / p,
            np.where((pos >= 2 * p) & defined, (adx * (p - 1) + dx) / p, adx),
        )
        self.adx[idx] = adx
        return dx_out, np.where(pos >= 2 * p - 1, adx, np.nan)


class Cci(Stateful):
    """``TA_CCI``: typical prices in a circular buffer (slot = bar index mod p, summed in slot order)."""

    _state = ("ring",)

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.ring = np.zeros((period, n))

    def update(self, idx: np.ndarray, pos: np.ndarray, tp: np.ndarray) -> np.ndarray:
        p = self.p
        self.ring[pos % p, idx] = tp
        buf = self.ring[:, idx]
        avg = sum_rows_in_order(buf) / p
        dev = sum_rows_in_order(np.abs(buf - avg)) / p
        last = tp - avg
        scale = np.abs(avg)
        flat = is_zero_scaled(last, scale) | is_zero_scaled(dev, scale)
        value = np.where(flat, 0.0, last / (0.015 * dev))
        return np.where(pos >= p - 1, value, np.nan)


class Mfi(Stateful):
    """``TA_MFI``: positive/negative money flow in a circular buffer and running sums; a whole period
    without money flow resets the sums to exactly zero (TA-Lib's null-run rule)."""

    _state = ("pos_ring", "neg_ring", "pos_sum", "neg_sum", "null_run", "prev_tp")

    def __init__(self, period: int, n: int) -> None:
        self.p = period
        self.pos_ring = np.zeros((period, n))
        self.neg_ring = np.zeros((period, n))
        self.pos_sum = np.zeros(n)
        self.neg_sum = np.zeros(n)
        self.null_run = np.zeros(n, dtype=np.int64)
        self.prev_tp = np.zeros(n)

    def update(self, idx: np.ndarray, pos: np.ndarray, tp: np.ndarray, volume: np.ndarray) -> np.ndarray:
        p = self.p
        live = pos >= 1
        slot = np.where(live, pos - 1, 0) % p
        ps, ns = self.pos_sum[idx], self.neg_sum[idx]
        leaving = pos > p
        ps = np.where(leaving, ps - self.pos_ring[slot, idx], ps)
        ns = np.where(leaving, ns - self.neg_ring[slot, idx], ns)
        prev = self.prev_tp[idx]
        change = tp - prev
        flow = np.where(is_zero_scaled(change, np.abs(tp) + np.abs(prev)), 0.0, tp * volume)
        pos_flow = np.where(change < 0.0, 0.0, flow)
        neg_flow = np.where(change < 0.0, flow, 0.0)
        self.pos_ring[slot[live], idx[live]] = pos_flow[live]
        self.neg_ring[slot[live], idx[live]] = neg_flow[live]
        ps = np.where(live, ps + pos_flow, ps)
        ns = np.where(live, ns + neg_flow, ns)
        run = np.where(live, np.where(flow == 0.0, self.null_run[idx] + 1, 0), 0)
        reset = run >= p
        run = np.where(reset, p, run)
        ps = np.where(reset, 0.0, ps)
        ns = np.where(reset, 0.0, ns)
        self.pos_sum[idx], self.neg_sum[idx], self.null_run[idx], self.prev_tp[idx] = ps, ns, run, tp
        total = ps + ns
        clamped = np.where(ps < 0.0, 0.0, np.where(ps > total, total, ps))
        value = np.where(total <= 0.0, 0.0, 100.0 * (clamped / total))
        return np.where(pos >= p, value, np.nan)


class Stoch(Stateful):
    """``TA_STOCH`` with SMA smoothing: raw %K over the fastk window, SMA(slowk) of it, SMA(slowd) of that."""

    _state = ("highs", "lows")
    _children = ("k_sma", "d_sma")

    def __init__(self, fastk: int, slowk: int, slowd: int, n: int) -> None:
        self.fastk, self.slowk, self.slowd = fastk, slowk, slowd
        self.highs = np.zeros((n, fastk))
        self.lows = np.zeros((n, fastk))
        self.k_sma = Sma(slowk, n) if slowk > 1 else None
        self.d_sma = Sma(slowd, n) if slowd > 1 else None
        self.lookback = fastk - 1 + slowk - 1 + slowd - 1

    def update(
        self, idx: np.ndarray, pos: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        fk = self.fastk
        self.highs[idx, pos % fk] = high
        self.lows[idx, pos % fk] = low
        hh = self.highs[idx].max(axis=1)
        ll = self.lows[idx].min(axis=1)
        rng = hh - ll
        raw = np.where(is_zero_scaled(rng, np.abs(hh) + np.abs(ll)), 0.0, (close - ll) / rng * 100.0)
        lp = pos - (fk - 1)
        raw = np.where(lp >= 0, raw, np.nan)
        slow_k = self.k_sma.update(idx, lp, raw) if self.k_sma is not None else raw
        lp = lp - (self.slowk - 1)
        slow_d = self.d_sma.update(idx, lp, slow_k) if self.d_sma is not None else slow_k
        ready = pos >= self.lookback
        return np.where(ready, slow_k, np.nan), np.where(ready, slow_d, np.nan)


class Obv(Stateful):
    """``TA_OBV``: the first bar's volume, then plus/minus each volume by the close's direction."""

    _state = ("obv",)

    def __init__(self, n: int) -> None:
        self.obv = np.zeros(n)

    def update(self, idx: np.ndarray, pos: np.ndarray, change: np.ndarray, volume: np.ndarray) -> np.ndarray:
        obv = self.obv[idx]
        obv = np.where(pos == 0, volume, np.where(change > 0, obv + volume, np.where(change < 0, obv - volume, obv)))
        self.obv[idx] = obv
        return obv
