"""Live indicator state: the one owner of the streaming features per (symbol, interval).

For every configured symbol and interval (``settings.analytics.live_intervals`` that have a bar topic
on the bus, :data:`aiots.services.common.topics.LIVE_BAR_INTERVALS`: ``1m``) the service keeps one
:class:`aiots.services.features.state.SymbolFeatures`: the signal strategies' features (periods from
the strategy file, :class:`~aiots.services.features.params.FeatureParams`) plus the core's O(1)
streaming classes (``IndicatorSpec.stream``) of ``settings.analytics.live_indicators`` with their
default parameters. Each closed ``BarEvent`` from topic ``bars:<interval>`` updates it once, and the
resulting snapshot is published as a ``FeatureEvent`` on ``features:<interval>`` (the signals
service reads it instead of computing features itself). The state is pickled to the cache (key
``<ns>:v1:analytics:live:<symbol>:<interval>``) every ``checkpoint_interval_s`` and on stop, and
restored on start, so a restart resumes warm with identical values, topped up with the bars
stored while the service was down (a checkpoint of other periods or indicators, or more than
``live_warmup_bars`` behind storage, is not resumed). Without a checkpoint the state is warmed from the last
``live_warmup_bars`` stored bars: warm-up happens here only. The consumer group is created at the
stream's newest entry before the warm-up (a bar published meanwhile is queued; a new group never
replays the retained history, which storage already holds). Each replica has a group of its own
(``live_consumer_group``'s ``{replica}``): a symbol's features need every one of its bars in order, so
replicas don't share them; each publishes, signals drops the repeats, and a replica drops its group on
stop (one killed leaves a group behind, read by nobody). A live bar more than
:data:`~aiots.services.features.state.REWARM_GAP_NS` behind the state (the feed went back: the
simulator replaying the last session after a restart, a DBN replay) re-warms that symbol from the
stored bars before it, when it was just published; one that waited on the bus longer than that (a
Redis entry reclaimed from a dead consumer, a backlog) is history and is dropped, as is a bar
slightly behind (a duplicate). The streams reproduce
the batch functions bit for bit over the same bars. An interval no bar topic carries (``1d``:
rolled up from stored bars) is not kept live: those answers are computed from storage.

The bar → features path makes no database call (except that re-warm) and no thread hop. Consumers in
this process (the signals service under ``aiots up``) get each snapshot first, as it is, through
:class:`~aiots.services.common.local_feed.LocalFeed`. The bus events follow once the loop turns: while
the follower runs, each snapshot is queued, and a publisher task serialises the queue and publishes it
in one ``publish_many`` (in bar order) when the follower next waits. So a bar close's burst (nine
symbols, each evaluated by the in-process signals) carries no serialisation and no Redis round trip
of its earlier symbols' events. The queue holds at most ``analytics.publish_queue`` snapshots (a
follower that reaches it publishes them itself first), and stop publishes what is left.

Metrics: ``aiots_bus_consumed_total`` and ``aiots_bus_lag_seconds`` (now minus the bar's
``ts_event``, its open time) by topic and group per consumed event; checkpoint reads count in
``aiots_cache_requests_total{op="get"}`` (hit|miss|error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Sequence

import numpy as np

from aiots.core.conventions import NS_PER_MS, NS_PER_S
from aiots.services.analytics.indicators import SPECS, IndicatorCall, IndicatorValues
from aiots.services.analytics.store import metered_get
from aiots.services.common.after_burst import AfterBurst
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.telemetry import metrics
from aiots.services.common.topics import LIVE_BAR_INTERVALS
from aiots.services.common.topics import bars as bar_topic
from aiots.services.common.topics import features as features_topic
from aiots.services.features.conversions import bar_from_event, params_to_proto, snapshot_to_event
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import REWARM_GAP_NS, Snapshot, SymbolFeatures
from aiots.services.storage import queries
from aiots.v1 import events_pb2

log = logging.getLogger(__name__)
STOP_STEP_TIMEOUT_S = 2.0


def waited_ns(message_id: str, now_ns: int) -> int:
    """How long a delivery waited on the bus: now minus the insertion time a Redis stream id
    (``<ms>-<seq>``) carries; 0 for ids without a time (the in-process bus: ``0-<seq>``)."""
    ms = message_id.split("-", 1)[0]
    return max(0, now_ns - int(ms) * NS_PER_MS) if ms.isdigit() and int(ms) > 0 else 0


class LiveState:
    """See module docstring. ``latest`` answers from memory; ``start``/``stop`` run the follower."""

    def __init__(self, rt: Runtime, names: Sequence[str] | None = None) -> None:
        self.rt = rt
        self.cfg = rt.settings.analytics
        names = list(self.cfg.live_indicators) if names is None else names
        # vwap needs session anchors the bar stream does not carry: computed from storage only
        self.names = [n for n in names if n != "vwap" and getattr(SPECS.get(n), "stream", None) is not None]
        self.symbols = list(rt.settings.symbols)
        self.intervals = [i for i in self.cfg.live_intervals if i in LIVE_BAR_INTERVALS]
        if dropped := sorted(set(self.cfg.live_intervals) - set(self.intervals)):
            log.info("live state: %s not kept live (no bar topic; computed from storage)", dropped)
        #: the feature periods, from the strategy file the signals service reads too
        self.params = FeatureParams.load(rt.settings.signals.strategies_file)
        self._params_msg = params_to_proto(self.params)  # converted once, sent with every event
        self.state: dict[tuple[str, str], SymbolFeatures] = {}
        #: closed bars folded in from the bus (each is one feature computation and one event)
        self.computed = 0
        #: bumped whenever any state changes (a bar folded in, a re-warm, a restore): an answer
        #: derived from the state at one value holds until it moves
        self.changes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.namespace = rt.settings.redis.namespace
        #: this replica's consumer group on the bar topics (its own unless a fixed name is configured)
        self.group = self.cfg.live_consumer_group.format(replica=f"{socket.gethostname()}-{os.getpid()}")
        self._own_group = self.group != self.cfg.live_consumer_group
        #: consumers of the features in this process (the signals service under ``aiots up``) take the
        #: snapshots from here as they are, before the event is serialised for the bus
        self.local = LocalFeed.of(rt)
        self._withdraw: list[Callable[[], None]] = []
        #: the bus events, (topic, symbol, snapshot) in bar order, published when the follower waits
        self._publisher: AfterBurst[tuple[str, str, Snapshot]] = AfterBurst(
            self._publish, self.cfg.publish_queue, "analytics-live-publish"
        )

    def key(self, symbol: str, interval: str) -> str:
        return f"{self.namespace}:v1:analytics:live:{symbol}:{interval}"

    # -- state ---------------------------------------------------------------------------------------

    def new_state(self) -> SymbolFeatures:
        """An empty state: the strategy features and the named live indicators (default parameters)."""
        named = {n: (SPECS[n].stream(**SPECS[n].params), tuple(SPECS[n].inputs)) for n in self.names}
        return SymbolFeatures(self.params, named)

    def _usable(self, st: object) -> bool:
        """A checkpoint of this state's shape (periods and named indicators)."""
        return isinstance(st, SymbolFeatures) and st.params == self.params and list(st.named) == self.names

    async def _stored(self, symbol: str, interval: str, start: int | None, end: int | None) -> queries.Bars | None:
        """The last ``live_warmup_bars`` stored bars opening in [start, end) (ns), None without storage."""
        if self.rt.db is None:
            return None
        try:
            return await queries.get_bars(self.rt.db, symbol, interval, start, end, self.cfg.live_warmup_bars)
        except Exception:
            log.warning("live state: no stored bars to warm %s %s", symbol, interval, exc_info=True)
            return None

    @staticmethod
    async def _fold(st: SymbolFeatures, bars: queries.Bars) -> None:
        """Stored bars into ``st`` in a thread (``st`` is an object nothing else reads meanwhile)."""
        width = queries.INTERVAL_NS[bars.interval]
        cols = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
        await asyncio.to_thread(st.warm_columns, bars.symbol, width, *cols)

    async def _warmed(self, symbol: str, interval: str, end_ns: int | None = None) -> SymbolFeatures:
        """A new state warmed from the last ``live_warmup_bars`` stored bars opening before ``end_ns``
        (warmed in a thread on an object nothing else holds yet: the checkpoint task never sees it
        half-updated)."""
        st = self.new_state()
        bars = await self._stored(symbol, interval, None, end_ns)
        if bars is not None and len(bars):
            await self._fold(st, bars)
        return st

    async def restore(self, symbol: str, interval: str) -> SymbolFeatures:
        """From the checkpoint (topped up with the bars stored since), else warmed from stored bars,
        else empty."""
        st: object = None
        if self.rt.cache is not None:
            try:
                raw = await metered_get(self.rt.cache, self.key(symbol, interval))
                if raw is not None:
                    st = pickle.loads(raw)  # our own checkpoint, written by checkpoint()
            except Exception:
                log.warning("live checkpoint of %s %s unreadable; warming from storage", symbol, interval)
                st = None
        if st is not None and not self._usable(st):
            log.info("live checkpoint of %s %s has other periods or indicators; warming from storage", symbol, interval)
            st = None
        if isinstance(st, SymbolFeatures):
            # bars stored while the service was down: folded in, unless more than a warm-up's worth
            # (then the checkpoint is too old to continue and the state is warmed afresh)
            since = await self._stored(symbol, interval, st.last_ts_ns + 1, None)
            if since is not None and len(since) >= self.cfg.live_warmup_bars:
                st = None
            elif since is not None and len(since):
                await self._fold(st, since)
        state = st if isinstance(st, SymbolFeatures) else await self._warmed(symbol, interval)
        self.state[symbol, interval] = state
        self.changes += 1
        return state

    async def checkpoint(self) -> None:
        """Pickle every state to the cache (no TTL)."""
        if self.rt.cache is None:
            return
        items = [(self.key(s, i), pickle.dumps(st), None) for (s, i), st in self.state.items()]
        if items:
            await self.rt.cache.set_many(items)

    async def on_bar(self, event: events_pb2.BarEvent, fresh: bool = True) -> Snapshot | None:
        """Fold a closed bar into its (symbol, interval) state once and publish the features.

        ``fresh``: the bar was just published. Only then does a bar far behind the state mean the
        feed went back (re-warm); one that waited on the bus (reclaimed from a dead consumer, a
        backlog after a restart) is history the state already holds and is dropped."""
        if not event.closed:
            return None
        b = event.bar
        st = self.state.get((b.symbol, b.interval))
        if st is None:
            return None
        bar = bar_from_event(event)
        ts = bar.ts_ns
        if ts <= st.last_ts_ns:
            if ts >= st.last_ts_ns - REWARM_GAP_NS or not fresh:
                return None  # a duplicate, a late bar or one that waited on the bus
            log.info("live state: feed behind the state of %s %s; re-warming", b.symbol, b.interval)
            st = self.state[b.symbol, b.interval] = await self._warmed(b.symbol, b.interval, ts)
        snap = st.update(bar)
        self.changes += 1  # (a re-warm above changed the state too)
        if snap is None:
            return None
        self.computed += 1
        topic = features_topic(b.interval)
        if self.local.listening(topic):  # in-process consumers first: no serialise, no bus hop
            await self.local.deliver(topic, (snap, self._params_msg))
        if self.rt.bus is not None:
            await self._publisher.put(((topic, b.symbol, snap),))
        return snap

    # -- the bus events ------------------------------------------------------------------------------

    async def _publish(self, items: list[tuple[str, str, Snapshot]]) -> None:
        """Serialise and publish queued snapshots, one ``publish_many`` per topic, in bar order. A
        failure is logged and the events are dropped, as a failed ``publish`` was (a bus that is down
        keeps them in its outbox and does not raise)."""
        bus = self.rt.bus
        if bus is None:
            return
        by_topic: dict[str, list[tuple[str, events_pb2.FeatureEvent]]] = {}
        for topic, symbol, snap in items:
            by_topic.setdefault(topic, []).append((symbol, snapshot_to_event(snap, self._params_msg)))
        for topic, events in by_topic.items():
            try:
                await bus.publish_many(topic, events)
            except Exception:
                log.exception("live state: %d feature events on %s not published", len(events), topic)

    def latest(
        self, symbol: str, interval: str, calls: Sequence[IndicatorCall]
    ) -> tuple[np.ndarray, list[IndicatorValues]] | None:
        """Latest values from memory when every call is live with default params and warm; else None."""
        st = self.state.get((symbol, interval))
        if st is None or st.bars == 0:
            return None
        out = []
        for c in calls:
            s = st.named.get(c.name)
            if s is None or c.params != SPECS[c.name].params or not s.ready:
                return None
            val = s.value
            vals = val if isinstance(val, tuple) else (val,)
            names = SPECS[c.name].outputs
            names = (c.name,) if names == ("real",) else names
            out.append(
                IndicatorValues(c.name, c.params, [(n, np.array([float(v)])) for n, v in zip(names, vals, strict=True)])
            )
        return np.array([st.last_ts_ns], dtype=np.int64), out

    # -- follower ------------------------------------------------------------------------------------

    async def start(self) -> None:
        # The group exists before the state is warmed, from the newest entry on: a bar published
        # while warming is queued for us, and a new group never replays the stream's retained
        # history (bars the warm-up already read from storage, or older ones that would re-warm).
        if self.rt.bus is not None:
            for i in self.intervals:
                await self.rt.bus.ensure_group(bar_topic(i), self.symbols, group=self.group)
        for s in self.symbols:
            for i in self.intervals:
                await self.restore(s, i)
        if self.rt.bus is not None:
            self._publisher.start()
            for i in self.intervals:
                self._tasks.append(asyncio.create_task(self._follow(i), name=f"analytics-live-{i}"))
                self._withdraw.append(self.local.produces(features_topic(i)))
        self._tasks.append(asyncio.create_task(self._checkpoints(), name="analytics-checkpoint"))

    async def _follow(self, interval: str) -> None:
        group = self.group
        topic = bar_topic(interval)
        # one label value for every replica's own group (host-pid would grow without bound)
        labels = {"topic": topic, "group": self.cfg.live_consumer_group.format(replica="*")}
        consumer = f"analytics-{os.getpid()}-{id(self):x}"
        bus = self.rt.need_bus("analytics live state")
        stream = bus.consume(topic, self.symbols, group=group, consumer=consumer)  # group made by start()
        async for d in stream:
            ts_event = 0
            try:
                event = events_pb2.BarEvent.FromString(d.payload)
                ts_event = event.ts_event
                await self.on_bar(event, fresh=waited_ns(d.message_id, time.time_ns()) <= REWARM_GAP_NS)
            except Exception:
                log.exception("bad bar event on %s", d.stream)
            await bus.ack(d, group=group)
            metrics.bus_consumed.add(1, labels)
            if ts_event > 0:
                # now - the bar's ts_event (its open time: includes the bar's own length)
                metrics.bus_lag.set((time.time_ns() - ts_event) / NS_PER_S, labels)

    async def _checkpoints(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.checkpoint_interval_s)
            try:
                await self.checkpoint()
            except Exception:
                log.warning("live checkpoint failed", exc_info=True)

    async def stop(self) -> None:
        """Stop consuming and write a final checkpoint, each step bounded (Ctrl-C has 10 s for all)."""
        self._stop.set()
        for withdraw in self._withdraw:
            withdraw()
        self._withdraw.clear()
        for t in self._tasks:
            if t.get_name() != "analytics-checkpoint":
                t.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_STEP_TIMEOUT_S)
            for t in pending:
                log.warning("live state: task %s did not stop in time; cancelled", t.get_name())
                t.cancel()
        self._tasks.clear()
        await self._publisher.stop(STOP_STEP_TIMEOUT_S)  # the followers are done: what they queued goes now
        if self._own_group and self.rt.bus is not None:  # nobody else reads this replica's group
            for i in self.intervals:
                try:
                    await asyncio.wait_for(
                        self.rt.bus.drop_group(bar_topic(i), self.symbols, group=self.group), STOP_STEP_TIMEOUT_S
                    )
                except Exception:  # Redis down or slow: the group stays behind (a few bytes per stream)
                    log.warning("live state: could not drop consumer group %s", self.group, exc_info=True)
        try:
            await asyncio.wait_for(self.checkpoint(), STOP_STEP_TIMEOUT_S)
        except TimeoutError:
            log.warning("live state: final checkpoint did not finish in %.0f s", STOP_STEP_TIMEOUT_S)
