# cython: cpow=True
"""Compiled option maths: Black-Scholes-Merton / Black-76 prices and Greeks to third order, implied
volatility (Jäckel's "Let's Be Rational" construction), American options (Bjerksund-Stensland 2002,
Barone-Adesi-Whaley, Leisen-Reimer / CRR binomial with discrete cash dividends).

Conventions
-----------
* ``S`` spot, ``F`` forward (Black-76), ``K`` strike, ``T`` years to expiry (ACT/365), ``r``
  continuously compounded risk-free rate, ``q`` continuous dividend yield, ``sigma`` annual
  volatility, ``is_call`` bool (array or scalar; integers 0/1 are accepted). Premiums per share.
* Every function broadcasts its array arguments with NumPy rules and returns an array of the
  broadcast shape (a NumPy scalar / ``np.void`` record when every input is a scalar). Loops run
  without the GIL, in parallel (``cython.parallel.prange``) when built with OpenMP.
* Greeks are in raw units: vega per 1.00 of vol, theta per year, rho per 1.00 of rate, epsilon per
  1.00 of dividend yield. Time derivatives (theta, charm, veta, color) are d/dt = -d/dT, calendar
  time, per year. ``trader_units`` converts to per-vol-point, per-calendar-day and per-1% units.
* Bad input never raises inside a loop: non-positive or non-finite ``S``, ``K``, ``T``, ``sigma``
  (or a non-finite ``r``/``q``) give NaN at that position; ``implied_vol`` also returns a reason
  code per element (``REASONS``). Arguments that do not broadcast, or have a non-numeric dtype, raise
  ``ValueError`` naming the argument before any work is done.

Size: over 500 lines because the public API and its argument handling (the general broadcasting
path and the small-call fast path, _fast_args) belong together; the kernels are in _opt_*.pxi.
"""

from cython.parallel cimport prange
from libc.math cimport (
    INFINITY, NAN, ceil, erf, erfc, exp, fabs, floor, fmax, fmin, isfinite, log, log1p, pow, rint, sinh, sqrt,
)
from libc.stdlib cimport free, malloc

import math

import numpy as np

cimport numpy as cnp

cnp.import_array()

include "_optmath.pxi"

# ------------------------------------------------------------------------------------------------
# Reason codes of implied_vol
# ------------------------------------------------------------------------------------------------
OK = 0
BELOW_INTRINSIC = 1
ABOVE_MAX = 2
INVALID_INPUT = 3
NO_CONVERGENCE = 4
OUTSIDE_MODEL_RANGE = 5

REASONS = {
    OK: "OK",
    BELOW_INTRINSIC: "BELOW_INTRINSIC",
    ABOVE_MAX: "ABOVE_MAX",
    INVALID_INPUT: "INVALID_INPUT",
    NO_CONVERGENCE: "NO_CONVERGENCE",
    OUTSIDE_MODEL_RANGE: "OUTSIDE_MODEL_RANGE",
}

cdef enum:
    R_OK = 0
    R_BELOW = 1
    R_ABOVE = 2
    R_INVALID = 3
    R_NOCONV = 4
    R_RANGE = 5
    M_BS2002 = 0
    M_BAW = 1
    M_BINOMIAL = 2
    M_BS1993 = 3
    IV_MAX_ITER = 64
    IV_EU_BLOCK = 256  # rows per parallel work item of the European implied vol
    BAW_MAX_ITER = 200


def reason_name(code):
    """Name of an ``implied_vol`` reason code (``"UNKNOWN"`` for an unknown code)."""
    return REASONS.get(int(code), "UNKNOWN")


GREEK_FIELDS = ("delta", "vega", "theta", "rho", "epsilon", "gamma", "vanna", "vomma", "charm", "veta",
                "speed", "zomma", "color", "ultima")
GREEKS_DTYPE = np.dtype([(f, np.float64) for f in GREEK_FIELDS])
PRICE_GREEKS2_DTYPE = np.dtype([(f, np.float64) for f in ("price",) + GREEK_FIELDS[:10]])
PRICE_GREEKS3_DTYPE = np.dtype([(f, np.float64) for f in ("price",) + GREEK_FIELDS])
AMERICAN_GREEK_FIELDS = ("price", "delta", "gamma", "theta", "vega", "rho")
AMERICAN_GREEKS_DTYPE = np.dtype([(f, np.float64) for f in AMERICAN_GREEK_FIELDS])
_METHODS = {"bjerksund_stensland_2002": M_BS2002, "bs2002": M_BS2002,
            "bjerksund_stensland_1993": M_BS1993, "baw": M_BAW,
            "barone_adesi_whaley": M_BAW, "binomial": M_BINOMIAL}
_TREES = {"leisen_reimer": 1, "lr": 1, "crr": 0}

# Smallest element counts that start an OpenMP parallel region. Starting one costs ~20-50 us on an
# idle machine but 10-30 ms on a loaded 2-core box (the second thread waits for a time slice), so
# a call goes parallel only when its serial work is several ms (bench/options.py, latency section):
# ~0.1 us/element for prices and Greeks, ~0.5 us for a European IV, ~1-4 us for the American closed
# forms, ~10 us for an American IV on a closed form, 100+ us for trees and IVs on trees.
cdef Py_ssize_t PAR_MIN_LIGHT = 32768
cdef Py_ssize_t PAR_MIN_IV = 4096
cdef Py_ssize_t PAR_MIN_AM = 2048
cdef Py_ssize_t PAR_MIN_AM_IV = 512
cdef Py_ssize_t PAR_MIN_HEAVY = 128
# rows per parallel work item of the vectorised American loops (a multiple of their 64-row blocks)
cdef Py_ssize_t AM_CHUNK = 256


def _parallel_thresholds(light=None, iv=None, am=None, heavy=None, am_iv=None):
    """Read (and, for benchmarks, set) the OpenMP thresholds; returns the values now in force."""
    global PAR_MIN_LIGHT, PAR_MIN_IV, PAR_MIN_AM, PAR_MIN_HEAVY, PAR_MIN_AM_IV
    if light is not None:
        PAR_MIN_LIGHT = int(light)
    if iv is not None:
        PAR_MIN_IV = int(iv)
    if am is not None:
        PAR_MIN_AM = int(am)
    if heavy is not None:
        PAR_MIN_HEAVY = int(heavy)
    if am_iv is not None:
        PAR_MIN_AM_IV = int(am_iv)
    return {"light": PAR_MIN_LIGHT, "iv": PAR_MIN_IV, "am": PAR_MIN_AM, "heavy": PAR_MIN_HEAVY,
            "am_iv": PAR_MIN_AM_IV}

