"""Per-symbol live features from closed bars, O(1) per bar via the core's streaming indicators.

One :class:`SymbolFeatures` per (symbol, interval) is the only place the streaming features are
computed: analytics' live state feeds it each closed bar from the bus once and publishes the
:class:`Snapshot` on ``features:<interval>`` (the signals service reads that), and the backtest
drives the same class in-process on its replayed bars. Besides the strategy features it can carry
named core streams (analytics' live indicators with their default parameters), updated from the
same bar. Nothing here recomputes history: rolling highs/lows use monotonic deques (amortised
O(1)), the realised variance a ring of sums. The whole object pickles (analytics checkpoints it).

Size: the bar-by-bar update, its two column forms (start-up warming, the replay's stream) and the
rolling windows they share are one state; the column forms are proven equal to ``update`` in tests
and must change with it.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt
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
#: bars :meth:`SymbolFeatures.stream` computes in columns at a time (bounded memory; the numpy and
#: core calls amortised over the chunk)
STREAM_CHUNK = 2048

_new = object.__new__
_set = object.__setattr__


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


def new_bar(
    symbol: str, ts_ns: int, open_: float, high: float, low: float, close: float, volume: float, interval_ns: int
) -> Bar:
    """``Bar(...)`` with the same fields in the same order, without the frozen ``__init__``'s
    ``object.__setattr__`` per field (a third of the cost; the backtest makes one per bar)."""
    b = _new(Bar)
    _set(
        b,
        "__dict__",
        {
            "symbol": symbol,
            "ts_ns": ts_ns,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "interval_ns": interval_ns,
        },
    )
    return b


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

    def holds_nan(self) -> bool:
        """Whether a NaN is among the kept values (it leaves only when it falls out of the window)."""
        return any(x != x for _i, x in self._dq)

    def previous_many(self, xs: npt.NDArray[np.float64]) -> list[float]:
        """:meth:`previous` before each :meth:`push` of ``xs`` in turn, leaving the state those
        pushes leave, in columns (the window's extreme over the kept values, one numpy pass per
        lag). Neither ``xs`` nor the kept values may hold a NaN (:meth:`holds_nan`; the deque's
        comparisons and numpy's extremes part ways on NaN).

        The deque keeps, of the last ``n`` values, each one greater (max) than every later one;
        a value it dropped is at most a later kept one, so the window's extreme over the kept
        values alone (the dropped ones as -inf/+inf) is the extreme over all of them."""
        n, i0, m = self.n, self._i, len(xs)
        lo = i0 - n  # the index at window position 0
        window = np.full(n + m, -math.inf if self.is_max else math.inf)
        kept = np.zeros(n + m, dtype=bool)
        for j, x in self._dq:
            window[j - lo] = x
            kept[j - lo] = True
        window[n:] = xs
        kept[n:] = True
        ext = np.maximum if self.is_max else np.minimum
        acc = window[:m].copy()  # acc[k]: the extreme of window[k : k + n], the n values before xs[k]
        for j in range(1, n):
            ext(acc, window[j : j + m], out=acc)
        out: list[float] = acc.tolist()
        for k in range(min(m, max(0, n - i0))):
            out[k] = math.nan  # fewer than n values before it
        vals = window.tolist()
        dq: deque[tuple[int, float]] = deque()
        for pos in range(m, m + n):  # the deque of the last n values, as the pushes build it
            if kept[pos]:
                x = vals[pos]
                while dq and ((dq[-1][1] <= x) if self.is_max else (dq[-1][1] >= x)):
                    dq.pop()
                dq.append((lo + pos, x))
        self._dq = dq
        self._i = i0 + m
        return out


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
        self.push_many((x,))

    def push_many(self, xs: Iterable[float | None]) -> list[float]:
        """:meth:`push` each of ``xs`` but the Nones, in turn; :attr:`value` after each of ``xs``."""
        buf, n = self._buf, self.n
        s, s2, since = self._s, self._s2, self._since
        out: list[float] = []
        for x in xs:
            if x is not None:
                buf.append(x)
                s += x
                s2 += x * x
                if len(buf) > n:
                    old = buf.popleft()
                    s -= old
                    s2 -= old * old
                since += 1
                if since >= n:
                    since = 0
                    s = sum(buf)
                    s2 = sum(v * v for v in buf)
            out.append(_sample_variance(s, s2, len(buf), n))
        self._s, self._s2, self._since = s, s2, since
        return out

    @property
    def value(self) -> float:
        """Sample variance (ddof = 1); NaN until the window is full."""
        return _sample_variance(self._s, self._s2, len(self._buf), self.n)


def _sample_variance(s: float, s2: float, k: int, n: int) -> float:
    """The sample variance (ddof = 1) of ``k`` values summing to ``s`` with squares summing to ``s2``;
    NaN while fewer than ``n`` (or 2) values are held."""
    if k < n or k < 2:
        return math.nan
    return max(0.0, (s2 - s * s / k) / (k - 1))


_isfinite = math.isfinite


class _Ready:
    """``Snapshot.ready``: warmed up, a previous bar and every indicator finite. Computed on the
    first read and kept in the instance's ``__dict__`` (``functools.cached_property`` without its
    lock, which costs about a microsecond a snapshot on Python 3.11; each strategy asks)."""

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Ready: ...
    @overload
    def __get__(self, obj: Snapshot, owner: type | None = None) -> bool: ...
    def __get__(self, obj: Snapshot | None, owner: type | None = None) -> bool | _Ready:
        if obj is None:
            return self
        d = obj.__dict__
        v = (
            d["prev_bar"] is not None
            and _isfinite(d["atr"])
            and _isfinite(d["rsi"])
            and _isfinite(d["adx"])
            and _isfinite(d["ema_fast"])
            and _isfinite(d["ema_slow"])
            and _isfinite(d["bb_middle"])
            and _isfinite(d["volume_avg"])
        )
        d["ready"] = v
        return v


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
    # whether that ATM IV, where finite, is provably above a level, known without computing it
    iv_exceeds: Callable[[float], bool] | None = field(default=None, compare=False, repr=False)

    def with_iv_source(self, source: Callable[[], float], exceeds: Callable[[float], bool] | None = None) -> Snapshot:
        """A copy whose :meth:`traded_atm_iv` falls back to ``source`` and :meth:`atm_iv_exceeds` to
        ``exceeds`` (``dataclasses.replace``'s result, without re-running the frozen ``__init__``:
        the engine does this on every bar)."""
        new = object.__new__(Snapshot)
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, "iv_source", source)
        object.__setattr__(new, "iv_exceeds", exceeds)
        return new

    def traded_atm_iv(self) -> float:
        """``atm_iv``, else computed by ``iv_source`` (NaN without either)."""
        if math.isfinite(self.atm_iv) or self.iv_source is None:
            return self.atm_iv
        return self.iv_source()

    def atm_iv_exceeds(self, level: float) -> bool:
        """True only if :meth:`traded_atm_iv`, where finite, is above ``level``: ``atm_iv`` when
        known, else ``iv_exceeds``'s proof without the IV solves (False: no proof, read it)."""
        if math.isfinite(self.atm_iv):
            return self.atm_iv > level
        return self.iv_exceeds is not None and self.iv_source is not None and self.iv_exceeds(level)

    #: warmed up: a previous bar and every indicator finite (computed once: each strategy asks)
    ready = _Ready()


