"""The routes: one gRPC route per RPC of every exposed service, one REST route per google.api.http
binding, unique names, and the 404 catch-all last. Oracle: the services' own descriptors in the
generated ``aiots.v1`` modules (every RPC they declare) and their ``google.api.http`` options."""

from __future__ import annotations

from pathlib import Path

from google.api import annotations_pb2
from google.protobuf.descriptor import Descriptor

from aiots.gateway.envoy_common import FILTER_CONFIG
from aiots.gateway.envoy_routes import routes
from aiots.gateway.model import GatewayModel, build_model
from aiots.services.common.settings import Settings
from aiots.v1 import analytics_pb2, backtest_pb2, cache_pb2, ingestion_pb2, portfolio_pb2, signals_pb2


def _model() -> GatewayModel:
    return build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))


def test_one_grpc_route_per_rpc_and_one_rest_route_per_binding() -> None:
    rs = routes(_model())
    names = [r["name"] for r in rs]
    assert len(names) == len(set(names)) and names[-1] == "not_found"
    grpc_paths = {r["match"]["path"] for r in rs if r["name"].startswith("grpc:")}
    rest = [r for r in rs if r["name"].startswith("rest:")]
    for mod in (cache_pb2, ingestion_pb2, analytics_pb2, signals_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                assert f"/{svc.full_name}/{m.name}" in grpc_paths, f"{svc.full_name}/{m.name} has no gRPC route"
                rule = m.GetOptions().Extensions[annotations_pb2.http]
                bindings = [rule, *rule.additional_bindings] if rule.WhichOneof("pattern") else []
                mine = [r for r in rest if r["name"].startswith(f"rest:{svc.name}/{m.name}:")]
                assert len(mine) == len(bindings), f"{svc.full_name}/{m.name}: {len(mine)} REST routes"
                verbs = {b.WhichOneof("pattern").upper() for b in bindings}
                assert {r["match"]["headers"][0]["string_match"]["exact"] for r in mine} == verbs


def _holds_api_enum(message: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """Oracle: protobuf's own descriptors of the generated modules, walked field by field."""
    for f in message.fields:
        if f.enum_type is not None and f.enum_type.full_name.startswith("aiots."):
            return True
        sub = f.message_type
        if sub is not None and sub.full_name not in seen and _holds_api_enum(sub, seen | {message.full_name}):
            return True
    return False


def test_enum_error_lua_runs_exactly_on_rest_routes_whose_request_holds_an_enum() -> None:
    rs = {r["name"]: r for r in routes(_model())}
    lua = "envoy.filters.http.lua"
    expected_on: set[str] = set()
    for mod in (cache_pb2, ingestion_pb2, analytics_pb2, signals_pb2, portfolio_pb2, backtest_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                if _holds_api_enum(m.input_type):
                    expected_on |= {n for n in rs if n.startswith(f"rest:{svc.name}/{m.name}:")}
    on = {n for n, r in rs.items() if lua not in r.get("typed_per_filter_config", {})}
    assert on == expected_on
    # the enum errors the integration test checks are among them
    assert any(n.startswith("rest:AnalyticsService/PriceOptions:") for n in on)
    assert any(n.startswith("rest:SignalService/ListSignals:") for n in on)
    assert all(
        rs[n]["typed_per_filter_config"][lua] == {"@type": FILTER_CONFIG, "disabled": True} for n in set(rs) - on
    )