# ------------------------------------------------------------------------------------------------
# Argument handling (Python level, once per call)
# ------------------------------------------------------------------------------------------------


def _as_real(value, name):
    if cnp.PyArray_CheckExact(value) and cnp.PyArray_TYPE(<cnp.ndarray>value) == cnp.NPY_DOUBLE:
        return value  # already float64: what astype(copy=False) returns, without its calls
    try:
        a = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - report any conversion failure the same way
        raise ValueError(f"{name}: cannot be converted to a float64 array ({exc})") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real numbers (float, int or bool), got dtype {a.dtype}")
    return a.astype(np.float64, copy=False)


def _as_flag(value, name):
    if cnp.PyArray_CheckExact(value) and cnp.PyArray_TYPE(<cnp.ndarray>value) == cnp.NPY_BOOL:
        return value.view(np.uint8)  # the common case, as below without np.asarray and the dtype checks
    try:
        a = np.asarray(value)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{name}: cannot be converted to a bool array ({exc})") from None
    if a.dtype.kind not in "biu":
        raise ValueError(f"{name}: expected bool (True = call) or 0/1 integers, got dtype {a.dtype}")
    if a.dtype.kind == "b":
        return a.view(np.uint8)  # no copy: bool is one byte of 0/1
    return (a != 0).astype(np.uint8)


def _prepare(names, arrays):
    """Broadcast shape, element count, flat contiguous arrays and 0/1 index strides."""
    fast = _prepare_1d(arrays)
    if fast is not None:
        return fast
    shapes = [a.shape for a in arrays]
    big = [sh for sh in shapes if sh != () and sh != (1,)]
    if not big:
        shape = max(shapes, key=len)
    elif all(sh == big[0] for sh in big) and len(big[0]) >= max(len(sh) for sh in shapes):
        shape = big[0]  # the common case (equal arrays and scalars): no broadcast_shapes calls
    else:
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError:
            shape = ()
            for name, a in zip(names, arrays):
                try:
                    shape = np.broadcast_shapes(shape, a.shape)
                except ValueError:
                    raise ValueError(f"{name} has shape {a.shape}, which does not broadcast with shape {shape} "
                                     f"of the arguments before it ({', '.join(names)})") from None
    n = math.prod(shape)
    flats = []
    strides = []
    for a in arrays:
        if a.size == 1:
            flats.append(np.ascontiguousarray(a.reshape(1)))
            strides.append(0)
        elif a.shape == shape:
            flats.append(np.ascontiguousarray(a).reshape(-1))
            strides.append(1)
        else:
            flats.append(np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1))
            strides.append(1)
    return shape, n, flats, strides


cdef object _prepare_1d(tuple arrays):
    """:func:`_prepare` for the common call (every argument 0-d, or 1-D and C-contiguous, the
    1-D ones of length 1 or one common length n), or None: the same shape, n, flats and strides
    without numpy's shape machinery (a small-array call spent most of its time there)."""
    cdef Py_ssize_t n = -1, m
    cdef cnp.ndarray a
    cdef bint one = False
    for x in arrays:
        a = <cnp.ndarray>x
        if cnp.PyArray_NDIM(a) == 0:
            continue
        if cnp.PyArray_NDIM(a) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
            return None
        m = cnp.PyArray_DIM(a, 0)
        if m == 1:
            one = True
        elif n == -1:
            n = m
        elif m != n:
            return None
    if n == -1:
        if not one:
            return None  # all 0-d: the general path (rare; the result is a scalar)
        n = 1
    flats = []
    strides = []
    for x in arrays:
        a = <cnp.ndarray>x
        if cnp.PyArray_NDIM(a) == 0:
            flats.append(a.reshape(1))
            strides.append(0)
        else:
            flats.append(a)
            strides.append(0 if cnp.PyArray_DIM(a, 0) == 1 else 1)
    return (n,), n, flats, strides


def _finish(out, shape):
    if len(shape) == 1 and cnp.PyArray_NDIM(<cnp.ndarray>out) == 1:
        return out  # already that shape: out is made with n = shape[0] rows
    out = out.reshape(shape)
    return out[()] if out.ndim == 0 else out


cdef struct _Args7:
    # six float64 arguments (data pointer, element stride 0 or 1) and the 0/1 call flag
    const double* p[6]
    Py_ssize_t s[6]
    const unsigned char* pc
    Py_ssize_t sc
    double scal[6]  # storage of the Python-float arguments (stride 0)
    unsigned char flag  # storage of a Python-bool flag
    int ndim  # 0 when every argument is a scalar (the result is a scalar), else 1


cdef object _F64_SCALAR = np.float64


cdef Py_ssize_t _fast_args(tuple xs, object c, _Args7* A):
    """Row count of a small-call fast path, or -1 for the general path (_as_real/_as_flag,
    _prepare). Taken only when every real argument is a Python float / np.float64 or an aligned,
    native float64 ndarray that is 0-d or 1-D C-contiguous (length 1 or one common length n >= 1),
    and the flag a Python bool or such a bool ndarray: the exact values the general path hands the
    kernels, with the same n and strides, without building arrays and memoryviews."""
    cdef Py_ssize_t n = -1, m
    cdef int k
    cdef cnp.ndarray a
    cdef bint one = False
    for k in range(6):
        x = xs[k]
        if type(x) is float or type(x) is _F64_SCALAR:
            A.scal[k] = <double>x
            A.p[k] = &A.scal[k]
            A.s[k] = 0
            continue
        if not cnp.PyArray_CheckExact(x):
            return -1
        a = <cnp.ndarray>x
        if cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or not cnp.PyArray_ISBEHAVED_RO(a):
            return -1
        A.p[k] = <const double*>cnp.PyArray_DATA(a)
        A.s[k] = 0
        if cnp.PyArray_NDIM(a) == 0:
            continue
        if cnp.PyArray_NDIM(a) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
            return -1
        m = cnp.PyArray_DIM(a, 0)
        if m == 1:
            one = True
            continue
        if m == 0 or (n != -1 and m != n):
            return -1
        n = m
        A.s[k] = 1
    A.sc = 0
    if c is True or c is False:
        A.flag = 1 if c is True else 0
        A.pc = &A.flag
    else:
        if not cnp.PyArray_CheckExact(c):
            return -1
        a = <cnp.ndarray>c
        if cnp.PyArray_TYPE(a) != cnp.NPY_BOOL:
            return -1
        A.pc = <const unsigned char*>cnp.PyArray_DATA(a)
        if cnp.PyArray_NDIM(a) != 0:
            if cnp.PyArray_NDIM(a) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
                return -1
            m = cnp.PyArray_DIM(a, 0)
            if m == 1:
                one = True
            elif m == 0 or (n != -1 and m != n):
                return -1
            else:
                n = m
                A.sc = 1
    A.ndim = 1
    if n == -1:
        n = 1
        if not one:
            A.ndim = 0
    return n


