# Bjerksund-Stensland 2002 vectorised over contracts for core/options.pyx (included after
# _opt_american.pxi, whose _bs2002 it reproduces, not compiled alone): american_price(method="bs2002").

# ------------------------------------------------------------------------------------------------
# One option at a time (_bs2002) spends most of its time on short vector calls padded to the vector
# width (20 bivariate normals in 24 slots, 5 phi terms in 8 normals ...) and on scalar glue between
# them (~30 divisions, the bivariate normals' tail branches). Here every stage is one vector loop
# over a block of up to AIOTS_BS02_BLK options: the setup, triggers and logs; the 48 normal
# arguments and 33 exponents of both formulas (1993 and the 2002 two-step); one erfc and one exp pass
# over them; the 20 bivariate normals' 12 Gauss-Legendre nodes (one vectorised exp per slot and
# node over the block); the assembly and max(2002, 1993). Same formulas, same operation order as
# _bs1993_call, _bs_phi_n, _gt_prep/_gt_finish and bvn_args/bvn_done, except libmvec log/exp in the
# setup instead of libm's and products with reciprocals for the ~40 divisions (a few ulp apart). A
# lane that takes any branch of the scalar code other than the main one (no early-exercise premium,
# S at or above a trigger, a phi weight past e^700) is flagged and the caller prices it with _bs2002.
# ------------------------------------------------------------------------------------------------

