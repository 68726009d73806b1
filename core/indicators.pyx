# cython: cpow=True
# distutils: extra_compile_args = -fno-math-errno -ffp-contract=off -fno-trapping-math
# -fno-math-errno: sqrt() here only sees values >= 0 or NaN; without it GCC guards every sqrt with
# an errno slow path. -ffp-contract=off: never fuse a*b+c implicitly, so batch kernels, the
# FMA-dispatched ADOSC loop and the streaming classes round identically (bit-exact streaming).
# -fno-trapping-math: FP exceptions are never enabled or read here, so selects whose arms divide
# may be if-converted and vectorised (KAMA's smoothing constant); values are unchanged.
"""Compiled technical indicators with TA-Lib parity: batch functions and O(1) streaming classes.

Conventions
-----------
* Batch functions take contiguous float64 NumPy arrays (anything array-like is converted once),
  release the GIL in their loops and return float64 arrays of the input's length. Positions where
  TA-Lib leaves no value are NaN (same positions as the ``talib`` package, including its rule that
  leading NaN in any input shifts the start of the computation).
* Inputs come first, positionally, in TA-Lib's order (high, low, close, volume); parameters are
  keyword-only with TA-Lib's defaults. Multi-output functions return a tuple in TA-Lib's order.
* Arithmetic follows TA-Lib 0.8.1 as its library is built (EMA seeded by the SMA of the first
  ``period`` values, Wilder smoothing for RSI/ATR/ADX/DI in reciprocal form, TA_VAR's anchored
  running variance, unstable period 0), so results agree with TA-Lib within 1e-9 relative and
  streaming classes reproduce the batch values bit for bit.
* ``vwap`` has no TA-Lib equivalent: it anchors at session starts given as a boolean array, or at
  each new America/New_York calendar day derived from int64 ns UTC timestamps.
"""

from libc.math cimport INFINITY, NAN, fabs, isfinite, isnan, sqrt

cimport cython
import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from *:
    """
    /* TA-Lib 0.8 epsilon for TA_IS_ZERO / TA_IS_ZERO_OR_NEG. */
    #define AIOTS_TA_EPS 1e-14
    #define AIOTS_MAX_PERIOD 100000
    /* WMA running sums are recomputed exactly every this many outputs (TA-Lib 0.8 has no drift). */
    #define AIOTS_WMA_RESEED 1024
    """
    const double TA_EPS "AIOTS_TA_EPS"
    const int MAX_PERIOD "AIOTS_MAX_PERIOD"
    const int WMA_RESEED "AIOTS_WMA_RESEED"

cdef inline bint _is_zero(double v) noexcept nogil:
    return -TA_EPS < v < TA_EPS


cdef inline bint _is_zero_or_neg(double v) noexcept nogil:
    return v < TA_EPS


cdef inline bint _is_zero_scaled(double v, double scale) noexcept nogil:
    """TA_IS_ZERO_SCALED: |v| within TA_EPS of the operands' magnitude."""
    return fabs(v) <= TA_EPS * scale


# ---------------------------------------------------------------------------------------------
# argument handling (Python level, before the GIL is released)
# ---------------------------------------------------------------------------------------------

cdef object _f64 = np.float64


cdef cnp.ndarray _arr(object x, str name):
    """Convert once to a contiguous 1-D float64 array."""
    cdef cnp.ndarray a
    if x is None:
        raise TypeError(f"{name} must be an array of numbers, got None")
    try:
        a = np.ascontiguousarray(x, dtype=_f64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got {a.ndim}-D")
    return a


cdef int _period(object value, str name, int minimum) except -1:
    """Validate an integer period against TA-Lib's range [minimum, 100000]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_PERIOD:
        raise ValueError(f"{name} must be <= {MAX_PERIOD}, got {value}")
    return <int>value


cdef double _real(object value, str name, double minimum=-3e37) except? -1.0:
    """Validate a finite float parameter (>= minimum)."""
    cdef double v
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if v > 3e37:
        raise ValueError(f"{name} must be <= 3e37, got {v}")
    return v


cdef Py_ssize_t _same_len(list arrays, tuple names) except -1:
    cdef Py_ssize_t n = arrays[0].shape[0]
    cdef Py_ssize_t i
    for i in range(1, len(arrays)):
        if arrays[i].shape[0] != n:
            raise ValueError(
                f"{names[i]} has length {arrays[i].shape[0]} but {names[0]} has length {n}; "
                "all inputs must have the same length"
            )
    return n


cdef Py_ssize_t _begidx(list arrays, Py_ssize_t n):
    """TA-Lib python wrapper rule: first index where no input is NaN, else n - 1."""
    cdef Py_ssize_t i, j, m = len(arrays), found = -1
    cdef bint ok
    cdef const double* ptrs[4]
    for j in range(m):
        ptrs[j] = <const double*>cnp.PyArray_DATA(arrays[j])
    with nogil:
        for i in range(n):
            ok = True
            for j in range(m):
                if isnan(ptrs[j][i]):
                    ok = False
                    break
            if ok:
                found = i
                break
    if found >= 0:
        return found
    return n - 1 if n > 0 else 0


cdef inline double* _dp(cnp.ndarray a) noexcept:
    return <double*>cnp.PyArray_DATA(a)


cdef inline void _nan(double* out, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(a, b):
        out[i] = NAN


cdef inline cnp.ndarray _empty(Py_ssize_t n):
    return cnp.PyArray_EMPTY(1, [n], cnp.NPY_DOUBLE, 0)


cdef tuple _inputs(tuple values, tuple names):
    """Convert inputs, check lengths; return (arrays, n, begidx)."""
    cdef list arrays = [_arr(v, nm) for v, nm in zip(values, names)]
    cdef Py_ssize_t n = _same_len(arrays, names)
    cdef Py_ssize_t beg = _begidx(arrays, n)
    return arrays, n, beg


include "_ind_batch.pxi"
include "_ind_stream.pxi"
include "_ind_registry.pxi"
