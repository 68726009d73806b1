# American options for core/options.pyx (included, not compiled alone): Bjerksund-Stensland
# 1993/2002, Barone-Adesi-Whaley, binomial trees, and the American implied vol (Brent, rows in
# lock step). Size: over 500 lines because the pricers and the IV solve's state machine share the
# pricing helpers and constants (AM_NOISE, the floors) and are read together.

# ------------------------------------------------------------------------------------------------
# American options
# ------------------------------------------------------------------------------------------------

cdef inline double _gbs_call(double S, double K, double T, double r, double b, double v) noexcept nogil:
    return _bs_price1(S, K, T, r, r - b, v, True)


cdef double GOLDEN = 0.6180339887498949  # t1 / T of the 2002 paper, (sqrt(5) - 1) / 2
cdef double SQRT_GOLDEN = 0.7861513777574233  # rho = sqrt(t1 / T) of its bivariate normals
# exp of the largest log-weight allowed on a bivariate normal in psi: Genz's bvn is accurate to ~1e-16
# absolutely (not relatively for rho < 0), so a weight e^16 ~ 9e6 keeps the error below ~1e-9.
cdef double PSI_MAX_LOG = 16.0


cdef inline double _expcdf(double p, double z) noexcept nogil:
    """exp(p) Phi(z) without overflow where p is large and Phi(z) tiny (log-space tail)."""
    if p < 700.0:
        return exp(p) * norm_cdf(z)
    if z < 0.0:
        return exp(p - 0.5 * z * z + log(0.5 * erfcx(-z * SQRT1_2)))
    return INFINITY


cdef void _bs_phi_n(double lnS, double T, const double* g, const double* lnH, const double* lnI, double r,
                    double b, double v, const double* lnref, double* out, int n) noexcept nogil:
    """Bjerksund-Stensland phi(S, T | g, H, I) / ref^g for n (<= 6) sets (g, H, I, ref) at one S and T:
    the value of S_T^g paid at T if S_T <= H and S stays below I until T (so H <= I), in log space;
    exp(lambda T) (S/ref)^g [Phi(d) - (I/S)^kappa Phi(d - 2 ln(I/S) / (v sqrt T))],
    d = -(ln(S/H) + (b + (g - 1/2) v^2) T) / (v sqrt T). The 2n normals and 2n exponentials go in two
    short vectorised calls (a weight exponent past 700 takes _expcdf's log-space tail instead)."""
    cdef double vsq = v * v, vst = v * sqrt(T)
    cdef double z[16]
    cdef double pz[16]
    cdef double x[16]
    cdef double ex[16]
    cdef double lis, kappa, d
    cdef int i
    cdef bint tail = False
    for i in range(2 * n, 16):  # padding of the vectorised calls
        z[i] = 0.0
        x[i] = 0.0
    for i in range(n):
        d = -((lnS - lnH[i]) + (b + (g[i] - 0.5) * vsq) * T) / vst
        kappa = 2.0 * b / vsq + (2.0 * g[i] - 1.0)
        lis = lnI[i] - lnS
        z[i] = d
        z[n + i] = d - 2.0 * lis / vst
        x[i] = (-r + g[i] * b + 0.5 * g[i] * (g[i] - 1.0) * vsq) * T + g[i] * (lnS - lnref[i])
        x[n + i] = kappa * lis
        tail = tail or x[n + i] >= 700.0
    _ncdf_n(z, pz, 2 * n)
    _exp_n(x, ex, 2 * n)
    for i in range(n):
        out[i] = ex[i] * (pz[i] - (ex[n + i] * pz[n + i] if not tail else _expcdf(x[n + i], z[n + i])))


cdef bint _gt_prep(double lnS, double T, double t1, double g, double lnI1, double lnI2, double r, double b,
                   double v, double lnref, int nh, double lnHa, double lnHb, double* z, double* ex,
                   double* e) noexcept nogil:
    """First half of one power g's terms: phi(S, t1 | g, I1, I2) and psi(S, T | g, H, I2, I1, t1) for
    H = lnHa (and lnHb when nh = 2), all divided by ref^g.

    psi is S_T^g paid at T if S_T <= H, S stays below I2 on [0, t1] and below I1 on [t1, T]
    (H <= I1 <= I2); the reflection principle in each period (measure with drift b + (g - 1/2) v^2)
    gives four bivariate normals with rho = +-sqrt(t1/T) (bvn_done). phi(t1 | g, I1, I2) uses the
    same two first-period normals, Phi(-e1) - (I2/S)^kappa Phi(-e2). Writes the 4 + 4 nh normal
    arguments to z, the 5 exponents to ex and e1..e4 to e; the caller evaluates every option's normals,
    exponentials and bivariate node sums in one vectorised call each and _gt_finish assembles.
    False (nothing usable) where a weight (I/S)^kappa exceeds e^PSI_MAX_LOG: Genz's bvn is accurate
    to ~1e-16 absolutely, not relatively for rho < 0, so such a term is not computable to 1e-9."""
    cdef double vsq = v * v, drift = b + (g - 0.5) * vsq
    cdef double kappa = 2.0 * b / vsq + (2.0 * g - 1.0)
    cdef double p2 = kappa * (lnI2 - lnS), p3 = kappa * (lnI1 - lnS), p4 = kappa * (lnI1 - lnI2)
    if fmax(p2, fmax(p3, p4)) > PSI_MAX_LOG:
        return False
    cdef double vs1 = v * sqrt(t1), vs2 = v * sqrt(T), dt1 = drift * t1, dT = drift * T
    cdef double lam = -r + g * b + 0.5 * g * (g - 1.0) * vsq
    cdef double l1 = lnS - lnI1  # ln(S / I1)
    cdef double l2 = 2.0 * lnI2 - lnS - lnI1  # ln(I2^2 / (S I1))
    cdef double sc = g * (lnS - lnref)
    cdef double lnH
    cdef int j
    e[0] = (l1 + dt1) / vs1
    e[1] = (l2 + dt1) / vs1
    e[2] = (l1 - dt1) / vs1
    e[3] = (l2 - dt1) / vs1
    z[0] = -e[0]
    z[1] = -e[1]
    z[2] = -e[2]
    z[3] = -e[3]
    for j in range(nh):
        lnH = lnHa if j == 0 else lnHb
        z[4 + 4 * j] = -(lnS - lnH + dT) / vs2
        z[5 + 4 * j] = -(2.0 * lnI2 - lnS - lnH + dT) / vs2
        z[6 + 4 * j] = -(2.0 * lnI1 - lnS - lnH + dT) / vs2
        z[7 + 4 * j] = -(lnS + 2.0 * (lnI1 - lnI2) - lnH + dT) / vs2
    ex[0] = p2
    ex[1] = p3
    ex[2] = p4
    ex[3] = lam * T + sc
    ex[4] = lam * t1 + sc
    return True


