"""Bounds on a modelled no-yield option quote: its price and mid range, its European IV bracket, its
delta range and an upper bound of its projected gain, compiled; and from them whether the contract
is *settled*: provably dropped by selection's delta prefilter or provably unable to pay its costs.
The same gain bound and delta range, with a yield, over the IV bracket of a quoted mid
(:func:`iv_bracket`, :func:`gain_bounds`, :func:`bracket_gain_bounds`) are selection's bound before
the American IV solve: ``aiots.services.signals.gain_bound`` (whose docstring has the maths) wraps
them. One home each: the d1/d2 and delta ranges (``_delta_range``) and the gain terms
(``_gain_bound``) serve both.

A modelled chain quotes each contract from one pricing model (spot ``S``, rate ``r >= 0``, no yield,
one IV ``sigma``): the Black-Scholes value at ``sigma``, held at intrinsic, quoted ``-+`` the
half-spread ``h = max(half_spread_frac x price, min_half_spread)`` rounded outward to ``tick``, then
to 1e-6. The proof, per contract, without its quote (every margin below is kept on purpose):

* **The quote.** A call (never exercised early without dividends) is worth ``p`` in ``[BS - e,
  max(BS, S - K) + e]`` (``e``: vectorised-vs-scalar rounding, :data:`PRICE_EPS` x (S + K)); a put
  (American) lies between the European value held at intrinsic and the European value plus the
  largest early-exercise premium ``K (1 - e^{-rT})``. The mid is within half a tick plus
  :data:`QUOTE_EPS` of the price and the spread is at least ``2 h`` less the rounding.
* **Its European IV** lies in ``(sigma_a, sigma_b)`` around ``sigma``, moved by :data:`WIDEN` x the
  mid's worst offset over the vega (plus :data:`MOVE_FLOOR` x sigma): checked, not assumed, by the
  mean value theorem (Black-Scholes is increasing in sigma; the least vega over the range is at an
  end, ``d1 = A/x + x/2`` being convex in ``x = sigma sqrt(T)`` for ``A > 0`` and increasing for
  ``A <= 0``), with :data:`PRICE_EPS` for the solver's and the pricer's rounding; inside that range
  the price is strictly between the no-arbitrage bounds, so the IV exists. For a put the bracket
  holds the American IV's too: ``[IV_eu(mid - eep - price_slack mid), IV_eu(mid)]``.
* **Not near the delta band:** the European delta over ``[sigma_a, sigma_b]`` (the closed-form d1
  range of the gain bound) misses selection's prefilter band by :data:`DELTA_EPS`: selection drops
  the contract before any solve.
* **Or it cannot pay:** where the IV pins the price (condition number price / (sigma x vega) at most
  ``max_condition``), the American IV lies in the bracket widened by ``sigma_slack``; the gain
  bound over it (delta, gamma and theta terms each at their worst end, charged per trading day,
  plus relative and absolute margins) is at most ``spread_cover`` half-spreads at the least spread
  the quote can have, or the delta over it misses the band itself.

A contract is settled when the bracket holds and one of the last two does. The gain bound's own
margins (:class:`GainMargins`) belong to ``aiots.services.signals.gain_bound``, which passes them
in; this module owns the quote's and the bracket's.

Each row is one scalar pass in C (libm ``erfc``, ``exp``, ``log``, ``sqrt``; no fast-math) without the
GIL; :func:`all_settled` stops at the first row that is not settled. Any non-finite or out-of-range
input settles nothing (returning "not settled" is always sound: the caller takes the general path);
likewise a NaN bound (bad row, no bracket) prunes nothing. The bracket's solved lower ends are the
core's European IVs (``aiots.core.options.implied_vol``, one call for the rows that need one).

Units: dollars per share, years (ACT/365), sigma per sqrt(year), theta per year before the
trading-day charge (``x trading_days / SESSIONS_PER_YEAR``; selection's per-calendar-day theta x
365 / SESSIONS_PER_YEAR is the same to rounding, inside the bound's relative margin).

Size: over 500 lines because the settling and selection's bound share the row helpers (inline C,
one compilation unit); each has its own small driver below them.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport NAN, erfc, exp, fabs, isfinite, log, sqrt

from aiots.core.conventions import SESSIONS_PER_YEAR
from aiots.core.options import implied_vol as _eu_implied_vol

cnp.import_array()

# the quote's and the bracket's margins (this module's)
cdef double PRICE_EPS = 1e-9  # relative to S + K: vectorised vs scalar Black-Scholes, the IV solver's residual
cdef double QUOTE_EPS = 1e-6  # dollars: the quotes' rounding to 1e-6 and the tick rounding's 1e-9 tick slack
cdef double DELTA_EPS = 1e-9  # |delta| margin (erfc rounding ~1e-16)
cdef double WIDEN = 2.0  # sigma_a, sigma_b: sigma -+ WIDEN x the IV move of the mid's worst offset
cdef double MOVE_FLOOR = 1e-6  # relative to sigma: the least IV move either way
cdef double FAR_EPS = 1e-9  # added to the largest |d1| at the bracket's ends (rounding of d1)
cdef double VEGA_SHRINK = 1e-9  # relative: the least vega times the move, taken this much smaller
cdef double ROUND_REL = 1e-12  # relative: the spread threshold and the put's premium, rounding
cdef double INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)
cdef double SQRT1_2 = 0.7071067811865476  # 1 / sqrt(2)
cdef double SESSIONS = SESSIONS_PER_YEAR


cdef struct Margins:
    double sigma_slack  # relative widening of the IV bracket (solver tolerances)
    double price_slack  # relative slack on the price for the put's lower IV end (pricer rounding)
    double d_slack  # absolute widening of the d1/d2 ranges
    double bound_slack  # relative margin on the bound's terms
    double max_condition  # price / (sigma x vega) at most, for the bracket to pin sigma
    double abs_slack  # absolute margin of the bound (dollars per share)


cdef struct Quote:  # the chain's pricing model and quoting rule
    double S
    double r
    double sigma
    double frac
    double min_half
    double tick


cdef struct Idea:  # the idea and selection's thresholds
    double dS
    double charge  # trading days / SESSIONS_PER_YEAR: the theta per year charged over the horizon
    double delta_min
    double delta_max
    double prefilter
    double cover


cdef class GainMargins:
    """The gain bound's margins, as the kernel reads them (values owned by
    ``aiots.services.signals.gain_bound``; built once and passed to every call)."""

    cdef Margins m

    def __init__(self, *, double sigma_slack, double price_slack, double d_slack, double bound_slack,
                 double max_condition, double abs_slack):
        self.m.sigma_slack = sigma_slack
        self.m.price_slack = price_slack
        self.m.d_slack = d_slack
        self.m.bound_slack = bound_slack
        self.m.max_condition = max_condition
        self.m.abs_slack = abs_slack


cdef inline double _ncdf(double x) noexcept nogil:
    return 0.5 * erfc(-x * SQRT1_2)


cdef inline double _npdf(double x) noexcept nogil:
    return INV_SQRT_2PI * exp(-0.5 * x * x)


cdef inline double _max(double a, double b) noexcept nogil:
    """NumPy's maximum: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a >= b else b


