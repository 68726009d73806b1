"""Bad input and hypothesis properties on every public function of aiots.core.options."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as o

pos = st.floats(1e-3, 1e4)
spot = st.floats(1.0, 1000.0)
mny = st.floats(0.5, 2.0)
tt = st.floats(1 / 365, 5.0)
rate = st.floats(-0.02, 0.12)
div = st.floats(0.0, 0.10)
vol = st.floats(0.02, 3.0)
anyf = st.floats(allow_nan=True, allow_infinity=True)

FUNCS_STD = [o.bs_price, o.bs_greeks, o.american_price]


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_invalid_values_give_nan(bad: float) -> None:
    for pos_arg in range(5):
        args = [100.0, 100.0, 0.5, 0.03, 0.2]
        if pos_arg == 3 and np.isfinite(bad):  # r may be zero or negative; only non-finite r is invalid
            continue
        args[pos_arg] = bad
        assert np.isnan(o.bs_price(*args))
        assert np.all(np.isnan(o.bs_greeks(*args).tolist()))
        for m in ("bjerksund_stensland_2002", "baw", "binomial"):
            assert np.isnan(o.american_price(*args, method=m, steps=31))
        assert np.isnan(o.black76_price(*args))
    iv, reason = o.implied_vol(bad, 100.0, 100.0, 0.5, 0.03, return_reason=True)
    assert np.isnan(iv) and reason == o.INVALID_INPUT


def test_shape_and_dtype_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="K has shape"):
        o.bs_price(np.ones(3), np.ones(4), 1.0, 0.0, 0.2)
    with pytest.raises(ValueError, match="sigma"):
        o.bs_greeks(100.0, 100.0, 1.0, 0.0, "0.2")
    with pytest.raises(ValueError, match="is_call"):
        o.bs_price(100.0, 100.0, 1.0, 0.0, 0.2, 0.0, np.array([0.5]))
    with pytest.raises(ValueError, match="price"):
        o.implied_vol(np.array(["x"]), 100.0, 100.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="T has shape"):
        o.implied_vol(np.ones(2), 100.0, 100.0, np.ones(3), 0.0)
    with pytest.raises(ValueError, match="style"):
        o.implied_vol(1.0, 100.0, 100.0, 1.0, 0.0, style="bermudan")
    with pytest.raises(ValueError, match="method"):
        o.american_price(100.0, 100.0, 1.0, 0.0, 0.2, method="magic")
    with pytest.raises(ValueError, match="steps"):
        o.american_price(100.0, 100.0, 1.0, 0.0, 0.2, method="binomial", steps=10**9)
    with pytest.raises(ValueError):
        o.early_exercise_boundary(-1.0, 1.0, 0.05, 0.2)
    assert o.bs_price(np.empty(0), 100.0, 1.0, 0.0, 0.2).shape == (0,)


@settings(max_examples=200, deadline=None)
@given(S=spot, m=mny, T=tt, r=rate, q=div, v=vol)
def test_put_call_parity_and_bounds(S: float, m: float, T: float, r: float, q: float, v: float) -> None:
    K = S * m
    c = o.bs_price(S, K, T, r, v, q, True)
    p = o.bs_price(S, K, T, r, v, q, False)
    assert c - p == pytest.approx(S * np.exp(-q * T) - K * np.exp(-r * T), abs=1e-10 * (S + K))
    assert max(S * np.exp(-q * T) - K * np.exp(-r * T), 0.0) - 1e-12 * S <= c <= S * np.exp(-q * T) * (1 + 1e-15)
    assert o.bs_price(S, K, T, r, v * 1.01, q, True) >= c
    g = o.bs_greeks(S, K, T, r, v, q, True)
    assert g["gamma"] >= 0 and g["vega"] >= 0 and 0 <= g["delta"] <= 1


@settings(max_examples=200, deadline=None)
@given(S=spot, m=mny, T=tt, r=rate, q=div, v=st.floats(0.05, 3.0), call=st.booleans())
def test_iv_round_trip(S: float, m: float, T: float, r: float, q: float, v: float, call: bool) -> None:
    K = S * m
    p = o.bs_price(S, K, T, r, v, q, call)
    iv, reason = o.implied_vol(p, S, K, T, r, q, call, return_reason=True)
    kappa = p / (v * o.bs_greeks(S, K, T, r, v, q, call)["vega"]) if p > 0 else np.inf
    if p > 1e-280 and kappa <= 1e3:
        assert reason == o.OK
        assert abs(iv - v) <= 1e-12 * v
    else:
        assert reason == o.OK or np.isnan(iv)


@settings(max_examples=60, deadline=None)
@given(S=spot, m=mny, T=st.floats(0.02, 3.0), r=st.floats(0.0, 0.1), q=div, v=st.floats(0.05, 1.5), call=st.booleans())
def test_american_properties(S: float, m: float, T: float, r: float, q: float, v: float, call: bool) -> None:
    K = S * m
    eu = o.bs_price(S, K, T, r, v, q, call)
    intrinsic = max(S - K, 0.0) if call else max(K - S, 0.0)
    for method in ("bjerksund_stensland_2002", "baw", "binomial"):
        am = o.american_price(S, K, T, r, v, q, call, method=method, steps=101)
        tol = 1e-9 * S if method != "binomial" else 2e-3 * S  # tree discretisation
        assert am >= eu - tol and am >= intrinsic - 1e-12
        assert am <= (S if call else K)
    am = o.american_price(S, K, T, r, v, q, call)
    am_up = o.american_price(S, K, T, r, v * 1.001, q, call)
    if am > intrinsic + 1e-6 * S and am_up - am > 1e-9 * am:  # the price carries vol information
        iv = o.implied_vol(am, S, K, T, r, q, call, style="american")
        assert abs(iv - v) <= 1e-8 * v


@settings(max_examples=100, deadline=None)
@given(price=anyf, S=anyf, K=anyf, T=anyf, r=anyf, v=anyf, call=st.booleans())
def test_never_raises_on_any_float(price: float, S: float, K: float, T: float, r: float, v: float, call: bool) -> None:
    o.bs_price(S, K, T, r, v, 0.0, call)
    o.bs_greeks(S, K, T, r, v, 0.0, call)
    o.bs_price_greeks(S, K, T, r, v, 0.0, call, third_order=True)
    o.black76_greeks(S, K, T, r, v, call)
    o.american_price(S, K, T, r, v, 0.0, call)
    o.american_price(S, K, T, r, v, 0.0, call, method="baw")
    o.american_price(S, K, T, r, v, 0.0, call, method="binomial", steps=21)
    o.american_greeks(S, K, T, r, v, 0.0, call, steps=21)
    iv, reason = o.implied_vol(price, S, K, T, r, 0.0, call, return_reason=True)
    assert np.isfinite(iv) or reason != o.OK
    o.implied_vol(price, S, K, T, r, 0.0, call, style="american", return_reason=True)
    o.trader_units(o.bs_greeks(S, K, T, r, v, 0.0, call))
    o.norm_ppf(v)