cdef inline object _empty_f64(Py_ssize_t n):
    cdef cnp.npy_intp dim = n
    return cnp.PyArray_EMPTY(1, &dim, cnp.NPY_DOUBLE, 0)


# Outputs of at least this many bytes are written with streaming stores (aiots_pg_stream_*): far
# larger than the last-level cache, nothing of them would still be cached when the caller reads it.
cdef Py_ssize_t PG_STREAM_MIN_BYTES = 16 << 20

include "_opt_outpool.pxi"
include "_opt_european.pxi"
include "_opt_iv.pxi"
include "_opt_american.pxi"
include "_opt_baw.pxi"
include "_opt_bs2002.pxi"


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------

def _std_args(S, K, T, r, sigma, q, is_call, first="S"):
    names = (first, "K", "T", "r", "sigma", "q", "is_call")
    arrays = (_as_real(S, first), _as_real(K, "K"), _as_real(T, "T"), _as_real(r, "r"),
              _as_real(sigma, "sigma"), _as_real(q, "q"), _as_flag(is_call, "is_call"))
    return _prepare(names, arrays)


def bs_price(S, K, T, r, sigma, q=0.0, is_call=True):
    """Black-Scholes-Merton price per share (continuous yield q), via Jäckel's normalised Black.

    Accurate to a few ulp relative even far out of the money. NaN where S, K, T or sigma is not a
    positive finite number or r/q is not finite.
    """
    cdef _Args7 A
    cdef Py_ssize_t j, m = _fast_args((S, K, T, r, sigma, q), is_call, &A)
    cdef double* po
    if 0 < m < PAR_MIN_LIGHT:
        res = _empty_f64(m)
        po = <double*>cnp.PyArray_DATA(<cnp.ndarray>res)
        for j in range(m):
            po[j] = _bs_price1(A.p[0][j * A.s[0]], A.p[1][j * A.s[1]], A.p[2][j * A.s[2]], A.p[3][j * A.s[3]],
                               A.p[5][j * A.s[5]], A.p[4][j * A.s[4]], A.pc[j * A.sc] != 0)
        return res if A.ndim else res[0]
    shape, n, f, st = _std_args(S, K, T, r, sigma, q, is_call)
    cdef const double[::1] a0 = f[0], a1 = f[1], a2 = f[2], a3 = f[3], a4 = f[4], a5 = f[5]
    cdef const unsigned char[::1] a6 = f[6]
    cdef Py_ssize_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5], s6 = st[6]
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t i, nn = n
    with nogil:
        if nn >= PAR_MIN_LIGHT:
            for i in prange(nn, schedule="dynamic", chunksize=2048):
                o[i] = _bs_price1(a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                                  a6[i * s6] != 0)
        else:
            for i in range(nn):
                o[i] = _bs_price1(a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                                  a6[i * s6] != 0)
    return _finish(out, shape)


cdef void _pg_drive(int which, list f, list st, bint black, Py_ssize_t n, double* out, int width,
                    bint mapped):
    """Run the vectorised price + Greeks loop (_opt_european.pxi) over n rows of out, in parallel
    chunks of PG_CHUNK rows when n >= PAR_MIN_LIGHT. black: q is r (Black-76). mapped: out is
    memory written before (a reused pool block), where large outputs take streaming stores."""
    cdef const double[::1] a0 = f[0], a1 = f[1], a2 = f[2], a3 = f[3], a4 = f[4], a5 = f[5]
    cdef const unsigned char[::1] a6 = f[6]
    cdef Py_ssize_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5], s6 = st[6]
    cdef const double* pq = &a3[0] if black else &a5[0]
    cdef Py_ssize_t sq = s3 if black else s5
    cdef Py_ssize_t c, nchunk = (n + PG_CHUNK - 1) // PG_CHUNK, hi
    cdef int nt = mapped and n * width * <Py_ssize_t>sizeof(double) >= PG_STREAM_MIN_BYTES
    if n == 0:
        return
    with nogil:
        if n >= PAR_MIN_LIGHT:
            for c in prange(nchunk, schedule="dynamic", chunksize=1):
                hi = (c + 1) * PG_CHUNK
                _pg_run(which, &a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, pq, sq, &a4[0], s4, &a6[0], s6,
                        c * PG_CHUNK, hi if hi < n else n, out, width, FUSED_CANCEL, FUSED_TINY, _bs_price_cb,
                        nt)
        else:
            _pg_run(which, &a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, pq, sq, &a4[0], s4, &a6[0], s6,
                    0, n, out, width, FUSED_CANCEL, FUSED_TINY, _bs_price_cb, nt)


def _greeks_impl(S, K, T, r, sigma, q, is_call, bint black):
    cdef _Args7 A
    cdef Py_ssize_t j, m = _fast_args((S, K, T, r, sigma, q), is_call, &A)
    cdef double* po
    cdef bint mapped = False
    if 0 < m < PAR_MIN_LIGHT:
        res = _empty_records(m, GREEKS_DTYPE, &mapped)
        po = <double*>cnp.PyArray_DATA(<cnp.ndarray>res)
        _pg_run(PG_G14, A.p[0], A.s[0], A.p[1], A.s[1], A.p[2], A.s[2], A.p[3], A.s[3],
                A.p[3] if black else A.p[5], A.s[3] if black else A.s[5], A.p[4], A.s[4], A.pc, A.sc, 0, m, po, 14,
                FUSED_CANCEL, FUSED_TINY, _bs_price_cb,
                mapped and m * 14 * <Py_ssize_t>sizeof(double) >= PG_STREAM_MIN_BYTES)
        if black:
            for j in range(m):
                po[j * 14 + 3] = po[j * 14 + 3] + po[j * 14 + 4]
                po[j * 14 + 4] = 0.0 * po[j * 14 + 4]
        return res if A.ndim else _finish(res, ())
    shape, n, f, st = _std_args(S, K, T, r, sigma, q, is_call, "F" if black else "S")
    out = _empty_records(n, GREEKS_DTYPE, &mapped)
    cdef double[:, ::1] o = out.view(np.float64).reshape(n, 14)
    cdef Py_ssize_t i, nn = n
    if nn:
        _pg_drive(PG_G14, f, st, black, nn, &o[0, 0], 14, mapped)
    if black:
        with nogil:
            for i in range(nn):
                o[i, 3] = o[i, 3] + o[i, 4]
                o[i, 4] = 0.0 * o[i, 4]
    return _finish(out, shape)


