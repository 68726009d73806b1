"""Candlestick pattern recognition (TA-Lib-identical) and swing pivots, compiled.

Every ``cdl_*`` function takes ``open, high, low, close`` (1-D, same length, anything numpy can
turn into float64; converted once to contiguous float64) and returns an ``int32`` array of the
same length holding TA-Lib's values: ``+100`` bullish, ``-100`` bearish, ``0`` none, and ``+-80``
where TA-Lib itself returns it (engulfing and harami when the two real bodies share an end).

The output equals ``talib.CDL<NAME>`` bar for bar, including:

* TA-Lib's default candle settings (``BodyLong``, ``BodyShort``, ``BodyDoji``, ``ShadowLong``,
  ``ShadowVeryShort``, ``Near``, ``Far``: range type, averaging period and factor), compared with
  rolling averages over the *preceding* candles kept with TA-Lib's own running-sum bookkeeping
  (add the new range, subtract the trailing one, after the test), so sums round identically;
* the lookback: the first ``lookback`` outputs are 0;
* NaN handling as the ``talib`` wrapper does it: leading bars where any input is NaN are skipped
  (output 0) and the lookback counts from the first all-finite bar; later NaNs propagate through
  the comparisons and running sums exactly as in C (``fmax``/``fmin`` ignore a NaN argument).

Loops run without the GIL. Prices are dollars (any unit works: every test is scale-free).
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport fabs, fmax, fmin, isfinite

cnp.import_array()

# ---------------------------------------------------------------------------------------------
# Candle settings: TA-Lib's defaults (TA_SetCandleSettings never called).
# ---------------------------------------------------------------------------------------------

cdef enum:
    RT_REALBODY = 0
    RT_HIGHLOW = 1
    RT_SHADOWS = 2

cdef struct Bars:
    const double* o
    const double* h
    const double* lo
    const double* c

ctypedef void (*kernel_t)(Bars, Py_ssize_t, int*, double) noexcept nogil

# The settings are C ``static const`` objects so the compiler folds every range-type branch and
# period away (values as in TA-Lib's ta_global.c: range type, averaging period, factor).
cdef extern from *:
    """
    typedef struct { int range_type; int avg_period; double factor; } aiots_cdl_setting;
    static const aiots_cdl_setting AIOTS_BODY_LONG = {0, 10, 1.0};
    static const aiots_cdl_setting AIOTS_BODY_VERY_LONG = {0, 10, 3.0};
    static const aiots_cdl_setting AIOTS_BODY_SHORT = {0, 10, 1.0};
    static const aiots_cdl_setting AIOTS_BODY_DOJI = {1, 10, 0.1};
    static const aiots_cdl_setting AIOTS_SHADOW_LONG = {0, 0, 1.0};
    static const aiots_cdl_setting AIOTS_SHADOW_VERY_LONG = {0, 0, 2.0};
    static const aiots_cdl_setting AIOTS_SHADOW_SHORT = {2, 10, 1.0};
    static const aiots_cdl_setting AIOTS_SHADOW_VERY_SHORT = {1, 10, 0.1};
    static const aiots_cdl_setting AIOTS_NEAR = {1, 5, 0.2};
    static const aiots_cdl_setting AIOTS_FAR = {1, 5, 0.6};
    static const aiots_cdl_setting AIOTS_EQUAL = {1, 5, 0.05};
    """
    ctypedef struct Setting "aiots_cdl_setting":
        int range_type
        int avg_period
        double factor
    const Setting BODY_LONG "AIOTS_BODY_LONG"
    const Setting BODY_VERY_LONG "AIOTS_BODY_VERY_LONG"
    const Setting BODY_SHORT "AIOTS_BODY_SHORT"
    const Setting BODY_DOJI "AIOTS_BODY_DOJI"
    const Setting SHADOW_LONG "AIOTS_SHADOW_LONG"
    const Setting SHADOW_VERY_LONG "AIOTS_SHADOW_VERY_LONG"
    const Setting SHADOW_SHORT "AIOTS_SHADOW_SHORT"
    const Setting SHADOW_VERY_SHORT "AIOTS_SHADOW_VERY_SHORT"
    const Setting NEAR "AIOTS_NEAR"
    const Setting FAR "AIOTS_FAR"
    const Setting EQUAL "AIOTS_EQUAL"

CANDLE_SETTINGS = {
    "BodyLong": ("RealBody", 10, 1.0),
    "BodyVeryLong": ("RealBody", 10, 3.0),
    "BodyShort": ("RealBody", 10, 1.0),
    "BodyDoji": ("HighLow", 10, 0.1),
    "ShadowLong": ("RealBody", 0, 1.0),
    "ShadowVeryLong": ("RealBody", 0, 2.0),
    "ShadowShort": ("Shadows", 10, 1.0),
    "ShadowVeryShort": ("HighLow", 10, 0.1),
    "Near": ("HighLow", 5, 0.2),
    "Far": ("HighLow", 5, 0.6),
    "Equal": ("HighLow", 5, 0.05),
}
"""TA-Lib default candle settings used here: name -> (range type, averaging period, factor)."""


cdef inline double _body(Bars b, Py_ssize_t i) noexcept nogil:
    return fabs(b.c[i] - b.o[i])


cdef inline double _upper(Bars b, Py_ssize_t i) noexcept nogil:
    return b.h[i] - (b.c[i] if b.c[i] >= b.o[i] else b.o[i])


cdef inline double _lower(Bars b, Py_ssize_t i) noexcept nogil:
    return (b.o[i] if b.c[i] >= b.o[i] else b.c[i]) - b.lo[i]


cdef inline int _color(Bars b, Py_ssize_t i) noexcept nogil:
    return 1 if b.c[i] >= b.o[i] else -1


cdef inline double _rng(Setting s, Bars b, Py_ssize_t i) noexcept nogil:
    """TA_CANDLERANGE: the quantity a setting averages, for candle ``i``."""
    if s.range_type == RT_REALBODY:
        return fabs(b.c[i] - b.o[i])
    if s.range_type == RT_HIGHLOW:
        return b.h[i] - b.lo[i]
    if s.range_type == RT_SHADOWS:
        return _upper(b, i) + _lower(b, i)
    return 0.0


cdef inline double _avg(Setting s, double total, Bars b, Py_ssize_t i) noexcept nogil:
    """TA_CANDLEAVERAGE: factor x (running total / period, or candle i's own range)."""
    cdef double base
    if s.avg_period != 0:
        base = total / s.avg_period
    else:
        base = _rng(s, b, i)
    return s.factor * base / (2.0 if s.range_type == RT_SHADOWS else 1.0)


cdef inline double _seed(Setting s, Bars b, Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Initial running total: ranges of candles first .. stop-1, summed in order."""
    cdef double total = 0.0
    cdef Py_ssize_t j = first
    while j < stop:
        total += _rng(s, b, j)
        j += 1
    return total


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


# ---------------------------------------------------------------------------------------------
# Kernels. Each fills out[start .. m-1] for a NaN-free-start series of m bars (out pre-zeroed).
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t LB_DOJI = BODY_DOJI.avg_period
cdef Py_ssize_t LB_HAMMER = _imax(_imax(_imax(BODY_SHORT.avg_period, SHADOW_LONG.avg_period),
                                        SHADOW_VERY_SHORT.avg_period), NEAR.avg_period) + 1
cdef Py_ssize_t LB_INVHAMMER = _imax(_imax(BODY_SHORT.avg_period, SHADOW_LONG.avg_period),
                                     SHADOW_VERY_SHORT.avg_period) + 1
cdef Py_ssize_t LB_ENGULFING = 2
cdef Py_ssize_t LB_HARAMI = _imax(BODY_SHORT.avg_period, BODY_LONG.avg_period) + 1
cdef Py_ssize_t LB_PIERCING = BODY_LONG.avg_period + 1
cdef Py_ssize_t LB_STAR = _imax(BODY_SHORT.avg_period, BODY_LONG.avg_period) + 2
cdef Py_ssize_t LB_3WS = _imax(_imax(SHADOW_VERY_SHORT.avg_period, BODY_SHORT.avg_period),
                               _imax(FAR.avg_period, NEAR.avg_period)) + 2
cdef Py_ssize_t LB_3BC = SHADOW_VERY_SHORT.avg_period + 3
cdef Py_ssize_t LB_MARUBOZU = _imax(BODY_LONG.avg_period, SHADOW_VERY_SHORT.avg_period)
cdef Py_ssize_t LB_SPINNING = BODY_SHORT.avg_period


cdef void _k_doji(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, start = LB_DOJI
    cdef Py_ssize_t tr = start - BODY_DOJI.avg_period
    cdef double tot = _seed(BODY_DOJI, b, tr, start)
    for i in range(start, m):
        out[i] = 100 if _body(b, i) <= _avg(BODY_DOJI, tot, b, i) else 0
        tot += _rng(BODY_DOJI, b, i) - _rng(BODY_DOJI, b, tr)
        tr += 1


cdef void _hammer_like(Bars b, Py_ssize_t m, int* out, int hanging) noexcept nogil:
    """Hammer (hanging=0) and hanging man (hanging=1): same shape, different placement."""
    cdef Py_ssize_t i, start = LB_HAMMER
    cdef Py_ssize_t tr_body = start - BODY_SHORT.avg_period
    cdef Py_ssize_t tr_sl = start - SHADOW_LONG.avg_period
    cdef Py_ssize_t tr_svs = start - SHADOW_VERY_SHORT.avg_period
    cdef Py_ssize_t tr_near = start - 1 - NEAR.avg_period
    cdef double t_body = _seed(BODY_SHORT, b, tr_body, start)
    cdef double t_sl = _seed(SHADOW_LONG, b, tr_sl, start)
    cdef double t_svs = _seed(SHADOW_VERY_SHORT, b, tr_svs, start)
    cdef double t_near = _seed(NEAR, b, tr_near, start - 1)
    cdef bint shape
    for i in range(start, m):
        shape = (_body(b, i) < _avg(BODY_SHORT, t_body, b, i)
                 and _lower(b, i) > _avg(SHADOW_LONG, t_sl, b, i)
                 and _upper(b, i) < _avg(SHADOW_VERY_SHORT, t_svs, b, i))
        if shape:
            if hanging:
                if fmin(b.c[i], b.o[i]) >= b.h[i - 1] - _avg(NEAR, t_near, b, i - 1):
                    out[i] = -100
            elif fmin(b.c[i], b.o[i]) <= b.lo[i - 1] + _avg(NEAR, t_near, b, i - 1):
                out[i] = 100
        t_body += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr_body)
        t_sl += _rng(SHADOW_LONG, b, i) - _rng(SHADOW_LONG, b, tr_sl)
        t_svs += _rng(SHADOW_VERY_SHORT, b, i) - _rng(SHADOW_VERY_SHORT, b, tr_svs)
        t_near += _rng(NEAR, b, i - 1) - _rng(NEAR, b, tr_near)
        tr_body += 1
        tr_sl += 1
        tr_svs += 1
        tr_near += 1


cdef void _k_hammer(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    _hammer_like(b, m, out, 0)


cdef void _k_hanging_man(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    _hammer_like(b, m, out, 1)


cdef void _star_like(Bars b, Py_ssize_t m, int* out, int shooting) noexcept nogil:
    """Inverted hammer (shooting=0, gap down) and shooting star (shooting=1, gap up)."""
    cdef Py_ssize_t i, start = LB_INVHAMMER
    cdef Py_ssize_t tr_body = start - BODY_SHORT.avg_period
    cdef Py_ssize_t tr_sl = start - SHADOW_LONG.avg_period
    cdef Py_ssize_t tr_svs = start - SHADOW_VERY_SHORT.avg_period
    cdef double t_body = _seed(BODY_SHORT, b, tr_body, start)
    cdef double t_sl = _seed(SHADOW_LONG, b, tr_sl, start)
    cdef double t_svs = _seed(SHADOW_VERY_SHORT, b, tr_svs, start)
    cdef bint gap
    for i in range(start, m):
        if shooting:
            gap = fmin(b.o[i], b.c[i]) > fmax(b.o[i - 1], b.c[i - 1])
        else:
            gap = fmax(b.o[i], b.c[i]) < fmin(b.o[i - 1], b.c[i - 1])
        if (gap
                and _body(b, i) < _avg(BODY_SHORT, t_body, b, i)
                and _upper(b, i) > _avg(SHADOW_LONG, t_sl, b, i)
                and _lower(b, i) < _avg(SHADOW_VERY_SHORT, t_svs, b, i)):
            out[i] = -100 if shooting else 100
        t_body += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr_body)
        t_sl += _rng(SHADOW_LONG, b, i) - _rng(SHADOW_LONG, b, tr_sl)
        t_svs += _rng(SHADOW_VERY_SHORT, b, i) - _rng(SHADOW_VERY_SHORT, b, tr_svs)
        tr_body += 1
        tr_sl += 1
        tr_svs += 1


cdef void _k_inverted_hammer(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    _star_like(b, m, out, 0)


cdef void _k_shooting_star(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    _star_like(b, m, out, 1)


cdef void _k_engulfing(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i
    cdef double o, c, po, pc
    cdef bint hit
    for i in range(LB_ENGULFING, m):
        o = b.o[i]
        c = b.c[i]
        po = b.o[i - 1]
        pc = b.c[i - 1]
        hit = ((_color(b, i) == 1 and _color(b, i - 1) == -1
                and ((c >= po and o < pc) or (c > po and o <= pc)))
               or (_color(b, i) == -1 and _color(b, i - 1) == 1
                   and ((o >= pc and c < po) or (o > pc and c <= po))))
        if hit:
            if o != pc and c != po:
                out[i] = _color(b, i) * 100
            else:
                out[i] = _color(b, i) * 80


cdef void _k_harami(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, start = LB_HARAMI
    cdef Py_ssize_t tr_long = start - 1 - BODY_LONG.avg_period
    cdef Py_ssize_t tr_short = start - BODY_SHORT.avg_period
    cdef double t_long = _seed(BODY_LONG, b, tr_long, start - 1)
    cdef double t_short = _seed(BODY_SHORT, b, tr_short, start)
    cdef double hi1, lo1, hi2, lo2
    for i in range(start, m):
        if (_body(b, i - 1) > _avg(BODY_LONG, t_long, b, i - 1)
                and _body(b, i) <= _avg(BODY_SHORT, t_short, b, i)):
            hi2 = fmax(b.c[i], b.o[i])
            lo2 = fmin(b.c[i], b.o[i])
            hi1 = fmax(b.c[i - 1], b.o[i - 1])
            lo1 = fmin(b.c[i - 1], b.o[i - 1])
            if hi2 < hi1 and lo2 > lo1:
                out[i] = -_color(b, i - 1) * 100
            elif hi2 <= hi1 and lo2 >= lo1:
                out[i] = -_color(b, i - 1) * 80
        t_long += _rng(BODY_LONG, b, i - 1) - _rng(BODY_LONG, b, tr_long)
        t_short += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr_short)
        tr_long += 1
        tr_short += 1


cdef void _k_piercing(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, j, start = LB_PIERCING
    cdef Py_ssize_t tr = start - BODY_LONG.avg_period
    cdef double t1 = 0.0, t0 = 0.0
    j = tr
    while j < start:
        t1 = t1 + _rng(BODY_LONG, b, j - 1)
        t0 = t0 + _rng(BODY_LONG, b, j)
        j += 1
    for i in range(start, m):
        if (_color(b, i - 1) == -1
                and _body(b, i - 1) > _avg(BODY_LONG, t1, b, i - 1)
                and _color(b, i) == 1
                and _body(b, i) > _avg(BODY_LONG, t0, b, i)
                and b.o[i] < b.lo[i - 1]
                and b.c[i] < b.o[i - 1]
                and b.c[i] > b.c[i - 1] + _body(b, i - 1) * 0.5):
            out[i] = 100
        t1 = t1 + (_rng(BODY_LONG, b, i - 1) - _rng(BODY_LONG, b, tr - 1))
        t0 = t0 + (_rng(BODY_LONG, b, i) - _rng(BODY_LONG, b, tr))
        tr += 1


cdef void _k_dark_cloud_cover(Bars b, Py_ssize_t m, int* out, double pen) noexcept nogil:
    cdef Py_ssize_t i, start = LB_PIERCING
    cdef Py_ssize_t tr = start - BODY_LONG.avg_period
    cdef double tot = _seed(BODY_LONG, b, tr - 1, start - 1)
    for i in range(start, m):
        if (_color(b, i - 1) == 1
                and _body(b, i - 1) > _avg(BODY_LONG, tot, b, i - 1)
                and _color(b, i) == -1
                and b.o[i] > b.h[i - 1]
                and b.c[i] > b.o[i - 1]
                and b.c[i] < b.c[i - 1] - _body(b, i - 1) * pen):
            out[i] = -100
        tot += _rng(BODY_LONG, b, i - 1) - _rng(BODY_LONG, b, tr - 1)
        tr += 1


cdef void _star3(Bars b, Py_ssize_t m, int* out, double pen, int evening) noexcept nogil:
    """Morning star (evening=0) and evening star (evening=1)."""
    cdef Py_ssize_t i, j, start = LB_STAR
    cdef Py_ssize_t tr_long = start - 2 - BODY_LONG.avg_period
    cdef Py_ssize_t tr_short = start - 1 - BODY_SHORT.avg_period
    cdef double t_long = _seed(BODY_LONG, b, tr_long, start - 2)
    cdef double t_short = 0.0, t_short2 = 0.0
    cdef bint shape
    j = tr_short
    while j < start - 1:
        t_short += _rng(BODY_SHORT, b, j)
        t_short2 += _rng(BODY_SHORT, b, j + 1)
        j += 1
    for i in range(start, m):
        if evening:
            shape = (_color(b, i - 2) == 1 and _color(b, i) == -1
                     and fmin(b.o[i - 1], b.c[i - 1]) > fmax(b.o[i - 2], b.c[i - 2])
                     and b.c[i] < b.c[i - 2] - _body(b, i - 2) * pen)
        else:
            shape = (_color(b, i - 2) == -1 and _color(b, i) == 1
                     and fmax(b.o[i - 1], b.c[i - 1]) < fmin(b.o[i - 2], b.c[i - 2])
                     and b.c[i] > b.c[i - 2] + _body(b, i - 2) * pen)
        if (shape
                and _body(b, i - 2) > _avg(BODY_LONG, t_long, b, i - 2)
                and _body(b, i - 1) <= _avg(BODY_SHORT, t_short, b, i - 1)
                and _body(b, i) > _avg(BODY_SHORT, t_short2, b, i)):
            out[i] = -100 if evening else 100
        t_long += _rng(BODY_LONG, b, i - 2) - _rng(BODY_LONG, b, tr_long)
        t_short += _rng(BODY_SHORT, b, i - 1) - _rng(BODY_SHORT, b, tr_short)
        t_short2 += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr_short + 1)
        tr_long += 1
        tr_short += 1


cdef void _k_morning_star(Bars b, Py_ssize_t m, int* out, double pen) noexcept nogil:
    _star3(b, m, out, pen, 0)


cdef void _k_evening_star(Bars b, Py_ssize_t m, int* out, double pen) noexcept nogil:
    _star3(b, m, out, pen, 1)


cdef void _k_three_white_soldiers(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, j, k, start = LB_3WS
    cdef Py_ssize_t tr_svs = start - SHADOW_VERY_SHORT.avg_period
    cdef Py_ssize_t tr_near = start - NEAR.avg_period
    cdef Py_ssize_t tr_far = start - FAR.avg_period
    cdef Py_ssize_t tr_body = start - BODY_SHORT.avg_period
    cdef double svs[3]
    cdef double near[3]
    cdef double far[3]
    cdef double t_body
    for k in range(3):
        svs[k] = 0.0
        near[k] = 0.0
        far[k] = 0.0
    j = tr_svs
    while j < start:
        svs[2] = svs[2] + _rng(SHADOW_VERY_SHORT, b, j - 2)
        svs[1] = svs[1] + _rng(SHADOW_VERY_SHORT, b, j - 1)
        svs[0] = svs[0] + _rng(SHADOW_VERY_SHORT, b, j)
        j += 1
    j = tr_near
    while j < start:
        near[2] = near[2] + _rng(NEAR, b, j - 2)
        near[1] = near[1] + _rng(NEAR, b, j - 1)
        j += 1
    j = tr_far
    while j < start:
        far[2] = far[2] + _rng(FAR, b, j - 2)
        far[1] = far[1] + _rng(FAR, b, j - 1)
        j += 1
    t_body = _seed(BODY_SHORT, b, tr_body, start)
    for i in range(start, m):
        if (_color(b, i - 2) == 1
                and _upper(b, i - 2) < _avg(SHADOW_VERY_SHORT, svs[2], b, i - 2)
                and _color(b, i - 1) == 1
                and _upper(b, i - 1) < _avg(SHADOW_VERY_SHORT, svs[1], b, i - 1)
                and _color(b, i) == 1
                and _upper(b, i) < _avg(SHADOW_VERY_SHORT, svs[0], b, i)
                and b.c[i] > b.c[i - 1]
                and b.c[i - 1] > b.c[i - 2]
                and b.o[i - 1] > b.o[i - 2]
                and b.o[i - 1] <= b.c[i - 2] + _avg(NEAR, near[2], b, i - 2)
                and b.o[i] > b.o[i - 1]
                and b.o[i] <= b.c[i - 1] + _avg(NEAR, near[1], b, i - 1)
                and _body(b, i - 1) > _body(b, i - 2) - _avg(FAR, far[2], b, i - 2)
                and _body(b, i) > _body(b, i - 1) - _avg(FAR, far[1], b, i - 1)
                and _body(b, i) > _avg(BODY_SHORT, t_body, b, i)):
            out[i] = 100
        for k in range(2, -1, -1):
            svs[k] = svs[k] + (_rng(SHADOW_VERY_SHORT, b, i - k)
                               - _rng(SHADOW_VERY_SHORT, b, tr_svs - k))
        for k in range(2, 0, -1):
            far[k] = far[k] + (_rng(FAR, b, i - k) - _rng(FAR, b, tr_far - k))
            near[k] = near[k] + (_rng(NEAR, b, i - k) - _rng(NEAR, b, tr_near - k))
        t_body += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr_body)
        tr_svs += 1
        tr_near += 1
        tr_far += 1
        tr_body += 1


cdef void _k_three_black_crows(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, j, k, start = LB_3BC
    cdef Py_ssize_t tr = start - SHADOW_VERY_SHORT.avg_period
    cdef double svs[3]
    for k in range(3):
        svs[k] = 0.0
    j = tr
    while j < start:
        svs[2] = svs[2] + _rng(SHADOW_VERY_SHORT, b, j - 2)
        svs[1] = svs[1] + _rng(SHADOW_VERY_SHORT, b, j - 1)
        svs[0] = svs[0] + _rng(SHADOW_VERY_SHORT, b, j)
        j += 1
    for i in range(start, m):
        if (_color(b, i - 3) == 1
                and _color(b, i - 2) == -1
                and _color(b, i - 1) == -1
                and _color(b, i) == -1
                and b.o[i - 1] < b.o[i - 2]
                and b.o[i - 1] > b.c[i - 2]
                and b.o[i] < b.o[i - 1]
                and b.o[i] > b.c[i - 1]
                and b.h[i - 3] > b.c[i - 2]
                and b.c[i - 2] > b.c[i - 1]
                and b.c[i - 1] > b.c[i]
                and _lower(b, i - 2) < _avg(SHADOW_VERY_SHORT, svs[2], b, i - 2)
                and _lower(b, i - 1) < _avg(SHADOW_VERY_SHORT, svs[1], b, i - 1)
                and _lower(b, i) < _avg(SHADOW_VERY_SHORT, svs[0], b, i)):
            out[i] = -100
        for k in range(2, -1, -1):
            svs[k] = svs[k] + (_rng(SHADOW_VERY_SHORT, b, i - k)
                               - _rng(SHADOW_VERY_SHORT, b, tr - k))
        tr += 1


cdef void _k_marubozu(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, start = LB_MARUBOZU
    cdef Py_ssize_t tr_long = start - BODY_LONG.avg_period
    cdef Py_ssize_t tr_svs = start - SHADOW_VERY_SHORT.avg_period
    cdef double t_long = _seed(BODY_LONG, b, tr_long, start)
    cdef double t_svs = _seed(SHADOW_VERY_SHORT, b, tr_svs, start)
    for i in range(start, m):
        if (_body(b, i) > _avg(BODY_LONG, t_long, b, i)
                and _upper(b, i) < _avg(SHADOW_VERY_SHORT, t_svs, b, i)
                and _lower(b, i) < _avg(SHADOW_VERY_SHORT, t_svs, b, i)):
            out[i] = _color(b, i) * 100
        t_long += _rng(BODY_LONG, b, i) - _rng(BODY_LONG, b, tr_long)
        t_svs += _rng(SHADOW_VERY_SHORT, b, i) - _rng(SHADOW_VERY_SHORT, b, tr_svs)
        tr_long += 1
        tr_svs += 1


cdef void _k_spinning_top(Bars b, Py_ssize_t m, int* out, double p) noexcept nogil:
    cdef Py_ssize_t i, start = LB_SPINNING
    cdef double body
    cdef int hit
    cdef Py_ssize_t tr = start - BODY_SHORT.avg_period
    cdef double tot = _seed(BODY_SHORT, b, tr, start)
    for i in range(start, m):
        # Unconditional store: this pattern fires often, so a branch would mispredict.
        body = _body(b, i)
        hit = ((body < _avg(BODY_SHORT, tot, b, i))
               & (_upper(b, i) > body)
               & (_lower(b, i) > body))
        out[i] = _color(b, i) * 100 * hit
        tot += _rng(BODY_SHORT, b, i) - _rng(BODY_SHORT, b, tr)
        tr += 1


# ---------------------------------------------------------------------------------------------
# Input handling and the Python API.
# ---------------------------------------------------------------------------------------------

def _vector(x, str name):
    """``x`` as a contiguous 1-D float64 array (one conversion); ValueError naming ``name``."""
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(
            f"{name} must be a 1-D sequence of numbers; got {type(x).__name__} ({exc})"
        ) from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got an array of shape {a.shape}")
    return a


def _ohlc(open, high, low, close):
    """Convert the four price series once and check that their lengths agree."""
    o = _vector(open, "open")
    h = _vector(high, "high")
    lo = _vector(low, "low")
    c = _vector(close, "close")
    n = o.shape[0]
    for name, arr in (("high", h), ("low", lo), ("close", c)):
        if arr.shape[0] != n:
            raise ValueError(
                f"{name} has length {arr.shape[0]} but open has length {n}; all inputs must match"
            )
    return o, h, lo, c


def _penetration(value):
    """Validate a penetration fraction: finite and >= 0 (TA-Lib rejects negatives)."""
    try:
        p = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"penetration must be a number >= 0; got {value!r}") from None
    if not isfinite(p) or p < 0.0:
        raise ValueError(f"penetration must be a finite number >= 0; got {value!r}")
    return p


cdef Py_ssize_t _first_valid(Bars b, Py_ssize_t n) noexcept nogil:
    """First bar with no NaN among o/h/l/c (the talib wrapper's begidx; n-1 when none)."""
    cdef Py_ssize_t i
    for i in range(n):
        if b.o[i] == b.o[i] and b.h[i] == b.h[i] and b.lo[i] == b.lo[i] and b.c[i] == b.c[i]:
            return i
    return n - 1


cdef object _apply(kernel_t kernel, Py_ssize_t lookback, tuple arrays, double param):
    cdef const double[::1] o = arrays[0]
    cdef const double[::1] h = arrays[1]
    cdef const double[::1] lo = arrays[2]
    cdef const double[::1] c = arrays[3]
    cdef Py_ssize_t n = o.shape[0], beg
    result = np.zeros(n, dtype=np.int32)
    if n == 0:
        return result
    cdef cnp.int32_t[::1] out = result
    cdef Bars b
    b.o = &o[0]
    b.h = &h[0]
    b.lo = &lo[0]
    b.c = &c[0]
    with nogil:
        beg = _first_valid(b, n)
        if n - beg > lookback:
            b.o = &o[beg]
            b.h = &h[beg]
            b.lo = &lo[beg]
            b.c = &c[beg]
            kernel(b, n - beg, <int*>&out[beg], param)
    return result


def cdl_doji(open, high, low, close):
    """Doji: real body <= 0.1 x average high-low range of the previous 10 candles. +100 or 0."""
    return _apply(_k_doji, LB_DOJI, _ohlc(open, high, low, close), 0.0)


def cdl_hammer(open, high, low, close):
    """Hammer: small body, long lower shadow, tiny upper shadow, body near the prior low. +100."""
    return _apply(_k_hammer, LB_HAMMER, _ohlc(open, high, low, close), 0.0)


def cdl_hanging_man(open, high, low, close):
    """Hanging man: hammer shape with the body near/above the prior candle's high. -100."""
    return _apply(_k_hanging_man, LB_HAMMER, _ohlc(open, high, low, close), 0.0)


def cdl_inverted_hammer(open, high, low, close):
    """Inverted hammer: small body gapping below the prior body, long upper shadow. +100."""
    return _apply(_k_inverted_hammer, LB_INVHAMMER, _ohlc(open, high, low, close), 0.0)


def cdl_shooting_star(open, high, low, close):
    """Shooting star: small body gapping above the prior body, long upper shadow. -100."""
    return _apply(_k_shooting_star, LB_INVHAMMER, _ohlc(open, high, low, close), 0.0)


def cdl_engulfing(open, high, low, close):
    """Engulfing: opposite-colour body engulfs the prior body. +-100, or +-80 if an end matches."""
    return _apply(_k_engulfing, LB_ENGULFING, _ohlc(open, high, low, close), 0.0)


def cdl_harami(open, high, low, close):
    """Harami: long body then a short body inside it. +-100, or +-80 if one end matches."""
    return _apply(_k_harami, LB_HARAMI, _ohlc(open, high, low, close), 0.0)


def cdl_piercing(open, high, low, close):
    """Piercing: long black, then long white opening below its low, closing above its midpoint."""
    return _apply(_k_piercing, LB_PIERCING, _ohlc(open, high, low, close), 0.0)


def cdl_dark_cloud_cover(open, high, low, close, penetration=0.5):
    """Dark cloud cover: long white, then black opening above its high, closing ``penetration``
    of the way into its body (default 0.5). -100."""
    return _apply(_k_dark_cloud_cover, LB_PIERCING, _ohlc(open, high, low, close),
                  _penetration(penetration))


def cdl_morning_star(open, high, low, close, penetration=0.3):
    """Morning star: long black, short body gapping down, white closing ``penetration`` into
    the first body (default 0.3). +100."""
    return _apply(_k_morning_star, LB_STAR, _ohlc(open, high, low, close), _penetration(penetration))


def cdl_evening_star(open, high, low, close, penetration=0.3):
    """Evening star: long white, short body gapping up, black closing ``penetration`` into the
    first body (default 0.3). -100."""
    return _apply(_k_evening_star, LB_STAR, _ohlc(open, high, low, close), _penetration(penetration))


def cdl_three_white_soldiers(open, high, low, close):
    """Three advancing white candles, each opening within/near the prior body, short upper
    shadows, none far shorter than the one before. +100."""
    return _apply(_k_three_white_soldiers, LB_3WS, _ohlc(open, high, low, close), 0.0)


def cdl_three_black_crows(open, high, low, close):
    """Three declining black candles after a white one, each opening within the prior body,
    short lower shadows. -100."""
    return _apply(_k_three_black_crows, LB_3BC, _ohlc(open, high, low, close), 0.0)


def cdl_marubozu(open, high, low, close):
    """Marubozu: long body with very short shadows on both ends. +100 white, -100 black."""
    return _apply(_k_marubozu, LB_MARUBOZU, _ohlc(open, high, low, close), 0.0)


def cdl_spinning_top(open, high, low, close):
    """Spinning top: short body with both shadows longer than the body. +100 white, -100 black."""
    return _apply(_k_spinning_top, LB_SPINNING, _ohlc(open, high, low, close), 0.0)


CANDLESTICK_PATTERNS = {
    "doji": cdl_doji,
    "hammer": cdl_hammer,
    "hanging_man": cdl_hanging_man,
    "inverted_hammer": cdl_inverted_hammer,
    "shooting_star": cdl_shooting_star,
    "engulfing": cdl_engulfing,
    "harami": cdl_harami,
    "piercing": cdl_piercing,
    "dark_cloud_cover": cdl_dark_cloud_cover,
    "morning_star": cdl_morning_star,
    "evening_star": cdl_evening_star,
    "three_white_soldiers": cdl_three_white_soldiers,
    "three_black_crows": cdl_three_black_crows,
    "marubozu": cdl_marubozu,
    "spinning_top": cdl_spinning_top,
}
"""Pattern name -> function(open, high, low, close) returning int32 -100/0/+100 (+-80)."""

TALIB_NAMES = {
    "doji": "CDLDOJI",
    "hammer": "CDLHAMMER",
    "hanging_man": "CDLHANGINGMAN",
    "inverted_hammer": "CDLINVERTEDHAMMER",
    "shooting_star": "CDLSHOOTINGSTAR",
    "engulfing": "CDLENGULFING",
    "harami": "CDLHARAMI",
    "piercing": "CDLPIERCING",
    "dark_cloud_cover": "CDLDARKCLOUDCOVER",
    "morning_star": "CDLMORNINGSTAR",
    "evening_star": "CDLEVENINGSTAR",
    "three_white_soldiers": "CDL3WHITESOLDIERS",
    "three_black_crows": "CDL3BLACKCROWS",
    "marubozu": "CDLMARUBOZU",
    "spinning_top": "CDLSPINNINGTOP",
}
"""Pattern name -> the TA-Lib function it reproduces."""


def scan_candlesticks(open, high, low, close):
    """Run every pattern in :data:`CANDLESTICK_PATTERNS` (default parameters) on one
    conversion of the inputs. Returns ``{name: int32 array}``."""
    a = _ohlc(open, high, low, close)
    return {
        "doji": _apply(_k_doji, LB_DOJI, a, 0.0),
        "hammer": _apply(_k_hammer, LB_HAMMER, a, 0.0),
        "hanging_man": _apply(_k_hanging_man, LB_HAMMER, a, 0.0),
        "inverted_hammer": _apply(_k_inverted_hammer, LB_INVHAMMER, a, 0.0),
        "shooting_star": _apply(_k_shooting_star, LB_INVHAMMER, a, 0.0),
        "engulfing": _apply(_k_engulfing, LB_ENGULFING, a, 0.0),
        "harami": _apply(_k_harami, LB_HARAMI, a, 0.0),
        "piercing": _apply(_k_piercing, LB_PIERCING, a, 0.0),
        "dark_cloud_cover": _apply(_k_dark_cloud_cover, LB_PIERCING, a, 0.5),
        "morning_star": _apply(_k_morning_star, LB_STAR, a, 0.3),
        "evening_star": _apply(_k_evening_star, LB_STAR, a, 0.3),
        "three_white_soldiers": _apply(_k_three_white_soldiers, LB_3WS, a, 0.0),
        "three_black_crows": _apply(_k_three_black_crows, LB_3BC, a, 0.0),
        "marubozu": _apply(_k_marubozu, LB_MARUBOZU, a, 0.0),
        "spinning_top": _apply(_k_spinning_top, LB_SPINNING, a, 0.0),
    }


# ---------------------------------------------------------------------------------------------
# Swing pivots (used by aiots.core.chart_patterns).
# ---------------------------------------------------------------------------------------------

def swing_pivots(high, low, int left=5, int right=5):
    """Swing pivot highs and lows as two sorted int64 index arrays ``(highs, lows)``.

    Bar ``i`` is a pivot high when ``high[i]`` is strictly above the ``left`` highs before it and
    at least as high as the ``right`` highs after it (a flat top yields its first bar); pivot
    lows mirror this on ``low``. Bars without ``left`` bars before or ``right`` after are never
    pivots, so a pivot at ``i`` is known only at bar ``i + right``. Any NaN in the window
    disqualifies the bar. ``left >= 1``, ``right >= 0``.
    """
    if left < 1:
        raise ValueError(f"left must be >= 1; got {left}")
    if right < 0:
        raise ValueError(f"right must be >= 0; got {right}")
    h_arr = _vector(high, "high")
    l_arr = _vector(low, "low")
    if l_arr.shape[0] != h_arr.shape[0]:
        raise ValueError(
            f"low has length {l_arr.shape[0]} but high has length {h_arr.shape[0]}; they must match"
        )
    cdef const double[::1] h = h_arr
    cdef const double[::1] lo = l_arr
    cdef Py_ssize_t n = h.shape[0], i, j, nh = 0, nl = 0
    hi_idx = np.empty(n, dtype=np.int64)
    lo_idx = np.empty(n, dtype=np.int64)
    cdef cnp.int64_t[::1] hv = hi_idx
    cdef cnp.int64_t[::1] lv = lo_idx
    cdef bint is_hi, is_lo
    with nogil:
        for i in range(left, n - right):
            is_hi = True
            is_lo = True
            for j in range(i - left, i):
                if not (h[i] > h[j]):
                    is_hi = False
                if not (lo[i] < lo[j]):
                    is_lo = False
            for j in range(i + 1, i + right + 1):
                if not (h[i] >= h[j]):
                    is_hi = False
                if not (lo[i] <= lo[j]):
                    is_lo = False
            if is_hi:
                hv[nh] = i
                nh += 1
            if is_lo:
                lv[nl] = i
                nl += 1
    return hi_idx[:nh].copy(), lo_idx[:nl].copy()