cdef inline void _gt_bvn_args(const double* z, const double* e, int nh, double* hk, double* hs) noexcept nogil:
    """The 4 nh bivariate-normal slots of one _gt_prep term (h = e_m, k = f_m = -z[4 + 4j + m])."""
    cdef int j, m
    for j in range(nh):
        for m in range(4):
            bvn_args(e[m], -z[4 + 4 * j + m], &hk[4 * j + m], &hs[4 * j + m])


cdef inline void _gt_finish(const double* z, const double* pz, const double* ew, const double* e,
                            const double* acc, int nh, double* phi12, double* psi) noexcept nogil:
    """Second half of _gt_prep: phi and psi from the normals pz = Phi(z), exponentials ew = exp(ex) and
    the node sums acc of its bivariate normals (slot 4j + m: +rho for m < 2, -rho otherwise)."""
    cdef double pe1 = pz[0], pe2 = pz[1], pe3 = pz[2], pe4 = pz[3]
    cdef double w2 = ew[0], w3 = ew[1], w4 = ew[2], pre = ew[3]
    cdef int j, o
    phi12[0] = ew[4] * (pe1 - w2 * pe2)
    for j in range(nh):
        o = 4 + 4 * j
        psi[j] = pre * (bvn_done(e[0], -z[o], pe1, pz[o], acc[4 * j])
                        - w2 * bvn_done(e[1], -z[o + 1], pe2, pz[o + 1], acc[4 * j + 1])
                        - w3 * bvn_done(e[2], -z[o + 2], pe3, pz[o + 2], acc[4 * j + 2])
                        + w4 * bvn_done(e[3], -z[o + 3], pe4, pz[o + 3], acc[4 * j + 3]))


cdef inline bint _bs_setup(double K, double r, double b, double v, double* beta, double* binf,
                           double* b0) noexcept nogil:
    """beta, B_inf = beta/(beta-1) K and B0 = max(K, rK/(r-b)); False where no premium is left."""
    cdef double vsq = v * v
    if b >= r:  # a call with q <= 0 is never exercised early
        return False
    beta[0] = (0.5 - b / vsq) + sqrt((b / vsq - 0.5) * (b / vsq - 0.5) + 2.0 * r / vsq)
    binf[0] = beta[0] / (beta[0] - 1.0) * K
    b0[0] = fmax(K, r / (r - b) * K)
    # r = 0 with b -> 0-: beta -> 1, B_inf -> inf, no early-exercise premium left
    return beta[0] > 1.0 + 1e-12 and binf[0] < INFINITY and binf[0] > b0[0]


cdef double _bs2002_call(double S, double K, double T, double r, double b, double v) noexcept nogil:
    """Bjerksund-Stensland (2002) two-step call (carry b < r): exact value of the policy "exercise
    when S reaches I2 before t1 = (sqrt5 - 1)/2 T, or I1 after t1", triggers from the paper's
    h(t) = -(b t + 2 v sqrt t) K^2 / ((B_inf - B0) B0), I(t) = B0 + (B_inf - B0)(1 - e^h(t))."""
    cdef double beta, binf, b0
    if not _bs_setup(K, r, b, v, &beta, &binf, &b0):
        return _gbs_call(S, K, T, r, b, v)
    cdef double t1 = GOLDEN * T
    cdef double c = K * K / ((binf - b0) * b0)
    cdef double i1 = b0 + (binf - b0) * (1.0 - exp(-(b * t1 + 2.0 * v * sqrt(t1)) * c))
    cdef double i2 = b0 + (binf - b0) * (1.0 - exp(-(b * T + 2.0 * v * sqrt(T)) * c))
    if S >= i2:
        return S - K
    cdef double lS = log(S), lK = log(K), l1 = log(i1), l2 = log(i2)
    cdef double pb, p1, p0
    cdef double sb[2]
    cdef double s1[2]
    cdef double s0[2]
    # the three powers' terms (slots: normals 0/8/20, exponents 0/5/10, bivariate normals 0/4/12)
    cdef double z[32]
    cdef double pz[32]
    cdef double ex[16]
    cdef double ew[16]
    cdef double e[12]
    cdef double hk[24]
    cdef double hs[24]
    cdef double acc[24]
    cdef int j
    if not (_gt_prep(lS, T, t1, beta, l1, l2, r, b, v, l1, 1, l1, l1, z, ex, e)
            and _gt_prep(lS, T, t1, 1.0, l1, l2, r, b, v, 0.0, 2, l1, lK, &z[8], &ex[5], &e[4])
            and _gt_prep(lS, T, t1, 0.0, l1, l2, r, b, v, 0.0, 2, l1, lK, &z[20], &ex[10], &e[8])):
        return NAN  # ill-conditioned (see _gt_prep): the caller keeps the 1993 policy
    ex[15] = 0.0  # padding of the vectorised call
    _ncdf_n(z, pz, 32)
    _exp_n(ex, ew, 15)
    _gt_bvn_args(z, e, 1, hk, hs)
    _gt_bvn_args(&z[8], &e[4], 2, &hk[4], &hs[4])
    _gt_bvn_args(&z[20], &e[8], 2, &hk[12], &hs[12])
    for j in range(20, 24):
        hk[j] = 0.0
        hs[j] = 0.0
    _bvn_batch(hk, hs, acc)
    _gt_finish(z, pz, ew, e, acc, 1, &pb, sb)
    _gt_finish(&z[8], &pz[8], &ew[5], &e[4], &acc[4], 2, &p1, s1)
    _gt_finish(&z[20], &pz[20], &ew[10], &e[8], &acc[12], 2, &p0, s0)
    cdef double pg[3]
    cdef double ph[3]
    cdef double pr_[3]
    cdef double po[3]
    pg[0] = beta
    pg[1] = 1.0
    pg[2] = 0.0
    ph[0] = l2
    ph[1] = l2
    ph[2] = l2
    pr_[0] = l2
    pr_[1] = 0.0
    pr_[2] = 0.0
    _bs_phi_n(lS, t1, pg, ph, ph, r, b, v, pr_, po, 3)
    return ((i2 - K) * exp(beta * (lS - l2)) - (i2 - K) * po[0]
            + po[1] - p1
            - K * po[2] + K * p0
            + (i1 - K) * pb - (i1 - K) * sb[0]
            + s1[0] - s1[1] - K * s0[0] + K * s0[1])


