"""Column-wise wire encoding of PriceOptions/ImpliedVolatility responses.

Oracle: the protobuf library itself (messages built field by field, serialised)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.analytics import conversions as conv
from aiots.services.analytics import wire
from aiots.services.analytics.pricing import GREEK_NAMES, IvBatch, PricedBatch
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb
from tests.unit.analytics._wire_oracle import indicators_to_proto_naive

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
reasons = st.sampled_from(["", "", "", "INVALID_SPOT", "PRICING_FAILED", "é-unicode"])


def _priced_ref(res: PricedBatch) -> pb.PriceOptionsResponse:
    out = pb.PriceOptionsResponse()
    for i in range(len(res.price)):
        g = cpb.Greeks(**{n: float(res.greeks[n][i]) for n in GREEK_NAMES})
        out.results.append(pb.PricingResult(price=float(res.price[i]), greeks=g, reason=res.reasons[i]))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(floats, st.lists(floats, min_size=14, max_size=14), reasons), min_size=1, max_size=40))
def test_priced_wire_equals_field_by_field(rows: list[tuple[float, list[float], str]]) -> None:
    res = PricedBatch(
        price=np.array([r[0] for r in rows]),
        greeks={g: np.array([r[1][j] for r in rows]) for j, g in enumerate(GREEK_NAMES)},
        reasons=[r[2] for r in rows],
    )
    got = pb.PriceOptionsResponse.FromString(conv.priced_wire(res))  # explicit zeros: same message, other bytes
    assert got.SerializeToString(deterministic=True) == _priced_ref(res).SerializeToString(deterministic=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(floats, reasons), min_size=1, max_size=60))
def test_iv_wire_equals_field_by_field(rows: list[tuple[float, str]]) -> None:
    res = IvBatch(iv=np.array([r[0] for r in rows]), reasons=[r[1] for r in rows])
    ref = pb.ImpliedVolatilityResponse(
        results=[pb.ImpliedVolatilityResult(implied_volatility=v, reason=r) for v, r in rows]
    )
    got = pb.ImpliedVolatilityResponse.FromString(conv.iv_wire(res))
    assert got.SerializeToString(deterministic=True) == ref.SerializeToString(deterministic=True)
    assert all(
        (math.isnan(a.implied_volatility) and math.isnan(b)) or a.implied_volatility == b
        for a, (b, _) in zip(got.results, rows, strict=True)
    )


def test_contracts_from_proto_columns() -> None:
    rows = [
        pb.PricingInput(spot=100, strike=90, time_to_expiry=0.5, rate=0.05, dividend_yield=0.01, volatility=0.2,
                        price=12.5, right=cpb.OPTION_RIGHT_CALL, style=cpb.EXERCISE_STYLE_EUROPEAN),
        pb.PricingInput(spot=50, strike=55, time_to_expiry=1.0, right=cpb.OPTION_RIGHT_PUT,
                        dividends=[pb.CashDividend(time=0.25, amount=0.5), pb.CashDividend(time=0.75, amount=0.5)]),
        pb.PricingInput(spot=1),
    ]  # fmt: skip
    b = conv.contracts_from_proto(rows)
    assert b.spot.tolist() == [100, 50, 1] and b.strike.tolist() == [90, 55, 0]
    assert b.price.tolist() == [12.5, 0, 0] and b.q.tolist() == [0.01, 0, 0]
    assert b.is_call.tolist() == [True, False, False] and b.right_ok.tolist() == [True, True, False]
    assert b.american.tolist() == [False, True, True]
    assert b.dividends == [(), ((0.25, 0.5), (0.75, 0.5)), ()]
    assert b.spot.flags.c_contiguous and b.t.flags.c_contiguous


# -- GetIndicators: column-wise timestamps and packed series ------------------------------------------------------

ns_values = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _ts_ref(ns: list[int]) -> bytes:
    msg = pb.GetIndicatorsResponse(timestamps=[conv.ts_from_ns(t) for t in ns])
    return bytes(msg.SerializeToString(deterministic=True))


@settings(max_examples=150, deadline=None)
@given(st.lists(ns_values | st.sampled_from([0, 1, -1, 10**9, -(10**9), 1_700_000_000 * 10**9]), max_size=50))
def test_timestamps_wire_equals_protobuf(ns: list[int]) -> None:
    key = wire._key(pb.GetIndicatorsResponse.DESCRIPTOR, "timestamps", 2)
    assert conv.timestamps_wire(key, np.array(ns, dtype=np.int64)) == _ts_ref(ns)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=60),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(["sma", "macd", "é"]), st.integers(1, 3)), max_size=4),
    st.integers(min_value=0, max_value=2**40),
)
def test_indicators_wire_equals_field_by_field(n: int, series: bool, spec: list[tuple[str, int]], seed: int) -> None:
    from aiots.services.analytics.indicators import IndicatorValues

    rng = np.random.default_rng(seed)
    ts = 1_700_000_000 * conv.NS + np.cumsum(rng.integers(1, 120 * conv.NS, n)).astype(np.int64)
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-300])
    values = []
    for name, k in spec:
        outs = []
        for j in range(k):
            x = rng.normal(size=n)
            if n:
                x[rng.integers(0, n, 3)] = special[rng.integers(0, special.size, 3)]
            outs.append((f"{name}{j}", x))
        values.append(IndicatorValues(name, {"period": float(k), "k": 2.5}, outs))
    want = indicators_to_proto_naive("AAPL", "1m", ts, values, series, "computed")
    got = conv.indicators_wire("AAPL", "1m", ts, values, series, "computed")
    assert got == want.SerializeToString(deterministic=True)


def test_cached_indicators_take_the_appended_source() -> None:
    """Cached bytes carry no source; the one appended at serve time is the one a client reads."""
    from aiots.services.analytics.indicators import IndicatorValues

    ts = np.array([1_700_000_000 * conv.NS], dtype=np.int64)
    values = [IndicatorValues("sma", {"period": 2.0}, [("sma", np.array([1.5]))])]
    body = conv.indicators_wire("AAPL", "1m", ts, values, False, "")
    for source in ("cache", "computed"):
        want = indicators_to_proto_naive("AAPL", "1m", ts, values, False, source)
        assert body + conv.source_wire(source) == want.SerializeToString(deterministic=True)


def test_indicators_wire_100k_bars_equals_naive() -> None:
    """Bar times of 100,000 one-minute bars (the benchmark's case), byte for byte."""
    from aiots.services.analytics.indicators import IndicatorValues

    n = 100_000
    ts = 1_700_000_000 * conv.NS + np.arange(n, dtype=np.int64) * 60 * conv.NS
    values = [IndicatorValues("macd", {"fastperiod": 12.0}, [("macd", np.linspace(-1, 1, n)), ("h", np.ones(n))])]
    want = indicators_to_proto_naive("AAPL", "1m", ts, values, True, "computed")
    assert conv.indicators_wire("AAPL", "1m", ts, values, True, "computed") == want.SerializeToString(
        deterministic=True
    )
