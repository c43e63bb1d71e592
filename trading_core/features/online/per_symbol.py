"""Every feature that needs one symbol's own bars: the online twin of ``indicators.per_symbol_features``.

The arithmetic of each feature is the batch's, written for one bar of many symbols (a batch shift
becomes a remembered previous value or a ring lag, a trailing window a :class:`RollingSet`, a TA-Lib
call a :mod:`talib_state` recursion). A symbol without a bar at a bar time is simply not updated:
its next bar continues its own sequence, as the batch computes per symbol over its own rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
from scipy.special import ndtr

from trading_core.features.config import IndicatorConfig
from trading_core.features.online import talib_state as ta
from trading_core.features.online.base import Stateful
from trading_core.features.online.numerics import safe_div
from trading_core.features.online.windows import RollingSet, RollingSpec, SymbolRing

Columns = dict[str, np.ndarray]

_LN2 = math.log(2.0)
_CS_K = 3.0 - 2.0 * math.sqrt(2.0)


def _add(specs: list[RollingSpec], spec: RollingSpec) -> None:
    if spec not in specs:
        specs.append(spec)


class SymbolFeatures(Stateful):
    """Per-symbol state of the market, technical, microstructure groups and the volatility regime."""

    _state = (
        "prev_close",
        "prev_log_close",
        "prev_high",
        "prev_low",
        "prev_cs_high",
        "prev_cs_low",
        "prev_hl2",
        "prev_flow_std",
    )

    def __init__(self, config: IndicatorConfig, n: int) -> None:
        c = self.c = config
        groups = set(c.groups)
        self.market, self.technical = "market" in groups, "technical" in groups
        self.micro, self.regime = "microstructure" in groups, "regime" in groups
        self.prev_close = np.full(n, np.nan)
        self.prev_log_close = np.full(n, np.nan)
        self.prev_high = np.full(n, np.nan)
        self.prev_low = np.full(n, np.nan)
        self.prev_cs_high = np.full(n, np.nan)
        self.prev_cs_low = np.full(n, np.nan)
        self.prev_hl2 = np.full(n, np.nan)
        self.prev_flow_std = np.full(n, np.nan)
        self.log_closes = SymbolRing(max(c.return_horizons) + 1 if self.market else 1, n)
        self.obv_ring = SymbolRing(c.flow_window + 1 if self.technical else 1, n)
        w, fw = c.range_vol_window, c.flow_window
        stage1: list[RollingSpec] = []
        if self.market:
            for vw in c.vol_windows:
                _add(stage1, RollingSpec("r1", "std", vw))
            _add(stage1, RollingSpec("hl2", "mean", w))
            _add(stage1, RollingSpec("gk", "mean", w))
            _add(stage1, RollingSpec("lv", "mean", c.volume_window))
            _add(stage1, RollingSpec("lv", "std", c.volume_window))
        if self.regime:
            _add(stage1, RollingSpec("r1", "std", c.vol_windows[0]))
        if self.technical or self.micro:
            _add(stage1, RollingSpec("volume", "sum", fw))
        if self.micro:
            mp = max(2, fw // 2)
            _add(stage1, RollingSpec("r1", "std", fw))
            _add(stage1, RollingSpec("impact", "mean", fw, mp))
            _add(stage1, RollingSpec("clv_volume", "sum", fw))
            _add(stage1, RollingSpec("bvc_volume", "sum", fw))
            _add(stage1, RollingSpec("cs", "mean", fw, mp))
        self.stage1 = RollingSet(stage1, n)
        rw = c.vol_regime_window
        self.vol_regime = (
            RollingSet([RollingSpec("log_vol", "mean", rw), RollingSpec("log_vol", "std", rw)], n)
            if self.regime
            else None
        )
        if self.technical:
            self.rsi = [ta.Rsi(p, n) for p in c.rsi_periods]
            self.macd = ta.Macd(*c.macd, n)
            # every EMA of the close in one bank: the ema_ratio periods, then MACD's fast and slow
            m = self.macd
            self.emas = ta.EmaBank(
                [*c.ema_periods, m.fast_period, m.slow_period], [0] * len(c.ema_periods) + [m.fast_offset, 0], n
            )
            self.bbands = ta.BBands(c.bbands_period, c.bbands_dev, n)
            self.atr = ta.Atr(c.atr_period, n)
            dm_periods = sorted({c.adx_period, *c.dx_periods})
            self.dm = {p: ta.DirectionalMovement(p, n, with_adx=p == c.adx_period) for p in dm_periods}
            self.cci = [ta.Cci(p, n) for p in c.cci_periods]
            self.mfi = ta.Mfi(c.mfi_period, n)
            self.stoch = ta.Stoch(*c.stoch, n)
            self.obv = ta.Obv(n)
            self.sma = [ta.Sma(p, n) for p in c.sma_periods]

    def state_items(self, prefix: str) -> Iterator[tuple[str, np.ndarray]]:
        yield from super().state_items(prefix)
        for key, obj in self._parts():
            yield from obj.state_items(f"{prefix}{key}.")

    def load_state(self, arrays: Mapping[str, np.ndarray], prefix: str) -> None:
        super().load_state(arrays, prefix)
        for key, obj in self._parts():
            obj.load_state(arrays, f"{prefix}{key}.")

    def _parts(self) -> list[tuple[str, Stateful]]:
        parts: list[tuple[str, Stateful]] = [("log_closes", self.log_closes), ("obv_ring", self.obv_ring)]
        parts.append(("stage1", self.stage1))
        if self.vol_regime is not None:
            parts.append(("vol_regime", self.vol_regime))
        if self.technical:
            parts += [(f"rsi_{i}", s) for i, s in enumerate(self.rsi)]
            parts += [("macd", self.macd), ("bbands", self.bbands), ("atr", self.atr), ("mfi", self.mfi)]
            parts += [(f"dm_{p}", s) for p, s in self.dm.items()]
            parts += [(f"cci_{i}", s) for i, s in enumerate(self.cci)]
            parts += [("stoch", self.stoch), ("obv", self.obv)]
            parts += [(f"sma_{i}", s) for i, s in enumerate(self.sma)]
            parts.append(("emas", self.emas))
        return parts

    # ------------------------------------------------------------------------------------ update

    def update(
        self,
        idx: np.ndarray,
        pos: np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        cl: np.ndarray,
        v: np.ndarray,
    ) -> tuple[Columns, np.ndarray]:
        """Features of this bar for the symbols ``idx`` (aligned arrays), and their 1-bar log returns."""
        c = self.c
        prev_close = self.prev_close[idx]
        log_c = np.log(cl)
        log_prev = self.prev_log_close[idx]
        r1 = log_c - log_prev
        hl = np.log(h / lo)
        co = np.log(cl / o)
        inputs: Columns = {"r1": r1, "volume": v}
        if self.market:
            inputs["hl2"] = hl**2
            inputs["gk"] = 0.5 * hl**2 - (2.0 * _LN2 - 1.0) * co**2
            inputs["lv"] = np.log1p(v)
        if self.micro:
            inputs |= self._micro_inputs(idx, pos, h, lo, cl, v, r1, prev_close)
        rolled = self.stage1.update(idx, pos, inputs)
        out: Columns = {}
        if self.market:
            self.log_closes.push(idx, pos, log_c)
            for k in c.return_horizons:
                out[f"ret_{k}"] = log_c - self.log_closes.lag(idx, pos, k)
            for w in c.vol_windows:
                out[f"rvol_{w}"] = rolled[f"r1:std:{w}"]
            w = c.range_vol_window
            out[f"parkinson_{w}"] = np.sqrt(rolled[f"hl2:mean:{w}"] / (4.0 * _LN2))
            out[f"garman_klass_{w}"] = np.sqrt(np.clip(rolled[f"gk:mean:{w}"], 0.0, None))
            vw = c.volume_window
            out[f"volume_z_{vw}"] = safe_div(inputs["lv"] - rolled[f"lv:mean:{vw}"], rolled[f"lv:std:{vw}"])
            out["gap"] = np.log(o) - log_prev
            out["range"] = hl
            out["body"] = co
        if self.technical:
            out |= self._technical(idx, pos, o, h, lo, cl, v, prev_close, rolled[f"volume:sum:{c.flow_window}"])
        if self.micro:
            fw = c.flow_window
            mp = max(2, fw // 2)
            self.prev_flow_std[idx] = rolled[f"r1:std:{fw}"]
            vol_sum = rolled[f"volume:sum:{fw}"]
            out[f"cs_spread_{fw}"] = rolled[f"cs:mean:{fw}:{mp}"]
            out[f"amihud_{fw}"] = np.log(rolled[f"impact:mean:{fw}:{mp}"] + 1e-12)
            out[f"ofi_clv_{fw}"] = safe_div(rolled[f"clv_volume:sum:{fw}"], vol_sum)
            out[f"ofi_bvc_{fw}"] = safe_div(rolled[f"bvc_volume:sum:{fw}"], vol_sum)
        if self.regime:
            out |= self._vol_regime(idx, pos, rolled[f"r1:std:{c.vol_windows[0]}"])
        self.prev_close[idx] = cl
        self.prev_log_close[idx] = log_c
        self.prev_high[idx] = h
        self.prev_low[idx] = lo
        return out, r1

    def _micro_inputs(
        self,
        idx: np.ndarray,
        pos: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        cl: np.ndarray,
        v: np.ndarray,
        r1: np.ndarray,
        prev_close: np.ndarray,
    ) -> Columns:
        impact = safe_div(np.abs(r1), cl * v / 1e6)
        clv = safe_div((cl - lo) - (h - cl), h - lo)
        clv = np.where(h == lo, 0.0, clv)
        buy_share = ndtr(safe_div(r1, self.prev_flow_std[idx]))
        # Corwin-Schultz, overnight-adjusted (indicators.corwin_schultz, one bar at a time)
        up = np.where(lo > prev_close, lo - prev_close, 0.0)
        down = np.where(h < prev_close, h - prev_close, 0.0)
        adj = np.where(np.isnan(prev_close), np.nan, up + down)
        high, low = h - adj, lo - adj
        hl2 = np.log(high / low) ** 2
        beta = hl2 + self.prev_hl2[idx]
        h2 = np.maximum(high, self.prev_cs_high[idx])
        l2 = np.minimum(low, self.prev_cs_low[idx])
        gamma = np.log(h2 / l2) ** 2
        alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / _CS_K - np.sqrt(gamma / _CS_K)
        spread = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
        cs = np.where(np.isnan(spread), np.nan, np.clip(spread, 0.0, None))
        self.prev_cs_high[idx], self.prev_cs_low[idx], self.prev_hl2[idx] = high, low, hl2
        return {
            "impact": impact,
            "clv_volume": clv * v,
            "bvc_volume": (2.0 * buy_share - 1.0) * v,
            "cs": cs,
        }

    def _technical(
        self,
        idx: np.ndarray,
        pos: np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        cl: np.ndarray,
        v: np.ndarray,
        prev_close: np.ndarray,
        vol_sum: np.ndarray,
    ) -> Columns:
        c = self.c
        out: Columns = {}
        change = cl - prev_close
        for p, rsi in zip(c.rsi_periods, self.rsi, strict=True):
            out[f"rsi_{p}"] = rsi.update(idx, pos, change)
        emas = self.emas.update(idx, pos, cl)
        line, signal, hist = self.macd.update(idx, pos, emas[-2], emas[-1])
        out["macd"], out["macd_signal"], out["macd_hist"] = line / cl, signal / cl, hist / cl
        upper, middle, lower = self.bbands.update(idx, pos, cl)
        out["bb_upper"], out["bb_lower"] = upper / cl - 1.0, lower / cl - 1.0
        out["bb_pos"] = safe_div(cl - lower, upper - lower)
        out["bb_width"] = safe_div(upper - lower, middle)
        tr = np.maximum(np.maximum(h - lo, np.abs(prev_close - h)), np.abs(prev_close - lo))
        out[f"atr_{c.atr_period}"] = self.atr.update(idx, pos, tr) / cl
        diff_p = h - self.prev_high[idx]
        diff_m = self.prev_low[idx] - lo
        mdm = np.where((diff_m > 0) & (diff_p < diff_m), diff_m, 0.0)
        pdm = np.where((diff_p > 0) & (diff_p > diff_m), diff_p, 0.0)
        for p, dm in self.dm.items():
            dx, adx = dm.update(idx, pos, pdm, mdm, tr)
            if p in c.dx_periods:
                out[f"dx_{p}"] = dx
            if p == c.adx_period:
                out[f"adx_{p}"] = adx
        tp = (h + lo + cl) / 3
        for p, cci in zip(c.cci_periods, self.cci, strict=True):
            out[f"cci_{p}"] = cci.update(idx, pos, tp)
        out[f"mfi_{c.mfi_period}"] = self.mfi.update(idx, pos, (h + lo + cl) / 3.0, v)
        out["stoch_k"], out["stoch_d"] = self.stoch.update(idx, pos, h, lo, cl)
        obv = self.obv.update(idx, pos, change, v)
        self.obv_ring.push(idx, pos, obv)
        w = c.flow_window
        out[f"obv_flow_{w}"] = safe_div(obv - self.obv_ring.lag(idx, pos, w), vol_sum)
        for p, sma in zip(c.sma_periods, self.sma, strict=True):
            out[f"sma_ratio_{p}"] = cl / sma.update(idx, pos, cl) - 1.0
        for j, p in enumerate(c.ema_periods):
            out[f"ema_ratio_{p}"] = cl / emas[j] - 1.0
        return out

    def _vol_regime(self, idx: np.ndarray, pos: np.ndarray, short_vol: np.ndarray) -> Columns:
        log_vol = np.log(short_vol)
        log_vol[~np.isfinite(log_vol)] = np.nan
        assert self.vol_regime is not None
        stats = self.vol_regime.update(idx, pos, {"log_vol": log_vol})
        rw = self.c.vol_regime_window
        z = safe_div(log_vol - stats[f"log_vol:mean:{rw}"], stats[f"log_vol:std:{rw}"])
        th = self.c.vol_regime_threshold
        regime = np.where(z > th, 1.0, np.where(z < -th, -1.0, 0.0))
        return {"vol_regime_z": z, "vol_regime": np.where(np.isnan(z), np.nan, regime)}