def bs_price_greeks(S, K, T, r, sigma, q=0.0, is_call=True, third_order=False):
    """BSM price and Greeks computed together in one loop (what a chain update needs).

    Structured array with fields ``price`` then the first- and second-order Greeks of ``bs_greeks``
    (delta, vega, theta, rho, epsilon, gamma, vanna, vomma, charm, veta); ``third_order=True`` adds
    speed, zomma, color, ultima. Same units and values as ``bs_price`` / ``bs_greeks`` (the price to
    ~1e-13 relative), at the cost of one Greeks pass. NaN rows for invalid inputs.
    """
    shape, n, f, st = _std_args(S, K, T, r, sigma, q, is_call)
    cdef int nout = 15 if third_order else 11
    cdef bint mapped = False
    out = _empty_records(n, PRICE_GREEKS3_DTYPE if third_order else PRICE_GREEKS2_DTYPE, &mapped)
    cdef double[:, ::1] o = out.view(np.float64).reshape(n, nout)
    if n:
        _pg_drive(PG_P15 if third_order else PG_P11, f, st, False, n, &o[0, 0], nout, mapped)
    return _finish(out, shape)


def bs_greeks(S, K, T, r, sigma, q=0.0, is_call=True):
    """Closed-form BSM Greeks as a structured array with fields ``GREEK_FIELDS``.

    First order: delta, vega (per 1.00 vol), theta (per year, d/dt), rho (per 1.00 of r),
    epsilon (d/dq per 1.00). Second: gamma, vanna (d2V/dS dsigma), vomma (d2V/dsigma2), charm
    (d delta/dt), veta (d vega/dt). Third: speed (d gamma/dS), zomma (d gamma/dsigma), color
    (d gamma/dt), ultima (d vomma/dsigma). NaN rows for invalid inputs.
    """
    return _greeks_impl(S, K, T, r, sigma, q, is_call, False)


def black76_price(F, K, T, r, sigma, is_call=True):
    """Black-76 price of an option on a forward/future F, discounted at r."""
    return bs_price(F, K, T, r, sigma, r, is_call)


def black76_greeks(F, K, T, r, sigma, is_call=True):
    """Black-76 Greeks (same fields as ``bs_greeks``; derivatives with respect to F at fixed F).

    rho is dV/dr with F held fixed (= -T V); epsilon is 0 (no dividend yield in Black-76).
    """
    return _greeks_impl(F, K, T, r, sigma, r, is_call, True)


def trader_units(greeks):
    """Copy of a Greeks record/array in trader units.

    vega, vomma, vanna, zomma, ultima per vol point (each sigma derivative / 100), theta, charm,
    veta, color per calendar day (/365), rho and epsilon per 1% (/100). Works on ``bs_greeks``,
    ``black76_greeks`` and ``american_greeks`` output.
    """
    g = np.asarray(greeks).copy()
    names = g.dtype.names or ()
    per_vol = {"vega": 100.0, "vanna": 100.0, "zomma": 100.0, "vomma": 1e4, "ultima": 1e6}
    for fld, div in per_vol.items():
        if fld in names:
            g[fld] = g[fld] / div
    for fld in ("theta", "charm", "color"):
        if fld in names:
            g[fld] = g[fld] / 365.0
    if "veta" in names:
        g["veta"] = g["veta"] / (365.0 * 100.0)
    for fld in ("rho", "epsilon"):
        if fld in names:
            g[fld] = g[fld] / 100.0
    return g[()] if g.ndim == 0 else g


def norm_ppf(p):
    """Inverse standard normal CDF (vectorised, full double precision)."""
    arr = _as_real(p, "p")
    shape, n, f, st = _prepare(("p",), (arr,))
    cdef const double[::1] a0 = f[0]
    cdef Py_ssize_t s0 = st[0], i, nn = n
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    with nogil:
        for i in range(nn):
            o[i] = _norm_ppf1(a0[i * s0])
    return _finish(out, shape)


_NO_DIVIDENDS = (np.zeros(1, np.float64), np.zeros(1, np.float64), 0)  # read only (const views)
cdef double _NO_DIV[1]  # the fast paths' empty dividend list (static storage: zero)
_NO_DIV[0] = 0.0


def _dividend_arrays(dividends):
    if dividends is None or len(dividends) == 0:
        return _NO_DIVIDENDS
    try:
        arr = np.asarray(dividends, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("dividends: expected a sequence of (t_years, amount) pairs") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"dividends: expected finite (t_years, amount) pairs, got shape {arr.shape}")
    if np.any(arr[:, 0] < 0.0) or np.any(arr[:, 1] < 0.0):
        raise ValueError("dividends: times and amounts must be >= 0")
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1]), arr.shape[0]


def _method_code(method, dividends, steps, tree):
    if method not in _METHODS:
        raise ValueError(f"method: {method!r} is not one of {sorted(_METHODS)}")
    code = _METHODS[method]
    if dividends is not None and len(dividends) > 0 and code != M_BINOMIAL:
        raise ValueError("dividends: discrete cash dividends need method='binomial'")
    if tree not in _TREES:
        raise ValueError(f"tree: {tree!r} is not one of {sorted(_TREES)}")
    if not isinstance(steps, (int, np.integer)) or not 3 <= int(steps) <= 100_000:
        raise ValueError(f"steps: expected an integer in [3, 100000], got {steps!r}")
    return code