cdef extern from *:
    """
    #define AIOTS_BS02_BLK 64
    #define AIOTS_BS02_GOLDEN 0.6180339887498949
    #define AIOTS_BS02_PSI_MAX_LOG 16.0
    #define AIOTS_BS02_TAIL 9.5
    /* one phi term of _bs_phi_n: normals Z[zs], Z[zs+1], exponents X[xs], X[xs+1] */
    #define AIOTS_BS02_PHI(zs, xs, g, lnH, lnI, lnref, TT, ivst)                                     \\
        {                                                                                          \\
            double d_ = -((lS - (lnH)) + (b + ((g) - 0.5) * vsq) * (TT)) * (ivst);                 \\
            double kap_ = 2.0 * b * ivsq + (2.0 * (g) - 1.0);                                       \\
            double lis_ = (lnI) - lS;                                                              \\
            Z[zs][i] = d_;                                                                         \\
            Z[(zs) + 1][i] = d_ - 2.0 * lis_ * (ivst);                                             \\
            X[xs][i] = (-r + (g) * b + 0.5 * (g) * ((g) - 1.0) * vsq) * (TT) + (g) * (lS - (lnref)); \\
            X[(xs) + 1][i] = kap_ * lis_;                                                          \\
            tail = tail | (kap_ * lis_ >= 700.0);                                                  \\
        }
    /* one power's terms of _gt_prep: normals Z[zs..zs+3+4nh], exponents X[xs..xs+4], e1..e4 E[es..] */
    #define AIOTS_BS02_GT(zs, xs, es, g, lnref, nh, lnHb)                                           \\
        {                                                                                          \\
            double dr_ = b + ((g) - 0.5) * vsq;                                                    \\
            double kap_ = 2.0 * b * ivsq + (2.0 * (g) - 1.0);                                       \\
            double p2_ = kap_ * (l2 - lS), p3_ = kap_ * (l1 - lS), p4_ = kap_ * (l1 - l2);         \\
            double pm_ = p3_ > p4_ ? p3_ : p4_;                                                    \\
            pm_ = p2_ > pm_ ? p2_ : pm_;                                                           \\
            ok02 = ok02 & !(pm_ > AIOTS_BS02_PSI_MAX_LOG);                                         \\
            double dt1_ = dr_ * t1, dT_ = dr_ * t;                                                 \\
            double lam_ = -r + (g) * b + 0.5 * (g) * ((g) - 1.0) * vsq;                            \\
            double m1_ = lS - l1, m2_ = 2.0 * l2 - lS - l1, sc_ = (g) * (lS - (lnref));            \\
            double e0_ = (m1_ + dt1_) * ivs1, e1_ = (m2_ + dt1_) * ivs1;                             \\
            double e2_ = (m1_ - dt1_) * ivs1, e3_ = (m2_ - dt1_) * ivs1;                             \\
            E[es][i] = e0_;                                                                        \\
            E[(es) + 1][i] = e1_;                                                                  \\
            E[(es) + 2][i] = e2_;                                                                  \\
            E[(es) + 3][i] = e3_;                                                                  \\
            Z[zs][i] = -e0_;                                                                       \\
            Z[(zs) + 1][i] = -e1_;                                                                 \\
            Z[(zs) + 2][i] = -e2_;                                                                 \\
            Z[(zs) + 3][i] = -e3_;                                                                 \\
            Z[(zs) + 4][i] = -(lS - l1 + dT_) * ivs2;                                               \\
            Z[(zs) + 5][i] = -(2.0 * l2 - lS - l1 + dT_) * ivs2;                                    \\
            Z[(zs) + 6][i] = -(2.0 * l1 - lS - l1 + dT_) * ivs2;                                    \\
            Z[(zs) + 7][i] = -(lS + 2.0 * (l1 - l2) - l1 + dT_) * ivs2;                             \\
            if (nh == 2) {                                                                         \\
                Z[(zs) + 8][i] = -(lS - (lnHb) + dT_) * ivs2;                                       \\
                Z[(zs) + 9][i] = -(2.0 * l2 - lS - (lnHb) + dT_) * ivs2;                            \\
                Z[(zs) + 10][i] = -(2.0 * l1 - lS - (lnHb) + dT_) * ivs2;                           \\
                Z[(zs) + 11][i] = -(lS + 2.0 * (l1 - l2) - (lnHb) + dT_) * ivs2;                    \\
            }                                                                                      \\
            X[xs][i] = p2_;                                                                        \\
            X[(xs) + 1][i] = p3_;                                                                  \\
            X[(xs) + 2][i] = p4_;                                                                  \\
            X[(xs) + 3][i] = lam_ * t + sc_;                                                       \\
            X[(xs) + 4][i] = lam_ * t1 + sc_;                                                      \\
        }
    /* psi_j of one power (_gt_finish) from the bivariate normals BV[a0 + 4j + m] */
    #define AIOTS_BS02_PSI(xs, a0, j)                                                               \\
        (EX[(xs) + 3][i] * (BV[(a0) + 4 * (j)][i] - EX[xs][i] * BV[(a0) + 4 * (j) + 1][i]               \\
                            - EX[(xs) + 1][i] * BV[(a0) + 4 * (j) + 2][i]                              \\
                            + EX[(xs) + 2][i] * BV[(a0) + 4 * (j) + 3][i]))
    #define AIOTS_BS02_PHI12(zs, xs) (EX[(xs) + 4][i] * (PZ[zs][i] - EX[xs][i] * PZ[(zs) + 1][i]))
    #define AIOTS_BS02_PO(zs, xs) (EX[xs][i] * (PZ[zs][i] - EX[(xs) + 1][i] * PZ[(zs) + 1][i]))

    /* Call-form inputs (S, K, T, r, carry b, v) of m options (m a multiple of 8, <= AIOTS_BS02_BLK,
     * every lane finite and valid: the caller puts harmless values in invalid and padding lanes).
     * val = max(two-step 2002 (NaN where ill-conditioned), 1993); flag = 1 where the caller must use
     * _bs2002 instead (a branch other than the main one); euro = the plain Black-Scholes value
     * (a few ulp of S + K: only to skip the exact European of the lower-bound test where the
     * premium is far above its noise floor). */
    static inline __attribute__((always_inline)) void
    aiots_bs2002_body(int m, const double* S_, const double* K_, const double* T_, const double* R_,
                      const double* B_, const double* V_, double* val, double* flag, double* euro) {
        enum { NZ = 50, NX = 35, NE = 12, NB = 20, NL = 16 };
        double Z[NZ][AIOTS_BS02_BLK], PZ[NZ][AIOTS_BS02_BLK], X[NX][AIOTS_BS02_BLK], EX[NX][AIOTS_BS02_BLK];
        double E[NE][AIOTS_BS02_BLK], HK[NB][AIOTS_BS02_BLK], HS[NB][AIOTS_BS02_BLK], ACC[NB][AIOTS_BS02_BLK];
        double L[NL][AIOTS_BS02_BLK];  /* per-lane values shared by the stages */
        double XN[12 * AIOTS_BS02_BLK];
        double BV[NB][AIOTS_BS02_BLK];  /* the bivariate normals */  /* one slot's node exponents */
        int i, s, k;
        /* setup (_bs_setup), the triggers of both formulas and their logs */
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            double Sv = S_[i], Kv = K_[i], t = T_[i], r = R_[i], b = B_[i], v = V_[i];
            double vsq = v * v;
            double beta = (0.5 - b / vsq) + sqrt((b / vsq - 0.5) * (b / vsq - 0.5) + 2.0 * r / vsq);
            double binf = beta / (beta - 1.0) * Kv;
            double b0 = r / (r - b) * Kv;
            b0 = Kv > b0 ? Kv : b0;
            /* flags as doubles (selects): with int masks among the doubles GCC 12 does not vectorise */
            double ok = b < r ? 1.0 : 0.0;
            ok = beta > 1.0 + 1e-12 ? ok : 0.0;
            ok = binf < INFINITY ? ok : 0.0;
            ok = binf > b0 ? ok : 0.0;
            /* a flagged lane goes on with harmless values (no inf/NaN into libmvec), selected before
             * the exps: a select after them would sink an exp into a branch (no vector call there) */
            Sv = ok != 0.0 ? Sv : 100.0;
            Kv = ok != 0.0 ? Kv : 100.0;
            t = ok != 0.0 ? t : 1.0;
            r = ok != 0.0 ? r : 0.05;
            b = ok != 0.0 ? b : 0.0;
            v = ok != 0.0 ? v : 0.3;
            vsq = v * v;
            beta = (0.5 - b / vsq) + sqrt((b / vsq - 0.5) * (b / vsq - 0.5) + 2.0 * r / vsq);
            binf = beta / (beta - 1.0) * Kv;
            b0 = r / (r - b) * Kv;
            b0 = Kv > b0 ? Kv : b0;
            double t1 = AIOTS_BS02_GOLDEN * t;
            double c = Kv * Kv / ((binf - b0) * b0);
            double i1 = b0 + (binf - b0) * (1.0 - aiots_vexp(-(b * t1 + 2.0 * v * sqrt(t1)) * c));
            double i2 = b0 + (binf - b0) * (1.0 - aiots_vexp(-(b * t + 2.0 * v * sqrt(t)) * c));
            double i9 = b0 + (binf - b0) * (1.0 - aiots_vexp(-(b * t + 2.0 * v * sqrt(t)) * b0 / (binf - b0)));
            ok = Sv < i2 ? ok : 0.0;  /* exercised now: the caller's _bs2002 */
            ok = Sv < i9 ? ok : 0.0;
            L[0][i] = Sv;
            L[1][i] = Kv;
            L[2][i] = t;
            L[3][i] = r;
            L[4][i] = b;
            L[5][i] = v;
            L[6][i] = beta;
            L[7][i] = i1;
            L[8][i] = i2;
            L[9][i] = i9;
            L[10][i] = ok != 0.0 ? 0.0 : 1.0;
        }
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            L[11][i] = aiots_vlog(L[0][i]);
            L[12][i] = aiots_vlog(L[1][i]);
            L[13][i] = aiots_vlog(L[7][i]);
            L[14][i] = aiots_vlog(L[8][i]);
            L[15][i] = aiots_vlog(L[9][i]);
        }
        /* the normals' arguments and the exponents of both formulas */
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            double t = L[2][i], r = L[3][i], b = L[4][i], v = L[5][i], beta = L[6][i];
            double lS = L[11][i], lK = L[12][i], l1 = L[13][i], l2 = L[14][i], li = L[15][i];
            double vsq = v * v, t1 = AIOTS_BS02_GOLDEN * t;
            double vs1 = v * sqrt(t1), vs2 = v * sqrt(t);
            /* reciprocals: the ~40 divisions of the scalar code as products (a few ulp apart) */
            double ivs1 = 1.0 / vs1, ivs2 = 1.0 / vs2, ivsq = 1.0 / vsq;
            int tail = 0, ok02 = 1;
            /* 1993 (_bs1993_call): g = beta, 1, 1, 0, 0; H = i, i, K, i, K; I = i; ref = i, 1, 1, 1, 1 */
            AIOTS_BS02_PHI(0, 0, beta, li, li, li, t, ivs2)
            AIOTS_BS02_PHI(2, 2, 1.0, li, li, 0.0, t, ivs2)
            AIOTS_BS02_PHI(4, 4, 1.0, lK, li, 0.0, t, ivs2)
            AIOTS_BS02_PHI(6, 6, 0.0, li, li, 0.0, t, ivs2)
            AIOTS_BS02_PHI(8, 8, 0.0, lK, li, 0.0, t, ivs2)
            X[10][i] = beta * (lS - li);
            /* 2002's phi(S, t1 | g, I2, I2): g = beta, 1, 0 */
            AIOTS_BS02_PHI(10, 11, beta, l2, l2, l2, t1, ivs1)
            AIOTS_BS02_PHI(12, 13, 1.0, l2, l2, 0.0, t1, ivs1)
            AIOTS_BS02_PHI(14, 15, 0.0, l2, l2, 0.0, t1, ivs1)
            X[17][i] = beta * (lS - l2);
            /* 2002's phi(t1 | g, I1, I2) and psi terms: H = I1 (and K for g = 1, 0) */
            AIOTS_BS02_GT(16, 18, 0, beta, l1, 1, l1)
            AIOTS_BS02_GT(24, 23, 4, 1.0, 0.0, 2, lK)
            AIOTS_BS02_GT(36, 28, 8, 0.0, 0.0, 2, lK)
            /* the European value (plain Black-Scholes, for the caller's lower-bound test only) */
            Z[48][i] = (lS - lK + (b + 0.5 * vsq) * t) * ivs2;
            Z[49][i] = Z[48][i] - vs2;
            X[33][i] = (b - r) * t;
            X[34][i] = -r * t;
            flag[i] = (L[10][i] != 0.0) | tail ? 1.0 : 0.0;
            val[i] = ok02 ? 1.0 : 0.0;  /* ok02 until the assembly overwrites val */
        }
        for (s = 0; s < NZ; s++) {
            AIOTS_OMP_SIMD
            for (i = 0; i < m; i++) PZ[s][i] = 0.5 * aiots_verfc(-Z[s][i] * 0.7071067811865476);
        }
        for (s = 0; s < NX; s++) {
            AIOTS_OMP_SIMD
            for (i = 0; i < m; i++) EX[s][i] = aiots_vexp(X[s][i]);
        }
        /* bivariate normal slots (bvn_args): 4 per psi term; h = e_m, k = -z of its normal */
        for (s = 0; s < NB; s++) {
            int es = s < 4 ? 0 : (s < 12 ? 4 : 8);
            int zo = s < 4 ? 16 + 4 + s : (s < 12 ? 24 + 4 + (s - 4) : 36 + 4 + (s - 12));
            const double* eh = E[es + (s & 3)];
            const double* zk = Z[zo];
            AIOTS_OMP_SIMD
            for (i = 0; i < m; i++) {
                double h = eh[i], kk = -zk[i];
                int tl = fabs(h) > AIOTS_BS02_TAIL || fabs(kk) > AIOTS_BS02_TAIL;
                HK[s][i] = tl ? 0.0 : h * kk;
                HS[s][i] = tl ? 0.0 : 0.5 * (h * h + kk * kk);
                ACC[s][i] = 0.0;
            }
        }
        /* Gauss-Legendre node sums: slot m = s & 3 < 2 at +rho (table column 0), else -rho (column 2);
         * per slot the 12 nodes' exponents, one exp loop over all of them (nothing else in the loop
         * around the libmvec call, which clobbers every vector register), then the weighted sums */
        for (s = 0; s < NB; s++) {
            int col = (s & 3) < 2 ? 0 : 2;
            for (k = 0; k < 12; k++) {
                double a = aiots_bvn_a[k][col], bb = aiots_bvn_b[k][col];
                AIOTS_OMP_SIMD
                for (i = 0; i < m; i++) {
                    double x = a * HK[s][i] - bb * HS[s][i];
                    XN[k * m + i] = x > -700.0 ? x : -700.0;
                }
            }
            AIOTS_OMP_SIMD
            for (i = 0; i < 12 * m; i++) XN[i] = aiots_vexp(XN[i]);
            for (k = 0; k < 12; k++) {
                double w = aiots_bvn_w[k][col];
                AIOTS_OMP_SIMD
                for (i = 0; i < m; i++) ACC[s][i] += w * XN[k * m + i];
            }
        }
        /* P(X > h, Y > k) from the node sums (bvn_done): the tails as selects, in its order */
        for (s = 0; s < NB; s++) {
            int zs = s < 4 ? 16 : (s < 12 ? 24 : 36), es = s < 4 ? 0 : (s < 12 ? 4 : 8);
            int zo = s < 4 ? 16 + 4 + s : (s < 12 ? 24 + 4 + (s - 4) : 36 + 4 + (s - 12));
            const double* eh = E[es + (s & 3)];
            const double* ph_ = PZ[zs + (s & 3)];
            const double* zk = Z[zo];
            const double* pk_ = PZ[zo];
            AIOTS_OMP_SIMD
            for (i = 0; i < m; i++) {
                double h = eh[i], kk = -zk[i], ph = ph_[i], pk = pk_[i];
                double res = ACC[s][i] + ph * pk;
                res = res > 0.0 ? res : 0.0;
                res = kk < -AIOTS_BS02_TAIL ? ph : res;
                res = h < -AIOTS_BS02_TAIL ? pk : res;
                res = kk > AIOTS_BS02_TAIL ? 0.0 : res;
                res = h > AIOTS_BS02_TAIL ? 0.0 : res;
                BV[s][i] = res;
            }
        }
        AIOTS_OMP_SIMD
        for (i = 0; i < m; i++) {
            double Kv = L[1][i], i1 = L[7][i], i2 = L[8][i], i9 = L[9][i];
            double v93 = (i9 - Kv) * EX[10][i] - (i9 - Kv) * AIOTS_BS02_PO(0, 0) + AIOTS_BS02_PO(2, 2)
                         - AIOTS_BS02_PO(4, 4) - Kv * AIOTS_BS02_PO(6, 6) + Kv * AIOTS_BS02_PO(8, 8);
            double pb = AIOTS_BS02_PHI12(16, 18), sb0 = AIOTS_BS02_PSI(18, 0, 0);
            double p1 = AIOTS_BS02_PHI12(24, 23), s10 = AIOTS_BS02_PSI(23, 4, 0);
            double s11 = AIOTS_BS02_PSI(23, 4, 1);
            double p0 = AIOTS_BS02_PHI12(36, 28), s00 = AIOTS_BS02_PSI(28, 12, 0);
            double s01 = AIOTS_BS02_PSI(28, 12, 1);
            double v02 = ((i2 - Kv) * EX[17][i] - (i2 - Kv) * AIOTS_BS02_PO(10, 11)
                          + AIOTS_BS02_PO(12, 13) - p1
                          - Kv * AIOTS_BS02_PO(14, 15) + Kv * p0
                          + (i1 - Kv) * pb - (i1 - Kv) * sb0
                          + s10 - s11 - Kv * s00 + Kv * s01);
            /* fmax(v02, v93) as selects (NaN: the other one) */
            euro[i] = L[0][i] * EX[33][i] * PZ[48][i] - Kv * EX[34][i] * PZ[49][i];
            double o2 = val[i] != 0.0 ? v02 : v93;
            double mx = o2 > v93 ? o2 : v93;
            val[i] = v93 == v93 ? mx : o2;  /* (no || here: GCC 12 then does not vectorise the loop) */
        }
    }
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_bs2002_block(int m, const double* S_, const double* K_, const double* T_,
                                   const double* R_, const double* B_, const double* V_, double* val,
                                   double* flag, double* euro) {
        /* a full block with its size known at compile time: fixed trip counts, no remainder code */
        if (m == AIOTS_BS02_BLK)
            aiots_bs2002_body(AIOTS_BS02_BLK, S_, K_, T_, R_, B_, V_, val, flag, euro);
        else
            aiots_bs2002_body(m, S_, K_, T_, R_, B_, V_, val, flag, euro);
    }
    /* A block of exactly AIOTS_BS02_LANES options, for the American IV's rounds (_bs2002_rows):
     * one instantiation with a fixed trip count, so that every lane of every call takes the same
     * vector code. aiots_bs2002_block's variable-size instantiation does not: its loops vectorised
     * 16 wide (int lanes) leave an 8-lane block to their 4-lane AVX2 / scalar remainder code, whose
     * libmvec/libm functions round differently in rare last bits (5 of 64 prices at m = 8). */
    #define AIOTS_BS02_LANES 8
    #if AIOTS_VMATH
    __attribute__((target_clones("avx512f", "avx2", "default")))
    #endif
    static void aiots_bs2002_lanes(const double* S_, const double* K_, const double* T_, const double* R_,
                                   const double* B_, const double* V_, double* val, double* flag, double* euro) {
        aiots_bs2002_body(AIOTS_BS02_LANES, S_, K_, T_, R_, B_, V_, val, flag, euro);
    }
    """
    void _bs2002_lanes "aiots_bs2002_lanes"(const double* S, const double* K, const double* T, const double* R,
                                            const double* B, const double* V, double* val, double* flag,
                                            double* euro) noexcept nogil
    int BS02_LANES "AIOTS_BS02_LANES"
    void _bs2002_block "aiots_bs2002_block"(int m, const double* S, const double* K, const double* T,
                                            const double* R, const double* B, const double* V, double* val,
                                            double* flag, double* euro) noexcept nogil
    int BS02_BLK "AIOTS_BS02_BLK"

