"""European prices and Greeks against QuantLib, published values and finite differences."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from aiots.core import options as o

ql = pytest.importorskip("QuantLib")


def _random_contracts(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = rng.integers(1, 5 * 365, n)
    return {
        "S": rng.uniform(5.0, 500.0, n),
        "m": np.exp(rng.uniform(-0.7, 0.7, n)),
        "T": days / 365.0,
        "days": days,
        "r": rng.uniform(-0.01, 0.10, n),
        "q": rng.uniform(0.0, 0.08, n),
        "sigma": rng.uniform(0.05, 1.5, n),
        "call": rng.random(n) < 0.5,
    }


def _quantlib_reference(c: dict[str, np.ndarray], K: np.ndarray) -> np.ndarray:
    """QuantLib AnalyticEuropeanEngine per contract: (price, delta, gamma, vega, theta, rho, dividendRho)."""
    n = len(K)
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot, rq, qq, vq = ql.SimpleQuote(1.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.2)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(qq), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rq), dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vq), dc)),
    )
    engine = ql.AnalyticEuropeanEngine(proc)
    ref = np.empty((n, 7))
    for i in range(n):
        spot.setValue(float(c["S"][i]))
        rq.setValue(float(c["r"][i]))
        qq.setValue(float(c["q"][i]))
        vq.setValue(float(c["sigma"][i]))
        opt = ql.VanillaOption(
            ql.PlainVanillaPayoff(ql.Option.Call if c["call"][i] else ql.Option.Put, float(K[i])),
            ql.EuropeanExercise(today + int(c["days"][i])),
        )
        opt.setPricingEngine(engine)
        ref[i] = (opt.NPV(), opt.delta(), opt.gamma(), opt.vega(), opt.theta(), opt.rho(), opt.dividendRho())
    return ref


def _assert_matches_quantlib(pg: np.ndarray, c: dict[str, np.ndarray], ref: np.ndarray) -> None:
    """1e-10 relative plus an absolute floor of 1e-13 * S (see test_quantlib_analytic_european_100k)."""
    floor = 1e-13 * c["S"]
    for col, name in enumerate(("price", "delta", "gamma", "vega", "theta", "rho", "epsilon")):
        scale = floor if name != "gamma" else floor / c["S"] ** 2
        err = np.abs(pg[name] - ref[:, col]) - (1e-10 * np.abs(ref[:, col]) + scale)
        assert np.all(err <= 0.0), f"{name}: worst excess {err.max():.3e} at {int(err.argmax())}"


@pytest.mark.slow
def test_quantlib_analytic_european_100k() -> None:
    """Prices and first-order Greeks vs QuantLib AnalyticEuropeanEngine on 100,000 random contracts.

    Tolerance: 1e-10 relative, plus an absolute floor of 1e-13 * S. QuantLib's BlackCalculator
    evaluates F N(d1) - K N(d2), which cancels for out-of-the-money contracts and loses about
    eps * F absolutely; our price goes through Jäckel's normalised Black and has no such loss.
    """
    n = 100_000
    c = _random_contracts(n, 11)
    K = c["S"] * c["m"]
    ref = _quantlib_reference(c, K)
    args = (c["S"], K, c["T"], c["r"], c["sigma"], c["q"], c["call"])
    floor = 1e-13 * c["S"]
    # the separate calls, and the fused SIMD pass (vector exp/log/erfc) that chains use
    for price, g in ((o.bs_price(*args), o.bs_greeks(*args)), ((pg := o.bs_price_greeks(*args))["price"], pg)):
        for name, mine, col in (
            ("price", price, 0),
            ("delta", g["delta"], 1),
            ("gamma", g["gamma"], 2),
            ("vega", g["vega"], 3),
            ("theta", g["theta"], 4),
            ("rho", g["rho"], 5),
            ("epsilon", g["epsilon"], 6),
        ):
            scale = floor if name != "gamma" else floor / c["S"] ** 2
            err = np.abs(mine - ref[:, col]) - (1e-10 * np.abs(ref[:, col]) + scale)
            assert np.all(err <= 0.0), f"{name}: worst excess {err.max():.3e} at {int(err.argmax())}"


def test_haug_and_hull_published_values(shared_data: Path) -> None:
    """bs_published_reference_values.csv rows (Haug 1998, Hull 7th ed.) at each row's tolerance."""
    rows = list(csv.DictReader((shared_data / "reference" / "bs_published_reference_values.csv").open()))
    checked = 0
    for row in rows:
        S, K, T, r, q, v = (float(row[k]) for k in ("S_or_F", "K", "T", "r", "q", "sigma"))
        call = row["option_type"] == "call"
        qty, units, value, tol = row["quantity"], row["units"], float(row["value"]), float(row["tolerance"])
        if qty in ("d1", "d2"):
            continue  # intermediate quantities, not outputs of the library
        if row["model"] == "Black76":
            mine = float(o.black76_price(S, K, T, r, v, call))
        else:
            g = o.bs_greeks(S, K, T, r, v, q, call)
            price = float(o.bs_price(S, K, T, r, v, q, call))
            mine = {
                "price": price,
                "delta": g["delta"],
                "gamma": g["gamma"],
                "vega": g["vega"],
                "theta": g["theta"],
                "theta_per_day": g["theta"] / 365.0,
                "rho": g["rho"],
                "dividend_rho": g["epsilon"],
                "elasticity": g["delta"] * S / price,
            }[qty]
            if qty in ("vega", "rho") and ("0.01" in units or "1%" in units):
                mine = mine / 100.0
        assert abs(mine - value) <= tol * (1.0 + 1e-9), f"case {row['case_id']} {qty}: {mine} vs {value}"
        checked += 1
    assert checked >= 60