cdef double _bs1993_call(double S, double K, double T, double r, double b, double v) noexcept nogil:
    """Bjerksund-Stensland (1993) call: one flat trigger I(T), h = -(bT + 2 v sqrt T) B0 / (B_inf - B0)
    (the formula of QuantLib's BjerksundStenslandApproximationEngine), in log space."""
    cdef double beta, binf, b0
    if not _bs_setup(K, r, b, v, &beta, &binf, &b0):
        return _gbs_call(S, K, T, r, b, v)
    cdef double i = b0 + (binf - b0) * (1.0 - exp(-(b * T + 2.0 * v * sqrt(T)) * b0 / (binf - b0)))
    if S >= i:
        return S - K
    cdef double lS = log(S), lK = log(K), li = log(i)
    cdef double pg[5]
    cdef double ph[5]
    cdef double pi_[5]
    cdef double pr_[5]
    cdef double po[5]
    pg[0] = beta
    pg[1] = 1.0
    pg[2] = 1.0
    pg[3] = 0.0
    pg[4] = 0.0
    ph[0] = li
    ph[1] = li
    ph[2] = lK
    ph[3] = li
    ph[4] = lK
    pi_[0] = li
    pi_[1] = li
    pi_[2] = li
    pi_[3] = li
    pi_[4] = li
    pr_[0] = li
    pr_[1] = 0.0
    pr_[2] = 0.0
    pr_[3] = 0.0
    pr_[4] = 0.0
    _bs_phi_n(lS, T, pg, ph, pi_, r, b, v, pr_, po, 5)
    return ((i - K) * exp(beta * (lS - li)) - (i - K) * po[0]
            + po[1] - po[2]
            - K * po[3] + K * po[4])


cdef double _bs1993(double S, double K, double T, double r, double q, double v, bint call) noexcept nogil:
    if _bad(S, K, T, r, q, v):
        return NAN
    if call:
        return _bs1993_call(S, K, T, r, r - q, v)
    return _bs1993_call(K, S, T, q, q - r, v)


cdef double _bs2002(double S, double K, double T, double r, double q, double v, bint call) noexcept nogil:
    """Bjerksund-Stensland 2002: the better of two feasible exercise policies (each a lower bound).

    The two-step formula (``_bs2002_call``) values exactly the policy "exercise when S reaches I2
    before t1 or I1 after t1" (checked against a finite-difference valuation of that policy in the
    tests). The paper's trigger heuristic h(T) = -(bT + 2 sigma sqrt(T)) K^2 / ((B_inf - B0) B0)
    puts both triggers far too low when B0 = rK/(r - b) > K (calls with r > q, puts with q > r) and
    sigma^2 T is large, so that policy can be worth less than the 1993 single flat trigger (e.g.
    45.77 vs 46.45, true 46.72). Both are values of feasible policies, so their maximum is still a
    lower bound of the American price and never below BS1993.
    """
    if _bad(S, K, T, r, q, v):
        return NAN
    if call:
        return fmax(_bs2002_call(S, K, T, r, r - q, v), _bs1993_call(S, K, T, r, r - q, v))
    # Put-call transformation P(S, K, T, r, b) = C(K, S, T, r - b, -b).
    return fmax(_bs2002_call(K, S, T, q, q - r, v), _bs1993_call(K, S, T, q, q - r, v))


cdef double BAW_TOL = 1e-6
# closed forms' rounding noise relative to S + K (see _am_price1)
cdef double AM_NOISE = 1e-12