# margin of the lower-bound shortcut in _bs2002_range, relative to S + K: AM_NOISE plus a bound far
# above the plain European's rounding (~1e-15 (S + K))
cdef double BS02_SKIP = 4e-12
# fewer rows than this left: priced one at a time (a block costs 8 lanes' work, ~0.4 us each,
# one row alone ~0.7 us)
cdef int BS02_MIN_BLOCK = 4


cdef inline void _bs02_lane_in(int j, double S, double K, double T, double r, double q, double v, bint call,
                               double* cS, double* cK, double* cT, double* cr, double* cb,
                               double* cv) noexcept nogil:
    """Lane j of a block's inputs for one option: calls as they are, puts by the put-call
    transformation P(S, K, T, r, b) = C(K, S, T, r - b, -b)."""
    cS[j] = S if call else K
    cK[j] = K if call else S
    cT[j] = T
    cr[j] = r if call else q
    cb[j] = r - q if call else q - r
    cv[j] = v


cdef inline double _bs02_lane_value(double a, double flag, double euro, double cS, double cK, double S, double K,
                                    double T, double r, double q, double v, bint call) noexcept nogil:
    """_am_price1(M_BS2002, ...) of a lane's block output (value a, flag, plain European euro; cS/cK its
    transformed spot and strike): a flagged lane by the scalar formula; otherwise a, held at its lower
    bounds. _am_floor's answer is a wherever a exceeds max(European, intrinsic) by more than AM_NOISE
    (S + K): where it does so by BS02_SKIP (S + K) against the plain European (a few ulp of S + K off
    the exact one), the exact European is not needed."""
    if flag != 0.0:
        return _bs2002_floored(S, K, T, r, q, v, call)
    if a - fmax(euro, fmax(cS - cK, 0.0)) > BS02_SKIP * (S + K):
        return a
    return _am_floor(a, S, K, T, r, q, v, call)


