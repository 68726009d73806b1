"""European implied vol kernel: the cases its shortcuts touch, against the true sigma (the oracle).

The solver returns at once where a Householder step falls below an ulp (an exact hit of the price),
places beta in the middle branch by convexity bounds without evaluating b at the branch points, and
takes b(x, sqrt(-2x)) in closed form; none of that may cost accuracy anywhere the price carries the
information (kappa = price / (sigma * vega) <= 1e3: |dsigma| / sigma <= 1e-12).
"""

from __future__ import annotations

import numpy as np

from aiots.core import options as o

Arr = np.ndarray


def _round_trip_error(
    S: float | Arr, K: Arr, T: float | Arr, r: float | Arr, q: float | Arr, sig: Arr, call: Arr
) -> tuple[Arr, Arr, Arr]:
    """|iv - sigma| / sigma of the priced contracts, the reason codes, and the informative rows."""
    p = o.bs_price(S, K, T, r, sig, q, call)
    iv, reason = o.implied_vol(p, S, K, T, r, q, call, return_reason=True)
    vega = o.bs_greeks(S, K, T, r, sig, q, call)["vega"]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = p / (sig * vega)
    dom = (p > 1e-280) & (kappa <= 1e3)
    return np.abs(iv - sig) / sig, reason, dom


def test_bench_distribution_round_trip() -> None:
    """The benchmark's contracts (typical listed options; ~1% hit the price exactly on an iterate)."""
    rng = np.random.default_rng(42)
    n = 200_000
    S = rng.uniform(50, 150, n)
    K = S * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.uniform(7 / 365, 2.0, n)
    r = rng.uniform(0.0, 0.06, n)
    q = rng.uniform(0.0, 0.04, n)
    sig = rng.uniform(0.1, 0.8, n)
    call = rng.random(n) < 0.5
    err, reason, dom = _round_trip_error(S, K, T, r, q, sig, call)
    assert np.all(reason[dom] == o.OK)
    assert err[dom].max() <= 1e-12, err[dom].max()
    # most rows are exact to a few ulp
    assert np.quantile(err[dom], 0.9) <= 1e-15


def test_lower_branch_tiny_prices() -> None:
    """Far out of the money at low vol (prices 1e-300 .. 1e-100, lower branch): b * b underflows in
    the Householder terms, the step comes out 0 without being converged, and the bracket must go on."""
    rng = np.random.default_rng(3)
    n = 50_000
    S = 100.0
    x = rng.uniform(0.2, 1.5, n)
    sig = 10 ** rng.uniform(-2.5, -0.5, n)
    T = 10 ** rng.uniform(-2.5, 0.7, n)
    call = rng.random(n) < 0.5
    K = np.where(call, S * np.exp(x), S * np.exp(-x))
    err, reason, dom = _round_trip_error(S, K, T, 0.01, 0.0, sig, call)
    assert dom.sum() > 1000
    assert np.all(reason[dom] == o.OK)
    assert err[dom].max() <= 1e-12, err[dom].max()


def test_upper_and_middle_branch_bounds() -> None:
    """High vol and long maturities (beta near exp(x/2): upper branch; between the branch points:
    middle) around the money and in the money, where the bounds decide the branch."""
    rng = np.random.default_rng(5)
    n = 100_000
    S = 100.0
    K = S * np.exp(rng.uniform(-1.0, 1.0, n))
    sig = 10 ** rng.uniform(-1.5, np.log10(5.0), n)
    T = 10 ** rng.uniform(-1, np.log10(5.0), n)
    call = rng.random(n) < 0.5
    err, reason, dom = _round_trip_error(S, K, T, 0.03, 0.01, sig, call)
    assert np.all(reason[dom] == o.OK)
    assert err[dom].max() <= 1e-12, err[dom].max()


def test_small_t_vector_series_round_trip() -> None:
    """sigma sqrt(T) < 0.42 (the small-t expansion, evaluated in vector lanes), around and away from
    the money, calls and puts, against the true sigma."""
    rng = np.random.default_rng(17)
    n = 200_000
    S = 100.0
    K = S * np.exp(rng.uniform(-0.5, 0.5, n))
    T = 10 ** rng.uniform(-2.5, 0.0, n)
    sig = rng.uniform(0.02, 1.0, n) * np.minimum(1.0, 0.42 / np.sqrt(T))
    call = rng.random(n) < 0.5
    err, reason, dom = _round_trip_error(S, K, T, 0.02, 0.01, sig, call)
    assert dom.sum() > 0.7 * n
    assert np.all(reason[dom] == o.OK)
    assert err[dom].max() <= 1e-12, err[dom].max()
    assert np.quantile(err[dom], 0.9) <= 3e-15  # both builds: 1.9e-15


def test_result_independent_of_batch_position() -> None:
    """Contracts are solved in lanes of up to 64 with vector evaluations: a row's sigma must be the
    same bits alone, in a batch, at any offset, and with its neighbours shuffled (reason codes too,
    invalid and out-of-bounds rows among them)."""
    rng = np.random.default_rng(23)
    n = 300
    S = rng.uniform(50, 150, n)
    K = S * np.exp(rng.uniform(-1.0, 1.0, n))
    T = 10 ** rng.uniform(-2.5, 0.7, n)
    sig = 10 ** rng.uniform(-2, 0.5, n)
    call = rng.random(n) < 0.5
    p = o.bs_price(S, K, T, 0.03, sig, 0.01, call)
    p[::37] = -1.0  # invalid
    p[5::41] = S[5::41] * 2.0  # above the upper bound
    iv, rs = o.implied_vol(p, S, K, T, 0.03, 0.01, call, return_reason=True)
    one = [
        o.implied_vol(float(p[i]), float(S[i]), float(K[i]), float(T[i]), 0.03, 0.01, bool(call[i]), return_reason=True)
        for i in range(n)
    ]
    np.testing.assert_array_equal(iv, np.array([v for v, _ in one], dtype=float))
    np.testing.assert_array_equal(rs, np.array([c for _, c in one]))
    perm = rng.permutation(n)
    iv_p = o.implied_vol(p[perm], S[perm], K[perm], T[perm], 0.03, 0.01, call[perm])
    np.testing.assert_array_equal(iv_p, iv[perm])
    iv_off = o.implied_vol(p[7:], S[7:], K[7:], T[7:], 0.03, 0.01, call[7:])
    np.testing.assert_array_equal(iv_off, iv[7:])
    ok = rs == o.OK
    # the rows were solved (73%: the rest are deep in the money, where the price names no vol)
    assert np.mean(np.abs(iv[ok] - sig[ok]) <= 1e-10 * sig[ok]) > 0.6
    assert (rs == o.INVALID_INPUT).sum() >= 8 and (rs == o.ABOVE_MAX).sum() >= 7
