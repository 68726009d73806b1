# European Black-Scholes-Merton kernels for core/options.pyx (included, not compiled alone): the
# scalar price, the closed-form Greeks and the fused price + Greeks pass. Everything here is
# noexcept nogil and allocation free.

# ------------------------------------------------------------------------------------------------
# European scalar kernels
# ------------------------------------------------------------------------------------------------

cdef inline bint _bad(double S, double K, double T, double r, double q, double v) noexcept nogil:
    return not (S > 0.0 and S < INFINITY and K > 0.0 and K < INFINITY and T > 0.0 and T < INFINITY
                and v > 0.0 and v < INFINITY and isfinite(r) and isfinite(q))


cdef inline double _log_ratio(double S, double K) noexcept nogil:
    """ln(S/K) to about an ulp of itself. log(S/K) carries the rounding of S/K, ~1e-16 absolute,
    which is ~5e-15 relative to a log-moneyness of 0.02: deep in the money and short dated that is
    tens of ulp of the price and of the normalised time value it leaves (the IV round trip against
    mpmath prices lost 3e-12). Where S/K is in [0.5, 2], S - K is exact (Sterbenz) and log1p of
    (S - K)/K has the division's half ulp only."""
    if S >= 0.5 * K and S <= 2.0 * K:
        return log1p((S - K) / K)
    return log(S / K)


cdef inline double _bs_price1(double S, double K, double T, double r, double q, double v,
                              bint call) noexcept nogil:
    if _bad(S, K, T, r, q, v):
        return NAN
    cdef double x = _log_ratio(S, K) + (r - q) * T
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


# ------------------------------------------------------------------------------------------------
# Vectorised price + Greeks (bs_price_greeks, bs_greeks, black76_greeks)
#
# The closed forms of _bs_pg1 in a C loop that GCC vectorises (`omp simd`) with the SIMD variants
# of exp, log and erfc from glibc's libmvec (AIOTS_HAVE_MVEC, set by setup.py after a link probe;
# <= 4 ulp each, the QuantLib check keeps 1e-10). The loop is compiled for baseline x86-64 (SSE2,
# 2 lanes), AVX2+FMA (4 lanes) and AVX-512 (8 lanes) and the widest one the CPU has is picked at
# the first call (__builtin_cpu_supports), so one wheel runs on any x86-64. Elsewhere (aarch64,
# clang, no libmvec) it is one plain loop with scalar libm calls: same results, no SIMD.
# Work goes in blocks of AIOTS_PG_BLK: inputs are gathered into contiguous scratch (broadcast
# strides 0/1, invalid rows replaced by harmless values), the vector loop writes the rows, and a
# scalar pass NaNs invalid rows and recomputes through the normalised Black function the prices
# where th (a - b) cancels (FUSED_CANCEL) or is tiny (FUSED_TINY), as _bs_pg1 does. Into a reused
# output block (core/_opt_outpool.pxi) of PG_STREAM_MIN_BYTES or more, the rows are built in a
# cache-resident block buffer and streamed out (aiots_pg_stream_*); otherwise written in place.
# ------------------------------------------------------------------------------------------------

