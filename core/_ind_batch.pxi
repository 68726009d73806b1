# Batch indicator kernels (included by indicators.pyx).
#
# Every kernel works on an input slice that starts at the TA-Lib "begidx" (first index where no
# input is NaN), fills its own lookback prefix with NaN and mirrors the TA-Lib C reference
# operation by operation. Kernels never touch Python objects and run without the GIL.

# ------------------------------------------------------------------------------------ overlap


cdef inline double _sma_next(double* total, double x, double old, int p) noexcept nogil:
    """One TA_INT_SMA output: the mean of the window sum (the running sum of the other ``p - 1``
    values plus ``x``); the running sum then moves by ``x - old`` (``old``: the oldest value, it
    leaves) - one add on the loop-carried chain where TA-Lib has two (add, then subtract).
    Batch kernels (SMA, BBANDS, STOCH) and the streaming classes alike."""
    cdef double tmp = total[0] + x
    total[0] += x - old
    return tmp / p


cdef void _sma_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    cdef Py_ssize_t i, lb = p - 1
    cdef double total = 0.0
    if n <= lb:
        _nan(out, 0, n)
        return
    _nan(out, 0, lb)
    for i in range(lb):
        total += x[i]
    for i in range(lb, n):
        out[i] = _sma_next(&total, x[i], x[i - lb], p)


cdef struct SmaSt:
    int period
    int count
    int idx
    double sum


cdef inline void _sma_init(SmaSt* s, int period) noexcept nogil:
    s.period = period
    s.count = 0
    s.idx = 0
    s.sum = 0.0


cdef inline double _sma_push(SmaSt* s, double* buf, double x) noexcept nogil:
    """The SMA step over a ring ``buf`` of ``period`` values (NaN while warming up)."""
    cdef int pos = s.idx
    buf[pos] = x
    s.idx = pos + 1 if pos + 1 < s.period else 0
    if s.count < s.period:
        s.count += 1
        if s.count < s.period:
            s.sum += x
            return NAN
    return _sma_next(&s.sum, x, buf[s.idx], s.period)


cdef inline double _ema_next(double prev, double x, double k, double ok) noexcept nogil:
    """One EMA step, ``x*k + prev*(1-k)`` (``ok`` = 1 - k). Algebraically TA-Lib's
    ``(x - prev)*k + prev`` but with a 2-operation dependency chain (mul, add) instead of 3, so
    the loop-carried latency is a third shorter; rounding differs from TA-Lib by a few ulp."""
    return x * k + prev * ok


cdef struct EmaSt:
    int period
    double k
    double ok
    int count
    double sum
    double value


cdef inline void _ema_init(EmaSt* s, int period) noexcept nogil:
    s.period = period
    s.k = _per_to_k(period)
    s.ok = 1.0 - s.k
    s.count = 0
    s.sum = 0.0
    s.value = NAN


cdef inline double _ema_push(EmaSt* s, double x) noexcept nogil:
    """The EMA step: the SMA of the first ``period`` values as the seed (NaN before), then
    _ema_next. Batch kernels and streaming classes alike."""
    if s.count >= s.period:
        s.value = _ema_next(s.value, x, s.k, s.ok)
        return s.value
    s.sum += x
    s.count += 1
    if s.count == s.period:
        s.value = s.sum / s.period
        return s.value
    return NAN


cdef void _ema_at(const double* x, Py_ssize_t n, int p, Py_ssize_t seed_end,
                  double* out) noexcept nogil:
    """EMA seeded by the SMA of the ``p`` values ending at ``seed_end`` (TA_INT_EMA)."""
    cdef Py_ssize_t i
    cdef EmaSt st
    if n <= seed_end:
        _nan(out, 0, n)
        return
    _nan(out, 0, seed_end)
    _ema_init(&st, p)
    for i in range(seed_end - p + 1, seed_end + 1):
        out[seed_end] = _ema_push(&st, x[i])
    for i in range(seed_end + 1, n):
        st.value = _ema_next(st.value, x[i], st.k, st.ok)
        out[i] = st.value


cdef inline double _per_to_k(int p) noexcept nogil:
    return 2.0 / <double>(p + 1)


cdef inline double _wilder_next(double prev, double x, double c1, double inv) noexcept nogil:
    """Wilder smoothing ``(prev*(p-1) + x)/p`` evaluated as ``prev*c1 + x*inv`` with
    c1 = (p-1)/p and inv = 1/p: the reciprocal form TA-Lib 0.8.1's build runs. No divide in the
    loop-carried chain (mul + add instead of mul + add + div: about 3x shorter latency)."""
    return prev * c1 + x * inv


cdef inline double _wilder_c1(int p) noexcept nogil:
    return (p - 1.0) / p


cdef inline double _pos_part(double d) noexcept nogil:
    """d if d > 0 else 0 (NaN gives 0); pairs with ``_pos_part(d) - d`` for the negative part, the
    branch-free gain/loss split TA-Lib 0.8.1's build uses (random-walk signs defeat prediction)."""
    return d if d > 0.0 else 0.0


cdef struct VarSt:
    int period
    int budget
    long count
    double inv
    double anchor
    double s1
    double s2


cdef inline void _var_init(VarSt* s, int period) noexcept nogil:
    s.period = period
    s.budget = 32 * period
    s.count = 0
    s.inv = 1.0 / period
    s.anchor = 0.0
    s.s1 = 0.0
    s.s2 = 0.0


cdef inline void _var_warm(VarSt* s, double x) noexcept nogil:
    """Accumulate one of the first ``period - 1`` values (deviations from the first value)."""
    cdef double d
    if s.count == 0:
        s.anchor = x
    d = x - s.anchor
    s.s1 += d
    s.s2 += d * d
    s.count += 1


cdef inline double _var_reanchor(VarSt* s, const double* w, int start) noexcept nogil:
    """Re-centre on the window mean: exact sums over the window ``w`` (ring of ``period`` values,
    oldest at ``start``); returns the window variance clamped to 0 below 1e-12 of the scale."""
    cdef int p = s.period, j, k = start
    cdef double tot = 0.0, a, d, s1 = 0.0, s2 = 0.0, m, q, var
    for j in range(p):
        tot += w[k]
        k = k + 1 if k + 1 < p else 0
    a = tot * s.inv
    k = start
    for j in range(p):
        d = w[k] - a
        s1 += d
        s2 += d * d
        k = k + 1 if k + 1 < p else 0
    m = s.inv * s1
    q = s.inv * s2
    var = q - m * m
    if var < q * 1e-12:
        var = 0.0
    s.anchor = a
    s.s1 = s1
    s.s2 = s2
    s.budget = 32 * p
    return var


cdef inline double _var_step(VarSt* s, double x, const double* w, int start) noexcept nogil:
    """Population variance of the window ending at ``x`` (TA-Lib 0.8.1 TA_VAR, step for step).

    Running sums of deviations from an anchor; the anchor is moved to the window mean when the
    subtraction would cancel (var below 1e-6 of the scale, or a departing value dwarfing the
    sums) and every 32 * period bars, so the result is exact to rounding in O(1) per bar.
    ``w``/``start``: the window (``period`` values including ``x``) as a ring, oldest first."""
    cdef double d = x - s.anchor, dd = d * d, t = w[start] - s.anchor, t2 = t * t, m, var, s2n
    # window sums with x; the running sums then move by (new - leaving): one add on each
    # loop-carried chain where TA-Lib has two (add, then subtract)
    m = s.inv * (s.s1 + d)
    var = s.inv * (s.s2 + dd) - m * m
    s2n = s.s2 + (dd - t2)
    if not ((s.inv * s2n) * 1e-6 > var) and not (t2 > s2n * 1e6):
        s.budget -= 1
        if s.budget != 0:
            s.s1 += d - t
            s.s2 = s2n
            return var
    var = _var_reanchor(s, w, start)
    t = w[start] - s.anchor
    s.s1 -= t
    s.s2 -= t * t
    return var


cdef struct WmaSt:
    int period
    long count
    double psum
    double psub
    double trailing


cdef inline void _wma_init(WmaSt* s, int period) noexcept nogil:
    s.period = period
    s.count = 0
    s.psum = 0.0
    s.psub = 0.0
    s.trailing = 0.0


cdef inline void _wma_warm(WmaSt* s, double x) noexcept nogil:
    """One of the first ``period - 1`` values: weighted and plain running sums."""
    s.count += 1
    s.psub += x
    s.psum += x * s.count


cdef inline void _wma_reseed(WmaSt* s, const double* w, int start) noexcept nogil:
    """Exact running sums from the ``period`` values before this bar (ring ``w``, oldest at
    ``start``) every WMA_RESEED outputs: removes rounding drift (TA-Lib 0.8 has none)."""
    cdef int j, p = s.period, k = start
    cdef double a = 0.0, b = 0.0
    for j in range(p):
        b += w[k]
        a += w[k] * j
        k = k + 1 if k + 1 < p else 0
    s.psum = a
    s.psub = b


cdef inline double _wma_next(WmaSt* s, double x, double trailing, double divider) noexcept nogil:
    """One TA_WMA output; ``trailing``: the oldest value of this window (it leaves next bar)."""
    cdef double v
    s.count += 1
    s.psub += x
    s.psub -= s.trailing
    s.psum += x * s.period
    s.trailing = trailing
    v = s.psum / divider
    s.psum -= s.psub
    return v


cdef inline bint _wma_due(WmaSt* s) noexcept nogil:
    """True when the next output should re-seed the running sums first."""
    cdef long k = s.count + 1 - s.period
    return k >= WMA_RESEED and k % WMA_RESEED == 0


cdef void _wma_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    cdef Py_ssize_t i, lb = p - 1
    cdef double divider = (p * (p + 1)) >> 1
    cdef WmaSt st
    if n <= lb:
        _nan(out, 0, n)
        return
    if p == 1:
        for i in range(n):
            out[i] = x[i]
        return
    _nan(out, 0, lb)
    _wma_init(&st, p)
    for i in range(lb):
        _wma_warm(&st, x[i])
    for i in range(lb, n):
        if _wma_due(&st):
            _wma_reseed(&st, x + i - p, 0)
        out[i] = _wma_next(&st, x[i], x[i - lb], divider)


