"""Contract selection's first cut over a quoted chain, compiled: which rows are fresh, liquid, of the
wanted right, inside the DTE window and quoted tightly enough to consider, in one pass.

The rule, row by row (the same IEEE operations as the NumPy expressions it replaces in
``aiots.services.signals.selection``):

* **fresh**: ``now_ns - ts_ns <= max_age_ns`` in int64 arithmetic that wraps as NumPy's does;
* **liquid**: ``is_call == want_call``, ``open_interest >= min_open_interest``, ``volume >=
  min_volume``, and no known ask size below the minimum (a size of 0 or NaN is unknown and passes:
  not ``0 < ask_size < min_quote_size``);
* **in the DTE window**: ``expiry_ok[expiry_code]`` (the caller decides each distinct expiry once,
  with Python's exact int/float comparisons);
* **quoted**: two-sided and not crossed (``bid > 0``, ``ask >= bid``), the mid ``0.5 * (bid + ask)``
  at least ``min_premium``, and the spread ``(ask - bid) / mid`` at most ``max_spread_frac``.

Units: prices in dollars per share, times in ns. NaN fails every comparison, as in NumPy. One
scalar loop in C without the GIL: at a live chain's tens to thousands of rows, the dozen NumPy
calls it replaces cost more in dispatch than in work.
"""

from libc.stdint cimport int64_t, uint64_t, uint8_t

import numpy as np

cimport numpy as cnp

cnp.import_array()


def considered_rows(
    const int64_t[::1] ts_ns,
    const uint8_t[::1] is_call,
    const double[::1] open_interest,
    const double[::1] volume,
    const double[::1] ask_size,
    const double[::1] bid,
    const double[::1] ask,
    const int64_t[::1] expiry_code,
    const uint8_t[::1] expiry_ok,
    int64_t now_ns,
    int64_t max_age_ns,
    bint want_call,
    double min_open_interest,
    double min_volume,
    double min_quote_size,
    double min_premium,
    double max_spread_frac,
):
    """``(rows, n_fresh)``: the rows (ascending, intp) that pass every test of the module's rule, and
    how many rows are fresh at all. ``is_call`` is the bool column viewed as uint8; every column has
    one entry per row, ``expiry_code`` indexes ``expiry_ok`` (one flag per distinct expiry)."""
    cdef Py_ssize_t n = ts_ns.shape[0], i, k = 0, n_fresh = 0
    cdef Py_ssize_t n_exp = expiry_ok.shape[0]
    if not (is_call.shape[0] == open_interest.shape[0] == volume.shape[0] == ask_size.shape[0]
            == bid.shape[0] == ask.shape[0] == expiry_code.shape[0] == n):
        raise ValueError(f"considered_rows: every column needs {n} rows (one per ts_ns)")
    out = np.empty(n, dtype=np.intp)
    cdef Py_ssize_t[::1] rows = out
    cdef uint8_t want = 1 if want_call else 0
    cdef double b, a, mid, size
    cdef int64_t code
    with nogil:
        for i in range(n):
            # int64 wrap-around as NumPy's subtraction (signed overflow is undefined in C)
            if <int64_t>(<uint64_t>now_ns - <uint64_t>ts_ns[i]) > max_age_ns:
                continue
            n_fresh += 1
            if (is_call[i] != 0) != (want != 0):
                continue
            if not (open_interest[i] >= min_open_interest and volume[i] >= min_volume):
                continue
            size = ask_size[i]
            if size > 0 and size < min_quote_size:
                continue
            code = expiry_code[i]
            if code < 0 or code >= n_exp or not expiry_ok[code]:
                continue
            b = bid[i]
            a = ask[i]
            if not (b > 0.0 and a >= b):
                continue
            mid = 0.5 * (b + a)
            if not (mid >= min_premium and (a - b) / mid <= max_spread_frac):
                continue
            rows[k] = i
            k += 1
    return out[:k], n_fresh
