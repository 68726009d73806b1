"""Bounded work per request (issue 18, item 8).

A request whose binomial work (tree contracts x steps^2) is over ``analytics.max_tree_nodes`` is
refused before any pricing runs, naming the limit and the numbers; a long request that is within
budget runs in chunks and stops between chunks when its client cancels or its deadline passes.
The oracle for "work done" is a counter around the pricing function the servicer calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from aiots.services.analytics import pricing
from aiots.v1 import analytics_pb2, analytics_pb2_grpc, common_pb2
from tests.integration.hardening.conftest import Stack


class Counter:
    """Rows handed to ``pricing.price_batch`` (thread-safe); ``gate`` blocks the second chunk."""

    def __init__(self) -> None:
        self.rows = 0
        self.calls = 0
        self.lock = threading.Lock()
        self.second_started = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    c = Counter()
    real = pricing.price_batch

    def price_batch(b: Any, *args: Any) -> Any:
        with c.lock:
            c.calls += 1
            c.rows += len(b)
            n = c.calls
        if n == 2:
            c.second_started.set()
            c.release.wait(10)
        return real(b, *args)

    monkeypatch.setattr(pricing, "price_batch", price_batch)
    yield c
    c.release.set()


def _contracts(n: int) -> list[analytics_pb2.PricingInput]:
    return [
        analytics_pb2.PricingInput(
            spot=100.0, strike=90.0 + i, time_to_expiry=0.5, rate=0.05, volatility=0.25,
            right=common_pb2.OPTION_RIGHT_PUT, style=common_pb2.EXERCISE_STYLE_AMERICAN,
        )
        for i in range(n)
    ]  # fmt: skip


async def test_over_budget_is_refused_before_any_work(stack: Stack, counted: Counter) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    req = analytics_pb2.PriceOptionsRequest(contracts=_contracts(45), american_method="binomial", steps=20_000)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.PriceOptions(req, timeout=30)
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    limit = stack.settings.analytics.max_tree_nodes
    assert limit < 45 * 20_000**2  # the request really is over the configured limit
    msg = err.details() or ""
    assert msg.startswith("contracts: ") and f"{45 * 20_000**2:,}" in msg and f"{limit:,}" in msg, msg
    assert counted.calls == 0  # refused up front: nothing was priced


async def test_non_tree_methods_are_not_tree_budgeted(stack: Stack, counted: Counter) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    counted.release.set()
    req = analytics_pb2.PriceOptionsRequest(contracts=_contracts(45), american_method="baw", steps=20_000)
    r = await stub.PriceOptions(req, timeout=30)
    assert len(r.results) == 45 and all(x.price > 0 for x in r.results)


async def test_surface_grid_over_budget_is_refused(stack: Stack) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    n = 1000
    req = analytics_pb2.GetVolSurfaceRequest(
        symbol="AAPL", moneyness=[i / n - 0.5 for i in range(n)], maturities=[(i + 1) / n for i in range(n)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.GetVolSurface(req, timeout=30)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{n * n:,}" in (ei.value.details() or "")


def _long_request(stack: Stack) -> tuple[analytics_pb2.PriceOptionsRequest, int]:
    """Within budget, one contract per chunk: n contracts x steps^2 <= max_tree_nodes."""
    cfg = stack.settings.analytics
    steps = 2000
    n = 40
    assert n > 2 * (cfg.chunk_tree_nodes // (steps * steps))  # more than two chunks
    assert n * steps * steps <= cfg.max_tree_nodes
    return analytics_pb2.PriceOptionsRequest(contracts=_contracts(n), american_method="binomial", steps=steps), n


async def _wait(ev: threading.Event) -> None:
    assert await asyncio.to_thread(ev.wait, 10)


async def test_cancelled_request_stops_computing(stack: Stack, counted: Counter) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    req, n = _long_request(stack)
    call = stub.PriceOptions(req, timeout=60)
    await _wait(counted.second_started)  # chunk 2 is running (held in its thread)
    call.cancel()
    await asyncio.sleep(0.3)  # the server learns of the cancel while chunk 2 is held
    counted.release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.5)  # were the work to go on, chunk 3 would start now
    assert counted.calls == 2, counted.calls
    assert counted.rows < n, (counted.rows, n)


async def test_deadline_stops_computing(stack: Stack, counted: Counter) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(stack.channels["analytics"])
    req, n = _long_request(stack)
    call = stub.PriceOptions(req, timeout=1.0)
    await _wait(counted.second_started)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call  # the client's deadline passes while chunk 2 is held
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    counted.release.set()
    await asyncio.sleep(0.5)
    assert counted.calls == 2, counted.calls
    assert counted.rows < n