cdef double _baw(double S, double K, double T, double r, double q, double v, bint call) noexcept nogil:
    """Barone-Adesi-Whaley (1987): QuantLib's seed, Newton update and stopping rule (1e-6 on |LHS-RHS|/K)."""
    if _bad(S, K, T, r, q, v):
        return NAN
    cdef double dd = exp(-q * T), rd = exp(-r * T), var = v * v * T, sv = sqrt(var)
    cdef double n, m, bT, qu, su, hh, si, fwd, d1, kk, euro, Q, lhs, rhs, bi, a, n1, n2
    cdef int _it
    # no (or a vanishing, qT or rT below 1e-12) reason to exercise early: the seed and the critical
    # price iteration break down as the premium -> 0 (q = 2.2e-16 gave NaN), so return the European
    if call and q * T <= 1e-12:
        return _bs_price1(S, K, T, r, q, v, True)
    if not call and r * T <= 1e-12:
        return _bs_price1(S, K, T, r, q, v, False)
    n = 2.0 * log(dd / rd) / var
    m = -2.0 * log(rd) / var
    bT = log(dd / rd)
    if call:
        qu = (-(n - 1.0) + sqrt((n - 1.0) * (n - 1.0) + 4.0 * m)) / 2.0
        su = K / (1.0 - 1.0 / qu)
        hh = -(bT + 2.0 * sv) * K / (su - K)
        si = K + (su - K) * (1.0 - exp(hh))
        if not si > K:  # seed breaks down (e.g. r = 0 with a large yield): start from S_inf
            si = su if su > K else 2.0 * K
    else:
        qu = (-(n - 1.0) - sqrt((n - 1.0) * (n - 1.0) + 4.0 * m)) / 2.0
        su = K / (1.0 - 1.0 / qu)
        hh = (bT - 2.0 * sv) * K / (K - su)
        si = su + (K - su) * exp(hh)
        if not (si > 0.0 and si < K):
            si = su if (su > 0.0 and su < K) else 0.5 * K
    kk = -2.0 * log(rd) / (var * (1.0 - rd)) if fabs(1.0 - rd) > 2.3e-13 else 2.0 / var
    for _it in range(BAW_MAX_ITER):
        fwd = si * dd / rd
        d1 = (log(fwd / K) + 0.5 * var) / sv
        # the critical price is solved to 1e-6 of K: the plain Black formula (QuantLib's here too)
        # is exact enough, and shares N(d1) with rhs and bi
        n1 = norm_cdf(d1 if call else -d1)
        n2 = norm_cdf(d1 - sv if call else sv - d1)
        euro = (si * dd * n1 - K * rd * n2) if call else (K * rd * n2 - si * dd * n1)
        if call:
            Q = (-(n - 1.0) + sqrt((n - 1.0) * (n - 1.0) + 4.0 * kk)) / 2.0
            lhs = si - K
            rhs = euro + (1.0 - dd * n1) * si / Q
            bi = dd * n1 * (1.0 - 1.0 / Q) + (1.0 - dd * norm_pdf(d1) / sv) / Q
            if fabs(lhs - rhs) / K <= BAW_TOL:
                break
            si = (K + rhs - bi * si) / (1.0 - bi)
        else:
            Q = (-(n - 1.0) - sqrt((n - 1.0) * (n - 1.0) + 4.0 * kk)) / 2.0
            lhs = K - si
            rhs = euro - (1.0 - dd * n1) * si / Q
            bi = -dd * n1 * (1.0 - 1.0 / Q) - (1.0 + dd * norm_pdf(-d1) / sv) / Q
            if fabs(lhs - rhs) / K <= BAW_TOL:
                break
            si = (K - rhs + bi * si) / (1.0 + bi)
        if not (si > 0.0 and si < INFINITY):
            return NAN
    fwd = si * dd / rd
    d1 = (log(fwd / K) + 0.5 * var) / sv
    euro = _bs_price1(S, K, T, r, q, v, call)
    if call:
        Q = (-(n - 1.0) + sqrt((n - 1.0) * (n - 1.0) + 4.0 * kk)) / 2.0
        if S < si:
            a = (1.0 - dd * norm_cdf(d1)) * si / Q
            return euro + a * pow(S / si, Q)
        return S - K
    Q = (-(n - 1.0) - sqrt((n - 1.0) * (n - 1.0) + 4.0 * kk)) / 2.0
    if S > si:
        a = -(1.0 - dd * norm_cdf(-d1)) * si / Q
        return euro + a * pow(S / si, Q)
    return K - S


cdef inline double _pp2(double z, double n) noexcept nogil:
    """Peizer-Pratt inversion (method 2) used by Leisen-Reimer."""
    cdef double a = z / (n + 1.0 / 3.0 + 0.1 / (n + 1.0))
    cdef double res = 0.5 * sqrt(1.0 - exp(-a * a * (n + 1.0 / 6.0)))
    return 0.5 + res if z >= 0.0 else 0.5 - res


cdef inline double _div_pv(double t, double T, double r, const double* dt, const double* dd,
                           int nd) noexcept nogil:
    """Value at time t of the cash dividends paid in (t, T]."""
    cdef double pv = 0.0
    cdef int k
    for k in range(nd):
        if dt[k] > t and dt[k] <= T:
            pv += dd[k] * exp(-r * (dt[k] - t))
    return pv


