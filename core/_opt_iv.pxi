# European implied volatility for core/options.pyx (included, not compiled alone): Jäckel's
# normalised Black inversion with Householder(3) steps, run over lanes of up to IV_LANES contracts
# in lock step so that most evaluations of b are vector (libmvec) ones.

# ------------------------------------------------------------------------------------------------
# Implied volatility (normalised Black inversion after Jäckel 2015/2017)
# ------------------------------------------------------------------------------------------------


cdef double IV_DONE = 1e-4
# sqrt(-2x) from which _iv_setup1 takes b(x, sqrt(-2x)) in closed form (below: nb_otm, no cancellation)
cdef double IV_SC_CLOSED = 1e-3
# Vector evaluations of b (libmvec erfc/exp, the same formula nb_otm_vega takes in that region: the
# two-erfc difference b = e^{x/2} Phi(h+t) - e^{-x/2} Phi(h-t), or the small-t expansion): at most
# IV_VEC_MAX per contract, then scalar ones; no difference used where b is below IV_VEC_CANCEL of its
# larger term (more than 20 bits cancelled: nb_otm_vega evaluates it); |b - beta| within IV_VEC_SIDE
# of that term does not move the bracket (libmvec's erfc is within 1.7 ulp, exp 3 ulp).
cdef int IV_VEC_MAX = 6
cdef double IV_VEC_CANCEL = 9.5367431640625e-07  # 2**-20
cdef double IV_VEC_SIDE = 1e-13

cdef enum:
    IV_LANES = 64  # contracts solved together (stack arrays of this size)


ctypedef struct _IVLane:
    # one contract's solve: normalised inputs (x <= 0, 0 < beta < bmax = e^{x/2}, emx = e^{-x/2}),
    # branch and its transformed target (Lb = ln beta, cb = bmax - beta), bracket [lo, hi] in s,
    # the iterate s, sqrt(T), counters and flags
    double x, beta, bmax, emx, Lb, cb, lo, hi, s, sqT
    # setup: the branch centre sc, b and vega there, the branch points sl, su and b at them
    double sc, bc, vc, sl, su, bl, bu
    int branch, polish, nexact, nvec, vk, vj, idx


cdef inline int _iv_prep(double P, double S, double K, double T, double r, double q, bint call,
                         _IVLane* L, double* res, int* reason) noexcept nogil:
    """Normalise one contract into L (0), or set res and reason where there is nothing to solve (1):
    NaN outside the no-arbitrage bounds, 0.0 exactly at intrinsic."""
    if _bad(S, K, T, r, q, 1.0) or not (P > 0.0 and P < INFINITY):
        reason[0] = R_INVALID
        res[0] = NAN
        return 1
    cdef double x = _log_ratio(S, K) + (r - q) * T
    cdef double beta = P * exp(0.5 * (r + q) * T) / (sqrt(S) * sqrt(K))
    if not call:
        x = -x
    if x > 0.0:
        beta -= 2.0 * sinh(0.5 * x)
        x = -x
    if beta < 0.0:
        reason[0] = R_BELOW
        res[0] = NAN
        return 1
    if beta == 0.0:
        reason[0] = R_OK
        res[0] = 0.0
        return 1
    cdef double bmax = exp(0.5 * x)
    if beta >= bmax:
        reason[0] = R_ABOVE
        res[0] = NAN
        return 1
    L.x = x
    L.beta = beta
    L.bmax = bmax
    L.sqT = sqrt(T)
    return 0


