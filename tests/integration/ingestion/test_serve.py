"""``aiots serve ingestion --standalone`` (a real subprocess) starts the ingestion app's gRPC
IngestionService, answers on its port, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_ingestion_standalone(make_database: Callable[..., str], tmp_path: Path) -> None:
    port, metrics = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABENTO_API_KEY")}
    env.update(
        DATABASE_URL=make_database(True),
        AIOTS_INGESTION__AUTOSTART="false",
        AIOTS_INGESTION__SPILL_DIR=str(tmp_path / "spill"),
        AIOTS_DATA_DIR=str(tmp_path / "data"),
    )
    aiots = Path(sys.executable).with_name("aiots")
    cmd = [str(aiots), "serve", "ingestion", "--standalone", "--port", str(port), "--metrics-port", str(metrics)]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:  # noqa: ASYNC230 - a local log file, before anything runs
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
            st = None
            for _ in range(300):
                assert proc.returncode is None, log.read_text()
                try:
                    st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest(), timeout=1)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
            assert st is not None and not st.running  # autostart off: nothing collecting
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await stub.GetBars(ingestion_pb2.GetBarsRequest(symbol="AAPL", interval="7m"))
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