def test_py_vollib_test_data(shared_data: Path) -> None:
    d = json.loads((shared_data / "reference" / "py_vollib_test_data.json").read_text())
    cols = {c: np.array([row[i] for row in d["data"]], dtype=float) for i, c in enumerate(d["columns"])}
    S, K, r, T, v = cols["S"], cols["K"], cols["R"], cols["t"], cols["v"]
    for call, pfx, price_col in ((True, "C", "bs_call"), (False, "P", "bs_put")):
        g = o.bs_greeks(S, K, T, r, v, 0.0, call)
        p = o.bs_price(S, K, T, r, v, 0.0, call)
        np.testing.assert_allclose(p, cols[price_col], rtol=1e-6, atol=1e-6)
        for fld, col in (("delta", "D"), ("gamma", "G"), ("theta", "T"), ("vega", "V"), ("rho", "R")):
            np.testing.assert_allclose(g[fld], cols[pfx + col], rtol=1e-6, atol=1e-6, err_msg=fld)


def test_black76_matches_bsm_with_q_equal_r() -> None:
    F, K, T, r, v = 105.0, np.array([80.0, 100.0, 130.0]), 0.7, 0.04, 0.3
    for call in (True, False):
        b = o.black76_price(F, K, T, r, v, call)
        np.testing.assert_allclose(b, o.bs_price(F, K, T, r, v, r, call), rtol=1e-14)
        # QuantLib's blackFormula (undiscounted) times the discount factor.
        ref = [
            ql.blackFormula(ql.Option.Call if call else ql.Option.Put, k, F, v * np.sqrt(T)) * np.exp(-r * T) for k in K
        ]
        np.testing.assert_allclose(b, ref, rtol=1e-12)
        g = o.black76_greeks(F, K, T, r, v, call)
        np.testing.assert_allclose(g["rho"], -T * b, rtol=1e-12)
        assert np.all(g["epsilon"] == 0.0)


# ---- Higher-order Greeks against central differences of our own closed forms --------------------

CASES = [
    (100.0, 95.0, 0.5, 0.03, 0.25, 0.01, True),
    (100.0, 120.0, 1.5, 0.05, 0.40, 0.02, False),
    (50.0, 48.0, 0.1, 0.01, 0.60, 0.00, True),
    (250.0, 200.0, 2.0, 0.02, 0.18, 0.03, False),
]