cdef extern from *:
    """
    /* KAMA's bar, written once: the sum's increment (|x - x_prev| - |trail - t2|, added at once),
     * the smoothing constant from the efficiency ratio, and the blend
     * kama = fma(kama, 1 - sc, x * sc): one fused multiply-add on the loop-carried chain (4 cycles
     * instead of mul + add, 8). The streaming class runs AIOTS_KAMA_STEP (libm fma).
     * The batch loop keeps only the two chains serial (the running sum: one add a bar; the
     * blend: one fma a bar) and does the rest 4 bars at a time in vector registers (GCC/clang
     * vector extensions): the increments, and the smoothing constants (one 4-lane division, the
     * selects as masks), software-pipelined one block behind the sum chain so that the division
     * hides under the fma chain in the same loop (separate vector passes between the serial loops
     * cost 5.6 cycles a bar, this 4.6; the fma latency is 4). The same operations on the same
     * values in the same order as the streaming step: the same bits (no reassociation;
     * -ffp-contract=off). Compiled with and without AVX2+FMA and picked at run time; fma() is
     * correctly rounded, so both give the same bits. */
    #include <stdint.h>
    #include <string.h>
    typedef struct { double prev, sum, trail; } aiots_kama_t;
    #define AIOTS_KAMA_CMAX (2.0 / (30.0 + 1.0))
    #define AIOTS_KAMA_CDIFF (2.0 / (2.0 + 1.0) - AIOTS_KAMA_CMAX)
    #define AIOTS_KAMA_DIFF(X, XLAST, TRAIL, T2) (fabs((X) - (XLAST)) - fabs((TRAIL) - (T2)))
    static inline __attribute__((always_inline)) double aiots_kama_sc(double sum, double roc) {
        double q = fabs(roc / sum);  /* discarded by the select where sum is ~0 */
        int one = (sum <= roc) | ((sum > -1e-14) & (sum < 1e-14));
        double er = one ? 1.0 : q;
        er = er * AIOTS_KAMA_CDIFF + AIOTS_KAMA_CMAX;
        return er * er;
    }
    #define AIOTS_KAMA_STEP(FMA, S, X, XLAST, T2)                                              \
        do {                                                                                   \
            double x_ = (X), t2_ = (T2), sc_;                                                  \
            (S).sum += AIOTS_KAMA_DIFF(x_, (XLAST), (S).trail, t2_);                           \
            (S).trail = t2_;                                                                   \
            sc_ = aiots_kama_sc((S).sum, x_ - t2_);                                            \
            (S).prev = FMA((S).prev, 1.0 - sc_, x_ * sc_);                                     \
        } while (0)
    static void aiots_kama_step(aiots_kama_t* s, double x, double xlast, double t2) {
        AIOTS_KAMA_STEP(fma, *s, x, xlast, t2);
    }
    #if defined(__GNUC__)
    #define AIOTS_KAMA_BLK 128  /* bars a block (a multiple of 4); two blocks of sums on the stack */
    /* may_alias: loads the double arrays through the vector type; aligned(8): unaligned loads */
    typedef double aiots_v4d __attribute__((vector_size(32), aligned(8), may_alias));
    typedef long long aiots_v4i __attribute__((vector_size(32), aligned(8), may_alias));
    #define AIOTS_V4LD(P) (*(const aiots_v4d*)(P))
    #define AIOTS_V4ABS(V) ((aiots_v4d)((aiots_v4i)(V) & abs_))  /* abs_: the mask below */
    #define AIOTS_V4ABSMASK const aiots_v4i abs_ = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}
    /* the running sum through bars i..i+3 (trail x[i - p - 1]) into dst[0..3] */
    #define AIOTS_KAMA_SUM4(X, I, P, SUM, DST)                                                 \
        do {                                                                                   \
            const double* xi_ = (X) + (I);                                                     \
            AIOTS_V4ABSMASK;                                                                   \
            aiots_v4d d_ = AIOTS_V4ABS(AIOTS_V4LD(xi_) - AIOTS_V4LD(xi_ - 1))                  \
                         - AIOTS_V4ABS(AIOTS_V4LD(xi_ - (P) - 1) - AIOTS_V4LD(xi_ - (P)));     \
            SUM += d_[0]; (DST)[0] = SUM;                                                      \
            SUM += d_[1]; (DST)[1] = SUM;                                                      \
            SUM += d_[2]; (DST)[2] = SUM;                                                      \
            SUM += d_[3]; (DST)[3] = SUM;                                                      \
        } while (0)
    /* bars i..i+3 from their running sums: aiots_kama_sc in 4 lanes, then the blend chain */
    #define AIOTS_KAMA_BLEND4(FMA, X, I, P, SUMS, PREV, OUT)                                   \
        do {                                                                                   \
            const double* xi_ = (X) + (I);                                                     \
            const aiots_v4d one_ = {1.0, 1.0, 1.0, 1.0};                                       \
            AIOTS_V4ABSMASK;                                                                   \
            aiots_v4d s_ = AIOTS_V4LD(SUMS), xv_ = AIOTS_V4LD(xi_);                            \
            aiots_v4d roc_ = xv_ - AIOTS_V4LD(xi_ - (P));                                      \
            aiots_v4d q_ = AIOTS_V4ABS(roc_ / s_);                                             \
            aiots_v4i sel_ = (s_ <= roc_) | ((s_ > -1e-14) & (s_ < 1e-14));                    \
            aiots_v4d er_ = (aiots_v4d)(((aiots_v4i)q_ & ~sel_) | ((aiots_v4i)one_ & sel_));   \
            er_ = er_ * AIOTS_KAMA_CDIFF + AIOTS_KAMA_CMAX;                                    \
            er_ = er_ * er_;                                                                   \
            aiots_v4d om_ = 1.0 - er_, xs_ = xv_ * er_;                                        \
            PREV = FMA(PREV, om_[0], xs_[0]); (OUT)[(I)] = PREV;                               \
            PREV = FMA(PREV, om_[1], xs_[1]); (OUT)[(I) + 1] = PREV;                           \
            PREV = FMA(PREV, om_[2], xs_[2]); (OUT)[(I) + 2] = PREV;                           \
            PREV = FMA(PREV, om_[3], xs_[3]); (OUT)[(I) + 3] = PREV;                           \
        } while (0)
    /* bars [from, n), from >= p: the first with the state's trailing value, then whole groups of
     * 4 (sums one block ahead of the blends), then the last 0-3 bars one at a time */
    #define AIOTS_KAMA_LOOP(NAME, ATTR, FMA)                                                   \
    static ATTR void NAME(const double* x, Py_ssize_t from, Py_ssize_t n, int p,               \
                          aiots_kama_t* s, double* out) {                                      \
        double sums[2][AIOTS_KAMA_BLK];                                                        \
        double sum, prev;                                                                      \
        Py_ssize_t i0, end, b, m, nb, mn, j, i;                                                \
        int cur = 0;                                                                           \
        if (from >= n) return;                                                                 \
        AIOTS_KAMA_STEP(FMA, *s, x[from], x[from - 1], x[from - p]);                           \
        out[from] = s->prev;                                                                   \
        sum = s->sum;                                                                          \
        prev = s->prev;                                                                        \
        i0 = from + 1;                                                                         \
        end = i0 + ((n - i0) & ~(Py_ssize_t)3);                                                \
        m = end - i0 < AIOTS_KAMA_BLK ? end - i0 : AIOTS_KAMA_BLK;                             \
        for (j = 0; j < m; j += 4) AIOTS_KAMA_SUM4(x, i0 + j, p, sum, sums[0] + j);            \
        for (b = i0; b < end; b = nb) {                                                        \
            const double* bs = sums[cur];                                                      \
            double* ns = sums[cur ^ 1];                                                        \
            nb = b + m;                                                                        \
            mn = end - nb < AIOTS_KAMA_BLK ? end - nb : AIOTS_KAMA_BLK;                        \
            for (j = 0; j < mn; j += 4) {  /* mn <= m: only the last block is shorter */       \
                AIOTS_KAMA_SUM4(x, nb + j, p, sum, ns + j);                                    \
                AIOTS_KAMA_BLEND4(FMA, x, b + j, p, bs + j, prev, out);                        \
            }                                                                                  \
            for (; j < m; j += 4) AIOTS_KAMA_BLEND4(FMA, x, b + j, p, bs + j, prev, out);      \
            cur ^= 1;                                                                          \
            m = mn;                                                                            \
        }                                                                                      \
        s->sum = sum;                                                                          \
        s->prev = prev;                                                                        \
        s->trail = x[end - 1 - p];                                                             \
        for (i = end; i < n; i++) {                                                            \
            AIOTS_KAMA_STEP(FMA, *s, x[i], x[i - 1], x[i - p]);                                \
            out[i] = s->prev;                                                                  \
        }                                                                                      \
    }
    AIOTS_KAMA_LOOP(aiots_kama_plain, , fma)
    #else
    static void aiots_kama_plain(const double* x, Py_ssize_t from, Py_ssize_t n, int p,
                                 aiots_kama_t* s, double* out) {
        for (Py_ssize_t i = from; i < n; i++) {
            AIOTS_KAMA_STEP(fma, *s, x[i], x[i - 1], x[i - p]);
            out[i] = s->prev;
        }
    }
    #endif
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    AIOTS_KAMA_LOOP(aiots_kama_avx2, __attribute__((target("avx2,fma"))), __builtin_fma)
    static int aiots_have_avx2_fma = -1;
    /* 1 on CPUs with AVX2 and FMA (the batch loops' fast variants), checked once */
    static int aiots_cpu_avx2_fma(void) {
        if (aiots_have_avx2_fma < 0)
            aiots_have_avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        return aiots_have_avx2_fma;
    }
    #endif
    static void aiots_kama_loop(const double* x, Py_ssize_t from, Py_ssize_t n, int p,
                                aiots_kama_t* s, double* out) {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_cpu_avx2_fma()) { aiots_kama_avx2(x, from, n, p, s, out); return; }
    #endif
        aiots_kama_plain(x, from, n, p, s, out);
    }
    """
    ctypedef struct KamaSt "aiots_kama_t":
        double prev
        double sum
        double trail
    void _kama_step "aiots_kama_step"(KamaSt* s, double x, double xlast, double t2) nogil
    void _kama_loop "aiots_kama_loop"(const double* x, Py_ssize_t frm, Py_ssize_t n, int p,
                                      KamaSt* s, double* out) nogil


cdef inline void _kama_warm(KamaSt* s, double x, double xlast) noexcept nogil:
    """One of the first ``period - 1`` differences of the efficiency-ratio sum."""
    s.sum += fabs(xlast - x)


cdef void _kama_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    """KAMA (lookback p): the warm-up sum, then the shared step from bar p (_kama_loop)."""
    cdef KamaSt st
    cdef Py_ssize_t i
    if p == 1:
        for i in range(n):
            out[i] = x[i]
        return
    if n <= p:
        _nan(out, 0, n)
        return
    _nan(out, 0, p)
    st.sum = 0.0
    for i in range(1, p):
        _kama_warm(&st, x[i], x[i - 1])
    # the first step: the previous KAMA is the last price, and the trailing term cancels
    st.prev = x[p - 1]
    st.trail = x[0]
    _kama_loop(x, p, n, p, &st, out)


cdef void _bbands_k(const double* x, Py_ssize_t n, int p, double up, double dn,
                    double* upper, double* mid, double* lower) noexcept nogil:
    """One pass: TA_INT_SMA middle, TA_VAR running variance, bands."""
    cdef Py_ssize_t i, lb = p - 1
    cdef double total = 0.0, m
    cdef VarSt st
    if n <= lb:
        _nan(upper, 0, n)
        _nan(mid, 0, n)
        _nan(lower, 0, n)
        return
    _nan(upper, 0, lb)
    _nan(mid, 0, lb)
    _nan(lower, 0, lb)
    _var_init(&st, p)
    for i in range(lb):
        total += x[i]
        _var_warm(&st, x[i])
    for i in range(lb, n):
        m = _sma_next(&total, x[i], x[i - lb], p)
        mid[i] = m
        _bands(m, sqrt(_var_step(&st, x[i], x + i - lb, 0)), up, dn, &upper[i], &lower[i])


cdef inline void _bands(double m, double std, double up, double dn, double* u,
                        double* lo) noexcept nogil:
    cdef double t
    if up == dn:
        if up == 1.0:
            u[0] = m + std
            lo[0] = m - std
        else:
            t = std * up
            u[0] = m + t
            lo[0] = m - t
    elif up == 1.0:
        u[0] = m + std
        lo[0] = m - std * dn
    elif dn == 1.0:
        u[0] = m + std * up
        lo[0] = m - std
    else:
        u[0] = m + std * up
        lo[0] = m - std * dn


