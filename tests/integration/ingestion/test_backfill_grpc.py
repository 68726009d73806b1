"""The Backfill RPC's success path through a real gRPC channel: the service uses the real
databento.Historical client against the local HTTPS gateway; progress is streamed, the last
message says done, the rows are in PostgreSQL, and an interrupted job resumes by its id
fetching only the chunks it had not finished."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.app import create_app
from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion.fake_databento import FakeHistorical, make_cert, trade

KEY = "db-" + "H" * 29
NS = 1_000_000_000
DAY0 = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
IDS = {"AAPL": 61, "MSFT": 62}
DAYS = 3
PER_DAY = 24


def _ts(d: dt.datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(d)
    return t


@pytest.fixture
async def backfill_svc(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Any, Any, FakeHistorical]]:
    cert, keyfile = make_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    t0 = int(DAY0.timestamp()) * NS
    recs = [
        trade(iid, t0 + h * 3600 * NS, 100 + h * 0.01, h + 1) for h in range(DAYS * PER_DAY) for iid in IDS.values()
    ]
    fake = FakeHistorical(KEY, cert, keyfile, "XNAS.ITCH", IDS, recs, cost_usd=0.75)
    gw = await fake.start()
    settings = Settings(
        database_url=make_database(True),
        databento_api_key=KEY,
        symbols=list(IDS),
        databento={"historical_gateway": gw, "equities_dataset": "XNAS.ITCH"},
        ingestion={"spill_dir": tmp_path / "spill", "autostart": False, "flush_interval_s": 0.02},
    )
    app = await create_app(Runtime(settings=settings, bus=InProcessBus()), port=0)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel), app, fake
    finally:
        await channel.close()
        await app.stop()
        await fake.stop()


async def test_backfill_rpc_streams_progress_stores_and_resumes(backfill_svc: tuple[Any, Any, FakeHistorical]) -> None:
    stub, app, fake = backfill_svc
    req = ingestion_pb2.BackfillRequest(
        symbols=list(IDS), schemas=["trades"], start=_ts(DAY0), end=_ts(DAY0 + dt.timedelta(days=DAYS))
    )
    call = stub.Backfill(req)
    first: list[ingestion_pb2.BackfillResponse] = []
    async for p in call:
        first.append(p)
        if p.chunks_done == 1:
            break  # the client goes away after the first day
    call.cancel()
    job = first[0].job_id
    assert job and first[0].cost_usd == pytest.approx(0.75) and first[0].chunks_total == DAYS
    assert first[0].current == "cost checked" and not first[0].done

    resumed = [p async for p in stub.Backfill(ingestion_pb2.BackfillRequest(
        symbols=list(IDS), schemas=["trades"], start=req.start, end=req.end, resume_job_id=job))]  # fmt: skip
    assert all(p.job_id == job for p in resumed)
    assert resumed[-1].done and resumed[-1].chunks_done == DAYS and resumed[-1].current == "done"
    assert not any(p.done for p in resumed[:-1])
    done_at_resume = resumed[0].chunks_done
    assert done_at_resume >= 1
    # chunks finished before the interruption were not fetched again; one interrupted in flight may be
    starts = [r[1]["start"][:10] for r in fake.requests if r[0] == "get_range"]
    done_days = [(DAY0 + dt.timedelta(days=i)).date().isoformat() for i in range(done_at_resume)]
    assert all(starts.count(d) == 1 for d in done_days), starts
    assert set(starts) == {(DAY0 + dt.timedelta(days=i)).date().isoformat() for i in range(DAYS)}
    assert len(starts) <= DAYS + 1
    chunk_msgs = [p for p in resumed[1:-1]]
    assert [p.chunks_done for p in chunk_msgs] == list(range(done_at_resume + 1, DAYS + 1))
    assert all(p.current.startswith("trades 2024-05-") for p in chunk_msgs)

    pool = app.rt.db
    for sym in IDS:
        n = await pool.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", sym)
        assert n == DAYS * PER_DAY, sym
    assert await pool.fetchval("SELECT status FROM collection_jobs WHERE job_id = $1", job) == "done"
    days = await pool.fetch("SELECT chunk_day FROM backfill_chunks WHERE job_id = $1 ORDER BY 1", job)
    assert [r[0] for r in days] == [(DAY0 + dt.timedelta(days=i)).date() for i in range(DAYS)]