cdef void _binomial(double S, double K, double T, double r, double q, double v, bint call, int steps,
                    bint lr, const double* dt, const double* dd, int nd, double* out) noexcept nogil:
    """American binomial tree (escrowed cash dividends). out = price, delta, gamma, theta."""
    cdef int i, j, n = steps
    cdef double h, growth, disc, u, d, p, ratio, s, sx, pvi, cont, ex, d1, d2, dS
    cdef double v0 = NAN, v10 = NAN, v11 = NAN, v20 = NAN, v21 = NAN, v22 = NAN
    cdef double s10 = NAN, s11 = NAN, s20 = NAN, s21 = NAN, s22 = NAN
    cdef double* V
    for i in range(4):
        out[i] = NAN
    if _bad(S, K, T, r, q, v) or n < 3:
        return
    sx = S - _div_pv(0.0, T, r, dt, dd, nd)
    if not sx > 0.0:
        return
    if lr and n % 2 == 0:
        n += 1
    h = T / n
    growth = exp((r - q) * h)
    disc = exp(-r * h)
    p = 0.0
    if lr:
        d1 = (log(sx / K) + (r - q + 0.5 * v * v) * T) / (v * sqrt(T))
        d2 = d1 - v * sqrt(T)
        p = _pp2(d2, n)
        u = growth * _pp2(d1, n) / p
        d = (growth - p * u) / (1.0 - p)
    if not lr or not (p > 0.0 and p < 1.0 and d > 0.0 and u > d):
        # CRR; Leisen-Reimer saturates (p -> 0 or 1) far from the money at tiny vol
        u = exp(v * sqrt(h))
        d = 1.0 / u
        p = (growth - d) / (u - d)
    if not (p > 0.0 and p < 1.0):
        # drift dominates the CRR spread: centre the lattice on the drift (p stays risk neutral)
        u = exp((r - q - 0.5 * v * v) * h + v * sqrt(h))
        d = exp((r - q - 0.5 * v * v) * h - v * sqrt(h))
        p = (growth - d) / (u - d)
    if not (p > 0.0 and p < 1.0 and d > 0.0):
        return
    V = <double*> malloc((n + 1) * sizeof(double))
    if V == NULL:
        return
    ratio = u / d
    s = sx * pow(d, n)
    for j in range(n + 1):
        V[j] = fmax(s - K, 0.0) if call else fmax(K - s, 0.0)
        s *= ratio
    for i in range(n - 1, -1, -1):
        pvi = _div_pv(i * h, T, r, dt, dd, nd) if nd > 0 else 0.0
        s = sx * pow(d, i)
        for j in range(i + 1):
            cont = disc * (p * V[j + 1] + (1.0 - p) * V[j])
            ex = (s + pvi - K) if call else (K - s - pvi)
            V[j] = cont if cont > ex else ex
            s *= ratio
        if i == 2:
            v20 = V[0]
            v21 = V[1]
            v22 = V[2]
            s20 = sx * d * d + pvi
            s21 = sx * d * u + pvi
            s22 = sx * u * u + pvi
        elif i == 1:
            v10 = V[0]
            v11 = V[1]
            s10 = sx * d + pvi
            s11 = sx * u + pvi
    v0 = V[0]
    free(V)
    out[0] = v0
    out[1] = (v11 - v10) / (s11 - s10)
    out[2] = ((v22 - v21) / (s22 - s21) - (v21 - v20) / (s21 - s20)) / (0.5 * (s22 - s20))
    dS = s21 - S
    out[3] = (v21 - v0 - out[1] * dS - 0.5 * out[2] * dS * dS) / (2.0 * h)


cdef double _am_price1(int method, double S, double K, double T, double r, double q, double v, bint call,
                       int steps, bint lr, const double* dt, const double* dd, int nd) noexcept nogil:
    cdef double o[4]
    cdef double a
    if _bad(S, K, T, r, q, v):
        return NAN
    if method == M_BINOMIAL:
        _binomial(S, K, T, r, q, v, call, steps, lr, dt, dd, nd, o)
        return o[0]
    if method == M_BS2002:
        return _bs2002_floored(S, K, T, r, q, v, call)
    elif method == M_BAW:
        a = _baw(S, K, T, r, q, v, call)
    else:
        a = _bs1993(S, K, T, r, q, v, call)
    return _am_floor(a, S, K, T, r, q, v, call)


cdef inline double _am_floor(double a, double S, double K, double T, double r, double q, double v,
                             bint call) noexcept nogil:
    """A closed-form American value a (NaN: none) held at its hard lower bounds."""
    cdef double lo
    if not a == a:
        return NAN
    # the approximations can dip below the European value or intrinsic (BS: value of one exercise
    # policy; BAW: critical price solved to 1e-6): both are hard lower bounds of the American price.
    lo = fmax(_bs_price1(S, K, T, r, q, v, call), fmax(S - K, 0.0) if call else fmax(K - S, 0.0))
    # The closed forms sum O(S + K) terms, so they carry ~1e-13 (S + K) of absolute rounding noise
    # (e.g. 2e-12 for a far-OTM call at sigma = 1e-4, whose value is 0): a premium below that
    # floor is noise, and the exact European value (relative accuracy) is returned instead.
    if a - lo <= AM_NOISE * (S + K):
        return lo
    return a


cdef inline double _bs2002_floored(double S, double K, double T, double r, double q, double v,
                                   bint call) noexcept nogil:
    """_am_floor(_bs2002(...)) (valid inputs). A call with q = 0 is never exercised early: there
    _bs2002 is the European value (both formulas' _gbs_call, _bs_price1 at q = r - r = 0) and
    _am_floor returns max(that value, intrinsic), so it is computed once here instead of three
    times, with the same bits."""
    if call and q == 0.0:
        return fmax(_bs_price1(S, K, T, r, q, v, True), fmax(S - K, 0.0))
    return _am_floor(_bs2002(S, K, T, r, q, v, call), S, K, T, r, q, v, call)


cdef double AM_SIG_LO = 1e-4
cdef double AM_SIG_HI = 10.0
# Brent's stopping width at sigma: tol1 = AM_TOL_REL |sigma| + AM_TOL_ABS
cdef double AM_TOL_REL = 4.0e-16
cdef double AM_TOL_ABS = 0.5e-14
# The probe from the European implied vol se: a Newton step on the early-exercise premium with the
# European vega, stretched by AM_PROBE_OVER (the step underestimates the distance to the root in about
# half the cases, by <= 2% in 75-95% of them) plus Brent's tol1, then secant steps, at most
# AM_PROBE_MAX probes before the full [AM_SIG_LO, se] bracket.
cdef double AM_PROBE_OVER = 1.02
cdef int AM_PROBE_MAX = 4
# Probe only where P exceeds the model's price at AM_SIG_LO for sure (_am_above_floor): there the
# rule "OUTSIDE_MODEL_RANGE where f(AM_SIG_LO) >= 0" cannot apply, so it need not be evaluated. The
# bound is the zero-vol American value V0 plus AM_FLOOR_W S max(1, e^{-qT}) AM_SIG_LO sqrt(T)
# (E sup |W_t| <= 2 sqrt(T), Doob; 1% for the higher orders) plus AM_PROBE_MIN (S + K) for the
# closed forms' noise at tiny sigma (up to ~2e-11 (S + K) measured: BS2002's bivariate normals at
# sigma = 1e-4, which can exceed P there while a larger sigma is below it). It bounds the true
# American price, so the BS1993/2002 lower bounds; for BAW and the trees it was checked on random
# contracts (no reason code changed on 200k BAW and 6k tree rows).
cdef double AM_FLOOR_W = 2.02
cdef double AM_PROBE_MIN = 1e-9


