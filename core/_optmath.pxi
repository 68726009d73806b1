# Scalar maths for core/options.pyx (included, not compiled alone): normal distribution helpers,
# erfcx, Jäckel's normalised Black function and its branch expansions, Genz's bivariate normal.
# Everything here is noexcept nogil and allocation free.

cdef extern from *:
    """
    #include <math.h>
    #include <stdlib.h>
    #include <string.h>
    #if defined(AIOTS_HAVE_MVEC) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    #define AIOTS_VMATH 1
    /* Same symbols as libm's exp/log/erfc, declared with GCC's simd attribute: inside an `omp simd`
     * loop the vectoriser calls the libmvec variants (_ZGVdN4v_exp ...); scalar code elsewhere in
     * this file keeps calling the correctly rounded scalar functions. */
    double aiots_vexp(double) __asm__("exp") __attribute__((simd("notinbranch"), const, nothrow));
    double aiots_vlog(double) __asm__("log") __attribute__((simd("notinbranch"), const, nothrow));
    double aiots_verfc(double) __asm__("erfc") __attribute__((simd("notinbranch"), const, nothrow));
    #define AIOTS_OMP_SIMD _Pragma("omp simd")
    #define AIOTS_OMP_SIMD_RED _Pragma("omp simd reduction(+:acc)")
    #else
    #define AIOTS_VMATH 0
    #define aiots_vexp exp
    #define aiots_vlog log
    #define aiots_verfc erfc
    #define AIOTS_OMP_SIMD
    #define AIOTS_OMP_SIMD_RED
    #endif

    /* The bivariate normals of one BS2002 option (<= 20, padded to AIOTS_BVN_J) in one pass: for each
     * Gauss-Legendre node i, a vectorised exp over all of them. Slot j uses the +rho nodes where
     * (j >> 1) & 1 == 0 and the -rho ones otherwise (the order of the four normals of each psi term).
     * Exponents are clamped at -700 (exp < 1e-304: an absolute error far below the 1e-15 of the rule)
     * so libmvec never takes its slow underflow path. */
    #define AIOTS_BVN_J 24
    static double aiots_bvn_w[12][AIOTS_BVN_J], aiots_bvn_a[12][AIOTS_BVN_J], aiots_bvn_b[12][AIOTS_BVN_J];
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_bvn_batch(const double* hk, const double* hs, double* acc) {
        int i, j;
        double x;
        for (j = 0; j < AIOTS_BVN_J; j++) acc[j] = 0.0;
        for (i = 0; i < 12; i++) {
            AIOTS_OMP_SIMD
            for (j = 0; j < AIOTS_BVN_J; j++) {
                x = aiots_bvn_a[i][j] * hk[j] - aiots_bvn_b[i][j] * hs[j];
                acc[j] += aiots_bvn_w[i][j] * aiots_vexp(x > -700.0 ? x : -700.0);
            }
        }
    }

    /* Phi(x_i) and exp(x_i) over short arrays (the normals and weights of one BS2002 term). The loop
     * runs over n rounded up to a multiple of 8, so no element takes a scalar remainder path (a
     * scalar libm exp/erfc costs 4-7 vector lanes): the caller's arrays hold that many elements and
     * the padding of x is initialised (0.0). */
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_ncdf_n(const double* x, double* out, int n) {
        int i, m = (n + 7) & ~7;
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) out[i] = 0.5 * aiots_verfc(-x[i] * 0.7071067811865476);
    }
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_exp_n(const double* x, double* out, int n) {
        int i, m = (n + 7) & ~7;
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) out[i] = aiots_vexp(x[i]);
    }

    /* The middle-region pieces of the normalised Black function at n (x, s) pairs, for the implied-vol
     * lanes (core/_opt_iv.pxi): e1 = erfc(-(h+t)/sqrt2), e2 = erfc(-(h-t)/sqrt2) and
     * eh = exp(-(h^2+t^2)/2), h = x/s, t = s/2. Run over n rounded up to a multiple of 8 (the padding
     * of x and s initialised by the caller), so every element takes the same vector path and a
     * lane's values do not depend on its position or on the batch size. */
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_nb_mid_n(const double* x, const double* s, double* e1, double* e2, double* eh, int n) {
        int i, m = (n + 7) & ~7;
        double h, t;
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            h = x[i] / s[i];
            t = 0.5 * s[i];
            e1[i] = aiots_verfc(-0.7071067811865476 * (h + t));
            e2[i] = aiots_verfc(-0.7071067811865476 * (h - t));
            eh[i] = aiots_vexp(-0.5 * (h * h + t * t));
        }
    }

    /* The small-t expansion of the normalised Black function (nb_small_t: all terms positive, no
     * cancellation) and its vega at n (x, s) pairs with x < 0, s/2 < 0.21, x/s >= -10, as in
     * aiots_nb_mid_n (padded, elementwise): b[i], vg[i]. erfcx(y) = erfc(y) exp(y^2) with the exp
     * split on a 1/128 grid (expx2); seven odd terms (nb_small_t stops once a term is below 1e-17 of
     * the sum; the rest adds below 1e-18). */
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_nb_smallt_n(const double* x, const double* s, double* b, double* vg, int n) {
        int i, j, m = (n + 7) & ~7;
        double h, t, y, g, f, y0, yk, ym1, ye, tk, t2, total, eh;
        static const double inv_odd_fact[8] = {1.0, 1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0, 1.0 / 362880.0,
            1.0 / 39916800.0, 1.0 / 6227020800.0, 1.0 / 1307674368000.0};
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            h = x[i] / s[i];
            t = 0.5 * s[i];
            y = -h * 0.7071067811865476;
            g = floor(y * 128.0 + 0.5) / 128.0;
            f = y - g;
            y0 = 1.2533141373155003 * (aiots_verfc(y) * (aiots_vexp(g * g) * aiots_vexp(2.0 * g * f + f * f)));
            yk = 1.0 + h * y0;
            ym1 = y0;
            tk = t;
            t2 = t * t;
            total = t * yk;
            for (j = 1; j < 8; j++) {
                ye = h * yk + (2 * j - 1) * ym1;
                ym1 = ye;
                yk = h * ye + (2 * j) * yk;
                tk *= t2;
                total += yk * tk * inv_odd_fact[j];
            }
            eh = aiots_vexp(-0.5 * (h * h + t * t));
            vg[i] = 0.3989422804014327 * eh;
            b[i] = 2.0 * 0.3989422804014327 * eh * total;
        }
    }
    """
    void _ncdf_n "aiots_ncdf_n"(const double* x, double* out, int n) noexcept nogil
    void _nb_mid_n "aiots_nb_mid_n"(const double* x, const double* s, double* e1, double* e2, double* eh,
                                    int n) noexcept nogil
    void _nb_smallt_n "aiots_nb_smallt_n"(const double* x, const double* s, double* b, double* vg, int n) noexcept nogil
    void _exp_n "aiots_exp_n"(const double* x, double* out, int n) noexcept nogil
    void _bvn_batch "aiots_bvn_batch"(const double* hk, const double* hs, double* acc) noexcept nogil
    double BVN_W "aiots_bvn_w"[12][24]
    double BVN_A "aiots_bvn_a"[12][24]
    double BVN_B "aiots_bvn_b"[12][24]

