"""Envoy in front of worker processes sharing one port (``SO_REUSEPORT``, as ``--workers N`` runs a
service): the kernel spreads *connections* over the processes, so every process serves only if
Envoy opens more than one upstream HTTP/2 connection. ``gateway.upstream_max_streams`` caps the
streams per connection; past it Envoy's pool opens another.

Oracle: each upstream process answers with its own pid; a real Envoy from the gateway's own
generator sits in between; the calls are gRPC through Envoy with a real token.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.common.settings import Settings
from aiots.v1 import cache_pb2 as cpb
from aiots.v1 import cache_pb2_grpc as cpb_grpc
from tests.integration.gateway.ports import free_port, gateway_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PROCESSES = 2
CALLS = 48  # in flight at once; with one stream per connection, 48 connections
READY_S = 20.0


def _serve(port: int, ready: Any) -> None:
    """One upstream process: GetStockPrice answers ``last = this pid``; healthy for Envoy; sets
    ``ready`` once it listens (every process must before the calls, or one takes them all)."""

    class Cache(cpb_grpc.CacheServiceServicer):
        async def GetStockPrice(self, request, context):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.05)  # keep the calls in flight together
            return cpb.GetStockPriceResponse(price=cpb.StockPrice(symbol=request.symbol, last=float(os.getpid())))

    async def main() -> None:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
        cpb_grpc.add_CacheServiceServicer_to_server(Cache(), server)
        hs = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        for name in ("", "aiots.v1.CacheService"):
            await hs.set(name, health_pb2.HealthCheckResponse.SERVING)
        ready.set()
        await server.wait_for_termination()

    asyncio.run(main())


async def _pids_through_envoy(target: str, token: str) -> set[int]:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = cpb_grpc.CacheServiceStub(ch)
        meta = (("authorization", f"Bearer {token}"),)
        deadline = time.monotonic() + READY_S
        while True:  # until Envoy's health check has found the upstream
            try:
                await stub.GetStockPrice(cpb.GetStockPriceRequest(symbol="AAPL"), metadata=meta, timeout=2)
                break
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        answers = await asyncio.gather(
            *(stub.GetStockPrice(cpb.GetStockPriceRequest(symbol="AAPL"), metadata=meta) for _ in range(CALLS))
        )
    return {int(a.price.last) for a in answers}


async def test_capped_streams_reach_every_worker_process(tmp_path: Path) -> None:
    up = free_port()
    ctx = mp.get_context("spawn")
    ready = [ctx.Event() for _ in range(PROCESSES)]
    procs = [ctx.Process(target=_serve, args=(up, r), daemon=True) for r in ready]
    for p in procs:
        p.start()
    for r in ready:
        assert await asyncio.to_thread(r.wait, READY_S), "an upstream process did not start listening"
    settings = Settings(cache={"port": up}, gateway=gateway_settings(tmp_path, upstream_max_streams=1))
    gw = Gateway(settings, config_dir=tmp_path / "envoy")
    try:
        await gw.start()
        token = issue_token(settings.gateway, role="viewer", subject="reuseport-test", ttl_s=600)
        pids = await _pids_through_envoy(f"127.0.0.1:{settings.gateway.port}", token)
        assert pids == {p.pid for p in procs}, "every worker process serves calls that came through Envoy"
    finally:
        await gw.stop()
        for p in procs:
            p.terminate()
            p.join(5)