cdef inline bint _iv_setup1(_IVLane* L, double ncdf_msc) noexcept nogil:
    """Branch centre of lane L and the branch point b must be evaluated at, if any (True: at L.s;
    the caller puts b there into L.bl or L.bu, the side of b_c beta is on). ncdf_msc =
    Phi(-sqrt(-2x)) (the caller's, vectorised)."""
    cdef double x = L.x, beta = L.beta, bmax = L.bmax
    cdef double sc = sqrt(-2.0 * x)
    cdef double bc, vc, sl, su
    if sc >= IV_SC_CLOSED:
        # at s = sc, h + t = 0: b = e^{x/2}/2 - e^{-x/2} Phi(-sc) and vega = e^{x/2}/sqrt(2 pi), one
        # erfc (nb_otm there: an erfcx difference, 3-5 exp/erfc). Only the initial guess and the
        # branch choice read them; the cancellation costs ~1e-16 / sc relative
        vc = INV_SQRT2PI * bmax
        bc = 0.5 * bmax - ncdf_msc / bmax
    elif sc > 0.0:
        bc = nb_otm_vega(x, sc, &vc)
    else:
        vc = INV_SQRT2PI
        bc = 0.0
    sl = sc - bc / vc
    su = sc + (bmax - bc) / vc
    L.emx = exp(-0.5 * x)
    L.sc = sc
    L.bc = bc
    L.vc = vc
    L.sl = sl
    L.su = su
    # only the branch point on beta's side of b_c is needed, and only where a bound does not
    # already place beta in the middle branch: b is convex in s on (0, sc] with b(0) = 0, so
    # b_l = b(sl) <= (sl / sc) b_c; concave on [sc, inf), so b_u = b(su) >= b_c + b'(su) (su - sc)
    # (one exp instead of an evaluation of b; the margins cover the rounding of either side)
    L.bl = 0.0
    L.bu = INFINITY
    if beta < bc:
        if sl > 0.0 and beta < sl / sc * bc * (1.0 + 1e-12):
            L.s = sl
            return True
    elif not beta <= bc + 0.999 * nb_vega(x, su) * (su - sc):
        L.s = su
        return True
    return False


cdef inline void _iv_setup2(_IVLane* L) noexcept nogil:
    """Branch and initial guess of lane L (Jäckel): lower (beta < b_l) iterates on 1/ln(b); middle
    on b; upper on -ln(b_max - b)."""
    cdef double x = L.x, beta = L.beta, bmax = L.bmax, sc = L.sc, bc = L.bc, vc = L.vc
    cdef double sl = L.sl, su = L.su, s, lo = 0.0, hi = INFINITY, gu
    L.Lb = 0.0  # log(beta), needed in the lower branch only
    L.cb = bmax - beta
    if beta < L.bl:
        L.branch = 0
        L.Lb = log(beta)
        s = sl * sqrt(log(L.bl) / L.Lb)
        hi = sl
    elif beta <= L.bu:
        L.branch = 1
        s = sc + (beta - bc) / vc
        if s <= 0.0:
            s = 0.5 * su
    else:
        L.branch = 2
        lo = su
        gu = -log(nb_otm_complement(x, su))
        s = sqrt(su * su + 8.0 * fmax(-log(L.cb) - gu, 0.0))
    L.s = s
    L.lo = lo
    L.hi = hi
    L.polish = 0
    L.nexact = 0
    L.nvec = 0


