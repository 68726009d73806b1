"""The bus interface every transport implements (Redis Streams + pub/sub, or in-process).

Topics and keys: an event goes to the stream ``<namespace>:v1:<topic>:<key>``, e.g.
``aiots:v1:bars:1m:AAPL`` (topic ``bars:1m``, key ``AAPL``) or ``aiots:v1:trades:AAPL``.
Events are protobuf messages from ``aiots.v1.events_pb2`` (TradeEvent, QuoteEvent, BarEvent,
OptionQuoteEvent, SignalEvent); payloads on the wire are their serialised bytes.

Guarantees (the transports document and test them):
- ``publish``/``consume``: at-least-once delivery to each consumer *group*, in order per key
  (per stream); a message is acknowledged after the handler returns, and a crashed
  consumer's unacknowledged messages are redelivered (pending-entry recovery).
- ``broadcast``/``listen``: fire-and-forget fan-out to every listener currently connected
  (Redis pub/sub), used where every replica must see every event (e.g. signals to subscribers).

Ordering, precisely: each stream (one topic + key, e.g. one symbol) is totally ordered, and a
consumer receives the new messages of a stream in that order. Within one group the messages of a
stream are spread over the group's live consumers batch by batch (work sharing), so per-key
processing order holds only when one consumer of the group reads that key. Replicas that need
per-symbol order therefore split the keys with :func:`partition_keys` (each replica consumes a
disjoint set of symbols). Redeliveries after a consumer dies arrive after newer messages of the
same stream: handlers must be idempotent (at-least-once).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import NamedTuple, Protocol

from google.protobuf.message import Message


def stream_name(namespace: str, topic: str, key: str) -> str:
    """``<namespace>:v1:<topic>:<key>``; key is the symbol (uppercase) for market events."""
    return f"{namespace}:v1:{topic}:{key}"


def partition_keys(keys: Sequence[str], index: int, count: int) -> list[str]:
    """The keys replica ``index`` of ``count`` should consume (stable CRC32 hash, disjoint, total)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"partition index {index} out of range for {count} partitions")
    return [k for k in keys if zlib.crc32(k.encode()) % count == index]


class Delivery(NamedTuple):
    """One delivered message: its stream, transport id, key and payload bytes (immutable)."""

    stream: str
    message_id: str
    key: str
    payload: bytes


Handler = Callable[[Delivery], Awaitable[None]]


class Bus(Protocol):
    """Publish/consume (streams with consumer groups) and broadcast/listen (pub/sub)."""

    async def publish(self, topic: str, key: str, event: Message) -> str:
        """Append ``event`` to the stream of (topic, key); returns the message id."""

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Message]]) -> None:
        """Append several (key, event) pairs in one round trip where the transport allows."""

    def consume(
        self,
        topic: str,
        keys: Sequence[str],
        *,
        group: str,
        consumer: str,
        start: str = "$",
    ) -> AsyncIterator[Delivery]:
        """Yield messages of (topic, key) for ``keys`` as member ``consumer`` of ``group``.

        ``start`` is where a new group begins: ``"$"`` (new messages) or ``"0"`` (all retained).
        The caller must ``ack`` each delivery after processing it.
        """

    async def ensure_group(self, topic: str, keys: Sequence[str], *, group: str, start: str = "$") -> None:
        """Create ``group`` on the streams of (topic, keys) now (idempotent).

        ``consume`` creates its groups on first iteration; call this first when messages
        published before that first iteration must reach the group.
        """

    async def ack(self, delivery: Delivery, *, group: str) -> None:
        """Acknowledge a processed delivery."""

    async def broadcast(self, channel: str, event: Message) -> None:
        """Send ``event`` to every current listener of ``channel``."""

    def listen(self, channel: str) -> AsyncIterator[bytes]:
        """Yield payloads broadcast on ``channel`` from now on."""

    async def close(self) -> None:
        """Release connections and stop background tasks."""
