"""SignalService servicer: validation and proto plumbing only (domain in engine/store/fanout).

SubscribeSignals is :func:`~aiots.services.common.server.pre_encoded_stream`: the broker already
encoded each message once for all subscribers, so this handler yields bytes. It records the last
signal id sent as the stream's resume point: a stream ended by an overflow or a shutdown says
``since=<that id>`` in its last message (:mod:`~aiots.services.common.streams`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime

import grpc
from ulid import ULID

from aiots.core.conventions import datetime_to_ns
from aiots.services.common.audit import SUBJECT_HEADER
from aiots.services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from aiots.services.common.server import ServiceRegistration, pre_encoded, pre_encoded_stream
from aiots.services.common.streams import resume_from
from aiots.services.common.telemetry import metrics
from aiots.services.common.validation import require_time_range
from aiots.services.common.wire import len_field
from aiots.services.signals.fanout import Broker, encode_heartbeat, encode_signal
from aiots.services.signals.stats import signal_stats
from aiots.services.signals.store import SignalFilter, SignalStore
from aiots.v1 import common_pb2, signals_pb2, signals_pb2_grpc

SERVICE_NAME = "aiots.v1.SignalService"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
ULID_LEN = 26


def split_csv(values: Sequence[str]) -> list[str]:
    """["AAPL,MSFT", "qqq"] -> ["AAPL", "MSFT", "QQQ"] (REST sends comma-separated lists)."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


