"""``aiots up``'s stop (the supervisor: gateway first, then the services) still gives a REST client
of an open stream its last ``{"error": ...}`` line: the services' streams end, each with its trailer,
while Envoy can still carry it. The stack is the composition root's own (real cache service and
Envoy on spare ports). Oracle: google.rpc.Code UNAVAILABLE = 14 (gRPC's own code table)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from aiots.gateway.tokens import issue_token
from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import Supervisor, with_data_dir
from tests.integration.gateway.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HEARTBEAT_S = 0.3
READ_LIMIT_S = 15.0


@pytest.fixture
async def sup(make_database: Callable[..., str], tmp_path: Path) -> AsyncIterator[Supervisor]:
    base = with_data_dir(Settings(database_url=make_database(True)), tmp_path / "data")  # type: ignore[call-arg]
    settings = base.model_copy(
        update={
            "cache": base.cache.model_copy(update={"port": free_port(), "watch_heartbeat_s": HEARTBEAT_S}),
            "gateway": base.gateway.model_copy(
                update={
                    "port": free_port(),
                    "admin_port": free_port(),
                    "health_port": free_port(),
                    "base_id": random.randint(10_000, 1_000_000),
                    "access_log_path": str(tmp_path / "access.log"),
                    "health_check_interval_s": 0.3,
                    "log_level": "error",
                }
            ),
        }
    )
    s = Supervisor(settings, services=["cache"], gateway=True, metrics=False)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()  # a second stop finds nothing left to stop


async def test_stack_stop_ends_an_open_rest_stream_with_its_error_line(sup: Supervisor) -> None:
    token = issue_token(sup.settings.gateway, role="trader", subject="stop-test", ttl_s=600)
    url = f"http://127.0.0.1:{sup.settings.gateway.port}/api/v1/prices/watch?symbols=AAPL"
    lines: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        for _ in range(100):  # until Envoy's health check has found the cache upstream
            resp = await s.get(url)
            if resp.status == 200:
                break
            resp.release()
            await asyncio.sleep(0.1)
        assert resp.status == 200
        try:
            first = await asyncio.wait_for(resp.content.readline(), READ_LIMIT_S)
            assert "sent_at" in json.loads(first)  # a heartbeat: open end to end
            stopping = asyncio.ensure_future(sup.stop())
            try:
                while line := await asyncio.wait_for(resp.content.readline(), READ_LIMIT_S):
                    lines.append(json.loads(line))
            except aiohttp.ClientPayloadError:
                pass  # Envoy going away may cut the chunked body after the last line
            assert await stopping == []
        finally:
            resp.release()
    assert lines, "nothing after the stop"
    assert lines[-1]["error"]["code"] == grpc.StatusCode.UNAVAILABLE.value[0], lines[-3:]
    assert lines[-1]["error"]["message"] == "the server is shutting down; reconnect"