cdef inline int _iv_step(_IVLane* L, double b, double vg, double c, double side, double* res) noexcept nogil:
    """One bracketed Householder(3) step of lane L from b = b(x, s), vg = db/ds (c = bmax - b in the
    upper branch). side: a bound on the error of b (0: scalar nb_otm_vega); b - beta within it leaves
    the bracket as it is. Returns 1 with res = sigma sqrt(T) (done), 0 with L.s the next iterate."""
    cdef double s = L.s, lo = L.lo, hi = L.hi, beta = L.beta
    cdef double b2, b3, nu, h2, h3, ds, sn, Lg
    cdef bint exact = side == 0.0, below
    cdef int polish = L.polish
    if L.branch == 2:
        below = c > L.cb
    else:
        below = b < beta
    if exact or fabs(b - beta) > side:
        if below:
            lo = fmax(lo, s)
        else:
            hi = fmin(hi, s)
    b2 = L.x * L.x / (s * s * s) - 0.25 * s
    b3 = b2 * b2 - 3.0 * L.x * L.x / (s * s * s * s) - 0.25
    if L.branch == 1:
        nu = (beta - b) / vg
        h2 = b2
        h3 = b3
    elif L.branch == 0:
        if b <= 0.0:
            nu = NAN
            h2 = 0.0
            h3 = 0.0
        else:
            Lg = log(b)
            nu = (1.0 / Lg - 1.0 / L.Lb) * b * Lg * Lg / vg
            h2 = -(2.0 + Lg) / (b * Lg) * vg + b2
            h3 = 2.0 * (Lg * Lg + 3.0 * Lg + 3.0) / (b * b * Lg * Lg) * vg * vg \
                - 3.0 * (2.0 + Lg) / (b * Lg) * vg * b2 + b3
    else:
        nu = (log(c) - log(L.cb)) * c / vg
        h2 = vg / c + b2
        h3 = 2.0 * vg * vg / (c * c) + 3.0 * vg / c * b2 + b3
    ds = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))
    sn = s + ds
    if sn == s and fabs(nu) <= 4e-16 * s:
        # the Newton step, and so the step taken, below an ulp of s (b hit beta exactly, or to the
        # last bit): s is final. Tested first: s is now one end of the bracket, so sn = s would fail
        # the test below and restart a bisection from the bracket (~40 more evaluations). (nu large
        # with ds = 0 is an overflow of h3, e.g. b*b underflowing in the lower branch: not
        # converged, the bisection below goes on.)
        res[0] = s
        return 1
    if not (sn > lo and sn < hi) or not isfinite(sn):
        if hi < INFINITY:
            sn = 0.5 * (lo + hi)
        elif lo > 0.0:
            sn = 2.0 * lo
        else:
            sn = 2.0 * s
        polish = 0
    elif polish or fabs(ds) <= IV_DONE * sn or b == beta:
        # Householder(3) converges with order 4: a step of relative size <= IV_DONE leaves an
        # error ~ (IV_DONE)^4 after it, far below double precision, so its result is final
        res[0] = sn
        return 1
    elif fabs(ds) <= 1e-10 * sn:
        polish = 1
    if hi < INFINITY and hi - lo <= 4e-16 * hi:
        res[0] = 0.5 * (lo + hi)
        return 1
    L.s = sn
    L.lo = lo
    L.hi = hi
    L.polish = polish
    return 0


cdef inline int _nb_region(double x, double s) noexcept nogil:
    """Which vector evaluation b(x, s) may take: 0 none (scalar: x = 0, s not positive and finite,
    the asymptotic region), 1 the two-erfc difference (_nb_mid_n, where nb_otm_vega takes that
    difference too), 2 the small-t expansion (_nb_smallt_n, as nb_otm_vega)."""
    cdef double h, t
    if not (x < 0.0 and s > 0.0 and s < INFINITY):
        return 0
    h = x / s
    t = 0.5 * s
    if h < ASYMPTOTIC_H and h + t < ASYMPTOTIC_H + SMALL_T:
        return 0
    return 2 if t < SMALL_T else 1


cdef inline int _iv_vec_kind(_IVLane* L) noexcept nogil:
    """_nb_region of lane L's next b; 0 also in the upper branch and past the lane's budget."""
    if L.nvec >= IV_VEC_MAX or L.branch == 2:
        return 0
    return _nb_region(L.x, L.s)


