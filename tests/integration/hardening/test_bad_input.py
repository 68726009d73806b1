"""Hostile request fields give INVALID_ARGUMENT naming the field, never UNKNOWN/INTERNAL (issue 18).

Item 2: a blank or malformed ticker on every RPC that takes one. Item 3: out-of-range times
(9999-12-31, 0001-01-01: outside int64 nanoseconds, once an asyncpg overflow). Item 6: a
PricingInput without ``right``. The oracle is the request itself: each case names the field the
test broke, and the answer must name exactly that field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from aiots.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    ingestion_pb2,
    ingestion_pb2_grpc,
    signals_pb2,
    signals_pb2_grpc,
)
from tests.integration.hardening.conftest import Stack


def _violation(err: grpc.aio.AioRpcError) -> str:
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            for d in status_pb2.Status.FromString(v).details:
                bad = error_details_pb2.BadRequest()
                if d.Unpack(bad):
                    return str(bad.field_violations[0].field)
    return ""


async def _invalid(call: Any, field: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        r = call
        if hasattr(r, "__aiter__"):
            async for _ in r:
                pass
        else:
            await r
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.code(), err.details())
    assert _violation(err) == field, err.details()
    return str(err.details())


def _ts(year: int, month: int, day: int) -> Timestamp:
    """A Timestamp from the calendar date (Python's own proleptic Gregorian arithmetic)."""
    seconds = (dt.date(year, month, day) - dt.date(1970, 1, 1)).days * 86_400
    return Timestamp(seconds=seconds)


def _symbol_calls(s: Stack, sym: str) -> list[tuple[str, Callable[[], Any]]]:
    a = analytics_pb2_grpc.AnalyticsServiceStub(s.channels["analytics"])
    i = ingestion_pb2_grpc.IngestionServiceStub(s.channels["ingestion"])
    c = cache_pb2_grpc.CacheServiceStub(s.channels["cache"])
    return [
        ("GetIndicators", lambda: a.GetIndicators(analytics_pb2.GetIndicatorsRequest(symbol=sym))),
        ("GetPatterns", lambda: a.GetPatterns(analytics_pb2.GetPatternsRequest(symbol=sym))),
        ("GetOptionsAnalytics", lambda: a.GetOptionsAnalytics(analytics_pb2.GetOptionsAnalyticsRequest(symbol=sym))),
        ("GetOptionChain", lambda: a.GetOptionChain(analytics_pb2.GetOptionChainRequest(symbol=sym))),
        ("GetVolSurface", lambda: a.GetVolSurface(analytics_pb2.GetVolSurfaceRequest(symbol=sym))),
        ("GetBars", lambda: i.GetBars(ingestion_pb2.GetBarsRequest(symbol=sym))),
        ("GetTrades", lambda: i.GetTrades(ingestion_pb2.GetTradesRequest(symbol=sym))),
        (
            "GetOptionChainDefinitions",
            lambda: i.GetOptionChainDefinitions(ingestion_pb2.GetOptionChainDefinitionsRequest(symbol=sym)),
        ),
        ("GetStockPrice", lambda: c.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol=sym))),
    ]


async def test_blank_or_malformed_symbol_is_invalid_argument_on_every_symbol_rpc(stack: Stack) -> None:
    for sym in [" ", "", "A B", "\t", "TOOLONGTICKER1", "../etc", "%00"]:
        for name, call in _symbol_calls(stack, sym):
            msg = await _invalid(call(), "symbol")
            assert "ticker" in msg, (name, sym, msg)


async def test_out_of_range_times_name_the_field_and_the_range(stack: Stack) -> None:
    for when in [(9999, 12, 31), (1, 1, 1), (2262, 4, 12), (1969, 12, 31)]:
        for field in ["start", "end"]:
            await _check_times(stack, _ts(*when), field)


async def _check_times(stack: Stack, ts: Timestamp, field: str) -> None:
    a = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    i = ingestion_pb2_grpc.IngestionServiceStub(stack.channels["ingestion"])
    g = signals_pb2_grpc.SignalServiceStub(stack.channels["signals"])
    calls = [
        i.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", **{field: ts})),
        i.GetTrades(ingestion_pb2.GetTradesRequest(symbol="AAPL", **{field: ts})),
        a.GetIndicators(analytics_pb2.GetIndicatorsRequest(symbol="AAPL", **{field: ts})),
        g.ListSignals(signals_pb2.ListSignalsRequest(**{field: ts})),
        g.GetSignalStats(signals_pb2.GetSignalStatsRequest(**{field: ts})),
    ]
    for call in calls:
        msg = await _invalid(call, field)
        assert "1970-01-01T00:00:00Z" in msg and "2199-12-31T23:59:59Z" in msg, msg


async def test_in_range_times_still_work(stack: Stack) -> None:
    i = ingestion_pb2_grpc.IngestionServiceStub(stack.channels["ingestion"])
    r = await i.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", start=_ts(1970, 1, 1), end=_ts(2199, 12, 31)))
    assert isinstance(r, ingestion_pb2.GetBarsResponse)


_CONTRACT = {"spot": 100.0, "strike": 100.0, "time_to_expiry": 0.5, "rate": 0.05, "volatility": 0.2}


@pytest.mark.parametrize("rpc", ["PriceOptions", "ImpliedVolatility"])
async def test_missing_right_lists_the_valid_values(stack: Stack, rpc: str) -> None:
    a = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    ok = analytics_pb2.PricingInput(**_CONTRACT, right=common_pb2.OPTION_RIGHT_CALL, price=5.0)
    missing = analytics_pb2.PricingInput(**_CONTRACT, price=5.0)
    if rpc == "PriceOptions":
        call = a.PriceOptions(analytics_pb2.PriceOptionsRequest(contracts=[ok, ok, missing]))
        field = "contracts[2].right"
    else:
        call = a.ImpliedVolatility(analytics_pb2.ImpliedVolatilityRequest(quotes=[ok, ok, missing]))
        field = "quotes[2].right"
    msg = await _invalid(call, field)
    assert "OPTION_RIGHT_CALL" in msg and "OPTION_RIGHT_PUT" in msg, msg
