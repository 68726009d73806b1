"""Redis Streams (+ pub/sub) bus: the :class:`~aiots.services.bus.base.Bus` across processes.

- ``publish``: ``XADD <ns>:v1:<topic>:<key> MAXLEN ~ stream_maxlen * p <payload>``;
  ``publish_many`` runs all its XADDs in one server-side script call (one round trip, one reply).
- ``consume``: one consumer of a consumer group (``XGROUP CREATE ... MKSTREAM``) reading all the
  given streams with ``XREADGROUP ... BLOCK read_block_ms COUNT read_batch``. On start it first
  re-reads its own pending history (``XREADGROUP ... 0``: a consumer restarted under the same name
  gets back what it had not acked), and every ``claim_interval_s`` it runs ``XAUTOCLAIM`` for
  entries pending longer than ``claim_idle_ms`` (a crashed consumer's messages are redelivered).
- ``ack``: ``XACK``, buffered and flushed in one pipeline per event-loop turn, or sent in front of
  the consumer's next blocking read in the same pipeline: acking a batch costs no round trip of its
  own. An ack lost to a crash only causes a redelivery (at-least-once).
- ``broadcast``/``listen``: ``PUBLISH``/``SUBSCRIBE`` on ``<ns>:v1:<channel>``; fire-and-forget
  (a listener misses what is sent while it is disconnected).
- Faults: when Redis goes away, ``publish``/``publish_many`` keep the events in the on-disk outbox
  (:mod:`aiots.services.bus.outbox`: fsynced, replayed in order when Redis returns, exactly once
  into the streams), ``broadcast`` raises ``Unavailable``, and the consume and listen loops retry
  with exponential backoff (``reconnect_*``), recreating a lost group (a Redis
  restarted without persistence) from ``0``. What survives a Redis restart is what Redis
  persisted: with ``appendonly yes`` + ``appendfsync always`` every acknowledged XADD does.
- Order: see :mod:`aiots.services.bus.base`.

Size: one transport class (publish, consume, ack buffering, claims, outbox replay) whose parts share
one connection and its buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from redis.exceptions import ResponseError

from aiots.services.bus.base import Delivery, stream_name
from aiots.services.bus.outbox import Outbox, OutboxBatch
from aiots.services.bus.redis_conn import REDIS_DOWN_ERRORS, Backoff, connect_redis, redact
from aiots.services.common.errors import InvalidArgument, Unavailable
from aiots.services.common.ports import Event, event_bytes
from aiots.services.common.settings import RedisSettings
from aiots.services.common.telemetry import metrics

log = logging.getLogger(__name__)

_F_PAYLOAD = b"p"
_Acks = dict[tuple[str, str], list[str]]  # (stream, group) -> message ids to XACK
_SUB_RETRY_ERRORS: tuple[type[BaseException], ...] = (Unavailable, *REDIS_DOWN_ERRORS)
_MAX_CACHED_NAMES = 100_000  # stream names memoised per (topic, key)
#: ``Delivery(...)`` minus the namedtuple's Python-level ``__new__`` (one per consumed message).
_new_delivery = cast(Callable[[type[Delivery], tuple[str, str, str, bytes]], Delivery], tuple.__new__)

# KEYS[1]: the publisher's high-water mark key; KEYS[i+1]: stream of event i.
# ARGV: batch seq, mark TTL (s), approximate MAXLEN, "1" to return the ids, then the payloads.
# A batch whose seq is not above the mark was applied already (its reply was lost): skipped.
_PUBLISH = """
local seq = tonumber(ARGV[1])
local hw = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= hw then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local maxlen = ARGV[3]
if ARGV[4] == '1' then
  local ids = {}
  for i = 2, #KEYS do
    ids[i - 1] = redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', 'p', ARGV[i + 3])
  end
  return ids
