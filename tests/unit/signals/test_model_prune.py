"""The refusal's bound on every modelled contract (:mod:`aiots.services.signals.model_prune`).

Its soundness (a settled contract is dropped or cannot pay, against selection's computation on each
contract's actual quote) is held in ``tests/unit/core/test_quote_bounds.py`` for the kernel. Here:
the wrapper settles nothing for a model that is not the idea's (spot, rate) and answers as the
kernel does otherwise. The kernel's gain and delta bounds are those of
:func:`~aiots.services.signals.gain_bound.gain_and_delta_bounds` with no yield (the same compiled
helpers), whose soundness ``test_gain_bound`` holds.
"""

from __future__ import annotations

import numpy as np

from aiots.core import quote_bounds
from aiots.services.signals.chainview import QuoteModel
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
