"""Work taken off a burst: items queued while the event loop runs a burst that never waits (a bar
close's symbols, evaluated one after another) and sent, in order, by a task of their own, which runs
when the loop next waits.

Used for the bus events of a bar close (the features analytics publishes, the new signals each
replica broadcasts) and of a live feed's decoded batches (the ingestion pipeline). The burst then
serialises nothing for the bus and awaits no Redis round trip, and the queue goes out in one call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class AfterBurst(Generic[T]):
    """Items handed to ``send`` (as one list, in the order put) when the loop next waits.

    Until :meth:`start`, and after :meth:`stop`, :meth:`put` sends at once. A queue that reaches
    ``limit`` items is sent by the caller of :meth:`put` itself (back-pressure on the burst; None:
    never, the queue is unbounded). :meth:`flush` sends what is queued now, after any send in
    progress, so whatever a caller sends next goes after it. A ``send`` that raises is logged; its
    items are dropped.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[None]], limit: int | None, name: str) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._send = send
        self.limit = limit
        self.name = name
        self._items: list[T] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one send at a time: the receiver sees the order put
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        return len(self._items)

    @property
    def running(self) -> bool:
        """The sending task runs (between :meth:`start` and :meth:`stop`)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the sending task (on the running loop)."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def put(self, items: Sequence[T]) -> None:
        """Queue ``items`` for the task; send now without one running, or when the queue is full."""
        if not items:
            return
        self._items.extend(items)
        task = self._task
        if task is None or task.done() or (self.limit is not None and len(self._items) >= self.limit):
            await self.flush()
        else:
            self._wake.set()

    async def flush(self) -> None:
        """Send what is queued (after a send in progress)."""
        async with self._lock:
            items, self._items = self._items, []
            if not items:
                return
            try:
                await self._send(items)
            except Exception:
                log.exception("%s: %d items not sent", self.name, len(items))

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            if self._stopping:
                return

    async def stop(self, timeout_s: float | None) -> None:
        """Let the task send what is queued (at most ``timeout_s``, then it is cancelled; None: as long
        as it takes, never cancelled, as a Redis command cancelled mid-flight leaves its connection
        unusable), then send anything left here."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()
            _done, pending = await asyncio.wait({task}, timeout=timeout_s)
            for t in pending:
                log.warning("%s: the sending task did not stop in %.1f s; cancelled", self.name, timeout_s)
                t.cancel()
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.warning("%s: %d items not sent at stop", self.name, len(self._items))
