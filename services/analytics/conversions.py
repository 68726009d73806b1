"""Proto <-> domain conversion for the analytics service (the only module that touches both)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from google.protobuf import timestamp_pb2

from aiots.services.analytics.indicators import IndicatorValues
from aiots.services.analytics.options_analytics import ChainAnalytics, EnrichedChain, expiry_ns
from aiots.services.analytics.patterns import PatternScan
from aiots.services.analytics.pricing import GREEK_NAMES, ContractBatch, IvBatch, PricedBatch
from aiots.services.analytics.surface import SurfaceFit
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb

NS = 1_000_000_000


def ts_from_ns(ns: int) -> timestamp_pb2.Timestamp:
    """Timestamp from int64 ns UTC."""
    return timestamp_pb2.Timestamp(seconds=ns // NS, nanos=ns % NS)


def ns_from_ts(ts: timestamp_pb2.Timestamp) -> int:
    """int64 ns UTC from a Timestamp."""
    return int(ts.seconds) * NS + int(ts.nanos)


def contracts_from_proto(rows: Sequence[pb.PricingInput]) -> ContractBatch:
    """Columnar batch from PricingInput rows (style unspecified = American)."""
    n = len(rows)
    cols = np.empty((7, n), dtype=np.float64)
    is_call = np.zeros(n, dtype=np.bool_)
    right_ok = np.zeros(n, dtype=np.bool_)
    american = np.zeros(n, dtype=np.bool_)
    dividends: list[tuple[tuple[float, float], ...]] = []
    for i, r in enumerate(rows):
        cols[:, i] = (r.spot, r.strike, r.time_to_expiry, r.rate, r.dividend_yield, r.volatility, r.price)
        is_call[i] = r.right == cpb.OPTION_RIGHT_CALL
        right_ok[i] = r.right in (cpb.OPTION_RIGHT_CALL, cpb.OPTION_RIGHT_PUT)
        american[i] = r.style != cpb.EXERCISE_STYLE_EUROPEAN
        dividends.append(tuple((d.time, d.amount) for d in r.dividends))
    return ContractBatch(
        spot=cols[0],
        strike=cols[1],
        t=cols[2],
        rate=cols[3],
        q=cols[4],
        vol=cols[5],
        price=cols[6],
        is_call=is_call,
        right_ok=right_ok,
        american=american,
        dividends=dividends,
    )


def _greeks(greeks: dict[str, np.ndarray], i: int) -> cpb.Greeks:
    return cpb.Greeks(**{g: float(greeks[g][i]) for g in GREEK_NAMES if g in greeks})


def priced_to_proto(res: PricedBatch) -> pb.PriceOptionsResponse:
    cols = [res.greeks[g].tolist() for g in GREEK_NAMES]
    prices = res.price.tolist()
    out = pb.PriceOptionsResponse()
    for i, price in enumerate(prices):
        g = cpb.Greeks(**{name: col[i] for name, col in zip(GREEK_NAMES, cols, strict=True)})
        out.results.append(pb.PricingResult(price=price, greeks=g, reason=res.reasons[i]))
    return out


def iv_to_proto(res: IvBatch) -> pb.ImpliedVolatilityResponse:
    out = pb.ImpliedVolatilityResponse()
    for v, reason in zip(res.iv.tolist(), res.reasons, strict=True):
        out.results.append(pb.ImpliedVolatilityResult(implied_volatility=v, reason=reason))
    return out


def _contract(ch: EnrichedChain, i: int) -> cpb.OptionContract:
    return cpb.OptionContract(
        occ_symbol=ch.occ[i],
        underlying=ch.underlying,
        strike=float(ch.strike[i]),
        expiry=ch.expiry[i],
        right=cpb.OPTION_RIGHT_CALL if ch.is_call[i] else cpb.OPTION_RIGHT_PUT,
        multiplier=100,
        style=cpb.EXERCISE_STYLE_AMERICAN,
    )


def chain_to_proto(ch: EnrichedChain, expiry: str = "") -> pb.GetOptionChainResponse:
    out = pb.GetOptionChainResponse(symbol=ch.underlying, underlying_price=ch.spot, as_of=ts_from_ns(ch.as_of_ns))
    for i in range(len(ch.occ)):
        if expiry and ch.expiry[i] != expiry:
            continue
        out.contracts.append(
            pb.OptionQuote(
                contract=_contract(ch, i),
                bid=float(ch.bid[i]),
                ask=float(ch.ask[i]),
                mid=float(ch.mid[i]),
                last=float(ch.last[i]),
                volume=float(ch.volume[i]),
                open_interest=float(ch.open_interest[i]),
                iv=float(ch.iv[i]),
                greeks=_greeks(ch.greeks, i),
                iv_reason=ch.iv_reason[i],
            )
        )
    return out


def _oi_as_of(date: str) -> timestamp_pb2.Timestamp:
    """Open interest refers to the close (16:00 New York) of its session date."""
    return ts_from_ns(expiry_ns(date)) if date else timestamp_pb2.Timestamp()


def analytics_to_proto(a: ChainAnalytics, ch: EnrichedChain) -> pb.GetOptionsAnalyticsResponse:
    out = pb.GetOptionsAnalyticsResponse(
        symbol=a.underlying,
        underlying_price=a.spot,
        as_of=ts_from_ns(a.as_of_ns),
        open_interest_as_of=_oi_as_of(a.oi_as_of),
        put_call_volume_ratio=a.pcr_volume,
        put_call_oi_ratio=a.pcr_oi,
        total_gex=a.total_gex,
        zero_gamma_level=a.zero_gamma,
        total_dex=a.total_dex,
        iv_rank=a.iv_rank,
        iv_percentile=a.iv_percentile,
        iv_history_days=a.iv_history_days,
    )
    for e in a.expiries:
        out.expiries.append(pb.ExpiryAnalytics(**e.__dict__))
    for r in a.exposures:
        out.exposures.append(pb.StrikeExposure(**r.__dict__))
    for u in a.unusual:
        out.unusual.append(
            pb.UnusualActivity(
                contract=_contract(ch, u.index), volume=u.volume, open_interest=u.open_interest, ratio=u.ratio
            )
        )
    return out


def indicators_to_proto(
    symbol: str,
    interval: str,
    ts: np.ndarray,
    values: Sequence[IndicatorValues],
    include_series: bool,
    source: str,
) -> pb.GetIndicatorsResponse:
    n = int(ts.shape[0])
    out = pb.GetIndicatorsResponse(symbol=symbol, interval=interval, bars=n, source=source)
    if n:
        out.as_of.CopyFrom(ts_from_ns(int(ts[-1])))
    if include_series:
        out.timestamps.extend(ts_from_ns(int(t)) for t in ts.tolist())
    for v in values:
        res = pb.IndicatorResult(name=v.name, params={k: float(x) for k, x in v.params.items()})
        for name, series in v.outputs:
            o = pb.IndicatorOutput(name=name, value=float(series[-1]) if series.size else math.nan)
            if include_series:
                o.series.extend(series.tolist())
            res.outputs.append(o)
        out.results.append(res)
    return out


def surface_to_proto(
    symbol: str, as_of_ns: int, fit: SurfaceFit, k: np.ndarray, t: np.ndarray, grid: np.ndarray
) -> pb.GetVolSurfaceResponse:
    out = pb.GetVolSurfaceResponse(
        symbol=symbol, as_of=ts_from_ns(as_of_ns), calendar_arbitrage_free=fit.calendar_arbitrage_free
    )
    for s in fit.slices:
        p = s.params
        out.slices.append(
            pb.SviSlice(
                expiry=s.label,
                t=s.t,
                a=p.a,
                b=p.b,
                rho=p.rho,
                m=p.m,
                sigma=p.sigma,
                rmse_vol_points=s.rmse_vol_points,
                points=s.points,
                butterfly_arbitrage_free=s.butterfly_arbitrage_free,
                min_density=s.min_density,
            )
        )
    for i, tt in enumerate(t.tolist()):
        for j, kk in enumerate(k.tolist()):
            out.grid.append(pb.SurfacePoint(moneyness=kk, t=tt, iv=float(grid[i, j])))
    return out


def patterns_to_proto(symbol: str, ts: np.ndarray, scan: PatternScan) -> pb.GetPatternsResponse:
    """Bar indices become bar open times."""
    times = ts.tolist()
    out = pb.GetPatternsResponse(symbol=symbol, start=ts_from_ns(times[0]), end=ts_from_ns(times[-1]))
    for p in scan.patterns:
        out.patterns.append(
            pb.PatternMatch(
                name=p.name,
                category=p.category,
                direction=p.direction,
                start=ts_from_ns(times[p.start]),
                end=ts_from_ns(times[p.end]),
                key_prices=p.key_prices,
                strength=p.strength,
            )
        )
    for lv in scan.levels:
        out.levels.append(
            pb.PriceLevel(
                price=lv.price,
                kind=lv.kind,
                touches=lv.touches,
                strength=lv.strength,
                first_touch=ts_from_ns(times[lv.first]),
                last_touch=ts_from_ns(times[lv.last]),
            )
        )
    t = scan.trend
    out.trend.CopyFrom(pb.Trend(direction=t.direction, slope=t.slope, r_squared=t.r_squared, adx=t.adx))
    return out