cdef inline bint _am_above_floor(double P, double S, double K, double T, double r, double q,
                                 bint call) noexcept nogil:
    """P above every American price at sigma <= AM_SIG_LO with a margin: the true American value
    there is at most V0 = max over t in [0, T] of +-(S e^{-qt} - K e^{-rt}) (exercise on the
    deterministic forward path; the maximum is at 0, T or the stationary point q S e^{-qt} =
    r K e^{-rt}) plus E sup_t e^{-rt}|S_t - S e^{(r-q)t}| <= S max(1, e^{-qT}) sigma 2 sqrt(T)."""
    cdef double th = 1.0 if call else -1.0
    cdef double v0 = fmax(th * (S - K), th * (S * exp(-q * T) - K * exp(-r * T)))
    cdef double ts
    if q != r and q * S > 0.0 and r * K > 0.0:
        ts = log(q * S / (r * K)) / (q - r)
        if ts > 0.0 and ts < T:
            v0 = fmax(v0, th * (S * exp(-q * ts) - K * exp(-r * ts)))
    return P - fmax(v0, 0.0) > (AM_FLOOR_W * S * fmax(1.0, exp(-q * T)) * AM_SIG_LO * sqrt(T)
                                + AM_PROBE_MIN * (S + K))


cdef inline double _am_f(double v, double P, double S, double K, double T, double r, double q, bint call,
                         int method, int steps, bint lr, const double* dt, const double* dd,
                         int nd) noexcept nogil:
    """The American IV objective: the model price at sigma v minus P."""
    return _am_price1(method, S, K, T, r, q, v, call, steps, lr, dt, dd, nd) - P


# The American IV solve runs rows in lock step (_am_iv_run): each row is a small state machine (_AmIv)
# that names the sigma it needs the model price at next (its stage says what for); every round, the
# pending rows' sigmas are priced in one call (_am_eval: BS2002 through the block pricer
# _bs2002_rows, whose value for a row depends on that row alone) and each row takes its step. The
# steps are those of the scalar solve of earlier versions, in the same order: the checks and the
# European IV se; f(se); _am_bracket's probes; the full bracket's ends; Brent.
cdef enum:
    AMI_DONE = 0  # answer in res, reason
    AMI_SE = 1  # waits for f(se)
    AMI_PROBE = 2  # a probe of the tight bracket
    AMI_HI = 3  # f(AM_SIG_HI), the full bracket's upper end
    AMI_LO = 4  # f(a), its lower end (moved up where the model gives no finite value)
    AMI_BRENT = 5  # f at Brent's next iterate
    AMI_GROUP = 256  # rows solved in lock step together (stack arrays of this size)
    AMI_BRENT_MAX = 300  # Brent iterations before NO_CONVERGENCE


cdef struct _AmIv:
    double P, S, K, T, r, q
    bint call
    int st  # AMI_*: what the price at x is for
    int reason
    int k  # probes made
    int it  # Brent iterations made
    bint zero  # a probe gave f = 0 exactly
    double x  # the sigma to price next
    double res
    double se  # the European IV (fs = f(se))
    double a, fa, b, fb, c, fc, d, e  # Brent's state (a, fa and b, fb also the brackets' ends)
    double x0, f0, fs, dirn, step  # the probes' state


cdef inline void _ami_done(_AmIv* L, double res, int reason) noexcept nogil:
    L.res = res
    L.reason = reason
    L.st = AMI_DONE


cdef void _ami_start(_AmIv* L, double se, int re) noexcept nogil:
    """Row L's checks; given its European IV se (reason re), its first sigma to price or its answer."""
    cdef double intrinsic
    L.st = AMI_DONE
    L.d = 0.0
    L.e = 0.0
    if _bad(L.S, L.K, L.T, L.r, L.q, 1.0) or not (L.P > 0.0 and L.P < INFINITY):
        _ami_done(L, NAN, R_INVALID)
        return
    intrinsic = fmax(L.S - L.K, 0.0) if L.call else fmax(L.K - L.S, 0.0)
    if L.P < intrinsic:
        _ami_done(L, NAN, R_BELOW)
        return
    if (L.call and L.P >= L.S) or (not L.call and L.P >= L.K):
        _ami_done(L, NAN, R_ABOVE)
        return
    if L.P - intrinsic <= AM_NOISE * (L.S + L.K):
        _ami_done(L, NAN, R_RANGE)  # at intrinsic: every sigma up to the exercise threshold gives this price
        return
    L.b = AM_SIG_HI
    L.fb = NAN
    L.a = AM_SIG_LO
    L.fa = NAN
    if re == R_OK and se > AM_SIG_LO and se < AM_SIG_HI:
        L.se = se
        L.x = se
        L.st = AMI_SE
        return
    _ami_full(L)


cdef void _ami_full(_AmIv* L) noexcept nogil:
    """No tight bracket: [AM_SIG_LO, b], b the lowest sigma found with f > 0, else AM_SIG_HI."""
    if not L.fb > 0.0:
        L.b = AM_SIG_HI
        L.x = AM_SIG_HI
        L.st = AMI_HI
        return
    L.a = AM_SIG_LO
    L.x = AM_SIG_LO
    L.st = AMI_LO