cdef void _bs2002_range(const double* pS, Py_ssize_t sS, const double* pK, Py_ssize_t sK, const double* pT,
                        Py_ssize_t sT, const double* pr, Py_ssize_t sr, const double* pq, Py_ssize_t sq,
                        const double* pv, Py_ssize_t sv, const unsigned char* pc, Py_ssize_t sc, Py_ssize_t lo,
                        Py_ssize_t hi, double* out) noexcept nogil:
    """american_price(method="bs2002") for rows lo..hi: _bs2002_block per block (flagged rows by
    _bs2002), then _am_price1's lower bounds per row (same results as _am_price1(M_BS2002, ...) to a
    few ulp)."""
    cdef double cS[64]
    cdef double cK[64]
    cdef double cT[64]
    cdef double cr[64]
    cdef double cb[64]
    cdef double cv[64]
    cdef double val[64]
    cdef double flag[64]
    cdef double euro[64]
    cdef bint bad[64]
    cdef Py_ssize_t b0, i
    cdef int m, m8, j
    cdef double S, K, T, r, q, v
    cdef bint call
    b0 = lo
    while b0 < hi:
        m = <int> (hi - b0 if hi - b0 < BS02_BLK else BS02_BLK)
        if m < BS02_MIN_BLOCK:  # a few rows: one at a time beats a block padded to 8 lanes
            for j in range(m):
                i = b0 + j
                S = pS[i * sS]
                K = pK[i * sK]
                T = pT[i * sT]
                r = pr[i * sr]
                q = pq[i * sq]
                v = pv[i * sv]
                call = pc[i * sc] != 0
                if _bad(S, K, T, r, q, v):
                    out[i] = NAN
                else:
                    out[i] = _bs2002_floored(S, K, T, r, q, v, call)
            b0 += m
            continue
        m8 = (m + 7) & ~7
        for j in range(m8):
            if j < m:
                i = b0 + j
                S = pS[i * sS]
                K = pK[i * sK]
                T = pT[i * sT]
                r = pr[i * sr]
                q = pq[i * sq]
                v = pv[i * sv]
                bad[j] = _bad(S, K, T, r, q, v)
            else:
                bad[j] = True
            if bad[j]:  # harmless values, the row's result is NaN
                S = 100.0
                K = 100.0
                T = 1.0
                r = 0.05
                q = 0.0
                v = 0.3
                call = True
            else:
                call = pc[i * sc] != 0
            _bs02_lane_in(j, S, K, T, r, q, v, call, cS, cK, cT, cr, cb, cv)
        _bs2002_block(m8, cS, cK, cT, cr, cb, cv, val, flag, euro)
        for j in range(m):
            i = b0 + j
            if bad[j]:
                out[i] = NAN
                continue
            S = pS[i * sS]
            K = pK[i * sK]
            T = pT[i * sT]
            r = pr[i * sr]
            q = pq[i * sq]
            v = pv[i * sv]
            call = pc[i * sc] != 0
            out[i] = _bs02_lane_value(val[j], flag[j], euro[j], cS[j], cK[j], S, K, T, r, q, v, call)
        b0 += m