cdef extern from *:
    """
    /* TA_SAR's bar after the first two, written once: the batch loop below expands it with the
     * FMA instruction (picked at run time) and the SAR class calls the libm-fma instance; fma()
     * is correctly rounded, so both give the same bits. The move toward the extreme point is
     * fma(af, ep - sar, sar), exactly what TA-Lib 0.8's FMA build (TA_SAR.fma) runs, so the
     * reversal decisions match it; the two clamps are one select against the nearer of the two
     * lows (highs), computed off the chain. The extreme point and the clamp are max/min selects
     * (AIOTS_SAR_MAX/MIN: the SSE2 maxsd/minsd instruction, which is exactly `a > b ? a : b`;
     * GCC had turned the extreme point's ternary into an integer cmov through general registers,
     * about 7 cycles on its chain, and the clamp into a branch). The acceleration factor moves by
     * min(af + inc, amax) with inc = acc on a new extreme, else -0.0 (an integer bit mask,
     * aiots_sar_pick, off the chain): af + -0.0 is af for every af and af <= amax always
     * (acc <= amax), so this is TA-Lib's "if new extreme: af = min(af + acc, amax)" bit for bit,
     * with an add and a min on the chain instead of a branch (5.9 -> 4.8 ms a million bars).
     * The FMA clone (AVX) keeps all of it in vector registers: its max/min are vmaxsd/vminsd
     * written out (the intrinsics' _mm_set_sd zeroed the upper lane with a vmovq on the SAR
     * chain) and the pick is an ordered compare's mask blended over -0.0 (vcmpsd + vblendvpd;
     * the integer mask round-tripped through general registers): the same operations on the
     * same operands, so the same bits (1.02 -> 0.86-0.87x TA-Lib's time on an AVX-512 EPYC). */
    #include <stdint.h>
    #if defined(__x86_64__) || defined(_M_X64)
    #include <immintrin.h>
    #define AIOTS_SAR_MAX(A, B) _mm_cvtsd_f64(_mm_max_sd(_mm_set_sd(A), _mm_set_sd(B)))
    #define AIOTS_SAR_MIN(A, B) _mm_cvtsd_f64(_mm_min_sd(_mm_set_sd(A), _mm_set_sd(B)))
    #else
    #define AIOTS_SAR_MAX(A, B) ((A) > (B) ? (A) : (B))
    #define AIOTS_SAR_MIN(A, B) ((A) < (B) ? (A) : (B))
    #endif
    static inline __attribute__((always_inline)) double aiots_sar_pick(int c, double a, double b) {
        uint64_t ua, ub, m = (uint64_t)0 - (uint64_t)(c != 0);
        double r;
        memcpy(&ua, &a, sizeof ua);
        memcpy(&ub, &b, sizeof ub);
        ua = (ua & m) | (ub & ~m);
        memcpy(&r, &ua, sizeof r);
        return r;
    }
    #define AIOTS_SAR_GT_PICK(X, Y, A, B) aiots_sar_pick((X) > (Y), (A), (B))
    typedef struct {
        double acc, amax, af, ep, sar, new_high, new_low;
        int is_long, count;
    } aiots_sar_t;
    #define AIOTS_SAR_NEXT(FMA, MAX, MIN, GT_PICK, S, HIGH, LOW, OUT)                          \
        do {                                                                                   \
            double ph_ = (S).new_high, pl_ = (S).new_low, nh_ = (HIGH), nl_ = (LOW), a_, s_;   \
            (S).new_high = nh_;                                                                \
            (S).new_low = nl_;                                                                 \
            if ((S).is_long) {                                                                 \
                if (nl_ <= (S).sar) {                                                          \
                    (S).is_long = 0;                                                           \
                    s_ = (S).ep;                                                               \
                    if (s_ < ph_) s_ = ph_;                                                    \
                    if (s_ < nh_) s_ = nh_;                                                    \
                    OUT = s_;                                                                  \
                    (S).af = (S).acc;                                                          \
                    (S).ep = nl_;                                                              \
                    s_ = FMA((S).af, (S).ep - s_, s_);                                         \
                    if (s_ < ph_) s_ = ph_;                                                    \
                    if (s_ < nh_) s_ = nh_;                                                    \
                    (S).sar = s_;                                                              \
                } else {                                                                       \
                    double inc_ = GT_PICK(nh_, (S).ep, (S).acc, -0.0);                         \
                    OUT = (S).sar;                                                             \
                    (S).ep = MAX(nh_, (S).ep);                                                 \
                    a_ = (S).af + inc_;                                                        \
                    (S).af = a_ > (S).amax ? (S).amax : a_;                                    \
                    a_ = pl_ > nl_ ? nl_ : pl_;                                                \
                    s_ = FMA((S).af, (S).ep - (S).sar, (S).sar);                               \
                    (S).sar = MIN(a_, s_);                                                     \
                }                                                                              \
            } else if (nh_ >= (S).sar) {                                                       \
                (S).is_long = 1;                                                               \
                s_ = (S).ep;                                                                   \
                if (s_ > pl_) s_ = pl_;                                                        \
                if (s_ > nl_) s_ = nl_;                                                        \
                OUT = s_;                                                                      \
                (S).af = (S).acc;                                                              \
                (S).ep = nh_;                                                                  \
                s_ = FMA((S).af, (S).ep - s_, s_);                                             \
                if (s_ > pl_) s_ = pl_;                                                        \
                if (s_ > nl_) s_ = nl_;                                                        \
                (S).sar = s_;                                                                  \
            } else {                                                                           \
                double inc_ = GT_PICK((S).ep, nl_, (S).acc, -0.0);                             \
                OUT = (S).sar;                                                                 \
                (S).ep = MIN(nl_, (S).ep);                                                     \
                a_ = (S).af + inc_;                                                            \
                (S).af = a_ > (S).amax ? (S).amax : a_;                                        \
                a_ = ph_ < nh_ ? nh_ : ph_;                                                    \
                s_ = FMA((S).af, (S).ep - (S).sar, (S).sar);                                   \
                (S).sar = MAX(a_, s_);                                                         \
            }                                                                                  \
        } while (0)
    static double aiots_sar_next(aiots_sar_t* s, double high, double low) {
        double o;
        AIOTS_SAR_NEXT(fma, AIOTS_SAR_MAX, AIOTS_SAR_MIN, AIOTS_SAR_GT_PICK, *s, high, low, o);
        return o;
    }
    #define AIOTS_SAR_LOOP(NAME, ATTR, FMA, MAX, MIN, PICK)                                    \
    static ATTR void NAME(const double* h, const double* l, Py_ssize_t from, Py_ssize_t n,     \
                          aiots_sar_t* s, double* out) {                                       \
        aiots_sar_t st = *s;                                                                   \
        for (Py_ssize_t i = from; i < n; i++)                                                  \
            AIOTS_SAR_NEXT(FMA, MAX, MIN, PICK, st, h[i], l[i], out[i]);                       \
        *s = st;                                                                               \
    }
    AIOTS_SAR_LOOP(aiots_sar_plain, , fma, AIOTS_SAR_MAX, AIOTS_SAR_MIN, AIOTS_SAR_GT_PICK)
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    /* a > b ? a : b and a < b ? a : b, as AIOTS_SAR_MAX/MIN, without zeroing an upper lane */
    static inline __attribute__((always_inline)) double aiots_vmaxsd(double a, double b) {
        double r;
        __asm__("vmaxsd %2, %1, %0" : "=x"(r) : "x"(a), "x"(b));
        return r;
    }
    static inline __attribute__((always_inline)) double aiots_vminsd(double a, double b) {
        double r;
        __asm__("vminsd %2, %1, %0" : "=x"(r) : "x"(a), "x"(b));
        return r;
    }
    static inline __attribute__((always_inline, target("fma")))
    double aiots_gt_blend(double x, double y, double a, double b) {
        /* x > y ? a : b bit for bit, in vector registers: an ordered compare's mask blends a over b */
        __m128d m = _mm_cmp_sd(_mm_set_sd(x), _mm_set_sd(y), _CMP_GT_OQ);
        return _mm_cvtsd_f64(_mm_blendv_pd(_mm_set_sd(b), _mm_set_sd(a), m));
    }
    AIOTS_SAR_LOOP(aiots_sar_fma3, __attribute__((target("fma"))), __builtin_fma,
                   aiots_vmaxsd, aiots_vminsd, aiots_gt_blend)
    static int aiots_sar_have_fma = -1;
    #endif
    static void aiots_sar_loop(const double* h, const double* l, Py_ssize_t from, Py_ssize_t n,
                               aiots_sar_t* s, double* out) {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_sar_have_fma < 0) aiots_sar_have_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        if (aiots_sar_have_fma) { aiots_sar_fma3(h, l, from, n, s, out); return; }
    #endif
        aiots_sar_plain(h, l, from, n, s, out);
    }
    """
    ctypedef struct SarSt "aiots_sar_t":
        double acc
        double amax
        double af
        double ep
        double sar
        double new_high
        double new_low
        bint is_long
        int count
    double _sar_next "aiots_sar_next"(SarSt* s, double high, double low) nogil
    void _sar_loop "aiots_sar_loop"(const double* h, const double* l, Py_ssize_t frm, Py_ssize_t n,
                                    SarSt* s, double* out) nogil


cdef inline void _sar_init(SarSt* s, double acc, double amax) noexcept nogil:
    s.acc = acc if acc <= amax else amax
    s.amax = amax
    s.count = 0
    s.af = s.ep = s.sar = s.new_high = s.new_low = NAN
    s.is_long = True


cdef inline double _sar_push(SarSt* s, double high, double low) noexcept nogil:
    """TA_SAR bar by bar: bar 0 is remembered (NaN), bar 1 picks the direction from the -DM of
    the first two bars and starts at bar 0's low/high, then _sar_next."""
    cdef double diff_p, diff_m
    if s.count == 0:
        s.count = 1
        s.new_high = high
        s.new_low = low
        return NAN
    if s.count == 1:
        s.count = 2
        diff_p = high - s.new_high
        diff_m = s.new_low - low
        s.is_long = not (diff_m > 0 and diff_p < diff_m)
        s.af = s.acc
        if s.is_long:
            s.ep = high
            s.sar = s.new_low
        else:
            s.ep = low
            s.sar = s.new_high
        s.new_low = low
        s.new_high = high
    return _sar_next(s, high, low)


cdef void _sar_k(const double* h, const double* lw, Py_ssize_t n, double acc, double amax,
                 double* out) noexcept nogil:
    cdef SarSt st
    cdef Py_ssize_t i
    _sar_init(&st, acc, amax)
    for i in range(2 if n > 2 else n):
        out[i] = _sar_push(&st, h[i], lw[i])
    _sar_loop(h, lw, 2, n, &st, out)


cdef struct VwapSt:
    double cum_pv
    double cum_v


cdef inline double _vwap_push(VwapSt* s, double high, double low, double close, double volume,
                              bint new_session) noexcept nogil:
    """One bar of the session VWAP of the typical price (NaN before any volume traded)."""
    if new_session:
        s.cum_pv = 0.0
        s.cum_v = 0.0
    s.cum_pv += ((high + low + close) / 3.0) * volume
    s.cum_v += volume
    return s.cum_pv / s.cum_v if s.cum_v != 0.0 else NAN