cdef inline double _min(double a, double b) noexcept nogil:
    """NumPy's minimum: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a <= b else b


cdef struct DeltaRange:  # the d1/d2 ranges over a sigma bracket and the signed delta range from it
    double a  # sigma_lo sqrt(T)
    double d1min
    double d1max
    double d2min
    double d2max
    double dlo  # NaN where undefined
    double dhi


cdef inline void _delta_range(bint is_call, double T, double A, double rt, double eq, double lo, double hi,
                              const Margins* m, DeltaRange* out) noexcept nogil:
    """The d1/d2 ranges over sigma in ``[lo, hi]`` (closed forms: each end or the interior extremum
    at ``sqrt(2|A|)``, widened by ``d_slack``) and the signed delta range, NaN where undefined, given
    ``A = ln S - ln K + (r - q) T``, ``rt = sqrt(T)`` and ``eq = exp(-q T)``."""
    cdef double a = lo * rt, b = hi * rt
    cdef double d1a = A / a + 0.5 * a, d1b = A / b + 0.5 * b, d2a = A / a - 0.5 * a, d2b = A / b - 0.5 * b
    cdef double root = sqrt(2.0 * fabs(A))
    cdef bint inside = (a < root) and (root < b)
    out.a = a
    out.d1min = (root if (A > 0 and inside) else _min(d1a, d1b)) - m.d_slack
    out.d1max = _max(d1a, d1b) + m.d_slack
    out.d2min = _min(d2a, d2b) - m.d_slack
    out.d2max = (-root if (A < 0 and inside) else _max(d2a, d2b)) + m.d_slack
    if not (T > 0 and a > 0 and b >= a):
        out.dlo = NAN
        out.dhi = NAN
    elif is_call:
        out.dlo, out.dhi = eq * _ncdf(out.d1min), eq * _ncdf(out.d1max)
    else:
        out.dlo, out.dhi = eq * (_ncdf(out.d1min) - 1.0), eq * (_ncdf(out.d1max) - 1.0)


cdef inline double _gain_bound(bint is_call, double S, double K, double T, double r, double q, double er,
                               double eq, const DeltaRange* g, double dS, double charge, double delta_max,
                               const Margins* m) noexcept nogil:
    """The bound of ``delta dS + gamma dS^2 / 2 + theta x charge`` (theta per year; ``charge``: the
    horizon's trading days / SESSIONS_PER_YEAR) over the bracket of ``g`` (each term at its worst
    end, ``|delta| <= delta_max``, with margins; ``er = exp(-r T)``, ``eq = exp(-q T)``); NaN where
    undefined. The rate's and the yield's theta terms take the end their sign makes worst (nothing
    to take where the rate or the yield is 0)."""
    cdef double t_delta, abs_min, abs_max, phi_max, phi_min, t_gamma, theta, t_theta, out
    if g.dlo != g.dlo:
        return NAN
    t_delta = _min(g.dhi * dS if dS >= 0 else g.dlo * dS, delta_max * fabs(dS))
    abs_min, abs_max = fabs(g.d1min), fabs(g.d1max)
    phi_max = INV_SQRT_2PI if (g.d1min <= 0 and g.d1max >= 0) else _npdf(_min(abs_min, abs_max))
    phi_min = _npdf(_max(abs_min, abs_max))
    t_gamma = 0.5 * (eq * phi_max / (S * g.a)) * dS * dS
    theta = -eq * S * phi_min * g.a / (2.0 * T)  # the decay term's largest (least negative) value
    if r != 0.0:
        if is_call:
            theta = theta - r * K * er * _ncdf(g.d2min if r >= 0 else g.d2max)
        else:
            theta = theta + r * K * er * _ncdf(-(g.d2min if r >= 0 else g.d2max))
    if q != 0.0:
        if is_call:
            theta = theta + q * S * eq * _ncdf(g.d1max if q >= 0 else g.d1min)
        else:
            theta = theta - q * S * eq * _ncdf(-(g.d1max if q >= 0 else g.d1min))
    t_theta = theta * charge
    out = t_delta + t_gamma + t_theta + (m.bound_slack * (fabs(t_delta) + fabs(t_gamma) + fabs(t_theta)) + m.abs_slack)
    return out if isfinite(out) else NAN


cdef bint _settled(bint is_call, double K, double T, double logS, double rt, double er, const Quote* q,
                   const Idea* d, const Margins* m) noexcept nogil:
    """Whether the contract (strike ``K``, ``T`` years; ``rt = sqrt(T)``, ``er = exp(-r T)``) is
    settled (the module docstring's proof); False whenever that is not shown."""
    cdef double S = q.S, r = q.r, sig = q.sigma
    cdef double eps = PRICE_EPS * (S + K)
    cdef double A = logS - log(K) + r * T
    cdef double srt = sig * rt
    cdef double d1 = A / srt + 0.5 * srt
    cdef double quote = 0.5 * q.tick + QUOTE_EPS
    cdef double s_rt_phi = S * rt * INV_SQRT_2PI
    cdef double bs, m_lo, m_hi, h_lo, thr_lo, eep, low_target, vega_m, move_lo, move_hi, sa, sb, a, b
    cdef double far, vega_min, lo_abs, hi_abs
    cdef DeltaRange g
    cdef bint bracketed, conditioned
    if is_call:
        bs = S * _ncdf(d1) - K * er * _ncdf(d1 - srt)  # Black-Scholes at sigma
        m_lo = bs - eps - quote
        m_hi = _max(bs, S - K) + eps + quote  # held at intrinsic (BS > S - K e^{-rT} >= S - K for r >= 0)
        h_lo = _max(q.frac * (bs - eps), q.min_half)
        move_lo = WIDEN * (m_hi - m_lo + 4.0 * eps) / (s_rt_phi * exp(-0.5 * d1 * d1)) + MOVE_FLOOR * sig
        move_hi = move_lo
        low_target = m_lo
    else:
        bs = K * er * _ncdf(-(d1 - srt)) - S * _ncdf(-d1)  # the European put at sigma
        eep = K * (1.0 - er)
        m_lo = _max(bs, K - S) - eps - quote
        m_hi = bs + eep + eps + quote
        h_lo = _max(q.frac * (m_lo + quote), q.min_half)
        # the American IV lies in [IV_eu(mid - eep - price_slack mid), IV_eu(mid)] (gain_bound.iv_bracket)
        low_target = m_lo - eep * (1.0 + ROUND_REL) - m.price_slack * m_hi - eps
        vega_m = s_rt_phi * exp(-0.5 * d1 * d1)
        move_lo = WIDEN * _max(bs - low_target + 2.0 * eps, 0.0) / vega_m + MOVE_FLOOR * sig
        move_hi = WIDEN * _max(m_hi - bs + 2.0 * eps, 0.0) / vega_m + MOVE_FLOOR * sig
    sa, sb = sig - move_lo, sig + move_hi
    a, b = sa * rt, sb * rt
    far = _max(fabs(A / a + 0.5 * a), fabs(A / b + 0.5 * b)) + FAR_EPS
    vega_min = s_rt_phi * exp(-0.5 * far * far)
    # BS(sig) - BS(sa) and BS(sb) - BS(sig) are at least the moves times the least vega
    bracketed = (
        sa > 0
        and (is_call or low_target > 0)
        and bs + eps - move_lo * vega_min * (1.0 - VEGA_SHRINK) <= low_target - eps
        and bs - eps + move_hi * vega_min * (1.0 - VEGA_SHRINK) >= m_hi + eps
    )
    if not bracketed:
        return False
    _delta_range(is_call, T, A, rt, 1.0, sa * (1.0 - m.sigma_slack), sb * (1.0 + m.sigma_slack), m, &g)
    if is_call:
        lo_abs, hi_abs = g.dlo, g.dhi
    else:
        lo_abs, hi_abs = -g.dhi, -g.dlo  # |delta| of a put
    # not near: the European delta over the bracket misses the prefilter band
    if hi_abs < d.delta_min - d.prefilter - DELTA_EPS or lo_abs > d.delta_max + d.prefilter + DELTA_EPS:
        return True
    # cannot pay at the American IV (where the price pins it): outside the band, or the gain bound
    conditioned = m_hi <= m.max_condition * sa * vega_min * (1.0 - VEGA_SHRINK)
    if not conditioned:
        return False
    if hi_abs < d.delta_min - DELTA_EPS or lo_abs > d.delta_max + DELTA_EPS:
        return True
    thr_lo = d.cover * (h_lo - 2.0 * QUOTE_EPS) * (1.0 - ROUND_REL)  # cover x half of the least spread
    return _gain_bound(is_call, S, K, T, r, 0.0, er, 1.0, &g, d.dS, d.charge, d.delta_max, m) <= thr_lo


cdef cnp.ndarray _column(x, str name):
    """``x`` as a 1-D C-contiguous float64 array (no copy when it is one)."""
    cdef cnp.ndarray a
    if cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE \
            and cnp.PyArray_NDIM(<cnp.ndarray>x) == 1 and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x):
        return <cnp.ndarray>x
    a = np.ascontiguousarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {np.shape(x)}")
    return a