def _fd(f, x: float, h: float) -> float:
    return (f(x + h) - f(x - h)) / (2.0 * h)


@pytest.mark.parametrize("case", CASES)
def test_higher_order_greeks_by_central_differences(case: tuple[float, ...]) -> None:
    """Each second/third-order Greek = central difference of a lower-order closed form.

    Central differences have truncation error O(h^2 f''') and rounding error O(eps f / h). With
    relative bumps 1e-4 and 2e-5 the truncation term is ~1e-8 relative and the rounding term
    ~1e-11/h_rel ~ 1e-9 relative, so 1e-6 relative (to the Greek's natural scale) leaves ~100x
    margin while a wrong closed form (a missing term is O(1) relative) cannot pass at both bumps.
    """
    S, K, T, r, v, q, call = case

    def g(fld: str, **kw: float) -> float:
        a = dict(S=S, K=K, T=T, r=r, sigma=v, q=q, is_call=call)
        a.update(kw)
        return float(o.bs_greeks(**a)[fld])  # type: ignore[arg-type]

    def price(**kw: float) -> float:
        a = dict(S=S, K=K, T=T, r=r, sigma=v, q=q, is_call=call)
        a.update(kw)
        return float(o.bs_price(**a))  # type: ignore[arg-type]

    for rel in (1e-4, 2e-5):
        hs, hv, ht = S * rel, v * rel, T * rel
        checks = {
            "delta": _fd(lambda x: price(S=x), S, hs),
            "vega": _fd(lambda x: price(sigma=x), v, hv),
            "theta": -_fd(lambda x: price(T=x), T, ht),
            "rho": _fd(lambda x: price(r=x), r, 1e-5),
            "epsilon": _fd(lambda x: price(q=x), q, 1e-5),
            "gamma": _fd(lambda x: g("delta", S=x), S, hs),
            "vanna": _fd(lambda x: g("vega", S=x), S, hs),
            "vomma": _fd(lambda x: g("vega", sigma=x), v, hv),
            "charm": -_fd(lambda x: g("delta", T=x), T, ht),
            "veta": -_fd(lambda x: g("vega", T=x), T, ht),
            "speed": _fd(lambda x: g("gamma", S=x), S, hs),
            "zomma": _fd(lambda x: g("gamma", sigma=x), v, hv),
            "color": -_fd(lambda x: g("gamma", T=x), T, ht),
            "ultima": _fd(lambda x: g("vomma", sigma=x), v, hv),
        }
        # second derivative of the price directly, too (rounding eps*V/h^2 dominates: 1e-4 relative)
        h2 = S * 1e-3
        checks_2 = {"gamma": (price(S=S + h2) - 2 * price() + price(S=S - h2)) / h2**2}
        vals = o.bs_greeks(S, K, T, r, v, q, call)
        for fld, approx in checks.items():
            exact = float(vals[fld])
            scale = max(abs(exact), 1e-3 * (abs(float(vals["vega"])) + 1e-8) / max(S, v))
            assert abs(exact - approx) <= 1e-6 * max(abs(exact), scale) + 1e-10, (fld, rel, exact, approx)
        for fld, approx in checks_2.items():
            assert abs(float(vals[fld]) - approx) <= 1e-4 * abs(float(vals[fld])), (fld, approx)


def test_trader_units() -> None:
    g = o.bs_greeks(100.0, 100.0, 1.0, 0.05, 0.2, 0.0, True)
    t = o.trader_units(g)
    assert t["vega"] == pytest.approx(g["vega"] / 100)
    assert t["theta"] == pytest.approx(g["theta"] / 365)
    assert t["rho"] == pytest.approx(g["rho"] / 100)
    assert t["epsilon"] == pytest.approx(g["epsilon"] / 100)
    assert t["delta"] == g["delta"] and t["gamma"] == g["gamma"]


