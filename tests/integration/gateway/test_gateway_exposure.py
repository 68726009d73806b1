"""Exposure (issue 18 item 11): the gateway listens on 127.0.0.1 unless told otherwise, and with
``gateway.upstream_secret`` the services take calls only from the gateway (a shared secret
header that Envoy adds and GatewayAuthInterceptor checks). Oracles: the generated config and the
real Envoy/grpc.aio servers, with the loopback trust switched off (everything here is loopback)."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.gateway import model, render
from aiots.services.common.gateway_auth import SECRET_HEADER, GatewayAuthInterceptor, is_loopback_peer
from aiots.services.common.settings import Settings
from aiots.v1 import cache_pb2, cache_pb2_grpc
from tests.integration.gateway.stack import Stack
from tests.integration.gateway.test_gateway import call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SECRET = "s3cret-for-tests-only-0123456789"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    guard = GatewayAuthInterceptor(SECRET, trust_loopback=False)
    st = Stack(tmp_path_factory.mktemp("gwsecret"), gateway={"upstream_secret": SECRET}, interceptors=[guard])
    st.start()
    try:
        yield st
    finally:
        st.stop()


def test_gateway_listens_on_loopback_by_default() -> None:
    m = model.build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    listener = render.bootstrap(m)["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "127.0.0.1"
    m = model.build_model(Settings(gateway={"host": "0.0.0.0"}), descriptor_file=Path("x.pb"), jwks_file=Path("j"))
    assert render.bootstrap(m)["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.10:1", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/sock", True),
        ("ipv4:10.0.0.7:5000", False),
        ("ipv6:[fe80::1%eth0]:5000", False),
        ("ipv4:nonsense", False),
        ("", False),
    ],
)
def test_loopback_peers(peer: str, local: bool) -> None:
    assert is_loopback_peer(peer) is local


def test_calls_through_the_gateway_carry_the_secret(stack: Stack) -> None:
    status, _, raw = call(stack, "GET", "/api/v1/cache/stock-prices/AAPL", role="viewer")
    assert status == 200 and json.loads(raw)["price"]["symbol"] == "AAPL"
    # a client cannot bring its own (wrong) secret through: Envoy drops it and sets the real one
    status, _, _ = call(stack, "GET", "/api/v1/cache/stock-prices/AAPL", role="viewer", headers={SECRET_HEADER: "x"})
    assert status == 200


def test_direct_calls_without_the_secret_are_refused_health_stays_open(stack: Stack) -> None:
    target = f"127.0.0.1:{stack.servers['cache'].port}"
    req = cache_pb2.GetStockPriceRequest(symbol="AAPL")
    with grpc.insecure_channel(target) as ch:
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        for md in ((), ((SECRET_HEADER, "wrong"),)):
            with pytest.raises(grpc.RpcError) as ei:
                stub.GetStockPrice(req, metadata=md, timeout=5)
            assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "through the gateway" in (ei.value.details() or "")
        assert stub.GetStockPrice(req, metadata=((SECRET_HEADER, SECRET),), timeout=5).price.symbol == "AAPL"
        # streams are guarded too
        with pytest.raises(grpc.RpcError) as ei:
            list(stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["AAPL"]), timeout=5))
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_secret_is_only_in_the_0600_config_never_printed(stack: Stack) -> None:
    assert stack.gateway is not None and stack.gateway.config_path is not None
    cfg = stack.gateway.config_path
    assert SECRET in cfg.read_text()
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stack.settings is not None
    m = model.build_model(stack.settings, descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    assert SECRET not in render.to_yaml(m)  # what `aiots gateway --print-config` shows
    assert SECRET not in repr(stack.settings)
