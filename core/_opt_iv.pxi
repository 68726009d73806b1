# European implied volatility for core/options.pyx (included, not compiled alone): Jäckel's
# normalised Black inversion with Householder(3) steps.

# ------------------------------------------------------------------------------------------------
# Implied volatility (normalised Black inversion after Jäckel 2015/2017)
# ------------------------------------------------------------------------------------------------


cdef double IV_DONE = 1e-4
# sqrt(-2x) from which _solve_s takes b(x, sqrt(-2x)) in closed form (below: nb_otm, no cancellation)
cdef double IV_SC_CLOSED = 1e-3


cdef double _solve_s(double beta, double x, double bmax, int* reason) noexcept nogil:
    """Solve b(x, s) = beta for s, x <= 0, 0 < beta < bmax = exp(x/2).

    Branches (Jäckel): lower (beta < b_l) iterates on 1/ln(b); middle on b; upper on
    -ln(b_max - b). Householder(3) steps, bracketed, with a bisection fallback.
    """
    cdef double sc = sqrt(-2.0 * x)
    cdef double bc, vc, sl, su, bl, bu, s, lo = 0.0, hi = INFINITY
    cdef double b, vg, b2, b3, nu, h2, h3, ds, sn, L, Lb, c, cb, gu
    cdef int branch, _it
    cdef bint polish = False, below
    if sc >= IV_SC_CLOSED:
        # at s = sc, h + t = 0: b = e^{x/2}/2 - e^{-x/2} Phi(-sc) and vega = e^{x/2}/sqrt(2 pi), one
        # erfc (nb_otm there: an erfcx difference, 3-5 exp/erfc). Only the initial guess and the
        # branch choice read them; the cancellation costs ~1e-16 / sc relative
        vc = INV_SQRT2PI * bmax
        bc = 0.5 * bmax - norm_cdf(-sc) / bmax
    elif sc > 0.0:
        bc = nb_otm_vega(x, sc, &vc)
    else:
        vc = INV_SQRT2PI
        bc = 0.0
    sl = sc - bc / vc
    su = sc + (bmax - bc) / vc
    # only the branch point on beta's side of b_c is needed, and only where a bound does not
    # already place beta in the middle branch: b is convex in s on (0, sc] with b(0) = 0, so
    # b_l = b(sl) <= (sl / sc) b_c; concave on [sc, inf), so b_u = b(su) >= b_c + b'(su) (su - sc)
    # (one exp instead of an evaluation of b; the margins cover the rounding of either side)
    bl = 0.0
    bu = INFINITY
    if beta < bc:
        if sl > 0.0 and beta < sl / sc * bc * (1.0 + 1e-12):
            bl = nb_otm(x, sl)
    elif not beta <= bc + 0.999 * nb_vega(x, su) * (su - sc):
        bu = nb_otm(x, su)
    Lb = 0.0  # log(beta), needed in the lower branch only
    cb = bmax - beta
    if beta < bl:
        branch = 0
        Lb = log(beta)
        s = sl * sqrt(log(bl) / Lb)
        hi = sl
    elif beta <= bu:
        branch = 1
        s = sc + (beta - bc) / vc
        if s <= 0.0:
            s = 0.5 * su
    else:
        branch = 2
        lo = su
        gu = -log(nb_otm_complement(x, su))
        s = sqrt(su * su + 8.0 * fmax(-log(cb) - gu, 0.0))
    for _it in range(IV_MAX_ITER):
        if branch == 2:
            vg = nb_vega(x, s)
            c = nb_otm_complement(x, s)
            b = bmax - c
            below = c > cb
        else:
            b = nb_otm_vega(x, s, &vg)
            c = 0.0
            below = b < beta
        if below:
            lo = fmax(lo, s)
        else:
            hi = fmin(hi, s)
        b2 = x * x / (s * s * s) - 0.25 * s
        b3 = b2 * b2 - 3.0 * x * x / (s * s * s * s) - 0.25
        if branch == 1:
            nu = (beta - b) / vg
            h2 = b2
            h3 = b3
        elif branch == 0:
            if b <= 0.0:
                nu = NAN
                h2 = 0.0
                h3 = 0.0
            else:
                L = log(b)
                nu = (1.0 / L - 1.0 / Lb) * b * L * L / vg
                h2 = -(2.0 + L) / (b * L) * vg + b2
                h3 = 2.0 * (L * L + 3.0 * L + 3.0) / (b * b * L * L) * vg * vg \
                    - 3.0 * (2.0 + L) / (b * L) * vg * b2 + b3
        else:
            nu = (log(c) - log(cb)) * c / vg
            h2 = vg / c + b2
            h3 = 2.0 * vg * vg / (c * c) + 3.0 * vg / c * b2 + b3
        ds = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))
        sn = s + ds
        if sn == s and fabs(nu) <= 4e-16 * s:
            # the Newton step, and so the step taken, below an ulp of s (b hit beta exactly, or to
            # the last bit): s is final. Tested first: s is now one end of the bracket, so sn = s
            # would fail the test below and restart a bisection from the bracket (~40 more
            # evaluations). (nu large with ds = 0 is an overflow of h3, e.g. b*b underflowing in
            # the lower branch: not converged, the bisection below goes on.)
            reason[0] = R_OK
            return s
        if not (sn > lo and sn < hi) or not isfinite(sn):
            if hi < INFINITY:
                sn = 0.5 * (lo + hi)
            elif lo > 0.0:
                sn = 2.0 * lo
            else:
                sn = 2.0 * s
            polish = False
        elif polish or fabs(ds) <= IV_DONE * sn or b == beta:
            # Householder(3) converges with order 4: a step of relative size <= IV_DONE leaves an
            # error ~ (IV_DONE)^4 after it, far below double precision, so its result is final
            reason[0] = R_OK
            return sn
        elif fabs(ds) <= 1e-10 * sn:
            polish = True
        if hi < INFINITY and hi - lo <= 4e-16 * hi:
            reason[0] = R_OK
            return 0.5 * (lo + hi)
        s = sn
    reason[0] = R_NOCONV
    return NAN


cdef double _iv1(double P, double S, double K, double T, double r, double q, bint call,
                 int* reason) noexcept nogil:
    """European implied vol of a BSM price; NaN plus reason outside the no-arbitrage bounds."""
    if _bad(S, K, T, r, q, 1.0) or not (P > 0.0 and P < INFINITY):
        reason[0] = R_INVALID
        return NAN
    cdef double x = _log_ratio(S, K) + (r - q) * T
    cdef double beta = P * exp(0.5 * (r + q) * T) / (sqrt(S) * sqrt(K))
    if not call:
        x = -x
    if x > 0.0:
        beta -= 2.0 * sinh(0.5 * x)
        x = -x
    if beta < 0.0:
        reason[0] = R_BELOW
        return NAN
    if beta == 0.0:
        reason[0] = R_OK
        return 0.0
    cdef double bmax = exp(0.5 * x)
    if beta >= bmax:
        reason[0] = R_ABOVE
        return NAN
    return _solve_s(beta, x, bmax, reason) / sqrt(T)
