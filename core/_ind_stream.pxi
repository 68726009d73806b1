# Streaming indicator classes (included by indicators.pyx).
#
# One small final cdef class per indicator. State is O(1) in the stream length: the indicator's C
# state struct (the one its batch kernel runs) plus ring buffers / monotonic deques sized by the
# period. Each class's ``_push`` calls the same nogil step function as the batch kernel (defined
# with it in _ind_batch.pxi), so feeding a series bar by bar reproduces the batch output bit for
# bit. One convention: ``update(self, <inputs as doubles>, /)``, a ``def`` with positional-only
# arguments (CPython's cheapest call: no keyword parsing; ~10 ns less than a cpdef method), and
# ``update_many`` loops over ``_push`` in C. ``update`` returns NaN (a tuple of NaN for
# multi-output) while warming up.

from collections.abc import Mapping as _Mapping


def _restore(cls, tuple params, dict state):
    """Unpickle helper: rebuild with the same parameters, then restore every state field."""
    obj = cls(*params)
    for k, v in state.items():
        setattr(obj, k, v)
    obj._bind()
    return obj


cdef class _Stream:
    """Shared plumbing: ready/value/reset/pickling. Subclasses list their state in ``_fields``."""

    cdef public double _o1, _o2, _o3
    cdef public bint _rdy
    cdef int _nout
    _fields = ()

    def _params(self):
        return ()

    def _bind(self):
        pass

    @property
    def ready(self):
        """True once the indicator has produced its first value."""
        return self._rdy

    @property
    def initialized(self):
        """Same as ``ready`` (NautilusTrader's name): True once the first value is out."""
        return self._rdy

    def handle_bar(self, bar):
        """Feed one bar and return what ``update`` returns.

        ``bar``: any object with ``open``/``high``/``low``/``close``/``volume`` attributes (a
        NautilusTrader ``Bar``, a namedtuple, a dataclass, a pandas row) or a mapping with those
        keys; values go through ``float()``. The fields read are this indicator's inputs in
        ``INDICATORS`` (single-input indicators read ``close``; OBV reads close and volume)."""
        fields = _BAR_FIELDS.get(type(self))
        if fields is None:
            raise TypeError(f"{type(self).__name__} has no bar inputs registered")
        get = bar.__getitem__ if isinstance(bar, _Mapping) else bar.__getattribute__
        vals = []
        for f in fields:
            try:
                vals.append(float(get(f)))
            except (KeyError, AttributeError):
                raise ValueError(f"{type(self).__name__}.handle_bar: bar has no field {f!r} "
                                 f"(needs {', '.join(fields)})") from None
            except (TypeError, ValueError):
                raise ValueError(f"{type(self).__name__}.handle_bar: field {f!r} = {get(f)!r} is "
                                 "not a number") from None
        return self.update(*vals)

    @property
    def value(self):
        """Latest value (a tuple for multi-output indicators); NaN while warming up."""
        cdef double nan = NAN
        if self._nout == 1:
            return self._o1 if self._rdy else nan
        if not self._rdy:
            return (nan,) * self._nout
        if self._nout == 2:
            return (self._o1, self._o2)
        return (self._o1, self._o2, self._o3)

    def reset(self):
        """Forget all history (same parameters)."""
        self.__init__(*self._params())

    def __reduce__(self):
        state = {}
        for f in ("_o1", "_o2", "_o3", "_rdy") + tuple(self._fields):
            v = getattr(self, f)
            state[f] = v.copy() if isinstance(v, np.ndarray) else v
        return (_restore, (type(self), tuple(self._params()), state))

    def __repr__(self):
        return f"{type(self).__name__}{tuple(self._params())!r}"


cdef inline cnp.ndarray _zeros(Py_ssize_t n):
    return np.zeros(n, dtype=np.float64)


cdef struct DequeSt:
    int cap
    long head
    long tail


cdef inline void _dq_init(DequeSt* d, int cap) noexcept nogil:
    d.cap = cap
    d.head = 0
    d.tail = 0


cdef inline void _dq_push(DequeSt* d, double* vals, double* idxs, double x, long i, long w,
                          bint is_max) noexcept nogil:
    """Monotonic deque over the last ``w`` items; ties keep the latest index."""
    cdef long j
    while d.tail > d.head:
        j = (d.tail - 1) % d.cap
        if (vals[j] <= x) if is_max else (vals[j] >= x):
            d.tail -= 1
        else:
            break
    j = d.tail % d.cap
    vals[j] = x
    idxs[j] = <double>i
    d.tail += 1
    while idxs[d.head % d.cap] <= <double>(i - w):
        d.head += 1


cdef inline double _dq_front(DequeSt* d, double* vals) noexcept nogil:
    return vals[d.head % d.cap]


cdef inline double _dq_front_idx(DequeSt* d, double* idxs) noexcept nogil:
    return idxs[d.head % d.cap]


cdef inline cnp.ndarray _as_input(object x, str name):
    return _arr(x, name)


# ------------------------------------------------------------------------- overlap studies

