"""American options against QuantLib engines (same formulas, high-precision QdFp) and properties."""

from __future__ import annotations

import numpy as np
import pytest

from aiots.core import options as o

ql = pytest.importorskip("QuantLib")

TODAY = ql.Date(2, 1, 2025)
DC = ql.Actual365Fixed()


def _ql(S: float, K: float, days: int, r: float, sig: float, q: float, call: bool, engine: str):
    ql.Settings.instance().evaluationDate = TODAY
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, q, DC)),
        ql.YieldTermStructureHandle(ql.FlatForward(TODAY, r, DC)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(TODAY, ql.NullCalendar(), sig, DC)),
    )
    opt = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, K), ql.AmericanExercise(TODAY, TODAY + days)
    )
    eng = {
        "baw": lambda: ql.BaroneAdesiWhaleyApproximationEngine(proc),
        "bs1993": lambda: ql.BjerksundStenslandApproximationEngine(proc),
        "qdfp": lambda: ql.QdFpAmericanEngine(proc, ql.QdFpAmericanEngine.highPrecisionScheme()),
        "fd": lambda: ql.FdBlackScholesVanillaEngine(proc, 400, 400),
    }[engine]()
    opt.setPricingEngine(eng)
    return opt


def _contracts(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield (
            100.0,
            float(rng.uniform(70, 130)),
            int(rng.integers(10, 3 * 365)),
            float(rng.uniform(0.0, 0.08)),
            float(rng.uniform(0.1, 0.6)),
            float(rng.uniform(0.0, 0.08)),
            bool(rng.random() < 0.5),
        )


@pytest.mark.parametrize(
    ("engine", "method", "tol"), [("baw", "baw", 1e-9), ("bs1993", "bjerksund_stensland_1993", 1e-10)]
)
def test_same_formula_as_quantlib(engine: str, method: str, tol: float) -> None:
    for S, K, days, r, sig, q, call in _contracts(300, 3):
        ref = _ql(S, K, days, r, sig, q, call, engine).NPV()
        mine = float(o.american_price(S, K, days / 365, r, sig, q, call, method=method))
        assert abs(mine - ref) <= tol * max(ref, 1.0), (S, K, days, r, sig, q, call, mine, ref)


def test_baw_array_path_matches_quantlib() -> None:
    """american_price(method="baw") on arrays runs several contracts per vector lane (blocks of 64,
    Newton passes until every lane has converged): each row must still be QuantLib's BAW to 1e-9,
    including rows with no early-exercise premium (calls with q = 0, puts with r = 0), rows past
    the critical price (exercise now), a broadcast scalar argument and an invalid row in a block."""
    rng = np.random.default_rng(11)
    n = 150
    K = rng.uniform(40.0, 250.0, n)
    days = rng.integers(5, 4 * 365, n)
    r = rng.uniform(0.0, 0.12, n)
    q = rng.uniform(0.0, 0.12, n)
    v = rng.uniform(0.05, 1.2, n)
    call = rng.random(n) < 0.5
    q[:10] = 0.0  # calls among these: European
    r[10:20] = 0.0  # puts among these: European
    K[20:25], call[20:25] = 300.0, False  # deep ITM puts: at or past the critical price
    v[30] = -0.2  # invalid row: NaN, its block neighbours unaffected
    mine = o.american_price(100.0, K, days / 365, r, v, q, call, method="baw")
    assert np.isnan(mine[30])
    for i in range(n):
        if i == 30:
            continue
        args = (100.0, float(K[i]), int(days[i]), float(r[i]), float(v[i]), float(q[i]), bool(call[i]))
        ref = _ql(*args, "baw").NPV()
        assert abs(mine[i] - ref) <= 1e-9 * max(ref, 1.0), (i, args, mine[i], ref)


def test_accuracy_vs_quantlib_qdfp() -> None:
    """Accuracy of each method against QdFp (high precision), on typical contracts.

    Measured worst absolute errors on this set (per share, S=100): BS2002 0.31 (a lower bound,
    weakest for long-dated deep-ITM puts), BAW 0.28, BS1993 0.33, Leisen-Reimer binomial 1001
    steps 3.5e-3 (near the exercise boundary). Asserted with margin.
    """
    errs: dict[str, float] = {
        "bjerksund_stensland_2002": 0.0,
        "baw": 0.0,
        "bjerksund_stensland_1993": 0.0,
        "binomial": 0.0,
    }
    for S, K, days, r, sig, q, call in _contracts(40, 5):
        ref = _ql(S, K, days, r, sig, q, call, "qdfp").NPV()
        for m in errs:
            mine = float(o.american_price(S, K, days / 365, r, sig, q, call, method=m, steps=1001))
            errs[m] = max(errs[m], abs(mine - ref))
            if m == "bjerksund_stensland_2002":
                assert mine <= ref + 1e-6  # value of an exercise policy: a lower bound
    assert errs["binomial"] < 5e-3, errs
    assert errs["baw"] < 0.3, errs
    assert errs["bjerksund_stensland_2002"] < 0.8, errs
    assert errs["bjerksund_stensland_1993"] < 1.0, errs


def test_tree_greeks_vs_quantlib_fd() -> None:
    for S, K, days, r, sig, q, call in _contracts(6, 8):
        opt = _ql(S, K, days, r, sig, q, call, "fd")
        g = o.american_greeks(S, K, days / 365, r, sig, q, call, steps=1001)
        assert abs(g["price"] - opt.NPV()) < 5e-3  # FD 400x400 and the tree each carry ~1e-3
        assert abs(g["delta"] - opt.delta()) < 2e-3
        assert abs(g["gamma"] - opt.gamma()) < 2e-3 * max(1.0, abs(opt.gamma()) * 100)
        assert abs(g["theta"] - opt.theta()) < 0.05 * max(1.0, abs(opt.theta()))
    g2 = o.american_greeks(100.0, 100.0, 1.0, 0.05, 0.3, 0.02, False, method="baw")
    assert g2["delta"] < 0 and g2["gamma"] > 0 and g2["vega"] > 0 and g2["rho"] < 0


def test_properties() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    S = 100.0
    K = rng.uniform(50, 150, n)
    T = rng.uniform(0.02, 3, n)
    r = rng.uniform(0.0, 0.1, n)
    q = rng.uniform(0.0, 0.1, n)
    v = rng.uniform(0.05, 1.0, n)
    call = rng.random(n) < 0.5
    eu = o.bs_price(S, K, T, r, v, q, call)
    intrinsic = np.where(call, np.maximum(S - K, 0), np.maximum(K - S, 0))
    for m in ("bjerksund_stensland_2002", "baw", "bjerksund_stensland_1993"):
        am = o.american_price(S, K, T, r, v, q, call, method=m)
        assert np.all(am >= eu - 1e-9 * S)
        assert np.all(am >= intrinsic - 1e-12)
        assert np.all(am <= np.where(call, S, K))
        am_up = o.american_price(S, K, T, r, v * 1.05, q, call, method=m)
        assert np.all(am_up >= am - 1e-9)
    # American call without dividends is European
    am_call = o.american_price(S, K, T, r, v, 0.0, True)
    np.testing.assert_allclose(am_call, o.bs_price(S, K, T, r, v, 0.0, True), rtol=1e-12)
    tree_call = o.american_price(S, K[:20], T[:20], r[:20], v[:20], 0.0, True, method="binomial", steps=201)
    np.testing.assert_allclose(tree_call, o.bs_price(S, K[:20], T[:20], r[:20], v[:20], 0.0, True), atol=0.05)


def test_discrete_dividends_binomial() -> None:
    S, K, T, r, v = 100.0, 100.0, 1.0, 0.05, 0.25
    none = o.american_price(S, K, T, r, v, 0.0, True, method="binomial", steps=501)
    zero = o.american_price(S, K, T, r, v, 0.0, True, method="binomial", steps=501, dividends=[(0.5, 0.0)])
    assert zero == pytest.approx(none, abs=1e-12)
    divs = [(0.25, 1.0), (0.75, 1.0)]
    call = o.american_price(S, K, T, r, v, 0.0, True, method="binomial", steps=501, dividends=divs)
    pv = sum(d * np.exp(-r * t) for t, d in divs)
    eu_escrowed = o.bs_price(S - pv, K, T, r, v, 0.0, True)
    assert eu_escrowed - 0.02 <= call < none  # early exercise before ex-dates adds value, dividends cost
    put = o.american_price(S, K, T, r, v, 0.0, False, method="binomial", steps=501, dividends=divs)
    put0 = o.american_price(S, K, T, r, v, 0.0, False, method="binomial", steps=501)
    assert put > put0
    # a dividend after expiry changes nothing
    late = o.american_price(S, K, T, r, v, 0.0, True, method="binomial", steps=501, dividends=[(1.5, 5.0)])
    assert late == pytest.approx(none, abs=1e-12)
    with pytest.raises(ValueError, match="dividends"):
        o.american_price(S, K, T, r, v, 0.0, True, method="baw", dividends=divs)


def test_early_exercise_boundary() -> None:
    K, T, r, v, q = 100.0, 1.0, 0.06, 0.3, 0.0
    t, b = o.early_exercise_boundary(K, T, r, v, q, n_points=21, steps=2000)
    assert t.shape == b.shape == (21,)
    assert np.all(np.isfinite(b))
    assert np.all(np.diff(b) >= -0.5)  # rises toward expiry (to node resolution)
    assert np.all(b <= K + 1e-12)
    # perpetual put boundary is the lower limit
    lam = (-(r - q - 0.5 * v * v) - np.sqrt((r - q - 0.5 * v * v) ** 2 + 2 * r * v * v)) / (v * v)
    assert np.all(b >= K * lam / (lam - 1) - 1e-9)
    # exercising just below the boundary is worth intrinsic; just above it is worth more
    mid = 10
    tau = T - t[mid]
    below = o.american_price(b[mid] * 0.98, K, tau, r, v, q, False, method="binomial", steps=2001)
    above = o.american_price(b[mid] * 1.02, K, tau, r, v, q, False, method="binomial", steps=2001)
    assert below == pytest.approx(K - b[mid] * 0.98, abs=1e-9)
    assert above > K - b[mid] * 1.02 + 1e-6