cdef bint _valid(const Quote* q, const Idea* d) noexcept nogil:
    """Every scalar finite and in range (else nothing is settled)."""
    cdef double v[12]
    cdef int i
    v[:] = [q.S, q.r, q.sigma, q.frac, q.min_half, q.tick, d.dS, d.charge, d.delta_min, d.delta_max, d.prefilter,
            d.cover]
    for i in range(12):
        if not isfinite(v[i]):
            return False
    return (q.S > 0 and q.r >= 0 and q.sigma > 0 and q.frac >= 0 and q.min_half >= 0 and q.tick >= 0
            and d.charge > 0 and d.prefilter >= 0 and d.cover >= 0)


cdef Py_ssize_t _scan(bint is_call, const double* K, const double* T, Py_ssize_t n, const Quote* q,
                      const Idea* d, const Margins* m, unsigned char* mask) noexcept nogil:
    """Settle rows ``0..n-1``: into ``mask`` when given (every row), else stop at the first row
    not settled. Returns the count of leading settled rows (``n`` when every row is settled)."""
    cdef double logS = log(q.S), t_prev = NAN, rt = NAN, er = NAN, k, t
    cdef Py_ssize_t i, lead = n
    cdef bint ok
    for i in range(n):
        k, t = K[i], T[i]
        if t != t_prev:  # rows come grouped by expiry: sqrt(T) and exp(-r T) once per run
            t_prev, rt, er = t, sqrt(t), exp(-q.r * t)
        ok = (k > 0 and t > 0 and isfinite(k) and isfinite(t)) and _settled(is_call, k, t, logS, rt, er, q, d, m)
        if mask != NULL:
            mask[i] = ok
            if not ok and lead == n:
                lead = i
        elif not ok:
            return i
    return lead


