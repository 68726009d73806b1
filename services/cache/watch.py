"""The WatchPrices fan-out: one bus listener per process, a bounded queue per subscriber.

Price changes arrive as ``StockPrice`` bytes on ``CacheSettings.price_channel`` (written by the
:class:`~aiots.services.cache.prices.PriceBook` of whichever replica got the tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiots.services.cache.prices import PriceSnapshot
from aiots.services.common.errors import Unavailable

log = logging.getLogger(__name__)


class PriceWatcher:
    """One subscriber: a bounded queue of snapshots (drops the oldest when full)."""

    def __init__(self, hub: PriceWatchHub, symbols: frozenset[str], maxsize: int) -> None:
        self.hub = hub
        self.symbols = symbols
        self.queue: asyncio.Queue[PriceSnapshot] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, snap: PriceSnapshot) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(snap)

    async def next(self, timeout_s: float) -> PriceSnapshot | None:
        """The next change, or None after ``timeout_s`` idle (time for a heartbeat)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.hub._remove(self)


class PriceWatchHub:
    """One bus listener per process fanning price changes out to :class:`PriceWatcher` queues."""

    def __init__(
        self, bus: Any, channel: str, queue_size: int, decode: Callable[[bytes], PriceSnapshot] | None = None
    ) -> None:
        if decode is None:
            from aiots.services.cache import convert

            decode = convert.price_from_bytes
        self.bus = bus
        self.channel = channel
        self.queue_size = queue_size
        self._decode = decode
        self._watchers: dict[str, set[PriceWatcher]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None
        self.received = 0

    async def start(self) -> None:
        """Subscribe to the channel now and start fanning out."""
        self._sub = self.bus.listen(self.channel)
        start = getattr(self._sub, "start", None)
        if start is not None:
            with contextlib.suppress(Unavailable):  # the listener retries by itself
                await start()
        self._task = asyncio.create_task(self._run(self._sub), name=f"price-watch-{self.channel}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """WatchPrices streams would go quiet without a word: say why the fan-out stopped."""
        if not task.cancelled() and task.exception() is not None:
            log.error("price watch fan-out on %s stopped", self.channel, exc_info=task.exception())

    async def _run(self, sub: AsyncIterator[bytes]) -> None:
        async for payload in sub:
            try:
                snap = self._decode(payload)
            except Exception:
                log.warning("undecodable payload on %s (%d bytes) skipped", self.channel, len(payload))
                continue
            self.received += 1
            for w in self._watchers.get(snap.symbol, ()):
                w.offer(snap)

    def subscribe(self, symbols: Sequence[str]) -> PriceWatcher:
        w = PriceWatcher(self, frozenset(symbols), self.queue_size)
        for s in w.symbols:
            self._watchers.setdefault(s, set()).add(w)
        return w

    def _remove(self, w: PriceWatcher) -> None:
        for s in w.symbols:
            subs = self._watchers.get(s)
            if subs is not None:
                subs.discard(w)
                if not subs:
                    del self._watchers[s]

    @property
    def subscribers(self) -> int:
        return len({w for ws in self._watchers.values() for w in ws})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # an exception was logged by _ended
                await self._task
        if self._sub is not None:
            aclose = getattr(self._sub, "aclose", None)
            if aclose is not None:
                await aclose()
