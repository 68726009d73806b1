"""Fan-out of signal events to this replica's subscribers, serialising each event once.

Every replica listens to the bus broadcast channel and hands each event to :class:`Broker`,
which encodes the ``SubscribeSignalsResponse`` bytes once and puts the same bytes on every
matching subscriber's bounded queue. A subscriber whose queue is full is marked overflowed and
its stream ends with RESOURCE_EXHAUSTED (resume with ``since``); the engine and the other
subscribers never wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiots.services.signals.store import SignalFilter
from aiots.v1 import signals_pb2


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

    def __init__(self, queue_size: int, on_drop: Callable[[], None] | None = None) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscriber] = set()
        self._on_drop = on_drop
        self.delivered = 0

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
        """Queue ``sig`` for every matching subscriber; returns how many got it."""
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
