"""Proto <-> domain conversion for the analytics service (the only module that touches both).

The column-wise wire encoders are :mod:`~aiots.services.analytics.wire` (re-exported here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from google.protobuf import timestamp_pb2

from aiots.core.conventions import NS_PER_S as NS
from aiots.core.conventions import expiry_ns
from aiots.core.conventions import ns_to_pb as ts_from_ns
from aiots.core.conventions import pb_to_ns as ns_from_ts
from aiots.services.analytics.options_analytics import ChainAnalytics, EnrichedChain
from aiots.services.analytics.patterns import PatternScan
from aiots.services.analytics.pricing import ContractBatch
from aiots.services.analytics.quotes import exclusion_counts
from aiots.services.analytics.surface import PARAMETRIZATION, SliceQuotes, SurfaceFit
from aiots.services.analytics.wire import (  # re-exported: the wire encoders live there
    _greeks,
    indicators_wire,
    iv_wire,
    priced_wire,
    source_wire,
    timestamps_wire,
)
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import common_pb2 as cpb

__all__ = [
    "NS",
    "indicators_wire",
    "iv_wire",
    "ns_from_ts",
    "priced_wire",
    "source_wire",
    "timestamps_wire",
    "ts_from_ns",
]  # re-exported from aiots.core.conventions (their one home)


def contracts_from_proto(rows: Sequence[pb.PricingInput]) -> ContractBatch:
    """Columnar batch from PricingInput rows (style unspecified = American), in one pass."""
    n = len(rows)
    vals = [
        (r.spot, r.strike, r.time_to_expiry, r.rate, r.dividend_yield, r.volatility, r.price, r.right, r.style,
         len(r.dividends))
        for r in rows
    ]  # fmt: skip
    cols = np.array(vals, dtype=np.float64).reshape(n, 10).T
    right, style = cols[7], cols[8]
    dividends: list[tuple[tuple[float, float], ...]] = [()] * n
    for i in np.flatnonzero(cols[9]).tolist():
        dividends[i] = tuple((d.time, d.amount) for d in rows[i].dividends)
    return ContractBatch(
        spot=np.ascontiguousarray(cols[0]),
        strike=np.ascontiguousarray(cols[1]),
        t=np.ascontiguousarray(cols[2]),
        rate=np.ascontiguousarray(cols[3]),
        q=np.ascontiguousarray(cols[4]),
        vol=np.ascontiguousarray(cols[5]),
        price=np.ascontiguousarray(cols[6]),
        is_call=right == cpb.OPTION_RIGHT_CALL,
        right_ok=(right == cpb.OPTION_RIGHT_CALL) | (right == cpb.OPTION_RIGHT_PUT),
        american=style != cpb.EXERCISE_STYLE_EUROPEAN,
        dividends=dividends,
    )


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


def _excluded(counts: Sequence[tuple[str, int]]) -> list[pb.ExclusionCount]:
    return [pb.ExclusionCount(reason=r, count=c) for r, c in counts]


def chain_to_proto(ch: EnrichedChain, expiry: str = "") -> pb.GetOptionChainResponse:
    out = pb.GetOptionChainResponse(
        symbol=ch.underlying,
        underlying_price=ch.spot,
        as_of=ts_from_ns(ch.as_of_ns),
        exercise_style=ch.exercise_style,
        pricing_model=ch.pricing_model,
        excluded=_excluded(exclusion_counts(ch.excluded)),
    )
    if ch.spot_ts_ns > 0:
        out.spot_as_of.CopyFrom(ts_from_ns(ch.spot_ts_ns))
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
                price_source=ch.price_source[i],
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
        exercise_style=ch.exercise_style,
        pricing_model=ch.pricing_model,
        spot_in_sync=ch.spot_in_sync,
        spot_lag_seconds=ch.spot_lag_s,
        dividend_yield=ch.dividend_yield,
        excluded=_excluded(a.excluded),
        gex_smile_filled=ch.gex_smile_filled,
    )
    if ch.spot_ts_ns > 0:
        out.spot_as_of.CopyFrom(ts_from_ns(ch.spot_ts_ns))
    for e in a.expiries:
        out.expiries.append(
            pb.ExpiryAnalytics(
                expiry=e.expiry,
                dte=e.dte,
                atm_iv=e.atm_iv,
                rr25=e.rr25,
                bf25=e.bf25,
                expected_move_straddle=e.expected_move_straddle,
                expected_move_iv=e.expected_move_iv,
                max_pain=e.max_pain,
                forward=e.forward,
                implied_carry=e.implied_carry,
                forward_source=e.forward_source,
                quotes_used=e.quotes_used,
                excluded=_excluded(e.excluded),
            )
        )
    for r in a.exposures:
        out.exposures.append(pb.StrikeExposure(**r.__dict__))
    for u in a.unusual:
        out.unusual.append(
            pb.UnusualActivity(
                contract=_contract(ch, u.index), volume=u.volume, open_interest=u.open_interest, ratio=u.ratio
            )
        )
    return out


def surface_to_proto(
    symbol: str,
    as_of_ns: int,
    fit: SurfaceFit,
    k: np.ndarray,
    t: np.ndarray,
    grid: np.ndarray,
    ch: EnrichedChain | None = None,
    quotes: Sequence[SliceQuotes] = (),
) -> pb.GetVolSurfaceResponse:
    out = pb.GetVolSurfaceResponse(
        symbol=symbol,
        as_of=ts_from_ns(as_of_ns),
        calendar_arbitrage_free=fit.calendar_arbitrage_free,
        parametrization=PARAMETRIZATION,
    )
    if ch is not None:
        out.exercise_style = ch.exercise_style
        out.pricing_model = ch.pricing_model
        live = [x for x, tt in zip(ch.excluded, ch.t, strict=True) if tt > 0]
        counts = dict(exclusion_counts(live))
        for q in quotes:
            for reason, n in q.excluded:
                counts[reason] = counts.get(reason, 0) + n
        out.excluded.extend(_excluded(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))
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
                status=s.status,
                reason=s.reason,
                theta=s.ssvi.theta if s.ssvi is not None else math.nan,
                psi=s.ssvi.psi if s.ssvi is not None else math.nan,
                quoted_rr25=s.quoted_rr25,
                fitted_rr25=s.fitted_rr25,
                calendar_arbitrage_free=s.calendar_arbitrage_free,
                parametrization=s.parametrization,
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