cdef void _ami_lo(_AmIv* L, double fa) noexcept nogil:
    """f at the full bracket's lower end a: move it up (BAW and the trees break down at tiny sigma),
    or check the bracket and start Brent."""
    L.fa = fa
    if not isfinite(fa) and L.a < 0.1:
        L.a *= 4.0
        L.x = L.a
        L.st = AMI_LO
        return
    if not (isfinite(fa) and isfinite(L.fb)):
        _ami_done(L, NAN, R_NOCONV)
        return
    if fa >= 0.0 or L.fb < 0.0:
        _ami_done(L, NAN, R_RANGE)
        return
    _ami_brent_start(L)


cdef inline void _ami_brent_start(_AmIv* L) noexcept nogil:
    L.c = L.b
    L.fc = L.fb
    L.it = 0
    _ami_brent(L)


cdef void _ami_brent(_AmIv* L) noexcept nogil:
    """One of Brent's iterations on [a, b] (fb just evaluated): the answer (b to tol1) or the next b."""
    cdef double tol1, xm, p, qq, rr, s, min1, min2
    if L.it >= AMI_BRENT_MAX:
        _ami_done(L, NAN, R_NOCONV)
        return
    if (L.fb > 0.0 and L.fc > 0.0) or (L.fb < 0.0 and L.fc < 0.0):
        L.c = L.a
        L.fc = L.fa
        L.d = L.b - L.a
        L.e = L.d
    if fabs(L.fc) < fabs(L.fb):
        L.a = L.b
        L.b = L.c
        L.c = L.a
        L.fa = L.fb
        L.fb = L.fc
        L.fc = L.fa
    tol1 = AM_TOL_REL * fabs(L.b) + AM_TOL_ABS
    xm = 0.5 * (L.c - L.b)
    if fabs(xm) <= tol1 or L.fb == 0.0:
        _ami_done(L, L.b, R_OK)
        return
    if fabs(L.e) >= tol1 and fabs(L.fa) > fabs(L.fb):
        s = L.fb / L.fa
        if L.a == L.c:
            p = 2.0 * xm * s
            qq = 1.0 - s
        else:
            qq = L.fa / L.fc
            rr = L.fb / L.fc
            p = s * (2.0 * xm * qq * (qq - rr) - (L.b - L.a) * (rr - 1.0))
            qq = (qq - 1.0) * (rr - 1.0) * (s - 1.0)
        if p > 0.0:
            qq = -qq
        p = fabs(p)
        min1 = 3.0 * xm * qq - fabs(tol1 * qq)
        min2 = fabs(L.e * qq)
        if 2.0 * p < fmin(min1, min2):
            L.e = L.d
            L.d = p / qq
        else:
            L.d = xm
            L.e = L.d
    else:
        L.d = xm
        L.e = L.d
    L.a = L.b
    L.fa = L.fb
    L.b = L.b + L.d if fabs(L.d) > tol1 else L.b + (tol1 if xm > 0.0 else -tol1)
    L.it += 1
    L.x = L.b
    L.st = AMI_BRENT


cdef void _ami_se(_AmIv* L, double fs) noexcept nogil:
    """f(se) = the model's early-exercise premium at the European IV, less the quote's rounding: 0 is
    the answer; > 0 makes se the upper end; then the probes where the quote is surely above the
    model's range at AM_SIG_LO (_am_above_floor), else the full bracket."""
    cdef double vs, d1, vg
    L.fb = fs
    if fs == 0.0:
        _ami_done(L, L.se, R_OK)
        return
    if fs > 0.0:
        L.b = L.se
    if not (isfinite(fs) and _am_above_floor(L.P, L.S, L.K, L.T, L.r, L.q, L.call)):
        _ami_full(L)
        return
    # _am_bracket: a Newton step with the European vega, stretched AM_PROBE_OVER plus tol1
    L.fs = fs
    L.dirn = -1.0 if fs > 0.0 else 1.0  # the direction of the root from se
    L.x0 = L.se
    L.f0 = fs
    L.zero = False
    L.k = 0
    vs = L.se * sqrt(L.T)
    d1 = (_log_ratio(L.S, L.K) + (L.r - L.q) * L.T) / vs + 0.5 * vs
    vg = L.S * exp(-L.q * L.T) * norm_pdf(d1) * sqrt(L.T)
    L.step = AM_PROBE_OVER * fabs(fs) / vg + (AM_TOL_REL * L.se + AM_TOL_ABS)
    _ami_probe_next(L)


cdef void _ami_probe_next(_AmIv* L) noexcept nogil:
    """The next probe x0 + dirn step, or the full bracket after AM_PROBE_MAX of them or outside
    (AM_SIG_LO, AM_SIG_HI) (also a NaN step: vega 0)."""
    cdef double x
    if L.k >= AM_PROBE_MAX:
        _ami_full(L)
        return
    x = L.x0 + L.dirn * L.step
    if not (x > AM_SIG_LO and x < AM_SIG_HI):
        _ami_full(L)
        return
    L.x = x
    L.st = AMI_PROBE


cdef void _ami_probe(_AmIv* L, double fx) noexcept nogil:
    """A probe's f: crossed (a tight bracket: Brent), or on se's side (the new end where f > 0; a
    secant step through the last two probes where it heads on, else double the step), or an exact
    zero (tried once more 2 tol1 past it; zero again: flat, the full bracket), or not finite."""
    cdef double x = L.x, tol1
    L.k += 1
    if not isfinite(fx):
        _ami_full(L)
        return
    tol1 = AM_TOL_REL * x + AM_TOL_ABS
    if fx == 0.0:
        if L.zero:
            _ami_full(L)  # flat: the full bracket decides (OUTSIDE_MODEL_RANGE if f(1e-4) = 0)
            return
        L.zero = True
        L.x0 = x
        L.f0 = fx
        L.step = 2.0 * tol1
        _ami_probe_next(L)
        return
    if (fx > 0.0) == (L.fs > 0.0):
        if L.zero:
            _ami_full(L)  # noise around the zero: the full bracket
            return
        if L.fs > 0.0:
            L.b = x
            L.fb = fx
        if fabs(fx) < fabs(L.f0):
            L.step = AM_PROBE_OVER * fabs(x - L.x0) * fabs(fx) / (fabs(L.f0) - fabs(fx)) + tol1
        else:
            L.step = 2.0 * L.step
        L.x0 = x
        L.f0 = fx
        _ami_probe_next(L)
        return
    # crossed: [x, x0] brackets the root
    if fx < 0.0:
        L.a = x
        L.fa = fx
        L.b = L.x0
        L.fb = L.f0
    else:
        L.a = L.x0
        L.fa = L.f0
        L.b = x
        L.fb = fx
    _ami_brent_start(L)