cdef extern from *:
    """
    #define AIOTS_SQRT2PI 2.5066282746310002
    #define AIOTS_1_SQRT2PI 0.3989422804014327
    #define AIOTS_SQRT1_2 0.7071067811865476
    #define AIOTS_SQRT_PI_2 1.2533141373155003
    """
    double SQRT2PI "AIOTS_SQRT2PI"
    double INV_SQRT2PI "AIOTS_1_SQRT2PI"
    double SQRT1_2 "AIOTS_SQRT1_2"
    double SQRT_PI_2 "AIOTS_SQRT_PI_2"

# Branch thresholds of the normalised Black function (h = x/s, t = s/2), chosen from Jäckel (2015).
cdef double ASYMPTOTIC_H = -10.0
cdef double SMALL_T = 0.21
cdef double NORM_CDF_H_PLUS_T = 0.85

cdef inline double norm_cdf(double z) noexcept nogil:
    """Phi(z) = erfc(-z/sqrt2)/2, relative accuracy a few ulp in both tails."""
    return 0.5 * erfc(-z * SQRT1_2)


cdef inline double norm_pdf(double z) noexcept nogil:
    return INV_SQRT2PI * exp(-0.5 * z * z)


include "_erfcx.pxi"


cdef inline double _norm_ppf1(double p) noexcept nogil:
    """Inverse normal CDF: Acklam's rational start plus two Halley steps on erfc (full precision)."""
    cdef double q, r, x, e, u
    if not (p > 0.0 and p < 1.0):
        if p == 0.0:
            return -INFINITY
        if p == 1.0:
            return INFINITY
        return NAN
    if p < 0.02425:
        q = sqrt(-2.0 * log(p))
        x = ((((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
             / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                 + 3.754408661907416e+00) * q + 1.0))
    elif p > 1.0 - 0.02425:
        q = sqrt(-2.0 * log1p(-p))
        x = -((((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                 - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
              / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                  + 3.754408661907416e+00) * q + 1.0))
    else:
        q = p - 0.5
        r = q * q
        x = ((((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q
             / (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
                  + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0))
    for _ in range(2):
        if x < 0.0:
            e = norm_cdf(x) - p
        else:
            e = (1.0 - p) - norm_cdf(-x)
        u = e * SQRT2PI * exp(0.5 * x * x)
        x = x - u / (1.0 + 0.5 * x * u)
    return x


# ---------------------------------------------------------------------------------------------
# Normalised Black (Jäckel 2015): b(x, s) = e^{x/2} Phi(x/s + s/2) - e^{-x/2} Phi(x/s - s/2)
# for an out-of-the-money call (x = ln(F/K) <= 0), s = sigma sqrt(T). Four evaluation branches
# keep the relative accuracy near machine precision everywhere.
# ---------------------------------------------------------------------------------------------

cdef inline double nb_asymptotic(double h, double t, double eh) noexcept nogil:
    """h << 0: b = E [Y(h+t) - Y(h-t)] with Y = Phi/phi expanded asymptotically, differences exact.
    eh = exp(-(h^2 + t^2)/2) (the caller's, shared with the vega)."""
    cdef double r = (h + t) * (h - t)
    cdef double e = eh * INV_SQRT2PI
    cdef double tau = (t * t) / (h * h)
    cdef double g = (h * h) / (r * r)
    cdef double total = 0.0, term, prev = INFINITY, sn, c, gpow = 1.0, dfact = 1.0, tj
    cdef int n, j, m
    for n in range(60):
        m = 2 * n + 1
        # S_n = sum_j C(m, 2j+1) tau^j
        c = m
        sn = c
        tj = 1.0
        for j in range(1, n + 1):
            c = c * (m - 2 * j + 1) * (m - 2 * j) / ((2 * j) * (2 * j + 1.0))
            tj *= tau
            sn += c * tj
        term = dfact * gpow * sn
        if fabs(term) > prev:
            break
        if n % 2 == 0:
            total += term
        else:
            total -= term
        if fabs(term) <= 1e-17 * fabs(total):
            break
        prev = fabs(term)
        gpow *= g
        dfact *= m
    return 2.0 * e * (t / r) * total


cdef double INV_ODD_FACT[9]
INV_ODD_FACT[:] = [1.0 / math.factorial(2 * i + 1) for i in range(9)]


cdef inline double nb_small_t(double h, double t, double eh) noexcept nogil:
    """t < 0.21: b = 2E sum_{k odd} Y^(k)(h) t^k/k!, Y' = 1 + hY, Y^(n+1) = hY^(n) + nY^(n-1).

    Y^(k)(h) = int_0^inf u^k exp(hu - u^2/2) du > 0, so every term is positive and, for t < 0.21,
    each is below ~t^2/4 of the one before: the sum stops once a term is below 1e-17 of it (the
    rest is below 1e-18), at most 7 terms (14 derivatives). eh = exp(-(h^2 + t^2)/2)."""
    cdef double y0 = SQRT_PI_2 * erfcx(-h * SQRT1_2)
    cdef double y1 = 1.0 + h * y0
    cdef double ym1 = y0, yk = y1, ye, tk = t, t2 = t * t, total = t * y1, term
    cdef int j
    for j in range(1, 8):
        ye = h * yk + (2 * j - 1) * ym1  # Y^(2j)
        ym1 = h * ye + (2 * j) * yk  # Y^(2j+1): add Y^(2j+1) t^(2j+1) / (2j+1)!
        yk = ym1
        ym1 = ye
        tk *= t2
        term = yk * tk * INV_ODD_FACT[j]
        total += term
        if term <= 1e-17 * total:
            break
    return 2.0 * INV_SQRT2PI * eh * total


cdef inline double nb_otm_ladder(double x, double s, double h, double t, double eh) noexcept nogil:
    """The branches of b(x, s) for x <= 0, s > 0, h = x/s, t = s/2. eh = exp(-(h^2 + t^2)/2)
    where the caller has it, NaN where not: then it is computed only in the branches that use it
    (the same expression, so the bits do not depend on who computed it)."""
    cdef double b
    if x == 0.0:
        return erf(0.25 * s * 1.4142135623730951)
    if h < ASYMPTOTIC_H and h + t < ASYMPTOTIC_H + SMALL_T:
        b = nb_asymptotic(h, t, eh if eh == eh else exp(-0.5 * (h * h + t * t)))
    elif t < SMALL_T:
        b = nb_small_t(h, t, eh if eh == eh else exp(-0.5 * (h * h + t * t)))
    elif h + t > NORM_CDF_H_PLUS_T:
        b = exp(0.5 * x) * norm_cdf(h + t) - exp(-0.5 * x) * norm_cdf(h - t)
    else:
        b = 0.5 * (eh if eh == eh else exp(-0.5 * (h * h + t * t))) * (
            erfcx(-SQRT1_2 * (h + t)) - erfcx(-SQRT1_2 * (h - t))
        )
    return b if b > 0.0 else 0.0


cdef inline double nb_otm(double x, double s) noexcept nogil:
    """Normalised OTM call b(x, s) for x <= 0, s > 0."""
    if s <= 0.0:
        return 0.0
    return nb_otm_ladder(x, s, x / s, 0.5 * s, NAN)


cdef inline double nb_otm_vega(double x, double s, double* vega) noexcept nogil:
    """nb_otm(x, s), with nb_vega(x, s) in vega[0], bit for bit both: the one
    exp(-(h^2 + t^2)/2) of the vega serves the asymptotic, small-t and middle branches too (the
    implied-vol iteration needs both at every step)."""
    cdef double h = x / s, t = 0.5 * s
    cdef double eh = exp(-0.5 * (h * h + t * t))
    vega[0] = INV_SQRT2PI * eh
    if s <= 0.0:
        return 0.0
    return nb_otm_ladder(x, s, h, t, eh)


cdef inline double nb_otm_complement(double x, double s) noexcept nogil:
    """e^{x/2} - b(x, s) for x <= 0 as a sum of positive terms (no cancellation)."""
    cdef double h = x / s, t = 0.5 * s
    return exp(0.5 * x) * norm_cdf(-h - t) + exp(-0.5 * x) * norm_cdf(h - t)


cdef inline double nb_vega(double x, double s) noexcept nogil:
    """db/ds = exp(-(x^2/s^2 + s^2/4)/2)/sqrt(2 pi)."""
    cdef double h = x / s, t = 0.5 * s
    return INV_SQRT2PI * exp(-0.5 * (h * h + t * t))


cdef inline double normalised_black(double x, double s, bint is_call) noexcept nogil:
    """Normalised Black price for either right: reduce to OTM call plus normalised intrinsic."""
    if not is_call:
        x = -x
    if x > 0.0:
        return 2.0 * sinh(0.5 * x) + nb_otm(-x, s)
    return nb_otm(x, s)


# ---------------------------------------------------------------------------------------------
# Bivariate normal at the one correlation Bjerksund-Stensland 2002 needs, rho = +-sqrt(t1/T) =
# +-sqrt((sqrt5 - 1)/2) = +-0.78615: Genz (2004) "Numerical computation of rectangular bivariate
# and trivariate normal and t probabilities", |rho| < 0.925 branch (Drezner-Wesolowsky),
#   P(X > h, Y > k) = Phi(-h) Phi(-k) + 1/(2 pi) int_0^asin(rho) exp(-(h^2 + k^2 - 2hk sin t) / (2 cos^2 t)) dt,
# with the nodes fixed at import: w_i asin(rho)/(4 pi), sin t_i/cos^2 t_i and 1/cos^2 t_i, so one
# evaluation is 12 exp and two erfc. A 12-point Gauss-Legendre rule is exact to 1.3e-15 absolute
# at this rho over h, k in [-8, 8] (Genz's 20 points: 1.1e-16; 10 points: 2e-13). The (up to 20)
# bivariate normals of one option are evaluated together: bvn_args per slot, one _bvn_batch call
# (per node, a vectorised exp over all slots), bvn_done per slot.
# ---------------------------------------------------------------------------------------------

cdef enum:
    BVG_N = 12
cdef double BVG_W[2][BVG_N]
cdef double BVG_A[2][BVG_N]
cdef double BVG_B[2][BVG_N]


def _bvg_init():
    import numpy as _np
    x, w = _np.polynomial.legendre.leggauss(BVG_N)
    rho0 = math.sqrt(0.5 * (math.sqrt(5.0) - 1.0))
    for j, rho in enumerate((rho0, -rho0)):
        asr = math.asin(rho)
        for i in range(BVG_N):
            sn = math.sin(asr * (x[i] + 1.0) * 0.5)
            BVG_W[j][i] = w[i] * asr / (4.0 * math.pi)
            BVG_A[j][i] = sn / (1.0 - sn * sn)
            BVG_B[j][i] = 1.0 / (1.0 - sn * sn)
    for i in range(BVG_N):
        for j in range(24):
            neg = (j >> 1) & 1
            BVN_W[i][j] = BVG_W[neg][i]
            BVN_A[i][j] = BVG_A[neg][i]
            BVN_B[i][j] = BVG_B[neg][i]


_bvg_init()

# |h| beyond which Phi(-|h|) < 1e-21: the bivariate term is 0 or a univariate one to that accuracy
cdef double BVG_TAIL = 9.5


cdef inline void bvn_args(double h, double k, double* hk, double* hs) noexcept nogil:
    """Arguments of slot (h, k) of _bvn_batch; zeros where bvn_done answers from the tails alone."""
    if fabs(h) > BVG_TAIL or fabs(k) > BVG_TAIL or not (h == h and k == k):
        hk[0] = 0.0
        hs[0] = 0.0
    else:
        hk[0] = h * k
        hs[0] = 0.5 * (h * h + k * k)


cdef inline double bvn_done(double h, double k, double ph, double pk, double acc) noexcept nogil:
    """P(X > h, Y > k) at the slot's correlation from its node sum acc (_bvn_batch) and ph = Phi(-h),
    pk = Phi(-k); beyond BVG_TAIL from the univariate tails alone."""
    if h > BVG_TAIL or k > BVG_TAIL:
        return 0.0
    if h < -BVG_TAIL:
        return pk
    if k < -BVG_TAIL:
        return ph
    if not (h == h and k == k):
        return NAN
    acc += ph * pk
    return acc if acc > 0.0 else 0.0
