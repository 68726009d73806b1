"""Request bytes that do not parse never give UNKNOWN/500 (issue 18, item 1).

Envoy transcodes a percent-encoded path such as ``/api/v1/analytics/indicators/%FF%FE`` into the
raw bytes ``FF FE`` in a string field; protobuf refuses them (proto3 strings are UTF-8). Every
RPC of every service, unary or streaming, must answer INVALID_ARGUMENT naming the field. The
oracle is the wire format itself: the test writes the bad bytes by hand (tag, length, payload)
into each top-level string field of each request type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.rpc import error_details_pb2, status_pb2

from aiots.services.common.server import ServiceRegistration, start_server
from aiots.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    signals_pb2,
    signals_pb2_grpc,
)

A, C, ING, S = analytics_pb2_grpc, cache_pb2_grpc, ingestion_pb2_grpc, signals_pb2_grpc
SERVICES: list[tuple[Any, Any, Any]] = [
    (analytics_pb2, A.AnalyticsServiceServicer, A.add_AnalyticsServiceServicer_to_server),
    (cache_pb2, C.CacheServiceServicer, C.add_CacheServiceServicer_to_server),
    (ingestion_pb2, ING.IngestionServiceServicer, ING.add_IngestionServiceServicer_to_server),
    (signals_pb2, S.SignalServiceServicer, S.add_SignalServiceServicer_to_server),
]


def _bad_utf8(number: int) -> bytes:
    """Field ``number``, wire type 2 (length-delimited), payload FF FE (never valid UTF-8)."""
    return bytes([(number << 3) | 2, 2, 0xFF, 0xFE])


def _cases() -> list[tuple[str, str, bool, str, bytes]]:
    out = []
    for mod, _, _ in SERVICES:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                for f in m.input_type.fields:
                    if f.type == FieldDescriptor.TYPE_STRING and f.number < 16:
                        path = f"/{svc.full_name}/{m.name}"
                        out.append((path, m.name, m.server_streaming, f.name, _bad_utf8(f.number)))
    return out


CASES = _cases()


@pytest.fixture
async def server() -> AsyncIterator[int]:
    regs = [
        ServiceRegistration(
            mod.DESCRIPTOR.services_by_name[base.__name__.removesuffix("Servicer")].full_name, add, base()
        )
        for mod, base, add in SERVICES
    ]
    gs = await start_server(regs, host="127.0.0.1", port=0)
    try:
        yield gs.port
    finally:
        await gs.stop(0)


def _field_violation(err: grpc.aio.AioRpcError) -> str:
    for k, v in err.trailing_metadata() or ():
        if k == "grpc-status-details-bin":
            st = status_pb2.Status.FromString(v)
            for d in st.details:
                bad = error_details_pb2.BadRequest()
                if d.Unpack(bad):
                    return str(bad.field_violations[0].field)
    return ""


def test_every_rpc_has_a_string_field_case() -> None:
    names = {c[1] for c in CASES}
    assert {
        "GetIndicators",
        "GetBars",
        "GetStockPrice",
        "GetAnalytics",
        "SubscribeSignals",
        "GetOptionChainDefinitions",
    } <= names


@pytest.mark.parametrize(("path", "name", "streaming", "field", "raw"), CASES, ids=[f"{c[1]}.{c[3]}" for c in CASES])
async def test_invalid_utf8_is_invalid_argument_naming_the_field(
    server: int, path: str, name: str, streaming: bool, field: str, raw: bytes
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            if streaming:
                call = ch.unary_stream(path)(raw, timeout=5)
                async for _ in call:
                    pass
            else:
                await ch.unary_unary(path)(raw, timeout=5)
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, err.code(), err.details())
    assert err.details().startswith(f"{field}: ") and "UTF-8" in (err.details() or "")
    assert "class" not in (err.details() or "")
    assert _field_violation(err) == field


async def test_nested_field_is_named(server: int) -> None:
    """``page.page_token`` of ListInstruments is a string inside a message: the path names both."""
    page = ingestion_pb2.ListInstrumentsRequest.DESCRIPTOR.fields_by_name["page"]
    token = page.message_type.fields_by_name["page_token"]
    inner = _bad_utf8(token.number)
    raw = bytes([(page.number << 3) | 2, len(inner)]) + inner
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await ch.unary_unary("/aiots.v1.IngestionService/ListInstruments")(raw, timeout=5)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_violation(ei.value) == "page.page_token"


async def test_truncated_bytes_are_invalid_argument(server: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await ch.unary_unary("/aiots.v1.AnalyticsService/GetIndicators")(b"\x0a\x09AB", timeout=5)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _field_violation(ei.value) == "request"