cdef void _vwap_k(const double* h, const double* lw, const double* c, const double* v,
                  const char* start, Py_ssize_t n, double* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef VwapSt st
    st.cum_pv = 0.0
    st.cum_v = 0.0
    for i in range(n):
        out[i] = _vwap_push(&st, h[i], lw[i], c[i], v[i], i == 0 or start[i])


# ----------------------------------------------------------------------------------- momentum


cdef struct RsiSt:
    int period
    int count
    double c1
    double inv
    double prev
    double gain
    double loss


cdef inline void _rsi_init(RsiSt* s, int period) noexcept nogil:
    s.period = period
    s.count = 0
    s.c1 = _wilder_c1(period)
    s.inv = 1.0 / period
    s.prev = NAN
    s.gain = 0.0
    s.loss = 0.0


cdef inline double _rsi_value(RsiSt* s) noexcept nogil:
    cdef double t = s.gain + s.loss
    return 100.0 * (s.gain / t) if not _is_zero(t) else 0.0


cdef inline double _rsi_next(RsiSt* s, double x) noexcept nogil:
    """One RSI bar after the seed: Wilder-smoothed gain and loss (branch-free split)."""
    cdef double d = x - s.prev, g = _pos_part(d)
    s.prev = x
    s.gain = _wilder_next(s.gain, g, s.c1, s.inv)
    s.loss = _wilder_next(s.loss, g - d, s.c1, s.inv)
    return _rsi_value(s)


cdef inline double _rsi_push(RsiSt* s, double x) noexcept nogil:
    """TA_RSI bar by bar: the first ``period`` changes averaged (NaN until then), then
    _rsi_next. Batch kernel and streaming classes alike."""
    cdef double d, g
    cdef int p = s.period
    if s.count > p:
        return _rsi_next(s, x)
    if s.count == 0:
        s.prev = x
        s.count = 1
        return NAN
    d = x - s.prev
    s.prev = x
    g = _pos_part(d)
    s.gain += g
    s.loss += g - d
    s.count += 1
    if s.count <= p:
        return NAN
    s.loss /= p
    s.gain /= p
    return _rsi_value(s)


cdef void _rsi_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    cdef Py_ssize_t i, m = p + 1 if p + 1 < n else n
    cdef RsiSt st
    _rsi_init(&st, p)
    for i in range(m):
        out[i] = _rsi_push(&st, x[i])
    for i in range(m, n):
        out[i] = _rsi_next(&st, x[i])


cdef struct MacdSt:
    int fast
    int slow
    int count
    int idx
    double kf
    double okf
    double fv
    EmaSt es
    EmaSt sig


cdef inline void _macd_init(MacdSt* s, int fast, int slow, int signal) noexcept nogil:
    """Periods as given; fast and slow are swapped when fast > slow (TA-Lib)."""
    s.fast = fast if fast <= slow else slow
    s.slow = slow if fast <= slow else fast
    s.count = 0
    s.idx = 0
    s.kf = _per_to_k(s.fast)
    s.okf = 1.0 - s.kf
    s.fv = NAN
    _ema_init(&s.es, s.slow)
    _ema_init(&s.sig, signal)


cdef inline bint _macd_next(MacdSt* s, double x, double* out) noexcept nogil:
    """One MACD bar once both price EMAs run: (macd, signal, hist) into ``out``; False while the
    signal EMA is still seeding."""
    cdef double sv = _ema_push(&s.es, x), m, g
    s.fv = _ema_next(s.fv, x, s.kf, s.okf)
    m = s.fv - sv
    g = _ema_push(&s.sig, m)
    if s.sig.count < s.sig.period:
        return False
    out[0] = m
    out[1] = g
    out[2] = m - g
    return True


cdef inline bint _macd_push(MacdSt* s, double* ring, double x, double* out) noexcept nogil:
    """TA_MACD bar by bar: both price EMAs seeded at bar slow-1 (the fast one by the SMA of the
    ``fast`` values ending there, kept in ``ring``), the signal EMA by the SMA of the first
    ``signal`` MACD values. Batch kernel and MACD class alike."""
    cdef int j, k, f = s.fast
    cdef double acc = 0.0, sv, m, g
    if s.count >= s.slow:
        return _macd_next(s, x, out)
    sv = _ema_push(&s.es, x)
    ring[s.idx] = x
    s.idx = s.idx + 1 if s.idx + 1 < f else 0
    s.count += 1
    if s.count < s.slow:
        return False
    k = s.idx
    for j in range(f):
        acc += ring[k]
        k = k + 1 if k + 1 < f else 0
    s.fv = acc / f
    m = s.fv - sv
    g = _ema_push(&s.sig, m)
    if s.sig.count < s.sig.period:
        return False
    out[0] = m
    out[1] = g
    out[2] = m - g
    return True


cdef void _macd_k(const double* x, Py_ssize_t n, int fast, int slow, int signal, double* ring,
                  double* macd, double* sig, double* hist) noexcept nogil:
    """Fast EMA, slow EMA and the signal EMA in one pass (the MACD class's steps); ``ring``:
    min(fast, slow) doubles."""
    cdef Py_ssize_t i
    cdef MacdSt st
    cdef double o[3]
    _macd_init(&st, fast, slow, signal)
    for i in range(n):
        if _macd_push(&st, ring, x[i], o):
            macd[i] = o[0]
            sig[i] = o[1]
            hist[i] = o[2]
        else:
            macd[i] = sig[i] = hist[i] = NAN


cdef struct XemaSt:
    int levels
    EmaSt e1
    EmaSt e2
    EmaSt e3


cdef inline void _xema_init(XemaSt* s, int period, int levels) noexcept nogil:
    s.levels = levels
    _ema_init(&s.e1, period)
    _ema_init(&s.e2, period)
    _ema_init(&s.e3, period)


cdef inline double _xema_next(XemaSt* s, double x) noexcept nogil:
    """One DEMA (2*E1 - E2) or TEMA (E3 + (3*E1 - 3*E2)) bar once every level runs."""
    cdef double a = _ema_next(s.e1.value, x, s.e1.k, s.e1.ok)
    cdef double b = _ema_next(s.e2.value, a, s.e2.k, s.e2.ok)
    s.e1.value = a
    s.e2.value = b
    if s.levels == 2:
        return (2.0 * a) - b
    s.e3.value = _ema_next(s.e3.value, b, s.e3.k, s.e3.ok)
    return s.e3.value + ((3.0 * a) - (3.0 * b))


cdef inline double _xema_push(XemaSt* s, double x) noexcept nogil:
    """DEMA/TEMA bar by bar: each EMA level seeded by the SMA of its first ``period`` inputs
    (NaN until the last level runs). Batch kernel and streaming classes alike."""
    cdef double a, b, c
    if s.e2.count >= s.e2.period and (s.levels == 2 or s.e3.count >= s.e3.period):
        return _xema_next(s, x)
    a = _ema_push(&s.e1, x)
    if s.e1.count < s.e1.period:
        return NAN
    b = _ema_push(&s.e2, a)
    if s.e2.count < s.e2.period:
        return NAN
    if s.levels == 2:
        return (2.0 * a) - b
    c = _ema_push(&s.e3, b)
    if s.e3.count < s.e3.period:
        return NAN
    return c + ((3.0 * a) - (3.0 * b))


cdef void _xema_k(const double* x, Py_ssize_t n, int p, int levels, double* out) noexcept nogil:
    """DEMA (levels 2) or TEMA (levels 3) in one pass, no temporaries."""
    cdef Py_ssize_t i, lb = levels * (p - 1), m = lb + 1 if lb + 1 < n else n
    cdef XemaSt st
    _xema_init(&st, p, levels)
    for i in range(m):
        out[i] = _xema_push(&st, x[i])
    if levels == 2:
        for i in range(m, n):
            out[i] = _xema_next(&st, x[i])
    else:
        for i in range(m, n):
            out[i] = _xema_next(&st, x[i])


cdef extern from *:
    """
    /* Raw %K from the window's extremes (TA_STOCH's arithmetic, TA-Lib 0.8 scaled zero test),
     * written as a select so that the batch loop below vectorises it (the division is discarded
     * where the range is ~0; -fno-trapping-math). The streaming classes end here too. */
    static inline __attribute__((always_inline)) double aiots_fastk_value(double c, double lowest,
                                                                         double highest) {
        double r = highest - lowest, q = (c - lowest) / (r / 100.0);
        return fabs(r) <= AIOTS_TA_EPS * (fabs(highest) + fabs(lowest)) ? 0.0 : q;
    }
    /* Raw %K for bars [fk - 1, n) with the window extremes computed directly, fk - 1 max and min
     * selects a bar in vector lanes over blocks of AIOTS_FASTK_BLK bars, then the value in vector
     * lanes: no branch on the data. TA-Lib's tracking of the extremes' positions branches on every
     * new extreme and rescans when one leaves the window (a mispredict most bars on price data;
     * 41 cycles a bar). Only the extremes' values reach %K, and the max/min of a window is one
     * value unless it holds a NaN or both zeros, so the bits are TA-Lib's; where h or l holds a
     * NaN or a zero this returns 0 and the caller runs TA-Lib's tracking (_fastk_track), whose
     * path decides which NaN or zero wins. Compiled with and without AVX2 (4 or 2 lanes). */
    #define AIOTS_FASTK_BLK 256
    #define AIOTS_FASTK_DIRECT_MAX 16  /* the widest window done directly (cost grows with fk) */
    #define AIOTS_FASTK_LOOP(NAME, ATTR)                                                      \
    static ATTR int NAME(const double* h, const double* l, const double* c, Py_ssize_t n,    \
                         int fk, double* out) {                                               \
        double lo[AIOTS_FASTK_BLK], hi[AIOTS_FASTK_BLK];                                      \
        Py_ssize_t b, j, m;                                                                   \
        int k, bad = 0;                                                                       \
        for (j = 0; j < fk - 1 && j < n; j++) bad |= !(fabs(h[j]) > 0.0) | !(fabs(l[j]) > 0.0);\
        for (b = fk - 1; b < n && !bad; b += AIOTS_FASTK_BLK) {                               \
            const double *hb = h + b, *lb = l + b, *cb = c + b;                               \
            double* ob = out + b;                                                             \
            m = n - b < AIOTS_FASTK_BLK ? n - b : AIOTS_FASTK_BLK;                            \
            for (j = 0; j < m; j++) {                                                         \
                hi[j] = hb[j];                                                                \
                lo[j] = lb[j];                                                                \
                bad |= !(fabs(hb[j]) > 0.0) | !(fabs(lb[j]) > 0.0);  /* NaN or a zero */      \
            }                                                                                 \
            for (k = 1; k < fk; k++) {                                                        \
                for (j = 0; j < m; j++) {                                                     \
                    double a = hb[j - k], z = lb[j - k];                                      \
                    hi[j] = a > hi[j] ? a : hi[j];                                            \
                    lo[j] = z < lo[j] ? z : lo[j];                                            \
                }                                                                             \
            }                                                                                 \
            for (j = 0; j < m; j++) ob[j] = aiots_fastk_value(cb[j], lo[j], hi[j]);           \
        }                                                                                     \
        return !bad;                                                                          \
    }
    AIOTS_FASTK_LOOP(aiots_fastk_plain, )
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    AIOTS_FASTK_LOOP(aiots_fastk_avx2, __attribute__((target("avx2"))))
    #endif
    /* 1 when out[fk - 1, n) holds raw %K, 0 when the caller must run TA-Lib's tracking */
    static int aiots_fastk_direct(const double* h, const double* l, const double* c, Py_ssize_t n,
                                  int fk, double* out) {
        if (fk > AIOTS_FASTK_DIRECT_MAX) return 0;
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_cpu_avx2_fma()) return aiots_fastk_avx2(h, l, c, n, fk, out);
    #endif
        return aiots_fastk_plain(h, l, c, n, fk, out);
    }
    """
    double _fastk_value "aiots_fastk_value"(double c, double lowest, double highest) nogil
    bint _fastk_direct "aiots_fastk_direct"(const double* h, const double* lw, const double* c,
                                            Py_ssize_t n, int fk, double* out) nogil


cdef void _fastk_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int fk,
                   double* out) noexcept nogil:
    """Raw %K (valid from fk - 1; NaN before): the direct window extremes where they give
    TA-Lib's bits (_fastk_direct), else TA-Lib's tracking (_fastk_track)."""
    _nan(out, 0, fk - 1 if fk - 1 < n else n)
    if not _fastk_direct(h, lw, c, n, fk, out):
        _fastk_track(h, lw, c, n, fk, out)


cdef void _fastk_track(const double* h, const double* lw, const double* c, Py_ssize_t n, int fk,
                       double* out) noexcept nogil:
    """Raw %K (valid from fk - 1): TA_STOCH's window extremes, then _fastk_value."""
    cdef Py_ssize_t today = fk - 1, trailing = 0, lowest_idx = -1, highest_idx = -1, i
    cdef double lowest = 0.0, highest = 0.0, tmp
    _nan(out, 0, today if today < n else n)
    while today < n:
        tmp = lw[today]
        if lowest_idx < trailing:
            lowest_idx = trailing
            lowest = lw[lowest_idx]
            i = lowest_idx + 1
            while i <= today:
                tmp = lw[i]
                if tmp < lowest:
                    lowest_idx = i
                    lowest = tmp
                i += 1
        elif tmp <= lowest:
            lowest_idx = today
            lowest = tmp
        tmp = h[today]
        if highest_idx < trailing:
            highest_idx = trailing
            highest = h[highest_idx]
            i = highest_idx + 1
            while i <= today:
                tmp = h[i]
                if tmp > highest:
                    highest_idx = i
                    highest = tmp
                i += 1
        elif tmp >= highest:
            highest_idx = today
            highest = tmp
        out[today] = _fastk_value(c[today], lowest, highest)
        trailing += 1
        today += 1


cdef void _stoch_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int fk,
                   int sk, int sd, double* tmp, double* slowk, double* slowd) noexcept nogil:
    cdef Py_ssize_t a = fk - 1, b = fk - 1 + sk - 1, lbtot = fk - 1 + sk - 1 + sd - 1, i
    if n <= lbtot:
        _nan(slowk, 0, n)
        _nan(slowd, 0, n)
        return
    _fastk_k(h, lw, c, n, fk, tmp)
    _sma_k(tmp + a, n - a, sk, slowk + a)
    _sma_k(slowk + b, n - b, sd, slowd + b)
    _nan(slowk, 0, lbtot)
    _nan(slowd, 0, lbtot)


cdef void _stochrsi_k(const double* x, Py_ssize_t n, int p, int fk, int fd, double* rsi,
                      double* fastk, double* fastd) noexcept nogil:
    cdef Py_ssize_t lbtot = p + fk - 1 + fd - 1, a = p, b = p + fk - 1
    if n <= lbtot:
        _nan(fastk, 0, n)
        _nan(fastd, 0, n)
        return
    _rsi_k(x, n, p, rsi)
    _fastk_k(rsi + a, rsi + a, rsi + a, n - a, fk, fastk + a)
    _sma_k(fastk + b, n - b, fd, fastd + b)
    _nan(fastk, 0, lbtot)
    _nan(fastd, 0, lbtot)


cdef inline void _dm(double diff_p, double diff_m, double* plus_dm, double* minus_dm) noexcept nogil:
    """Add this bar's +DM/-DM (TA-Lib's rule, aiots_dm) to the running sums (DMI warm-up)."""
    cdef double p, m
    _dm_rule(diff_p, diff_m, &p, &m)
    minus_dm[0] += m
    plus_dm[0] += p