cdef Py_ssize_t _run(bint is_call, double S, double r, double sigma, double half_spread_frac,
                     double min_half_spread, double tick, cnp.ndarray K, cnp.ndarray T, double dS,
                     double trading_days, double delta_min, double delta_max, double prefilter_margin,
                     double spread_cover, GainMargins margins, unsigned char* mask) except -2:
    """:func:`_scan` over ``K``, ``T`` after the argument checks; -1 when the scalars settle nothing."""
    cdef Quote q = Quote(S, r, sigma, half_spread_frac, min_half_spread, tick)
    cdef Idea d = Idea(dS, trading_days / SESSIONS, delta_min, delta_max, prefilter_margin, spread_cover)
    cdef Py_ssize_t n = cnp.PyArray_DIM(K, 0), lead
    cdef const double* pk = <const double*>cnp.PyArray_DATA(K)
    cdef const double* pt = <const double*>cnp.PyArray_DATA(T)
    if cnp.PyArray_DIM(T, 0) != n:
        raise ValueError(f"K and T differ in length ({n} and {cnp.PyArray_DIM(T, 0)})")
    if not _valid(&q, &d):
        return -1
    with nogil:
        lead = _scan(is_call, pk, pt, n, &q, &d, &margins.m, mask)
    return lead


def all_settled(bint is_call, double S, double r, double sigma, double half_spread_frac, double min_half_spread,
                double tick, K, T, double dS, double trading_days, double delta_min, double delta_max,
                double prefilter_margin, double spread_cover, GainMargins margins not None):
    """Whether every contract (calls if ``is_call``, else American puts; strikes ``K``, years ``T``)
    of a chain quoted from the model (spot ``S``, rate ``r``, no yield, IV ``sigma``; half-spread
    ``max(half_spread_frac x price, min_half_spread)`` rounded outward to ``tick``) is settled for
    an idea moving the underlying by ``dS`` over ``trading_days`` sessions, with selection's delta
    band ``[delta_min, delta_max]``, its prefilter margin and its ``spread_cover``. Stops at the
    first contract not settled; False for no contracts or bad inputs."""
    k, t = _column(K, "K"), _column(T, "T")
    cdef Py_ssize_t n = cnp.PyArray_DIM(k, 0)
    return n > 0 and _run(is_call, S, r, sigma, half_spread_frac, min_half_spread, tick, k, t, dS, trading_days,
                          delta_min, delta_max, prefilter_margin, spread_cover, margins, NULL) == n