cdef int _iv_gather(_IVLane* L, int* act, int na, double* vx, double* vs, double* e1, double* e2,
                    double* eh, double* tx, double* ts, double* tb, double* tv, bint setup) noexcept nogil:
    """Group lanes act[:na] by the vector evaluation their b at L.s takes (vk, vj) and run both vector
    passes (padded). setup: the branch-point evaluation (any lane), else an iteration's."""
    cdef int k, j, nv = 0, nt = 0
    cdef _IVLane* Lp
    for k in range(na):
        Lp = &L[act[k]]
        Lp.vk = _nb_region(Lp.x, Lp.s) if setup else _iv_vec_kind(Lp)
        if Lp.vk == 1:
            Lp.vj = nv
            vx[nv] = Lp.x
            vs[nv] = Lp.s
            nv += 1
        elif Lp.vk == 2:
            Lp.vj = nt
            tx[nt] = Lp.x
            ts[nt] = Lp.s
            nt += 1
    if nv > 0:
        for j in range(nv, (nv + 7) & ~7):
            vx[j] = -1.0
            vs[j] = 1.0
        _nb_mid_n(vx, vs, e1, e2, eh, nv)
    if nt > 0:
        for j in range(nt, (nt + 7) & ~7):
            tx[j] = -0.1
            ts[j] = 0.2
        _nb_smallt_n(tx, ts, tb, tv, nt)
    return nv + nt


cdef void _iv_lanes(const double* P, const double* S, const double* K, const double* T, const double* r,
                    const double* q, const unsigned char* call, int n, double* out, int* reason) noexcept nogil:
    """European implied vols of n <= IV_LANES contracts (contiguous inputs) into out, reason.

    The branch points are evaluated the same way, in one pass before the first round. Each round
    gathers the lanes still iterating by the vector evaluation their b takes (_iv_vec_kind),
    evaluates each group in one padded vector pass (_nb_mid_n, _nb_smallt_n), and steps every lane
    (scalar nb_otm_vega for the rest, and where the difference cancelled). A lane's result depends on
    its own inputs only, never on n or its position (the vector passes are elementwise and have no
    scalar remainder); it can differ in the last bits between machines (avx512 / avx2 / sse2 variants
    of libmvec) and from a build without libmvec (scalar libm in the same loops)."""
    cdef _IVLane L[IV_LANES]
    cdef int act[IV_LANES]
    cdef int bp[IV_LANES]
    cdef double vx[IV_LANES]
    cdef double vs[IV_LANES]
    cdef double e1[IV_LANES]
    cdef double e2[IV_LANES]
    cdef double eh[IV_LANES]
    cdef double tx[IV_LANES]
    cdef double ts[IV_LANES]
    cdef double tb[IV_LANES]
    cdef double tv[IV_LANES]
    cdef int i, j, k, na = 0, nn, nb, st, lane
    cdef double res, b, vg, c, A, C
    cdef _IVLane* Lp
    for i in range(n):
        reason[i] = R_OK
        if _iv_prep(P[i], S[i], K[i], T[i], r[i], q[i], call[i] != 0, &L[na], &out[i], &reason[i]) == 0:
            L[na].idx = i
            vx[na] = -sqrt(-2.0 * L[na].x)
            na += 1
    if na == 0:
        return
    for i in range(na, (na + 7) & ~7):
        vx[i] = 0.0
    _ncdf_n(vx, e1, na)
    nb = 0
    for k in range(na):
        act[k] = k
        if _iv_setup1(&L[k], e1[k]):
            bp[nb] = k
            nb += 1
    if nb > 0:
        # the branch points, vectorised like the iteration's b (only the branch and the guess read them)
        _iv_gather(L, bp, nb, vx, vs, e1, e2, eh, tx, ts, tb, tv, True)
        for k in range(nb):
            Lp = &L[bp[k]]
            j = Lp.vj
            b = -1.0
            if Lp.vk == 1:
                A = Lp.bmax * e1[j]
                C = Lp.emx * e2[j]
                if A - C > IV_VEC_CANCEL * A:
                    b = 0.5 * (A - C)
            elif Lp.vk == 2 and tb[j] > 0.0 and tb[j] < INFINITY:
                b = tb[j]
            if b < 0.0:
                b = nb_otm(Lp.x, Lp.s)
            if Lp.beta < Lp.bc:
                Lp.bl = b
            else:
                Lp.bu = b
    for k in range(na):
        _iv_setup2(&L[k])
    while na > 0:
        _iv_gather(L, act, na, vx, vs, e1, e2, eh, tx, ts, tb, tv, False)
        nn = 0
        for k in range(na):
            lane = act[k]
            Lp = &L[lane]
            st = 2  # 2: no vector b (or one that cancelled): evaluate b with nb_otm_vega
            j = Lp.vj
            if Lp.vk == 1:
                Lp.nvec += 1
                A = Lp.bmax * e1[j]
                C = Lp.emx * e2[j]
                if A - C > IV_VEC_CANCEL * A:
                    st = _iv_step(Lp, 0.5 * (A - C), INV_SQRT2PI * eh[j], 0.0, IV_VEC_SIDE * A, &res)
            elif Lp.vk == 2:
                Lp.nvec += 1
                if tb[j] > 0.0 and tb[j] < INFINITY:
                    st = _iv_step(Lp, tb[j], tv[j], 0.0, IV_VEC_SIDE * tb[j], &res)
            if st == 2:
                Lp.nexact += 1
                if Lp.branch == 2:
                    vg = nb_vega(Lp.x, Lp.s)
                    c = nb_otm_complement(Lp.x, Lp.s)
                    b = Lp.bmax - c
                else:
                    b = nb_otm_vega(Lp.x, Lp.s, &vg)
                    c = 0.0
                st = _iv_step(Lp, b, vg, c, 0.0, &res)
                if st == 0 and Lp.nexact >= IV_MAX_ITER:
                    reason[Lp.idx] = R_NOCONV
                    res = NAN
                    st = 1
            if st == 1:
                out[Lp.idx] = res / Lp.sqT
            else:
                act[nn] = lane
                nn += 1
        na = nn


