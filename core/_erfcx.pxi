# The scaled complementary error function exp(x^2) erfc(x) for the core's modules (included, not
# compiled alone; the includer cimports erfc, exp, fabs and floor from libc.math). noexcept nogil.

cdef extern from *:
    """
    #define AIOTS_ERFCX_SQRT_PI 1.7724538509055160
    """
    double ERFCX_SQRT_PI "AIOTS_ERFCX_SQRT_PI"

cdef double ERFCX_SPLIT_GRID = 128.0  # expx2 splits x on a 1/128 grid: m*m is exact in doubles
cdef double ERFCX_DIRECT_BELOW = 2.0  # |x| below: erfc(x) exp(x*x), the rounding of x*x costs <= 4 ulp
cdef double ERFCX_SERIES_FROM = 26.0  # x from here: the asymptotic series (erfc underflows at 26.5)


cdef inline double expx2(double x) noexcept nogil:
    """exp(x*x) without the x*x rounding error (Cephes' split of x into a 1/128 grid part)."""
    cdef double m, f
    x = fabs(x)
    m = floor(x * ERFCX_SPLIT_GRID + 0.5) / ERFCX_SPLIT_GRID
    f = x - m
    return exp(m * m) * exp(2.0 * m * f + f * f)


cdef inline double erfcx(double x) noexcept nogil:
    """Scaled complementary error function exp(x^2) erfc(x)."""
    cdef double y, y2
    if fabs(x) < ERFCX_DIRECT_BELOW:
        return erfc(x) * exp(x * x)
    if x < ERFCX_SERIES_FROM:
        return erfc(x) * expx2(x)
    y = 1.0 / x
    y2 = y * y
    return y / ERFCX_SQRT_PI * (1.0 + y2 * (-0.5 + y2 * (0.75 + y2 * (-1.875 + y2 * 6.5625))))