def settled(bint is_call, double S, double r, double sigma, double half_spread_frac, double min_half_spread,
            double tick, K, T, double dS, double trading_days, double delta_min, double delta_max,
            double prefilter_margin, double spread_cover, GainMargins margins not None):
    """:func:`all_settled` contract by contract: a bool array, True where the contract is settled."""
    k, t = _column(K, "K"), _column(T, "T")
    out = np.zeros(cnp.PyArray_DIM(k, 0), dtype=np.bool_)
    _run(is_call, S, r, sigma, half_spread_frac, min_half_spread, tick, k, t, dS, trading_days, delta_min,
         delta_max, prefilter_margin, spread_cover, margins, <unsigned char*>cnp.PyArray_DATA(out))
    return out


cdef void _bounds_rows(bint is_call, double S, double r, double q, const double* K, const double* T,
                       const double* lo, const double* hi, Py_ssize_t n, double dS, double charge, double delta_max,
                       const Margins* m, double* bound, double* dlo, double* dhi) noexcept nogil:
    """The gain bound and the delta range of rows ``0..n-1`` over ``[lo, hi]``; ``bound`` holds each
    row's ``A = ln S - ln K + (r - q) T`` on entry (read before the row's bound is written)."""
    cdef double t_prev = NAN, rt = NAN, eq = NAN, er = NAN, t
    cdef Py_ssize_t i
    cdef DeltaRange g
    for i in range(n):
        t = T[i]
        if t != t_prev:  # rows come grouped by expiry: sqrt(T) and the discount factors once per run
            t_prev, rt, eq, er = t, sqrt(t), exp(-q * t), exp(-r * t)
        _delta_range(is_call, t, bound[i], rt, eq, lo[i], hi[i], m, &g)
        dlo[i], dhi[i] = g.dlo, g.dhi
        bound[i] = _gain_bound(is_call, S, K[i], t, r, q, er, eq, &g, dS, charge, delta_max, m)