cdef double _iv1(double P, double S, double K, double T, double r, double q, bint call,
                 int* reason) noexcept nogil:
    """European implied vol of a BSM price; NaN plus reason outside the no-arbitrage bounds (one
    lane of _iv_lanes: the same result as in any batch)."""
    cdef unsigned char c = call
    cdef double res
    _iv_lanes(&P, &S, &K, &T, &r, &q, &c, 1, &res, reason)
    return res


cdef void _iv_run(const double* p0, Py_ssize_t s0, const double* p1, Py_ssize_t s1, const double* p2,
                  Py_ssize_t s2, const double* p3, Py_ssize_t s3, const double* p4, Py_ssize_t s4,
                  const double* p5, Py_ssize_t s5, const unsigned char* pc, Py_ssize_t sc,
                  Py_ssize_t start, Py_ssize_t end, double* o, signed char* rs) noexcept nogil:
    """European implied vols of rows [start, end) of strided inputs (price, S, K, T, r, q, call flag),
    IV_LANES at a time, into o and rs (contiguous)."""
    cdef double a0[IV_LANES]
    cdef double a1[IV_LANES]
    cdef double a2[IV_LANES]
    cdef double a3[IV_LANES]
    cdef double a4[IV_LANES]
    cdef double a5[IV_LANES]
    cdef unsigned char ac[IV_LANES]
    cdef double res[IV_LANES]
    cdef int rsn[IV_LANES]
    cdef Py_ssize_t i0, i
    cdef int k, m
    i0 = start
    while i0 < end:
        m = <int>min(<Py_ssize_t>IV_LANES, end - i0)
        for k in range(m):
            i = i0 + k
            a0[k] = p0[i * s0]
            a1[k] = p1[i * s1]
            a2[k] = p2[i * s2]
            a3[k] = p3[i * s3]
            a4[k] = p4[i * s4]
            a5[k] = p5[i * s5]
            ac[k] = pc[i * sc]
        _iv_lanes(a0, a1, a2, a3, a4, a5, ac, m, res, rsn)
        for k in range(m):
            o[i0 + k] = res[k]
            rs[i0 + k] = <signed char>rsn[k]
        i0 += m
