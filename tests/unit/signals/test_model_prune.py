"""The refusal's bound on every modelled contract (:mod:`aiots.services.signals.model_prune`).

Its soundness (a settled contract is dropped or cannot pay, against selection's computation on each
contract's actual quote) is held in ``tests/unit/core/test_quote_bounds.py`` for the kernel. Here:
the wrapper settles nothing for a model that is not the idea's (spot, rate) and answers as the
kernel does otherwise; and the kernel's gain and delta bounds are the general ones of
:func:`~aiots.services.signals.gain_bound.gain_and_delta_bounds` (no yield), whose soundness
``test_gain_bound`` holds, to rounding far inside the bound's margins.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import quote_bounds
from aiots.services.signals.chainview import QuoteModel
from aiots.services.signals.gain_bound import gain_and_delta_bounds
from aiots.services.signals.model_prune import MARGINS, all_settled, settled
from aiots.services.signals.selection import DELTA_PREFILTER_MARGIN

MODEL = QuoteModel(spot=100.0, rate=0.045, iv=0.3, half_spread_frac=0.0125, min_half_spread=0.01, tick=0.01)
K = np.array([110.0, 110.0])  # out of the money, 14 days: delta ~0.06, settled (test_quote_bounds)
T = np.full(2, 14.0 / 365.0)
TAIL = (0.30, 0.65, DELTA_PREFILTER_MARGIN, 2.0)  # delta band, prefilter margin, spread cover


def test_the_models_own_spot_and_rate_settle_as_the_kernel_does() -> None:
    want = quote_bounds.settled(True, 100.0, 0.045, 0.3, 0.0125, 0.01, 0.01, K, T, 1.0, 0.5, *TAIL, MARGINS)
    assert want.tolist() == [True, True]
    assert settled(MODEL, 100.0, K, T, 0.045, 1.0, 0.5, *TAIL, is_call=True).tolist() == [True, True]
    assert all_settled(MODEL, 100.0, K, T, 0.045, 1.0, 0.5, *TAIL, is_call=True)
    assert not all_settled(MODEL, 100.0, K[:0], T[:0], 0.045, 1.0, 0.5, *TAIL, is_call=True)


def test_another_spot_or_rate_settles_nothing() -> None:
    for S, r in ((100.5, 0.045), (100.0, 0.04)):
        assert settled(MODEL, S, K, T, r, 1.0, 0.5, *TAIL, is_call=True).tolist() == [False, False]
        assert not all_settled(MODEL, S, K, T, r, 1.0, 0.5, *TAIL, is_call=True)


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 40),
    S=st.floats(20.0, 2000.0),
    r=st.sampled_from([0.0, 0.045]),
    move=st.floats(-0.02, 0.02),
    minutes=st.floats(1.0, 390.0),
    call=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_the_kernels_bounds_are_the_general_bounds(
    seed: int, n: int, S: float, r: float, move: float, minutes: float, call: bool
) -> None:
    """The gain bound to 1e-12 relative (its margin is BOUND_SLACK = 1e-9 of its terms), the delta range
    to 1e-14 (libm's erfc against SciPy's), NaN in the same places."""
    rng = np.random.default_rng(seed)
    K = np.round(S * np.exp(rng.uniform(-0.4, 0.4, n)), 2)
    T = rng.uniform(0.5, 60.0, n) / 365.0
    lo = rng.uniform(0.03, 1.2, n)
    hi = lo * rng.uniform(1.0, 1.3, n)
    dS, days = move * S, minutes / 390.0
    want = gain_and_delta_bounds(S, K, T, r, 0.0, call, lo, hi, dS, days, 0.65)
    got = quote_bounds.no_yield_bounds(call, S, K, T, r, lo, hi, dS, days, 0.65, MARGINS)
    for g, w, rtol, atol in zip(got, want, (1e-12, 0.0, 0.0), (1e-15, 1e-14, 1e-14), strict=True):
        assert np.array_equal(np.isnan(g), np.isnan(w))
        assert np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True), np.max(np.abs(g - w))
