"""Live collection with the official ``databento.Live`` client.

One session = connect, authenticate, subscribe (symbols x schemas), iterate records. Records
carry instrument ids valid for that session only, so every session starts a fresh
:class:`Normalizer` (ids remapped from the new session's ``SymbolMappingMsg``).

Reconnects: on an abrupt loss (reset, gateway timeout) and on a *clean EOF* while the market is
open (the client treats EOF as a graceful end, databento-python #86), the source reconnects with
exponential backoff, then backfills the gap through Historical from the last ts_event it
received (inclusive: the writer's ON CONFLICT DO NOTHING drops what is already stored).
Authentication failures are fatal (a clear error, no retry storm). A heartbeat watchdog turns a
silent feed (no record, not even a heartbeat, for ``silence_s``) into a data-quality alert and a
reconnect instead of a hang.

Latency: records come through the client's record *callback* (its reader thread appends them to an
inbox and wakes the event loop once per burst), not its async iterator, whose per-record queue
and await cost ~3x the CPU (the iterator tops out near 50k records/s on this machine, the callback
near 140k). The loop takes everything in the inbox as one batch (at most ``max_batch`` records
per normalise call) and publishes it at once: a record waits for the records decoded with it,
never for a timer, and never for storage (the pipeline publishes before it stores, and hands
batches to the writer from a feeder task: :meth:`Pipeline.detach_writer`). Options
(``include_options``) are a second session on OPRA with parent
symbology (``AAPL.OPT``, ``stype_in="parent"``); :class:`LiveGroup` runs both as one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import databento_dbn as dbn

from aiots.core import conventions as cv
from aiots.services.common.gc_tuning import freeze_startup_heap
from aiots.services.ingestion.normalize import SOURCE_LIVE, UNDEF_TS, Batch, Normalizer
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.historical import fetch_into

log = logging.getLogger(__name__)


class LiveAuthError(RuntimeError):
    """The gateway refused the API key (not retried)."""


def market_open(now: dt.datetime | None = None) -> bool:
    """Inside an NYSE session's extended hours (04:00-20:00 ET on session days; holidays closed)."""
    return cv.calendar().phase(cv.datetime_to_ns(now or dt.datetime.now(cv.UTC))) != "closed"


@dataclass
class LiveStats:
    """Counters for status and tests."""

    sessions: int = 0
    reconnects: int = 0
    records: int = 0
    gap_backfills: int = 0
    gap_records: int = 0
    silent_alerts: int = 0
    last_error: str = ""
    normalizers: list[Normalizer] = field(default_factory=list)


