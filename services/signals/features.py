"""Per-symbol live features from closed bars, O(1) per bar via the core's streaming indicators.

Nothing here recomputes history: each closed bar updates the streaming state once. Rolling
highs/lows use monotonic deques (amortised O(1)). The whole state pickles, so the service can
checkpoint it to the cache and resume warm.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiots.core import indicators as ind
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Bar


class RollingExtreme:
    """Max (or min) of the last ``n`` values, excluding the value being added, O(1) amortised."""

    def __init__(self, n: int, is_max: bool) -> None:
        self.n = n
        self.is_max = is_max
        self._i = 0
        self._dq: deque[tuple[int, float]] = deque()

    def previous(self) -> float:
        """Extreme of the last n values (NaN until n values were seen)."""
        if self._i < self.n or not self._dq:
            return math.nan
        return self._dq[0][1]

    def push(self, x: float) -> None:
        dq = self._dq
        while dq and ((dq[-1][1] <= x) if self.is_max else (dq[-1][1] >= x)):
            dq.pop()
        dq.append((self._i, x))
        self._i += 1
        while dq and dq[0][0] <= self._i - 1 - self.n:
            dq.popleft()


@dataclass(frozen=True)
class Snapshot:
    """Feature values after one closed bar (NaN while warming up)."""

    bar: Bar
    prev_bar: Bar | None
    atr: float
    rsi: float
    rsi_prev: float
    adx: float
    plus_di: float
    minus_di: float
    ema_fast: float
    ema_fast_prev: float
    ema_slow: float
    bb_upper: float
    bb_middle: float
    bb_lower: float
    volume_avg: float  # SMA of volume over the bars before this one
    resistance: float
    support: float
    realized_vol: float = math.nan  # annualised (252 x 390 minutes) std of in-session 1-minute log returns
    atm_iv: float = math.nan  # ATM IV of the expiry contracts would be chosen from, when known
    # computes that ATM IV on demand (IV solves: only strategies that need it pay for it)
    iv_source: Callable[[], float] | None = field(default=None, compare=False, repr=False)

    def traded_atm_iv(self) -> float:
        """``atm_iv``, else computed by ``iv_source`` (NaN without either)."""
        if math.isfinite(self.atm_iv) or self.iv_source is None:
            return self.atm_iv
        return self.iv_source()

    @property
    def ready(self) -> bool:
        vals = (self.atr, self.rsi, self.adx, self.ema_fast, self.ema_slow, self.bb_middle, self.volume_avg)
        return self.prev_bar is not None and all(math.isfinite(v) for v in vals)


class RollingVariance:
    """Variance of the last ``n`` values, O(1) per value (sums over a ring; re-summed every n values
    so rounding never accumulates)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._buf: deque[float] = deque()
        self._s = 0.0
        self._s2 = 0.0
        self._since = 0

    def push(self, x: float) -> None:
        self._buf.append(x)
        self._s += x
        self._s2 += x * x
        if len(self._buf) > self.n:
            old = self._buf.popleft()
            self._s -= old
            self._s2 -= old * old
        self._since += 1
        if self._since >= self.n:
            self._since = 0
            self._s = sum(self._buf)
            self._s2 = sum(v * v for v in self._buf)

    @property
    def value(self) -> float:
        """Sample variance (ddof = 1); NaN until the window is full."""
        k = len(self._buf)
        if k < self.n or k < 2:
            return math.nan
        return max(0.0, (self._s2 - self._s * self._s / k) / (k - 1))


MINUTES_PER_YEAR = 252 * 390  # trading minutes (the annualisation of 1-minute returns)


class SymbolFeatures:
    """Streaming indicator state for one symbol at one interval."""

    def __init__(self, cfg: SignalsConfig) -> None:
        s = cfg.strategies
        self.atr = ind.ATR(cfg.atr_period)
        self.rsi = ind.RSI(cfg.rsi_period)
        self.adx = ind.ADX(cfg.adx_period)
        self.ema_fast = ind.EMA(s.trend_pullback.ema_fast)
        self.ema_slow = ind.EMA(s.trend_pullback.ema_slow)
        self.bb = ind.BBands(s.mean_reversion.bb_period, s.mean_reversion.bb_nbdev, s.mean_reversion.bb_nbdev)
        self.vol = ind.SMA(s.momentum_breakout.volume_period)
        self.hi = RollingExtreme(s.momentum_breakout.lookback, True)
        self.lo = RollingExtreme(s.momentum_breakout.lookback, False)
        self.rv = RollingVariance(s.cheap_volatility.rv_bars)
        self.prev_bar: Bar | None = None
        self.last_ts_ns = -1

    def update(self, bar: Bar) -> Snapshot | None:
        """Feed one closed bar; returns the snapshot, or None for a stale/duplicate bar."""
        if bar.ts_ns <= self.last_ts_ns:
            return None
        self.last_ts_ns = bar.ts_ns
        ema_fast_prev = float(self.ema_fast.value)
        rsi_prev = float(self.rsi.value)
        volume_avg = float(self.vol.value)  # average of the previous bars, excluding this one
        resistance = self.hi.previous()
        support = self.lo.previous()
        atr = float(self.atr.update(bar.high, bar.low, bar.close))
        rsi = float(self.rsi.update(bar.close))
        adx = float(self.adx.update(bar.high, bar.low, bar.close))
        pdi = float(self.adx.plus_di)
        mdi = float(self.adx.minus_di)
        ef = float(self.ema_fast.update(bar.close))
        es = float(self.ema_slow.update(bar.close))
        up, mid, lo = self.bb.update(bar.close)
        self.vol.update(bar.volume)
        self.hi.push(bar.high)
        self.lo.push(bar.low)
        prev = self.prev_bar
        # in-session returns only: a gap over 2 bars (overnight, a halt) is not a 1-minute return
        if prev is not None and prev.close > 0 and bar.close > 0 and bar.ts_ns - prev.ts_ns <= 2 * bar.interval_ns:
            self.rv.push(math.log(bar.close / prev.close))
        var = self.rv.value
        rv = math.sqrt(var * MINUTES_PER_YEAR * 60e9 / bar.interval_ns) if math.isfinite(var) else math.nan
        snap = Snapshot(
            bar=bar,
            prev_bar=self.prev_bar,
            atr=atr,
            rsi=rsi,
            rsi_prev=rsi_prev,
            adx=adx,
            plus_di=pdi,
            minus_di=mdi,
            ema_fast=ef,
            ema_fast_prev=ema_fast_prev,
            ema_slow=es,
            bb_upper=float(up),
            bb_middle=float(mid),
            bb_lower=float(lo),
            volume_avg=volume_avg,
            resistance=resistance,
            support=support,
            realized_vol=rv,
        )
        self.prev_bar = bar
        return snap