@cython.final
cdef class EMA(_Stream):
    """Streaming EMA (TA_EMA): SMA seed of the first ``period`` values, then k = 2/(period+1)."""

    cdef public EmaSt _e
    _fields = ("_e",)

    def __init__(self, period=30):
        _ema_init(&self._e, _period(period, "period", 1))
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._e.period,)

    cdef inline double _push(self, double real) noexcept:
        cdef double v = _ema_push(&self._e, real)
        if self._e.count >= self._e.period:
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double real, /):
        """Feed one value; returns the EMA or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the EMA for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class SMA(_Stream):
    """Streaming simple moving average (TA_SMA) over a ring buffer."""

    cdef public SmaSt _s
    cdef public object _buf
    cdef double* _b
    _fields = ("_s", "_buf")

    def __init__(self, period=30):
        cdef int p = _period(period, "period", 1)
        _sma_init(&self._s, p)
        self._buf = _zeros(p)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._s.period,)

    cdef inline double _push(self, double real) noexcept:
        cdef double v = _sma_push(&self._s, self._b, real)
        if self._s.count >= self._s.period:
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double real, /):
        """Feed one value; returns the SMA or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the SMA for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class WMA(_Stream):
    """Streaming linearly weighted moving average (TA_WMA)."""

    cdef public WmaSt _w
    cdef public int _idx
    cdef public object _buf
    cdef double* _b
    _fields = ("_w", "_idx", "_buf")

    def __init__(self, period=30):
        cdef int p = _period(period, "period", 1)
        _wma_init(&self._w, p)
        self._idx = 0
        self._buf = _zeros(p)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._w.period,)

    cdef inline double _push(self, double real) noexcept:
        cdef int p = self._w.period
        if p == 1:
            self._rdy = True
            self._o1 = real
            return real
        # ring of the last p values: before the write it holds the p bars before this one
        if self._w.count < p - 1:
            self._b[self._idx] = real
            self._idx = self._idx + 1 if self._idx + 1 < p else 0
            _wma_warm(&self._w, real)
            return NAN
        if _wma_due(&self._w):
            _wma_reseed(&self._w, self._b, self._idx)
        self._b[self._idx] = real
        self._idx = self._idx + 1 if self._idx + 1 < p else 0
        self._o1 = _wma_next(&self._w, real, self._b[self._idx], (p * (p + 1)) >> 1)
        self._rdy = True
        return self._o1

    def update(self, double real, /):
        """Feed one value; returns the WMA or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the WMA for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


cdef class _XEma(_Stream):
    """DEMA/TEMA: the chained EMA levels of _xema_push."""

    cdef public XemaSt _x
    _fields = ("_x",)

    def _params(self):
        return (self._x.e1.period,)

    cdef double _push(self, double real) noexcept:
        cdef double v = _xema_push(&self._x, real)
        if self._x.e2.count >= self._x.e2.period and (
                self._x.levels == 2 or self._x.e3.count >= self._x.e3.period):
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double real, /):
        """Feed one value; returns the value or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the value for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class DEMA(_XEma):
    """Streaming double EMA (TA_DEMA): 2*EMA - EMA(EMA)."""

    def __init__(self, period=30):
        _xema_init(&self._x, _period(period, "period", 1), 2)
        self._nout = 1
        self._rdy = False
        self._o1 = NAN


@cython.final
cdef class TEMA(_XEma):
    """Streaming triple EMA (TA_TEMA): 3*E1 - 3*E2 + E3."""

    def __init__(self, period=30):
        _xema_init(&self._x, _period(period, "period", 1), 3)
        self._nout = 1
        self._rdy = False
        self._o1 = NAN