cdef void _log_moneyness(double S, double r, double q, const double* K, const double* T, Py_ssize_t n,
                         double* A) noexcept nogil:
    """``A = ln S - ln K + (r - q) T`` of rows ``0..n-1``."""
    cdef double logS = log(S)
    cdef Py_ssize_t i
    for i in range(n):
        A[i] = logS - log(K[i]) + (r - q) * T[i]


cdef bint _bracket_rows(bint is_call, bint american, const double* mid, const double* iv, double S, double r,
                        double q, const double* K, const double* T, Py_ssize_t n, const Margins* m, double* A,
                        double* lo, double* hi) noexcept nogil:
    """The IV bracket of rows ``0..n-1`` (``gain_bound``'s docstring: where the European IV ``iv`` pins
    the price, ``iv`` widened by ``sigma_slack``, below to the European IV of the price less the
    largest early-exercise premium when there is one; NaN where the price does not pin sigma), and
    ``A`` of each row. Where that premium is not nil (``american`` and a non-zero carry), ``lo``
    holds the price to invert (NaN: none) and True is returned: :func:`_solved_lower_ends` finishes
    it. For ``r >= 0`` and ``q >= 0`` when ``american``."""
    cdef double logS = log(S), t_prev = NAN, rt = NAN, eq = NAN, er = NAN, t, a, v, srt, d1, reduced
    cdef double carry = q if is_call else r
    cdef bint solve = american and carry != 0
    cdef Py_ssize_t i
    for i in range(n):
        t = T[i]
        if t != t_prev:
            t_prev, rt, eq, er = t, sqrt(t), exp(-q * t), exp(-r * t)
        a = logS - log(K[i]) + (r - q) * t
        A[i] = a
        v = iv[i]
        srt = v * rt
        d1 = a / srt + 0.5 * srt
        # the condition number price / (sigma x vega) at most max_condition: sigma is pinned by the price
        if not (mid[i] <= m.max_condition * (v * S * eq * _npdf(d1) * rt)):
            lo[i] = NAN
            hi[i] = NAN
            continue
        hi[i] = v * (1.0 + m.sigma_slack)
        if not solve:
            lo[i] = v * (1.0 - m.sigma_slack)
        else:
            # the largest early-exercise premium: S (1 - e^{-qT}) for a call, K (1 - e^{-rT}) for a put
            reduced = mid[i] - (S if is_call else K[i]) * (1.0 - (eq if is_call else er)) - m.price_slack * mid[i]
            lo[i] = reduced if reduced > 0 else NAN
    return solve