def implied_vol(price, S, K, T, r, q=0.0, is_call=True, style="european", return_reason=False, *,
                method="bjerksund_stensland_2002", steps=501, tree="leisen_reimer", dividends=None):
    """Implied volatility of option prices; NaN plus a reason code where there is none.

    European (``style="european"``): inverts the BSM price exactly through Jäckel's normalised
    Black function (four-branch objective, Householder(3) iterations). Accuracy: the found sigma
    reproduces the price to the last few ulp; |sigma_found - sigma_true| / sigma_true <= 1e-12 for
    sigma in [0.01, 5], T in [1 day, 5 years], |ln(K/F)| <= 2 wherever the price carries the
    information, i.e. wherever the condition number kappa = price / (sigma * vega) <= 1e3 (a
    float64 price, exact to 1.1e-16 relative, then pins sigma to <= 1.1e-13). Outside that, e.g.
    deep in the money where the time value is below ~1e-13 of the price, sigma is as good as the
    price allows. Bounds: European intrinsic e^{-rT}(F-K)+ (BELOW_INTRINSIC below it; exactly at it
    gives 0.0) and S e^{-qT} (call) / K e^{-rT} (put) (ABOVE_MAX at or above).

    American (``style="american"``): Brent's method on ``american_price`` (``method``, ``steps``,
    ``tree``, ``dividends`` as there) over sigma in [1e-4, 10], bracketed above by the European
    implied vol of the price (the answer itself where the early-exercise premium there is nil) and
    below by a probe one Newton step (the premium over the European vega) past the root, so that
    Brent starts on a tight bracket (the full [1e-4, se] where a few probes do not find one);
    sigma is a sign change of the model price minus the quote to 4e-16 sigma + 5e-15.
    Bounds are intrinsic (S-K)+ / (K-S)+ and S / K. A price the model cannot reach in that sigma
    range gives OUTSIDE_MODEL_RANGE, and so does a price the model already gives at sigma = 1e-4:
    at intrinsic (deep ITM, exercised at once) the price is flat in sigma and names no vol.
    The rows of one call are solved in lock step (each round prices every pending row's trial sigma
    in one call; BS2002 in vector blocks of 8 lanes, whose prices are ``american_price``'s to a few
    ulp); a row's answer and reason depend on that row alone, never on the batch or its place in it.

    Returns sigma (and, with ``return_reason=True``, an int8 array of reason codes, see ``REASONS``).
    """
    cdef int am, code = 0, lr_flag, nsteps, nd
    if style not in ("european", "american"):
        raise ValueError(f"style: expected 'european' or 'american', got {style!r}")
    am = style == "american"
    cdef _Args7 A
    cdef Py_ssize_t m = -1
    cdef double* po
    cdef signed char* pr
    cdef int fc = 0, flr = 1, fsteps = 3
    if not am:
        m = _fast_args((price, S, K, T, r, q), is_call, &A)
        if m >= PAR_MIN_IV:
            m = -1
    elif dividends is None and type(method) is str and type(tree) is str and type(steps) is int:
        fc = _METHODS.get(method, -1)
        if fc >= 0 and tree in _TREES and 3 <= steps <= 100_000:
            flr = _TREES[tree]
            fsteps = steps
            m = _fast_args((price, S, K, T, r, q), is_call, &A)
            if m >= (PAR_MIN_HEAVY if fc == M_BINOMIAL else PAR_MIN_AM_IV):
                m = -1
    if m > 0:
        res = _empty_f64(m)
        rsn = cnp.PyArray_ZEROS(1, <cnp.npy_intp*>&m, cnp.NPY_INT8, 0)
        po = <double*>cnp.PyArray_DATA(<cnp.ndarray>res)
        pr = <signed char*>cnp.PyArray_DATA(<cnp.ndarray>rsn)
        with nogil:
            if am:
                _am_iv_run(A.p[0], A.s[0], A.p[1], A.s[1], A.p[2], A.s[2], A.p[3], A.s[3], A.p[4], A.s[4],
                           A.p[5], A.s[5], A.pc, A.sc, 0, m, fc, fsteps, flr, &_NO_DIV[0], &_NO_DIV[0], 0, po, pr)
            else:
                _iv_run(A.p[0], A.s[0], A.p[1], A.s[1], A.p[2], A.s[2], A.p[3], A.s[3], A.p[4], A.s[4],
                        A.p[5], A.s[5], A.pc, A.sc, 0, m, po, pr)
        if not A.ndim:
            res = res[0]
            rsn = rsn[0]
        if return_reason:
            return res, rsn
        return res
    names = ("price", "S", "K", "T", "r", "q", "is_call")
    arrays = (_as_real(price, "price"), _as_real(S, "S"), _as_real(K, "K"), _as_real(T, "T"),
              _as_real(r, "r"), _as_real(q, "q"), _as_flag(is_call, "is_call"))
    if am:
        code = _method_code(method, dividends, steps, tree)
    shape, n, f, st = _prepare(names, arrays)
    dt_arr, dd_arr, nd = _dividend_arrays(dividends if am else None)
    cdef const double[::1] dtv = dt_arr, ddv = dd_arr
    lr_flag = _TREES.get(tree, 1)
    nsteps = int(steps) if am else 3
    cdef const double[::1] a0 = f[0], a1 = f[1], a2 = f[2], a3 = f[3], a4 = f[4], a5 = f[5]
    cdef const unsigned char[::1] a6 = f[6]
    cdef Py_ssize_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5], s6 = st[6]
    out = np.empty(n, dtype=np.float64)
    reasons = np.zeros(n, dtype=np.int8)
    cdef double[::1] o = out
    cdef signed char[::1] rs = reasons
    cdef Py_ssize_t i, nn = n
    cdef Py_ssize_t pmin = PAR_MIN_IV
    if am:
        pmin = PAR_MIN_HEAVY if code == M_BINOMIAL else PAR_MIN_AM_IV
    cdef Py_ssize_t chunk = 4
    # European: blocks of IV_EU_BLOCK rows (each solved IV_LANES at a time, see _opt_iv.pxi)
    cdef Py_ssize_t blk, nblk = (nn + IV_EU_BLOCK - 1) // IV_EU_BLOCK
    cdef Py_ssize_t namb = (nn + AMI_GROUP - 1) // AMI_GROUP
    with nogil:
        if nn == 0:
            pass
        elif not am:
            if nn >= pmin:
                for blk in prange(nblk, schedule="dynamic", chunksize=1):
                    _iv_run(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a4[0], s4, &a5[0], s5, &a6[0], s6,
                            blk * IV_EU_BLOCK, min(nn, (blk + 1) * IV_EU_BLOCK), &o[0], &rs[0])
            else:
                _iv_run(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a4[0], s4, &a5[0], s5, &a6[0], s6,
                        0, nn, &o[0], &rs[0])
        elif nn >= pmin and code == M_BS2002:
            # AMI_GROUP rows in lock step per work item (a row's answer does not depend on its group)
            for blk in prange(namb, schedule="dynamic", chunksize=1):
                _am_iv_run(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a4[0], s4, &a5[0], s5, &a6[0], s6,
                           blk * AMI_GROUP, min(nn, (blk + 1) * AMI_GROUP), code, nsteps, lr_flag, &dtv[0],
                           &ddv[0], nd, &o[0], &rs[0])
        elif nn >= pmin:
            # priced one row at a time: no gain from lock step, rows as work items
            for i in prange(nn, schedule="dynamic", chunksize=chunk):
                _am_iv_run(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a4[0], s4, &a5[0], s5, &a6[0], s6,
                           i, i + 1, code, nsteps, lr_flag, &dtv[0], &ddv[0], nd, &o[0], &rs[0])
        else:
            _am_iv_run(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a4[0], s4, &a5[0], s5, &a6[0], s6,
                       0, nn, code, nsteps, lr_flag, &dtv[0], &ddv[0], nd, &o[0], &rs[0])
    if return_reason:
        return _finish(out, shape), _finish(reasons, shape)
    return _finish(out, shape)