@cython.final
cdef class KAMA(_Stream):
    """Streaming Kaufman adaptive moving average (TA_KAMA)."""

    cdef public int _p, _count, _idx
    cdef public KamaSt _k
    cdef public double _last
    cdef public object _buf
    cdef double* _b
    _fields = ("_p", "_count", "_idx", "_k", "_last", "_buf")

    def __init__(self, period=30):
        self._p = _period(period, "period", 1)
        self._count = 0
        self._idx = 0
        self._k.prev = NAN
        self._k.sum = 0.0
        self._k.trail = NAN
        self._last = NAN
        self._buf = _zeros(self._p + 1)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._p,)

    cdef inline double _push(self, double real) noexcept:
        cdef int p = self._p
        cdef double oldest
        if p == 1:
            self._rdy = True
            self._o1 = real
            return real
        # ring of the last p+1 values: after the write, the oldest sits at _idx
        self._b[self._idx] = real
        self._idx = self._idx + 1 if self._idx + 1 < p + 1 else 0
        if self._count < p:
            if self._count > 0:
                _kama_warm(&self._k, real, self._last)
            self._count += 1
            self._last = real
            return NAN
        oldest = self._b[self._idx]
        if self._count == p:
            # the batch kernel's first step: previous KAMA = last price, trailing term cancels
            self._count += 1
            self._k.prev = self._last
            self._k.trail = oldest
        _kama_step(&self._k, real, self._last, oldest)
        self._last = real
        self._rdy = True
        self._o1 = self._k.prev
        return self._o1

    def update(self, double real, /):
        """Feed one value; returns the KAMA or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the KAMA for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class BBands(_Stream):
    """Streaming Bollinger bands (SMA middle, population std): update returns
    (upper, middle, lower)."""

    cdef public SmaSt _s
    cdef public VarSt _v
    cdef public double _up, _dn
    cdef public object _buf
    cdef double* _b
    _fields = ("_s", "_v", "_buf")

    def __init__(self, period=20, nbdev_up=2.0, nbdev_dn=2.0):
        cdef int p = _period(period, "period", 2)
        self._up = _real(nbdev_up, "nbdev_up")
        self._dn = _real(nbdev_dn, "nbdev_dn")
        _sma_init(&self._s, p)
        _var_init(&self._v, p)
        self._buf = _zeros(p)
        self._bind()
        self._nout = 3
        self._rdy = False

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._s.period, self._up, self._dn)

    cdef bint _push(self, double x) noexcept:
        cdef double m = _sma_push(&self._s, self._b, x), var
        if self._s.count < self._s.period:
            _var_warm(&self._v, x)
            return False
        # the ring now holds the window oldest-first from the slot after the newest value
        var = _var_step(&self._v, x, self._b, self._s.idx)
        _bands(m, sqrt(var), self._up, self._dn, &self._o1, &self._o3)
        self._o2 = m
        self._rdy = True
        return True

    def update(self, double real, /):
        """Feed one value; returns (upper, middle, lower) or NaNs while warming up."""
        if self._push(real):
            return (self._o1, self._o2, self._o3)
        return (NAN, NAN, NAN)

    def update_many(self, real):
        """Feed a block of values; returns (upper, middle, lower) arrays."""
        cdef cnp.ndarray a = _as_input(real, "real")
        cdef Py_ssize_t i, n = a.shape[0]
        cdef cnp.ndarray u = _empty(n), m = _empty(n), lo = _empty(n)
        cdef const double* x = _dp(a)
        cdef double* pu = _dp(u)
        cdef double* pm = _dp(m)
        cdef double* pl = _dp(lo)
        for i in range(n):
            if self._push(x[i]):
                pu[i] = self._o1
                pm[i] = self._o2
                pl[i] = self._o3
            else:
                pu[i] = pm[i] = pl[i] = NAN
        return u, m, lo


@cython.final
cdef class SAR(_Stream):
    """Streaming parabolic SAR (TA_SAR)."""

    cdef public SarSt _s
    cdef public double _acc
    _fields = ("_s",)

    def __init__(self, acceleration=0.02, maximum=0.2):
        self._acc = _real(acceleration, "acceleration", 0.0)
        _sar_init(&self._s, self._acc, _real(maximum, "maximum", 0.0))
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._acc, self._s.amax)

    cdef inline double _push(self, double high, double low) noexcept:
        cdef double v = _sar_push(&self._s, high, low)
        if self._s.count >= 2:
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double high, double low, /):
        """Feed one bar; returns the SAR or NaN on the first bar."""
        return self._push(high, low)

    def update_many(self, high, low):
        """Feed a block of bars; returns the SAR for each."""
        arrays, n, beg = _inputs((high, low), _HL)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i])
        return out


@cython.final
cdef class VWAP(_Stream):
    """Streaming session VWAP of the typical price; pass ``new_session=True`` on a session's first
    bar (see ``ny_session_starts`` for America/New_York days)."""

    cdef public VwapSt _v
    _fields = ("_v",)

    def __init__(self):
        self._v.cum_pv = 0.0
        self._v.cum_v = 0.0
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    cdef inline double _push(self, double high, double low, double close, double volume,
                             bint new_session) noexcept:
        self._o1 = _vwap_push(&self._v, high, low, close, volume, new_session)
        self._rdy = True
        return self._o1

    def update(self, double high, double low, double close, double volume, /,
               bint new_session=False):
        """Feed one bar; returns the session VWAP (NaN before any volume traded)."""
        return self._push(high, low, close, volume, new_session)

    def update_many(self, high, low, close, volume, session_start=None, timestamps=None):
        """Feed a block of bars; sessions as in ``vwap`` (a block does not force a new session
        unless ``session_start``/``timestamps`` say so)."""
        arrays, n, beg = _inputs((high, low, close, volume), _HLCV)
        cdef cnp.ndarray starts
        if timestamps is not None:
            starts = ny_session_starts(timestamps)
        elif session_start is not None:
            starts = np.ascontiguousarray(session_start, dtype=bool)
        else:
            starts = np.zeros(n, dtype=bool)
        if starts.shape[0] != n:
            raise ValueError(f"session markers have length {starts.shape[0]}, expected {n}")
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef const double* v = _dp(arrays[3])
        cdef const char* s = <const char*>cnp.PyArray_DATA(starts)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i], v[i], s[i] != 0)
        return out


# -------------------------------------------------------------------------------- momentum

@cython.final
cdef class RSI(_Stream):
    """Streaming RSI with Wilder smoothing (TA_RSI)."""

    cdef public RsiSt _r
    _fields = ("_r",)

    def __init__(self, period=14):
        _rsi_init(&self._r, _period(period, "period", 2))
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._r.period,)

    cdef inline double _push(self, double real) noexcept:
        cdef double v = _rsi_push(&self._r, real)
        if self._r.count > self._r.period:
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double real, /):
        """Feed one value; returns the RSI or NaN while warming up."""
        return self._push(real)

    def update_many(self, real):
        """Feed a block of values; returns the RSI for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class MACD(_Stream):
    """Streaming MACD (TA_MACD): both EMAs seeded at bar slow-1; update returns
    (macd, signal, hist)."""

    cdef public MacdSt _m
    cdef public object _buf
    cdef double* _b
    _fields = ("_m", "_buf")

    def __init__(self, fast=12, slow=26, signal=9):
        cdef int f = _period(fast, "fast", 2), s = _period(slow, "slow", 2)
        _macd_init(&self._m, f, s, _period(signal, "signal", 1))
        self._buf = _zeros(self._m.fast)
        self._bind()
        self._nout = 3
        self._rdy = False

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._m.fast, self._m.slow, self._m.sig.period)

    cdef bint _push(self, double x) noexcept:
        cdef double o[3]
        if not _macd_push(&self._m, self._b, x, o):
            return False
        self._o1 = o[0]
        self._o2 = o[1]
        self._o3 = o[2]
        self._rdy = True
        return True

    def update(self, double real, /):
        """Feed one value; returns (macd, signal, hist) or NaNs while warming up."""
        if self._push(real):
            return (self._o1, self._o2, self._o3)
        return (NAN, NAN, NAN)

    def update_many(self, real):
        """Feed a block of values; returns (macd, signal, hist) arrays."""
        cdef cnp.ndarray a = _as_input(real, "real")
        cdef Py_ssize_t i, n = a.shape[0]
        cdef cnp.ndarray r1 = _empty(n), r2 = _empty(n), r3 = _empty(n)
        cdef const double* x = _dp(a)
        cdef double* p1 = _dp(r1)
        cdef double* p2 = _dp(r2)
        cdef double* p3 = _dp(r3)
        for i in range(n):
            if self._push(x[i]):
                p1[i] = self._o1
                p2[i] = self._o2
                p3[i] = self._o3
            else:
                p1[i] = p2[i] = p3[i] = NAN
        return r1, r2, r3


