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