def american_price(S, K, T, r, sigma, q=0.0, is_call=True, method="bjerksund_stensland_2002", steps=501,
                   dividends=None, *, tree="leisen_reimer"):
    """American option price per share.

    ``method``: ``"bjerksund_stensland_2002"`` (two-step flat trigger, closed form with Genz's
    bivariate normal; puts by the put-call transformation P(S,K,T,r,q) = C(K,S,T,q,r); returns the
    better of the paper's two-step policy and the 1993 flat trigger, both exact values of feasible
    exercise policies, so it is a lower bound of the American price and never below BS1993.
    Measured against QuantLib QdFp on 600 typical contracts (S=100, |ln K/S| <= 0.5, T <= 2y,
    sigma <= 0.6, q <= 5%): mean abs error 0.031, 99th pct 0.43, worst 0.81 per share (deep-ITM
    long-dated puts, ~1.2% of the price); on a broad grid (sigma <= 1.5, T <= 5y, q <= 10%) mean
    0.43, worst 4.5), ``"bjerksund_stensland_1993"`` (one flat trigger; the formula
    QuantLib's BjerksundStenslandApproximationEngine implements), ``"baw"`` (Barone-Adesi-Whaley
    1987, QuantLib's critical-price
    iteration) or ``"binomial"`` (``tree="leisen_reimer"`` (odd steps; an even count is bumped by
    one) or ``"crr"``, ``steps`` time steps). ``dividends``: discrete cash dividends as (t_years,
    amount) pairs, binomial only, escrowed-dividend model: the tree carries S - PV(dividends up to
    T) with volatility sigma, and exercise at a node sees the tree value plus the PV of the
    dividends still to come. NaN for invalid inputs.
    """
    cdef _Args7 A
    cdef Py_ssize_t m = -1
    cdef double* po
    cdef int fc = -1
    if dividends is None and type(method) is str and type(tree) is str and type(steps) is int:
        fc = _METHODS.get(method, -1)
        if (fc == M_BS2002 or fc == M_BAW) and tree in _TREES and 3 <= steps <= 100_000:
            m = _fast_args((S, K, T, r, sigma, q), is_call, &A)
    if 0 < m < PAR_MIN_AM:
        res = _empty_f64(m)
        po = <double*>cnp.PyArray_DATA(<cnp.ndarray>res)
        with nogil:
            if fc == M_BAW:
                _baw_range(A.p[0], A.s[0], A.p[1], A.s[1], A.p[2], A.s[2], A.p[3], A.s[3], A.p[5], A.s[5], A.p[4],
                           A.s[4], A.pc, A.sc, 0, m, po)
            else:
                _bs2002_range(A.p[0], A.s[0], A.p[1], A.s[1], A.p[2], A.s[2], A.p[3], A.s[3], A.p[5], A.s[5],
                              A.p[4], A.s[4], A.pc, A.sc, 0, m, po)
        return res if A.ndim else res[0]
    code = _method_code(method, dividends, steps, tree)
    shape, n, f, st = _std_args(S, K, T, r, sigma, q, is_call)
    dt_arr, dd_arr, nd_ = _dividend_arrays(dividends)
    cdef const double[::1] dtv = dt_arr, ddv = dd_arr
    cdef int nd = nd_, cd = code, nsteps = int(steps), lr_flag = _TREES[tree]
    cdef const double[::1] a0 = f[0], a1 = f[1], a2 = f[2], a3 = f[3], a4 = f[4], a5 = f[5]
    cdef const unsigned char[::1] a6 = f[6]
    cdef Py_ssize_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5], s6 = st[6]
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef Py_ssize_t i, nn = n
    cdef Py_ssize_t pmin = PAR_MIN_HEAVY if cd == M_BINOMIAL else PAR_MIN_AM
    cdef Py_ssize_t chunk = 4 if cd == M_BINOMIAL else 64
    cdef Py_ssize_t c, nchunk = (nn + AM_CHUNK - 1) // AM_CHUNK, hi
    if (cd == M_BAW or cd == M_BS2002) and nn:
        # vectorised over options (_opt_baw.pxi, _opt_bs2002.pxi), in parallel chunks of AM_CHUNK rows
        with nogil:
            if nn >= pmin:
                for c in prange(nchunk, schedule="dynamic", chunksize=1):
                    hi = (c + 1) * AM_CHUNK
                    if cd == M_BAW:
                        _baw_range(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a5[0], s5, &a4[0], s4, &a6[0],
                                   s6, c * AM_CHUNK, hi if hi < nn else nn, &o[0])
                    else:
                        _bs2002_range(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a5[0], s5, &a4[0], s4,
                                      &a6[0], s6, c * AM_CHUNK, hi if hi < nn else nn, &o[0])
            elif cd == M_BAW:
                _baw_range(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a5[0], s5, &a4[0], s4, &a6[0], s6,
                           0, nn, &o[0])
            else:
                _bs2002_range(&a0[0], s0, &a1[0], s1, &a2[0], s2, &a3[0], s3, &a5[0], s5, &a4[0], s4, &a6[0], s6,
                              0, nn, &o[0])
        return _finish(out, shape)
    with nogil:
        if nn >= pmin:
            for i in prange(nn, schedule="dynamic", chunksize=chunk):
                o[i] = _am_price1(cd, a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                                  a6[i * s6] != 0, nsteps, lr_flag, &dtv[0], &ddv[0], nd)
        else:
            for i in range(nn):
                o[i] = _am_price1(cd, a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                                  a6[i * s6] != 0, nsteps, lr_flag, &dtv[0], &ddv[0], nd)
    return _finish(out, shape)


