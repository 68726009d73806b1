"""`aiots signals follow` / `aiots up`'s follower: resume after a dropped stream from the last *new*
signal (a real grpc.aio server whose first stream ends with RESOURCE_EXHAUSTED, as on overflow)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from aiots.services.cli.signals import follow_stream
from aiots.services.common.errors import ResourceExhausted
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.v1 import signals_pb2, signals_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class Signals(signals_pb2_grpc.SignalServiceServicer):
    def __init__(self) -> None:
        self.requests: list[str] = []

    async def SubscribeSignals(self, request: Any, context: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        self.requests.append(request.since)
        if len(self.requests) == 1:
            yield signals_pb2.SubscribeSignalsResponse(signal=signals_pb2.Signal(id="01B"))
            yield signals_pb2.SubscribeSignalsResponse(update=signals_pb2.Signal(id="01A"))  # an older signal
            raise ResourceExhausted("subscriber queue overflow; resume with since")
        if len(self.requests) == 2:
            yield signals_pb2.SubscribeSignalsResponse(signal=signals_pb2.Signal(id="01C"))
            raise ResourceExhausted("again")
        raise NotImplementedError("a third subscription is a bug in the test or the code")


async def test_resumes_from_the_last_new_signal_and_raises_the_rest() -> None:
    svc = Signals()
    reg = ServiceRegistration("aiots.v1.SignalService", signals_pb2_grpc.add_SignalServiceServicer_to_server, svc)
    gs = await start_server([reg], host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}") as ch:
            stub = signals_pb2_grpc.SignalServiceStub(ch)
            req = signals_pb2.SubscribeSignalsRequest(include_updates=True, since="01")
            ids: list[str] = []
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                async for m in follow_stream(stub, req, pause_s=0.0):
                    ids.append(m.signal.id or m.update.id)
            assert ei.value.code() == grpc.StatusCode.INTERNAL  # not resumable: raised
            assert ids == ["01B", "01A", "01C"]
            assert svc.requests == ["01", "01B", "01C"]
    finally:
        await gs.stop(0)
