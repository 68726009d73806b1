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
from collections.abc import Sequence

from aiots.services.common.ports import Bus, Delivery, Handler


def stream_name(namespace: str, topic: str, key: str) -> str:
    """``<namespace>:v1:<topic>:<key>``; key is the symbol (uppercase) for market events."""
    return f"{namespace}:v1:{topic}:{key}"


def partition_keys(keys: Sequence[str], index: int, count: int) -> list[str]:
    """The keys replica ``index`` of ``count`` should consume (stable CRC32 hash, disjoint, total)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"partition index {index} out of range for {count} partitions")
    return [k for k in keys if zlib.crc32(k.encode()) % count == index]


__all__ = ["Bus", "Delivery", "Handler", "partition_keys", "stream_name"]