cdef inline double _tick_quote(double p, double h, double tick, double eps, double scale, bint bid) noexcept nogil:
    """One side of a modelled quote: the price -/+ the half-spread ``h``, rounded outward to the
    tick, then to 1/``scale`` (half to even, as Python's ``round``); a bid at or below 0 is 0."""
    cdef double x
    if bid:
        x = floor((p - h) / tick + eps) * tick
        return rint(x * scale) / scale if x > 0 else 0.0
    x = ceil((p + h) / tick - eps) * tick
    return rint(x * scale) / scale


def modelled_atm_pair(double S, double K, double t, double r, double sigma, double q, double half_frac,
                      double min_half, double tick, double tick_eps, double price_scale, double S_iv,
                      double T_iv, double r_iv, double q_iv):
    """The modelled quotes of the American (BS2002) call and put at strike ``K`` and the European IV
    of their mids, in one call: what the backtest's modelled chain view and the ATM-IV lookup compute
    for an expiry's nearest strike (``aiots.services.backtest.modelled``), the same numbers.

    Prices: ``american_price(S, [K, K], t, r, sigma, q, [True, False])`` (the same kernel on the same
    two rows). Quotes: ``modelled_quote`` of each price (half-spread ``half_frac`` x the price, at
    least ``min_half``; bid floored and ask ceiled to ``tick`` with ``tick_eps`` slack, both rounded
    to 1/``price_scale``; a bid at or below 0 is 0). IVs: ``implied_vol`` of each mid (bid + ask) / 2
    at (``S_iv``, K, ``T_iv``, ``r_iv``, ``q_iv``) when both quotes are two-sided (bid > 0, ask >= bid),
    else NaN. Dollars per share, years, annual rates.

    Returns (bid_call, ask_call, bid_put, ask_put, iv_call, iv_put), or None when a price is not
    finite (the caller's general path handles it)."""
    cdef double Ks[2]
    cdef unsigned char flags[2]
    cdef double px[2]
    cdef double q4[4]
    cdef double h, ivc = NAN, ivp = NAN
    cdef int j, fr = 0
    Ks[0] = K
    Ks[1] = K
    flags[0] = 1
    flags[1] = 0
    _bs2002_range(&S, 0, &Ks[0], 1, &t, 0, &r, 0, &q, 0, &sigma, 0, &flags[0], 1, 0, 2, &px[0])
    if not (isfinite(px[0]) and isfinite(px[1])):
        return None
    with nogil:
        for j in range(2):
            h = half_frac * px[j]
            if not h >= min_half:
                h = min_half
            q4[2 * j] = _tick_quote(px[j], h, tick, tick_eps, price_scale, True)
            q4[2 * j + 1] = _tick_quote(px[j], h, tick, tick_eps, price_scale, False)
        if q4[0] > 0.0 and q4[1] >= q4[0] and q4[2] > 0.0 and q4[3] >= q4[2]:
            ivc = _iv1(0.5 * (q4[0] + q4[1]), S_iv, K, T_iv, r_iv, q_iv, True, &fr)
            ivp = _iv1(0.5 * (q4[2] + q4[3]), S_iv, K, T_iv, r_iv, q_iv, False, &fr)
    return q4[0], q4[1], q4[2], q4[3], ivc, ivp


def _tree_greeks(S, K, T, r, sigma, q, is_call, steps, dividends, tree):
    shape, n, f, st = _std_args(S, K, T, r, sigma, q, is_call)
    dt_arr, dd_arr, nd_ = _dividend_arrays(dividends)
    cdef const double[::1] dtv = dt_arr, ddv = dd_arr
    cdef int nd = nd_, nsteps = int(steps), lr_flag = _TREES[tree]
    cdef const double[::1] a0 = f[0], a1 = f[1], a2 = f[2], a3 = f[3], a4 = f[4], a5 = f[5]
    cdef const unsigned char[::1] a6 = f[6]
    cdef Py_ssize_t s0 = st[0], s1 = st[1], s2 = st[2], s3 = st[3], s4 = st[4], s5 = st[5], s6 = st[6]
    out = np.empty((n, 4), dtype=np.float64)
    cdef double[:, ::1] o = out
    cdef Py_ssize_t i, nn = n
    with nogil:
        if nn >= PAR_MIN_HEAVY:
            for i in prange(nn, schedule="dynamic", chunksize=4):
                _binomial(a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                          a6[i * s6] != 0, nsteps, lr_flag, &dtv[0], &ddv[0], nd, &o[i, 0])
        else:
            for i in range(nn):
                _binomial(a0[i * s0], a1[i * s1], a2[i * s2], a3[i * s3], a5[i * s5], a4[i * s4],
                          a6[i * s6] != 0, nsteps, lr_flag, &dtv[0], &ddv[0], nd, &o[i, 0])
    return shape, out


