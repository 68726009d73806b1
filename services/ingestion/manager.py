"""Collection jobs (simulator, live), backfills and status: the domain behind IngestionService.

No protobuf here (conversion lives in service.py). Jobs are recorded in ``collection_jobs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ulid

from aiots.core import conventions as cv
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.errors import FailedPrecondition, InvalidArgument
from aiots.services.common.settings import UNDERLYINGS, Settings
from aiots.services.ingestion import store
from aiots.services.ingestion.jobs import JobQueue
from aiots.services.ingestion.normalize import (
    SOURCE_HISTORICAL,
    SOURCE_LIVE,
    SOURCE_REPLAY,
    SOURCE_SIMULATOR,
    Normalizer,
)
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.historical import BackfillProgress, backfill, historical_client
from aiots.services.ingestion.sources.live import LiveGroup, LiveSource
from aiots.services.ingestion.sources.replay import ReplayRunner, bus_settle
from aiots.services.ingestion.sources.simulator import ClockStatus, SimulatorSource, seed_history
from aiots.services.storage.writer import Writer

log = logging.getLogger(__name__)

SUPPORTED_SCHEMAS: tuple[str, ...] = (
    "trades", "tbbo", "mbp-1", "cbbo-1s", "ohlcv-1s", "ohlcv-1m", "definition", "statistics",
)  # fmt: skip
DEFAULT_SCHEMAS: tuple[str, ...] = ("trades", "tbbo")
SOURCE_NAMES = {
    SOURCE_LIVE: "live",
    SOURCE_HISTORICAL: "historical",
    SOURCE_REPLAY: "replay",
    SOURCE_SIMULATOR: "simulator",
}
SOURCE_IDS = {name: int(src) for src, name in SOURCE_NAMES.items()}
#: rereads of the running jobs when another replica's StartCollection wins the race
QUEUE_START_TRIES = 3


@dataclass
class Job:
    """A running collection."""

    job_id: str
    source: int
    symbols: list[str]
    schemas: list[str]
    task: asyncio.Task[None]
    runner: Any
    include_options: bool = False
    started_ns: int = field(default_factory=time.time_ns)
    #: stopped here but not ended (handed over, taken over, or its row already says why): the
    #: runner's end leaves ``collection_jobs`` alone
    detached: bool = False


@dataclass(frozen=True)
class StreamState:
    """Status of one (symbol, schema) stream."""

    symbol: str
    schema: str
    records: int
    last_event_ns: int
    errors: int
    source: int


@dataclass(frozen=True)
class Status:
    """Overall collection status; ``market_clock`` says what the simulator shows (None: no simulator)."""

    running: bool
    streams: list[StreamState]
    pending_records: int
    spilled_records: int
    data_quality_events: int
    market_clock: ClockStatus | None = None


def validate_symbols(settings: Settings, symbols: Sequence[str], field_name: str = "symbols") -> list[str]:
    """Uppercase tickers; InvalidArgument listing the supported ones when unknown (empty: all)."""
    supported = list(dict.fromkeys([*settings.symbols, *UNDERLYINGS]))
    out = [s.strip().upper() for s in symbols if s.strip()]
    bad = [s for s in out if s not in supported]
    if bad:
        raise InvalidArgument(field_name, f"unknown symbol(s) {bad}; supported: {', '.join(supported)}")
    return out or list(settings.symbols)


def validate_schemas(schemas: Sequence[str], field_name: str = "schemas") -> list[str]:
    out = [s.strip().lower() for s in schemas if s.strip()]
    bad = [s for s in out if s not in SUPPORTED_SCHEMAS]
    if bad:
        raise InvalidArgument(field_name, f"unsupported schema(s) {bad}; supported: {', '.join(SUPPORTED_SCHEMAS)}")
    return out or list(DEFAULT_SCHEMAS)


class IngestionManager:
    """Owns the writer, the pipelines and the running jobs."""

    def __init__(self, settings: Settings, pool: Any, dsn: str, *, bus: Any = None, prices: Any = None) -> None:
        self.settings = settings
        self.pool = pool
        self.bus = bus
        self.prices = prices
        cfg = settings.ingestion
        self.writer = Writer(
            dsn,
            spill_dir=cfg.spill_dir,
            queue_records=cfg.queue_size,
            batch_records=cfg.batch_size,
            flush_interval_s=cfg.flush_interval_s,
        )
        self.jobs: dict[str, Job] = {}
        self._lock = asyncio.Lock()
        #: the replicas' shared collection jobs (Redis bus only; see jobs.py); None: jobs run here
        self.queue: JobQueue | None = None

    async def start(self) -> None:
        await self.writer.start()
        if isinstance(self.bus, RedisStreamsBus):
            self.queue = JobQueue(self.bus, self.pool, self.settings.ingestion, self._launch_queued, self._halt)
            await self.queue.start()

    async def stop(self) -> None:
        """Stop collecting here: shared jobs are handed to the other replicas (or the next start),
        jobs of this process only (a replay, or all without Redis) are stopped."""
        if self.queue is not None:
            await self.queue.close(handover=True)
        await self._stop_local([])
        await self.writer.close()

    def default_source(self) -> int:
        return int(SOURCE_SIMULATOR if self.settings.simulated_feed else SOURCE_LIVE)

    def _pipeline(self, source: int) -> Pipeline:
        return Pipeline(writer=self.writer, bus=self.bus, prices=self.prices, source=source)

    async def seed(self) -> bool:
        """Seeded history for the simulator (once per database)."""
        sim = SimulatorSource(
            self._pipeline(SOURCE_SIMULATOR), self.settings.symbols, seed=self.settings.ingestion.simulator_seed,
            session=self.settings.ingestion.simulator_session,
        )  # fmt: skip
        return bool(
            await seed_history(
                self.pool,
                self.writer,
                sim.sim,
                self.settings.ingestion.history_sessions,
                self.settings.ingestion.simulator_seed,
            )
        )

    async def start_collection(
        self, symbols: Sequence[str], schemas: Sequence[str], source: int = 0, include_options: bool = False
    ) -> tuple[str, bool, int, str]:
        """Start (idempotent): returns (job_id, started, source, message)."""
        syms = validate_symbols(self.settings, symbols)
        schs = validate_schemas(schemas)
        src = source or self.default_source()
        if src not in (SOURCE_LIVE, SOURCE_SIMULATOR):
            raise InvalidArgument(
                "source",
                "StartCollection supports DATA_SOURCE_LIVE and DATA_SOURCE_SIMULATOR "
                "(use Backfill for historical data and `aiots replay` for files)",
            )
        if src == SOURCE_LIVE and self.settings.databento_api_key is None:
            raise FailedPrecondition("live collection needs DATABENTO_API_KEY", reason="NO_API_KEY")
        if self.queue is not None:
            return await self._start_queued(self.queue, syms, schs, src, include_options)
        async with self._lock:
            for job in self.jobs.values():
                if (
                    job.source == src
                    and set(syms) <= set(job.symbols)
                    and set(schs) <= set(job.schemas)
                    and (job.include_options or not include_options)
                ):
                    return job.job_id, False, src, f"already collecting {', '.join(job.symbols)} ({SOURCE_NAMES[src]})"
            # widen: a running job of this source is replaced by one covering the union
            merged_syms, merged_schs, merged_opts = list(syms), list(schs), include_options
            for job in [j for j in self.jobs.values() if j.source == src]:
                merged_syms = list(dict.fromkeys([*job.symbols, *merged_syms]))
                merged_schs = list(dict.fromkeys([*job.schemas, *merged_schs]))
                merged_opts = merged_opts or job.include_options
                await self._stop_job(job)
            job_id = str(ulid.ULID())
            await self._launch(job_id, src, merged_syms, merged_schs, merged_opts)
            await store.insert_job(
                self.pool,
                job_id,
                SOURCE_NAMES[src],
                {"symbols": merged_syms, "schemas": merged_schs, "include_options": merged_opts},
            )
            opts = " + options" if merged_opts else ""
            return (
                job_id,
                True,
                src,
                f"collecting {', '.join(merged_syms)}{opts} [{', '.join(merged_schs)}] ({SOURCE_NAMES[src]})",
            )

    async def _launch(self, job_id: str, src: int, syms: list[str], schs: list[str], opts: bool) -> None:
        """Run collection job ``job_id`` in this process."""
        runner: Any
        if src == SOURCE_SIMULATOR:
            runner = SimulatorSource(
                self._pipeline(src), syms, seed=self.settings.ingestion.simulator_seed,
                speed=self.settings.ingestion.simulator_speed, rate=self.settings.market.risk_free_rate,
                session=self.settings.ingestion.simulator_session, settle=bus_settle(self.bus),
            )  # fmt: skip
        else:
            runner = self._live_runner(syms, schs, opts)
            await self.seed_prev_closes(syms)
        task = asyncio.create_task(self._run(job_id, runner), name=f"collect-{job_id}")
        self.jobs[job_id] = Job(job_id, src, syms, schs, task, runner, opts)

    async def _launch_queued(self, job_id: str, row: store.JobRow) -> None:
        """The queue gave this replica job ``row``: run it (a takeover starts it afresh: the simulator
        follows the wall clock, a live session starts at now)."""
        p = row.params
        src = SOURCE_IDS[row.kind]
        await self._launch(job_id, src, list(p["symbols"]), list(p["schemas"]), bool(p.get("include_options")))

    async def _halt(self, job_id: str) -> None:
        """Stop job ``job_id`` here without recording an end (the queue records what happened)."""
        job = self.jobs.get(job_id)
        if job is not None:
            job.detached = True
            await self._stop_job(job)

    async def _start_queued(
        self, queue: JobQueue, syms: list[str], schs: list[str], src: int, include_options: bool
    ) -> tuple[str, bool, int, str]:
        """StartCollection with replicas: one running job per source in ``collection_jobs`` (a
        narrower one is replaced by the union), queued for whichever replica reads it first."""
        kind = SOURCE_NAMES[src]
        for _ in range(QUEUE_START_TRIES):
            same = [r for r in await store.running_collection_jobs(self.pool) if r.kind == kind]
            for r in same:
                p = r.params
                covers = set(syms) <= set(p["symbols"]) and set(schs) <= set(p["schemas"])
                if covers and (p.get("include_options") or not include_options):
                    if queue.unowned(r):  # e.g. Redis lost the stream: queue it again (a duplicate never runs)
                        await queue.enqueue(r.job_id)
                    return r.job_id, False, src, f"already collecting {', '.join(p['symbols'])} ({kind})"
            merged_syms, merged_schs, merged_opts = list(syms), list(schs), include_options
            for r in same:
                merged_syms = list(dict.fromkeys([*r.params["symbols"], *merged_syms]))
                merged_schs = list(dict.fromkeys([*r.params["schemas"], *merged_schs]))
                merged_opts = merged_opts or bool(r.params.get("include_options"))
            job_id = str(ulid.ULID())
            params = {"symbols": merged_syms, "schemas": merged_schs, "include_options": merged_opts}
            replaced = [r.job_id for r in same]
            if not await store.insert_queued_job(self.pool, job_id, kind, params, replaced):
                continue  # another replica wrote a running job of this source meanwhile: look again
            if replaced:
                await queue.request_stop(replaced)
            await queue.enqueue(job_id)
            opts = " + options" if merged_opts else ""
            return job_id, True, src, f"collecting {', '.join(merged_syms)}{opts} [{', '.join(merged_schs)}] ({kind})"
        raise FailedPrecondition(f"{kind} collection jobs changed concurrently; try again", reason="CONFLICT")

    async def start_replay(self, files: Sequence[Path], speed: float) -> str:
        """Replay DBN ``files`` through the pipeline as a collection job (the ``aiots up --replay`` feed)."""
        async with self._lock:
            job_id = str(ulid.ULID())
            runner = ReplayRunner(self._pipeline(SOURCE_REPLAY), files, speed=speed)
            task = asyncio.create_task(self._run(job_id, runner), name=f"replay-{job_id}")
            self.jobs[job_id] = Job(job_id, SOURCE_REPLAY, list(self.settings.symbols), [], task, runner, True)
            await store.insert_job(self.pool, job_id, "replay", {"files": [str(f) for f in files], "speed": speed})
            return job_id

    async def seed_prev_closes(self, symbols: Sequence[str], now_ns: int | None = None) -> int:
        """Give the price book each symbol's previous session close from stored bars (how many found)."""
        if self.prices is None:
            return 0
        prev = cv.calendar().previous_close_ns(now_ns if now_ns is not None else time.time_ns())
        if prev is None:
            return 0
        found = 0
        for sym in symbols:
            px = await store.close_before(self.pool, sym, prev)
            if px is not None and px > 0:
                with contextlib.suppress(Exception):  # the cache is optional
                    await self.prices.set_prev_close(sym, px)
                    found += 1
        return found

    def _live_runner(self, symbols: list[str], schemas: list[str], include_options: bool) -> LiveGroup:
        """Equities session, plus an OPRA session (parent symbology ``<SYM>.OPT``) with options."""
        key = self.settings.databento_api_key.get_secret_value()  # type: ignore[union-attr]
        db_cfg = self.settings.databento
        cfg = self.settings.ingestion
        common: dict[str, Any] = {
            "key": key, "gateway": db_cfg.live_gateway, "port": db_cfg.live_port,
            "heartbeat_interval_s": db_cfg.heartbeat_interval_s, "max_batch": cfg.live_max_batch,
            "backoff_s": cfg.live_backoff_s, "max_backoff_s": cfg.live_max_backoff_s,
            "historical": lambda: historical_client(key, db_cfg.historical_gateway),
        }  # fmt: skip
        eq = LiveSource(
            self._pipeline(SOURCE_LIVE), dataset=db_cfg.equities_dataset, symbols=symbols, schemas=schemas, **common
        )
        sources = [eq]
        if include_options:
            opra_schemas = list(dict.fromkeys([*db_cfg.options_schemas, db_cfg.options_quote_schema]))
            opra = LiveSource(
                self._pipeline(SOURCE_LIVE), dataset=db_cfg.options_dataset, symbols=[f"{s}.OPT" for s in symbols],
                schemas=opra_schemas, stype_in="parent", **common,
            )  # fmt: skip
            sources.append(opra)
        return LiveGroup(sources)

    async def _run(self, job_id: str, runner: Any) -> None:
        status, error = "stopped", None
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status, error = "failed", str(exc)[:500]
            log.exception("collection job failed", extra={"job_id": job_id})
        job = self.jobs.get(job_id)
        if job is not None and job.detached:
            return
        with contextlib.suppress(Exception):
            await store.finish_job(self.pool, job_id, status, error)
            if self.queue is not None:
                await self.queue.done(job_id)

    async def _stop_job(self, job: Job) -> None:
        job.runner.stop()
        try:
            await asyncio.wait_for(asyncio.shield(job.task), 5.0)
        except (TimeoutError, Exception):
            job.task.cancel()
            with contextlib.suppress(BaseException):
                await job.task
        for pipe in getattr(job.runner, "pipelines", None) or [job.runner.pipeline]:
            with contextlib.suppress(Exception):
                await pipe.close_bars()
        self.jobs.pop(job.job_id, None)

    async def stop_collection(self, symbols: Sequence[str]) -> tuple[list[str], int]:
        """Stop jobs (all when ``symbols`` is empty; jobs keep collecting their other symbols).
        With replicas the shared jobs stop on whichever replica runs them."""
        syms = validate_symbols(self.settings, symbols) if symbols else []
        stopped: list[str] = []
        restart: list[tuple[list[str], list[str], int, bool]] = []
        if self.queue is not None:
            for r in await store.running_collection_jobs(self.pool):
                p = r.params
                if syms and not set(syms) & set(p["symbols"]):
                    continue
                stopped.append(r.job_id)
                rest = [s for s in p["symbols"] if s not in syms] if syms else []
                if rest:
                    restart.append((rest, list(p["schemas"]), SOURCE_IDS[r.kind], bool(p.get("include_options"))))
            await self.queue.request_stop(stopped)
        ids, flushed = await self._stop_local(syms, restart)
        return stopped + ids, flushed

    async def _stop_local(
        self, syms: list[str], restart: list[tuple[list[str], list[str], int, bool]] | None = None
    ) -> tuple[list[str], int]:
        """Stop this process's own jobs (all of them without Redis; else a replay) for ``syms``."""
        stopped: list[str] = []
        restart = restart if restart is not None else []
        async with self._lock:
            for job in list(self.jobs.values()):
                if syms and not set(syms) & set(job.symbols):
                    continue
                if self.queue is not None and job.job_id in self.queue.entries:
                    continue
                await self._stop_job(job)
                stopped.append(job.job_id)
                rest = [s for s in job.symbols if s not in syms] if syms else []
                if rest:
                    restart.append((rest, job.schemas, job.source, job.include_options))
        before = self.writer.stats.put_records
        await self.writer.flush()
        for rest, schemas, src, opts in restart:
            await self.start_collection(rest, schemas, src, opts)
        return stopped, before - self.writer.pending_records if before else 0

    def feed_status(self) -> Status:
        """:meth:`status` for the feed-freshness probe: a simulator replaying the last session or
        waiting for the next one is quiet by design (its event times are not wall time), not stale."""
        st = self.status()
        if st.market_clock is not None and st.market_clock.mode != "live":
            return replace(st, running=False)
        return st

    async def cluster_status(self) -> Status:
        """:meth:`status` of this replica plus the shared jobs other replicas run (from
        ``collection_jobs``: their streams are listed without this replica's counters)."""
        st = self.status()
        if self.queue is None:
            return st
        rows = await store.running_collection_jobs(self.pool)
        extra = [
            StreamState(sym, sch, 0, 0, 0, SOURCE_IDS[r.kind])
            for r in rows
            if r.job_id not in self.jobs
            for sym in r.params["symbols"]
            for sch in r.params["schemas"]
        ]
        return replace(st, running=st.running or bool(rows), streams=[*st.streams, *extra])

    def status(self) -> Status:
        streams: list[StreamState] = []
        dq = 0
        clock: ClockStatus | None = None
        for job in self.jobs.values():
            norms: list[Normalizer] = []
            if isinstance(job.runner, SimulatorSource):
                norms = [job.runner.norm]
                clock = job.runner.clock_status()
            elif isinstance(job.runner, LiveSource | LiveGroup):
                norms = job.runner.normalizers
            agg: dict[tuple[str, str], list[int]] = {}
            for n in norms:
                dq += n.counters.data_quality
                for key, (cnt, last) in n.counters.per_stream.items():
                    a = agg.setdefault(key, [0, 0, 0])
                    a[0] += cnt
                    a[1] = max(a[1], last)
                    a[2] += n.counters.errors
            streams += [StreamState(k[0], k[1], v[0], v[1], v[2], job.source) for k, v in sorted(agg.items())]
        return Status(
            running=bool(self.jobs),
            streams=streams,
            pending_records=self.writer.pending_records,
            spilled_records=self.writer.stats.spilled_records,
            data_quality_events=dq,
            market_clock=clock,
        )

    async def backfill(
        self,
        symbols: Sequence[str],
        schemas: Sequence[str],
        start: dt.datetime,
        end: dt.datetime,
        dataset: str = "",
        max_cost_usd: float = 0.0,
        resume_job_id: str = "",
    ) -> AsyncIterator[BackfillProgress]:
        syms = validate_symbols(self.settings, symbols)
        schs = validate_schemas(schemas)
        if end <= start:
            raise InvalidArgument("end", f"end {end.isoformat()} must be after start {start.isoformat()}")
        if self.settings.databento_api_key is None:
            raise FailedPrecondition("backfill needs DATABENTO_API_KEY (Databento Historical)", reason="NO_API_KEY")
        key = self.settings.databento_api_key.get_secret_value()
        client = await asyncio.to_thread(historical_client, key, self.settings.databento.historical_gateway)
        async for p in backfill(
            client=client, pool=self.pool, pipeline=self._pipeline(SOURCE_HISTORICAL), writer=self.writer,
            dataset=dataset or self.settings.databento.equities_dataset, symbols=syms, schemas=schs, start=start,
            end=end, max_cost_usd=max_cost_usd or self.settings.databento.max_cost_usd, resume_job_id=resume_job_id,
        ):  # fmt: skip
            yield p