cdef extern from *:
    """
    /* x where c is 1, +0.0 where c is 0, by a bit mask: GCC turns `c ? x : 0.0` into a branch,
     * and which of +DM/-DM wins is a coin flip on price data (a mispredict every other bar). */
    static inline double aiots_keep(double x, int c) {
        uint64_t u;
        memcpy(&u, &x, sizeof u);
        u &= (uint64_t)0 - (uint64_t)(c != 0);
        memcpy(&x, &u, sizeof x);
        return x;
    }
    /* True range (TA_TRANGE's order; |a - b| is symmetric, so TA_ATR's order gives the same
     * bits): ATR, NATR, TRANGE and the DMI family all take it from here. */
    static inline double aiots_true_range(double high, double low, double prev_close) {
        double r = high - low, t = fabs(prev_close - high);
        r = t > r ? t : r;
        t = fabs(low - prev_close);
        return t > r ? t : r;
    }
    /* TA-Lib's +DM/-DM rule: this bar's +DM and -DM (one of them, or both, +0.0). */
    static inline void aiots_dm(double dp, double dmn, double* pdm, double* mdm) {
        int is_m = (dmn > 0) & (dp < dmn);
        int is_p = (!is_m) & (dp > 0) & (dp > dmn);
        *mdm = aiots_keep(dmn, is_m);
        *pdm = aiots_keep(dp, is_p);
    }
    /* The smoothed DMI bar, written once for the batch loop below and the ADX streaming class:
     * +DM/-DM by TA-Lib's rule and Wilder smoothing as one fused multiply-add per sum,
     * s = fma(s, (p-1)/p, x), a 4-cycle chain. */
    #define AIOTS_DMI_SMOOTH(FMA, PDM, MDM, TR, DP, DMN, TRV, C1)                                 \
        do {                                                                                       \
            double p_, m_;                                                                         \
            aiots_dm(DP, DMN, &p_, &m_);                                                           \
            MDM = FMA(MDM, C1, m_);                                                                \
            PDM = FMA(PDM, C1, p_);                                                                \
            TR = FMA(TR, C1, TRV);                                                                 \
        } while (0)
    /* +DI/-DI from the smoothed DM and TR (0 when TR is zero, TA-Lib's epsilon) */
    static inline double aiots_di(double dm, double tr) {
        return (tr > -1e-14 && tr < 1e-14) ? 0.0 : 100.0 * (dm / tr);
    }
    /* DX into *dx; returns whether the bar counts (TR and +DI + -DI not zero) */
    static inline int aiots_dx(double pdi, double mdi, double tr, double* dx) {
        double t = mdi + pdi;
        *dx = 100.0 * (fabs(mdi - pdi) / t);
        return !(tr > -1e-14 && tr < 1e-14) && !(t > -1e-14 && t < 1e-14);
    }
    /* ADX's Wilder step (skipped on a bar that does not count) */
    #define AIOTS_ADX_NEXT(FMA, ADX, OK, DX, C1, INV) ((OK) ? FMA(ADX, C1, (DX) * (INV)) : (ADX))
    static double aiots_adx_next(double adx, int ok, double dx, double c1, double inv) {
        return AIOTS_ADX_NEXT(fma, adx, ok, dx, c1, inv);
    }
    /* the streaming class's step (libm fma: correctly rounded, the same bits as the FMA loop) */
    static void aiots_dmi_smooth(double* pdm, double* mdm, double* tr, double dp, double dmn,
                                 double trv, double c1) {
        AIOTS_DMI_SMOOTH(fma, *pdm, *mdm, *tr, dp, dmn, trv, c1);
    }
    /* st: prev high, prev low, prev close, +DM, -DM, TR, sum of DX, ADX; bars today+1 .. n-1 */
    #define AIOTS_DMI_LOOP(NAME, ATTR, FMA)                                                        \
    static ATTR void NAME(const double* h, const double* l, const double* c, Py_ssize_t today,     \
                          Py_ssize_t n, int p, double* st, double* adx, double* pdi, double* mdi) { \
        double ph = st[0], pl = st[1], pc = st[2], pdm = st[3], mdm = st[4], tr = st[5];          \
        double sum_dx = st[6], prev_adx = st[7], c1 = (p - 1.0) / p, inv = 1.0 / p;              \
        Py_ssize_t lb_adx = 2 * (Py_ssize_t)p - 1;                                                 \
        while (today < n - 1) {                                                                    \
            double dp, dmn, mdi_v = 0.0, pdi_v = 0.0;                                              \
            today++;                                                                               \
            dp = h[today] - ph;                                                                    \
            ph = h[today];                                                                         \
            dmn = pl - l[today];                                                                   \
            pl = l[today];                                                                         \
            AIOTS_DMI_SMOOTH(FMA, pdm, mdm, tr, dp, dmn, aiots_true_range(ph, pl, pc), c1);        \
            pc = c[today];                                                                         \
            if (mdi || adx) mdi_v = aiots_di(mdm, tr);                                             \
            if (pdi || adx) pdi_v = aiots_di(pdm, tr);                                             \
            if (pdi) pdi[today] = pdi_v;                                                           \
            if (mdi) mdi[today] = mdi_v;                                                           \
            if (adx) {                                                                             \
                double dx;                                                                         \
                int ok = aiots_dx(pdi_v, mdi_v, tr, &dx);                                          \
                if (today <= lb_adx) {                                                             \
                    if (ok) sum_dx += dx;                                                          \
                    if (today == lb_adx) {                                                         \
                        prev_adx = sum_dx / p;                                                     \
                        adx[today] = prev_adx;                                                     \
                    }                                                                              \
                } else {                                                                           \
                    prev_adx = AIOTS_ADX_NEXT(FMA, prev_adx, ok, dx, c1, inv);                     \
                    adx[today] = prev_adx;                                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        st[0] = ph; st[1] = pl; st[2] = pc; st[3] = pdm; st[4] = mdm; st[5] = tr;                  \
        st[6] = sum_dx; st[7] = prev_adx;                                                          \
    }
    AIOTS_DMI_LOOP(aiots_dmi_plain, , fma)
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    AIOTS_DMI_LOOP(aiots_dmi_fma3, __attribute__((target("fma"))), __builtin_fma)
    static int aiots_dmi_have_fma = -1;
    #endif
    static void aiots_dmi_loop(const double* h, const double* l, const double* c, Py_ssize_t today,
                               Py_ssize_t n, int p, double* st, double* adx, double* pdi, double* mdi) {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_dmi_have_fma < 0) aiots_dmi_have_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        if (aiots_dmi_have_fma) { aiots_dmi_fma3(h, l, c, today, n, p, st, adx, pdi, mdi); return; }
    #endif
        aiots_dmi_plain(h, l, c, today, n, p, st, adx, pdi, mdi);
    }
    """
    void _dmi_loop "aiots_dmi_loop"(const double* h, const double* l, const double* c, Py_ssize_t today,
                                    Py_ssize_t n, int p, double* st, double* adx, double* pdi,
                                    double* mdi) nogil
    double _keep "aiots_keep"(double x, int c) nogil
    double _di "aiots_di"(double dm, double tr) nogil
    bint _dx "aiots_dx"(double pdi, double mdi, double tr, double* dx) nogil
    double _adx_next "aiots_adx_next"(double adx, int ok, double dx, double c1, double inv) nogil
    double _true_range "aiots_true_range"(double high, double low, double prev_close) nogil
    void _dm_rule "aiots_dm"(double dp, double dmn, double* pdm, double* mdm) nogil
    void _dmi_smooth "aiots_dmi_smooth"(double* pdm, double* mdm, double* tr, double dp, double dmn,
                                        double trv, double c1) nogil


cdef void _dmi_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int p,
                 double* adx, double* pdi, double* mdi) noexcept nogil:
    """ADX (lookback 2p-1) and +DI/-DI (lookback p) in one pass; any output may be NULL."""
    cdef Py_ssize_t today = 0, i
    cdef double prev_high, prev_low, prev_close, pdm = 0.0, mdm = 0.0, tr = 0.0, t
    cdef double diff_p, diff_m
    cdef double st[8]
    cdef Py_ssize_t lb_adx = 2 * p - 1
    if adx != NULL:
        _nan(adx, 0, lb_adx if lb_adx < n else n)
    if pdi != NULL:
        _nan(pdi, 0, p if p < n else n)
    if mdi != NULL:
        _nan(mdi, 0, p if p < n else n)
    if n <= p:
        return
    prev_high = h[0]
    prev_low = lw[0]
    prev_close = c[0]
    for i in range(p - 1):
        today += 1
        t = h[today]
        diff_p = t - prev_high
        prev_high = t
        t = lw[today]
        diff_m = prev_low - t
        prev_low = t
        _dm(diff_p, diff_m, &pdm, &mdm)
        tr += _true_range(prev_high, prev_low, prev_close)
        prev_close = c[today]
    st[0] = prev_high
    st[1] = prev_low
    st[2] = prev_close
    st[3] = pdm
    st[4] = mdm
    st[5] = tr
    st[6] = 0.0
    st[7] = 0.0
    _dmi_loop(h, lw, c, today, n, p, st, adx, pdi, mdi)


cdef void _di1_k(const double* h, const double* lw, const double* c, Py_ssize_t n, bint plus,
                 double* out) noexcept nogil:
    """PLUS_DI/MINUS_DI with period 1: raw DM over true range (TA-Lib, no x100)."""
    cdef Py_ssize_t i
    cdef double diff_p, diff_m, tr
    if n <= 1:
        _nan(out, 0, n)
        return
    out[0] = NAN
    for i in range(1, n):
        diff_p = h[i] - h[i - 1]
        diff_m = lw[i - 1] - lw[i]
        tr = _true_range(h[i], lw[i], c[i - 1])
        if plus:
            if diff_p > 0 and diff_p > diff_m and not _is_zero(tr):
                out[i] = diff_p / tr
            else:
                out[i] = 0.0
        else:
            if diff_m > 0 and diff_p < diff_m and not _is_zero(tr):
                out[i] = diff_m / tr
            else:
                out[i] = 0.0


cdef inline double _typical(double high, double low, double close) noexcept nogil:
    return (high + low + close) / 3.0


cdef inline double _cci_value(const double* buf, int p, double last) noexcept nogil:
    """TA_CCI from the ring ``buf`` of the last ``p`` typical prices (any rotation: sums run in
    ring order, as TA-Lib's circular buffer) and the newest one, ``last``."""
    cdef int j
    cdef double avg = 0.0, dev = 0.0, t, scale
    for j in range(p):
        avg += buf[j]
    avg /= p
    for j in range(p):
        dev += fabs(buf[j] - avg)
    t = last - avg
    dev /= p
    scale = fabs(avg)
    if not _is_zero_scaled(t, scale) and not _is_zero_scaled(dev, scale):
        return t / (0.015 * dev)
    return 0.0


cdef extern from *:
    """
    /* CCI for 4 bars at once, one bar a vector lane: _cci_value's two sums over the ring of the
     * last p typical prices run in ring-slot order (TA-Lib's circular buffer), each a chain of p
     * dependent adds a bar; one bar at a time the loop waited on them (80 cycles a bar at p 14).
     * Bar i keeps bar t in slot t mod p, so for the bars i..i+3 slot j holds, in lane k, bar
     * i - r (r = (i - j) mod p) unless bar i - r + p <= i + k has overwritten it: a select on
     * the lane number, computed in both sums (laying the 4 rings out in memory once was twice as
     * slow). Each lane adds the same values in the same slot order as _cci_value, so the bits
     * are the same. H: the typical prices of every bar; p >= 4 (a slot is overwritten at most
     * once in 4 bars). Returns the first bar not done (at most 3 left). */
    #if defined(__GNUC__)
    #define AIOTS_CCI_LOOP(NAME, ATTR)                                                          \
    static ATTR Py_ssize_t NAME(const double* H, Py_ssize_t n, int p, double* out) {          \
        const aiots_v4d lane = {0.0, 1.0, 2.0, 3.0};                                          \
        AIOTS_V4ABSMASK;                                                                      \
        Py_ssize_t i;                                                                         \
        for (i = p - 1; i + 3 < n; i += 4) {                                                  \
            aiots_v4d acc = {0.0, 0.0, 0.0, 0.0}, dev = acc, avg, t, sc, q;                   \
            aiots_v4i nz;                                                                     \
            int j, r0 = (int)(i % p), r;                                                      \
            for (j = 0, r = r0; j < p; j++, r = r ? r - 1 : p - 1) {                          \
                double o = H[i - r], w = H[p - r <= 3 ? i - r + p : i - r];                   \
                aiots_v4d ov = {o, o, o, o}, wv = {w, w, w, w};                               \
                aiots_v4i m = lane >= (double)(p - r);                                        \
                acc += (aiots_v4d)(((aiots_v4i)ov & ~m) | ((aiots_v4i)wv & m));               \
            }                                                                                 \
            avg = acc / (double)p;                                                            \
            for (j = 0, r = r0; j < p; j++, r = r ? r - 1 : p - 1) {                          \
                double o = H[i - r], w = H[p - r <= 3 ? i - r + p : i - r];                   \
                aiots_v4d ov = {o, o, o, o}, wv = {w, w, w, w};                               \
                aiots_v4i m = lane >= (double)(p - r);                                        \
                dev += AIOTS_V4ABS((aiots_v4d)(((aiots_v4i)ov & ~m) | ((aiots_v4i)wv & m)) - avg); \
            }                                                                                 \
            t = AIOTS_V4LD(H + i) - avg;                                                      \
            dev = dev / (double)p;                                                            \
            sc = AIOTS_V4ABS(avg) * AIOTS_TA_EPS;                                             \
            nz = ~(AIOTS_V4ABS(t) <= sc) & ~(AIOTS_V4ABS(dev) <= sc);                         \
            q = t / (0.015 * dev);                                                            \
            q = (aiots_v4d)((aiots_v4i)q & nz);                                               \
            memcpy(out + i, &q, sizeof q);                                                    \
        }                                                                                     \
        return i;                                                                             \
    }
    AIOTS_CCI_LOOP(aiots_cci_plain, )
    #if !defined(__clang__) && defined(__x86_64__)
    AIOTS_CCI_LOOP(aiots_cci_avx2, __attribute__((target("avx2,fma"))))
    #endif
    static Py_ssize_t aiots_cci_lanes(const double* H, Py_ssize_t n, int p, double* out) {
    #if !defined(__clang__) && defined(__x86_64__)
        if (aiots_cpu_avx2_fma()) return aiots_cci_avx2(H, n, p, out);
    #endif
        return aiots_cci_plain(H, n, p, out);
    }
    #else
    static Py_ssize_t aiots_cci_lanes(const double* H, Py_ssize_t n, int p, double* out) {
        return p - 1;
    }
    #endif
    """
    Py_ssize_t _cci_lanes "aiots_cci_lanes"(const double* typ, Py_ssize_t n, int p,
                                            double* out) nogil


cdef void _cci_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int p,
                 double* buf, double* typ, double* out) noexcept nogil:
    """CCI: the typical prices into ``typ`` (n doubles), 4 bars at a time in vector lanes
    (_cci_lanes, p >= 4), the rest one at a time through the ring ``buf`` (p doubles) and
    _cci_value, as the CCI class."""
    cdef Py_ssize_t i, j, lb = p - 1, done = lb
    if n <= lb:
        _nan(out, 0, n)
        return
    _nan(out, 0, lb)
    for i in range(n):
        typ[i] = _typical(h[i], lw[i], c[i])
    if p >= 4:
        done = _cci_lanes(typ, n, p, out)
    for i in range(done, n):
        # the ring as the CCI class holds it after bar i: bar t in slot t mod p
        for j in range(p):
            buf[j] = typ[i - (i - j) % p]
        out[i] = _cci_value(buf, p, typ[i])


