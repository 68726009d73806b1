"""With an upstream secret, a service answers only calls carrying it (UNAUTHENTICATED otherwise,
before the servicer runs); health checks are exempt; loopback peers are trusted only when allowed.
Oracle: a real grpc.aio server and client."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.services.common.gateway_auth import SECRET_HEADER, GatewayAuthInterceptor, is_loopback_peer
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.v1 import cache_pb2, cache_pb2_grpc


class Cache(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def GetStats(
        self, request: cache_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetStatsResponse:
        self.calls += 1
        return cache_pb2.GetStatsResponse(backend="ok")


def test_loopback_peers() -> None:
    assert is_loopback_peer("ipv4:127.0.0.1:5000") and is_loopback_peer("ipv6:[::1]:1") and is_loopback_peer("unix:/x")
    assert is_loopback_peer("ipv6:[::ffff:127.0.0.1]:1") and not is_loopback_peer("ipv4:10.0.0.5:5000")


@pytest.mark.parametrize("trust_loopback", [False, True])
async def test_secret_required_health_exempt(trust_loopback: bool) -> None:
    svc = Cache()
    guard = GatewayAuthInterceptor("s3cret", trust_loopback=trust_loopback)
    gs = await start_server([ServiceRegistration.of(svc)], host="127.0.0.1", port=0, interceptors=[guard])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}") as ch:
            stub = cache_pb2_grpc.CacheServiceStub(ch)
            assert (
                await stub.GetStats(cache_pb2.GetStatsRequest(), metadata=((SECRET_HEADER, "s3cret"),))
            ).backend == "ok"
            for md in ((), ((SECRET_HEADER, "wrong"),)):
                if trust_loopback:
                    assert (await stub.GetStats(cache_pb2.GetStatsRequest(), metadata=md)).backend == "ok"
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await stub.GetStats(cache_pb2.GetStatsRequest(), metadata=md)
                    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "gateway" in (e.value.details() or "")
            h = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
            assert h.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gs.stop(0)
    assert svc.calls == (3 if trust_loopback else 1)  # refused calls never reached the servicer
