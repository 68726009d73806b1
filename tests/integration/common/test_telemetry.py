"""Tracing, metrics and audit through real grpc.aio servers and a real PostgreSQL.

The servicers here are test scaffolding (the thing under test is the telemetry around them): a
minimal AnalyticsService whose GetOptionChain reads the database, and an IngestionService whose
StartCollection is an admin action. Oracles: the OpenTelemetry SDK's in-memory exporter (span
parentage), the Prometheus text parser (prometheus_client.parser) and the W3C traceparent format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from aiots.services.common import telemetry
from aiots.services.common.errors import InvalidArgument, NotFound
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.common.settings import Settings
from aiots.v1 import analytics_pb2, analytics_pb2_grpc, ingestion_pb2, ingestion_pb2_grpc

pytestmark = pytest.mark.integration

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _telemetry() -> None:
    # first call installs the providers; a later one (another module did it) only adds the exporter
    telemetry.setup_telemetry(Settings(), service="aiots", span_exporters=[EXPORTER])


class Analytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def GetOptionChain(self, request: Any, context: Any) -> Any:
        if request.symbol == "NOPE":
            raise NotFound(f"symbol {request.symbol!r} not found; known: AAPL")
        if not request.symbol:
            raise InvalidArgument("symbol", "must not be empty")
        price = await self.pool.fetchval("SELECT $1::float8", 187.5)
        return analytics_pb2.GetOptionChainResponse(symbol=request.symbol, underlying_price=price)


class Ingestion(ingestion_pb2_grpc.IngestionServiceServicer):
    async def StartCollection(self, request: Any, context: Any) -> Any:
        if "BAD" in request.symbols:
            raise InvalidArgument("symbols", "unknown ticker 'BAD'")
        return ingestion_pb2.StartCollectionResponse(job_id="j1", started=True)


@pytest.fixture
async def analytics(pg_pool: asyncpg.Pool) -> AsyncIterator[GrpcServer]:
    gs = await start_server(
        [
            ServiceRegistration(
                "aiots.v1.AnalyticsService",
                analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server,
                Analytics(pg_pool),
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    yield gs
    await gs.stop(0.5)


async def test_one_connected_trace_client_service_database(analytics: GrpcServer) -> None:
    EXPORTER.clear()
    async with telemetry.open_channel(f"127.0.0.1:{analytics.port}") as ch:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        with telemetry.span("test.root") as root:
            resp = await stub.GetOptionChain(analytics_pb2.GetOptionChainRequest(symbol="AAPL"))
    assert resp.underlying_price == 187.5
    spans = {s.name: s for s in EXPORTER.get_finished_spans()}
    method = "/aiots.v1.AnalyticsService/GetOptionChain"
    server = next(s for s in EXPORTER.get_finished_spans() if s.name == method and s.kind.name == "SERVER")
    client = next(s for s in EXPORTER.get_finished_spans() if s.name == method and s.kind.name == "CLIENT")
    db = spans["postgresql.fetchval"]
    trace_id = root.get_span_context().trace_id
    assert {server.context.trace_id, client.context.trace_id, db.context.trace_id} == {trace_id}
    assert client.parent is not None and client.parent.span_id == root.get_span_context().span_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert db.parent is not None and db.parent.span_id == server.context.span_id
    assert db.attributes is not None and db.attributes["db.statement"] == "SELECT $1::float8"
    assert server.attributes is not None and server.attributes["aiots.service"] == "analytics"


async def test_w3c_traceparent_from_the_edge_is_the_parent(analytics: GrpcServer) -> None:
    """Envoy forwards the caller's traceparent header as gRPC metadata; the server continues it."""
    EXPORTER.clear()
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{analytics.port}") as ch:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await stub.GetOptionChain(
            analytics_pb2.GetOptionChainRequest(symbol="MSFT"),
            metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),),
        )
    server = next(s for s in EXPORTER.get_finished_spans() if s.kind.name == "SERVER")
    assert f"{server.context.trace_id:032x}" == trace_id
    assert server.parent is not None and f"{server.parent.span_id:016x}" == parent_id


async def test_metrics_endpoint_has_rpc_latency_by_method_and_code(analytics: GrpcServer) -> None:
    async with telemetry.open_channel(f"127.0.0.1:{analytics.port}") as ch:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        await stub.GetOptionChain(analytics_pb2.GetOptionChainRequest(symbol="AAPL"))
        for sym, code in (("NOPE", grpc.StatusCode.NOT_FOUND), ("", grpc.StatusCode.INVALID_ARGUMENT)):
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.GetOptionChain(analytics_pb2.GetOptionChainRequest(symbol=sym))
            assert ei.value.code() == code
    port = telemetry.start_metrics_server("analytics", 0, host="127.0.0.1")
    other = telemetry.start_metrics_server("cache", 0, host="127.0.0.1")
    try:
        text = await asyncio.to_thread(_scrape, port)
        cache_text = await asyncio.to_thread(_scrape, other)
    finally:
        telemetry.stop_metrics_server(port)
        telemetry.stop_metrics_server(other)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    rpc = fams["aiots_rpc_duration_seconds"]
    assert rpc.type == "histogram"
    counts = {(s.labels["method"], s.labels["code"]): s.value for s in rpc.samples if s.name.endswith("_count")}
    method = "/aiots.v1.AnalyticsService/GetOptionChain"
    for code in ("OK", "NOT_FOUND", "INVALID_ARGUMENT"):
        assert counts[(method, code)] >= 1
    assert all(s.labels["service"] == "analytics" for f in fams.values() for s in f.samples if "service" in s.labels)
    assert "aiots_db_query_duration_seconds" in fams
    cache_fams = {f.name: f for f in text_string_to_metric_families(cache_text)}
    # the cache's port never shows the analytics series of the same process
    for f in cache_fams.values():
        for s in f.samples:
            assert s.labels.get("service", "cache") == "cache"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


@pytest.fixture
async def ingestion() -> AsyncIterator[GrpcServer]:
    gs = await start_server(
        [
            ServiceRegistration(
                "aiots.v1.IngestionService",
                ingestion_pb2_grpc.add_IngestionServiceServicer_to_server,
                Ingestion(),
            )
        ],
        host="127.0.0.1",
        port=0,
    )
    yield gs
    await gs.stop(0.5)


async def test_admin_actions_are_audited_with_the_gateway_subject(
    ingestion: GrpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiots.audit")
    md = (("x-aiots-subject", "alice@example.com"), ("x-aiots-role", "admin"))
    async with telemetry.open_channel(f"127.0.0.1:{ingestion.port}") as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        await stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["AAPL"]), metadata=md)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.StartCollection(ingestion_pb2.StartCollectionRequest(symbols=["BAD"]), metadata=md)
        # a read is not an admin action
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest(), metadata=md)
    records = [r.__dict__["audit"] for r in caplog.records if r.name == "aiots.audit"]
    assert [(r["action"], r["subject"], r["role"], r["outcome"]) for r in records] == [
        ("/aiots.v1.IngestionService/StartCollection", "alice@example.com", "admin", "OK"),
        ("/aiots.v1.IngestionService/StartCollection", "alice@example.com", "admin", "INVALID_ARGUMENT"),
    ]
    assert all(len(r["trace_id"]) == 32 for r in records)
    json.dumps(records)  # serialisable as the JSON log line
