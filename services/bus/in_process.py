"""In-process bus for the embedded mode (one asyncio process, no Redis).

It mirrors the Redis Streams semantics of :mod:`aiots.services.bus.redis_streams` so code written
against one works against the other:

- each stream (topic + key) is a bounded log (``RedisSettings.stream_maxlen`` newest entries);
- a consumer group has a last-delivered position and a pending-entries list (PEL); messages are
  handed out batch by batch (``read_batch``) to the group's live consumers and stay pending until
  acked;
- recovery: pending entries of a consumer whose ``consume`` iterator has ended (closed, garbage
  collected, task cancelled) are redelivered at once to another live consumer of the group, and
  entries pending longer than ``claim_idle_ms`` are reclaimed like ``XAUTOCLAIM`` does (a stuck
  consumer);
- order: see :mod:`aiots.services.bus.base` (total order per stream; per-key processing order
  when one consumer of the group reads the key);
- broadcast/listen: fan-out to every live listener through a bounded queue per listener (drops
  the oldest payload when a listener falls ``listen_queue_size`` behind: fire-and-forget).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from aiots.services.bus.base import Delivery, stream_name
from aiots.services.common.errors import FailedPrecondition, InvalidArgument
from aiots.services.common.ports import Event, event_bytes
from aiots.services.common.settings import RedisSettings

log = logging.getLogger(__name__)

#: ``Delivery(...)`` minus the namedtuple's Python-level ``__new__`` (one per message handed out).
_new_delivery = cast(Callable[[type[Delivery], tuple[str, str, str, bytes]], Delivery], tuple.__new__)

#: A stored entry: (stream, message id, key, payload). A plain tuple of strings and bytes, not a
#: ``Delivery``: the garbage collector stops tracking such tuples after their first collection,
#: while a namedtuple stays tracked, and a full collection over a log of ``stream_maxlen`` entries
#: per stream stalled the loop for 100-200 ms (bench/ingest.py latency).
_Entry = tuple[str, str, str, bytes]


class _Pending(NamedTuple):
    consumer: str
    delivered_at: float


@dataclass(slots=True)
class _Group:
    last: int  # seq of the last entry handed out
    pending: dict[str, _Pending] = field(default_factory=dict)  # message id -> holder, in seq order
    live: dict[str, int] = field(default_factory=dict)  # consumer -> open iterators


@dataclass(slots=True)
class _Stream:
    """A bounded log: ``entries[i]`` has seq ``first_seq + i`` (plain tuples, see ``_Entry``)."""

    name: str
    key: str
    entries: deque[_Entry]
    next_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)

    @property
    def first_seq(self) -> int:
        return self.next_seq - len(self.entries)

    def find(self, seq: int) -> _Entry | None:
        idx = seq - self.first_seq
        if 0 <= idx < len(self.entries):
            return self.entries[idx]
        return None


def _seq_of(message_id: str) -> int:
    return int(message_id[2:])  # ids are "0-<seq>"


class InProcessSubscription:
    """An async iterator of broadcast payloads; subscribed from creation (nothing is missed)."""

    def __init__(self, bus: InProcessBus, channel: str, maxsize: int) -> None:
        self._bus = bus
        self.channel = channel
        # None is the end-of-stream marker (b"" is a valid payload: an empty message).
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize)
        self.dropped = 0
        self._closed = False
        bus._listeners.setdefault(channel, weakref.WeakSet()).add(self)

    async def start(self) -> None:
        """Already subscribed; present for parity with the Redis subscription."""

    def offer(self, payload: bytes) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(payload)

    def __aiter__(self) -> InProcessSubscription:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        payload = await self.queue.get()
        if payload is None:
            raise StopAsyncIteration
        return payload

    def close(self) -> None:
        """Unsubscribe and end the iteration, waking a reader blocked in ``__anext__``."""
        if self._closed:
            return
        self._closed = True
        subs = self._bus._listeners.get(self.channel)
        if subs is not None:
            subs.discard(self)
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def aclose(self) -> None:
        self.close()


class InProcessBus:
    """The :class:`~aiots.services.bus.base.Bus` inside one process (see module docstring)."""

    backend = "memory"

    def __init__(self, settings: RedisSettings | None = None) -> None:
        self._cfg = settings or RedisSettings()
        self._ns = self._cfg.namespace
        self._streams: dict[str, _Stream] = {}  # by full stream name
        self._by_topic: dict[str, dict[str, _Stream]] = {}  # topic -> key -> stream (hot path)
        self._waiters: set[asyncio.Future[None]] = set()
        # Weak: a subscription dropped without aclose() stops receiving once collected.
        self._listeners: dict[str, weakref.WeakSet[InProcessSubscription]] = {}
        self._closed = False

    # --- streams -------------------------------------------------------------------------

    def _stream(self, topic: str, key: str) -> _Stream:
        by_key = self._by_topic.get(topic)
        if by_key is None:
            by_key = self._by_topic[topic] = {}
        st = by_key.get(key)
        if st is None:
            if not key:
                raise InvalidArgument("key", "bus key must be non-empty")
            name = stream_name(self._ns, topic, key)
            st = _Stream(name=name, key=key, entries=deque(maxlen=self._cfg.stream_maxlen))
            self._streams[name] = by_key[key] = st
        return st

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the in-process bus is closed")

    def _wake(self) -> None:
        if not self._waiters:
            return
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def publish(self, topic: str, key: str, event: Event) -> str:
        """Append ``event`` to the stream of (topic, key); returns its id."""
        self._check_open()
        st = self._stream(topic, key)
        seq = st.next_seq
        st.next_seq = seq + 1
        mid = f"0-{seq}"
        st.entries.append((st.name, mid, key, event_bytes(event)))
        self._wake()
        return mid

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Event]]) -> None:
        """Append several (key, event) pairs (one wake-up of the consumers for the batch)."""
        self._check_open()
        by_key = self._by_topic.get(topic) or {}
        for key, event in items:
            st = by_key.get(key)
            if st is None:
                st = self._stream(topic, key)
                by_key = self._by_topic[topic]
            seq = st.next_seq
            st.next_seq = seq + 1
            st.entries.append((st.name, f"0-{seq}", key, event_bytes(event)))
        self._wake()

    async def ensure_group(self, topic: str, keys: Sequence[str], *, group: str, start: str = "$") -> None:
        """Create ``group`` on each stream now (``"$"``: after the newest entry, ``"0"``: all)."""
        for key in keys:
            self._ensure(self._stream(topic, key), group, start)

    async def drop_group(self, topic: str, keys: Sequence[str], *, group: str) -> None:
        """Forget ``group`` on each stream (absent: nothing to do)."""
        for key in keys:
            self._stream(topic, key).groups.pop(group, None)

    @staticmethod
    def _ensure(st: _Stream, group: str, start: str) -> _Group:
        g = st.groups.get(group)
        if g is None:
            if start == "$":
                last = st.next_seq - 1
            elif start in ("0", "0-0"):
                last = 0
            else:
                raise InvalidArgument("start", f"start must be '$' or '0', got {start!r}")
            g = _Group(last=last)
            st.groups[group] = g
        return g

    def _take(self, streams: list[_Stream], group: str, consumer: str) -> list[Delivery]:
        """Claim orphaned/idle pending entries, then new ones; at most ``read_batch``."""
        out: list[Delivery] = []
        limit = self._cfg.read_batch
        now = time.monotonic()
        idle_s = self._cfg.claim_idle_ms / 1000.0
        for st in streams:
            g = st.groups[group]
            if not g.pending:
                continue
            # Insertion order is seq order: entries enter in seq order and reclaims update in place.
            for mid, p in list(g.pending.items()):
                if len(out) >= limit:
                    return out
                orphan = p.consumer not in g.live
                if p.consumer == consumer or not (orphan or now - p.delivered_at >= idle_s):
                    continue
                entry = st.find(_seq_of(mid))
                if entry is None:  # trimmed away by MAXLEN
                    del g.pending[mid]
                    continue
                g.pending[mid] = _Pending(consumer, now)
                out.append(_new_delivery(Delivery, entry))
        for st in streams:
            g = st.groups[group]
            entries = st.entries
            if not entries or st.next_seq - 1 <= g.last:
                continue
            first_seq = st.next_seq - len(entries)
            idx = max(g.last + 1, first_seq) - first_seq
            stop = min(len(entries), idx + limit - len(out))
            mine = _Pending(consumer, now)
            # Indexing a deque near either end is cheap (consumers that keep up read the tail).
            got = list(entries) if idx == 0 and stop == len(entries) else [entries[i] for i in range(idx, stop)]
            g.pending.update(dict.fromkeys([e[1] for e in got], mine))
            new = _new_delivery
            out += [new(Delivery, e) for e in got]
            g.last = first_seq + stop - 1
            if len(out) >= limit:
                break
        return out

    async def consume(
        self,
        topic: str,
        keys: Sequence[str],
        *,
        group: str,
        consumer: str,
        start: str = "$",
    ) -> AsyncIterator[Delivery]:
        """Yield messages of (topic, key) for ``keys`` as ``consumer`` of ``group`` (ack each)."""
        self._check_open()
        if not keys:
            raise InvalidArgument("keys", "consume needs at least one key")
        streams = [self._stream(topic, k) for k in keys]
        groups = [self._ensure(st, group, start) for st in streams]
        for g in groups:
            if consumer not in g.live:
                # A restarted consumer of the same name: its old pending entries become orphans.
                for mid, p in list(g.pending.items()):
                    if p.consumer == consumer:
                        g.pending[mid] = _Pending("", p.delivered_at)
            g.live[consumer] = g.live.get(consumer, 0) + 1
        loop = asyncio.get_running_loop()
        try:
            while not self._closed:
                batch = self._take(streams, group, consumer)
                if batch:
                    for d in batch:
                        yield d
                    await asyncio.sleep(0)  # let producers and peers run between batches
                    continue
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.add(fut)
                try:
                    # asyncio.wait, not wait_for: wait_for on Python 3.11 swallows a cancellation that
                    # arrives while the future is being completed, and the consumer then never stops
                    await asyncio.wait({fut}, timeout=self._cfg.claim_interval_s)
                finally:
                    self._waiters.discard(fut)
        finally:
            for g in groups:
                n = g.live.get(consumer, 0) - 1
                if n <= 0:
                    g.live.pop(consumer, None)
                else:
                    g.live[consumer] = n
            # The dead consumer's pending entries are now orphans: wake peers to take them.
            self._wake()

    async def ack(self, delivery: Delivery, *, group: str) -> None:
        """Remove the delivery from the group's pending list (idempotent)."""
        st = self._streams.get(delivery.stream)
        if st is not None:
            g = st.groups.get(group)
            if g is not None:
                g.pending.pop(delivery.message_id, None)

    async def pending_count(self, topic: str, key: str, group: str) -> int:
        """Entries delivered to ``group`` but not yet acked (for tests and stats)."""
        g = self._stream(topic, key).groups.get(group)
        return len(g.pending) if g else 0

    async def backlog(self, topics: Sequence[str] | None = None) -> int:
        """Entries of ``topics`` (all when None) that a consumer group with a live consumer has not
        acknowledged yet: not yet delivered plus pending. 0 means every live consumer has handled
        everything published so far (a lockstep replay waits for that between its time steps)."""
        n = 0
        for topic, by_key in self._by_topic.items():
            if topics is not None and topic not in topics:
                continue
            for st in by_key.values():
                for g in st.groups.values():
                    if g.live:
                        n += max(0, st.next_seq - 1 - max(g.last, st.first_seq - 1)) + len(g.pending)
        return n

    # --- broadcast -----------------------------------------------------------------------

    async def broadcast(self, channel: str, event: Event) -> None:
        """Send ``event`` to every current listener of ``channel``."""
        self._check_open()
        payload = event_bytes(event)
        for sub in list(self._listeners.get(channel, ())):
            sub.offer(payload)

    async def broadcast_bytes(self, channel: str, payload: bytes) -> None:
        """Broadcast an already serialised payload."""
        self._check_open()
        for sub in list(self._listeners.get(channel, ())):
            sub.offer(payload)

    def listen(self, channel: str) -> InProcessSubscription:
        """Payloads broadcast on ``channel`` from now on (subscribed immediately)."""
        self._check_open()
        return InProcessSubscription(self, channel, self._cfg.listen_queue_size)

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        """Stop consumers and listeners (their loops end)."""
        self._closed = True
        self._wake()
        for subs in list(self._listeners.values()):
            for sub in list(subs):
                sub.close()
        self._listeners.clear()