cdef inline double _willr_value(double highest, double lowest, double close) noexcept nogil:
    """%R from the window's extremes (TA_WILLR's arithmetic, TA-Lib 0.8 scaled zero test); the
    batch kernel and the WillR class both end here."""
    cdef double q = (highest - close) / ((highest - lowest) * -0.01)
    return 0.0 if _is_zero_scaled(highest - lowest, fabs(highest) + fabs(lowest)) else q


cdef inline double _fmax(double a, double b) noexcept nogil:
    return a if a > b else b


cdef inline double _fmin(double a, double b) noexcept nogil:
    return a if a < b else b


cdef void _willr_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int p,
                   double* buf, double* out) noexcept nogil:
    """Window extremes by van Herk/Gil-Werman blocks (as TA-Lib 0.8's build): blocks of ``p``
    bars; a window is a suffix of the previous block and a prefix of the current one, so its max
    is max(suffix, prefix), three selects per bar and no branch on the data. The suffixes of a
    block are built backwards in the same loop that walks it forwards (independent chains).
    Only the extremes' values reach %R, so any exact window algorithm gives the same bits as the
    streaming class's monotonic deques. ``buf``: 4 * (p + 1) doubles."""
    cdef Py_ssize_t b0, t, ln, j, u, lb = p - 1
    cdef double* sa = buf
    cdef double* sb = buf + (p + 1)
    cdef double* na = buf + 2 * (p + 1)
    cdef double* nb = buf + 3 * (p + 1)
    cdef double* tmp
    cdef double pmax, pmin, smax, smin, inf = INFINITY
    if n <= lb:
        _nan(out, 0, n)
        return
    for t in range(p + 1):
        sa[t] = -inf
        sb[t] = inf
        na[t] = -inf
        nb[t] = inf
    b0 = 0
    while b0 < n:
        ln = p if n - b0 > p else n - b0
        pmax = -inf
        pmin = inf
        smax = -inf
        smin = inf
        for t in range(ln):
            j = b0 + t
            pmax = _fmax(h[j], pmax)
            pmin = _fmin(lw[j], pmin)
            out[j] = _willr_value(_fmax(sa[t + 1], pmax), _fmin(sb[t + 1], pmin), c[j])
            u = ln - 1 - t
            smax = _fmax(h[b0 + u], smax)
            smin = _fmin(lw[b0 + u], smin)
            na[u] = smax
            nb[u] = smin
        tmp = sa
        sa = na
        na = tmp
        tmp = sb
        sb = nb
        nb = tmp
        b0 += ln
    _nan(out, 0, lb)


cdef struct MfiSt:
    int period
    int idx
    int live
    long count
    double prev
    double pos_sum
    double neg_sum


cdef inline void _mfi_init(MfiSt* s, int period) noexcept nogil:
    s.period = period
    s.idx = 0
    s.live = 0
    s.count = 0
    s.prev = NAN
    s.pos_sum = 0.0
    s.neg_sum = 0.0


cdef inline double _mfi_push(MfiSt* s, double* pos, double* neg, double high, double low,
                             double close, double volume) noexcept nogil:
    """One TA_MFI bar (TA-Lib 0.8 tie and empty-window rules); ``pos``/``neg``: rings of
    ``period`` money flows. NaN while warming up. Used by the batch kernel and the MFI class.

    The flow goes to the positive or the negative ring by bit-mask selects (the sign of the
    typical-price change is a coin flip on price data); the sums add +0.0 on the other side."""
    cdef int idx = s.idx, p = s.period
    cdef long i = s.count
    cdef double tp = (high + low + close) / 3.0, d, mf, pv, nv
    cdef bint tie, up, dn
    s.count = i + 1
    if i == 0:
        s.prev = tp
        return NAN
    if i > p:
        s.live -= (pos[idx] != 0.0) | (neg[idx] != 0.0)
        s.pos_sum -= pos[idx]
        s.neg_sum -= neg[idx]
    d = tp - s.prev
    tie = _is_zero_scaled(d, fabs(tp) + fabs(s.prev))
    s.prev = tp
    mf = tp * volume
    up = (d > 0.0) & (not tie)
    dn = (d < 0.0) & (not tie)
    # TA-Lib counts a bar live when the flow and the (tie-zeroed) change are non-zero (NaN too)
    s.live += (mf != 0.0) & ((not tie) & (d != 0.0))
    pv = _keep(mf, up)
    nv = _keep(mf, dn)
    pos[idx] = pv
    neg[idx] = nv
    s.pos_sum += pv
    s.neg_sum += nv
    s.idx = idx + 1 if idx + 1 < p else 0
    if i < p:
        return NAN
    if s.live == 0:
        if i > p:
            s.pos_sum = 0.0
            s.neg_sum = 0.0
        return 0.0
    return 100.0 * (s.pos_sum / (s.pos_sum + s.neg_sum))


cdef void _mfi_k(const double* h, const double* lw, const double* c, const double* v, Py_ssize_t n,
                 int p, double* pos, double* neg, double* out) noexcept nogil:
    """The MFI step over the bars (lookback ``p``)."""
    cdef MfiSt st
    cdef Py_ssize_t i
    _mfi_init(&st, p)
    for i in range(n):
        out[i] = _mfi_push(&st, pos, neg, h[i], lw[i], c[i], v[i])


cdef inline double _roc_value(double x, double old) noexcept nogil:
    """TA_ROC: (x/old - 1)*100, 0 when ``old`` is 0."""
    return ((x / old) - 1.0) * 100.0 if old != 0.0 else 0.0


cdef inline double _mom_value(double x, double old) noexcept nogil:
    return x - old


cdef void _roc_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    cdef Py_ssize_t i
    if n <= p:
        _nan(out, 0, n)
        return
    _nan(out, 0, p)
    for i in range(p, n):
        out[i] = _roc_value(x[i], x[i - p])


cdef void _mom_k(const double* x, Py_ssize_t n, int p, double* out) noexcept nogil:
    cdef Py_ssize_t i
    if n <= p:
        _nan(out, 0, n)
        return
    _nan(out, 0, p)
    for i in range(p, n):
        out[i] = _mom_value(x[i], x[i - p])


cdef inline double _aroon_value(double factor, int p, long age) noexcept nogil:
    """Aroon line from the age (bars) of the window's latest extreme; factor = 100/period."""
    return factor * (p - age)


# the longest Aroon period done in vector lanes (their cost grows with the period; TA-Lib's
# tracking above it)
cdef enum:
    AROON_LANES_MAX_PERIOD = 32


cdef extern from *:
    """
    /* Aroon for 4 bars at once, one bar a vector lane: over each lane's p + 1 bars from the
     * oldest, `v <= lowest` (`v >= highest`) moves the extreme and its position (selects on
     * masks, p steps, no branch on the data). TA-Lib's tracking branches on every new extreme
     * and rescans when one leaves the window (mispredicts most bars). Both give the latest
     * position of the window's min (max): the tracked extreme is replaced by any later value <=
     * it (>= it), and a rescan is this scan; so the ages, and the lines factor * (p - age), are
     * TA-Lib's bits - unless a high or low is NaN (a rescan starting on it keeps it): the caller
     * checks. Returns the first bar not done (at most 3 left). */
    #if defined(__GNUC__)
    #define AIOTS_AROON_LOOP(NAME, ATTR)                                                      \
    static ATTR Py_ssize_t NAME(const double* h, const double* l, Py_ssize_t n, int p,       \
                                double* down, double* up) {                                   \
        const double factor = 100.0 / p;                                                      \
        Py_ssize_t i;                                                                         \
        for (i = p; i + 3 < n; i += 4) {                                                      \
            const double *lb = l + i - p, *hb = h + i - p;                                    \
            aiots_v4d blo = AIOTS_V4LD(lb), bhi = AIOTS_V4LD(hb), plo = {0.0, 0.0, 0.0, 0.0}; \
            aiots_v4d phi = plo, r;                                                           \
            for (int k = 1; k <= p; k++) {                                                    \
                aiots_v4d v = AIOTS_V4LD(lb + k), w = AIOTS_V4LD(hb + k);                     \
                aiots_v4d kv = {(double)k, (double)k, (double)k, (double)k};                  \
                aiots_v4i ml = v <= blo, mh = w >= bhi;                                       \
                blo = (aiots_v4d)(((aiots_v4i)v & ml) | ((aiots_v4i)blo & ~ml));              \
                plo = (aiots_v4d)(((aiots_v4i)kv & ml) | ((aiots_v4i)plo & ~ml));             \
                bhi = (aiots_v4d)(((aiots_v4i)w & mh) | ((aiots_v4i)bhi & ~mh));              \
                phi = (aiots_v4d)(((aiots_v4i)kv & mh) | ((aiots_v4i)phi & ~mh));             \
            }                                                                                 \
            r = factor * plo;                                                                 \
            memcpy(down + i, &r, sizeof r);                                                   \
            r = factor * phi;                                                                 \
            memcpy(up + i, &r, sizeof r);                                                     \
        }                                                                                     \
        return i;                                                                             \
    }
    AIOTS_AROON_LOOP(aiots_aroon_plain, )
    #if !defined(__clang__) && defined(__x86_64__)
    AIOTS_AROON_LOOP(aiots_aroon_avx2, __attribute__((target("avx2,fma"))))
    #endif
    static Py_ssize_t aiots_aroon_lanes(const double* h, const double* l, Py_ssize_t n, int p,
                                        double* down, double* up) {
    #if !defined(__clang__) && defined(__x86_64__)
        if (aiots_cpu_avx2_fma()) return aiots_aroon_avx2(h, l, n, p, down, up);
    #endif
        return aiots_aroon_plain(h, l, n, p, down, up);
    }
    #else
    static Py_ssize_t aiots_aroon_lanes(const double* h, const double* l, Py_ssize_t n, int p,
                                        double* down, double* up) {
        return p;
    }
    #endif
    """
    Py_ssize_t _aroon_lanes "aiots_aroon_lanes"(const double* h, const double* lw, Py_ssize_t n,
                                                int p, double* down, double* up) nogil


cdef void _aroon_k(const double* h, const double* lw, Py_ssize_t n, int p, double* down,
                   double* up) noexcept nogil:
    """Aroon (lookback p): 4 bars at a time in vector lanes (_aroon_lanes) up to
    AROON_LANES_MAX_PERIOD when no high or low is NaN, the rest with TA-Lib's tracking."""
    cdef Py_ssize_t i, today = p
    cdef bint has_nan = False
    if n <= p:
        _nan(down, 0, n)
        _nan(up, 0, n)
        return
    _nan(down, 0, p)
    _nan(up, 0, p)
    if p <= AROON_LANES_MAX_PERIOD:
        for i in range(n):
            has_nan |= isnan(h[i]) | isnan(lw[i])
        if not has_nan:
            today = _aroon_lanes(h, lw, n, p, down, up)
    _aroon_track(h, lw, n, p, today, down, up)


cdef void _aroon_track(const double* h, const double* lw, Py_ssize_t n, int p, Py_ssize_t today,
                       double* down, double* up) noexcept nogil:
    """TA_AROON's tracking of the extremes' positions for bars [today, n) (today >= p; the
    first bar rescans its window)."""
    cdef Py_ssize_t trailing = today - p, lowest_idx = -1, highest_idx = -1, i
    cdef double lowest = 0.0, highest = 0.0, tmp, factor = 100.0 / p
    while today < n:
        tmp = lw[today]
        if lowest_idx < trailing:
            lowest_idx = trailing
            lowest = lw[lowest_idx]
            i = lowest_idx + 1
            while i <= today:
                tmp = lw[i]
                if tmp <= lowest:
                    lowest_idx = i
                    lowest = tmp
                i += 1
        elif tmp <= lowest:
            lowest_idx = today
            lowest = tmp
        tmp = h[today]
        if highest_idx < trailing:
            highest_idx = trailing
            highest = h[highest_idx]
            i = highest_idx + 1
            while i <= today:
                tmp = h[i]
                if tmp >= highest:
                    highest_idx = i
                    highest = tmp
                i += 1
        elif tmp >= highest:
            highest_idx = today
            highest = tmp
        up[today] = _aroon_value(factor, p, today - highest_idx)
        down[today] = _aroon_value(factor, p, today - lowest_idx)
        trailing += 1
        today += 1


cdef void _trange_k(const double* h, const double* lw, const double* c, Py_ssize_t n,
                    double* out) noexcept nogil:
    cdef Py_ssize_t i
    if n <= 1:
        _nan(out, 0, n)
        return
    out[0] = NAN
    for i in range(1, n):
        out[i] = _true_range(h[i], lw[i], c[i - 1])


