"""Per-symbol live features from closed bars, O(1) per bar via the core's streaming indicators.

One :class:`SymbolFeatures` per (symbol, interval) is the only place the streaming features are
computed: analytics' live state feeds it each closed bar from the bus once and publishes the
:class:`Snapshot` on ``features:<interval>`` (the signals service reads that), and the backtest
drives the same class in-process on its replayed bars. Besides the strategy features it can carry
named core streams (analytics' live indicators with their default parameters), updated from the
same bar. Nothing here recomputes history: rolling highs/lows use monotonic deques (amortised
O(1)), the realised variance a ring of sums. The whole object pickles (analytics checkpoints it).
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from aiots.core import indicators as ind
from aiots.core.conventions import NS_PER_MIN
from aiots.services.features.params import FeatureParams

MINUTES_PER_YEAR = 252 * 390  # trading minutes (the annualisation of 1-minute returns)
#: a bar this far behind the newest one folded in means the feed went back (a restart while the
#: simulator replays the last session, a DBN replay): the owner re-warms from the stored bars before it
REWARM_GAP_NS = 5 * NS_PER_MIN
#: bar fields a named stream may read (any other input name reads the close)
BAR_FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Bar:
    """A closed bar: ts is the bar open time in ns UTC; prices in dollars."""

    symbol: str
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval_ns: int = NS_PER_MIN

    @property
    def close_ts_ns(self) -> int:
        return self.ts_ns + self.interval_ns


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

    def with_iv_source(self, source: Callable[[], float]) -> Snapshot:
        """A copy whose :meth:`traded_atm_iv` falls back to ``source`` (``dataclasses.replace``'s
        result, without re-running the frozen ``__init__``: the engine does this on every bar)."""
        new = object.__new__(Snapshot)
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "iv_source", source)
        return new

    def traded_atm_iv(self) -> float:
        """``atm_iv``, else computed by ``iv_source`` (NaN without either)."""
        if math.isfinite(self.atm_iv) or self.iv_source is None:
            return self.atm_iv
        return self.iv_source()

    @functools.cached_property
    def ready(self) -> bool:
        """Warmed up: a previous bar and every indicator finite (computed once: each strategy asks)."""
        vals = (self.atr, self.rsi, self.adx, self.ema_fast, self.ema_slow, self.bb_middle, self.volume_avg)
        return self.prev_bar is not None and all(math.isfinite(v) for v in vals)


#: a named core stream and the bar fields its ``update`` takes, in order
NamedStream = tuple[Any, tuple[str, ...]]


class SymbolFeatures:
    """Streaming feature state for one symbol at one interval (see the module docstring)."""

    def __init__(self, params: FeatureParams, named: Mapping[str, NamedStream] | None = None) -> None:
        p = self.params = params
        self.atr = ind.ATR(p.atr_period)
        self.rsi = ind.RSI(p.rsi_period)
        self.adx = ind.ADX(p.adx_period)
        self.ema_fast = ind.EMA(p.ema_fast)
        self.ema_slow = ind.EMA(p.ema_slow)
        self.bb = ind.BBands(p.bb_period, p.bb_nbdev, p.bb_nbdev)
        self.vol = ind.SMA(p.volume_period)
        self.hi = RollingExtreme(p.lookback, True)
        self.lo = RollingExtreme(p.lookback, False)
        self.rv = RollingVariance(p.rv_bars)
        #: named streams (analytics' live indicators), by name
        self.named: dict[str, Any] = {}
        self._named_inputs: list[tuple[Any, tuple[str, ...]]] = []
        for name, (stream, inputs) in (named or {}).items():
            cols = tuple(c if c in BAR_FIELDS else "close" for c in inputs)
            self.named[name] = stream
            self._named_inputs.append((stream, cols))
        self.prev_bar: Bar | None = None
        self.last_ts_ns = -1
        self.bars = 0  # bars folded in (warm-up included)

    def update(self, bar: Bar) -> Snapshot | None:
        """Feed one closed bar; returns the snapshot, or None for a stale/duplicate bar."""
        if bar.ts_ns <= self.last_ts_ns:
            return None
        self.last_ts_ns = bar.ts_ns
        self.bars += 1
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
        for stream, cols in self._named_inputs:
            stream.update(*[getattr(bar, c) for c in cols])
        prev = self.prev_bar
        # in-session returns only: a gap over 2 bars (overnight, a halt) is not a 1-minute return
        if prev is not None and prev.close > 0 and bar.close > 0 and bar.ts_ns - prev.ts_ns <= 2 * bar.interval_ns:
            self.rv.push(math.log(bar.close / prev.close))
        var = self.rv.value
        rv = math.sqrt(var * MINUTES_PER_YEAR * NS_PER_MIN / bar.interval_ns) if math.isfinite(var) else math.nan
        snap = Snapshot(
            bar=bar,
            prev_bar=prev,
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

    def warm(self, bars: Iterable[Bar]) -> None:
        """Fold historical bars in (oldest first; bars not newer than the last one are skipped)."""
        for bar in bars:
            self.update(bar)

    def warm_columns(
        self,
        symbol: str,
        interval_ns: int,
        ts: ArrayLike,
        open_: ArrayLike,
        high: ArrayLike,
        low: ArrayLike,
        close: ArrayLike,
        volume: ArrayLike,
    ) -> None:
        """:meth:`warm` over columns (stored bars, oldest first): one ``update_many`` per core stream
        instead of a Python call per bar per stream, leaving the state :meth:`warm` would leave."""
        t = np.asarray(ts, dtype=np.int64)
        keep = t > self.last_ts_ns
        t = t[keep]
        if len(t) == 0:
            return
        cols = {
            name: np.ascontiguousarray(np.asarray(a, dtype=np.float64)[keep])
            for name, a in zip(BAR_FIELDS, (open_, high, low, close, volume), strict=True)
        }
        if np.any(np.diff(t) <= 0):  # not strictly increasing: update() decides bar by bar
            rows = zip(t.tolist(), *(cols[f].tolist() for f in BAR_FIELDS), strict=True)
            self.warm(Bar(symbol, ts_, o, h, lo, c, v, interval_ns) for ts_, o, h, lo, c, v in rows)
            return
        h, lo, c, v = cols["high"], cols["low"], cols["close"], cols["volume"]
        self.atr.update_many(h, lo, c)
        self.rsi.update_many(c)
        self.adx.update_many(h, lo, c)
        self.ema_fast.update_many(c)
        self.ema_slow.update_many(c)
        self.bb.update_many(c)
        self.vol.update_many(v)
        for stream, inputs in self._named_inputs:
            stream.update_many(*[cols[i] for i in inputs])
        for x in h.tolist():
            self.hi.push(x)
        for x in lo.tolist():
            self.lo.push(x)
        closes, times = c.tolist(), t.tolist()
        prev = self.prev_bar
        pc, pt = (prev.close, prev.ts_ns) if prev is not None else (math.nan, None)
        for ci, ti in zip(closes, times, strict=True):
            if pt is not None and pc > 0 and ci > 0 and ti - pt <= 2 * interval_ns:
                self.rv.push(math.log(ci / pc))
            pc, pt = ci, ti
        o = cols["open"]
        self.prev_bar = Bar(symbol, times[-1], float(o[-1]), float(h[-1]), float(lo[-1]), closes[-1], float(v[-1]),
                            interval_ns)  # fmt: skip
        self.last_ts_ns = times[-1]
        self.bars += len(times)

    @staticmethod
    def accepts(last_ts_ns: int, ts_ns: int) -> bool:
        """Whether a reader that last saw ``last_ts_ns`` should take a snapshot of ``ts_ns``: newer,
        or far enough behind that the owner re-warmed (see :data:`REWARM_GAP_NS`)."""
        return ts_ns > last_ts_ns or ts_ns < last_ts_ns - REWARM_GAP_NS