@cython.final
cdef class Stoch(_Stream):
    """Streaming slow stochastic (TA_STOCH, SMA smoothing): update returns (slowk, slowd)."""

    cdef public int _fk
    cdef public long _i
    cdef public DequeSt _dmax, _dmin
    cdef public SmaSt _sk, _sd
    cdef public object _vmax, _imax, _vmin, _imin, _bk, _bd
    cdef double* _pvmax
    cdef double* _pimax
    cdef double* _pvmin
    cdef double* _pimin
    cdef double* _pbk
    cdef double* _pbd
    _fields = ("_fk", "_i", "_dmax", "_dmin", "_sk", "_sd", "_vmax", "_imax", "_vmin", "_imin",
               "_bk", "_bd")

    def __init__(self, fastk=5, slowk=3, slowd=3):
        self._fk = _period(fastk, "fastk", 1)
        cdef int sk = _period(slowk, "slowk", 1), sd = _period(slowd, "slowd", 1)
        self._i = 0
        _dq_init(&self._dmax, self._fk + 1)
        _dq_init(&self._dmin, self._fk + 1)
        _sma_init(&self._sk, sk)
        _sma_init(&self._sd, sd)
        self._vmax = _zeros(self._fk + 1)
        self._imax = _zeros(self._fk + 1)
        self._vmin = _zeros(self._fk + 1)
        self._imin = _zeros(self._fk + 1)
        self._bk = _zeros(sk)
        self._bd = _zeros(sd)
        self._bind()
        self._nout = 2
        self._rdy = False

    def _bind(self):
        self._pvmax = _dp(self._vmax)
        self._pimax = _dp(self._imax)
        self._pvmin = _dp(self._vmin)
        self._pimin = _dp(self._imin)
        self._pbk = _dp(self._bk)
        self._pbd = _dp(self._bd)

    def _params(self):
        return (self._fk, self._sk.period, self._sd.period)

    cdef bint _push(self, double high, double low, double close) noexcept:
        cdef long i = self._i
        cdef double k, d
        self._i += 1
        _dq_push(&self._dmax, self._pvmax, self._pimax, high, i, self._fk, True)
        _dq_push(&self._dmin, self._pvmin, self._pimin, low, i, self._fk, False)
        if i < self._fk - 1:
            return False
        k = _fastk_value(close, _dq_front(&self._dmin, self._pvmin),
                         _dq_front(&self._dmax, self._pvmax))
        k = _sma_push(&self._sk, self._pbk, k)
        if self._sk.count < self._sk.period:
            return False
        d = _sma_push(&self._sd, self._pbd, k)
        if self._sd.count < self._sd.period:
            return False
        self._o1 = k
        self._o2 = d
        self._rdy = True
        return True

    def update(self, double high, double low, double close, /):
        """Feed one bar; returns (slowk, slowd) or NaNs while warming up."""
        if self._push(high, low, close):
            return (self._o1, self._o2)
        return (NAN, NAN)

    def update_many(self, high, low, close):
        """Feed a block of bars; returns (slowk, slowd) arrays."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray r1 = _empty(n), r2 = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* p1 = _dp(r1)
        cdef double* p2 = _dp(r2)
        cdef Py_ssize_t i
        for i in range(n):
            if self._push(h[i], lw[i], c[i]):
                p1[i] = self._o1
                p2[i] = self._o2
            else:
                p1[i] = p2[i] = NAN
        return r1, r2


@cython.final
cdef class StochRSI(_Stream):
    """Streaming stochastic RSI (TA_STOCHRSI, SMA %D): update returns (fastk, fastd)."""

    cdef public RsiSt _r
    cdef public int _fk
    cdef public long _i
    cdef public DequeSt _dmax, _dmin
    cdef public SmaSt _sd
    cdef public object _vmax, _imax, _vmin, _imin, _bd
    cdef double* _pvmax
    cdef double* _pimax
    cdef double* _pvmin
    cdef double* _pimin
    cdef double* _pbd
    _fields = ("_r", "_fk", "_i", "_dmax", "_dmin", "_sd", "_vmax", "_imax", "_vmin", "_imin",
               "_bd")

    def __init__(self, period=14, fastk=5, fastd=3):
        _rsi_init(&self._r, _period(period, "period", 2))
        self._fk = _period(fastk, "fastk", 1)
        cdef int fd = _period(fastd, "fastd", 1)
        self._i = 0
        _dq_init(&self._dmax, self._fk + 1)
        _dq_init(&self._dmin, self._fk + 1)
        _sma_init(&self._sd, fd)
        self._vmax = _zeros(self._fk + 1)
        self._imax = _zeros(self._fk + 1)
        self._vmin = _zeros(self._fk + 1)
        self._imin = _zeros(self._fk + 1)
        self._bd = _zeros(fd)
        self._bind()
        self._nout = 2
        self._rdy = False

    def _bind(self):
        self._pvmax = _dp(self._vmax)
        self._pimax = _dp(self._imax)
        self._pvmin = _dp(self._vmin)
        self._pimin = _dp(self._imin)
        self._pbd = _dp(self._bd)

    def _params(self):
        return (self._r.period, self._fk, self._sd.period)

    cdef bint _push(self, double x) noexcept:
        cdef double r = _rsi_push(&self._r, x), k, d
        cdef long i
        if self._r.count <= self._r.period:
            return False
        i = self._i
        self._i += 1
        _dq_push(&self._dmax, self._pvmax, self._pimax, r, i, self._fk, True)
        _dq_push(&self._dmin, self._pvmin, self._pimin, r, i, self._fk, False)
        if i < self._fk - 1:
            return False
        k = _fastk_value(r, _dq_front(&self._dmin, self._pvmin), _dq_front(&self._dmax, self._pvmax))
        d = _sma_push(&self._sd, self._pbd, k)
        if self._sd.count < self._sd.period:
            return False
        self._o1 = k
        self._o2 = d
        self._rdy = True
        return True

    def update(self, double real, /):
        """Feed one value; returns (fastk, fastd) or NaNs while warming up."""
        if self._push(real):
            return (self._o1, self._o2)
        return (NAN, NAN)

    def update_many(self, real):
        """Feed a block of values; returns (fastk, fastd) arrays."""
        cdef cnp.ndarray a = _as_input(real, "real")
        cdef Py_ssize_t i, n = a.shape[0]
        cdef cnp.ndarray r1 = _empty(n), r2 = _empty(n)
        cdef const double* x = _dp(a)
        cdef double* p1 = _dp(r1)
        cdef double* p2 = _dp(r2)
        for i in range(n):
            if self._push(x[i]):
                p1[i] = self._o1
                p2[i] = self._o2
            else:
                p1[i] = p2[i] = NAN
        return r1, r2


@cython.final
cdef class ADX(_Stream):
    """Streaming ADX with Wilder smoothing (TA_ADX); ``plus_di``/``minus_di`` expose the +DI/-DI
    of the same smoothing (TA_PLUS_DI/TA_MINUS_DI, ready after ``period`` bars)."""

    cdef public int _p
    cdef public long _count
    cdef public double _ph, _pl, _pc, _pdm, _mdm, _tr, _sum_dx, _adx, _pdi, _mdi
    _fields = ("_p", "_count", "_ph", "_pl", "_pc", "_pdm", "_mdm", "_tr", "_sum_dx", "_adx",
               "_pdi", "_mdi")

    def __init__(self, period=14):
        self._p = _period(period, "period", 2)
        self._count = 0
        self._ph = self._pl = self._pc = NAN
        self._pdm = self._mdm = self._tr = self._sum_dx = 0.0
        self._adx = self._pdi = self._mdi = NAN
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._p,)

    @property
    def plus_di(self):
        """Latest +DI (NaN before ``period`` bars)."""
        return self._pdi

    @property
    def minus_di(self):
        """Latest -DI (NaN before ``period`` bars)."""
        return self._mdi

    def update(self, double high, double low, double close, /):
        """Feed one bar; returns the ADX or NaN while warming up."""
        return self._push(high, low, close)

    cdef inline double _push(self, double high, double low, double close) noexcept:
        cdef long i = self._count
        cdef int p = self._p
        cdef double diff_p, diff_m, dx
        cdef bint ok
        self._count += 1
        if i == 0:
            self._ph = high
            self._pl = low
            self._pc = close
            return NAN
        diff_p = high - self._ph
        self._ph = high
        diff_m = self._pl - low
        self._pl = low
        if i <= p - 1:
            _dm(diff_p, diff_m, &self._pdm, &self._mdm)
            self._tr += _true_range(self._ph, self._pl, self._pc)
            self._pc = close
            return NAN
        _dmi_smooth(&self._pdm, &self._mdm, &self._tr, diff_p, diff_m,
                    _true_range(self._ph, self._pl, self._pc), _wilder_c1(p))
        self._pc = close
        self._mdi = _di(self._mdm, self._tr)
        self._pdi = _di(self._pdm, self._tr)
        ok = _dx(self._pdi, self._mdi, self._tr, &dx)
        if i <= 2 * p - 1:
            if ok:
                self._sum_dx += dx
            if i < 2 * p - 1:
                return NAN
            self._adx = self._sum_dx / p
        else:
            self._adx = _adx_next(self._adx, ok, dx, _wilder_c1(p), 1.0 / p)
        self._rdy = True
        self._o1 = self._adx
        return self._adx

    def update_many(self, high, low, close):
        """Feed a block of bars; returns the ADX for each."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i])
        return out

    def update_many_di(self, high, low, close):
        """:meth:`update_many` with the +DI and -DI after each bar: (adx, plus_di, minus_di), what
        ``update`` then the ``plus_di``/``minus_di`` properties give bar by bar (-DI/+DI keep their
        last value, NaN at first, until ``period`` bars)."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray out = _empty(n)
        cdef cnp.ndarray pdi = _empty(n)
        cdef cnp.ndarray mdi = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* o = _dp(out)
        cdef double* po = _dp(pdi)
        cdef double* mo = _dp(mdi)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i])
            po[i] = self._pdi
            mo[i] = self._mdi
        return out, pdi, mdi


@cython.final
cdef class CCI(_Stream):
    """Streaming commodity channel index (TA_CCI); O(period) mean deviation per bar, as TA-Lib."""

    cdef public int _p, _idx, _count
    cdef public object _buf
    cdef double* _b
    _fields = ("_p", "_idx", "_count", "_buf")

    def __init__(self, period=14):
        self._p = _period(period, "period", 2)
        self._idx = 0
        self._count = 0
        self._buf = _zeros(self._p)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._p,)

    def update(self, double high, double low, double close, /):
        """Feed one bar; returns the CCI or NaN while warming up."""
        return self._push(high, low, close)

    cdef inline double _push(self, double high, double low, double close) noexcept:
        cdef int p = self._p
        cdef double last = _typical(high, low, close)
        self._b[self._idx] = last
        self._idx = self._idx + 1 if self._idx + 1 < p else 0
        if self._count < p - 1:
            self._count += 1
            return NAN
        self._o1 = _cci_value(self._b, p, last)
        self._rdy = True
        return self._o1

    def update_many(self, high, low, close):
        """Feed a block of bars; returns the CCI for each."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i])
        return out