cdef extern from *:
    """
    /* ATR/NATR after the seed: Wilder smoothing as ONE fused multiply-add per bar,
     * atr = fma(atr, (p-1)/p, tr/p): a 4-cycle loop-carried chain instead of mul + add (TA-Lib's
     * wheel is built the same way). Compiled with and without the FMA instruction set and picked
     * at run time; fma() is correctly rounded, so both copies and the streaming classes (libm fma,
     * aiots_atr_next) give the same bits. */
    #define AIOTS_ATR_NEXT(FMA, ATR, TR, C1, INV) FMA(ATR, C1, (TR) * (INV))
    static double aiots_atr_next(double atr, double tr, double c1, double inv) {
        return AIOTS_ATR_NEXT(fma, atr, tr, c1, inv);
    }
    /* NATR from the ATR and the close (TA-Lib: 0 when the close is zero). */
    static inline double aiots_natr_value(double atr, double close) {
        double v = (atr / close) * 100.0;
        return ((close > -1e-14) & (close < 1e-14)) ? 0.0 : v;
    }
    #define AIOTS_ATR_BLK 64  /* bars a block: short enough that its divisions overlap the next block's chain */
    #define AIOTS_ATR_LOOP(NAME, ATTR, FMA)                                                     \
    static ATTR double NAME(const double* h, const double* l, const double* c, Py_ssize_t from, \
                            Py_ssize_t n, double atr, double c1, double inv, int norm,           \
                            double* out) {                                                       \
        Py_ssize_t i;                                                                            \
        Py_ssize_t b, e;                                                                         \
        for (b = from; b < n; b = e) {                                                           \
            e = n - b > AIOTS_ATR_BLK ? b + AIOTS_ATR_BLK : n;                                   \
            for (i = b; i < e; i++) {                                                            \
                atr = AIOTS_ATR_NEXT(FMA, atr, aiots_true_range(h[i], l[i], c[i - 1]), c1, inv); \
                out[i] = atr;                                                                    \
            }                                                                                    \
            /* NATR: the block's divisions in vector lanes, overlapping the next block's chain \
             * (a scalar division a bar beside the chain was the loop's bottleneck) */           \
            if (norm)                                                                            \
                for (i = b; i < e; i++) out[i] = aiots_natr_value(out[i], c[i]);                 \
        }                                                                                        \
        return atr;                                                                              \
    }
    AIOTS_ATR_LOOP(aiots_atr_plain, , fma)
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    AIOTS_ATR_LOOP(aiots_atr_fma3, __attribute__((target("fma"))), __builtin_fma)
    static int aiots_atr_have_fma = -1;
    #endif
    static double aiots_atr_loop(const double* h, const double* l, const double* c, Py_ssize_t from,
                                 Py_ssize_t n, double atr, double c1, double inv, int norm,
                                 double* out) {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_atr_have_fma < 0) aiots_atr_have_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        if (aiots_atr_have_fma) return aiots_atr_fma3(h, l, c, from, n, atr, c1, inv, norm, out);
    #endif
        return aiots_atr_plain(h, l, c, from, n, atr, c1, inv, norm, out);
    }
    """
    double _atr_loop "aiots_atr_loop"(const double* h, const double* l, const double* c, Py_ssize_t frm,
                                      Py_ssize_t n, double atr, double c1, double inv, int norm,
                                      double* out) nogil
    double _atr_next "aiots_atr_next"(double atr, double tr, double c1, double inv) nogil
    double _natr_value "aiots_natr_value"(double atr, double close) nogil


cdef void _atr_k(const double* h, const double* lw, const double* c, Py_ssize_t n, int p,
                 bint normalize, double* out) noexcept nogil:
    """ATR (normalize=False) or NATR (normalize=True) in one pass: SMA seed of the first ``p``
    true ranges, then Wilder smoothing as one fma per bar (_atr_loop / _atr_next)."""
    cdef Py_ssize_t i
    cdef double total = 0.0, prev, t, inv = 1.0 / p, c1 = _wilder_c1(p)
    if p == 1:
        _trange_k(h, lw, c, n, out)
        return
    if n <= p:
        _nan(out, 0, n)
        return
    _nan(out, 0, p)
    for i in range(1, p + 1):
        total += _true_range(h[i], lw[i], c[i - 1])
    prev = total / p
    t = c[p]
    if normalize:
        out[p] = _natr_value(prev, t)
    else:
        out[p] = prev
    _atr_loop(h, lw, c, p + 1, n, prev, c1, inv, normalize, out)


cdef void _stddev_k(const double* x, Py_ssize_t n, int p, double nbdev, double* out) noexcept nogil:
    """sqrt(TA_VAR) * nbdev in one pass (the StdDev class's steps); the variance is never
    negative (clamped on re-anchoring)."""
    cdef VarSt st
    cdef Py_ssize_t i, lb = p - 1
    if n <= lb:
        _nan(out, 0, n)
        return
    _nan(out, 0, lb)
    _var_init(&st, p)
    for i in range(lb):
        _var_warm(&st, x[i])
    for i in range(lb, n):
        out[i] = sqrt(_var_step(&st, x[i], x + i - lb, 0)) * nbdev


cdef inline double _obv_next(double obv, double x, double prev, double volume) noexcept nogil:
    """TA_OBV: add the volume on an up close, subtract it on a down close (bit-mask selects: the
    direction is a coin flip on price data; adding 0.0 - 0.0 leaves the sum unchanged)."""
    return obv + (_keep(volume, x > prev) - _keep(volume, x < prev))


cdef void _obv_k(const double* x, const double* v, Py_ssize_t n, double* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef double obv, prev
    if n == 0:
        return
    obv = v[0]
    prev = x[0]
    for i in range(n):
        obv = _obv_next(obv, x[i], prev, v[i])
        out[i] = obv
        prev = x[i]


cdef void _ad_k(const double* h, const double* lw, const double* c, const double* v, Py_ssize_t n,
                double* out) noexcept nogil:
    cdef Py_ssize_t i
    cdef double ad = 0.0
    for i in range(n):
        ad = _ad_step(ad, h[i], lw[i], c[i], v[i])
        out[i] = ad


cdef extern from *:
    """
    /* ADOSC's two EMAs must use a fused multiply-add (TA-Lib 0.8.1 does; without it the fast-slow
     * difference of the large A/D line drifts past 1e-9). Baseline x86-64 code has no FMA
     * instruction, so fma() is a libm call per EMA step. This loop is compiled twice, with and
     * without the FMA instruction set, and the FMA copy is picked at run time when the CPU has
     * it. fma() is correctly rounded either way, so both copies and the streaming class (libm
     * fma) give bit-identical results. -ffp-contract=off (see indicators.pyx) keeps GCC from
     * fusing anything else. The A/D bar and the ADOSC bar are written once here: the batch
     * loops expand them, the AD/ADOSC classes call the libm-fma instances. */
    static inline double aiots_ad_step(double ad, double high, double low, double close,
                                       double volume) {
        double t = high - low;
        if (t > 0.0) ad += (((close - low) - (high - close)) / t) * volume;
        return ad;
    }
    #define AIOTS_ADOSC_STEP(FMA, AD, FE, SE, H, L, C, V, FK, OFK, SK, OSK)                  \
        do {                                                                                  \
            AD = aiots_ad_step(AD, H, L, C, V);                                               \
            FE = FMA(OFK, FE, (FK) * (AD));                                                   \
            SE = FMA(OSK, SE, (SK) * (AD));                                                   \
        } while (0)
    /* st: A/D, fast EMA, slow EMA */
    static void aiots_adosc_step(double* st, double h, double l, double c, double v, double fk,
                                 double ofk, double sk, double osk) {
        AIOTS_ADOSC_STEP(fma, st[0], st[1], st[2], h, l, c, v, fk, ofk, sk, osk);
    }
    #define AIOTS_ADOSC_LOOP(NAME, ATTR, FMA)                                                  \
    static ATTR void NAME(const double* h, const double* l, const double* c, const double* v, \
                          Py_ssize_t n, double fk, double ofk, double sk, double osk,         \
                          double* st, double* out) {                                          \
        double ad = st[0], fe = st[1], se = st[2];                                            \
        Py_ssize_t i;                                                                         \
        for (i = 1; i < n; i++) {                                                             \
            AIOTS_ADOSC_STEP(FMA, ad, fe, se, h[i], l[i], c[i], v[i], fk, ofk, sk, osk);      \
            out[i] = fe - se;                                                                 \
        }                                                                                     \
        st[0] = ad; st[1] = fe; st[2] = se;                                                   \
    }
    AIOTS_ADOSC_LOOP(aiots_adosc_plain, , fma)
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    AIOTS_ADOSC_LOOP(aiots_adosc_fma3, __attribute__((target("fma"))), __builtin_fma)
    static int aiots_have_fma = -1;
    #endif
    static void aiots_adosc_loop(const double* h, const double* l, const double* c,
                                 const double* v, Py_ssize_t n, double fk, double ofk, double sk,
                                 double osk, double* st, double* out) {
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
        if (aiots_have_fma < 0) aiots_have_fma = __builtin_cpu_supports("fma") ? 1 : 0;
        if (aiots_have_fma) { aiots_adosc_fma3(h, l, c, v, n, fk, ofk, sk, osk, st, out); return; }
    #endif
        aiots_adosc_plain(h, l, c, v, n, fk, ofk, sk, osk, st, out);
    }
    """
    void _adosc_loop "aiots_adosc_loop"(const double* h, const double* l, const double* c,
                                        const double* v, Py_ssize_t n, double fk, double ofk,
                                        double sk, double osk, double* st, double* out) nogil
    double _ad_step "aiots_ad_step"(double ad, double high, double low, double close,
                                    double volume) nogil
    void _adosc_step "aiots_adosc_step"(double* st, double h, double l, double c, double v,
                                        double fk, double ofk, double sk, double osk) nogil


cdef void _adosc_k(const double* h, const double* lw, const double* c, const double* v,
                   Py_ssize_t n, int fast, int slow, double* out) noexcept nogil:
    """A/D line and fast/slow EMAs of it (fma steps, see the C loop above) in one pass."""
    cdef Py_ssize_t lb = (fast if fast > slow else slow) - 1
    cdef double fk = _per_to_k(fast), sk = _per_to_k(slow)
    cdef double st[3]
    if n <= lb:
        _nan(out, 0, n)
        return
    st[0] = _ad_step(0.0, h[0], lw[0], c[0], v[0])
    st[1] = st[0]
    st[2] = st[0]
    _adosc_loop(h, lw, c, v, n, fk, 1.0 - fk, sk, 1.0 - sk, st, out)
    _nan(out, 0, lb)
    if lb == 0:
        out[0] = 0.0


# ------------------------------------------------------------------------------ Python wrappers

cdef tuple _N1 = ("real",)
cdef tuple _HL = ("high", "low")
cdef tuple _HLC = ("high", "low", "close")
cdef tuple _HLCV = ("high", "low", "close", "volume")


@cython.final
cdef class _Batch:
    """The prologue every batch function shares: inputs converted once and checked, outputs
    allocated with TA-Lib's NaN prefix (up to the first bar where no input is NaN), and C pointers
    to the bars from there on (``x``, ``o``, ``n``) for the kernel, which runs without the GIL.
    Holds the arrays, so the pointers stay valid while the object lives."""

    cdef list _keep
    cdef tuple _outs
    cdef const double* x[4]
    cdef double* o[3]
    cdef Py_ssize_t n, beg

    cdef double* scratch(self, Py_ssize_t size) except NULL:
        """A work buffer of ``size`` doubles owned by this object."""
        cdef cnp.ndarray a = _empty(size if size > 0 else 1)
        self._keep.append(a)
        return _dp(a)

    cdef object result(self):
        return self._outs[0] if len(self._outs) == 1 else self._outs


cdef _Batch _batch(tuple values, tuple names, int nout, bint begidx=True):
    """Convert and check ``values`` (named ``names``), allocate ``nout`` outputs of the inputs'
    length; with ``begidx`` (TA-Lib's rule) the outputs are NaN before the first bar where no
    input is NaN and the pointers start there."""
    cdef _Batch b = _Batch.__new__(_Batch)
    cdef Py_ssize_t j, n, beg
    cdef list arrays
    cdef double* o
    arrays, n, beg = _inputs(values, names)
    if not begidx:
        beg = 0
    b._keep = arrays
    b._outs = tuple([_empty(n) for j in range(nout)])
    b.beg = beg
    b.n = n - beg
    for j in range(len(arrays)):
        b.x[j] = _dp(arrays[j]) + beg
    for j in range(nout):
        o = _dp(b._outs[j])
        _nan(o, 0, beg)
        b.o[j] = o + beg
    return b


def sma(real, *, period=30):
    """Simple moving average (TA_SMA). Default period 30; lookback period - 1."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _sma_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def ema(real, *, period=30):
    """Exponential moving average (TA_EMA), k = 2/(period+1), seeded by the SMA of the first
    ``period`` values. Default period 30; lookback period - 1."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _ema_at(b.x[0], b.n, p, p - 1, b.o[0])
    return b.result()


def wma(real, *, period=30):
    """Linearly weighted moving average (TA_WMA). Default period 30; lookback period - 1."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _wma_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def dema(real, *, period=30):
    """Double EMA, 2*EMA - EMA(EMA) (TA_DEMA). Default period 30; lookback 2*(period-1)."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _xema_k(b.x[0], b.n, p, 2, b.o[0])
    return b.result()


def tema(real, *, period=30):
    """Triple EMA, 3*E1 - 3*E2 + E3 (TA_TEMA). Default period 30; lookback 3*(period-1)."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _xema_k(b.x[0], b.n, p, 3, b.o[0])
    return b.result()


def kama(real, *, period=30):
    """Kaufman adaptive moving average (TA_KAMA; fast 2, slow 30). Default period 30;
    lookback period."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _kama_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def bbands(real, *, period=20, nbdev_up=2.0, nbdev_dn=2.0):
    """Bollinger bands over an SMA middle (TA_BBANDS, matype SMA): (upper, middle, lower).
    Defaults period 20, nbdev_up 2, nbdev_dn 2 (population standard deviation);
    lookback period - 1."""
    cdef int p = _period(period, "period", 2)
    cdef double up = _real(nbdev_up, "nbdev_up"), dn = _real(nbdev_dn, "nbdev_dn")
    cdef _Batch b = _batch((real,), _N1, 3)
    with nogil:
        _bbands_k(b.x[0], b.n, p, up, dn, b.o[0], b.o[1], b.o[2])
    return b.result()


def sar(high, low, *, acceleration=0.02, maximum=0.2):
    """Parabolic SAR (TA_SAR). Defaults acceleration 0.02, maximum 0.2; lookback 1. The first
    direction comes from the -DM of the first two bars, the first SAR is bar 0's low/high."""
    cdef double acc = _real(acceleration, "acceleration", 0.0)
    cdef double amax = _real(maximum, "maximum", 0.0)
    cdef _Batch b = _batch((high, low), _HL, 1)
    with nogil:
        _sar_k(b.x[0], b.x[1], b.n, acc, amax, b.o[0])
    return b.result()


def ny_session_starts(timestamps):
    """Boolean array: True where the America/New_York calendar day of an int64 ns UTC timestamp
    differs from the previous element's (and at index 0)."""
    from zoneinfo import ZoneInfo
    import datetime as _dt
    cdef cnp.ndarray ts
    try:
        ts = np.ascontiguousarray(timestamps, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"timestamps must be int64 nanoseconds: {exc}") from None
    if ts.ndim != 1:
        raise ValueError(f"timestamps must be 1-D, got {ts.ndim}-D")
    n = ts.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    hour_ns = 3_600_000_000_000
    hours = np.floor_divide(ts, hour_ns)
    uniq, inv = np.unique(hours, return_inverse=True)
    tz = ZoneInfo("America/New_York")
    offsets = np.empty(uniq.shape[0], dtype=np.int64)
    for j in range(uniq.shape[0]):
        h = int(uniq[j])
        if not -2_000_000 < h < 2_000_000:
            raise ValueError(f"timestamps must be within years 1742..2198, got {h * hour_ns} ns")
        d = _dt.datetime.fromtimestamp(h * 3600, tz=_dt.UTC).astimezone(tz)
        offsets[j] = int(d.utcoffset().total_seconds()) * 1_000_000_000
    local_day = np.floor_divide(ts + offsets[inv], 86_400 * 1_000_000_000)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(local_day[1:], local_day[: n - 1], out=starts[1:])
    return starts


def vwap(high, low, close, volume, *, session_start=None, timestamps=None):
    """Volume-weighted average price of the typical price (H+L+C)/3, cumulative within a session.

    Sessions start at index 0 and wherever ``session_start`` (bool array) is True, or, when
    ``timestamps`` (int64 ns UTC) are given instead, at each new America/New_York calendar day.
    NaN until the session has traded non-zero volume. No TA-Lib equivalent."""
    if session_start is not None and timestamps is not None:
        raise ValueError("give session_start or timestamps, not both")
    cdef _Batch b = _batch((high, low, close, volume), _HLCV, 1, False)
    cdef Py_ssize_t n = b.n
    cdef cnp.ndarray starts
    if timestamps is not None:
        starts = ny_session_starts(timestamps)
        if starts.shape[0] != n:
            raise ValueError(f"timestamps has length {starts.shape[0]} but high has length {n}")
    elif session_start is not None:
        try:
            starts = np.ascontiguousarray(session_start, dtype=bool)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"session_start must be a boolean array: {exc}") from None
        if starts.ndim != 1 or starts.shape[0] != n:
            raise ValueError(f"session_start must be 1-D of length {n}, got shape {np.shape(starts)}")
    else:
        starts = np.zeros(n, dtype=bool)
    cdef const char* s = <const char*>cnp.PyArray_DATA(starts)
    with nogil:
        _vwap_k(b.x[0], b.x[1], b.x[2], b.x[3], s, n, b.o[0])
    return b.result()