cdef void _solved_lower_ends(const double* solved, Py_ssize_t n, const Margins* m, double* lo) noexcept nogil:
    """``lo`` from the European IVs of the reduced prices (NaN stays NaN)."""
    cdef Py_ssize_t i
    for i in range(n):
        lo[i] = solved[i] * (1.0 - m.sigma_slack)


_BRACKET_ROWS = ("mid", "iv_eu", "K", "T")


cdef tuple _rows(tuple arrays, tuple names):
    """``arrays`` as 1-D C-contiguous float64 arrays of one length (ValueError otherwise)."""
    cols = tuple([_column(a, nm) for a, nm in zip(arrays, names)])
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>cols[0], 0)
    for c in cols:
        if cnp.PyArray_DIM(<cnp.ndarray>c, 0) != n:
            raise ValueError(f"{', '.join(names)}: expected one length, got {[np.shape(a) for a in arrays]}")
    return cols


cdef int _bracket(bint is_call, bint american, cnp.ndarray mid, cnp.ndarray iv, double S, double r, double q,
                  cnp.ndarray K, cnp.ndarray T, Margins* m, double[::1] A, double[::1] lo, double[::1] hi) except -1:
    """:func:`_bracket_rows` then, where it asks for them, the European IVs of the reduced prices
    (the core's solver) into ``lo``."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(K, 0)
    cdef const double* pm = <const double*>cnp.PyArray_DATA(mid)
    cdef const double* pv = <const double*>cnp.PyArray_DATA(iv)
    cdef const double* pk = <const double*>cnp.PyArray_DATA(K)
    cdef const double* pt = <const double*>cnp.PyArray_DATA(T)
    cdef bint solve
    cdef cnp.ndarray solved
    if n == 0:
        return 0
    with nogil:
        solve = _bracket_rows(is_call, american, pm, pv, S, r, q, pk, pt, n, m, &A[0], &lo[0], &hi[0])
    if solve:
        solved = _column(_eu_implied_vol(lo.base, S, K, T, r, q, is_call), "iv")
        with nogil:
            _solved_lower_ends(<const double*>cnp.PyArray_DATA(solved), n, m, &lo[0])
    return 0


def iv_bracket(mid, iv_eu, double S, K, T, double r, double q, bint is_call, bint american,
               GainMargins margins not None):
    """(sigma_lo, sigma_hi) holding the implied vol of ``mid`` for the contract's style (the bracket
    of ``aiots.services.signals.gain_bound``); ``iv_eu`` is the European IV of ``mid``. NaN where
    there is no bracket; no lower end at all for an American contract when ``r < 0`` or ``q < 0``."""
    mid, iv_eu, K, T = _rows((mid, iv_eu, K, T), _BRACKET_ROWS)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>K, 0)
    A, lo, hi = np.empty(n), np.empty(n), np.empty(n)
    if american and (r < 0 or q < 0):
        # a negative rate (call) or yield (put) makes early exercise pay without a bound used here
        lo.fill(NAN)
        np.multiply(iv_eu, 1.0 + margins.m.sigma_slack, out=hi)
        return lo, hi
    _bracket(is_call, american, mid, iv_eu, S, r, q, K, T, &margins.m, A, lo, hi)
    return lo, hi


def gain_bounds(bint is_call, double S, K, T, double r, double q, sigma_lo, sigma_hi, double dS,
                double trading_days, double delta_max, GainMargins margins not None):
    """(the gain bound, the least and the greatest signed delta) over every sigma in ``[sigma_lo,
    sigma_hi]`` for each contract (``aiots.services.signals.gain_bound.gain_and_delta_bounds``; the
    settling's bound with ``q = 0``). NaN where undefined."""
    k, t, lo, hi = _rows((K, T, sigma_lo, sigma_hi), ("K", "T", "sigma_lo", "sigma_hi"))
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>k, 0)
    bound, dlo, dhi = np.empty(n), np.empty(n), np.empty(n)
    cdef double[::1] ob = bound, ol = dlo, oh = dhi
    cdef const double* pk = <const double*>cnp.PyArray_DATA(<cnp.ndarray>k)
    cdef const double* pt = <const double*>cnp.PyArray_DATA(<cnp.ndarray>t)
    cdef const double* plo = <const double*>cnp.PyArray_DATA(<cnp.ndarray>lo)
    cdef const double* phi = <const double*>cnp.PyArray_DATA(<cnp.ndarray>hi)
    if n:
        with nogil:
            _log_moneyness(S, r, q, pk, pt, n, &ob[0])
            _bounds_rows(is_call, S, r, q, pk, pt, plo, phi, n, dS, trading_days / SESSIONS, delta_max, &margins.m,
                         &ob[0], &ol[0], &oh[0])
    return bound, dlo, dhi


