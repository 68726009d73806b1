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
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aiots.services.ingestion.normalize import SOURCE_LIVE, Batch, Normalizer
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.historical import fetch_into

log = logging.getLogger(__name__)

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000


class LiveAuthError(RuntimeError):
    """The gateway refused the API key (not retried)."""


def market_open(now: dt.datetime | None = None) -> bool:
    """US equities extended session (04:00-20:00 ET, Monday-Friday)."""
    t = (now or dt.datetime.now(dt.UTC)).astimezone(NY)
    return t.weekday() < 5 and dt.time(4, 0) <= t.time() < dt.time(20, 0)


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
        gateway: str | None = None,
        port: int | None = None,
        heartbeat_interval_s: int = 30,
        historical: Callable[[], Any] | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        flush_records: int = 1000,
        flush_interval_s: float = 0.05,
        is_market_open: Callable[[], bool] = market_open,
        silence_s: float | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.key = key
        self.dataset = dataset
        self.symbols = list(symbols)
        self.schemas = list(schemas)
        self.gateway = gateway
        self.port = port
        self.heartbeat_interval_s = heartbeat_interval_s
        self.silence_s = silence_s if silence_s is not None else heartbeat_interval_s * 2.0
        self.historical = historical
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.flush_records = flush_records
        self.flush_interval_s = flush_interval_s
        self.is_market_open = is_market_open
        self.stats = LiveStats()
        self.last_ts = 0
        self._stop = asyncio.Event()
        self._client: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self._stop.set()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.terminate()

    def _new_client(self) -> Any:
        import databento as db

        kw: dict[str, Any] = {"key": self.key, "heartbeat_interval_s": self.heartbeat_interval_s}
        if self.gateway:
            kw["gateway"] = self.gateway
        if self.port:
            kw["port"] = self.port
        client = db.Live(**kw)
        for schema in self.schemas:
            client.subscribe(dataset=self.dataset, schema=schema, symbols=self.symbols, stype_in="raw_symbol")
        return client

    async def run(self) -> None:
        """Sessions with reconnect/backoff and gap backfill until :meth:`stop` or an auth failure."""
        backoff = self.backoff_s
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

    _gap_pending = False

    async def _session(self) -> bool:
        """One session; True when it ended with a clean EOF, raises on abrupt loss."""
        try:
            client = await asyncio.to_thread(self._new_client)
        except Exception as exc:
            msg = str(exc)
            if "auth" in msg.lower() or "key" in msg.lower():
                raise LiveAuthError(f"Databento Live refused authentication: {msg}") from exc
            raise
        self._client = client
        self.stats.sessions += 1
        norm = Normalizer(SOURCE_LIVE, self.dataset)
        self.stats.normalizers.append(norm)
        gap_from = self.last_ts if self._gap_pending and self.last_ts else 0
        self._gap_pending = False
        buf: list[Any] = []
        it = client.__aiter__()
        loop = asyncio.get_running_loop()
        last_flush = loop.time()
        first_ts = 0
        try:
            while not self._stop.is_set():
                try:
                    rec = await asyncio.wait_for(it.__anext__(), self.silence_s)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    self.stats.silent_alerts += 1
                    b = Batch()
                    b.rows["data_quality_events"].append(
                        ("live", "feed_silent", None, None, f"no record for {self.silence_s}s; reconnecting")
                    )
                    await self.pipeline.process(b)
                    raise ConnectionError(f"live feed silent for {self.silence_s}s") from None
                buf.append(rec)
                ts = int(getattr(rec, "ts_event", 0) or 0)
                if 0 < ts < 2**63 and getattr(rec, "rtype", None) not in (22, 23):
                    if not first_ts:
                        first_ts = ts
                    self.last_ts = max(self.last_ts, ts)
                if len(buf) >= self.flush_records or loop.time() - last_flush >= self.flush_interval_s:
                    await self._flush(norm, buf)
                    buf = []
                    last_flush = loop.time()
                if gap_from and first_ts:
                    self._tasks.add(t := asyncio.create_task(self._backfill_gap(gap_from, first_ts)))
                    t.add_done_callback(self._tasks.discard)
                    gap_from = 0
        finally:
            await self._flush(norm, buf)  # what arrived before a drop is kept
            self._client = None
            with contextlib.suppress(Exception):
                client.terminate()
        return True

    async def _flush(self, norm: Normalizer, buf: list[Any]) -> None:
        if not buf:
            return
        self.stats.records += len(buf)
        await self.pipeline.process(norm.records(buf))

    async def _backfill_gap(self, start_ns: int, end_ns: int) -> None:
        """Fetch [start_ns, end_ns) for every schema through Historical (dedup by the writer)."""
        if self.historical is None or end_ns <= start_ns:
            return
        try:
            client = self.historical()
            for schema in self.schemas:
                n = await fetch_into(
                    client, self.pipeline, dataset=self.dataset, schema=schema, symbols=self.symbols,
                    start=start_ns, end=end_ns, source=SOURCE_LIVE,
                )  # fmt: skip
                self.stats.gap_records += n
            self.stats.gap_backfills += 1
        except Exception:
            log.exception("gap backfill failed", extra={"start_ns": start_ns, "end_ns": end_ns})
