"""Collection jobs shared by ingestion replicas through a Redis Streams consumer group.

With the Redis bus, a live/simulator collection job is a row of ``collection_jobs`` (params, status,
owner, heartbeat) plus one entry (its job id) on the stream ``<ns>:v1:ingestion:jobs:collect``,
read by every replica in the group ``ingestion-collectors``:

- ``StartCollection`` (any replica, and autostart) writes the row and XADDs the entry; the replica
  whose XREADGROUP gets it records itself as owner and runs the job. The entry stays pending
  (unacknowledged) while the job runs: the pending entry *is* the claim.
- Every ``ingestion.job_heartbeat_s`` the owner refreshes the row's heartbeat and renews its claim
  with ``XCLAIM <stream> <group> <me> 0 <id> JUSTID`` (XCLAIM resets the entry's idle time; JUSTID
  leaves the delivery count alone), so a live replica's job is never idle long enough to be taken.
- A replica that dies (SIGKILL) stops renewing. The bus consumer's periodic ``XAUTOCLAIM`` (the
  same loop every consumer group uses, :meth:`RedisStreamsBus.consume`), run here with
  ``min-idle-time = ingestion.job_claim_idle_s``, hands the entry to a survivor, which takes the row
  over (``store.claim_job`` only takes a job whose heartbeat is stale, so a duplicate entry never
  runs a job twice) and starts it again.
- ``StopCollection`` (any replica) marks the rows stopped and broadcasts each job id on the pub/sub
  channel ``ingestion:control``; the owner stops the job and XACKs its entry. An owner that missed
  the broadcast sees the stopped row at its next heartbeat.
- A replica stopping gracefully hands its jobs over at once: it clears the owner, XADDs the job id
  again and XACKs its entry, so another replica (or the next start) resumes it without waiting.

Everything that decides who runs what is Redis's (consumer group, pending entries, XCLAIM,
XAUTOCLAIM) or PostgreSQL's (a conditional UPDATE, a partial unique index); nothing home-made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiots.services.bus.base import Delivery, stream_name
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.errors import Unavailable
from aiots.services.common.settings import IngestionSettings
from aiots.services.ingestion import store
from aiots.services.ingestion.store import JobRow

log = logging.getLogger(__name__)

JOBS_TOPIC = "ingestion:jobs"  # topics.INGESTION_JOBS, a literal for the catalogue check
JOBS_KEY = "collect"
JOBS_GROUP = "ingestion-collectors"
CONTROL_CHANNEL = "ingestion:control"
#: jobs a replica takes per read (one: the others stay in the stream for the other replicas)
JOBS_PER_READ = 1
MS_PER_S = 1000

Launch = Callable[[str, JobRow], Awaitable[None]]
Halt = Callable[[str], Awaitable[None]]


def replica_id() -> str:
    """This process's consumer name: host, pid and a random suffix (a restart is a new consumer)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobQueue:
    """This replica's member of the collectors group (see the module docstring)."""

    def __init__(self, bus: RedisStreamsBus, pool: Any, cfg: IngestionSettings, launch: Launch, halt: Halt) -> None:
        # A bus of its own: the jobs group reclaims after job_claim_idle_s (the event groups use the
        # bus's claim_idle_ms), reads one entry at a time, and keeps a separate outbox directory.
        jobs_cfg = bus.cfg.model_copy(
            update={
                "claim_idle_ms": int(cfg.job_claim_idle_s * MS_PER_S),
                "claim_interval_s": cfg.job_heartbeat_s,
                "read_batch": JOBS_PER_READ,
                "outbox_dir": Path(bus.cfg.outbox_dir) / "ingestion-jobs",
            }
        )
        self.bus = RedisStreamsBus(bus.url, jobs_cfg)
        self.pool = pool
        self.cfg = cfg
        self.owner = replica_id()
        self.stream = stream_name(self.bus.namespace, JOBS_TOPIC, JOBS_KEY)
        self.entries: dict[str, Delivery] = {}  # job id -> the pending entry this replica holds
        self._launch = launch
        self._halt = halt
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Start reading (the group is created from the stream's start, so jobs queued before any
        replica ran are read). Redis being away delays the reads; it does not fail the start."""
        sub = self.bus.listen(CONTROL_CHANNEL)
        with contextlib.suppress(Unavailable):  # the subscription retries by itself
            await sub.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="ingestion-jobs-consume"),
            asyncio.create_task(self._heartbeats(), name="ingestion-jobs-heartbeat"),
            asyncio.create_task(self._control(sub), name="ingestion-jobs-control"),
        ]
        log.info("ingestion job queue started", extra={"consumer": self.owner, "stream": self.stream})

    async def close(self, handover: bool = True) -> None:
        """Stop reading; with ``handover`` the jobs this replica runs are given back first."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if handover:
            for job_id in list(self.entries):
                with contextlib.suppress(Exception):
                    await self.hand_over(job_id)
        await self.bus.close()

    # --- producing -----------------------------------------------------------------------

    def unowned(self, row: JobRow) -> bool:
        """No live replica runs ``row`` (no owner, or its heartbeat is older than the claim idle time)."""
        age = row.heartbeat_age_s
        return row.owner is None or age is None or age > self.cfg.job_claim_idle_s

    async def enqueue(self, job_id: str) -> None:
        """XADD the job id (the row is written first: a reader always finds it)."""
        await self.bus.publish(JOBS_TOPIC, JOBS_KEY, job_id.encode())

    async def request_stop(self, job_ids: list[str]) -> None:
        """Rows stopped, then every replica hears each id (the owner stops and acknowledges it)."""
        await store.stop_jobs(self.pool, job_ids)
        for job_id in job_ids:
            if job_id in self.entries:
                async with self._lock:
                    await self.finish(job_id)
            else:
                with contextlib.suppress(Exception):  # the owner also sees the row at its heartbeat
                    await self.bus.broadcast_bytes(CONTROL_CHANNEL, job_id.encode())

    # --- the owner's side -------------------------------------------------------------------

    async def _release(self, d: Delivery) -> None:
        """XACK this replica's entry now (the claim ends with it)."""
        await self.bus.ack(d, group=JOBS_GROUP)
        await self.bus.flush()

    async def finish(self, job_id: str) -> None:
        """The job ended here (stopped, failed or done): stop it if it runs, XACK its entry."""
        d = self.entries.pop(job_id, None)
        if d is None:
            return
        await self._halt(job_id)
        await self._release(d)

    async def done(self, job_id: str) -> None:
        """The job's runner ended by itself here (its row is written): XACK its entry."""
        d = self.entries.pop(job_id, None)
        if d is not None:
            await self._release(d)

    async def hand_over(self, job_id: str) -> None:
        """Give a running job back: owner cleared, the id queued again, this entry acknowledged."""
        d = self.entries.pop(job_id, None)
        if d is None:
            return
        await self._halt(job_id)
        await store.release_job(self.pool, job_id, self.owner)
        await self.enqueue(job_id)
        await self._release(d)

    async def _take(self, d: Delivery) -> None:
        job_id = d.payload.decode(errors="replace")
        async with self._lock:
            held = self.entries.get(job_id)
            if held is not None:
                if held.message_id != d.message_id:  # a second entry of a job running here
                    await self.bus.ack(d, group=JOBS_GROUP)
                return
            row = await store.get_job(self.pool, job_id)
            if row is None or row.status != "running" or row.kind not in store.COLLECTION_KINDS:
                await self.bus.ack(d, group=JOBS_GROUP)  # stopped meanwhile (or not a collection)
                return
            stale_s = self.cfg.job_claim_idle_s - self.cfg.job_heartbeat_s
            if not await store.claim_job(self.pool, job_id, self.owner, stale_s):
                await self.bus.ack(d, group=JOBS_GROUP)  # a live replica runs it: a duplicate entry
                return
            if row.owner not in (None, self.owner):
                log.warning("taking over collection job %s from %s", job_id, row.owner, extra={"job_id": job_id})
            self.entries[job_id] = d
            try:
                await self._launch(job_id, row)
            except Exception as exc:
                log.exception("collection job could not start", extra={"job_id": job_id})
                self.entries.pop(job_id, None)
                await store.finish_job(self.pool, job_id, "failed", str(exc)[:500])
                await self.bus.ack(d, group=JOBS_GROUP)

    async def _consume(self) -> None:
        while True:
            try:
                jobs = self.bus.consume(JOBS_TOPIC, [JOBS_KEY], group=JOBS_GROUP, consumer=self.owner, start="0")
                async for d in jobs:
                    try:
                        await self._take(d)
                    except Exception:  # PostgreSQL away: the entry stays pending and is read again
                        log.exception("could not take collection job entry %s", d.message_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingestion job consumer failed; restarting it")
                await asyncio.sleep(self.cfg.job_heartbeat_s)

    async def renew(self) -> None:
        """One heartbeat: rows still owned get a fresh heartbeat and their entries a fresh claim;
        jobs stopped or taken meanwhile are halted (a stopped one is acknowledged)."""
        async with self._lock:
            ids = list(self.entries)
            if not ids:
                return
            owned = await store.heartbeat_jobs(self.pool, ids, self.owner)
            mids = [self.entries[j].message_id for j in ids if j in owned]
            if mids:
                await self.bus.redis.xclaim(self.stream, JOBS_GROUP, self.owner, 0, mids, justid=True)
            for job_id in [j for j in ids if j not in owned]:
                row = await store.get_job(self.pool, job_id)
                if row is not None and row.status != "running":
                    await self.finish(job_id)
                else:  # another replica took it (this one was frozen past the idle time)
                    log.warning("collection job %s was taken over; stopping it here", job_id)
                    self.entries.pop(job_id, None)
                    await self._halt(job_id)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.job_heartbeat_s)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis or PostgreSQL away: the next beat tries again
                log.exception("collection job heartbeat failed; retrying")

    async def _control(self, sub: Any) -> None:
        async for payload in sub:
            job_id = payload.decode(errors="replace")
            if job_id in self.entries:
                try:
                    async with self._lock:
                        await self.finish(job_id)
                except Exception:
                    log.exception("could not stop collection job %s", job_id)