def american_greeks(S, K, T, r, sigma, q=0.0, is_call=True, method="binomial", steps=501, dividends=None, *,
                    tree="leisen_reimer", vol_bump=1e-4, rate_bump=1e-4):
    """American price and Greeks as a structured array (fields ``AMERICAN_GREEK_FIELDS``).

    ``method="binomial"``: price, delta, gamma and theta (per year, d/dt) read off the tree's first
    two steps (theta with a delta/gamma correction for the Leisen-Reimer tree, whose middle node at
    step 2 is not exactly S); vega and rho by central differences of the tree price with
    ``vol_bump`` / ``rate_bump`` (same steps, so the discretisation largely cancels). Closed-form
    methods: every Greek by central differences of ``american_price`` (relative spot bump 1e-4,
    time bump 1e-5 years backward). Units as ``bs_greeks`` (raw).
    """
    code = _method_code(method, dividends, steps, tree)
    if code == M_BINOMIAL:
        shape, tg = _tree_greeks(S, K, T, r, sigma, q, is_call, steps, dividends, tree)
        res = np.empty(tg.shape[0], dtype=AMERICAN_GREEKS_DTYPE)
        res["price"] = tg[:, 0]
        res["delta"] = tg[:, 1]
        res["gamma"] = tg[:, 2]
        res["theta"] = tg[:, 3]
    else:
        shape, n, _f, _st = _std_args(S, K, T, r, sigma, q, is_call)
        res = np.empty(n, dtype=AMERICAN_GREEKS_DTYPE)
        Sb = np.broadcast_to(_as_real(S, "S"), shape).reshape(-1)
        Tb = np.broadcast_to(_as_real(T, "T"), shape).reshape(-1)
        hS = 1e-4 * Sb
        kw = dict(method=method, steps=steps, dividends=dividends, tree=tree)
        args = [np.broadcast_to(_as_real(a, nm), shape).reshape(-1) for a, nm in
                ((K, "K"), (r, "r"), (sigma, "sigma"), (q, "q"))]
        cp = np.broadcast_to(_as_flag(is_call, "is_call"), shape).reshape(-1)
        p0 = american_price(Sb, args[0], Tb, args[1], args[2], args[3], cp, **kw)
        pu = american_price(Sb + hS, args[0], Tb, args[1], args[2], args[3], cp, **kw)
        pd = american_price(Sb - hS, args[0], Tb, args[1], args[2], args[3], cp, **kw)
        ht = np.minimum(1e-5, 0.5 * Tb)
        pt = american_price(Sb, args[0], Tb - ht, args[1], args[2], args[3], cp, **kw)
        res["price"] = p0
        res["delta"] = (pu - pd) / (2.0 * hS)
        res["gamma"] = (pu - 2.0 * p0 + pd) / (hS * hS)
        res["theta"] = (pt - p0) / ht
    Sf = np.broadcast_to(_as_real(S, "S"), shape).reshape(-1)
    Kf = np.broadcast_to(_as_real(K, "K"), shape).reshape(-1)
    Tf = np.broadcast_to(_as_real(T, "T"), shape).reshape(-1)
    rf = np.broadcast_to(_as_real(r, "r"), shape).reshape(-1)
    vf = np.broadcast_to(_as_real(sigma, "sigma"), shape).reshape(-1)
    qf = np.broadcast_to(_as_real(q, "q"), shape).reshape(-1)
    cf = np.broadcast_to(_as_flag(is_call, "is_call"), shape).reshape(-1)
    kw = dict(method=method, steps=steps, dividends=dividends, tree=tree)
    res["vega"] = (american_price(Sf, Kf, Tf, rf, vf + vol_bump, qf, cf, **kw)
                   - american_price(Sf, Kf, Tf, rf, vf - vol_bump, qf, cf, **kw)) / (2.0 * vol_bump)
    res["rho"] = (american_price(Sf, Kf, Tf, rf + rate_bump, vf, qf, cf, **kw)
                  - american_price(Sf, Kf, Tf, rf - rate_bump, vf, qf, cf, **kw)) / (2.0 * rate_bump)
    return _finish(res, shape)


def early_exercise_boundary(K, T, r, sigma, q=0.0, n_points=50, steps=2000):
    """Early-exercise boundary S*(t) of an American put from a CRR tree.

    Returns ``(t, boundary)``: ``t`` = n_points times from now (0) to expiry (T) in years and the
    spot below which immediate exercise is optimal. The tree spans 1.25 T so that every remaining
    time to expiry in (0, T] is covered; resolution is one tree node (relative sigma sqrt(1.25T /
    steps)). At expiry the limit K min(1, r/q) is used. Scalars only; NaN where not resolved.
    """
    cdef double Kd = float(K), Td = float(T), rd = float(r), vd = float(sigma), qd = float(q)
    if _bad(Kd, Kd, Td, rd, qd, vd):
        raise ValueError(f"early_exercise_boundary: K, T, sigma must be positive finite and r, q finite; "
                         f"got K={K}, T={T}, sigma={sigma}, r={r}, q={q}")
    ints = (int, np.integer)
    if (not isinstance(n_points, ints) or n_points < 2 or not isinstance(steps, ints)
            or not 10 <= steps <= 100_000):
        raise ValueError("n_points must be an int >= 2 and steps an int in [10, 100000]")
    cdef int n = int(steps), i, j
    cdef double Text = 1.25 * Td, h = Text / n
    cdef double u = exp(vd * sqrt(h)), d = 1.0 / u, disc = exp(-rd * h)
    cdef double p = (exp((rd - qd) * h) - d) / (u - d), s, cont, ex, best
    if not 0.0 < p < 1.0:
        raise ValueError("early_exercise_boundary: tree probabilities out of (0, 1); increase steps")
    tau = np.full(n, np.nan)
    bnd = np.full(n, np.nan)
    cdef double[::1] tv = tau, bv = bnd
    V = np.empty(n + 1)
    cdef double[::1] Vv = V
    with nogil:
        # Root at K: node (i, j) = K u^(2j - i).
        s = Kd * pow(d, n)
        for j in range(n + 1):
            Vv[j] = fmax(Kd - s, 0.0)
            s = s * u * u
        for i in range(n - 1, -1, -1):
            s = Kd * pow(d, i)
            best = NAN
            for j in range(i + 1):
                cont = disc * (p * Vv[j + 1] + (1.0 - p) * Vv[j])
                ex = Kd - s
                if ex > 0.0 and ex >= cont:
                    best = s
                    Vv[j] = ex
                else:
                    Vv[j] = cont
                s = s * u * u
            tv[i] = Text - i * h
            # only a boundary strictly inside the node range is resolved
            bv[i] = best if (best == best and best < Kd * pow(u, i) and best > Kd * pow(d, i)) else NAN
    tgrid = np.linspace(0.0, Td, int(n_points))
    order = np.argsort(tau)
    ok = np.isfinite(bnd[order])
    tt = tau[order][ok]
    bb = bnd[order][ok]
    res = np.interp(Td - tgrid, tt, bb, left=np.nan, right=np.nan)
    res[res.shape[0] - 1] = Kd * min(1.0, rd / qd) if qd > 0.0 else Kd
    return tgrid, res
