"""Live indicator state: streaming core indicators per (symbol, interval), fed from the bus.

For every configured symbol and interval (``settings.analytics.live_intervals`` that have a bar topic
on the bus, :data:`aiots.services.common.topics.LIVE_BAR_INTERVALS`: ``1m``) the service keeps
the core's O(1) streaming classes (``IndicatorSpec.stream``) of ``settings.analytics.live_indicators``
with their default parameters. Closed ``BarEvent``s from topic ``bars:<interval>`` update them; the
state is pickled to the cache (key ``<ns>:v1:analytics:live:<symbol>:<interval>``) every
``checkpoint_interval_s`` and on stop, and restored on start, so a restart resumes warm with
identical values. Without a checkpoint the state is warmed from the last ``live_warmup_bars``
stored bars (one vectorised ``update_many`` per stream). Values are those of the streams over
every bar they have seen (the streams reproduce the batch functions bit for bit over the same bars).
An interval no bar topic carries (``1d``: rolled up from stored bars) is not kept live: a state
nothing updates would answer from the past; those answers are computed from storage.

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiots.core.conventions import NS_PER_S
from aiots.services.analytics.indicators import SPECS, IndicatorCall, IndicatorValues
from aiots.services.analytics.store import metered_get
from aiots.services.common.runtime import Runtime
from aiots.services.common.telemetry import metrics
from aiots.services.common.topics import LIVE_BAR_INTERVALS
from aiots.services.common.topics import bars as bar_topic
from aiots.services.storage import queries
from aiots.v1 import events_pb2

log = logging.getLogger(__name__)
STOP_STEP_TIMEOUT_S = 2.0

_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass
class SymbolState:
    """Streams of one (symbol, interval) and the open time of the last bar folded in."""

    streams: dict[str, Any] = field(default_factory=dict)
    last_ts: int = 0
    bars: int = 0


def _new_state(names: Sequence[str]) -> SymbolState:
    st = SymbolState()
    for n in names:
        spec = SPECS.get(n)
        stream_cls = getattr(spec, "stream", None) if spec is not None else None
        if stream_cls is not None:
            st.streams[n] = stream_cls(**spec.params) if spec is not None else None
    return st


def _warm(st: SymbolState, bars: Any) -> None:
    """Fold stored bars (a storage ``Bars``, oldest first) into every stream in one call each."""
    new = np.asarray(bars.ts) > st.last_ts
    if not new.any():
        return
    cols = {c: np.ascontiguousarray(getattr(bars, c)[new], dtype=np.float64) for c in _COLUMNS}
    for n, s in st.streams.items():
        s.update_many(*[cols[i if i in _COLUMNS else "close"] for i in SPECS[n].inputs])
    st.last_ts = int(np.asarray(bars.ts)[new][-1])
    st.bars += int(new.sum())


def _update(st: SymbolState, ts: int, bar: dict[str, float]) -> None:
    """Fold one bar into every stream (a bar not newer than the last one is ignored)."""
    if ts <= st.last_ts:
        return
    for n, s in st.streams.items():
        s.update(*[bar[i if i in _COLUMNS else "close"] for i in SPECS[n].inputs])
    st.last_ts = ts
    st.bars += 1


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
        self.state: dict[tuple[str, str], SymbolState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self.namespace = rt.settings.redis.namespace

    def key(self, symbol: str, interval: str) -> str:
        return f"{self.namespace}:v1:analytics:live:{symbol}:{interval}"

    # -- state ---------------------------------------------------------------------------------------

    async def restore(self, symbol: str, interval: str) -> SymbolState:
        """From the checkpoint, else warmed from stored bars, else empty."""
        st: SymbolState | None = None
        if self.rt.cache is not None:
            try:
                raw = await metered_get(self.rt.cache, self.key(symbol, interval))
                if raw is not None:
                    st = pickle.loads(raw)  # our own checkpoint, written by checkpoint()
            except Exception:
                log.warning("live checkpoint of %s %s unreadable; warming from storage", symbol, interval)
                st = None
        if st is None:
            st = _new_state(self.names)
            if self.rt.db is not None:
                bars = await queries.get_bars(self.rt.db, symbol, interval, None, None, self.cfg.live_warmup_bars)
                if len(bars):
                    await asyncio.to_thread(_warm, st, bars)
        self.state[symbol, interval] = st
        return st

    async def checkpoint(self) -> None:
        """Pickle every state to the cache (no TTL)."""
        if self.rt.cache is None:
            return
        items = [(self.key(s, i), pickle.dumps(st), None) for (s, i), st in self.state.items()]
        if items:
            await self.rt.cache.set_many(items)

    def on_bar(self, event: events_pb2.BarEvent) -> None:
        """Fold a closed bar into its (symbol, interval) state."""
        if not event.closed:
            return
        b = event.bar
        st = self.state.get((b.symbol, b.interval))
        if st is None:
            return
        bar = {"open": b.open, "high": b.high, "low": b.low, "close": b.close, "volume": b.volume}
        _update(st, int(event.ts_event), bar)

    def latest(
        self, symbol: str, interval: str, calls: Sequence[IndicatorCall]
    ) -> tuple[np.ndarray, list[IndicatorValues]] | None:
        """Latest values from memory when every call is live with default params and warm; else None."""
        st = self.state.get((symbol, interval))
        if st is None or st.bars == 0:
            return None
        out = []
        for c in calls:
            s = st.streams.get(c.name)
            if s is None or c.params != SPECS[c.name].params or not s.ready:
                return None
            val = s.value
            vals = val if isinstance(val, tuple) else (val,)
            names = SPECS[c.name].outputs
            names = (c.name,) if names == ("real",) else names
            out.append(
                IndicatorValues(c.name, c.params, [(n, np.array([float(v)])) for n, v in zip(names, vals, strict=True)])
            )
        return np.array([st.last_ts], dtype=np.int64), out

    # -- follower ------------------------------------------------------------------------------------

    async def start(self) -> None:
        for s in self.symbols:
            for i in self.intervals:
                await self.restore(s, i)
        if self.rt.bus is not None:
            for i in self.intervals:
                self._tasks.append(asyncio.create_task(self._follow(i), name=f"analytics-live-{i}"))
        self._tasks.append(asyncio.create_task(self._checkpoints(), name="analytics-checkpoint"))

    async def _follow(self, interval: str) -> None:
        group = self.cfg.live_consumer_group
        topic = bar_topic(interval)
        labels = {"topic": topic, "group": group}
        consumer = f"analytics-{os.getpid()}-{id(self):x}"
        bus = self.rt.need_bus("analytics live state")
        stream = bus.consume(topic, self.symbols, group=group, consumer=consumer, start="0")
        async for d in stream:
            ts_event = 0
            try:
                event = events_pb2.BarEvent.FromString(d.payload)
                ts_event = event.ts_event
                self.on_bar(event)
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
        for t in self._tasks:
            if t.get_name() != "analytics-checkpoint":
                t.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_STEP_TIMEOUT_S)
            for t in pending:
                log.warning("live state: task %s did not stop in time; cancelled", t.get_name())
                t.cancel()
        self._tasks.clear()
        try:
            await asyncio.wait_for(self.checkpoint(), STOP_STEP_TIMEOUT_S)
        except TimeoutError:
            log.warning("live state: final checkpoint did not finish in %.0f s", STOP_STEP_TIMEOUT_S)
