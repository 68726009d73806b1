"""The real databento client (Historical over HTTPS, Live over the LSG protocol) against local
gateways: backfill with cost check and resume, live sessions with reconnect + gap backfill,
clean EOF, auth failure and a silent feed. Stored counts are checked in PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from aiots.services.common.errors import FailedPrecondition
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.historical import backfill, historical_client
from aiots.services.ingestion.sources.live import LiveAuthError, LiveSource
from aiots.services.storage.writer import Writer
from tests.integration.ingestion.fake_databento import FakeHistorical, FakeLive, LivePlan, make_cert, trade

KEY = "db-" + "A" * 29
DATASET = "XNAS.ITCH"
NS = 1_000_000_000
DAY0 = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("cert"))


@pytest.fixture
def ca_env(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))


def _records(sym_ids: dict[str, int], start_ns: int, n: int, step_ns: int, seq0: int = 1) -> list:
    out = []
    for i in range(n):
        for iid in sym_ids.values():
            out.append(trade(iid, start_ns + i * step_ns, 100 + i * 0.01, seq0 + i))
    return out


@pytest.fixture
async def writer(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Writer]:
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.01)
    await w.start()
    yield w
    await w.close()


async def _count(dsn: str, sym: str) -> int:
    c = await asyncpg.connect(dsn)
    try:
        return int(await c.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", sym))
    finally:
        await c.close()


async def test_backfill_cost_check_progress_and_resume(
    ca_env: None, cert: tuple[Path, Path], pg_dsn: str, pg_pool: asyncpg.Pool, writer: Writer
) -> None:
    ids = {"HBFA": 11, "HBFB": 12}
    recs = _records(ids, int(DAY0.timestamp()) * NS, 3 * 24, 3600 * NS)  # hourly over 3 days
    fake = FakeHistorical(KEY, *cert, DATASET, ids, recs, cost_usd=1.25)
    gw = await fake.start()
    try:
        client = historical_client(KEY, gw)
        pipe = Pipeline(writer=writer, source=2)
        with pytest.raises(FailedPrecondition, match=r"\$1.25 exceeds"):
            async for _ in backfill(
                client=client,
                pool=pg_pool,
                pipeline=pipe,
                writer=writer,
                dataset=DATASET,
                symbols=list(ids),
                schemas=["trades"],
                start=DAY0,
                end=DAY0 + dt.timedelta(days=3),
                max_cost_usd=1.0,
            ):
                pass
        progress = []
        gen = backfill(
            client=client,
            pool=pg_pool,
            pipeline=pipe,
            writer=writer,
            dataset=DATASET,
            symbols=list(ids),
            schemas=["trades"],
            start=DAY0,
            end=DAY0 + dt.timedelta(days=3),
            max_cost_usd=5.0,
        )
        async for p in gen:
            progress.append(p)
            if p.chunks_done == 2:
                break  # interrupted after two days
        await gen.aclose()
        job = progress[0].job_id
        assert progress[0].cost_usd == pytest.approx(1.25) and progress[-1].chunks_total == 3
        n_before = len([r for r in fake.requests if r[0] == "get_range"])
        resumed = [
            p
            async for p in backfill(
                client=client,
                pool=pg_pool,
                pipeline=pipe,
                writer=writer,
                dataset=DATASET,
                symbols=list(ids),
                schemas=["trades"],
                start=DAY0,
                end=DAY0 + dt.timedelta(days=3),
                max_cost_usd=5.0,
                resume_job_id=job,
            )
        ]
        assert resumed[-1].done and resumed[-1].chunks_done == 3
        assert len([r for r in fake.requests if r[0] == "get_range"]) == n_before + 1  # only the missing day
        await writer.flush()
        assert await _count(pg_dsn, "HBFA") == 72 and await _count(pg_dsn, "HBFB") == 72
        st = await pg_pool.fetchval("SELECT status FROM collection_jobs WHERE job_id = $1", job)
        assert st == "done"
        assert {r[1]["stype_in"] for r in fake.requests if r[0] == "get_range"} == {"raw_symbol"}
    finally:
        await fake.stop()


def _live(pipe: Pipeline, port: int, hist_gw: str | None, **kw: object) -> LiveSource:
    return LiveSource(
        pipe,
        key=kw.pop("key", KEY),
        dataset=DATASET,
        symbols=kw.pop("symbols", ["LVA"]),  # type: ignore[arg-type]
        schemas=["trades"],
        gateway="127.0.0.1",
        port=port,
        heartbeat_interval_s=5,
        historical=(lambda: historical_client(KEY, hist_gw)) if hist_gw else None,
        backoff_s=0.05,
        max_backoff_s=0.2,
        **kw,
    )  # type: ignore[arg-type]


async def _until(cond, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
def live_gw() -> Iterator[list[FakeLive]]:
    made: list[FakeLive] = []
    yield made
    for g in made:
        g.stop()


async def test_live_reconnect_after_reset_backfills_gap_without_duplicates(
    ca_env: None, cert: tuple[Path, Path], pg_dsn: str, writer: Writer, live_gw: list[FakeLive]
) -> None:
    ids = {"LVA": 21}
    t0 = int(dt.datetime.now(dt.UTC).timestamp()) * NS - 60 * NS
    allr = _records(ids, t0, 10, NS)  # 10 trades, 1 s apart
    gw = FakeLive(KEY, DATASET, ids, [LivePlan(allr[:5], "rst"), LivePlan(allr[7:], "eof")])
    live_gw.append(gw)
    port = gw.start()
    hist = FakeHistorical(KEY, *cert, DATASET, ids, allr)
    hgw = await hist.start()
    try:
        src = _live(Pipeline(writer=writer, source=1, build_bars=False), port, hgw, is_market_open=lambda: True)
        task = asyncio.create_task(src.run())

        async def done() -> bool:
            await writer.flush()
            return src.stats.gap_backfills >= 1 and await _count(pg_dsn, "LVA") == 10

        await _until(done)
        src.stop()
        await asyncio.wait_for(task, 10)
        assert gw.connections >= 2 and src.stats.reconnects >= 1
        assert any("schema=trades" in s and "symbols=LVA" in s for s in gw.subscriptions)
        c = await asyncpg.connect(pg_dsn)
        try:
            assert await c.fetchval("SELECT count(DISTINCT (ts_event, sequence)) FROM trades WHERE symbol='LVA'") == 10
        finally:
            await c.close()
    finally:
        await hist.stop()


async def test_live_clean_eof_reconnects_only_in_market_hours(
    pg_dsn: str, writer: Writer, live_gw: list[FakeLive]
) -> None:
    ids = {"LVB": 31}
    t0 = int(dt.datetime.now(dt.UTC).timestamp()) * NS
    gw = FakeLive(KEY, DATASET, ids, [LivePlan(_records(ids, t0, 3, NS), "eof")])
    live_gw.append(gw)
    port = gw.start()
    closed = _live(Pipeline(writer=writer, source=1), port, None, symbols=["LVB"], is_market_open=lambda: False)
    await asyncio.wait_for(closed.run(), 20)  # market closed: a clean EOF ends the collection
    assert gw.connections == 1
    open_ = _live(Pipeline(writer=writer, source=1), port, None, symbols=["LVB"], is_market_open=lambda: True)
    task = asyncio.create_task(open_.run())

    async def reconnected() -> bool:
        return gw.connections >= 3

    await _until(reconnected)
    open_.stop()
    await asyncio.wait_for(task, 10)
    await writer.flush()
    assert await _count(pg_dsn, "LVB") == 3  # replayed sessions stored once


async def test_live_auth_failure_is_fatal_without_retry_storm(writer: Writer, live_gw: list[FakeLive]) -> None:
    gw = FakeLive(KEY, DATASET, {"LVC": 41}, [LivePlan([], "eof")])
    live_gw.append(gw)
    port = gw.start()
    src = _live(Pipeline(writer=writer, source=1), port, None, key="db-" + "B" * 29, symbols=["LVC"])
    with pytest.raises(LiveAuthError, match="Authentication failed"):
        await asyncio.wait_for(src.run(), 20)
    assert gw.connections == 1 and gw.auth_failures == 1


async def test_silent_feed_is_an_alert_not_a_hang(pg_dsn: str, writer: Writer, live_gw: list[FakeLive]) -> None:
    gw = FakeLive(KEY, DATASET, {"LVD": 51}, [LivePlan([], "hang", heartbeats=0)])
    live_gw.append(gw)
    port = gw.start()
    src = _live(
        Pipeline(writer=writer, source=1), port, None, symbols=["LVD"], silence_s=0.5, is_market_open=lambda: True
    )
    task = asyncio.create_task(src.run())

    async def alerted() -> bool:
        return src.stats.silent_alerts >= 1 and gw.connections >= 2

    await _until(alerted)
    src.stop()
    await asyncio.wait_for(task, 10)
    await writer.flush()
    c = await asyncpg.connect(pg_dsn)
    try:
        assert await c.fetchval("SELECT count(*) FROM data_quality_events WHERE kind = 'feed_silent'") >= 1
    finally:
        await c.close()
