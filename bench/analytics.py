"""AnalyticsService benchmark (not a test): PriceOptions for 10,000 contracts over real gRPC with
1, 8 and 32 concurrent clients, beside the core alone doing the same work in the same run.

Prints client-observed p50/p99 and QPS, server-side p50 (time inside the servicer) and the
service overhead ratio (client p50 at 1 client / core p50). Run: .venv/bin/python bench/analytics.py
GetIndicators / GetOptionsAnalytics need a seeded database and are not covered yet (see README).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc
import numpy as np

from aiots.core import options as opt
from aiots.services.analytics.service import AnalyticsServicer
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.services.common.settings import Settings
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import analytics_pb2_grpc as pbg
from aiots.v1 import common_pb2 as cpb

N = 10_000
ROUNDS = 12


def contracts(n: int) -> tuple[pb.PriceOptionsRequest, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(7)
    s = np.full(n, 100.0)
    k = rng.uniform(60, 140, n)
    t = rng.uniform(0.02, 2.0, n)
    vol = rng.uniform(0.1, 0.8, n)
    call = rng.random(n) < 0.5
    req = pb.PriceOptionsRequest()
    for i in range(n):
        req.contracts.append(
            pb.PricingInput(
                spot=s[i],
                strike=k[i],
                time_to_expiry=t[i],
                rate=0.045,
                dividend_yield=0.01,
                volatility=vol[i],
                right=cpb.OPTION_RIGHT_CALL if call[i] else cpb.OPTION_RIGHT_PUT,
                style=cpb.EXERCISE_STYLE_AMERICAN,
            )
        )
    return req, (s, k, t, vol, call)


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p))


async def main() -> None:
    req, (s, k, t, vol, call) = contracts(N)
    core = []
    for _ in range(5):
        t0 = time.perf_counter()
        opt.american_greeks(s, k, t, 0.045, vol, 0.01, call, method="bjerksund_stensland_2002")
        core.append(time.perf_counter() - t0)
    core_p50 = statistics.median(core)
    servicer = AnalyticsServicer(Runtime(settings=Settings()))
    server_times: list[float] = []
    orig = servicer.PriceOptions

    async def timed(request: pb.PriceOptionsRequest, context: grpc.aio.ServicerContext) -> pb.PriceOptionsResponse:
        t0 = time.perf_counter()
        try:
            return await orig(request, context)
        finally:
            server_times.append(time.perf_counter() - t0)

    servicer.PriceOptions = timed  # type: ignore[method-assign]
    gs = await start_server(
        [ServiceRegistration("aiots.v1.AnalyticsService", pbg.add_AnalyticsServiceServicer_to_server, servicer)],
        host="127.0.0.1",
        port=0,
    )
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}", options=[("grpc.max_receive_message_length", 64 << 20)])
    stub = pbg.AnalyticsServiceStub(ch)
    await stub.PriceOptions(req)
    print(
        f"PriceOptions, {N} American contracts (Bjerksund-Stensland 2002 + Greeks); core alone p50 {core_p50 * 1e3:.1f} ms"
    )
    print("| clients | client p50 ms | client p99 ms | server p50 ms | QPS | overhead (client p50 / core p50) |")
    print("|---|---|---|---|---|---|")
    for clients in (1, 8, 32):
        lat: list[float] = []
        server_times.clear()

        rounds = ROUNDS if clients == 1 else 1

        async def worker(lat: list[float] = lat, rounds: int = rounds) -> None:
            for _ in range(rounds):
                t0 = time.perf_counter()
                await stub.PriceOptions(req)
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        print(
            f"| {clients} | {pct(lat, 50) * 1e3:.1f} | {pct(lat, 99) * 1e3:.1f} | {pct(server_times, 50) * 1e3:.1f} | "
            f"{len(lat) / wall:.2f} | {pct(lat, 50) / core_p50:.2f}x |"
        )
    await ch.close()
    await gs.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
