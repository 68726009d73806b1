"""Per-service upstream hosts given as DNS names (what compose/Kubernetes use): the real Envoy
resolves them (STRICT_DNS clusters), health-checks them and routes REST and gRPC to them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest

from aiots.services.common.settings import GatewaySettings
from aiots.v1 import cache_pb2, cache_pb2_grpc
from tests.integration.gateway.stack import Stack
from tests.integration.gateway.test_gateway import call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SERVICES = GatewaySettings.UPSTREAMS
HEALTHY_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    hosts = dict.fromkeys(SERVICES, "localhost")
    st = Stack(tmp_path_factory.mktemp("gwdns"), gateway={"upstream_hosts": hosts}).start()
    try:
        yield st
    finally:
        st.stop()


def test_dns_named_upstreams_are_healthy_and_routed(stack: Stack) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while True:
        status, _, raw = call(stack, "GET", "/health", role=None)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, raw
    assert json.loads(raw)["upstreams"] == dict.fromkeys(stack.servers, "SERVING")
    status, _, raw = call(stack, "GET", "/api/v1/cache/stock-prices/AAPL", role="viewer")
    assert status == 200 and json.loads(raw)["price"]["symbol"] == "AAPL"
    with grpc.insecure_channel(stack.grpc_target) as ch:
        resp = cache_pb2_grpc.CacheServiceStub(ch).GetStockPrice(
            cache_pb2.GetStockPriceRequest(symbol="MSFT"),
            metadata=[("authorization", f"Bearer {stack.token('viewer')}")],
            timeout=10,
        )
    assert resp.price.symbol == "MSFT"
