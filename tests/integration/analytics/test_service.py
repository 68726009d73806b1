"""AnalyticsService through a real gRPC channel against PostgreSQL filled through the ingestion writer.

Oracles: QuantLib (European prices/Greeks, QdFp American prices), TA-Lib (indicator
values), hand-derived max pain / put-call ratios / GEX aggregation on a tiny chain.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import QuantLib as ql
import talib

from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb

from .conftest import occ, seed_chain

pytestmark = pytest.mark.integration

CALL, PUT = cpb.OPTION_RIGHT_CALL, cpb.OPTION_RIGHT_PUT
EURO, AMER = cpb.EXERCISE_STYLE_EUROPEAN, cpb.EXERCISE_STYLE_AMERICAN


def _ql_price(s: float, k: float, t: float, r: float, q: float, vol: float, call: bool, american: bool) -> float:
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    days = round(t * 365)
    maturity = today + days
    tt = days / 365.0
    assert abs(tt - t) < 1e-12
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, k)
    exercise = ql.AmericanExercise(today, maturity) if american else ql.EuropeanExercise(maturity)
    opt = ql.VanillaOption(payoff, exercise)
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(s)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc)),
    )
    eng = (
        ql.QdFpAmericanEngine(proc, ql.QdFpAmericanEngine.accurateScheme())
        if american
        else ql.AnalyticEuropeanEngine(proc)
    )
    opt.setPricingEngine(eng)
    return float(opt.NPV())


def _row(**kw: Any) -> pb.PricingInput:
    base = dict(spot=100.0, strike=100.0, time_to_expiry=73 / 365, rate=0.05, dividend_yield=0.01, volatility=0.25)
    base.update(kw)
    return pb.PricingInput(**base)


async def _err(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call
    return ei.value


async def test_price_options_vs_quantlib(analytics: Any) -> None:
    stub, _ = analytics
    rows, expect = [], []
    for s, k, days, vol, right, style in [
        (100, 95, 73, 0.2, CALL, EURO), (100, 110, 146, 0.35, PUT, EURO), (50, 55, 365, 0.3, CALL, EURO),
        (100, 95, 73, 0.2, PUT, AMER), (100, 120, 219, 0.4, PUT, AMER), (80, 70, 30, 0.5, CALL, AMER),
    ]:  # fmt: skip
        rows.append(_row(spot=s, strike=k, time_to_expiry=days / 365, volatility=vol, right=right, style=style))
        expect.append(_ql_price(s, k, days / 365, 0.05, 0.01, vol, right == CALL, style == AMER))
    resp = await stub.PriceOptions(pb.PriceOptionsRequest(contracts=rows))
    for r, e, row in zip(resp.results, expect, rows, strict=True):
        assert r.reason == ""
        # European: closed form, exact. American: Bjerksund-Stensland 2002 vs QuantLib's QdFp (near exact)
        # within the approximation's documented accuracy.
        tol = 1e-9 if row.style == EURO else 1e-2
        assert r.price == pytest.approx(e, rel=tol, abs=tol)
    # European first-order Greeks in trader units vs QuantLib's analytic engine
    g = resp.results[0].greeks
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    opt = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, 95), ql.EuropeanExercise(today + 73))
    proc = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.01, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.2, dc)),
    )
    opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
    assert g.delta == pytest.approx(opt.delta(), rel=1e-9)
    assert g.gamma == pytest.approx(opt.gamma(), rel=1e-9)
    assert g.vega == pytest.approx(opt.vega() / 100, rel=1e-9)
    assert g.theta == pytest.approx(opt.theta() / 365, rel=1e-9)
    assert g.rho == pytest.approx(opt.rho() / 100, rel=1e-9)


async def test_price_options_bad_rows_and_requests(analytics: Any) -> None:
    stub, _ = analytics
    rows = [
        _row(right=CALL, time_to_expiry=0.0),
        _row(right=CALL, volatility=-0.1),
        _row(right=PUT, spot=float("nan")),
        _row(right=PUT, style=EURO, dividends=[pb.CashDividend(time=0.1, amount=1.0)]),
        _row(right=PUT, style=AMER, dividends=[pb.CashDividend(time=0.1, amount=1.0)]),
    ]
    resp = await stub.PriceOptions(pb.PriceOptionsRequest(contracts=rows, american_method="binomial", steps=801))
    reasons = [r.reason for r in resp.results]
    assert reasons[:4] == ["NONPOSITIVE_TIME", "INVALID_VOLATILITY", "INVALID_SPOT", "DIVIDENDS_NEED_AMERICAN"]
    assert all(math.isnan(r.price) for r in resp.results[:4])
    assert reasons[4] == ""
    no_div = await stub.PriceOptions(pb.PriceOptionsRequest(contracts=[_row(right=PUT)], american_method="binomial"))
    # a cash dividend makes an American put worth more
    assert resp.results[4].price > no_div.results[0].price
    # a row without its right is a bad request, not a NaN row (issue 18 item 6)
    e = await _err(stub.PriceOptions(pb.PriceOptionsRequest(contracts=[_row(right=cpb.OPTION_RIGHT_UNSPECIFIED)])))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "OPTION_RIGHT_PUT" in e.details()
    e = await _err(stub.PriceOptions(pb.PriceOptionsRequest()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "contracts" in e.details()
    e = await _err(stub.PriceOptions(pb.PriceOptionsRequest(contracts=[_row(right=CALL)], american_method="magic")))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "bjerksund_stensland_2002" in e.details()


async def test_implied_volatility_round_trip(analytics: Any) -> None:
    stub, _ = analytics
    quotes, vols = [], [0.15, 0.3, 0.6]
    for vol, right in zip(vols, [CALL, PUT, CALL], strict=True):
        price = _ql_price(100, 105, 146 / 365, 0.05, 0.01, vol, right == CALL, False)
        quotes.append(_row(strike=105, time_to_expiry=146 / 365, right=right, style=EURO, price=price))
    quotes.append(_row(right=CALL, style=EURO, strike=50, price=1.0))  # below intrinsic
    quotes.append(_row(right=PUT, price=-1.0))
    resp = await stub.ImpliedVolatility(pb.ImpliedVolatilityRequest(quotes=quotes))
    for r, v in zip(resp.results[:3], vols, strict=False):
        assert r.reason == ""
        assert r.implied_volatility == pytest.approx(v, rel=1e-10)
    assert resp.results[3].reason == "BELOW_INTRINSIC" and math.isnan(resp.results[3].implied_volatility)
    assert resp.results[4].reason == "INVALID_PRICE"
    e = await _err(stub.ImpliedVolatility(pb.ImpliedVolatilityRequest()))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_indicators_vs_talib(analytics: Any, shared_data: Path) -> None:
    stub, _ = analytics
    with (shared_data / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    close = np.array([float(r["close"]) for r in rows])
    high = np.array([float(r["high"]) for r in rows])
    low = np.array([float(r["low"]) for r in rows])
    req = pb.GetIndicatorsRequest(symbol="aapl", indicators=["sma,rsi,macd", "atr"], period=20, include_series=True)
    resp = await stub.GetIndicators(req)
    assert resp.bars == 500 and resp.interval == "1d" and resp.source == "computed"
    c, h, lo = close[-500:], high[-500:], low[-500:]
    by = {r.name: r for r in resp.results}
    np.testing.assert_allclose(by["sma"].outputs[0].series, talib.SMA(c, 20), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(by["rsi"].outputs[0].series, talib.RSI(c, 20), rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(by["atr"].outputs[0].series, talib.ATR(h, lo, c, 20), rtol=1e-9, equal_nan=True)
    m, s, _hist = talib.MACD(c, 12, 26, 9)
    assert [o.name for o in by["macd"].outputs][:1] == ["macd"]
    assert by["macd"].outputs[0].value == pytest.approx(m[-1], rel=1e-9)
    assert by["macd"].outputs[1].value == pytest.approx(s[-1], rel=1e-9)
    assert by["sma"].params["period"] == 20
    # per-indicator parameters
    resp2 = await stub.GetIndicators(
        pb.GetIndicatorsRequest(
            symbol="AAPL", indicators=["macd", "bbands"], params=["macd.fast=8", "bbands.nbdev_up=2.5"]
        )
    )
    m8 = talib.MACD(c, 8, 26, 9)[0]
    up = talib.BBANDS(c, 20, 2.5, 2.0)[0]
    assert resp2.results[0].outputs[0].value == pytest.approx(m8[-1], rel=1e-9)
    assert resp2.results[1].outputs[0].value == pytest.approx(up[-1], rel=1e-9)
    # a repeated query within the TTL comes from the cache
    again = await stub.GetIndicators(req)
    assert again.source == "cache"
    assert list(again.results[0].outputs[0].series)[-1] == pytest.approx(by["sma"].outputs[0].value)


async def test_get_indicators_intraday_rollup(analytics: Any, shared_data: Path) -> None:
    stub, _ = analytics
    resp = await stub.GetIndicators(
        pb.GetIndicatorsRequest(symbol="NVDA", interval="5m", indicators=["sma"], period=10)
    )
    assert resp.interval == "5m" and resp.bars > 100
    assert resp.as_of.seconds % 300 == 0


async def test_get_indicators_errors(analytics: Any) -> None:
    stub, _ = analytics
    e = await _err(stub.GetIndicators(pb.GetIndicatorsRequest(symbol="ZZZZ")))
    assert e.code() == grpc.StatusCode.NOT_FOUND and "ZZZZ" in e.details()
    e = await _err(stub.GetIndicators(pb.GetIndicatorsRequest(symbol="AAPL", indicators=["foo"])))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "foo" in e.details() and "rsi" in e.details()
    e = await _err(stub.GetIndicators(pb.GetIndicatorsRequest(symbol="AAPL", period=5000)))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "1..1000" in e.details()
    e = await _err(stub.GetIndicators(pb.GetIndicatorsRequest(symbol="AAPL", interval="7m")))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    e = await _err(
        stub.GetIndicators(pb.GetIndicatorsRequest(symbol="AAPL", params=["rsi.bogus=1"], indicators=["rsi"]))
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "period" in e.details()
    # a known symbol with no 1m bars in the window (1990: before any test writes AAPL minutes)
    no_bars = pb.GetIndicatorsRequest(symbol="AAPL", interval="1m")
    no_bars.start.FromJsonString("1990-01-02T14:30:00Z")
    no_bars.end.FromJsonString("1990-01-03T21:00:00Z")
    e = await _err(stub.GetIndicators(no_bars))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "1m" in e.details() and "collect" in e.details()
    e = await _err(stub.GetIndicators(pb.GetIndicatorsRequest(symbol="")))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_tiny_chain_hand_derived(analytics: Any, writer: Any) -> None:
    """One expiry, strikes 90/100/110: max pain, put/call ratios and GEX aggregation by hand."""
    stub, _ = analytics
    exp = "2016-02-19"
    book = {  # (right, strike): (bid, ask, volume, oi)
        ("C", 90.0): (10.6, 11.0, 10, 100), ("C", 100.0): (3.9, 4.1, 50, 300), ("C", 110.0): (0.9, 1.1, 200, 50),
        ("P", 90.0): (0.7, 0.9, 30, 400), ("P", 100.0): (3.7, 3.9, 60, 200), ("P", 110.0): (10.3, 10.7, 5, 20),
    }  # fmt: skip
    rows = [
        {"occ": occ("TNY", exp, r, k), "expiry": exp, "right": r, "strike": k, "bid": b, "ask": a, "last": 0.0,
         "volume": float(v), "oi": float(oi)}
        for (r, k), (b, a, v, oi) in book.items()
    ]  # fmt: skip
    await seed_chain(writer, "TNY", "2016-01-20", 100.0, rows)
    resp = await stub.GetOptionsAnalytics(pb.GetOptionsAnalyticsRequest(symbol="TNY", unusual_threshold=1.5))
    # max pain: pay-out at settlement K*: calls OI*(K*-K)+, puts OI*(K-K*)+
    #   K*=90: puts 200*10 + 20*20 = 2400; K*=100: calls 100*10=1000, puts 20*10=200 -> 1200;
    #   K*=110: calls 100*20 + 300*10 = 5000  -> max pain 100
    assert resp.expiries[0].max_pain == 100.0
    assert resp.put_call_volume_ratio == pytest.approx((30 + 60 + 5) / (10 + 50 + 200))
    assert resp.put_call_oi_ratio == pytest.approx((400 + 200 + 20) / (100 + 300 + 50))
    # volume/OI: C110 200/50 = 4 is the only ratio above 1.5 (next: P100 60/200 = 0.3)
    assert [u.contract.occ_symbol for u in resp.unusual] == [occ("TNY", exp, "C", 110.0)]
    assert resp.unusual[0].ratio == pytest.approx(4.0)
    assert resp.open_interest_as_of.seconds > 0
    chain = await stub.GetOptionChain(pb.GetOptionChainRequest(symbol="TNY"))
    assert len(chain.contracts) == 6
    s = chain.underlying_price
    gex: dict[float, float] = {}
    for q in chain.contracts:
        # every quote of this chain has time value: the American IV solves (reason codes are the core's)
        assert q.iv_reason == "" and 0.05 < q.iv < 1.5, (q.contract.occ_symbol, q.iv_reason)
        # a contract whose IV the core cannot solve has NaN Greeks and no exposure (reason says why)
        assert (q.iv_reason == "") == math.isfinite(q.greeks.gamma)
        gamma = q.greeks.gamma if math.isfinite(q.greeks.gamma) else 0.0
        sign = 1.0 if q.contract.right == CALL else -1.0
        gex[q.contract.strike] = gex.get(q.contract.strike, 0.0) + sign * gamma * q.open_interest * 100 * s * s * 0.01
        assert q.mid == pytest.approx((q.bid + q.ask) / 2)
    for e in resp.exposures:
        assert e.gex == pytest.approx(gex[e.strike], rel=1e-9)
    assert resp.total_gex == pytest.approx(sum(gex.values()), rel=1e-9)
    assert resp.expiries[0].expected_move_straddle == pytest.approx(4.0 + 3.8)


async def test_real_chain_analytics_and_surface(analytics: Any) -> None:
    stub, _ = analytics
    resp = await stub.GetOptionsAnalytics(pb.GetOptionsAnalyticsRequest(symbol="A"))
    assert resp.underlying_price == pytest.approx(40.55)
    assert [e.expiry for e in resp.expiries] == sorted(e.expiry for e in resp.expiries)
    assert len(resp.expiries) == 7
    near = resp.expiries[1]
    assert 0.15 < near.atm_iv < 0.6 and near.expected_move_iv > 0 and near.forward > 0
    assert resp.iv_history_days == 100
    assert 0 <= resp.iv_percentile <= 100
    chain = await stub.GetOptionChain(pb.GetOptionChainRequest(symbol="A", expiry=resp.expiries[1].expiry))
    assert chain.contracts and all(c.contract.expiry == resp.expiries[1].expiry for c in chain.contracts)
    assert resp.exercise_style == "american" and resp.pricing_model == "bjerksund-stensland-2002"
    assert near.forward_source == "put_call_parity" and near.quotes_used > 0
    assert sum(x.count for x in resp.excluded) > 0 and all(x.reason for x in resp.excluded)
    surf = await stub.GetVolSurface(pb.GetVolSurfaceRequest(symbol="A"))
    ok = [s for s in surf.slices if s.status == "OK"]
    assert ok and all(math.isfinite(s.rmse_vol_points) for s in ok)
    assert all(s.reason for s in surf.slices if s.status != "OK")
    assert len(surf.grid) == len(ok) * 13
    assert surf.parametrization == "svi" and surf.exercise_style == "american"
    for s in surf.slices:
        print(f"A {s.expiry}: {s.status} points={s.points} rmse={s.rmse_vol_points:.2f} min g={s.min_density:.3g}")
        if s.status == "OK":
            assert s.butterfly_arbitrage_free and s.calendar_arbitrage_free
    e = await _err(stub.GetOptionsAnalytics(pb.GetOptionsAnalyticsRequest(symbol="NOPE")))
    assert e.code() == grpc.StatusCode.NOT_FOUND and "NOPE" in e.details()
    e = await _err(stub.GetOptionChain(pb.GetOptionChainRequest(symbol="AAPL")))
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    e = await _err(stub.GetOptionChain(pb.GetOptionChainRequest(symbol="A", expiry="tomorrow")))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    e = await _err(stub.GetOptionsAnalytics(pb.GetOptionsAnalyticsRequest(symbol="A", unusual_threshold=-1)))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_get_patterns(analytics: Any, shared_data: Path) -> None:
    stub, _ = analytics
    resp = await stub.GetPatterns(pb.GetPatternsRequest(symbol="AAPL", days=365))
    with (shared_data / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    import datetime as dt

    end = dt.date.fromisoformat(rows[-1]["date"])
    win = [r for r in rows if (end - dt.date.fromisoformat(r["date"])).days < 365]
    o, h, lo, c = (np.array([float(r[k]) for r in win]) for k in ("open", "high", "low", "close"))
    # TA-Lib oracle: engulfing hits on the same window, by date and direction
    flags = talib.CDLENGULFING(o, h, lo, c)
    want = {(win[i]["date"], "bullish" if flags[i] > 0 else "bearish") for i in np.flatnonzero(flags)}
    got = {
        (dt.datetime.fromtimestamp(p.start.seconds, dt.UTC).date().isoformat(), p.direction)
        for p in resp.patterns
        if p.name in ("cdl_engulfing", "engulfing", "CDLENGULFING")
    }
    assert want and got == want
    assert resp.trend.direction in ("up", "down", "sideways") and 0 <= resp.trend.r_squared <= 1
    assert all(lv.kind in ("support", "resistance") and lv.touches >= 2 for lv in resp.levels)
    assert [lv.price for lv in resp.levels] == sorted(lv.price for lv in resp.levels)
    e = await _err(stub.GetPatterns(pb.GetPatternsRequest(symbol="AAPL", days=2)))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "5..3650" in e.details()
    e = await _err(stub.GetPatterns(pb.GetPatternsRequest(symbol="QQQQ", days=30)))
    assert e.code() == grpc.StatusCode.NOT_FOUND