def test_put_call_parity_and_broadcasting() -> None:
    K = np.linspace(50, 150, 11)[:, None]
    T = np.array([0.1, 1.0, 3.0])[None, :]
    c = o.bs_price(100.0, K, T, 0.03, 0.3, 0.02, True)
    p = o.bs_price(100.0, K, T, 0.03, 0.3, 0.02, False)
    assert c.shape == (11, 3)
    np.testing.assert_allclose(c - p, 100 * np.exp(-0.02 * T) - K * np.exp(-0.03 * T), rtol=1e-12, atol=1e-11)
    g = o.bs_greeks(100.0, K, T, 0.03, 0.3, 0.02, np.array([True, False, True]))
    assert g.shape == (11, 3) and g.dtype.names == o.GREEK_FIELDS
    assert isinstance(o.bs_price(100.0, 100.0, 1.0, 0.0, 0.2), float)


def test_fused_price_greeks_match_separate_calls() -> None:
    """bs_price_greeks (one pass) against bs_price (QuantLib-checked, relatively exact in the tails)
    and bs_greeks, on random contracts including deep OTM ones where F N(d1) - K N(d2) cancels."""
    c = _random_contracts(50_000, 31)
    K = c["S"] * c["m"] ** 3  # |ln K/S| up to 2.1
    args = (c["S"], K, c["T"], c["r"], c["sigma"], c["q"], c["call"])
    pg = o.bs_price_greeks(*args, third_order=True)
    assert pg.dtype.names == ("price", *o.GREEK_FIELDS)
    price = o.bs_price(*args)
    ok = price > 1e-250
    np.testing.assert_allclose(pg["price"][ok], price[ok], rtol=2e-13, atol=0.0)
    g = o.bs_greeks(*args)
    for name in o.GREEK_FIELDS:
        # same closed forms, regrouped: rounding differs where a Greek is a difference of terms
        np.testing.assert_allclose(pg[name], g[name], rtol=1e-10, atol=1e-15, err_msg=name)
    two = o.bs_price_greeks(*args)
    assert two.dtype.names == ("price", *o.GREEK_FIELDS[:10])
    for name in two.dtype.names:
        np.testing.assert_array_equal(two[name], pg[name])
    bad = o.bs_price_greeks(np.array([100.0, -1.0, np.nan]), 100.0, 0.5, 0.03, 0.2)
    assert (
        np.all(np.isfinite(bad[0].tolist())) and np.all(np.isnan(bad[1].tolist())) and np.all(np.isnan(bad[2].tolist()))
    )
    scalar = o.bs_price_greeks(100.0, 95.0, 0.5, 0.03, 0.2, 0.01, False)
    assert scalar.shape == () and scalar["price"] == pytest.approx(
        float(o.bs_price(100.0, 95.0, 0.5, 0.03, 0.2, 0.01, False))
    )