end
for i = 2, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', maxlen, '*', 'p', ARGV[i + 3])
end
return #KEYS - 1
"""


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _payload(fields: list[bytes]) -> bytes:
    """The ``p`` field of a raw ``[field, value, ...]`` entry (our entries have only that field)."""
    if len(fields) == 2 and fields[0] == _F_PAYLOAD:
        return fields[1]
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == _F_PAYLOAD:
            return fields[i + 1]
    return b""


def _as_is(response: Any, **options: Any) -> Any:
    return response


def _stream_items(res: Any) -> Any:
    """(stream, entries) pairs of a raw XREADGROUP reply: a map (RESP3), a list (RESP2) or nil."""
    if isinstance(res, dict):
        return res.items()
    return res or ()


def _raw_deliveries(stream: str, key: str, entries: list[Any]) -> list[Delivery]:
    """Deliveries from raw ``[[id, [field, value, ...]], ...]`` (an entry trimmed away has no fields)."""
    new, p = _new_delivery, _F_PAYLOAD
    return [
        new(Delivery, (stream, mid.decode(), key, f[1] if len(f) == 2 and f[0] == p else _payload(f)))
        for mid, f in entries
        if f is not None
    ]


@dataclass
class OutboxStats:
    """Events written to the outbox, replayed from it, and replays skipped as already applied
    (also counted in ``aiots_bus_outbox_events_total{event}``)."""

    spilled: int = 0
    replayed: int = 0
    deduplicated: int = 0

    def count(self, event: str, n: int, pending: int) -> None:
        setattr(self, event, getattr(self, event) + n)
        metrics.by_name["aiots_bus_outbox_events_total"].add(n, {"event": event})
        metrics.by_name["aiots_bus_outbox_pending"].set(pending)


class RedisSubscription:
    """Async iterator of payloads on one pub/sub channel; resubscribes after a disconnect."""

    def __init__(self, bus: RedisStreamsBus, channel: str) -> None:
        self._bus = bus
        self.channel = channel
        self._full = f"{bus.namespace}:v1:{channel}"
        self._ps: Any = None  # redis.asyncio.client.PubSub
        self._closed = False
        self._backoff = Backoff(bus.cfg.reconnect_initial_backoff_s, bus.cfg.reconnect_max_backoff_s)

    async def start(self) -> None:
        """Subscribe now (idempotent); raises ``Unavailable`` when Redis is away."""
        if self._ps is not None:
            return
        ps: Any = self._bus.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await ps.subscribe(self._full)
        except REDIS_DOWN_ERRORS as exc:
            with contextlib.suppress(Exception):
                await ps.aclose()
            raise Unavailable(f"bus: cannot subscribe to {self._full}: Redis unreachable ({exc})") from exc
        self._ps = ps

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> bytes:
        while not self._closed:
            try:
                await self.start()
                msg = await self._ps.get_message(
                    ignore_subscribe_messages=True, timeout=self._bus.cfg.read_block_ms / 1000.0
                )
                self._backoff.reset()
            except _SUB_RETRY_ERRORS as exc:
                await self._drop()
                delay = self._backoff.next_delay()
                log.warning("pub/sub %s disconnected (%s); retrying in %.2fs", self._full, exc, delay)
                await asyncio.sleep(delay)
                continue
            if msg is not None and msg.get("type") == "message":
                data = msg["data"]
                return data if isinstance(data, bytes) else str(data).encode()
        raise StopAsyncIteration

    async def _drop(self) -> None:
        ps, self._ps = self._ps, None
        if ps is not None:
            with contextlib.suppress(Exception):
                await ps.aclose()

    async def aclose(self) -> None:
        self._closed = True
        self._bus._subs.discard(self)
        await self._drop()


class RedisStreamsBus:
    """The bus over Redis (see module docstring)."""

    backend = "redis"

    def __init__(self, url: str, settings: RedisSettings | None = None) -> None:
        self.cfg = settings or RedisSettings()
        self.namespace = self.cfg.namespace
        self.url = url
        # Typed loosely: redis-py's stream command stubs do not model RESP2 replies.
        self.redis: Any = connect_redis(url, self.cfg, block_ms=self.cfg.read_block_ms)
        self._acks: _Acks = {}
        self._carried: list[_Acks] = []  # acks sent in front of a blocking read still in flight
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        self._subs: set[RedisSubscription] = set()
        self._publish = self.redis.register_script(_PUBLISH)
        self.publisher = uuid.uuid4().hex[:16]
        self._seq = 0
        self._send_lock = asyncio.Lock()
        # One outbox root per (Redis, namespace): a bus only ever adopts (replays) what a dead bus
        # meant for the same Redis and namespace.
        scope = hashlib.sha256(f"{redact(url)}|{self.namespace}".encode()).hexdigest()[:12]
        self.outbox = Outbox(Path(self.cfg.outbox_dir) / scope, self.publisher)
        self.outbox_stats = OutboxStats()
        self._replay_task: asyncio.Task[None] | None = None
        if self.outbox:
            with contextlib.suppress(RuntimeError):  # no running loop: the first publish starts it
                self._start_replay()
        # XREADGROUP replies become deliveries straight from hiredis's nested lists (redis-py's
        # callback builds a dict per entry that would be thrown away at once).
        self.redis.set_response_callback("XREADGROUP", cast(Any, _as_is))
        self._names: dict[str, dict[str, str]] = {}  # topic -> key -> stream name
        self._n_names = 0

    def _name(self, topic: str, key: str) -> str:
        """``stream_name`` memoised (the publish hot path)."""
        by_key = self._names.get(topic)
        if by_key is None:
            by_key = self._names[topic] = {}
        name = by_key.get(key)
        if name is None:
            if not key:
                raise InvalidArgument("key", "bus key must be non-empty")
            if self._n_names >= _MAX_CACHED_NAMES:
                self._names, self._n_names = {topic: by_key}, 0
                by_key.clear()
            name = by_key[key] = stream_name(self.namespace, topic, key)
            self._n_names += 1
        return name

    def _down(self, what: str, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"bus: {what} failed: Redis at {redact(self.url)} unreachable ({exc}); reconnecting with backoff"
        )

    # --- publish -------------------------------------------------------------------------

    async def publish(self, topic: str, key: str, event: Event) -> str:
        """XADD with approximate MAXLEN; returns the stream id ("" when it went to the outbox)."""
        if not key:
            raise InvalidArgument("key", "bus key must be non-empty")
        ids = await self._send([self._name(topic, key)], [event_bytes(event)], want_ids=True)
        return _s(ids[0]) if isinstance(ids, list) and ids else ""

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Event]]) -> None:
        """All XADDs in one ``EVALSHA`` (a server-side loop): one command and one reply per batch.

        Packing one small command per event costs more client CPU than Redis spends on the XADDs;
        the script takes the stream names as KEYS (so it is cluster-correct only when they share
        a hash slot; this deployment uses a single Redis).
        """
        if not items:
            return
        by_key = self._names.get(topic) or {}
        name = self._name
        names = [by_key.get(key) or name(topic, key) for key, _ in items]
        await self._send(names, [event_bytes(event) for _, event in items])

    def _hw_key(self, publisher: str) -> str:
        return f"{self.namespace}:v1:outbox:hw:{publisher}"

    async def _script(self, batch: OutboxBatch, want_ids: bool) -> Any:
        cfg = self.cfg
        args: list[bytes | int | str] = [
            batch.seq,
            cfg.outbox_dedupe_ttl_s,
            cfg.stream_maxlen,
            "1" if want_ids else "0",
        ]
        args += batch.payloads
        return await self._publish(keys=[self._hw_key(batch.publisher), *batch.streams], args=args)

    async def _send(self, names: list[str], payloads: list[bytes], want_ids: bool = False) -> Any:
        """Publish one batch now, or into the outbox while Redis is away or older batches wait.

        Batches are numbered and sent one at a time (the high-water mark needs them in order)."""
        async with self._send_lock:
            self._seq += 1
            batch = OutboxBatch(self.publisher, self._seq, names, payloads)
            if not self.outbox:
                try:
                    return await self._script(batch, want_ids)
                except REDIS_DOWN_ERRORS as exc:
                    log.warning(
                        "bus: Redis at %s unreachable (%s); keeping events in the outbox %s",
                        redact(self.url), exc, self.outbox.dir,
                    )  # fmt: skip
            await asyncio.to_thread(self.outbox.append, batch)
            self.outbox_stats.count("spilled", len(batch), self.outbox.pending_events)
            self._start_replay()
            return None

    def _start_replay(self) -> None:
        task = self._replay_task
        if task is None or task.done():
            self._replay_task = asyncio.get_running_loop().create_task(self._replay(), name="bus-outbox-replay")

    async def _replay(self) -> None:
        """Send the outbox's batches in order once Redis answers; each leaves the disk when sent."""
        backoff = Backoff(self.cfg.reconnect_initial_backoff_s, self.cfg.reconnect_max_backoff_s)
        while not self._closed:
            async with self._send_lock:
                path = self.outbox.first()
                if path is None:
                    return
                batch = await asyncio.to_thread(Outbox.read, path)
                try:
                    applied = await self._script(batch, False)
                except REDIS_DOWN_ERRORS:
                    applied = None
                else:
                    await asyncio.to_thread(self.outbox.remove, path)
                    event = "deduplicated" if applied == -1 else "replayed"
                    self.outbox_stats.count(event, len(batch), self.outbox.pending_events)
            if applied is None:
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()
                if not self.outbox:
                    log.info("bus: outbox replayed; publishing directly again")

    async def drain_outbox(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the outbox is empty and its replay has ended (True: the last batch's file is
        removed in a thread before the replay counts it, so an empty directory alone could be seen
        with that count still to come) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replaying = self._replay_task is not None and not self._replay_task.done()
            if not self.outbox and not replaying:
                return True
            if self.outbox:
                self._start_replay()
            await asyncio.sleep(0.05)
        return not self.outbox

    # --- consume -------------------------------------------------------------------------

    async def _create_groups(self, streams: Sequence[str], group: str, start: str) -> None:
        sid = "0" if start in ("0", "0-0") else "$"
        if start not in ("$", "0", "0-0"):
            raise InvalidArgument("start", f"start must be '$' or '0', got {start!r}")
        pipe = self.redis.pipeline(transaction=False)
        for s in streams:
            pipe.xgroup_create(s, group, id=sid, mkstream=True)
        results = await pipe.execute(raise_on_error=False)
        for r in results:
            if isinstance(r, ResponseError) and "BUSYGROUP" not in str(r):
                raise r
            if isinstance(r, BaseException) and not isinstance(r, ResponseError):
                raise r

    async def ensure_group(self, topic: str, keys: Sequence[str], *, group: str, start: str = "$") -> None:
        """XGROUP CREATE ... MKSTREAM on each stream (existing groups are left as they are)."""
        try:
            await self._create_groups([stream_name(self.namespace, topic, k) for k in keys], group, start)
        except REDIS_DOWN_ERRORS as exc:
            raise self._down(f"creating group {group}", exc) from exc

    async def drop_group(self, topic: str, keys: Sequence[str], *, group: str) -> None:
        """XGROUP DESTROY on each stream (a missing stream or group is not an error)."""
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.xgroup_destroy(stream_name(self.namespace, topic, k), group)
        try:
            results = await pipe.execute(raise_on_error=False)
        except REDIS_DOWN_ERRORS as exc:
            raise self._down(f"dropping group {group}", exc) from exc
        for r in results:
            no_stream = isinstance(r, ResponseError) and "requires the key to exist" in str(r)
            if isinstance(r, BaseException) and not no_stream:
                raise r

    @staticmethod
    def _deliveries(stream: str, key: str, entries: list[Any]) -> list[Delivery]:
        out = []
        for mid, fields in entries:
            if mid is None or fields is None:  # deleted (trimmed) entry still pending
                continue
            out.append(Delivery(stream, _s(mid), key, fields.get(_F_PAYLOAD, b"")))
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
        """Yield messages as ``consumer`` of ``group``; ack each with :meth:`ack`."""
        if not keys:
            raise InvalidArgument("keys", "consume needs at least one key")
        streams = [stream_name(self.namespace, topic, k) for k in keys]
        key_of = dict(zip(streams, keys, strict=True))
        cfg = self.cfg
        backoff = Backoff(cfg.reconnect_initial_backoff_s, cfg.reconnect_max_backoff_s)
        ready = False
        group_start = start
        history: dict[str, str] = {s: "0-0" for s in streams}  # own pending entries still to re-read
        claim_cursor: dict[str, str] = {s: "0-0" for s in streams}
        last_claim = time.monotonic()
        task = asyncio.current_task()
        while not self._closed:
            if task is not None and task.cancelling():
                # A cancel() of this task that a call on the way swallowed (seen once in
                # bench/ingest.py: a cancelled consumer kept polling XREADGROUP for minutes with
                # cancelling() == 1): honour it here rather than read on.
                raise asyncio.CancelledError
            batch: list[Delivery] = []
            try:
                if not ready:
                    await self._create_groups(streams, group, group_start)
                    ready = True
                claiming = not history and time.monotonic() - last_claim >= cfg.claim_interval_s
                if history or claiming:
                    await self._flush_acks()  # a blocking read below sends them in its own round trip
                if history:
                    res = await self.redis.xreadgroup(group, consumer, dict(history), count=cfg.read_batch)
                    got = {_s(name): entries for name, entries in _stream_items(res)}
                    for s in list(history):
                        entries = got.get(s) or []
                        if not entries:
                            del history[s]
                            continue
                        history[s] = _s(entries[-1][0])
                        batch.extend(_raw_deliveries(s, key_of[s], entries))
                elif claiming:
                    last_claim = time.monotonic()
                    pipe = self.redis.pipeline(transaction=False)  # one round trip for every stream
                    for s in streams:
                        pipe.xautoclaim(
                            s, group, consumer, cfg.claim_idle_ms, start_id=claim_cursor[s], count=cfg.read_batch
                        )
                    for s, res in zip(streams, await pipe.execute(), strict=True):
                        claim_cursor[s] = _s(res[0])
                        batch.extend(self._deliveries(s, key_of[s], res[1]))
                    if batch:
                        log.info("reclaimed %d idle pending messages for %s/%s", len(batch), group, consumer)
                else:
                    res = await self._ack_then_read(group, consumer, dict.fromkeys(streams, ">"))
                    for name, entries in _stream_items(res):
                        s = _s(name)
                        batch.extend(_raw_deliveries(s, key_of[s], entries))
                backoff.reset()
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    # Redis lost the group (restarted without persistence): recreate from the start.
                    log.warning("consumer group %s vanished; recreating it from 0", group)
                    ready, group_start = False, "0"
                    continue
                raise
            except REDIS_DOWN_ERRORS as exc:
                delay = backoff.next_delay()
                log.warning("bus consumer %s/%s: Redis unreachable (%s); retry in %.2fs", group, consumer, exc, delay)
                await asyncio.sleep(delay)
                continue
            for d in batch:
                yield d

    # --- ack -----------------------------------------------------------------------------

    async def ack(self, delivery: Delivery, *, group: str) -> None:
        """Buffer an XACK; flushed in one pipeline when the event loop next turns."""
        k = (delivery.stream, group)
        ids = self._acks.get(k)
        if ids is None:
            self._acks[k] = [delivery.message_id]
        else:
            ids.append(delivery.message_id)
        task = self._flush_task
        if task is None or task.done():
            self._flush_task = asyncio.create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        backoff = Backoff(self.cfg.reconnect_initial_backoff_s, self.cfg.reconnect_max_backoff_s)
        while self._acks and not self._closed:
            try:
                await self._flush_acks()
                backoff.reset()
            except REDIS_DOWN_ERRORS as exc:
                delay = backoff.next_delay()
                log.warning("XACK flush failed (%s); retry in %.2fs", exc, delay)
                await asyncio.sleep(delay)

    async def _flush_acks(self) -> None:
        if self._acks:
            await self._send_acks(None)

    async def _ack_then_read(self, group: str, consumer: str, streams: dict[str, str]) -> Any:
        """The buffered XACKs and the next blocking ``XREADGROUP`` in one round trip (its reply)."""
        if not self._acks:
            return await self.redis.xreadgroup(
                group, consumer, streams, count=self.cfg.read_batch, block=self.cfg.read_block_ms
            )
        return await self._send_acks((group, consumer, streams))

    async def _send_acks(self, read: tuple[str, str, dict[str, str]] | None, also: Sequence[_Acks] = ()) -> Any:
        """One pipeline: every buffered XACK (and those in ``also``), then the read if given (its
        reply is returned). Acks a failed round trip may not have applied are kept for the next one
        (XACK is idempotent)."""
        acks, self._acks = self._acks, {}
        pipe = self.redis.pipeline(transaction=False)
        for batch in (acks, *also):
            for (stream, group), ids in batch.items():
                pipe.xack(stream, group, *ids)
        if read is not None:
            pipe.xreadgroup(read[0], read[1], read[2], count=self.cfg.read_batch, block=self.cfg.read_block_ms)
            self._carried.append(acks)
        try:
            # Errors come back as replies: an XACK refused by Redis must not cost the read its reply
            # (its messages would sit pending until reclaimed).
            replies = await pipe.execute(raise_on_error=False)
        except BaseException:
            for k, ids in acks.items():  # keep them for the next flush
                self._acks.setdefault(k, [])[:0] = ids
            raise
        finally:
            if read is not None:
                self._carried = [a for a in self._carried if a is not acks]
        acked = replies[:-1] if read is not None else replies
        for reply in acked:
            if isinstance(reply, Exception):  # a wrong-typed key, say: retrying would fail the same way
                log.warning("XACK refused by Redis (%s); those messages stay pending", reply)
        if read is None:
            return None
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return replies[-1]

    async def flush(self) -> None:
        """Apply the acks made so far before returning (raises ``Unavailable`` when Redis is away):
        the buffered ones, and again those riding a consumer's blocking read, which may not be
        written yet."""
        carried = [a for a in self._carried if a]
        try:
            if self._acks or carried:
                await self._send_acks(None, carried)
        except REDIS_DOWN_ERRORS as exc:
            raise self._down("XACK", exc) from exc

    async def pending_count(self, topic: str, key: str, group: str) -> int:
        """Entries delivered to ``group`` but not yet acked (XPENDING summary)."""
        info = await self.redis.xpending(stream_name(self.namespace, topic, key), group)
        return int(info["pending"])

    # --- broadcast -----------------------------------------------------------------------

    async def broadcast(self, channel: str, event: Event) -> None:
        """PUBLISH to ``<ns>:v1:<channel>``."""
        await self.broadcast_bytes(channel, event_bytes(event))

    async def broadcast_bytes(self, channel: str, payload: bytes) -> None:
        """PUBLISH an already serialised payload."""
        try:
            await self.redis.publish(f"{self.namespace}:v1:{channel}", payload)
        except REDIS_DOWN_ERRORS as exc:
            raise self._down(f"broadcast on {channel}", exc) from exc

    def listen(self, channel: str) -> RedisSubscription:
        """Payloads on ``channel``; ``await sub.start()`` to subscribe before the first read."""
        sub = RedisSubscription(self, channel)
        self._subs.add(sub)
        return sub

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except REDIS_DOWN_ERRORS:
            return False

    async def close(self) -> None:
        """Flush acks (best effort), close subscriptions and the pool."""
        with contextlib.suppress(Exception):
            await self._flush_acks()
        self._closed = True
        if self._replay_task is not None and not self._replay_task.done():
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
        self.outbox.close()
        for sub in list(self._subs):
            await sub.aclose()
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        await self.redis.aclose()