def new_snapshot(
    bar: Bar,
    prev_bar: Bar | None,
    atr: float,
    rsi: float,
    rsi_prev: float,
    adx: float,
    plus_di: float,
    minus_di: float,
    ema_fast: float,
    ema_fast_prev: float,
    ema_slow: float,
    bb_upper: float,
    bb_middle: float,
    bb_lower: float,
    volume_avg: float,
    resistance: float,
    support: float,
    realized_vol: float,
) -> Snapshot:
    """``Snapshot(...)`` of these fields (``atm_iv`` NaN, no ``iv_source``/``iv_exceeds``), without the frozen
    ``__init__``'s ``object.__setattr__`` per field (three quarters of its cost)."""
    s = _new(Snapshot)
    _set(
        s,
        "__dict__",
        {
            "bar": bar,
            "prev_bar": prev_bar,
            "atr": atr,
            "rsi": rsi,
            "rsi_prev": rsi_prev,
            "adx": adx,
            "plus_di": plus_di,
            "minus_di": minus_di,
            "ema_fast": ema_fast,
            "ema_fast_prev": ema_fast_prev,
            "ema_slow": ema_slow,
            "bb_upper": bb_upper,
            "bb_middle": bb_middle,
            "bb_lower": bb_lower,
            "volume_avg": volume_avg,
            "resistance": resistance,
            "support": support,
            "realized_vol": realized_vol,
            "atm_iv": math.nan,
            "iv_source": None,
            "iv_exceeds": None,
        },
    )
    return s


