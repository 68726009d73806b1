"""The service processes' event loop: uvloop by default, asyncio's on request, the same run/close
contract as asyncio.run, and grpc.aio working on it (a real server and client)."""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
import pytest
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import ValidationError

from aiots.services.common import event_loop
from aiots.services.common.settings import Settings


async def _which() -> tuple[str, type]:
    loop = asyncio.get_running_loop()
    return event_loop.loop_name(), type(loop)


def test_uvloop_is_the_default_and_runs_the_coroutine() -> None:
    assert Settings().event_loop == "uvloop"
    name, cls = event_loop.run(_which(), "uvloop")
    assert name == "uvloop"
    assert issubclass(cls, uvloop.Loop)  # oracle: uvloop's own loop class


def test_asyncio_on_request() -> None:
    name, cls = event_loop.run(_which(), "asyncio")
    assert name == "asyncio"
    assert issubclass(cls, asyncio.BaseEventLoop) and not issubclass(cls, uvloop.Loop)


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_run_closes_as_asyncio_run_does(kind: event_loop.EventLoopKind) -> None:
    seen: dict[str, object] = {}

    async def main() -> int:
        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                seen["cancelled"] = True
                raise

        seen["task"] = asyncio.create_task(forever())
        seen["loop"] = asyncio.get_running_loop()
        await asyncio.sleep(0)
        return 42

    assert event_loop.run(main(), kind) == 42
    assert seen["cancelled"] is True  # a task left running is cancelled at the end
    loop = seen["loop"]
    assert isinstance(loop, asyncio.AbstractEventLoop) and loop.is_closed()


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_grpc_aio_serves_on_the_loop(kind: event_loop.EventLoopKind) -> None:
    async def main() -> int:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                replies = [await stub.Check(health_pb2.HealthCheckRequest(), timeout=5) for _ in range(20)]
            assert event_loop.loop_name() == kind
            return sum(r.status == health_pb2.HealthCheckResponse.SERVING for r in replies)
        finally:
            await server.stop(None)

    assert event_loop.run(main(), kind) == 20


def test_falls_back_to_asyncio_without_uvloop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    with caplog.at_level(logging.WARNING, logger=event_loop.__name__):
        name, _ = event_loop.run(_which(), "uvloop")
    assert name == "asyncio"
    assert "uvloop is not installed" in caplog.text


def test_a_bad_setting_names_the_field_and_the_choices() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(event_loop="trio")  # type: ignore[arg-type]
    text = str(err.value)
    assert "event_loop" in text and "'uvloop'" in text and "'asyncio'" in text
