"""Fan-out of signal events to this replica's subscribers, serialising each event once.

Every replica listens to the bus broadcast channel and hands each event to :class:`Broker`,
which encodes the ``SubscribeSignalsResponse`` bytes once and puts the same bytes on every
matching subscriber's bounded queue. A subscriber whose queue is full is marked overflowed and
its stream ends with RESOURCE_EXHAUSTED after a last message whose ``error`` names the ``since`` to
resume with (:mod:`~aiots.services.common.streams`); the engine and the other subscribers never
wait for it.

Signals are announced *before* they are persisted (the database is off the critical path), so the
broker keeps a short ring of the most recent new signals. A ``since`` replay merges that ring with
the stored rows (the ring covers what is not stored yet), and the ring's ids de-duplicate the same
signal announced twice (this replica's own echo from the bus, or a second replica that evaluated
the same bar: the first announcement seen wins on every replica, since all see one broadcast order).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from aiots.services.signals.store import SignalFilter
from aiots.v1 import signals_pb2

#: new signals kept for ``since`` replays and de-duplication (minutes of signals at any real rate)
DEFAULT_RING = 1024


@dataclass(frozen=True)
class Outgoing:
    """One encoded stream message and what it is about."""

    signal_id: str
    is_update: bool
    data: bytes


@dataclass(eq=False)
class Subscriber:
    filter: SignalFilter
    include_updates: bool
    queue: asyncio.Queue[Outgoing]
    overflowed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Broker:
    """This replica's subscribers and the fan-out to them."""

    def __init__(
        self, queue_size: int, on_drop: Callable[[], None] | None = None, ring_size: int = DEFAULT_RING
    ) -> None:
        self.queue_size = queue_size
        self.ring_size = ring_size
        self._subs: set[Subscriber] = set()
        self._on_drop = on_drop
        self.delivered = 0
        #: the most recent new signals announced here, by id (insertion order = announce order)
        self._ring: OrderedDict[str, signals_pb2.Signal] = OrderedDict()

    def announced(self, signal_id: str) -> signals_pb2.Signal | None:
        """The version of ``signal_id`` this replica announced (None when not in the ring)."""
        return self._ring.get(signal_id)

    def recent(
        self, f: SignalFilter, since_id: str | None, since_ns: int | None
    ) -> tuple[list[signals_pb2.Signal], set[str] | None]:
        """New signals in the ring that match ``f`` and come after ``since_id`` or a time (ns UTC).

        When ``since_id`` is in the ring: (those announced after it, in announce order; the ids
        announced up to and including it). Otherwise (those with a larger id or a later creation
        time, oldest id first; None)."""
        if since_id is not None and since_id in self._ring:
            ids = list(self._ring)
            at = ids.index(since_id)
            after = [self._ring[k] for k in ids[at + 1 :]]
            return [s for s in after if f.matches(s.symbol, s.strategy, s.confidence)], set(ids[: at + 1])
        out = [
            s
            for s in self._ring.values()
            if f.matches(s.symbol, s.strategy, s.confidence)
            and (since_id is None or s.id > since_id)
            and (since_ns is None or s.created_at.ToNanoseconds() > since_ns)
        ]
        out.sort(key=lambda s: s.id)
        return out, None

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, f: SignalFilter, include_updates: bool) -> Subscriber:
        sub = Subscriber(f, include_updates, asyncio.Queue(self.queue_size))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def deepest_queue(self) -> int:
        """Largest backlog among this replica's subscribers (for the queue-depth gauge)."""
        return max((s.queue.qsize() for s in self._subs), default=0)

    def publish(self, sig: signals_pb2.Signal, is_update: bool) -> int:
        """Queue ``sig`` for every matching subscriber; returns how many got it (-1: a new signal
        already announced here, dropped)."""
        if not is_update:
            if sig.id in self._ring:
                return -1
            self._ring[sig.id] = sig
            if len(self._ring) > self.ring_size:
                self._ring.popitem(last=False)
        resp = signals_pb2.SubscribeSignalsResponse()
        (resp.update if is_update else resp.signal).CopyFrom(sig)
        out = Outgoing(sig.id, is_update, resp.SerializeToString())
        n = 0
        for sub in self._subs:
            if sub.overflowed or (is_update and not sub.include_updates):
                continue
            if not sub.filter.matches(sig.symbol, sig.strategy, sig.confidence):
                continue
            try:
                sub.queue.put_nowait(out)
                n += 1
            except asyncio.QueueFull:
                sub.overflowed = True
                sub.wake.set()
                if self._on_drop is not None:
                    self._on_drop()
        self.delivered += n
        return n


def encode_signal(sig: signals_pb2.Signal) -> bytes:
    return signals_pb2.SubscribeSignalsResponse(signal=sig).SerializeToString()


def encode_heartbeat(now_ns: int) -> bytes:
    resp = signals_pb2.SubscribeSignalsResponse()
    resp.heartbeat.at.FromNanoseconds(now_ns)
    return resp.SerializeToString()