class _Inbox:
    """Records handed over by the client's reader thread; the event loop is woken once per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self._buf: list[Any] = []
        self._lock = threading.Lock()
        self._armed = True

    def put(self, record: Any) -> None:
        """Client thread: keep the record; wake the loop if it is not already woken."""
        with self._lock:
            self._buf.append(record)
            wake, self._armed = self._armed, False
        if wake:
            self.loop.call_soon_threadsafe(self.event.set)

    def wake(self) -> None:
        self.event.set()

    def take(self) -> list[Any]:
        """Event loop: everything received so far (re-arms the wake-up)."""
        with self._lock:
            buf, self._buf = self._buf, []
            self._armed = True
            self.event.clear()
        return buf


class LiveSource:
    """Collects symbols x schemas from one dataset until stopped."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        key: str,
        dataset: str,
        symbols: Sequence[str],
        schemas: Sequence[str],
        stype_in: str = "raw_symbol",
        gateway: str | None = None,
        port: int | None = None,
        heartbeat_interval_s: int = 30,
        historical: Callable[[], Any] | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_batch: int = 256,
        is_market_open: Callable[[], bool] = market_open,
        silence_s: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.key = key
        self.dataset = dataset
        self.symbols = list(symbols)
        self.schemas = list(schemas)
        self.stype_in = stype_in
        self.gateway = gateway
        self.port = port
        self.heartbeat_interval_s = heartbeat_interval_s
        self.silence_s = silence_s if silence_s is not None else heartbeat_interval_s * 2.0
        self.historical = historical
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_batch = max_batch
        self.is_market_open = is_market_open
        self.stats = LiveStats()
        self.last_ts = 0
        self._stop = asyncio.Event()
        self._client: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._gap_pending = False
        self._silent = False
        self._last_rx = 0.0

    @property
    def pipelines(self) -> list[Pipeline]:
        return [self.pipeline]

    @property
    def normalizers(self) -> list[Normalizer]:
        return self.stats.normalizers

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.terminate()

    def _new_client(self, on_record: Callable[[Any], None]) -> Any:
        """Connect, authenticate, subscribe, register the record callback and start the session (blocking)."""
        import databento as db

        kw: dict[str, Any] = {"key": self.key, "heartbeat_interval_s": self.heartbeat_interval_s}
        if self.gateway:
            kw["gateway"] = self.gateway
        if self.port:
            kw["port"] = self.port
        client = db.Live(**kw)
        for schema in self.schemas:
            client.subscribe(dataset=self.dataset, schema=schema, symbols=self.symbols, stype_in=self.stype_in)
        client.add_callback(on_record)
        client.start()
        return client

    async def run(self) -> None:
        """Sessions with reconnect/backoff and gap backfill until :meth:`stop` or an auth failure."""
        backoff = self.backoff_s
        freeze_startup_heap()
        self.pipeline.detach_writer()  # the exchange can't be slowed: storage never delays the bus
        try:
            while not self._stop.is_set():
                try:
                    clean = await self._session()
                    backoff = self.backoff_s
                    if self._stop.is_set() or (clean and not self.is_market_open()):
                        return
                    log.warning("live feed ended cleanly during market hours; reconnecting")
                except LiveAuthError:
                    raise
                except Exception as exc:
                    self.stats.last_error = repr(exc)
                    log.warning("live session lost; reconnecting", extra={"error": repr(exc)})
                self.stats.reconnects += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                self._gap_pending = True
        finally:
            for t in list(self._tasks):
                t.cancel()
            await self.pipeline.attach_writer()  # what was decoded reaches the writer

    async def _watchdog(self, client: Any) -> None:
        """Terminate a session that received nothing (not even a heartbeat) for ``silence_s``."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(self.silence_s / 4, 0.01))
            if loop.time() - self._last_rx > self.silence_s:
                self._silent = True
                with contextlib.suppress(Exception):
                    client.terminate()
                return

    async def _silence_alert(self) -> None:
        self.stats.silent_alerts += 1
        b = Batch()
        b.rows["data_quality_events"].append(
            ("live", "feed_silent", None, None, f"{self.dataset}: no record for {self.silence_s}s; reconnecting")
        )
        await self.pipeline.process(b)
        raise ConnectionError(f"live feed {self.dataset} silent for {self.silence_s}s")

    async def _session(self) -> bool:
        """One session; True when it ended with a clean EOF, raises on abrupt loss."""
        loop = asyncio.get_running_loop()
        inbox = _Inbox(loop)
        try:
            client = await asyncio.to_thread(self._new_client, inbox.put)
        except Exception as exc:
            msg = str(exc)
            if "auth" in msg.lower() or "key" in msg.lower():
                raise LiveAuthError(f"Databento Live refused authentication: {msg}") from exc
            raise
        self._client = client
        self.stats.sessions += 1
        norm = Normalizer(SOURCE_LIVE, self.dataset)
        self.stats.normalizers.append(norm)
        self._gap_from = self.last_ts if self._gap_pending and self.last_ts else 0
        self._first_ts = 0
        self._gap_pending = False
        closed = asyncio.ensure_future(client.wait_for_close())
        closed.add_done_callback(lambda _: inbox.wake())
        self._last_rx = loop.time()
        self._silent = False
        watchdog = asyncio.create_task(self._watchdog(client))
        max_batch = self.max_batch
        try:
            while True:
                await inbox.event.wait()
                recs = inbox.take()
                if recs:
                    self._last_rx = loop.time()
                    for i in range(0, len(recs), max_batch):
                        await self._flush(norm, recs[i : i + max_batch])
                        await asyncio.sleep(0)  # in-process consumers and the writer feeder get a turn
                    if closed.done() or self._stop.is_set():
                        inbox.wake()  # take() may have consumed the close's wake-up: look once more
                elif closed.done() or self._stop.is_set():
                    break
            lost = closed.exception()
            if self._silent and not self._stop.is_set():
                await self._silence_alert()
            if lost is not None and not self._stop.is_set():
                raise lost
        finally:
            watchdog.cancel()
            if not closed.done():
                closed.cancel()
            with contextlib.suppress(BaseException):
                await closed
            await self._flush(norm, inbox.take())  # what arrived before a drop is kept
            self._client = None
            with contextlib.suppress(Exception):
                client.terminate()
        return True

    _gap_from = 0
    _first_ts = 0

    def _track(self, buf: list[Any]) -> None:
        """First/last ts_event of market records (mappings and system messages excluded)."""
        skip = (dbn.SymbolMappingMsg, dbn.SystemMsg)
        if not self._first_ts:
            for r in buf:
                if not isinstance(r, skip) and 0 < r.ts_event < UNDEF_TS:
                    self._first_ts = int(r.ts_event)
                    break
        for r in reversed(buf):
            if not isinstance(r, skip) and 0 < r.ts_event < UNDEF_TS:
                self.last_ts = max(self.last_ts, int(r.ts_event))
                break

    async def _flush(self, norm: Normalizer, buf: list[Any]) -> None:
        if not buf:
            return
        self.stats.records += len(buf)
        self._track(buf)
        await self.pipeline.process(norm.records(buf))
        if self._gap_from and self._first_ts:
            seed = dict(norm.id_map)
            t = asyncio.create_task(self._backfill_gap(self._gap_from, self._first_ts, seed))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
            self._gap_from = 0

    async def _backfill_gap(self, start_ns: int, end_ns: int, id_map: dict[int, str] | None = None) -> None:
        """Fetch [start_ns, end_ns) for every schema through Historical (dedup by the writer)."""
        if self.historical is None or end_ns <= start_ns:
            return
        try:
            client = self.historical()
            for schema in self.schemas:
                n = await fetch_into(
                    client, self.pipeline, dataset=self.dataset, schema=schema, symbols=self.symbols,
                    start=start_ns, end=end_ns, source=SOURCE_LIVE, stype_in=self.stype_in, id_map=id_map,
                )  # fmt: skip
                self.stats.gap_records += n
            self.stats.gap_backfills += 1
        except Exception:
            log.exception("gap backfill failed", extra={"start_ns": start_ns, "end_ns": end_ns})


class LiveGroup:
    """Several Live sessions (equities, and OPRA for ``include_options``) run and stopped as one job."""

    def __init__(self, sources: Sequence[LiveSource]) -> None:
        self.sources = list(sources)

    @property
    def pipelines(self) -> list[Pipeline]:
        return [s.pipeline for s in self.sources]

    @property
    def normalizers(self) -> list[Normalizer]:
        return [n for s in self.sources for n in s.stats.normalizers]

    def stop(self) -> None:
        for s in self.sources:
            s.stop()

    async def run(self) -> None:
        """All sessions until stopped; one failing (e.g. authentication) stops the others."""
        try:
            async with asyncio.TaskGroup() as tg:
                for s in self.sources:
                    tg.create_task(s.run(), name=f"live-{s.dataset}")
        except BaseExceptionGroup as eg:
            self.stop()
            raise eg.exceptions[0] from None