@cython.final
cdef class WillR(_Stream):
    """Streaming Williams %R (TA_WILLR) with monotonic deques."""

    cdef public int _p
    cdef public long _i
    cdef public DequeSt _dmax, _dmin
    cdef public object _vmax, _imax, _vmin, _imin
    cdef double* _pvmax
    cdef double* _pimax
    cdef double* _pvmin
    cdef double* _pimin
    _fields = ("_p", "_i", "_dmax", "_dmin", "_vmax", "_imax", "_vmin", "_imin")

    def __init__(self, period=14):
        self._p = _period(period, "period", 2)
        self._i = 0
        _dq_init(&self._dmax, self._p + 1)
        _dq_init(&self._dmin, self._p + 1)
        self._vmax = _zeros(self._p + 1)
        self._imax = _zeros(self._p + 1)
        self._vmin = _zeros(self._p + 1)
        self._imin = _zeros(self._p + 1)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._pvmax = _dp(self._vmax)
        self._pimax = _dp(self._imax)
        self._pvmin = _dp(self._vmin)
        self._pimin = _dp(self._imin)

    def _params(self):
        return (self._p,)

    def update(self, double high, double low, double close, /):
        """Feed one bar; returns %R in [-100, 0] or NaN while warming up."""
        return self._push(high, low, close)

    cdef inline double _push(self, double high, double low, double close) noexcept:
        cdef long i = self._i
        self._i += 1
        _dq_push(&self._dmax, self._pvmax, self._pimax, high, i, self._p, True)
        _dq_push(&self._dmin, self._pvmin, self._pimin, low, i, self._p, False)
        if i < self._p - 1:
            return NAN
        self._o1 = _willr_value(_dq_front(&self._dmax, self._pvmax),
                                _dq_front(&self._dmin, self._pvmin), close)
        self._rdy = True
        return self._o1

    def update_many(self, high, low, close):
        """Feed a block of bars; returns %R for each."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i])
        return out


@cython.final
cdef class MFI(_Stream):
    """Streaming money flow index (TA_MFI, TA-Lib 0.8 tie and empty-window rules)."""

    cdef public MfiSt _m
    cdef public object _pos, _neg
    cdef double* _pp
    cdef double* _pn
    _fields = ("_m", "_pos", "_neg")

    def __init__(self, period=14):
        _mfi_init(&self._m, _period(period, "period", 2))
        self._pos = _zeros(self._m.period)
        self._neg = _zeros(self._m.period)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._pp = _dp(self._pos)
        self._pn = _dp(self._neg)

    def _params(self):
        return (self._m.period,)

    cdef inline double _push(self, double high, double low, double close, double volume) noexcept:
        cdef double v = _mfi_push(&self._m, self._pp, self._pn, high, low, close, volume)
        if self._m.count > self._m.period:
            self._rdy = True
            self._o1 = v
        return v

    def update(self, double high, double low, double close, double volume, /):
        """Feed one bar; returns the MFI or NaN while warming up."""
        return self._push(high, low, close, volume)

    def update_many(self, high, low, close, volume):
        """Feed a block of bars; returns the MFI for each."""
        arrays, n, beg = _inputs((high, low, close, volume), _HLCV)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef const double* v = _dp(arrays[3])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i], v[i])
        return out


cdef class _Lag(_Stream):
    """Shared state for ROC/MOM: a ring of the last ``period`` values."""

    cdef public int _p, _idx
    cdef public long _count
    cdef public object _buf
    cdef double* _b
    _fields = ("_p", "_idx", "_count", "_buf")

    def __init__(self, period=10):
        self._p = _period(period, "period", 1)
        self._idx = 0
        self._count = 0
        self._buf = _zeros(self._p)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._p,)

    cdef inline double _shift(self, double x) noexcept:
        """Store x, return the value ``period`` bars back (NaN while warming up)."""
        cdef double old = self._b[self._idx]
        self._b[self._idx] = x
        self._idx = self._idx + 1 if self._idx + 1 < self._p else 0
        self._count += 1
        return old if self._count > self._p else NAN


@cython.final
cdef class ROC(_Lag):
    """Streaming rate of change in percent (TA_ROC)."""

    def update(self, double real, /):
        """Feed one value; returns (x/x[-period] - 1)*100 or NaN while warming up."""
        return self._push(real)

    cdef inline double _push(self, double real) noexcept:
        cdef double old = self._shift(real)
        if self._count <= self._p:
            return NAN
        self._o1 = _roc_value(real, old)
        self._rdy = True
        return self._o1

    def update_many(self, real):
        """Feed a block of values; returns the ROC for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class MOM(_Lag):
    """Streaming momentum x - x[-period] (TA_MOM)."""

    def update(self, double real, /):
        """Feed one value; returns the momentum or NaN while warming up."""
        return self._push(real)

    cdef inline double _push(self, double real) noexcept:
        cdef double old = self._shift(real)
        if self._count <= self._p:
            return NAN
        self._o1 = _mom_value(real, old)
        self._rdy = True
        return self._o1

    def update_many(self, real):
        """Feed a block of values; returns the momentum for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class Aroon(_Stream):
    """Streaming Aroon (TA_AROON) over period+1 bars: update returns (aroondown, aroonup)."""

    cdef public int _p
    cdef public long _i
    cdef public DequeSt _dmax, _dmin
    cdef public object _vmax, _imax, _vmin, _imin
    cdef double* _pvmax
    cdef double* _pimax
    cdef double* _pvmin
    cdef double* _pimin
    _fields = ("_p", "_i", "_dmax", "_dmin", "_vmax", "_imax", "_vmin", "_imin")

    def __init__(self, period=14):
        self._p = _period(period, "period", 2)
        self._i = 0
        _dq_init(&self._dmax, self._p + 2)
        _dq_init(&self._dmin, self._p + 2)
        self._vmax = _zeros(self._p + 2)
        self._imax = _zeros(self._p + 2)
        self._vmin = _zeros(self._p + 2)
        self._imin = _zeros(self._p + 2)
        self._bind()
        self._nout = 2
        self._rdy = False

    def _bind(self):
        self._pvmax = _dp(self._vmax)
        self._pimax = _dp(self._imax)
        self._pvmin = _dp(self._vmin)
        self._pimin = _dp(self._imin)

    def _params(self):
        return (self._p,)

    cdef bint _push(self, double high, double low) noexcept:
        cdef long i = self._i
        cdef double factor = 100.0 / self._p
        self._i += 1
        _dq_push(&self._dmax, self._pvmax, self._pimax, high, i, self._p + 1, True)
        _dq_push(&self._dmin, self._pvmin, self._pimin, low, i, self._p + 1, False)
        if i < self._p:
            return False
        self._o2 = _aroon_value(factor, self._p, i - <long>_dq_front_idx(&self._dmax, self._pimax))
        self._o1 = _aroon_value(factor, self._p, i - <long>_dq_front_idx(&self._dmin, self._pimin))
        self._rdy = True
        return True

    def update(self, double high, double low, /):
        """Feed one bar; returns (aroondown, aroonup) or NaNs while warming up."""
        if self._push(high, low):
            return (self._o1, self._o2)
        return (NAN, NAN)

    def update_many(self, high, low):
        """Feed a block of bars; returns (aroondown, aroonup) arrays."""
        arrays, n, beg = _inputs((high, low), _HL)
        cdef cnp.ndarray r1 = _empty(n), r2 = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef double* p1 = _dp(r1)
        cdef double* p2 = _dp(r2)
        cdef Py_ssize_t i
        for i in range(n):
            if self._push(h[i], lw[i]):
                p1[i] = self._o1
                p2[i] = self._o2
            else:
                p1[i] = p2[i] = NAN
        return r1, r2


cdef class _ATRBase(_Stream):
    """Shared ATR state: TR from bar 1, SMA seed of the first ``period`` TRs, Wilder smoothing."""

    cdef public int _p
    cdef public long _count
    cdef public double _pc, _sum, _atr
    _fields = ("_p", "_count", "_pc", "_sum", "_atr")

    def __init__(self, period=14):
        self._p = _period(period, "period", 1)
        self._count = 0
        self._pc = NAN
        self._sum = 0.0
        self._atr = NAN
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._p,)

    cdef inline bint _step(self, double high, double low, double close) noexcept:
        """Advance; True when ``_atr`` holds a value for this bar (TR itself for period 1)."""
        cdef long i = self._count
        cdef double tr
        self._count += 1
        if i == 0:
            self._pc = close
            return False
        tr = _true_range(high, low, self._pc)
        self._pc = close
        if self._p == 1:
            self._atr = tr
            return True
        if i < self._p:
            self._sum += tr
            return False
        if i == self._p:
            self._sum += tr
            self._atr = self._sum / self._p
            return True
        self._atr = _atr_next(self._atr, tr, _wilder_c1(self._p), 1.0 / self._p)
        return True

    def update_many(self, high, low, close):
        """Feed a block of bars; returns the value for each."""
        arrays, n, beg = _inputs((high, low, close), _HLC)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._upd(h[i], lw[i], c[i])
        return out

    cdef double _upd(self, double high, double low, double close) noexcept:
        return NAN

    def update(self, double high, double low, double close, /):
        """Feed one bar; returns the value or NaN while warming up."""
        return self._upd(high, low, close)


@cython.final
cdef class ATR(_ATRBase):
    """Streaming average true range (TA_ATR)."""

    cdef double _upd(self, double high, double low, double close) noexcept:
        """One bar: the ATR or NaN while warming up."""
        if not self._step(high, low, close):
            return NAN
        self._o1 = self._atr
        self._rdy = True
        return self._o1


@cython.final
cdef class NATR(_ATRBase):
    """Streaming normalized ATR, 100*ATR/close (TA_NATR; period 1 is TRANGE, as TA-Lib)."""

    cdef double _upd(self, double high, double low, double close) noexcept:
        """One bar: the NATR or NaN while warming up."""
        if not self._step(high, low, close):
            return NAN
        self._o1 = self._atr if self._p == 1 else _natr_value(self._atr, close)
        self._rdy = True
        return self._o1


@cython.final
cdef class TRange(_ATRBase):
    """Streaming true range (TA_TRANGE)."""

    def __init__(self):
        _ATRBase.__init__(self, 1)

    def _params(self):
        return ()

    cdef double _upd(self, double high, double low, double close) noexcept:
        """One bar: the true range or NaN on the first bar."""
        if not self._step(high, low, close):
            return NAN
        self._o1 = self._atr
        self._rdy = True
        return self._o1


@cython.final
cdef class StdDev(_Stream):
    """Streaming population standard deviation times ``nbdev`` (TA_STDDEV): TA_VAR's anchored
    running sums over a ring of ``period`` values."""

    cdef public int _p, _idx
    cdef public long _count
    cdef public double _nbdev
    cdef public VarSt _v
    cdef public object _buf
    cdef double* _b
    _fields = ("_p", "_idx", "_count", "_v", "_buf")

    def __init__(self, period=5, nbdev=1.0):
        self._p = _period(period, "period", 2)
        self._nbdev = _real(nbdev, "nbdev")
        self._idx = 0
        self._count = 0
        _var_init(&self._v, self._p)
        self._buf = _zeros(self._p)
        self._bind()
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _bind(self):
        self._b = _dp(self._buf)

    def _params(self):
        return (self._p, self._nbdev)

    def update(self, double real, /):
        """Feed one value; returns the standard deviation or NaN while warming up."""
        return self._push(real)

    cdef inline double _push(self, double real) noexcept:
        cdef int p = self._p
        self._b[self._idx] = real
        self._idx = self._idx + 1 if self._idx + 1 < p else 0
        self._count += 1
        if self._count < p:
            _var_warm(&self._v, real)
            return NAN
        self._o1 = sqrt(_var_step(&self._v, real, self._b, self._idx)) * self._nbdev
        self._rdy = True
        return self._o1

    def update_many(self, real):
        """Feed a block of values; returns the standard deviation for each."""
        cdef cnp.ndarray a = _as_input(real, "real"), out = _empty(a.shape[0])
        cdef const double* x = _dp(a)
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(a.shape[0]):
            o[i] = self._push(x[i])
        return out


@cython.final
cdef class OBV(_Stream):
    """Streaming on-balance volume (TA_OBV), starting at the first bar's volume."""

    cdef public double _obv, _prev
    cdef public long _count
    _fields = ("_obv", "_prev", "_count")

    def __init__(self):
        self._obv = NAN
        self._prev = NAN
        self._count = 0
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def update(self, double real, double volume, /):
        """Feed one bar; returns the OBV."""
        return self._push(real, volume)

    cdef inline double _push(self, double real, double volume) noexcept:
        if self._count == 0:
            self._obv = volume
            self._prev = real
        self._obv = _obv_next(self._obv, real, self._prev, volume)
        self._prev = real
        self._count += 1
        self._o1 = self._obv
        self._rdy = True
        return self._obv

    def update_many(self, real, volume):
        """Feed a block of bars; returns the OBV for each."""
        arrays, n, beg = _inputs((real, volume), ("real", "volume"))
        cdef cnp.ndarray out = _empty(n)
        cdef const double* x = _dp(arrays[0])
        cdef const double* v = _dp(arrays[1])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(x[i], v[i])
        return out


