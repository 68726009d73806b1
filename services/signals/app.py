"""The signals service process: engine on the bus, storage, fan-out and the gRPC server.

Features: the service keeps no indicators of its own. Analytics' live state (the one owner of the
streaming features, warmed once) publishes each closed 1-minute bar with its features on
``features:1m``; the engine's strategies run on those values (:meth:`SignalEngine.decide`). When the
live state runs in this process (the default ``make run``) its snapshots are taken as they are,
through :class:`~aiots.services.common.local_feed.LocalFeed`: no serialise, parse or bus hop
(``signals.local_features``).

Work split across replicas (all standard Redis mechanisms, nothing home-made):
- features of closed 1m bars: a group per replica (each replica evaluates every bar in order;
  deterministic ids: the store's ON CONFLICT records each once, the broker's ring gives each once);
- option quotes: a group per replica (every replica keeps the whole chain and open signals);
- signal events: pub/sub broadcast ``signals`` (every replica fans out to its subscribers);
- exits seen by several replicas: the conditional UPDATE in the store lets exactly one announce.

Latency: a new signal is announced (this replica's subscribers, then the bus broadcast for the other
replicas) *before* it is stored. This replica's subscribers get it at once; its bus events (the
broadcast, and the ``signals`` topic) queue for an announcer task that sends them when the loop next
waits, i.e. after the bar close's burst, so the burst awaits no Redis round trip and serialises no
event (``signals.bus_announce_queue`` bounds the queue; stop sends what is left). The store writes
run in order on one background task (:meth:`SignalsApp._persist_loop`), off the bar's critical path.
A ``since`` replay merges the broker's ring of recent announcements with the stored rows, so a
reconnect loses nothing that was announced but not yet stored; the writer waits for a
``persist_quiet_s`` pause in announcements, so a bar close's burst of signals is announced before
any insert runs. The subscribers' streams take their messages when the loop next waits, i.e. after
the burst when the features arrive in this process: each stream write wakes grpc's poller thread and
a reader on this host, and mid-burst those wake-ups took the loop's CPU from the next symbols
(writing after each announcement gave a lower median and a higher p99: docs/performance.md, signals
round 11, which also retired the ``sched_yield`` after announcing of round 10). After start-up the
process's objects are frozen out of the cyclic GC (``signals.gc_freeze``: a full collection walked
them for 100-250 ms on the bar path). Contract selection runs on the event loop: it takes ~1 ms (p50
in bench/signals.py), less than a thread hop costs on a loaded machine, and the selection code holds
the GIL anyway."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from aiots.core import conventions as cv
from aiots.core.conventions import iv_rank
from aiots.services.bus.base import Delivery
from aiots.services.bus.consume import handle_each
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.after_burst import AfterBurst
from aiots.services.common.gc_tuning import freeze_startup_heap
from aiots.services.common.health import runtime_dependencies
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.common.telemetry import metrics
from aiots.services.features.conversions import params_from_proto, snapshot_from_event
from aiots.services.features.state import Snapshot, SymbolFeatures
from aiots.services.signals.config import ConfigSource
from aiots.services.signals.conversions import signal_from_proto, signal_to_proto
from aiots.services.signals.engine import SignalEngine
from aiots.services.signals.fanout import Broker
from aiots.services.signals.features import feature_params
from aiots.services.signals.models import OptionQuote, Signal
from aiots.services.signals.service import SignalServicer
from aiots.services.signals.stats import return_ratio
from aiots.services.signals.store import SignalStore
from aiots.services.storage import queries
from aiots.v1 import common_pb2, events_pb2, signals_pb2

log = logging.getLogger(__name__)

BAR_TOPIC = "bars:1m"  # what the features are computed from (by analytics, not here)
FEATURE_TOPIC = "features:1m"
OPTION_TOPIC = "options:quotes"
SIGNAL_TOPIC = "signals"
SIGNAL_CHANNEL = "signals"
IV_RANK_REFRESH_S = 300.0
STOP_TASKS_TIMEOUT_S = 2.0
STOP_GRACE_S = 1.0
PERSIST_DRAIN_S = 5.0
#: start-up objects of this process are out of the cyclic GC's reach (see SignalsApp._settle_gc)
_gc_frozen = False


#: the expiry instant (``aiots.core.conventions.expiry_ns``: 16:00 ET or the early close), cached per
#: date: every option quote event asks, and a chain has few expiries
expiry_ns = functools.lru_cache(maxsize=4096)(cv.expiry_ns)


def quote_from_event(ev: events_pb2.OptionQuoteEvent) -> OptionQuote:
    c = ev.contract
    return OptionQuote(
        occ_symbol=ev.symbol,
        underlying=c.underlying,
        expiry=c.expiry,
        expiry_ns=expiry_ns(c.expiry),
        strike=c.strike,
        is_call=c.right == common_pb2.OPTION_RIGHT_CALL,
        bid=ev.bid,
        ask=ev.ask,
        bid_size=ev.bid_size,
        ask_size=ev.ask_size,
        last=ev.last,
        volume=ev.volume,
        open_interest=ev.open_interest,
        ts_ns=ev.ts_event,
        multiplier=c.multiplier or 100,
    )


class SignalsApp:
    """Implements :class:`aiots.services.common.runtime.ServiceApp`."""

    name = "signals"

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        s = rt.settings
        self.rt = rt
        self.cfg = s.signals
        self._port = self.cfg.port if port is None else port
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.store = SignalStore(rt.db)
        self.iv_ranks: dict[str, float] = {}
        self.engine = SignalEngine(
            ConfigSource(self.cfg.strategies_file),
            iv_rank=lambda sym: self.iv_ranks.get(sym, math.nan),
            dividend_yield=s.market.dividend_yield,
            execution=s.execution.model(),
        )
        self.engine.on_candidate = lambda strategy, outcome: metrics.signal_candidates.add(
            1, {"strategy": strategy, "outcome": outcome}
        )
        self.broker = Broker(
            self.cfg.subscriber_queue,
            on_drop=lambda: metrics.subscriber_drops.add(1, {"stream": "signals", "reason": "overflow"}),
            ring_size=self.cfg.announce_ring,
        )
        self.servicer = SignalServicer(
            self.store,
            self.broker,
            symbols=s.symbols,
            strategies=self.engine.strategy_names,
            heartbeat_s=self.cfg.heartbeat_s,
            max_streams_per_subject=self.cfg.max_streams_per_subject,
            stored=self.stored,
        )
        self.server: GrpcServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        #: store writes, in announce order: (new signals to insert, updates to close and announce)
        #: (the announced versions as sent: the engine keeps mutating its own objects)
        self._persist: deque[tuple[list[signals_pb2.Signal], list[Signal]]] = deque()
        self._persist_wake = asyncio.Event()  # set: writes are queued
        self._persist_idle = asyncio.Event()  # set: nothing queued and no write in progress
        self._persist_idle.set()
        self._persister: asyncio.Task[None] | None = None
        #: store writes queued so far (the writer waits until this stops moving)
        self._announces = 0
        self.bars_seen = 0
        self._last_event_ns = 0
        #: open time of the newest bar whose features were evaluated, per symbol
        self._last_bar_ns: dict[str, int] = {}
        self._params_seen: events_pb2.FeatureParams | None = None
        #: unsubscribes from analytics' in-process features (None: the features come over the bus)
        self._unlisten: Callable[[], None] | None = None
        self._local_params: events_pb2.FeatureParams | None = None
        #: new-signal broadcasts of this replica not yet heard back (the in-process bus hands the
        #: listener the same bytes object: its own echo is dropped unparsed), by id()
        self._own: dict[int, bytes] = {}
        #: the bus events of the new signals announced here, sent when the loop next waits
        self._bus_announcer: AfterBurst[signals_pb2.Signal] = AfterBurst(
            self._announce_on_bus, self.cfg.bus_announce_queue, "signals-bus-announce"
        )

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    async def start(self) -> None:
        for sig in await self.store.open_signals():
            self.engine.track(sig)
        bus = self.rt.need_bus("signals")
        symbols = self.rt.settings.symbols
        listener = bus.listen(SIGNAL_CHANNEL)
        start_listener = getattr(listener, "start", None)
        if start_listener is not None:
            await start_listener()
        self._update_open_gauge()
        metrics.queue_capacity.set(self.cfg.subscriber_queue, {"queue": "signals_subscriber"})
        self._spawn(self._fanout(listener))
        self._persister = asyncio.ensure_future(self._persist_loop())
        self._bus_announcer.start()
        # Every replica evaluates every bar's features (a group of its own): cooldowns are per-symbol
        # state that must see each bar in order. Signal ids are deterministic per (bar close, symbol,
        # strategy), so the store's ON CONFLICT records each signal once and a subscriber gets it once.
        local = LocalFeed.of(self.rt)
        if self.cfg.local_features and local.has_producer(FEATURE_TOPIC):
            # analytics runs in this process: its snapshots as they are (no serialise, parse or bus hop)
            log.info("signals: strategies run on the features of analytics' live state in this process")
            self._unlisten = local.listen(FEATURE_TOPIC, self._on_local_features)
        else:
            log.info(
                "signals: strategies run on the features analytics publishes on %s (run analytics too)", FEATURE_TOPIC
            )
            bar_group = f"signals-features-{self.replica}"
            self._spawn(
                self._consume(
                    bus.consume(FEATURE_TOPIC, symbols, group=bar_group, consumer=self.replica),
                    bar_group,
                    self._on_features,
                )
            )
        chain_group = f"signals-chain-{self.replica}"
        self._spawn(
            self._consume(
                bus.consume(OPTION_TOPIC, symbols, group=chain_group, consumer=self.replica),
                chain_group,
                self._on_option_quote,
            )
        )
        self._spawn(self._refresh_iv_ranks())
        self.server = await start_server([ServiceRegistration.of(self.servicer)], host=self.cfg.host, port=self._port)
        await self.server.watch(runtime_dependencies(self.rt), self.cfg)
        if self.cfg.gc_freeze:
            self._settle_gc()

    def _settle_gc(self) -> None:
        """Exempt what start-up left alive from the cyclic GC (:func:`freeze_startup_heap`: 100-250 ms
        pauses on the bar path in bench/signals.py), once per process. The market calendar is built
        first (the engine builds it lazily, on the first bar)."""
        global _gc_frozen
        if _gc_frozen:  # once per process (several apps start in a test run)
            return
        SignalEngine.may_open(time.time_ns(), self.engine.config)
        freeze_startup_heap()
        _gc_frozen = True

    async def stop(self) -> None:
        """Stop consuming, then stop the server (open streams get the grace period)."""
        if self.server is not None:
            await self.server.set_serving(False)
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_TASKS_TIMEOUT_S)
            for t in pending:
                log.warning("signals: background task did not stop in time: %r", t)
        await self._bus_announcer.stop(STOP_TASKS_TIMEOUT_S)
        await self._drain_persist()
        if self.server is not None:
            await self.server.server.stop(STOP_GRACE_S)

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _consume(
        self, it: AsyncIterator[Delivery], group: str, handle: Callable[[bytes], Awaitable[None]]
    ) -> None:
        await handle_each(self.rt.need_bus("signals"), it, group, handle, "signals", self._consumed)

    def _consumed(self, d: Delivery) -> None:
        topic = d.stream.split(":v1:", 1)[-1].rsplit(":", 1)[0]
        metrics.bus_consumed.add(1, {"topic": topic, "group": "signals"})
        if self._last_event_ns:
            metrics.bus_lag.set(
                (time.time_ns() - self._last_event_ns) / cv.NS_PER_S, {"topic": topic, "group": "signals"}
            )

    async def _on_features(self, payload: bytes) -> None:
        """One closed bar with its features from the bus (computed by analytics)."""
        ev = events_pb2.FeatureEvent.FromString(payload)
        self._last_event_ns = ev.ts_event
        if ev.bar.interval not in ("", "1m"):
            return
        if not self._new_bar(ev.symbol, ev.ts_event):
            return
        if ev.params != self._params_seen:
            self._check_params(ev.params)
        await self._evaluate(snapshot_from_event(ev))

    async def _on_local_features(self, item: tuple[Snapshot, events_pb2.FeatureParams]) -> None:
        """One closed bar with its features from analytics' live state in this process: the snapshot
        the bus event would carry (:func:`snapshot_from_event` of it gives equal values)."""
        snap, params = item
        bar = snap.bar
        self._last_event_ns = bar.ts_ns
        if bar.interval_ns != cv.NS_PER_MIN or not self._new_bar(bar.symbol, bar.ts_ns):
            return
        if params is not self._local_params:  # the owner sends one params object: compared once
            self._local_params = params
            if params != self._params_seen:
                self._check_params(params)
        await self._evaluate(snap)

    def _new_bar(self, symbol: str, ts_ns: int) -> bool:
        """Record a bar open time (ns) of ``symbol``; False for a redelivered or duplicate bar (one far
        behind follows a re-warm by the owner and is taken)."""
        if not SymbolFeatures.accepts(self._last_bar_ns.get(symbol, -1), ts_ns):
            return False
        self._last_bar_ns[symbol] = ts_ns
        return True

    async def _evaluate(self, snap: Snapshot) -> None:
        """Strategies on one bar's features, then contract selection and the announcements."""
        self.bars_seen += 1
        async with self._lock:
            ideas, updates = self.engine.decide(snap)  # tens of microseconds
            # Contract selection (a few IV solves on the pre-filtered contracts): ~1 ms, on the
            # loop; a thread hop would cost more than it saves (see the module docstring).
            new = self.engine.select(snap.bar, ideas) if ideas else []
            await self._emit(new, updates)

    def _check_params(self, params: events_pb2.FeatureParams) -> None:
        """Warn (once per periods seen) when the features were computed with other periods than this
        replica's strategy file sets (a file edited and not yet read by analytics: restart it)."""
        self._params_seen = events_pb2.FeatureParams()
        self._params_seen.CopyFrom(params)
        mine = feature_params(self.engine.config)
        theirs = params_from_proto(params)
        if theirs != mine:
            log.warning(
                "signals: features computed with %s, the strategy file sets %s; restart analytics to apply",
                theirs,
                mine,
            )

    async def _on_option_quote(self, payload: bytes) -> None:
        ev = events_pb2.OptionQuoteEvent.FromString(payload)
        self._last_event_ns = ev.ts_event
        q = quote_from_event(ev)
        async with self._lock:
            updates = self.engine.on_option_quote(q)
            await self._emit([], updates)

    async def _emit(self, new: list[Signal], updates: list[Signal]) -> None:
        """Announce new signals now (this replica's subscribers first, then every replica through
        the bus), and queue the store writes; exits are stored before they are announced (the
        conditional UPDATE picks the one replica that announces an exit)."""
        announced: list[signals_pb2.Signal] = []
        to_store: list[signals_pb2.Signal] = []
        for sig in new:
            first = self.broker.announced(sig.id)
            if first is not None:
                # Another replica announced this signal first (perhaps on another contract, if its
                # chain was a moment fresher): track the announced version, announce nothing, and
                # store that version too (idempotent: the announcer may die before it stores).
                self.engine.tracker.replace(signal_from_proto(first, expiry_ns(first.contract.expiry)))
                to_store.append(first)
                continue
            msg = signal_to_proto(sig)
            self.broker.publish(msg, False)
            announced.append(msg)
            to_store.append(msg)
            metrics.signals.add(1, {"strategy": sig.strategy, "status": sig.status.name})
        # the other replicas and the topic: after the burst (see the module docstring)
        await self._bus_announcer.put(announced)
        if to_store or updates:
            self._announces += 1
            self._persist.append((to_store, updates))
            self._persist_idle.clear()
            self._persist_wake.set()
        # (the open-signals gauge is updated by the store writes, off this path)
        # No yield to the subscribers' streams here: they write when the loop next waits, after
        # the bar close's other symbols (see the module docstring).

    async def _announce_on_bus(self, sigs: list[signals_pb2.Signal]) -> None:
        """New signals' bus events, in announce order: each broadcast to the other replicas, then all on
        the ``signals`` topic in one ``publish_many`` (failures logged; a Redis down keeps the outbox)."""
        bus = self.rt.need_bus("signals")
        in_process = isinstance(bus, InProcessBus)
        events: list[tuple[str, bytes]] = []
        for msg in sigs:
            ts = msg.created_at.ToNanoseconds()
            ev = events_pb2.SignalEvent(symbol=msg.symbol, ts_event=ts, signal=msg, is_update=False)
            raw = ev.SerializeToString()  # serialised once for the channel and the topic
            if in_process:
                self._own[id(raw)] = raw
                if len(self._own) > self.cfg.announce_ring:  # echoes the listener dropped (overflow)
                    del self._own[next(iter(self._own))]
            events.append((msg.symbol, raw))
            try:
                await bus.broadcast(SIGNAL_CHANNEL, raw)
            except Exception:
                log.exception("signals: broadcast of %s to the other replicas failed", msg.id)
        try:
            await bus.publish_many(SIGNAL_TOPIC, events)
        except Exception:
            log.exception("signals: %d new signals not published on %s", len(events), SIGNAL_TOPIC)

    async def _persist_loop(self) -> None:
        """Store writes after a pause of ``persist_quiet_s`` in announcements (a write's CPU would delay
        a bar close's next announcements): the new signals queued meanwhile in one insert, then the
        exits in order (an exit is never stored before its signal)."""
        quiet_s = self.cfg.persist_quiet_s
        while True:
            await self._persist_wake.wait()
            seen = -1
            while quiet_s > 0 and seen != self._announces:
                seen = self._announces
                await asyncio.sleep(quiet_s)
            while self._persist:  # what queued while waiting goes in one write: its signals in one insert
                queued, self._persist = self._persist, deque()
                new, updates = [m for b, _ in queued for m in b], [u for _, b in queued for u in b]
                try:
                    await self._store(new, updates)
                except Exception:
                    ids = [s.id for s in new] + [s.id for s in updates]
                    log.exception("signals: failed to store signals", extra={"signals": ids})
            self._persist_wake.clear()
            self._persist_idle.set()

    async def stored(self, timeout_s: float = PERSIST_DRAIN_S) -> None:
        """Wait until the store writes queued so far are done (at most ``timeout_s``)."""
        if self._persister is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._persist_idle.wait(), timeout_s)

    async def _drain_persist(self) -> None:
        """Finish the queued store writes (within ``PERSIST_DRAIN_S``), then stop the writer."""
        if self._persister is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._persist_idle.wait(), PERSIST_DRAIN_S)
        if self._persist:
            log.warning("signals: %d store writes not done at stop", len(self._persist))
        self._persister.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._persister
        self._persister = None

    async def _store(self, new: list[signals_pb2.Signal], updates: list[Signal]) -> None:
        bus = self.rt.need_bus("signals")
        if updates:  # an exit goes on the bus after its signal's announcement
            await self._bus_announcer.flush()
        batch = [(signal_from_proto(msg, expiry_ns(msg.contract.expiry)), msg) for msg in new]
        inserted = await self.store.insert_many(batch)  # one round trip
        for sig, _msg in batch:
            if sig.id not in inserted:
                # Another replica stored this id first: follow the stored version.
                stored = await self.store.get(sig.id)
                if stored is not None:
                    async with self._lock:
                        self.engine.tracker.replace(signal_from_proto(stored, expiry_ns(stored.contract.expiry)))
        for sig in updates:
            exit_msg = signal_to_proto(sig)  # converted once: stored, published and broadcast
            if await self.store.close(sig, exit_msg):
                metrics.signals.add(1, {"strategy": sig.strategy, "status": sig.status.name})
                metrics.signal_return.record(
                    return_ratio(sig.pnl_pct), {"strategy": sig.strategy, "status": sig.status.name}
                )
                ev = events_pb2.SignalEvent(symbol=sig.symbol, ts_event=sig.exit_ns, signal=exit_msg, is_update=True)
                raw = ev.SerializeToString()  # serialised once for the topic and the channel
                await bus.publish(SIGNAL_TOPIC, sig.symbol, raw)
                await bus.broadcast(SIGNAL_CHANNEL, raw)
        if new or updates:
            self._update_open_gauge()

    def _update_open_gauge(self) -> None:
        counts = dict.fromkeys(self.engine.strategy_names, 0) | self.engine.tracker.open_counts()
        for strategy, n in counts.items():
            metrics.signals_open.set(n, {"strategy": strategy})

    async def _fanout(self, listener: Any) -> None:
        async for payload in listener:
            if self._own.pop(id(payload), None) is payload:
                continue  # this replica's own announcement, already fanned out by _emit
            ev = events_pb2.SignalEvent.FromString(payload)
            self.broker.publish(ev.signal, ev.is_update)
            metrics.queue_depth.set(self.broker.deepest_queue(), {"queue": "signals_subscriber"})

    async def _refresh_iv_ranks(self) -> None:
        """IV rank per underlying from the stored ATM IV history (refreshed periodically)."""
        while True:
            for sym in self.rt.settings.symbols:
                try:
                    h = await queries.atm_iv_history(self.rt.db, sym)
                except Exception:
                    log.warning("signals: IV history unavailable for %s", sym, exc_info=True)
                    continue
                iv = h.iv[~np.isnan(h.iv)]
                if len(iv) >= 2:
                    self.iv_ranks[sym] = iv_rank(float(iv[-1]), iv)
            await asyncio.sleep(IV_RANK_REFRESH_S)


async def create_app(rt: Runtime, *, port: int | None = None) -> SignalsApp:
    """Build (not start) the signals service for the shared runtime."""
    return SignalsApp(rt, port)
