"""The API contract: every REST path users rely on is bound by a google.api.http rule.

Reads the descriptor set the build writes (aiots/v1/aiots.pb), not the .proto text.
"""

from __future__ import annotations

from importlib import resources

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

REQUIRED = {
    # The original system's documented paths.
    ("GET", "/api/v1/analytics/indicators/{symbol}"),
    ("GET", "/api/v1/analytics/patterns/{symbol}"),
    ("GET", "/api/v1/analytics/options/{symbol}"),
    ("POST", "/api/v1/data/collection/start"),
    ("POST", "/api/v1/data/collection/stop"),
    ("GET", "/api/v1/data/collection/status"),
    ("GET", "/api/v1/cache/stock-prices/{symbol}"),
    ("POST", "/api/v1/cache/analytics"),
    # New capabilities.
    ("GET", "/api/v1/signals/subscribe"),
    ("GET", "/api/v1/signals"),
    ("GET", "/api/v1/signals/{id}"),
    ("GET", "/api/v1/cache/analytics/{key}"),
    ("GET", "/api/v1/data/bars/{symbol}"),
    ("GET", "/api/v1/analytics/options/{symbol}/chain"),
    ("POST", "/api/v1/analytics/options:price"),
    ("POST", "/api/v1/analytics/options:iv"),
    ("GET", "/api/v1/analytics/vol-surface/{symbol}"),
    ("GET", "/api/v1/prices/watch"),
    ("POST", "/api/v1/backtests"),
    ("GET", "/api/v1/backtests/{id}"),
}
STREAMING = {"SubscribeSignals", "WatchPrices", "Backfill", "RunBacktest"}


def _rules() -> dict[tuple[str, str], tuple[str, str, bool]]:
    data = resources.files("aiots.v1").joinpath("aiots.pb").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    out: dict[tuple[str, str], tuple[str, str, bool]] = {}
    for f in fds.file:
        if not f.package.startswith("aiots."):
            continue
        for svc in f.service:
            for m in svc.method:
                rule: http_pb2.HttpRule = m.options.Extensions[annotations_pb2.http]
                kind = rule.WhichOneof("pattern")
                assert kind is not None, f"{svc.name}.{m.name} has no google.api.http rule"
                path = getattr(rule, kind)
                out[(kind.upper(), path)] = (svc.name, m.name, m.server_streaming)
    return out


def test_every_required_rest_path_is_bound() -> None:
    rules = _rules()
    missing = sorted(REQUIRED - set(rules))
    assert not missing, f"REST paths without a google.api.http binding: {missing}"


def test_every_rpc_has_an_http_rule_and_streams_are_server_streaming() -> None:
    rules = _rules()
    by_method = {m: streaming for (_svc, m, streaming) in rules.values()}
    for name in STREAMING:
        assert by_method.get(name) is True, f"{name} must be server-streaming"
    assert {svc for svc, _m, _s in rules.values()} == {
        "IngestionService",
        "AnalyticsService",
        "CacheService",
        "SignalService",
        "PortfolioService",
        "BacktestService",
    }


def test_descriptor_carries_rich_error_types() -> None:
    data = resources.files("aiots.v1").joinpath("aiots.pb").read_bytes()
    names = {f.name for f in descriptor_pb2.FileDescriptorSet.FromString(data).file}
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto"} <= names


@pytest.mark.parametrize(
    "module", ["common_pb2", "ingestion_pb2_grpc", "analytics_pb2_grpc", "cache_pb2_grpc", "signals_pb2_grpc"]
)
def test_generated_modules_import_with_stubs(module: str) -> None:
    mod = __import__(f"aiots.v1.{module}", fromlist=["x"])
    assert mod is not None
    stub = resources.files("aiots.v1").joinpath(f"{module}.pyi")
    assert stub.is_file(), f"missing typed stub {module}.pyi"