def _snapshot_of(bar: Bar, prev: Bar | None, c: tuple[list[Any], ...], j: int, variance: float) -> Snapshot:
    """:meth:`SymbolFeatures.stream`'s snapshot of ``bar``, row ``j`` of the feature columns ``c``
    (:meth:`SymbolFeatures._columns`' order: :func:`new_snapshot`'s fields from ``atr`` to
    ``support``, then ``ready`` but for the previous bar, kept as ``ready`` would compute it), with
    the realised variance of the returns up to it (made only when read: the row is not gathered,
    nor the volatility annualised, for a snapshot no strategy reads)."""
    snap = new_snapshot(
        bar, prev, c[0][j], c[1][j], c[2][j], c[3][j], c[4][j], c[5][j], c[6][j], c[7][j], c[8][j], c[9][j],
        c[10][j], c[11][j], c[12][j], c[13][j], c[14][j], annualised_vol(variance, bar.interval_ns),
    )  # fmt: skip
    snap.__dict__["ready"] = prev is not None and c[15][j]
    return snap


def minute_return(prev: Bar | None, bar: Bar) -> float | None:
    """The log return of ``bar`` over ``prev`` when it is an in-session one: a gap over 2 bars
    (overnight, a halt) is not a 1-minute return; None then, or without a positive close."""
    if prev is not None and prev.close > 0 and bar.close > 0 and bar.ts_ns - prev.ts_ns <= 2 * bar.interval_ns:
        return math.log(bar.close / prev.close)
    return None


