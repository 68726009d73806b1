# European Black-Scholes-Merton kernels for core/options.pyx (included, not compiled alone): the
# scalar price, the closed-form Greeks and the fused price + Greeks pass. Everything here is
# noexcept nogil and allocation free.

# ------------------------------------------------------------------------------------------------
# European scalar kernels
# ------------------------------------------------------------------------------------------------

cdef inline bint _bad(double S, double K, double T, double r, double q, double v) noexcept nogil:
    return not (S > 0.0 and S < INFINITY and K > 0.0 and K < INFINITY and T > 0.0 and T < INFINITY
                and v > 0.0 and v < INFINITY and isfinite(r) and isfinite(q))


cdef inline double _bs_price1(double S, double K, double T, double r, double q, double v,
                              bint call) noexcept nogil:
    if _bad(S, K, T, r, q, v):
        return NAN
    cdef double x = log(S / K) + (r - q) * T
    return sqrt(S) * sqrt(K) * exp(-0.5 * (r + q) * T) * normalised_black(x, v * sqrt(T), call)


cdef inline void _bs_greeks1(double S, double K, double T, double r, double q, double v, bint call,
                             double* o) noexcept nogil:
    """Closed-form BSM Greeks in GREEK_FIELDS order (raw units, time derivatives per year)."""
    cdef int i
    if _bad(S, K, T, r, q, v):
        for i in range(14):
            o[i] = NAN
        return
    cdef double th = 1.0 if call else -1.0
    cdef double sqT = sqrt(T), vs = v * sqT
    cdef double d1 = (log(S / K) + (r - q + 0.5 * v * v) * T) / vs
    cdef double d2 = d1 - vs
    cdef double dq = exp(-q * T), dr = exp(-r * T)
    cdef double nd1 = norm_pdf(d1)
    cdef double Nd1 = norm_cdf(th * d1), Nd2 = norm_cdf(th * d2)
    cdef double gamma = dq * nd1 / (S * vs)
    cdef double vega = S * dq * nd1 * sqT
    cdef double vomma = vega * d1 * d2 / v
    cdef double cterm = (2.0 * (r - q) * T - d2 * vs) / (2.0 * T * vs)
    o[0] = th * dq * Nd1
    o[1] = vega
    o[2] = -S * dq * nd1 * v / (2.0 * sqT) - th * r * K * dr * Nd2 + th * q * S * dq * Nd1
    o[3] = th * K * T * dr * Nd2
    o[4] = -th * S * T * dq * Nd1
    o[5] = gamma
    o[6] = -dq * nd1 * d2 / v
    o[7] = vomma
    o[8] = th * q * dq * Nd1 - dq * nd1 * cterm
    o[9] = S * dq * nd1 * sqT * (q + (r - q) * d1 / vs - (1.0 + d1 * d2) / (2.0 * T))
    o[10] = -gamma / S * (d1 / vs + 1.0)
    o[11] = gamma * (d1 * d2 - 1.0) / v
    o[12] = dq * nd1 / (2.0 * S * T * vs) * (2.0 * q * T + 1.0 + (2.0 * (r - q) * T - d2 * vs) / vs * d1)
    o[13] = -vega / (v * v) * (d1 * d2 * (1.0 - d1 * d2) + d1 * d1 + d2 * d2)


# Where th (a - b) loses more than a factor 10 to cancellation, or is below 1e-6 of the terms (deep
# tails, where the relative error of Phi grows like d^2 eps), the price comes from normalised Black.
cdef double FUSED_CANCEL = 0.1
cdef double FUSED_TINY = 1e-6


cdef inline void _bs_pg1(double S, double K, double T, double r, double q, double v, bint call, int nout,
                         double* o) noexcept nogil:
    """Price then Greeks (GREEK_FIELDS order, first nout - 1 of them) in one pass sharing d1, d2, the
    normal pdf/cdfs, the discount factors and sqrt(T). The price is th (S e^-qT N(th d1) - K e^-rT
    N(th d2)); where the two terms cancel, or in the deep tails, it is recomputed through the
    normalised Black function, so it keeps bs_price's relative accuracy."""
    cdef int i
    if _bad(S, K, T, r, q, v):
        for i in range(nout):
            o[i] = NAN
        return
    cdef double th = 1.0 if call else -1.0
    cdef double sqT = sqrt(T), vs = v * sqT, ivs = 1.0 / vs, iv = 1.0 / v, iT = 1.0 / T
    cdef double d1 = (log(S / K) + (r - q + 0.5 * v * v) * T) * ivs
    cdef double d2 = d1 - vs
    cdef double dq = exp(-q * T), dr = exp(-r * T)
    cdef double nd1 = norm_pdf(d1)
    cdef double Nd1 = norm_cdf(th * d1), Nd2 = norm_cdf(th * d2)
    cdef double sdq = S * dq, kdr = K * dr
    cdef double a = sdq * Nd1, b = kdr * Nd2
    cdef double dqn = dq * nd1
    cdef double pdq = S * dqn  # S e^-qT phi(d1)
    cdef double vega = pdq * sqT
    cdef double gamma = dqn * ivs / S
    cdef double dd = d1 * d2
    cdef double ct = (2.0 * (r - q) * T - d2 * vs) * ivs  # 2 T x (d d1/dT-type term of charm/color)
    o[0] = th * (a - b)
    if o[0] < FUSED_CANCEL * (a if a > b else b) or o[0] < FUSED_TINY * (sdq + kdr):
        o[0] = _bs_price1(S, K, T, r, q, v, call)
    o[1] = th * dq * Nd1
    o[2] = vega
    o[3] = -0.5 * pdq * v / sqT - th * r * b + th * q * a
    o[4] = th * T * b
    o[5] = -th * T * a
    o[6] = gamma
    o[7] = -dqn * d2 * iv
    o[8] = vega * dd * iv
    o[9] = th * q * dq * Nd1 - 0.5 * dqn * ct * iT
    o[10] = vega * (q + (r - q) * d1 * ivs - 0.5 * (1.0 + dd) * iT)
    if nout > 11:
        o[11] = -gamma / S * (d1 * ivs + 1.0)
        o[12] = gamma * (dd - 1.0) * iv
        o[13] = 0.5 * dqn * iT * ivs / S * (2.0 * q * T + 1.0 + ct * d1)
        o[14] = -vega * iv * iv * (dd * (1.0 - dd) + d1 * d1 + d2 * d2)
