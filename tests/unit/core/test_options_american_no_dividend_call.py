"""BS2002 calls without a dividend yield: never exercised early, priced as the European value once.

american_price(method="bjerksund_stensland_2002") for a call with q = 0 must be, bit for bit,
max(bs_price, intrinsic) (the generic path's _am_floor of the European value), in the vector
blocks, in the short-tail path (< 4 rows) and for scalars alike.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as o


def test_no_dividend_calls_are_the_european_value_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    n = 20_003  # full 64-row blocks, a partial block and a tail
    S = rng.uniform(20, 200, n)
    K = S * np.exp(rng.uniform(-1.0, 1.0, n))
    T = 10 ** rng.uniform(-2.5, 0.7, n)
    r = rng.uniform(-0.02, 0.1, n)
    v = 10 ** rng.uniform(-2, 0.5, n)
    call = rng.random(n) < 0.7
    q = np.where(rng.random(n) < 0.6, 0.0, rng.uniform(0.0, 0.05, n))
    am = o.american_price(S, K, T, r, v, q, call)
    sel = call & (q == 0.0)
    ref = np.maximum(o.bs_price(S, K, T, r, v, q, call), np.maximum(S - K, 0.0))
    assert np.array_equal(am[sel], ref[sel])
    # the same rows alone (scalar path) and as a 3-row tail
    for i in np.nonzero(sel)[0][:200]:
        assert o.american_price(S[i], K[i], T[i], r[i], v[i], 0.0, True) == ref[i]
    idx = np.nonzero(sel)[0][:3]
    assert np.array_equal(o.american_price(S[idx], K[idx], T[idx], r[idx], v[idx], 0.0, True), ref[idx])


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1.0, 1000.0),
    st.floats(0.2, 5.0),
    st.floats(1e-3, 5.0),
    st.floats(-0.05, 0.2),
    st.floats(1e-3, 3.0),
)
def test_no_dividend_call_property(S: float, k: float, T: float, r: float, v: float) -> None:
    K = S * k
    eu = float(o.bs_price(S, K, T, r, v, 0.0, True))
    assert float(o.american_price(S, K, T, r, v, 0.0, True)) == max(eu, max(S - K, 0.0))