def annualised_vol(var: float, interval_ns: int) -> float:
    """A variance of ``interval_ns`` returns as an annual volatility in trading time (NaN stays NaN)."""
    return math.sqrt(var * MINUTES_PER_YEAR * NS_PER_MIN / interval_ns) if _isfinite(var) else math.nan


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
        x = minute_return(prev, bar)
        if x is not None:
            self.rv.push(x)
        rv = annualised_vol(self.rv.value, bar.interval_ns)
        snap = new_snapshot(
            bar, prev, atr, rsi, rsi_prev, adx, pdi, mdi, ef, ema_fast_prev, es,
            float(up), float(mid), float(lo), volume_avg, resistance, support, rv,
        )  # fmt: skip
        self.prev_bar = bar
        return snap

    def stream(self, bars: Sequence[Bar]) -> Iterator[Callable[[], Snapshot] | None]:
        """For each of ``bars`` in turn (one symbol's, oldest first), what :meth:`update` returns:
        None, or a call that makes its snapshot (the state moves on either way; a replay makes
        only the snapshots its engine reads, see :meth:`SignalEngine.decide_lazily`). The core
        streams and the rolling extremes are computed :data:`STREAM_CHUNK` bars at a time in
        columns (one ``update_many`` per stream instead of a call per bar per stream). A chunk
        that is not strictly newer bar by bar, or meets a NaN high or low (in it or still in the
        rolling windows), goes through :meth:`update` bar by bar.

        While it runs, the state is up to a chunk ahead of the snapshot last yielded: feed this
        object nothing else until the iterator is done; it then holds what :meth:`update` leaves."""
        for k in range(0, len(bars), STREAM_CHUNK):
            chunk = bars[k : k + STREAM_CHUNK]
            cols = self._columns(chunk)
            if cols is None:
                for b in chunk:
                    snap = self.update(b)
                    yield None if snap is None else itertools.repeat(snap).__next__
                continue
            # the realised variance bar by bar, as update does (the chunk's returns in one call)
            prevs = [self.prev_bar, *chunk[:-1]]
            variances = self.rv.push_many([minute_return(p, b) for p, b in zip(prevs, chunk, strict=True)])
            for j, bar in enumerate(chunk):
                yield functools.partial(_snapshot_of, bar, prevs[j], cols, j, variances[j])
            self.prev_bar = chunk[-1]

    def _columns(self, chunk: Sequence[Bar]) -> tuple[list[Any], ...] | None:
        """The per-bar feature columns of ``chunk`` (:meth:`stream`'s order), its bars folded into
        every stream but the realised variance; None (nothing touched) when it must go bar by bar."""
        ts = [b.ts_ns for b in chunk]
        last = self.last_ts_ns
        for t in ts:
            if t <= last:
                return None
            last = t
        h = np.array([b.high for b in chunk], dtype=np.float64)
        lo = np.array([b.low for b in chunk], dtype=np.float64)
        if np.isnan(h).any() or np.isnan(lo).any() or self.hi.holds_nan() or self.lo.holds_nan():
            return None
        c = np.array([b.close for b in chunk], dtype=np.float64)
        v = np.array([b.volume for b in chunk], dtype=np.float64)
        # the values before this chunk (what update reads before its first bar): value = the last output
        ef_prev0, rsi_prev0, vavg0 = float(self.ema_fast.value), float(self.rsi.value), float(self.vol.value)
        resistance = self.hi.previous_many(h)
        support = self.lo.previous_many(lo)
        atr_a = self.atr.update_many(h, lo, c)
        rsi_a = self.rsi.update_many(c)
        adx_a, pdi_a, mdi_a = self.adx.update_many_di(h, lo, c)  # +DI/-DI after each bar too
        ef_a = self.ema_fast.update_many(c)
        es_a = self.ema_slow.update_many(c)
        up_a, mid_a, low_a = self.bb.update_many(c)
        vol_a = np.concatenate(([vavg0], self.vol.update_many(v)))
        if self._named_inputs:
            cols = {"open": np.array([b.open for b in chunk], dtype=np.float64), "high": h, "low": lo, "close": c}
            cols["volume"] = v
            for stream, inputs in self._named_inputs:
                stream.update_many(*[cols[i] for i in inputs])
        # Snapshot.ready but for the previous bar, in columns
        ready = np.isfinite(atr_a) & np.isfinite(rsi_a) & np.isfinite(adx_a) & np.isfinite(ef_a)
        ready &= np.isfinite(es_a) & np.isfinite(mid_a) & np.isfinite(vol_a[:-1])
        rsi, ef = rsi_a.tolist(), ef_a.tolist()
        self.last_ts_ns = ts[-1]
        self.bars += len(chunk)
        return (
            atr_a.tolist(), rsi, [rsi_prev0, *rsi[:-1]], adx_a.tolist(), pdi_a.tolist(), mdi_a.tolist(), ef,
            [ef_prev0, *ef[:-1]], es_a.tolist(), up_a.tolist(), mid_a.tolist(), low_a.tolist(), vol_a[:-1].tolist(),
            resistance, support, ready.tolist(),
        )  # fmt: skip

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
