"""core.stats against independent oracles: scipy's Wilson interval, hand-computed Brier/ECE."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from aiots.core.stats import brier_score, calibration, wilson_interval


@given(n=st.integers(1, 500), frac=st.floats(0, 1))
def test_wilson_matches_scipy(n: int, frac: float) -> None:
    k = round(frac * n)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9) and hi == pytest.approx(ci.high, abs=1e-9)


def test_wilson_empty_is_nan() -> None:
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_brier_and_ece_by_hand() -> None:
    p = [0.1, 0.1, 0.8, 0.8, 0.8]
    y = [0, 1, 1, 1, 0]
    assert brier_score(p, y) == pytest.approx((0.01 + 0.81 + 0.04 + 0.04 + 0.64) / 5)
    cal = calibration(p, y, n_bins=10)
    # bins [0.1, 0.2): predicted 0.1, realised 0.5, n=2; [0.8, 0.9): 0.8 vs 2/3, n=3
    assert [(b.count, b.predicted, b.realised) for b in cal.bins] == [
        (2, pytest.approx(0.1), 0.5),
        (3, pytest.approx(0.8), pytest.approx(2 / 3)),
    ]
    assert cal.ece == pytest.approx(2 / 5 * 0.4 + 3 / 5 * abs(0.8 - 2 / 3))
    assert cal.base_rate == pytest.approx(0.6)
    assert cal.brier_base_rate == pytest.approx(0.24)  # p(1-p) at the base rate


def test_perfectly_calibrated_forecasts_have_small_ece() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)
    cal = calibration(p, y)
    assert cal.ece < 0.02 and cal.skill > 0.3