def rsi(real, *, period=14):
    """Relative strength index with Wilder smoothing (TA_RSI). Default period 14; lookback
    period."""
    cdef int p = _period(period, "period", 2)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _rsi_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def macd(real, *, fast=12, slow=26, signal=9):
    """MACD with EMAs (TA_MACD): (macd, signal, hist). Defaults 12/26/9; k = 2/(n+1); both EMAs
    are seeded at bar slow-1 (TA-Lib convention); lookback slow + signal - 2."""
    cdef int f = _period(fast, "fast", 2), s = _period(slow, "slow", 2)
    cdef int g = _period(signal, "signal", 1)
    cdef _Batch b = _batch((real,), _N1, 3)
    cdef double* q = b.scratch(f if f < s else s)
    with nogil:
        _macd_k(b.x[0], b.n, f, s, g, q, b.o[0], b.o[1], b.o[2])
    return b.result()


def stoch(high, low, close, *, fastk=5, slowk=3, slowd=3):
    """Slow stochastic (TA_STOCH, SMA smoothing): (slowk, slowd). Defaults 5/3/3; lookback
    fastk + slowk + slowd - 3."""
    cdef int fk = _period(fastk, "fastk", 1), sk = _period(slowk, "slowk", 1)
    cdef int sd = _period(slowd, "slowd", 1)
    cdef _Batch b = _batch((high, low, close), _HLC, 2)
    cdef double* q = b.scratch(b.n)
    with nogil:
        _stoch_k(b.x[0], b.x[1], b.x[2], b.n, fk, sk, sd, q, b.o[0], b.o[1])
    return b.result()


def stochrsi(real, *, period=14, fastk=5, fastd=3):
    """Stochastic RSI (TA_STOCHRSI, SMA %D): (fastk, fastd). Defaults 14/5/3; lookback
    period + fastk + fastd - 2."""
    cdef int p = _period(period, "period", 2), fk = _period(fastk, "fastk", 1)
    cdef int fd = _period(fastd, "fastd", 1)
    cdef _Batch b = _batch((real,), _N1, 2)
    cdef double* q = b.scratch(b.n)
    with nogil:
        _stochrsi_k(b.x[0], b.n, p, fk, fd, q, b.o[0], b.o[1])
    return b.result()


cdef _dmi(high, low, close, object period, int which):
    cdef int p = _period(period, "period", 2 if which == 0 else 1)
    cdef _Batch b = _batch((high, low, close), _HLC, 1)
    cdef const double* h = b.x[0]
    cdef const double* lw = b.x[1]
    cdef const double* c = b.x[2]
    cdef double* o = b.o[0]
    cdef Py_ssize_t m = b.n
    with nogil:
        if which == 0:
            _dmi_k(h, lw, c, m, p, o, NULL, NULL)
        elif p == 1:
            _di1_k(h, lw, c, m, which == 1, o)
        elif which == 1:
            _dmi_k(h, lw, c, m, p, NULL, o, NULL)
        else:
            _dmi_k(h, lw, c, m, p, NULL, NULL, o)
    return b.result()


def adx(high, low, close, *, period=14):
    """Average directional index, Wilder smoothing (TA_ADX). Default period 14; lookback
    2*period - 1."""
    return _dmi(high, low, close, period, 0)


def plus_di(high, low, close, *, period=14):
    """Plus directional indicator (TA_PLUS_DI). Default period 14; lookback period."""
    return _dmi(high, low, close, period, 1)


def minus_di(high, low, close, *, period=14):
    """Minus directional indicator (TA_MINUS_DI). Default period 14; lookback period."""
    return _dmi(high, low, close, period, 2)


def cci(high, low, close, *, period=14):
    """Commodity channel index on the typical price (TA_CCI). Default period 14; lookback
    period - 1."""
    cdef int p = _period(period, "period", 2)
    cdef _Batch b = _batch((high, low, close), _HLC, 1)
    cdef double* q = b.scratch(p)
    cdef double* typ = b.scratch(b.n)
    with nogil:
        _cci_k(b.x[0], b.x[1], b.x[2], b.n, p, q, typ, b.o[0])
    return b.result()


def willr(high, low, close, *, period=14):
    """Williams %R in [-100, 0] (TA_WILLR). Default period 14; lookback period - 1."""
    cdef int p = _period(period, "period", 2)
    cdef _Batch b = _batch((high, low, close), _HLC, 1)
    cdef double* q = b.scratch(4 * (p + 1))
    with nogil:
        _willr_k(b.x[0], b.x[1], b.x[2], b.n, p, q, b.o[0])
    return b.result()


def mfi(high, low, close, volume, *, period=14):
    """Money flow index (TA_MFI). Default period 14; lookback period."""
    cdef int p = _period(period, "period", 2)
    cdef _Batch b = _batch((high, low, close, volume), _HLCV, 1)
    cdef double* q1 = b.scratch(p)
    cdef double* q2 = b.scratch(p)
    with nogil:
        _mfi_k(b.x[0], b.x[1], b.x[2], b.x[3], b.n, p, q1, q2, b.o[0])
    return b.result()


def roc(real, *, period=10):
    """Rate of change in percent, (x/x[-period] - 1)*100 (TA_ROC). Default period 10; lookback
    period."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _roc_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def mom(real, *, period=10):
    """Momentum x - x[-period] (TA_MOM). Default period 10; lookback period."""
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _mom_k(b.x[0], b.n, p, b.o[0])
    return b.result()


def aroon(high, low, *, period=14):
    """Aroon (TA_AROON): (aroondown, aroonup), window period + 1 bars, latest extreme wins ties.
    Default period 14; lookback period."""
    cdef int p = _period(period, "period", 2)
    cdef _Batch b = _batch((high, low), _HL, 2)
    with nogil:
        _aroon_k(b.x[0], b.x[1], b.n, p, b.o[0], b.o[1])
    return b.result()


cdef _atr(high, low, close, object period, bint normalize):
    cdef int p = _period(period, "period", 1)
    cdef _Batch b = _batch((high, low, close), _HLC, 1)
    with nogil:
        _atr_k(b.x[0], b.x[1], b.x[2], b.n, p, normalize, b.o[0])
    return b.result()


def atr(high, low, close, *, period=14):
    """Average true range, Wilder smoothing seeded by the SMA of the first ``period`` true ranges
    (TA_ATR). Default period 14; lookback period (period 1 is TRANGE)."""
    return _atr(high, low, close, period, False)


def natr(high, low, close, *, period=14):
    """Normalized ATR, 100 * ATR / close (TA_NATR). Default period 14; lookback period
    (period 1 returns TRANGE, as TA-Lib does)."""
    return _atr(high, low, close, period, True)


def trange(high, low, close):
    """True range (TA_TRANGE). Lookback 1."""
    cdef _Batch b = _batch((high, low, close), _HLC, 1)
    with nogil:
        _trange_k(b.x[0], b.x[1], b.x[2], b.n, b.o[0])
    return b.result()


def stddev(real, *, period=5, nbdev=1.0):
    """Population standard deviation times ``nbdev`` (TA_STDDEV). Defaults period 5, nbdev 1;
    lookback period - 1."""
    cdef int p = _period(period, "period", 2)
    cdef double nd = _real(nbdev, "nbdev")
    cdef _Batch b = _batch((real,), _N1, 1)
    with nogil:
        _stddev_k(b.x[0], b.n, p, nd, b.o[0])
    return b.result()


def obv(real, volume):
    """On-balance volume starting at the first bar's volume (TA_OBV). Lookback 0."""
    cdef _Batch b = _batch((real, volume), ("real", "volume"), 1)
    with nogil:
        _obv_k(b.x[0], b.x[1], b.n, b.o[0])
    return b.result()


def ad(high, low, close, volume):
    """Chaikin accumulation/distribution line (TA_AD). Lookback 0."""
    cdef _Batch b = _batch((high, low, close, volume), _HLCV, 1)
    with nogil:
        _ad_k(b.x[0], b.x[1], b.x[2], b.x[3], b.n, b.o[0])
    return b.result()


def adosc(high, low, close, volume, *, fast=3, slow=10):
    """Chaikin A/D oscillator, EMA(fast) - EMA(slow) of the A/D line, both EMAs seeded with the
    first A/D value (TA_ADOSC). Defaults 3/10; lookback max(fast, slow) - 1."""
    cdef int f = _period(fast, "fast", 2), s = _period(slow, "slow", 2)
    cdef _Batch b = _batch((high, low, close, volume), _HLCV, 1)
    with nogil:
        _adosc_k(b.x[0], b.x[1], b.x[2], b.x[3], b.n, f, s, b.o[0])
    return b.result()