def bracket_gain_bounds(mid, iv_eu, double S, K, T, double r, double q, bint is_call, double dS,
                        double trading_days, double delta_max, GainMargins margins not None):
    """:func:`iv_bracket` (American) then :func:`gain_bounds` over it in one pass (the same numbers):
    selection's bound before the American IV solve. All NaN when ``r < 0`` or ``q < 0``."""
    mid, iv_eu, K, T = _rows((mid, iv_eu, K, T), _BRACKET_ROWS)
    cdef Py_ssize_t n = cnp.PyArray_DIM(<cnp.ndarray>K, 0)
    bound, dlo, dhi = np.empty(n), np.empty(n), np.empty(n)
    if r < 0 or q < 0:  # no lower end of the bracket: no bound
        bound.fill(NAN)
        dlo.fill(NAN)
        dhi.fill(NAN)
        return bound, dlo, dhi
    # dlo and dhi hold the bracket's ends until the bounds are written over them
    cdef double[::1] ob = bound, ol = dlo, oh = dhi
    _bracket(is_call, True, mid, iv_eu, S, r, q, K, T, &margins.m, ob, ol, oh)
    if n:
        with nogil:
            _bounds_rows(is_call, S, r, q, <const double*>cnp.PyArray_DATA(<cnp.ndarray>K),
                         <const double*>cnp.PyArray_DATA(<cnp.ndarray>T), &ol[0], &oh[0], n, dS,
                         trading_days / SESSIONS, delta_max, &margins.m, &ob[0], &ol[0], &oh[0])
    return bound, dlo, dhi
