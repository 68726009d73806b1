"""Benchmark aiots.core.options against NumPy/SciPy, vollib and QuantLib (run: python bench/options.py).

Sections: throughput (1M/100k, vs anchors) then small-n latency; `python bench/options.py latency`
runs only the latter. Prints medians of REPEATS runs (env AIOTS_BENCH_REPEATS, default 7) side by side and ratios.
``--clock cpu`` (default): this process's CPU time with every call serial (the OpenMP thresholds set
out of reach), i.e. per-core work, which a shared machine disturbs least; ``--clock wall``:
``perf_counter`` with the library's own parallel thresholds (both cores for ours, one for NumPy,
vollib and QuantLib).
Per-option libraries are timed on a subset and scaled linearly to the full size (stated in the
table). py_vollib_vectorized is not used: it fails to compile with numba (TypingError) on this
environment's NumPy 2.x.
"""

from __future__ import annotations

import functools
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from aiots.core import options as o

warnings.filterwarnings("ignore", category=DeprecationWarning)
F64 = npt.NDArray[np.float64]
REPEATS = int(os.environ.get("AIOTS_BENCH_REPEATS", "7"))


_clock: Callable[[], float] = time.process_time


def median_time(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    ts = []
    for _ in range(repeats):
        t0 = _clock()
        fn()
        ts.append(_clock() - t0)
    return statistics.median(ts)


def numpy_price_greeks(S: F64, K: F64, T: F64, r: F64, v: F64, q: F64, call: npt.NDArray[np.bool_]) -> tuple[F64, ...]:
    """Plain NumPy + scipy.special.ndtr: price, delta, vega, theta, rho, epsilon, gamma, vanna, vomma,
    charm, veta (all first- and second-order outputs of bs_price + bs_greeks)."""
    th = np.where(call, 1.0, -1.0)
    sq = np.sqrt(T)
    vs = v * sq
    d1 = (np.log(S / K) + (r - q + 0.5 * v * v) * T) / vs
    d2 = d1 - vs
    dq, dr = np.exp(-q * T), np.exp(-r * T)
    n1 = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    N1, N2 = ndtr(th * d1), ndtr(th * d2)
    price = th * (S * dq * N1 - K * dr * N2)
    delta = th * dq * N1
    vega = S * dq * n1 * sq
    theta = -S * dq * n1 * v / (2 * sq) - th * r * K * dr * N2 + th * q * S * dq * N1
    rho = th * K * T * dr * N2
    eps = -th * S * T * dq * N1
    gamma = dq * n1 / (S * vs)
    vanna = -dq * n1 * d2 / v
    vomma = vega * d1 * d2 / v
    charm = th * q * dq * N1 - dq * n1 * (2 * (r - q) * T - d2 * vs) / (2 * T * vs)
    veta = S * dq * n1 * sq * (q + (r - q) * d1 / vs - (1 + d1 * d2) / (2 * T))
    return price, delta, vega, theta, rho, eps, gamma, vanna, vomma, charm, veta


def numpy_bisection_iv(
    price: F64, S: F64, K: F64, T: F64, r: F64, q: F64, call: npt.NDArray[np.bool_], tol: float = 1e-12
) -> F64:
    lo = np.full_like(price, 1e-4)
    hi = np.full_like(price, 10.0)
    th = np.where(call, 1.0, -1.0)
    sq = np.sqrt(T)
    dq, dr = S * np.exp(-q * T), K * np.exp(-r * T)
    lnsk = np.log(S / K) + (r - q) * T
    while np.max((hi - lo) / hi) > tol:
        mid = 0.5 * (lo + hi)
        vs = mid * sq
        d1 = lnsk / vs + 0.5 * vs
        p = th * (dq * ndtr(th * d1) - dr * ndtr(th * (d1 - vs)))
        up = p > price
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    return 0.5 * (lo + hi)


def latency_us(fn: Callable[[], object], reps: int = 400) -> float:
    """Median wall time of one call in microseconds (small-n latency: dominated by fixed costs)."""
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def latency_section() -> None:
    """Per-call latency at chain-sized inputs: calls below the OpenMP thresholds must stay serial
    (starting a parallel region costs 10-30 ms on a loaded 2-core box)."""
    rng = np.random.default_rng(7)
    print("\nsmall-n latency, median us per call")
    print("| call | n=1 | n=8 | n=40 | n=400 |")
    print("|---|---:|---:|---:|---:|")
    cases: dict[str, Callable[..., object]] = {
        "bs_price": lambda a: o.bs_price(a[0], a[1], a[2], a[3], a[4], a[5], a[6]),
        "bs_greeks": lambda a: o.bs_greeks(a[0], a[1], a[2], a[3], a[4], a[5], a[6]),
        "implied_vol european": lambda a: o.implied_vol(a[7], a[0], a[1], a[2], a[3], a[5], a[6]),
        "american_price bs2002": lambda a: o.american_price(a[0], a[1], a[2], a[3], a[4], a[5], a[6]),
        "american_price baw": lambda a: o.american_price(a[0], a[1], a[2], a[3], a[4], a[5], a[6], method="baw"),
        "implied_vol american bs2002": lambda a: o.implied_vol(a[8], a[0], a[1], a[2], a[3], a[5], a[6], "american"),
    }
    inputs = {}
    for n in (1, 8, 40, 400):
        S = rng.uniform(50, 150, n)
        K = S * np.exp(rng.uniform(-0.3, 0.3, n))
        T = rng.uniform(7 / 365, 1.0, n)
        r = rng.uniform(0.0, 0.05, n)
        v = rng.uniform(0.15, 0.6, n)
        q = rng.uniform(0.0, 0.03, n)
        c = rng.random(n) < 0.5
        inputs[n] = (S, K, T, r, v, q, c, o.bs_price(S, K, T, r, v, q, c), o.american_price(S, K, T, r, v, q, c))
    for name, fn in cases.items():
        cells = [f"{latency_us(functools.partial(fn, inputs[n]), 200 if n < 400 else 50):.0f}" for n in inputs]
        print(f"| {name} | " + " | ".join(cells) + " |")


def row(label: str, ours: float, other: float, note: str = "") -> None:
    print(f"| {label:<58} | {ours * 1e3:>10.1f} | {other * 1e3:>12.1f} | {other / ours:>8.1f}x | {note}")


def main() -> None:
    global _clock
    if "latency" in sys.argv[1:]:
        latency_section()
        return
    wall = "--clock=wall" in sys.argv[1:] or "wall" in sys.argv[1:]
    if wall:
        _clock = time.perf_counter
    else:
        big = 1 << 62
        o._parallel_thresholds(light=big, iv=big, am=big, heavy=big, am_iv=big)
    rng = np.random.default_rng(42)
    n = 1_000_000
    S = rng.uniform(50, 150, n)
    K = S * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.uniform(7 / 365, 2.0, n)
    r = rng.uniform(0.0, 0.06, n)
    q = rng.uniform(0.0, 0.04, n)
    v = rng.uniform(0.1, 0.8, n)
    call = rng.random(n) < 0.5
    isa = o._simd_isa() if hasattr(o, "_simd_isa") else "scalar"
    print(
        f"machine: {platform.machine()} {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"repeats={REPEATS}, clock={'wall (ours parallel)' if wall else 'cpu (all serial)'}, greeks simd={isa}"
    )
    print("| workload | ours ms | other ms | ratio | note")
    print("|---|---:|---:|---:|---|")

    def ours_pg() -> None:
        o.bs_price(S, K, T, r, v, q, call)
        o.bs_greeks(S, K, T, r, v, q, call)

    t_ours = median_time(ours_pg)
    t_fused = median_time(lambda: o.bs_price_greeks(S, K, T, r, v, q, call))
    t_np = median_time(lambda: numpy_price_greeks(S, K, T, r, v, q, call))
    row("price + 1st/2nd-order Greeks, fused, 1M (vs NumPy+ndtr same)", t_fused, t_np, "bs_price_greeks")
    row("bs_price + bs_greeks (14 Greeks), 1M (vs NumPy+ndtr 11 outputs)", t_ours, t_np, "two calls")

    from py_vollib.black_scholes_merton import black_scholes_merton as vb
    from py_vollib.black_scholes_merton.greeks import analytical as va

    m = 10_000

    def vollib_pg() -> None:
        for i in range(m):
            f = "c" if call[i] else "p"
            a = (S[i], K[i], T[i], r[i], v[i], q[i])
            vb(f, *a)
            va.delta(f, *a)
            va.gamma(f, *a)
            va.vega(f, *a)
            va.theta(f, *a)
            va.rho(f, *a)

    t_vol = median_time(vollib_pg, max(1, REPEATS // 3)) * (n / m)
    row("price + Greeks, 1M (vs vollib per option: price+5 Greeks)", t_fused, t_vol, "vollib 10k scaled x100")

    price = np.asarray(o.bs_price(S, K, T, r, v, q, call), dtype=np.float64)
    t_iv = median_time(lambda: o.implied_vol(price, S, K, T, r, q, call))
    t_bis = median_time(lambda: numpy_bisection_iv(price, S, K, T, r, q, call), max(1, REPEATS // 3))
    row("implied vol, 1M (vs NumPy bisection to 1e-12)", t_iv, t_bis)
    from py_vollib.black_scholes_merton.implied_volatility import implied_volatility as viv

    def vollib_iv() -> None:
        for i in range(m):
            try:
                viv(price[i], S[i], K[i], T[i], r[i], q[i], "c" if call[i] else "p")
            except Exception:  # vollib raises BelowIntrinsic on deep ITM rounding
                continue

    t_viv = median_time(vollib_iv, max(1, REPEATS // 3)) * (n / m)
    row("implied vol, 1M (vs py_vollib LBR per option)", t_iv, t_viv, "10k scaled x100")

    na = 100_000
    args = (S[:na], K[:na], T[:na], r[:na], v[:na], q[:na], call[:na])
    t_am = median_time(lambda: o.american_price(*args, method="bjerksund_stensland_2002"))
    t_baw = median_time(lambda: o.american_price(*args, method="baw"))
    t_93 = median_time(lambda: o.american_price(*args, method="bjerksund_stensland_1993"))
    import QuantLib as ql

    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    sq_, rq_, qq_, vq_ = ql.SimpleQuote(100.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.2)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(sq_),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(qq_), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rq_), dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vq_), dc)),
    )
    mq = 2_000

    def ql_run(engine: object) -> None:
        for i in range(mq):
            sq_.setValue(float(S[i]))
            rq_.setValue(float(r[i]))
            qq_.setValue(float(q[i]))
            vq_.setValue(float(v[i]))
            opt = ql.VanillaOption(
                ql.PlainVanillaPayoff(ql.Option.Call if call[i] else ql.Option.Put, float(K[i])),
                ql.AmericanExercise(today, today + max(1, round(T[i] * 365))),
            )
            opt.setPricingEngine(engine)
            opt.NPV()

    t_qlbs = median_time(lambda: ql_run(ql.BjerksundStenslandApproximationEngine(proc)), max(1, REPEATS // 3))
    t_qlbaw = median_time(lambda: ql_run(ql.BaroneAdesiWhaleyApproximationEngine(proc)), max(1, REPEATS // 3))
    row("American BS2002, 100k (vs QuantLib Bjerksund-Stensland)", t_am, t_qlbs * na / mq, "QL 2k scaled x50")
    row("American BS1993, 100k (vs QuantLib BS: the same formula)", t_93, t_qlbs * na / mq, "QL 2k scaled x50")
    row("American BAW, 100k (vs QuantLib BAW)", t_baw, t_qlbaw * na / mq, "QL 2k scaled x50")
    row("American BS2002, 100k (vs QuantLib BAW)", t_am, t_qlbaw * na / mq, "QL 2k scaled x50")


if __name__ == "__main__":
    main()
    if len(sys.argv) == 1:
        latency_section()
