"""A modelled chain's layout (its rows' strikes, rights, expiries) built over every expiry at once
equals the layout built expiry by expiry from each expiry's strike grid (``_grid_strikes``, the
grids the ATM read and event risk index): the same strikes to the bit, in the same rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.backtest.modelled import PRICE_DECIMALS, _build_layout, _grid_strikes


def _oracle(step: float, center: float, sides: list[int], exp_ns: list[int]) -> tuple[np.ndarray, ...]:
    """Expiry by expiry: each grid's positive strikes (rounded to 1e-6) as calls, then as puts."""
    strike, call, idx, ns = [], [], [], []
    for code, (n, e) in enumerate(zip(sides, exp_ns, strict=True)):
        k = np.round(center + step * np.arange(-n, n + 1), PRICE_DECIMALS)
        k = k[k > 0].tolist()
        strike += k + k
        call += [True] * len(k) + [False] * len(k)
        idx += [code] * (2 * len(k))
        ns += [e] * (2 * len(k))
    return (
        np.array(strike, dtype=np.float64),
        np.array(call, dtype=np.bool_),
        np.array(idx, dtype=np.int64),
        np.array(ns, dtype=np.int64),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([0.5, 1.0, 5.0]),
    st.integers(0, 1200),
    st.lists(st.integers(2, 40), min_size=1, max_size=14),
)
def test_layout_equals_the_grids_expiry_by_expiry(step: float, multiple: int, sides: list[int]) -> None:
    center = multiple * step  # from 0: a grid whose low strikes are not positive drops them
    exp_ns = [1_700_000_000_000_000_000 + 86_400 * 10**9 * d for d in range(len(sides))]
    key: list[object] = ["SPY", step, center]
    for d, (n, e) in enumerate(zip(sides, exp_ns, strict=True)):
        key += [d, e, n]  # (expiry, its ns, strikes per side); the expiry itself is not read
    lay = _build_layout(tuple(key))
    strike, call, idx, ns = _oracle(step, center, sides, exp_ns)
    assert lay.strike.dtype == np.float64 and lay.strike.tobytes() == strike.tobytes()  # bit for bit
    assert np.array_equal(lay.is_call, call) and np.array_equal(lay.exp_idx, idx)
    assert lay.exp_idx.dtype == np.int64 and lay.expiry_ns.dtype == np.int64
    assert np.array_equal(lay.expiry_ns, ns)
    assert lay.expiry_index[0] == exp_ns and lay.expiry_index[1] is lay.exp_idx
    assert len(lay.zeros) == len(lay.multiplier) == len(strike)
    # and each expiry's rows are its grid's strikes (the grid the ATM read indexes), calls first
    for code, n in enumerate(sides):
        ks = _grid_strikes(step, center, n)[1]
        rows = np.flatnonzero(lay.exp_idx == code)
        assert lay.strike[rows].tolist() == ks + ks