def test_reused_output_blocks_stay_correct_and_never_alias_a_live_result() -> None:
    """Large record outputs come from a small pool of freed blocks, written with streaming stores
    when reused (core/_opt_outpool.pxi). With the thresholds lowered so 3,000 rows take that path:
    a result (or a view of one) that is still referenced keeps its values while later calls run,
    and every result, fresh or reused, matches QuantLib."""
    n = 3000
    c1, c2 = _random_contracts(n, 41), _random_contracts(n, 43)
    K1, K2 = c1["S"] * c1["m"], c2["S"] * c2["m"]
    ref1, ref2 = _quantlib_reference(c1, K1), _quantlib_reference(c2, K2)
    a1 = (c1["S"], K1, c1["T"], c1["r"], c1["sigma"], c1["q"], c1["call"])
    a2 = (c2["S"], K2, c2["T"], c2["r"], c2["sigma"], c2["q"], c2["call"])
    saved = o._out_pool()
    try:
        o._out_pool(min_bytes=1, stream_min_bytes=1, slots=2, max_bytes=1 << 30)
        first = o.bs_price_greeks(*a1)  # fresh block
        o.bs_price_greeks(*a2)  # fresh block, freed at once into the pool
        assert o._out_pool()["held_bytes"] >= n * 11 * 8
        second = o.bs_price_greeks(*a2)  # the freed block, streamed
        assert o._out_pool()["held_bytes"] == 0
        _assert_matches_quantlib(first, c1, ref1)
        _assert_matches_quantlib(second, c2, ref2)
        delta = first["delta"]  # a view keeps the block out of the pool
        del first
        assert o._out_pool()["held_bytes"] == 0
        third = o.bs_price_greeks(*a2)
        np.testing.assert_allclose(delta, ref1[:, 1], rtol=1e-10, atol=1e-13)
        _assert_matches_quantlib(third, c2, ref2)
        g = o.bs_greeks(*a1)  # the same path for the Greeks alone
        for col, name in ((1, "delta"), (2, "gamma"), (3, "vega"), (5, "rho")):
            np.testing.assert_allclose(g[name], ref1[:, col], rtol=1e-10, atol=1e-13 * c1["S"].min(), err_msg=name)
    finally:
        o._out_pool(
            min_bytes=saved["min_bytes"],
            slots=saved["slots"],
            max_bytes=saved["max_bytes"],
            stream_min_bytes=saved["stream_min_bytes"],
        )


@pytest.mark.parametrize("isa", ["sse2", "avx2", "avx512"])
def test_every_simd_variant_matches_the_scalar_kernels(isa: str, tmp_path: Path) -> None:
    """The vectorised price + Greeks loop is compiled for SSE2, AVX2 and AVX-512 and picked at run time;
    AIOTS_SIMD caps the pick, so each variant runs here (in a fresh process) on random contracts with
    invalid rows and broadcast scalars, against the scalar normalised-Black price and bs_greeks."""
    import subprocess
    import sys

    code = (
        "import numpy as np, sys; from aiots.core import options as o\n"
        "rng = np.random.default_rng(3); n = 20000\n"
        "S = rng.uniform(20, 200, n); S[::997] = np.nan; S[1::991] = -1.0\n"
        "K = S * np.exp(rng.uniform(-1.5, 1.5, n)); T = rng.uniform(1 / 365, 3, n)\n"
        "v = rng.uniform(0.02, 1.5, n); call = rng.random(n) < 0.5\n"
        "o._out_pool(min_bytes=1, stream_min_bytes=1)  # the second call reuses the block, streaming\n"
        "o.bs_price_greeks(S, K, T, 0.03, v, 0.01, call, third_order=True)\n"
        "pg = o.bs_price_greeks(S, K, T, 0.03, v, 0.01, call, third_order=True)\n"
        "np.save(sys.argv[1], pg.view(np.float64).reshape(n, 15)); print(o._simd_isa())\n"
    )
    out = tmp_path / "pg.npy"
    env = {**os.environ, "AIOTS_SIMD": isa}
    res = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True, check=True)
    got = np.load(out)
    assert res.stdout.strip() in (isa, "sse2", "avx2", "scalar")  # capped at what the CPU has
    rng = np.random.default_rng(3)
    n = 20000
    S = rng.uniform(20, 200, n)
    S[::997] = np.nan
    S[1::991] = -1.0
    K = S * np.exp(rng.uniform(-1.5, 1.5, n))
    T = rng.uniform(1 / 365, 3, n)
    v = rng.uniform(0.02, 1.5, n)
    call = rng.random(n) < 0.5
    price = o.bs_price(S, K, T, 0.03, v, 0.01, call)
    g = o.bs_greeks(S, K, T, 0.03, v, 0.01, call)
    bad = ~(S > 0)
    assert np.all(np.isnan(got[bad]))
    ok = ~bad & (price > 1e-250)
    np.testing.assert_allclose(got[ok, 0], price[ok], rtol=2e-13, atol=0.0)
    for j, name in enumerate(o.GREEK_FIELDS, start=1):
        np.testing.assert_allclose(got[~bad, j], g[name][~bad], rtol=1e-10, atol=1e-15, err_msg=name)