cdef void _bs2002_rows(int n, const double* pS, const double* pK, const double* pT, const double* pr,
                       const double* pq, const double* pv, const unsigned char* pc, double* out) noexcept nogil:
    """_am_price1(M_BS2002, ...) at n rows of contiguous inputs (the American IV's rounds): every row
    through _bs2002_block, in blocks padded to 8 lanes even for one row (no scalar tail as in
    _bs2002_range), so that a row's value depends on its own inputs only, never on n or its place:
    the block's loops are elementwise, every lane takes the same vector path, and its flagged lanes
    and the lower bounds are per-row scalar code. Calls without yield (never exercised early, flagged
    by the block) take _bs2002_floored's European shortcut directly, without a lane."""
    cdef double cS[64]
    cdef double cK[64]
    cdef double cT[64]
    cdef double cr[64]
    cdef double cb[64]
    cdef double cv[64]
    cdef double val[64]
    cdef double flag[64]
    cdef double euro[64]
    cdef int idx[64]
    cdef int i, j, k, m
    cdef double S, K
    cdef bint call
    i = 0
    while i < n:
        m = 0
        while i < n and m < BS02_LANES:
            call = pc[i] != 0
            if _bad(pS[i], pK[i], pT[i], pr[i], pq[i], pv[i]):
                out[i] = NAN
            elif call and pq[i] == 0.0:
                out[i] = _bs2002_floored(pS[i], pK[i], pT[i], pr[i], pq[i], pv[i], True)
            else:
                idx[m] = i
                _bs02_lane_in(m, pS[i], pK[i], pT[i], pr[i], pq[i], pv[i], call, cS, cK, cT, cr, cb, cv)
                m += 1
            i += 1
        if m == 0:
            continue
        for j in range(m, BS02_LANES):  # harmless padding lanes
            cS[j] = 100.0
            cK[j] = 100.0
            cT[j] = 1.0
            cr[j] = 0.05
            cb[j] = 0.05
            cv[j] = 0.3
        _bs2002_lanes(cS, cK, cT, cr, cb, cv, val, flag, euro)
        for j in range(m):
            k = idx[j]
            S = pS[k]
            K = pK[k]
            call = pc[k] != 0
            out[k] = _bs02_lane_value(val[j], flag[j], euro[j], cS[j], cK[j], S, K, pT[k], pr[k], pq[k], pv[k], call)
