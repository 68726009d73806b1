# Barone-Adesi-Whaley vectorised over contracts for core/options.pyx (included after
# _opt_american.pxi, whose _baw it reproduces, not compiled alone): american_price(method="baw").

# ------------------------------------------------------------------------------------------------
# Barone-Adesi-Whaley over arrays: the same seed, Newton update and stopping rule as _baw, with
# several options per vector lane (libmvec log/erfc/exp; one scalar Newton step costs ~30 ns, mostly
# two scalar erfc). Per block of AIOTS_BAW_BLK options: the setup and seed in one vector loop; then
# Newton passes over the whole block, a converged lane keeping its value (the passes stop when every
# lane has converged: typically 4-8, the scalar iteration count's maximum over the block); lanes
# still open after AIOTS_BAW_VPASS passes finish one at a time with the same step; the final
# premium a (S/si)^Q in one more vector loop. The European value, which the caller needs anyway
# (lower bound), is added by the caller: kind 0 price = European + prem, 1 exercise now
# (intrinsic), 2 no early-exercise premium (European), 3 NaN.
# ------------------------------------------------------------------------------------------------

cdef extern from *:
    """
    #define AIOTS_BAW_BLK 64
    #if AIOTS_VMATH
    #define AIOTS_OMP_SIMD_OPEN _Pragma("omp simd reduction(+:open)")
    #else
    #define AIOTS_OMP_SIMD_OPEN
    #endif
    #define AIOTS_BAW_VPASS 12
    /* One Newton pass at si (th = +1 call, -1 put): returns 1 when |LHS - RHS| / K <= tol (si kept),
     * else writes the update to *si_new. */
    #define AIOTS_BAW_STEP(LOG, ERFC, EXP)                                                               \
        double fwd = si * dd / rd, d1 = (LOG(fwd / k) + 0.5 * var) / sv;                                 \
        double n1 = 0.5 * ERFC(-th * d1 * 0.7071067811865476);                                           \
        double n2 = 0.5 * ERFC(-th * (d1 - sv) * 0.7071067811865476);                                    \
        double pdf = 0.3989422804014327 * EXP(-0.5 * d1 * d1);                                           \
        double euro = th * (si * dd * n1 - k * rd * n2);                                                 \
        double lhs = th * (si - k), rhs = euro + th * (1.0 - dd * n1) * si / qc;                        \
        double bi = th * dd * n1 * (1.0 - 1.0 / qc) + (th - dd * pdf / sv) / qc;                        \
        int conv = fabs(lhs - rhs) / k <= tol;                                                           \
        double si_new = (k + th * rhs - th * bi * si) / (1.0 - th * bi);

    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_baw_block(int m, const double* S, const double* K, const double* T, const double* R,
                                const double* Qy, const double* V, const unsigned char* C, double tol,
                                double* prem, int* kind) {
        double SI[AIOTS_BAW_BLK], DD[AIOTS_BAW_BLK], RD[AIOTS_BAW_BLK], VAR[AIOTS_BAW_BLK];
        double SV[AIOTS_BAW_BLK], QC[AIOTS_BAW_BLK], TH[AIOTS_BAW_BLK], KB[AIOTS_BAW_BLK], SB[AIOTS_BAW_BLK];
        double STD[AIOTS_BAW_BLK];
        int ST[AIOTS_BAW_BLK], IT[AIOTS_BAW_BLK]; /* ST: 0 open, 1 converged, 2 NaN, 3 European */
        int i, pass, open;
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            double s = S[i], k = K[i], t = T[i], r = R[i], q = Qy[i], v = V[i];
            int ok = (s > 0.0) & (s < INFINITY) & (k > 0.0) & (k < INFINITY) & (t > 0.0) & (t < INFINITY)
                     & (v > 0.0) & (v < INFINITY) & (fabs(r) < INFINITY) & (fabs(q) < INFINITY);
            double th = C[i] ? 1.0 : -1.0;
            double dd = aiots_vexp(-q * t), rd = aiots_vexp(-r * t), var = v * v * t, sv = sqrt(var);
            double bT = aiots_vlog(dd / rd), lrd = aiots_vlog(rd);
            double n = 2.0 * bT / var, mm = -2.0 * lrd / var;
            double qu = 0.5 * (-(n - 1.0) + th * sqrt((n - 1.0) * (n - 1.0) + 4.0 * mm));
            double su = k / (1.0 - 1.0 / qu);
            double hc = -(bT + 2.0 * sv) * k / (su - k), hp = (bT - 2.0 * sv) * k / (k - su);
            double eh = aiots_vexp(th > 0.0 ? hc : hp);
            double k1 = -2.0 * lrd / (var * (1.0 - rd)), k2 = 2.0 / var;
            double kk = fabs(1.0 - rd) > 2.3e-13 ? k1 : k2;
            /* the seed; where it breaks down (e.g. r = 0 with a large yield) S_inf or a multiple of K */
            double sc = k + (su - k) * (1.0 - eh), sp = su + (k - su) * eh;
            sc = sc > k ? sc : (su > k ? su : 2.0 * k);
            sp = (sp > 0.0 && sp < k) ? sp : ((su > 0.0 && su < k) ? su : 0.5 * k);
            double si = th > 0.0 ? sc : sp;
            double st = !ok ? 2.0 : ((th > 0.0 ? q * t : r * t) <= 1e-12 ? 3.0 : 0.0);
            double qc = 0.5 * (-(n - 1.0) + th * sqrt((n - 1.0) * (n - 1.0) + 4.0 * kk));
            /* lanes without a Newton iteration get harmless values (no inf/NaN into libmvec, whose
             * special-value path is scalar) */
            SI[i] = st == 0 ? si : 1.0;
            KB[i] = st == 0 ? k : 1.0;
            SB[i] = st == 0 ? s : 1.0;
            DD[i] = st == 0 ? dd : 1.0;
            RD[i] = st == 0 ? rd : 1.0;
            VAR[i] = st == 0 ? var : 1.0;
            SV[i] = st == 0 ? sv : 1.0;
            QC[i] = st == 0 ? qc : 2.0;
            TH[i] = th;
            STD[i] = st;  /* a double: with an int store among the doubles GCC 12 does not vectorise */
        }
        for (i = 0; i < m; i++) {
            ST[i] = (int)STD[i];
            IT[i] = 0;
        }
        for (pass = 0; pass < AIOTS_BAW_VPASS; pass++) {
            open = 0;
            AIOTS_OMP_SIMD_OPEN
            for (i = 0; i < m; i++) {
                double si = SI[i], dd = DD[i], rd = RD[i], var = VAR[i], sv = SV[i], th = TH[i];
                double qc = QC[i], k = KB[i];
                int st = ST[i], it = IT[i];
                AIOTS_BAW_STEP(aiots_vlog, aiots_verfc, aiots_vexp)
                /* branch free (the loop must vectorise): an open lane converges, fails or moves */
                int valid = si_new > 0.0 && si_new < INFINITY;
                int moved = st == 0 && !conv && valid;
                int nst = conv ? 1 : (!valid ? 2 : (it + 1 >= 200 ? 1 : 0));
                SI[i] = moved ? si_new : si;
                IT[i] = it + moved;
                st = st == 0 ? nst : st;
                ST[i] = st;
                open += st == 0;
            }
            if (!open) break;
        }
        for (i = 0; i < m; i++) {  /* rare stragglers: the same step, one lane at a time */
            while (ST[i] == 0) {
                double si = SI[i], dd = DD[i], rd = RD[i], var = VAR[i], sv = SV[i], th = TH[i];
                double qc = QC[i], k = KB[i];
                AIOTS_BAW_STEP(log, erfc, exp)
                if (conv) ST[i] = 1;
                else if (!(si_new > 0.0 && si_new < INFINITY)) ST[i] = 2;
                else {
                    SI[i] = si_new;
                    if (++IT[i] >= 200) ST[i] = 1;
                }
            }
        }
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            double si = SI[i], dd = DD[i], rd = RD[i], var = VAR[i], sv = SV[i], th = TH[i], s = SB[i];
            double d1 = (aiots_vlog(si * dd / rd / KB[i]) + 0.5 * var) / sv;
            double nn = 0.5 * aiots_verfc(-th * d1 * 0.7071067811865476);
            double a = th * (1.0 - dd * nn) * si / QC[i];
            double p = a * aiots_vexp(QC[i] * aiots_vlog(s / si));
            int ex = th > 0.0 ? s >= si : s <= si;
            prem[i] = p;
            kind[i] = ST[i] == 2 ? 3 : (ST[i] == 3 ? 2 : (ex ? 1 : 0));
        }
    }
    """
    void _baw_block "aiots_baw_block"(int m, const double* S, const double* K, const double* T, const double* R,
                                      const double* Q, const double* V, const unsigned char* C, double tol,
                                      double* prem, int* kind) noexcept nogil
    int BAW_BLK "AIOTS_BAW_BLK"