cdef inline void _ami_step(_AmIv* L, double fx) noexcept nogil:
    """Row L's step with f = model price at L.x minus the quote."""
    if L.st == AMI_SE:
        _ami_se(L, fx)
    elif L.st == AMI_PROBE:
        _ami_probe(L, fx)
    elif L.st == AMI_HI:
        L.fb = fx
        L.a = AM_SIG_LO
        L.x = AM_SIG_LO
        L.st = AMI_LO
    elif L.st == AMI_LO:
        _ami_lo(L, fx)
    elif L.st == AMI_BRENT:
        L.fb = fx
        _ami_brent(L)


cdef void _am_iv_run(const double* p0, Py_ssize_t s0, const double* p1, Py_ssize_t s1, const double* p2,
                     Py_ssize_t s2, const double* p3, Py_ssize_t s3, const double* p4, Py_ssize_t s4,
                     const double* p5, Py_ssize_t s5, const unsigned char* pc, Py_ssize_t sc,
                     Py_ssize_t start, Py_ssize_t end, int method, int steps, bint lr, const double* dt,
                     const double* dd, int nd, double* o, signed char* rs) noexcept nogil:
    """American implied vols of rows [start, end) of strided inputs (price, S, K, T, r, q, call flag)
    by Brent's method on the chosen American pricer, sigma in [1e-4, 10], into o and rs (contiguous),
    AMI_GROUP rows in lock step at a time.

    The European implied vol se of P, where it exists, is an upper bracket (American >= European at
    every sigma) and is the answer when the model's early-exercise premium there is nil (most OTM
    contracts: one American evaluation). Otherwise the probes from se towards the root (a Newton
    step with the European vega, then secant steps) find a tight bracket, usually in one evaluation,
    and Brent finishes inside it; where that fails, Brent runs on [1e-4, the lowest upper end found].
    A price the model already reaches at sigma = 1e-4 (at intrinsic: flat in sigma, no information)
    gives OUTSIDE_MODEL_RANGE. The answer is a sign change of f to Brent's tol1.

    Every round prices the pending rows' sigmas in one call: BS2002 through _bs2002_rows (the block
    pricer, one vector lane per row, even for one row: a row's value, hence its answer, depends on
    that row alone, never on the batch), the other methods one row at a time (_am_price1). The
    European IVs come from _iv_lanes (also batch independent)."""
    cdef _AmIv L[AMI_GROUP]
    cdef double eP[AMI_GROUP]
    cdef double eS[AMI_GROUP]
    cdef double eK[AMI_GROUP]
    cdef double eT[AMI_GROUP]
    cdef double er[AMI_GROUP]
    cdef double eq[AMI_GROUP]
    cdef double ex[AMI_GROUP]
    cdef double ev[AMI_GROUP]
    cdef unsigned char ec[AMI_GROUP]
    cdef int ers[AMI_GROUP]
    cdef int act[AMI_GROUP]
    cdef Py_ssize_t i0, i
    cdef int k, m, na, nn
    cdef _AmIv* Lk
    i0 = start
    while i0 < end:
        m = <int>min(<Py_ssize_t>AMI_GROUP, end - i0)
        for k in range(m):
            i = i0 + k
            eP[k] = p0[i * s0]
            eS[k] = p1[i * s1]
            eK[k] = p2[i * s2]
            eT[k] = p3[i * s3]
            er[k] = p4[i * s4]
            eq[k] = p5[i * s5]
            ec[k] = pc[i * sc]
        # the European IVs: IV_LANES rows per _iv_lanes call
        k = 0
        while k < m:
            nn = min(<int>IV_LANES, m - k)
            _iv_lanes(&eP[k], &eS[k], &eK[k], &eT[k], &er[k], &eq[k], &ec[k], nn, &ex[k], &ers[k])
            k += nn
        na = 0
        for k in range(m):
            Lk = &L[k]
            Lk.P = eP[k]
            Lk.S = eS[k]
            Lk.K = eK[k]
            Lk.T = eT[k]
            Lk.r = er[k]
            Lk.q = eq[k]
            Lk.call = ec[k] != 0
            _ami_start(Lk, ex[k], ers[k])
            if Lk.st != AMI_DONE:
                act[na] = k
                na += 1
        while na > 0:
            if method == M_BS2002:
                for k in range(na):
                    Lk = &L[act[k]]
                    eS[k] = Lk.S
                    eK[k] = Lk.K
                    eT[k] = Lk.T
                    er[k] = Lk.r
                    eq[k] = Lk.q
                    ex[k] = Lk.x
                    ec[k] = Lk.call
                _bs2002_rows(na, eS, eK, eT, er, eq, ex, ec, ev)
            else:
                for k in range(na):
                    Lk = &L[act[k]]
                    ev[k] = _am_price1(method, Lk.S, Lk.K, Lk.T, Lk.r, Lk.q, Lk.x, Lk.call, steps, lr, dt, dd, nd)
            nn = 0
            for k in range(na):
                Lk = &L[act[k]]
                _ami_step(Lk, ev[k] - Lk.P)
                if Lk.st != AMI_DONE:
                    act[nn] = act[k]
                    nn += 1
            na = nn
        for k in range(m):
            o[i0 + k] = L[k].res
            rs[i0 + k] = <signed char>L[k].reason
        i0 += m
