"""Several replicas per service (``gateway.upstream_endpoints``): the settings' parsing, the
clusters (one endpoint per replica, health checks, outlier detection) and the routes' retry
policies. Envoy itself checks the result (``envoy --mode validate``); the end-to-end behaviour under a
replica kill is tests/integration/hardening/test_scale_out.py."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import ValidationError

from aiots.gateway import model, render, run
from aiots.services.common.settings import GatewaySettings, Settings, split_host_port


def _boot(**gw: Any) -> dict[str, Any]:
    m = model.build_model(Settings(gateway=gw), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    return render.bootstrap(m)


def _clusters(boot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in boot["static_resources"]["clusters"]}


def _addresses(cluster: dict[str, Any]) -> list[tuple[str, int]]:
    (locality,) = cluster["load_assignment"]["endpoints"]
    out = []
    for ep in locality["lb_endpoints"]:
        sa = ep["endpoint"]["address"]["socket_address"]
        out.append((sa["address"], sa["port_value"]))
    return out


def _routes(boot: dict[str, Any]) -> list[dict[str, Any]]:
    listener = boot["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes: list[dict[str, Any]] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return routes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8004", ("127.0.0.1", 8004)),
        ("signals-1:8004", ("signals-1", 8004)),
        (" signals.aiots.svc.cluster.local:1 ", ("signals.aiots.svc.cluster.local", 1)),
        ("[::1]:65535", ("::1", 65535)),
    ],
)
def test_host_port_forms(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:", ":8004", "h:0", "h:65536", "h:80x", "::1:8004", "[]:80"])
def test_host_port_refuses_what_is_not_one(text: str) -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        split_host_port(text, "x")


def test_upstream_endpoints_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="unknown service 'gateway'"):
        GatewaySettings(upstream_endpoints={"gateway": ["127.0.0.1:1"]})
    with pytest.raises(ValidationError, match="no endpoint for 'signals'"):
        GatewaySettings(upstream_endpoints={"signals": []})
    with pytest.raises(ValidationError, match=r"upstream_endpoints\['cache'\]: '127.0.0.1' is not host:port"):
        GatewaySettings(upstream_endpoints={"cache": ["127.0.0.1:1", "127.0.0.1"]})


def test_upstream_endpoints_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOTS_GATEWAY__UPSTREAM_ENDPOINTS", '{"signals": ["127.0.0.1:8004", "127.0.0.1:8014"]}')
    assert Settings().gateway.endpoints_of("signals", 1) == [("127.0.0.1", 8004), ("127.0.0.1", 8014)]


def test_each_replica_is_an_endpoint_of_its_service_cluster() -> None:
    clusters = _clusters(
        _boot(
            upstream_host="10.0.0.9",
            upstream_endpoints={"signals": ["127.0.0.1:8004", "127.0.0.1:8014"], "cache": ["cache-0:9", "10.1.1.1:9"]},
        )
    )
    assert _addresses(clusters["signals"]) == [("127.0.0.1", 8004), ("127.0.0.1", 8014)]
    assert clusters["signals"]["type"] == "STATIC"
    # one DNS name among them: the whole cluster resolves names (IP literals resolve to themselves)
    assert _addresses(clusters["cache"]) == [("cache-0", 9), ("10.1.1.1", 9)]
    assert clusters["cache"]["type"] == "STRICT_DNS"
    # a service not named keeps its one endpoint: upstream_host and its own port (Settings defaults)
    assert _addresses(clusters["analytics"]) == [("10.0.0.9", Settings().analytics.port)]


def test_service_clusters_health_check_and_eject_on_transport_failures_only() -> None:
    clusters = _clusters(_boot(outlier_consecutive_failures=3, outlier_ejection_s=7.5, health_check_interval_s=0.5))
    for name in GatewaySettings.UPSTREAMS:
        c = clusters[name]
        assert c["health_checks"][0]["grpc_health_check"]["service_name"].endswith(
            {v: k for k, v in model.SERVICE_SECTIONS.items()}[name]
        )
        od = c["outlier_detection"]
        assert od["split_external_local_origin_errors"] is True
        assert od["consecutive_local_origin_failure"] == 3
        assert od["enforcing_consecutive_local_origin_failure"] == 100
        assert od["base_ejection_time"] == "7.500s"
        assert od["interval"] == "0.500s"
        # an error the service itself returns never ejects it
        assert od["enforcing_consecutive_5xx"] == 0
        assert od["enforcing_consecutive_gateway_failure"] == 0
        assert od["enforcing_success_rate"] == 0
    health = clusters[render.HEALTH_CLUSTER]
    assert "outlier_detection" not in health and "health_checks" not in health


def test_retries_are_per_call_kind() -> None:
    """Reads and pricing (no side effect) are retried after any reset; writes and streams only when
    the request never reached a service. Oracle: the role table (which RPCs are reads) and the RPC's
    streaming flag, not the code under test."""
    boot = _boot(upstream_retries=2)
    methods = {m.key: m for m in model.load_methods()}
    reads = {k for k, p in model.POLICIES.items() if p.route_class in {model.RouteClass.READS}}
    writes = {k for k, p in model.POLICIES.items() if p.route_class is model.RouteClass.WRITES}
    seen = 0
    for r in _routes(boot):
        name = r["name"]
        if not name.startswith(("rest:", "grpc:")):
            assert "retry_policy" not in r.get("route", {}), name
            continue
        key = name.split(":")[1]
        rp = r["route"]["retry_policy"]
        assert rp["num_retries"] == 2
        assert rp["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
        conditions = set(rp["retry_on"].split(","))
        assert {"connect-failure", "refused-stream"} <= conditions
        if key in writes or methods[key].server_streaming:
            assert "reset" not in conditions and "reset-before-request" in conditions, name
        if key in reads and not methods[key].server_streaming:
            assert "reset" in conditions, name
        seen += 1
    assert seen >= 2 * len(methods)
    assert model.POLICIES["PortfolioService/PlaceOrder"].route_class is model.RouteClass.WRITES  # never re-run


def test_no_retries_when_turned_off() -> None:
    assert not any("retry_policy" in r.get("route", {}) for r in _routes(_boot(upstream_retries=0)))


def test_replicas_pass_envoy_validate(tmp_path: Path) -> None:
    gw = {
        "dev_key_dir": str(tmp_path / "keys"),
        "upstream_endpoints": {"signals": ["127.0.0.1:8004", "localhost:8014"], "cache": ["[::1]:8001"]},
    }
    _, cfg = run.prepare(Settings(gateway=gw), tmp_path / "envoy")
    r = subprocess.run(
        [run.envoy_binary(), "--mode", "validate", "-c", str(cfg), "--base-id", "4247"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_dependency_check_target_reaches_a_live_replica() -> None:
    ep = model.Endpoint
    v4 = model.Upstream("s", "x", (ep("127.0.0.1", 1), ep("10.0.0.2", 2)))
    assert v4.grpc_target == "ipv4:127.0.0.1:1,10.0.0.2:2"
    assert model.Upstream("s", "x", (ep("::1", 1), ep("fd00::2", 2))).grpc_target == "ipv6:[::1]:1,[fd00::2]:2"
    assert model.Upstream("s", "x", (ep("::1", 1),)).grpc_target == "[::1]:1"
    # a DNS name (or mixed families): the first replica, as before replicas existed
    assert model.Upstream("s", "x", (ep("signals", 1), ep("127.0.0.1", 2))).grpc_target == "signals:1"
    with pytest.raises(ValueError, match="no endpoint"):
        model.Upstream("s", "x", ())


async def test_the_target_skips_a_dead_first_replica() -> None:
    """Oracle: gRPC itself. The first replica's port has nothing listening; the health check
    still answers, from the second."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    live = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    try:
        target = model.Upstream("s", "x", (model.Endpoint("127.0.0.1", dead), model.Endpoint("127.0.0.1", live)))
        async with grpc.aio.insecure_channel(target.grpc_target) as ch:
            r = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(0)


@pytest.mark.parametrize(
    ("cap", "expected"), [(None, {"max_concurrent_streams": 8}), (3, {"max_concurrent_streams": 3}), (0, {})]
)
def test_upstream_streams_per_connection_are_capped(cap: int | None, expected: dict[str, int]) -> None:
    """gateway.upstream_max_streams reaches every gRPC cluster's HTTP/2 options (default 8; 0: Envoy's own)."""
    boot = _boot(**({} if cap is None else {"upstream_max_streams": cap}))
    grpc_clusters = [c for c in _clusters(boot).values() if "typed_extension_protocol_options" in c]
    assert grpc_clusters
    for c in grpc_clusters:
        opts = c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert opts["explicit_http_config"]["http2_protocol_options"] == expected