cdef void _baw_range(const double* pS, Py_ssize_t sS, const double* pK, Py_ssize_t sK, const double* pT,
                     Py_ssize_t sT, const double* pr, Py_ssize_t sr, const double* pq, Py_ssize_t sq,
                     const double* pv, Py_ssize_t sv, const unsigned char* pc, Py_ssize_t sc, Py_ssize_t lo,
                     Py_ssize_t hi, double* out) noexcept nogil:
    """american_price(method="baw") for rows lo..hi: _baw_block per block, then the European value and
    _am_price1's lower bounds per row (same results as _am_price1(M_BAW, ...) to a few ulp)."""
    cdef double bS[64]
    cdef double bK[64]
    cdef double bT[64]
    cdef double br[64]
    cdef double bq[64]
    cdef double bv[64]
    cdef unsigned char bc[64]
    cdef double prem[64]
    cdef int kind[64]
    cdef Py_ssize_t b0, i
    cdef int m, j
    cdef double S, K, euro, intr, a, low
    cdef bint call
    b0 = lo
    while b0 < hi:
        m = <int> (hi - b0 if hi - b0 < BAW_BLK else BAW_BLK)
        for j in range(m):
            i = b0 + j
            bS[j] = pS[i * sS]
            bK[j] = pK[i * sK]
            bT[j] = pT[i * sT]
            br[j] = pr[i * sr]
            bq[j] = pq[i * sq]
            bv[j] = pv[i * sv]
            bc[j] = pc[i * sc] != 0
        _baw_block(m, bS, bK, bT, br, bq, bv, bc, BAW_TOL, prem, kind)
        for j in range(m):
            S = bS[j]
            K = bK[j]
            call = bc[j] != 0
            if kind[j] == 3 or _bad(S, K, bT[j], br[j], bq[j], bv[j]):
                out[b0 + j] = NAN
                continue
            euro = _bs_price1(S, K, bT[j], br[j], bq[j], bv[j], call)
            intr = fmax(S - K, 0.0) if call else fmax(K - S, 0.0)
            if kind[j] == 0:
                a = euro + prem[j]
            elif kind[j] == 1:
                a = S - K if call else K - S
            else:
                a = euro
            if not a == a:
                out[b0 + j] = NAN
                continue
            low = fmax(euro, intr)
            out[b0 + j] = low if a - low <= AM_NOISE * (S + K) else a
        b0 += m