cdef extern from *:
    """
    #define AIOTS_PG_BLK 256
    typedef double (*aiots_price_fn)(double, double, double, double, double, double, int);
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #endif

    /* Copy a finished block of rows (built in a cache-resident buffer) to the output with streaming
     * (non-temporal) stores, for outputs far larger than the caches in memory already mapped: a
     * normal store first reads each line from memory (read for ownership), so the 88 MB of a
     * 1M-row result crossed the memory bus twice; a streaming store writes it once (28 -> 21.5 ms
     * CPU per 1M rows here). Not for fresh pages: the kernel has just zeroed them through the
     * cache, and streaming past it made that call slower (35 -> 43 ms). Head and tail up to the
     * vector width's alignment take normal stores. The kernel fences once at its end. */
    #if defined(__x86_64__) && defined(__GNUC__)
    #define AIOTS_PG_STREAM_FN(NAME, ATTR, STEP, STORE, LOAD)                                     \
    static ATTR void NAME(double* dst, const double* src, size_t n) {                                \
        size_t i = 0;                                                                                \
        while (i < n && ((uintptr_t)(dst + i) & (STEP * sizeof(double) - 1))) { dst[i] = src[i]; i++; } \
        for (; i + STEP <= n; i += STEP) STORE(dst + i, LOAD(src + i));                              \
        for (; i < n; i++) dst[i] = src[i];                                                          \
    }
    AIOTS_PG_STREAM_FN(aiots_pg_stream_base, , 2, _mm_stream_pd, _mm_loadu_pd)
    #define AIOTS_PG_FENCE() _mm_sfence()
    #else
    static void aiots_pg_stream_base(double* dst, const double* src, size_t n) {
        memcpy(dst, src, n * sizeof(double));
    }
    #define AIOTS_PG_FENCE() ((void)0)
    #endif

    /* erfcx(z) = exp(z^2) erfc(z) for -1 < z < 26, branch free: exp(z^2) as exp(m^2) exp(2mf + f^2)
     * with m = |z| rounded to 1/128 (Cephes' split, no rounding error from z*z). */
    static inline __attribute__((always_inline)) double aiots_erfcx_v(double z) {
        double az = z < 0.0 ? -z : z;
        double m = (double)(int)(az * 128.0 + 0.5) * (1.0 / 128.0), f = az - m;
        return aiots_verfc(z) * aiots_vexp(m * m) * aiots_vexp(2.0 * m * f + f * f);
    }
    static const double aiots_inv_odd_fact[9] = {
        1.0, 1.0 / 6.0, 1.0 / 120.0, 1.0 / 5040.0, 1.0 / 362880.0, 1.0 / 39916800.0,
        1.0 / 6227020800.0, 1.0 / 1307674368000.0, 1.0 / 355687428096000.0};
    /* Normalised OTM Black b(x, s), x <= 0, in Jaeckel's two middle regions (nb_small_t and the
     * erfcx difference of nb_otm in _optmath.pxi), without branches so a loop over it vectorises. */
    static inline __attribute__((always_inline)) double aiots_nb_small_t_v(double h, double t) {
        double y0 = 1.2533141373155003 * aiots_erfcx_v(-h * 0.7071067811865476);
        double y1 = 1.0 + h * y0, ym1 = y0, yk = y1, ynext, tk = t, t2 = t * t, total = t * y1;
        int mm;
        for (mm = 1; mm < 15; mm++) {
            ynext = h * yk + mm * ym1;
            ym1 = yk;
            yk = ynext;
            if ((mm & 1) == 0) {
                tk *= t2;
                total += yk * tk * aiots_inv_odd_fact[(mm + 1) >> 1];
            }
        }
        return 2.0 * 0.3989422804014327 * aiots_vexp(-0.5 * (h * h + t * t)) * total;
    }
    static inline __attribute__((always_inline)) double aiots_nb_mid_v(double h, double t) {
        return 0.5 * aiots_vexp(-0.5 * (h * h + t * t))
               * (aiots_erfcx_v(-0.7071067811865476 * (h + t)) - aiots_erfcx_v(-0.7071067811865476 * (h - t)));
    }

    /* FIRST: 1 when column 0 is the price; NG: Greeks written (10 or 14, GREEK_FIELDS order).
     * Inputs: pointers with strides 0 (broadcast scalar) or 1. Per block: broadcast inputs are filled
     * into scratch (contiguous inputs are read in place); the vector loop computes every row as it
     * comes (an invalid row gives garbage, overwritten later: replacing its inputs by harmless
     * values with selects stops GCC 12 from vectorising the loop) and flags rows for the scalar
     * pass (FL: invalid; A, B: the price terms to test
     * for cancellation); the flagged prices in Jaeckel's small-t and middle regions are
     * then computed by two more vector loops. */
    #define AIOTS_PG_IN(DST, SRC, STRIDE, LOC)                                                          \
        if (STRIDE) DST = SRC + b0;                                                                     \
        else { for (i = 0; i < m; i++) LOC[i] = SRC[0]; DST = LOC; }

    #define AIOTS_PG_KERNEL(NAME, ATTR, FIRST, NG, STREAM)                                              \
    static ATTR void NAME(const double* pS, Py_ssize_t sS, const double* pK, Py_ssize_t sK,            \
                          const double* pT, Py_ssize_t sT, const double* pr, Py_ssize_t sr,            \
                          const double* pq, Py_ssize_t sq, const double* pv, Py_ssize_t sv,            \
                          const unsigned char* pc, Py_ssize_t sc, Py_ssize_t n, double* out,           \
                          double cancel, double tiny, aiots_price_fn fallback, int nt) {               \
        double OB[AIOTS_PG_BLK * (FIRST + NG)];                                                         \
        double* ob;                                                                                     \
        double LS[AIOTS_PG_BLK], LK[AIOTS_PG_BLK], LT[AIOTS_PG_BLK], LR[AIOTS_PG_BLK];                  \
        double LQ[AIOTS_PG_BLK], LV[AIOTS_PG_BLK];                                                      \
        unsigned char LC[AIOTS_PG_BLK];                                                                 \
        double FL[AIOTS_PG_BLK], X[AIOTS_PG_BLK], SV[AIOTS_PG_BLK];                                    \
        double A[AIOTS_PG_BLK], B[AIOTS_PG_BLK], ST[AIOTS_PG_BLK];                                     \
        double D1[AIOTS_PG_BLK], TH[AIOTS_PG_BLK], E1[AIOTS_PG_BLK], E2[AIOTS_PG_BLK];                 \
        double E3[AIOTS_PG_BLK], N1[AIOTS_PG_BLK], N2[AIOTS_PG_BLK];                                   \
        double GH[AIOTS_PG_BLK], GT[AIOTS_PG_BLK], GP[AIOTS_PG_BLK];                                    \
        int FS[AIOTS_PG_BLK], FM[AIOTS_PG_BLK], nfs, nfm, jj;                                           \
        const double *S, *K, *T, *R, *Q, *V;                                                            \
        const unsigned char* C;                                                                         \
        const int W = FIRST + NG;                                                                       \
        Py_ssize_t b0;                                                                                  \
        int i, m, k;                                                                                    \
        for (b0 = 0; b0 < n; b0 += AIOTS_PG_BLK) {                                                      \
            m = (n - b0 < AIOTS_PG_BLK) ? (int)(n - b0) : AIOTS_PG_BLK;                                \
            AIOTS_PG_IN(S, pS, sS, LS) AIOTS_PG_IN(K, pK, sK, LK) AIOTS_PG_IN(T, pT, sT, LT)           \
            AIOTS_PG_IN(R, pr, sr, LR) AIOTS_PG_IN(Q, pq, sq, LQ) AIOTS_PG_IN(V, pv, sv, LV)           \
            AIOTS_PG_IN(C, pc, sc, LC)                                                                  \
            ob = nt ? OB : out + b0 * W; /* NT: rows are streamed out once the block is done */         \
            /* phases: few values live across each libmvec call (all vector registers are clobbered) */\
            AIOTS_OMP_SIMD                                                                          \
            for (i = 0; i < m; i++) {                                                               \
                double s = S[i], kk = K[i], t = T[i], r = R[i], q = Q[i], v = V[i];                 \
                int ok = (s > 0.0) & (s < INFINITY) & (kk > 0.0) & (kk < INFINITY) & (t > 0.0)      \
                         & (t < INFINITY) & (v > 0.0) & (v < INFINITY) & (fabs(r) < INFINITY)       \
                         & (fabs(q) < INFINITY);                                                    \
                double th = C[i] ? 1.0 : -1.0, vs = v * sqrt(t), lsk = aiots_vlog(s / kk);          \
                double d1 = (lsk + (r - q + 0.5 * v * v) * t) / vs;                                 \
                FL[i] = !ok ? 1.0 : 0.0;                                                            \
                X[i] = th * (lsk + (r - q) * t);                                                    \
                SV[i] = vs;                                                                         \
                D1[i] = d1;                                                                         \
                TH[i] = th;                                                                         \
            }                                                                                       \
            AIOTS_OMP_SIMD                                                                          \
            for (i = 0; i < m; i++) {                                                               \
                E1[i] = aiots_vexp(-Q[i] * T[i]);                                                   \
                E2[i] = aiots_vexp(-R[i] * T[i]);                                                   \
                E3[i] = aiots_vexp(-0.5 * D1[i] * D1[i]);                                           \
            }                                                                                       \
            AIOTS_OMP_SIMD                                                                          \
            for (i = 0; i < m; i++) {                                                               \
                N1[i] = aiots_verfc(-TH[i] * D1[i] * 0.7071067811865476);                           \
                N2[i] = aiots_verfc(-TH[i] * (D1[i] - SV[i]) * 0.7071067811865476);                 \
            }                                                                                       \
            AIOTS_OMP_SIMD                                                                          \
            for (i = 0; i < m; i++) {                                                               \
                double s = S[i], kk = K[i], t = T[i], r = R[i], q = Q[i], v = V[i], th = TH[i];     \
                double sqT = sqrt(t), vs = SV[i], ivs = 1.0 / vs, iv = 1.0 / v, iT = 1.0 / t;       \
                double d1 = D1[i], d2 = d1 - vs;                                                    \
                double dq = E1[i], dr = E2[i], nd1 = 0.3989422804014327 * E3[i];                    \
                double Nd1 = 0.5 * N1[i], Nd2 = 0.5 * N2[i];                                        \
                double sdq = s * dq, kdr = kk * dr, a = sdq * Nd1, b = kdr * Nd2;                      \
                double dqn = dq * nd1, pdq = s * dqn, vega = pdq * sqT, gamma = dqn * ivs / s;        \
                double dd = d1 * d2, ct = (2.0 * (r - q) * t - d2 * vs) * ivs;                        \
                double price = th * (a - b);                                                            \
                double* o = ob + (Py_ssize_t)i * W + FIRST;                                             \
                if (FIRST) o[-1] = price;                                                               \
                A[i] = a;                                                                               \
                B[i] = b;                                                                               \
                ST[i] = sdq + kdr;                                                                      \
                o[0] = th * dq * Nd1;                                                                   \
                o[1] = vega;                                                                            \
                o[2] = -0.5 * pdq * v / sqT - th * r * b + th * q * a;                                 \
                o[3] = th * t * b;                                                                      \
                o[4] = -th * t * a;                                                                     \
                o[5] = gamma;                                                                           \
                o[6] = -dqn * d2 * iv;                                                                  \
                o[7] = vega * dd * iv;                                                                  \
                o[8] = th * q * dq * Nd1 - 0.5 * dqn * ct * iT;                                         \
                o[9] = vega * (q + (r - q) * d1 * ivs - 0.5 * (1.0 + dd) * iT);                        \
                if (NG > 10) {                                                                          \
                    o[10] = -gamma / s * (d1 * ivs + 1.0);                                              \
                    o[11] = gamma * (dd - 1.0) * iv;                                                    \
                    o[12] = 0.5 * dqn * iT * ivs / s * (2.0 * q * t + 1.0 + ct * d1);                  \
                    o[13] = -vega * iv * iv * (dd * (1.0 - dd) + d1 * d1 + d2 * d2);                    \
                }                                                                                       \
            }                                                                                           \
            nfs = 0;                                                                                    \
            nfm = 0;                                                                                    \
            for (i = 0; i < m; i++) {                                                                   \
                double* o = ob + (Py_ssize_t)i * W;                                                     \
                if (FL[i] != 0.0) {                                                                     \
                    for (k = 0; k < W; k++) o[k] = NAN;                                                 \
                } else if (FIRST && (o[0] < cancel * (A[i] > B[i] ? A[i] : B[i]) || o[0] < tiny * ST[i])) { \
                    /* Jaeckel's branch of nb_otm: the two middle ones vectorise below */              \
                    double h = X[i] / SV[i], tt = 0.5 * SV[i];                                          \
                    if (X[i] < 0.0 && !(h < -10.0 && h + tt < -10.0 + 0.21) && h + tt <= 0.85) {       \
                        if (tt < 0.21) FS[nfs++] = i;                                                   \
                        else FM[nfm++] = i;                                                             \
                    } else {                                                                            \
                        o[0] = fallback(S[i], K[i], T[i], R[i], Q[i], V[i], C[i] != 0);                \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
            for (jj = 0; jj < nfs; jj++) { GH[jj] = X[FS[jj]] / SV[FS[jj]]; GT[jj] = 0.5 * SV[FS[jj]]; } \
            AIOTS_OMP_SIMD                                                                              \
            for (jj = 0; jj < nfs; jj++) GP[jj] = aiots_nb_small_t_v(GH[jj], GT[jj]);                   \
            for (jj = 0; jj < nfs; jj++) {                                                              \
                i = FS[jj];                                                                             \
                ob[(Py_ssize_t)i * W] = sqrt(S[i]) * sqrt(K[i]) * exp(-0.5 * (R[i] + Q[i]) * T[i])     \
                                        * (GP[jj] > 0.0 ? GP[jj] : 0.0);                                \
            }                                                                                           \
            for (jj = 0; jj < nfm; jj++) { GH[jj] = X[FM[jj]] / SV[FM[jj]]; GT[jj] = 0.5 * SV[FM[jj]]; } \
            AIOTS_OMP_SIMD                                                                              \
            for (jj = 0; jj < nfm; jj++) GP[jj] = aiots_nb_mid_v(GH[jj], GT[jj]);                       \
            for (jj = 0; jj < nfm; jj++) {                                                              \
                i = FM[jj];                                                                             \
                ob[(Py_ssize_t)i * W] = sqrt(S[i]) * sqrt(K[i]) * exp(-0.5 * (R[i] + Q[i]) * T[i])     \
                                        * (GP[jj] > 0.0 ? GP[jj] : 0.0);                                \
            }                                                                                           \
            if (nt) STREAM(out + b0 * W, OB, (size_t)m * W);                                            \
        }                                                                                               \
        if (nt) AIOTS_PG_FENCE();                                                                       \
    }

    #define AIOTS_PG_SET(SUFFIX, ATTR)                                                              \
        AIOTS_PG_KERNEL(aiots_pg11_##SUFFIX, ATTR, 1, 10, aiots_pg_stream_##SUFFIX)                  \
        AIOTS_PG_KERNEL(aiots_pg15_##SUFFIX, ATTR, 1, 14, aiots_pg_stream_##SUFFIX)                  \
        AIOTS_PG_KERNEL(aiots_g14_##SUFFIX, ATTR, 0, 14, aiots_pg_stream_##SUFFIX)

    AIOTS_PG_SET(base, )
    #if AIOTS_VMATH
    AIOTS_PG_STREAM_FN(aiots_pg_stream_avx2, __attribute__((target("avx2,fma"))), 4,
                       _mm256_stream_pd, _mm256_loadu_pd)
    AIOTS_PG_STREAM_FN(aiots_pg_stream_avx512, __attribute__((target("avx512f,avx512dq,avx2,fma"))),
                       8, _mm512_stream_pd, _mm512_loadu_pd)
    AIOTS_PG_SET(avx2, __attribute__((target("avx2,fma"))))
    AIOTS_PG_SET(avx512, __attribute__((target("avx512f,avx512dq,avx2,fma"))))
    #endif

    typedef void (*aiots_pg_fn)(const double*, Py_ssize_t, const double*, Py_ssize_t,
                                const double*, Py_ssize_t, const double*, Py_ssize_t,
                                const double*, Py_ssize_t, const double*, Py_ssize_t,
                                const unsigned char*, Py_ssize_t, Py_ssize_t, double*,
                                double, double, aiots_price_fn, int);
    static aiots_pg_fn aiots_pg_table[3] = {0, 0, 0};
    static const char* aiots_pg_isa = "scalar";

    /* Pick the widest compiled variant the CPU runs (called once, with the GIL, at import). */
    static void aiots_pg_select(void) {
        aiots_pg_table[0] = aiots_pg11_base;
        aiots_pg_table[1] = aiots_pg15_base;
        aiots_pg_table[2] = aiots_g14_base;
    #if AIOTS_VMATH
        /* AIOTS_SIMD=sse2|avx2 caps the choice (the tests run every variant this way) */
        const char* cap = getenv("AIOTS_SIMD");
        int lvl = cap == NULL ? 2 : (strcmp(cap, "sse2") == 0 ? 0 : (strcmp(cap, "avx2") == 0 ? 1 : 2));
        aiots_pg_isa = "sse2";
        __builtin_cpu_init();
        if (lvl >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) {
            aiots_pg_table[0] = aiots_pg11_avx512;
            aiots_pg_table[1] = aiots_pg15_avx512;
            aiots_pg_table[2] = aiots_g14_avx512;
            aiots_pg_isa = "avx512";
        } else if (lvl >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            aiots_pg_table[0] = aiots_pg11_avx2;
            aiots_pg_table[1] = aiots_pg15_avx2;
            aiots_pg_table[2] = aiots_g14_avx2;
            aiots_pg_isa = "avx2";
        }
    #endif
    }

    static void aiots_pg_run(int which, const double* pS, Py_ssize_t sS, const double* pK,
                             Py_ssize_t sK, const double* pT, Py_ssize_t sT, const double* pr,
                             Py_ssize_t sr, const double* pq, Py_ssize_t sq, const double* pv,
                             Py_ssize_t sv, const unsigned char* pc, Py_ssize_t sc, Py_ssize_t lo,
                             Py_ssize_t hi, double* out, int width, double cancel, double tiny,
                             aiots_price_fn fallback, int nt) {
        aiots_pg_table[which](pS + lo * sS, sS, pK + lo * sK, sK, pT + lo * sT, sT, pr + lo * sr, sr,
                              pq + lo * sq, sq, pv + lo * sv, sv, pc + lo * sc, sc, hi - lo,
                              out + lo * width, cancel, tiny, fallback, nt);
    }
    """
    ctypedef double (*aiots_price_fn)(double, double, double, double, double, double, int) noexcept nogil
    const char* PG_ISA "aiots_pg_isa"
    void _pg_select "aiots_pg_select"() noexcept
    void _pg_run "aiots_pg_run"(int which, const double* pS, Py_ssize_t sS, const double* pK,
                                Py_ssize_t sK, const double* pT, Py_ssize_t sT, const double* pr,
                                Py_ssize_t sr, const double* pq, Py_ssize_t sq, const double* pv,
                                Py_ssize_t sv, const unsigned char* pc, Py_ssize_t sc, Py_ssize_t lo,
                                Py_ssize_t hi, double* out, int width, double cancel, double tiny,
                                aiots_price_fn fallback, int nt) noexcept nogil


_pg_select()

cdef enum:
    PG_P11 = 0  # price + 10 Greeks
    PG_P15 = 1  # price + 14 Greeks
    PG_G14 = 2  # 14 Greeks
    PG_CHUNK = 8192  # elements per parallel work item (a multiple of AIOTS_PG_BLK)


cdef double _bs_price_cb(double S, double K, double T, double r, double q, double v, int call) noexcept nogil:
    return _bs_price1(S, K, T, r, q, v, call != 0)


def _simd_isa():
    """Instruction set the vectorised price + Greeks loop runs with here ("avx512", "avx2", "sse2"
    or "scalar" where the build has no libmvec)."""
    return PG_ISA.decode()
