"""Admin RPCs are audited with the caller the gateway forwarded and the outcome; other RPCs are not,
and requests never reach the log. Oracle: the audit records a real grpc.aio server writes."""

from __future__ import annotations

import logging

import grpc
import pytest

from aiots.services.common import server
from aiots.services.common.audit import ADMIN_METHODS, ROLE_HEADER, SUBJECT_HEADER, AuditInterceptor, caller_of
from aiots.services.common.errors import InvalidArgument
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.v1 import cache_pb2, cache_pb2_grpc


class Cache(cache_pb2_grpc.CacheServiceServicer):
    async def SetAnalytics(
        self, request: cache_pb2.SetAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.SetAnalyticsResponse:
        if request.key == "bad":
            raise InvalidArgument("key", "bad key")
        return cache_pb2.SetAnalyticsResponse(key=request.key)

    async def GetStats(
        self, request: cache_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetStatsResponse:
        return cache_pb2.GetStatsResponse()


def test_caller_from_metadata() -> None:
    assert caller_of([(SUBJECT_HEADER, "alice"), (ROLE_HEADER, "admin")]) == ("alice", "admin")
    assert caller_of(None) == ("anonymous", "")


async def test_admin_calls_are_audited_with_caller_and_outcome(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "/aiots.v1.CacheService/SetAnalytics" in ADMIN_METHODS
    # only this test's interceptor: once telemetry was set up by an earlier test, every server also
    # gets the process-wide defaults (an audit interceptor among them), which would audit twice
    monkeypatch.setattr(server, "_default_interceptors", None)
    gs = await start_server(
        [ServiceRegistration.of(Cache())], host="127.0.0.1", port=0, interceptors=[AuditInterceptor()]
    )
    md = ((SUBJECT_HEADER, "alice"), (ROLE_HEADER, "admin"))
    try:
        with caplog.at_level(logging.INFO, logger="aiots.audit"):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}") as ch:
                stub = cache_pb2_grpc.CacheServiceStub(ch)
                await stub.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k-secret-value"), metadata=md)
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="bad"), metadata=md)
                await stub.GetStats(cache_pb2.GetStatsRequest(), metadata=md)
    finally:
        await gs.stop(0)
    records = [r.audit for r in caplog.records if r.name == "aiots.audit"]  # type: ignore[attr-defined]
    assert [(r["action"], r["subject"], r["role"], r["outcome"]) for r in records] == [
        ("/aiots.v1.CacheService/SetAnalytics", "alice", "admin", "OK"),
        ("/aiots.v1.CacheService/SetAnalytics", "alice", "admin", "INVALID_ARGUMENT"),
    ]
    assert "k-secret-value" not in caplog.text
