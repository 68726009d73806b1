"""Issue 18 item 15 through a real Envoy: a REST (NDJSON) stream cut by the service's graceful stop
ends with a last line ``{"error": {"code", "message"}}`` telling the client how to resume, and the
services are the real ones (signals over PostgreSQL and the in-process bus, the cache's price
watch). Oracle: the signal id the test itself emitted and read back, and gRPC's code numbers
(google.rpc.Code UNAVAILABLE = 14)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import grpc
import pytest

from aiots.gateway.model import SERVICE_SECTIONS
from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.app import CacheApp
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import SignalsApp
from tests.integration.gateway.ports import free_port, gateway_settings
from tests.integration.signals.test_signal_service import make_signal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
HEARTBEAT_S = 0.3
READ_LIMIT_S = 15.0
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


@pytest.fixture
async def served(make_database: Callable[..., str], tmp_path: Path) -> AsyncIterator[tuple[dict[str, Any], str, str]]:
    dsn = make_database(True)
    settings = Settings(
        database_url=dsn,
        signals={"heartbeat_s": HEARTBEAT_S},
        cache={"watch_heartbeat_s": HEARTBEAT_S},
        database={"migrate_on_start": False},
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    rt = Runtime(settings=settings, db=pool, bus=InProcessBus(), cache=MemoryBackend(16 << 20))
    apps: dict[str, Any] = {"signals": SignalsApp(rt, port=0), "cache": CacheApp(rt, port=0)}
    g: Gateway | None = None
    try:
        for app in apps.values():
            await app.start()
        gw = gateway_settings(tmp_path)
        # every other service on a port nothing listens on (never a developer's running stack)
        ports = {s: {"port": apps[s].port if s in apps else free_port()} for s in SERVICE_SECTIONS.values()}
        ports["signals"]["heartbeat_s"] = HEARTBEAT_S
        gsettings = Settings(gateway=gw, **ports)
        g = Gateway(gsettings, config_dir=tmp_path / "envoy")
        await g.start()
        token = issue_token(gsettings.gateway, role="trader", subject="trailer-test", ttl_s=600)
        yield apps, f"http://127.0.0.1:{gsettings.gateway.port}", token
    finally:
        if g is not None:
            await g.stop()
        for app in apps.values():
            await app.stop()  # a second stop of an already stopped app is harmless
        await pool.close()


async def _next_line(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), READ_LIMIT_S)
    assert line, "stream ended"
    out: dict[str, Any] = json.loads(line)
    return out


async def _rest_of(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    """Every remaining NDJSON line (the stream may end with a reset after the last one)."""
    lines: list[dict[str, Any]] = []
    try:
        while line := await asyncio.wait_for(resp.content.readline(), READ_LIMIT_S):
            lines.append(json.loads(line))
    except aiohttp.ClientPayloadError:
        pass
    return lines


async def test_signal_stream_cut_by_shutdown_ends_with_an_error_line_naming_since(
    served: tuple[dict[str, Any], str, str],
) -> None:
    apps, url, token = served
    signals: SignalsApp = apps["signals"]
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as s,
        s.get(url + "/api/v1/signals/subscribe") as resp,
    ):
        assert resp.status == 200
        assert "heartbeat" in await _next_line(resp)  # the stream is open end to end
        sig = make_signal(1)
        await signals._emit([sig], [])
        while "signal" not in (got := await _next_line(resp)):
            pass
        assert got["signal"]["id"] == sig.id
        await signals.stop()  # graceful: what Ctrl-C / SIGTERM runs
        rest = await _rest_of(resp)
    assert rest, "no final line"
    last = rest[-1]
    assert set(last) == {"error"}, last
    assert last["error"]["code"] == UNAVAILABLE
    assert last["error"]["message"] == f"the server is shutting down; resume with since={sig.id}"
    assert all("error" not in line for line in rest[:-1])


async def test_price_watch_cut_by_shutdown_ends_with_an_error_line(served: tuple[dict[str, Any], str, str]) -> None:
    apps, url, token = served
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, timeout=timeout) as s,
        s.get(url + "/api/v1/prices/watch?symbols=AAPL") as resp,
    ):
        assert resp.status == 200
        assert "sent_at" in await _next_line(resp)  # a heartbeat: the stream is open end to end
        await apps["cache"].stop()
        rest = await _rest_of(resp)
    assert rest and rest[-1]["error"]["code"] == UNAVAILABLE, rest[-3:]
    assert rest[-1]["error"]["message"] == "the server is shutting down; reconnect"