@cython.final
cdef class AD(_Stream):
    """Streaming Chaikin accumulation/distribution line (TA_AD)."""

    cdef public double _ad
    _fields = ("_ad",)

    def __init__(self):
        self._ad = 0.0
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def update(self, double high, double low, double close, double volume, /):
        """Feed one bar; returns the A/D line."""
        return self._push(high, low, close, volume)

    cdef inline double _push(self, double high, double low, double close, double volume) noexcept:
        self._ad = _ad_step(self._ad, high, low, close, volume)
        self._o1 = self._ad
        self._rdy = True
        return self._ad

    def update_many(self, high, low, close, volume):
        """Feed a block of bars; returns the A/D line for each."""
        arrays, n, beg = _inputs((high, low, close, volume), _HLCV)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef const double* v = _dp(arrays[3])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i], v[i])
        return out


@cython.final
cdef class ADOSC(_Stream):
    """Streaming Chaikin A/D oscillator (TA_ADOSC): EMA(fast) - EMA(slow) of the A/D line."""

    cdef public int _fast, _slow
    cdef public long _count
    cdef public double _ad, _fe, _se
    _fields = ("_fast", "_slow", "_count", "_ad", "_fe", "_se")

    def __init__(self, fast=3, slow=10):
        self._fast = _period(fast, "fast", 2)
        self._slow = _period(slow, "slow", 2)
        self._count = 0
        self._ad = 0.0
        self._fe = NAN
        self._se = NAN
        self._nout = 1
        self._rdy = False
        self._o1 = NAN

    def _params(self):
        return (self._fast, self._slow)

    def update(self, double high, double low, double close, double volume, /):
        """Feed one bar; returns the oscillator or NaN while warming up."""
        return self._push(high, low, close, volume)

    cdef inline double _push(self, double high, double low, double close, double volume) noexcept:
        cdef long i = self._count
        cdef long lb = (self._fast if self._fast > self._slow else self._slow) - 1
        cdef double fk = _per_to_k(self._fast), sk = _per_to_k(self._slow)
        cdef double st[3]
        self._count += 1
        if i == 0:
            self._ad = _ad_step(self._ad, high, low, close, volume)
            self._fe = self._ad
            self._se = self._ad
            return NAN
        st[0] = self._ad
        st[1] = self._fe
        st[2] = self._se
        _adosc_step(st, high, low, close, volume, fk, 1.0 - fk, sk, 1.0 - sk)
        self._ad = st[0]
        self._fe = st[1]
        self._se = st[2]
        if i < lb:
            return NAN
        self._o1 = self._fe - self._se
        self._rdy = True
        return self._o1

    def update_many(self, high, low, close, volume):
        """Feed a block of bars; returns the oscillator for each."""
        arrays, n, beg = _inputs((high, low, close, volume), _HLCV)
        cdef cnp.ndarray out = _empty(n)
        cdef const double* h = _dp(arrays[0])
        cdef const double* lw = _dp(arrays[1])
        cdef const double* c = _dp(arrays[2])
        cdef const double* v = _dp(arrays[3])
        cdef double* o = _dp(out)
        cdef Py_ssize_t i
        for i in range(n):
            o[i] = self._push(h[i], lw[i], c[i], v[i])
        return out