class SignalServicer(signals_pb2_grpc.SignalServiceServicer):
    def __init__(
        self,
        store: SignalStore,
        broker: Broker,
        *,
        symbols: Sequence[str],
        strategies: Sequence[str],
        heartbeat_s: float,
        max_streams_per_subject: int = 5,
        stored: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        #: waits (bounded) until the signals announced so far are stored: queries read what was announced
        self._stored = stored
        self.max_streams_per_subject = max_streams_per_subject
        self._streams_by_subject: dict[str, int] = {}
        self.store = store
        self.broker = broker
        self.symbols = list(symbols)
        self.strategies = list(strategies)
        self.heartbeat_s = heartbeat_s

    # -- validation -------------------------------------------------------------------------
    def _filter(
        self,
        symbols: Sequence[str],
        strategies: Sequence[str],
        min_confidence: float,
        statuses: Sequence[int] = (),
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> SignalFilter:
        syms = [s.upper() for s in split_csv(symbols)]
        bad = [s for s in syms if s not in self.symbols]
        if bad:
            raise InvalidArgument("symbols", f"unknown symbol(s) {bad}; supported: {', '.join(self.symbols)}")
        strats = split_csv(strategies)
        bad = [s for s in strats if s not in self.strategies]
        if bad:
            raise InvalidArgument("strategies", f"unknown strategy {bad}; supported: {', '.join(self.strategies)}")
        if not (0.0 <= min_confidence <= 1.0):
            raise InvalidArgument("min_confidence", f"must be within 0..1, got {min_confidence}")
        return SignalFilter(tuple(syms), tuple(strats), tuple(statuses), min_confidence, start_ns, end_ns)

    @staticmethod
    def _since(since: str) -> tuple[str | None, int | None]:
        if not since:
            return None, None
        if len(since) == ULID_LEN and since.isalnum():
            return since.upper(), None
        try:
            dt = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument("since", f"must be a signal id (ULID) or an RFC 3339 time, got {since!r}") from None
        if dt.tzinfo is None:
            raise InvalidArgument("since", f"time needs a UTC offset (e.g. 2025-01-02T15:30:00Z), got {since!r}")
        return None, datetime_to_ns(dt)

    async def _replay(self, f: SignalFilter, since_id: str | None, since_ns: int | None) -> list[signals_pb2.Signal]:
        """What a subscriber resuming after ``since_id`` (or a time, ns UTC) missed, in send order.

        Signals are announced before they are stored, so the broker's ring of recent announcements
        is merged with the stored rows (a stored row is the more current version of an id). When
        ``since_id`` is still in the ring the replay follows the announce order: everything
        announced after it, and stored signals of its millisecond or later that were not announced
        before it (one bar close gives its signals the same millisecond, and ids within it sort
        by a hash). Otherwise ids after ``since_id`` (ULIDs sort by time)."""
        recent, before = self.broker.recent(f, since_id, since_ns)
        if before is None:
            merged = {s.id: s for s in recent}
            merged.update((s.id, s) for s in await self.store.after(f, since_id, since_ns))
            return [merged[k] for k in sorted(merged)]
        assert since_id is not None
        since_ms_ns = ULID.from_str(since_id).milliseconds * 1_000_000
        stored = {s.id: s for s in await self.store.after(f, None, since_ms_ns - 1) if s.id not in before}
        order = [s.id for s in recent]
        fresh = {s.id: s for s in recent}
        older = sorted(k for k in stored if k not in fresh)
        fresh.update((k, v) for k, v in stored.items() if k in fresh)
        return [stored[k] for k in older] + [fresh[k] for k in order]

    # -- RPCs -------------------------------------------------------------------------------
    @pre_encoded_stream(signals_pb2.SubscribeSignalsResponse)
    async def SubscribeSignals(
        self, request: signals_pb2.SubscribeSignalsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        f = self._filter(request.symbols, request.strategies, request.min_confidence)
        since_id, since_ns = self._since(request.since)
        # The gateway verifies the token and forwards its subject; Envoy can limit how fast streams
        # open but not how many stay open, so the per-subject count is enforced here.
        subject = dict(context.invocation_metadata() or ()).get(SUBJECT_HEADER, "")
        if subject:
            if self._streams_by_subject.get(subject, 0) >= self.max_streams_per_subject:
                raise ResourceExhausted(
                    f"subject {subject!r} already has {self.max_streams_per_subject} open signal streams "
                    "(the limit); close one first",
                    metadata={"limit": str(self.max_streams_per_subject)},
                )
            self._streams_by_subject[subject] = self._streams_by_subject.get(subject, 0) + 1
        sub = self.broker.subscribe(f, request.include_updates)
        metrics.subscribers.add(1, {"stream": "signals"})
        try:
            last_id = ""
            replayed: set[str] = set()
            if since_id is not None or since_ns is not None:
                for sig in await self._replay(f, since_id, since_ns):
                    replayed.add(sig.id)
                    last_id = sig.id
                    resume_from("since", last_id)
                    yield encode_signal(sig)
            while True:
                if sub.overflowed:
                    raise ResourceExhausted(
                        "subscriber queue overflowed (client too slow); resume with since="
                        + (last_id or "<last signal id received>"),
                        metadata={"last_id": last_id},
                    )
                try:
                    item = sub.queue.get_nowait()
                except asyncio.QueueEmpty:
                    item = None
                try:
                    if item is None:
                        async with asyncio.timeout(self.heartbeat_s):  # no extra task per message
                            item = await sub.queue.get()
                except TimeoutError:
                    yield encode_heartbeat(time.time_ns())
                    continue
                if not item.is_update:
                    # Not an id comparison: the signals of one bar close share a millisecond, and
                    # their ids' order within it is a hash's, not the announce order.
                    if item.signal_id in replayed:
                        continue  # already sent by the replay
                    last_id = item.signal_id
                    resume_from("since", last_id)
                yield item.data
        finally:
            self.broker.unsubscribe(sub)
            metrics.subscribers.add(-1, {"stream": "signals"})
            if subject:
                left = self._streams_by_subject.get(subject, 1) - 1
                if left > 0:
                    self._streams_by_subject[subject] = left
                else:
                    self._streams_by_subject.pop(subject, None)

    @pre_encoded(signals_pb2.ListSignalsResponse)
    async def ListSignals(self, request: signals_pb2.ListSignalsRequest, context: grpc.aio.ServicerContext) -> bytes:
        """The stored Signal bytes behind their field headers (never parsed and re-serialised)."""
        size = request.page.page_size or DEFAULT_PAGE
        if not (1 <= size <= MAX_PAGE):
            raise InvalidArgument("page.page_size", f"must be within 1..{MAX_PAGE}, got {size}")
        f = self._filter(
            request.symbols,
            request.strategies,
            request.min_confidence,
            [int(s) for s in request.statuses],
            *require_time_range(request, ordered=False),
        )
        if self._stored is not None:
            await self._stored()
        rows = await self.store.page_payloads(f, size + 1, request.page.page_token or None)
        body = b"".join(len_field(signals_pb2.ListSignalsResponse.SIGNALS_FIELD_NUMBER, p) for _id, p in rows[:size])
        if len(rows) > size:
            page = signals_pb2.ListSignalsResponse(page=common_pb2.PageResponse(next_page_token=rows[size - 1][0]))
            body += page.SerializeToString()
        return body

    async def GetSignal(
        self, request: signals_pb2.GetSignalRequest, context: grpc.aio.ServicerContext
    ) -> signals_pb2.GetSignalResponse:
        if not request.id:
            raise InvalidArgument("id", "required (a ULID such as 01JH3Z...)")
        sig = await self.store.get(request.id.upper())
        if sig is None:  # announced a moment ago, not stored yet
            sig = self.broker.announced(request.id.upper())
        if sig is None:
            raise NotFound(f"no signal with id {request.id!r}")
        return signals_pb2.GetSignalResponse(signal=sig)

    async def GetSignalStats(
        self, request: signals_pb2.GetSignalStatsRequest, context: grpc.aio.ServicerContext
    ) -> signals_pb2.GetSignalStatsResponse:
        f = self._filter(
            request.symbols,
            request.strategies,
            0.0,
            (),
            *require_time_range(request, ordered=False),
        )
        if self._stored is not None:
            await self._stored()
        rows, cal = signal_stats(await self.store.outcomes(f))
        return signals_pb2.GetSignalStatsResponse(
            rows=[signals_pb2.SignalStatsRow(**dataclasses.asdict(r)) for r in rows],
            calibration=signals_pb2.SignalCalibration(
                brier=cal.brier,
                ece=cal.ece,
                base_rate=cal.base_rate,
                brier_base_rate=cal.brier_base_rate,
                bins=[
                    signals_pb2.CalibrationBin(
                        lo=b.lo, hi=b.hi, predicted=b.predicted, realised=b.realised, count=b.count
                    )
                    for b in cal.bins
                ],
            ),
        )


def add_to_server(servicer: SignalServicer, server: grpc.aio.Server) -> None:
    """Register the servicer (kept for callers of the old name; see :meth:`ServiceRegistration.of`)."""
    ServiceRegistration.of(servicer).add_to_server(servicer, server)
