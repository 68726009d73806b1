"""Signals benchmark (not a test): tick-to-subscriber latency, engine cost, fan-out throughput.

    python bench/signals.py [--quick]

1. Engine cost: ``SignalEngine.on_bar`` for 9 symbols x every strategy on random-walk bars
   (contract selection runs whenever a strategy fires).
2. Fan-out: messages/s delivered to 10, 100 and 500 gRPC subscribers by SignalService
   (serialise once, pre-encoded bytes) beside a plain grpc.aio server-streaming servicer
   (generated stub, each subscriber's message serialised by grpc) measured in the same run.
   Clients run in a separate process so the server's loop is what is measured.
3. Tick-to-subscriber latency: 2,000 trades/s over the nine symbols, time-compressed so a
   1-minute bar closes every 50 ms; the trade that closes a bar is timestamped when it is fed;
   the bar goes on the in-process bus, through analytics' live state (the features' one owner, which
   hands them to the signals service in-process as under ``make run`` and publishes them on
   ``features:1m``), through the engine, into PostgreSQL (DATABASE_URL or
   127.0.0.1:5432 or AIOTS_BENCH_PG, a scratch database) and out to a gRPC subscriber; we report p50/p99 from
   that trade to the client receiving the signal. (The bar aggregation here is a minimal
   stand-in for the ingestion bar builder; its cost is a few microseconds.) An unreported first
   run (``--warmup``) takes the process's one-off costs; each run has a process of its own (runs one
   after another in one process grew slower); the subscriber process freezes its start-up heap out
   of the cyclic GC (a full collection of the imported bench stalls it 100-300 ms).
   ``--compare-yield`` interleaves the path before round 11 (after each announcement the loop
   yields until the subscribers' streams took it, so they write mid-burst);
   ``--compare-bus`` interleaves the path before round 3 (features parsed from the bus, no
   ``gc.freeze``, each store write at once); ``--compare`` and ``--compare-local`` older anchors.
   ``--bus redis`` runs the same path on Redis Streams and pub/sub (``--redis``, a scratch
   namespace deleted at the end) instead of the in-process bus: the compose deployment's bus, where
   each bus call of the path is a round trip. The bars of a close go out in one ``publish_many``.
   ``--analytics-process`` (with ``--bus redis``) runs analytics' live state in a process of its own,
   as compose does: the signals service takes the features from ``features:1m`` on Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import multiprocessing as mp
import os
import sys
import time
import uuid
from typing import Any, NamedTuple

import asyncpg
import grpc
import numpy as np

from aiots.core import conventions as cv
from aiots.core import options as opt
from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.in_process import InProcessBus
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common import event_loop
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import ServiceRegistration, start_server
from aiots.services.common.settings import UNDERLYINGS, Settings
from aiots.services.features.conversions import bar_from_event
from aiots.services.signals import app as signals_app
from aiots.services.signals.app import BAR_TOPIC, SignalsApp
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.conversions import signal_to_proto
from aiots.services.signals.engine import SignalEngine
from aiots.services.signals.fanout import Broker
from aiots.services.signals.models import Bar, Direction, GreeksTU, OptionQuote, Reason, Signal
from aiots.services.signals.service import SERVICE_NAME, SignalServicer, add_to_server
from aiots.services.signals.store import SignalStore
from aiots.services.storage.migrate import migrate
from aiots.v1 import common_pb2, events_pb2, signals_pb2, signals_pb2_grpc

MIN_NS = cv.NS_PER_MIN
DAY_NS = cv.NS_PER_DAY
T0 = 1_760_016_600 * cv.NS_PER_S


def chain_for(symbol: str, spot: float, now_ns: int, vol: float = 0.3) -> list[OptionQuote]:
    exp_ns = now_ns + 9 * DAY_NS
    T = 9 / 365
    out = []
    strikes = np.round(np.linspace(spot * 0.9, spot * 1.1, 21), 0)
    for is_call in (True, False):
        prices = np.asarray(opt.american_price(spot, strikes, T, cv.DEFAULT_RATE, vol, 0.0, is_call))
        for k, p in zip(strikes, prices, strict=True):
            if p < 0.1:
                continue
            out.append(
                OptionQuote(
                    f"{symbol:<6}251017{'C' if is_call else 'P'}{int(k * 1000):08d}",
                    symbol,
                    "2025-10-17",
                    exp_ns,
                    float(k),
                    is_call,
                    round(float(p) * 0.99, 2),
                    round(float(p) * 1.01, 2),
                    volume=500,
                    open_interest=2000,
                    ts_ns=now_ns,
                )
            )
    return out


def sample_signal() -> Signal:
    q = chain_for("AAPL", 100.0, T0)[10]
    return Signal(
        id="01K7000000000000000000000A",
        created_ns=T0,
        symbol="AAPL",
        underlying_price=100.0,
        direction=Direction.BULLISH,
        strategy="momentum_breakout",
        contract=q,
        entry_price=q.mid,
        target_price=q.mid * 1.08,
        stop_price=q.mid * 0.95,
        horizon_ns=T0 + 3600 * 10**9,
        confidence=0.7,
        expected_return_pct=12.0,
        reward_risk=1.6,
        greeks=GreeksTU(0.5, 0.05, -0.1, 0.2, 0.03),
        iv=0.3,
        iv_rank=40.0,
        reasons=(Reason("volume / avg", 2.0, 1.5, "heavy volume"),),
        projected_move=1.5,
    )


def fast_config() -> SignalsConfig:
    cfg = SignalsConfig()
    cfg.cooldown_bars = 0
    return cfg


# ------------------------------------------------------------------------------------------------
def bench_engine(bars_per_symbol: int) -> tuple[float, int, int]:
    rng = np.random.default_rng(1)
    eng = SignalEngine(fast_config())
    for s in UNDERLYINGS:
        for q in chain_for(s, 100.0, T0):
            eng.chains.update(q)
    series = {}
    for s in UNDERLYINGS:
        r = rng.normal(0, 0.0015, bars_per_symbol)
        close = 100 * np.exp(np.cumsum(r))
        vol = rng.lognormal(7, 0.5, bars_per_symbol)
        series[s] = (close, vol)
    fired = 0
    t = time.perf_counter()
    for i in range(bars_per_symbol):
        for s in UNDERLYINGS:
            c, v = series[s]
            o = c[i - 1] if i else c[0]
            b = Bar(s, T0 + i * MIN_NS, o, max(o, c[i]) * 1.0005, min(o, c[i]) * 0.9995, c[i], v[i])
            fired += len(eng.on_bar(b)[0])
    dt = time.perf_counter() - t
    return dt / (bars_per_symbol * len(UNDERLYINGS)) * cv.NS_PER_S, fired, eng.evaluations


# ------------------------------------------------------------------------------------------------
class PlainServicer(signals_pb2_grpc.SignalServiceServicer):
    """The baseline: per-subscriber queues of proto messages, serialised by grpc per subscriber."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[Any]] = []

    async def SubscribeSignals(self, request: Any, context: Any) -> Any:
        q: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.append(q)
        while True:
            item = await q.get()
            if item is None:
                return
            yield item


#: seconds the fan-out server waits for its handlers to end before it stops (a benchmark ends cleanly)
FANOUT_DRAIN_S = 5.0


def _client_proc(port: int, n_subs: int, n_msgs: int, ready: Any, result: Any) -> None:
    async def run() -> None:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(max(1, n_subs // 50))]
        stubs = [signals_pb2_grpc.SignalServiceStub(ch) for ch in channels]
        calls = [stubs[i % len(stubs)].SubscribeSignals(signals_pb2.SubscribeSignalsRequest()) for i in range(n_subs)]
        first: list[float] = []
        last: list[float] = []

        async def drain(call: Any) -> None:
            got = 0
            async for m in call:
                if m.WhichOneof("event") == "heartbeat":
                    continue
                if got == 0:
                    first.append(time.perf_counter())
                got += 1
                if got == n_msgs:
                    last.append(time.perf_counter())
                    return

        tasks = [asyncio.ensure_future(drain(c)) for c in calls]
        ready.set()
        await asyncio.gather(*tasks)
        result.put((min(first), max(last)))
        for ch in channels:
            await ch.close()

    asyncio.run(run())


async def bench_fanout(n_subs: int, n_msgs: int, plain: bool) -> float:
    base_sig = signal_to_proto(sample_signal())
    sigs = []
    for i in range(n_msgs):  # distinct, increasing ids (the stream de-duplicates by id)
        m = signals_pb2.Signal()
        m.CopyFrom(base_sig)
        m.id = f"01K7{i:022d}"
        sigs.append(m)
    if plain:
        servicer: Any = PlainServicer()  # type: ignore[abstract]  # the stream method only: the anchor
        reg = ServiceRegistration(SERVICE_NAME, signals_pb2_grpc.add_SignalServiceServicer_to_server, servicer)
    else:
        broker = Broker(queue_size=n_msgs + 10)
        servicer = SignalServicer(
            SignalStore(None), broker, symbols=UNDERLYINGS, strategies=["momentum_breakout"], heartbeat_s=60
        )
        reg = ServiceRegistration(SERVICE_NAME, add_to_server, servicer)
    gs = await start_server([reg], host="127.0.0.1", port=0)
    ctx = mp.get_context("spawn")
    ready, result = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_client_proc, args=(gs.port, n_subs, n_msgs, ready, result))
    proc.start()
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, ready.wait, 1.0):
        if not proc.is_alive():
            raise RuntimeError(f"benchmark client process died (exit code {proc.exitcode})")
    while (len(servicer.queues) if plain else broker.subscribers) < n_subs:
        await asyncio.sleep(0.01)
    for sig in sigs:
        if plain:
            resp = signals_pb2.SubscribeSignalsResponse(signal=sig)
            for q in servicer.queues:
                q.put_nowait(resp)
        else:
            broker.publish(sig, False)
        await asyncio.sleep(0)
    t_first, t_last = await loop.run_in_executor(None, result.get, True, 600)
    proc.join()
    if plain:
        for q in servicer.queues:
            q.put_nowait(None)
    else:  # the clients hung up: wait until every handler has seen it, so stop() cancels none
        deadline = time.monotonic() + FANOUT_DRAIN_S
        while broker.subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    await gs.stop(FANOUT_DRAIN_S)
    return float(n_subs * n_msgs / (t_last - t_first))


# ------------------------------------------------------------------------------------------------
#: the latency run's session: Monday 2025-10-13 09:30 New York; bars walk 270 minutes a session
#: from 09:45, then the next day (strategies only open between the opening delay and the close buffer)
LAT_T0 = 1_760_362_200 * cv.NS_PER_S
LAT_FIRST_MIN, LAT_MINUTES = 15, 270
#: features: bar closed -> analytics computed its features; bus: -> the signals service has the
#: FeatureEvent (the pre-issue-20 anchor computes the features in signals: bus, then features)
HOPS = ("features", "bus", "strategies", "selection", "announce", "subscriber")
HOPS_BEFORE = ("bus", "features", "strategies", "selection", "announce", "subscriber")
HOPS_SPLIT = ("bus", "strategies", "selection", "announce", "subscriber")  # features: another process


END_SYMBOL = "~END"


def _latency_client(port: int, result: Any) -> None:
    """Subscribe, stamp each signal's arrival, hand the stamps back at the end marker."""

    async def run() -> None:
        stamps: list[tuple[tuple[str, int], float]] = []
        # This process imported the whole bench (spawn): a full collection of that heap takes
        # 100-300 ms and would be measured as the server's latency. Its start-up objects are
        # frozen out of the cyclic GC, as the server's are (signals.gc_freeze).
        gc.collect()
        gc.freeze()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
            while True:
                m = await call.read()
                if m is grpc.aio.EOF:
                    break
                if m.WhichOneof("event") != "signal":
                    continue
                if m.signal.symbol == END_SYMBOL:
                    break
                stamps.append(((m.signal.symbol, m.signal.created_at.ToNanoseconds()), time.perf_counter()))
            call.cancel()
        result.put(stamps)

    asyncio.run(run())


async def loop_join(proc: Any, timeout_s: float = 10.0) -> None:
    """Join a child process without blocking the loop; kill it if it overstays."""
    await asyncio.get_running_loop().run_in_executor(None, proc.join, timeout_s)
    if proc.is_alive():
        proc.kill()
        proc.join()


def lat_bar_ts(i: int) -> int:
    """Open time (ns UTC) of the latency run's ``i``-th 1-minute bar."""
    return int(LAT_T0 + (i // LAT_MINUTES) * DAY_NS + (LAT_FIRST_MIN + i % LAT_MINUTES) * MIN_NS)


def latency_config() -> SignalsConfig:
    """Every fired idea gets a contract (the run measures latency, not strategy quality): the cost
    and expected-value floors are off; the selection still runs in full (IV solves, levels)."""
    cfg = fast_config()
    sc = cfg.selection
    sc.min_expected_value_pct, sc.min_reward_risk, sc.max_stop_pct, sc.spread_cover = -1e9, 0.0, 100.0, 0.0
    return cfg


def _latency_process(warmup_s: float, secs: float, run_kw: dict[str, Any], conn: Any) -> None:
    if warmup_s > 0:  # the process's first run pays one-off costs (lazy imports, first calls)
        shape = {k: run_kw[k] for k in ("redis_url", "analytics_process") if k in run_kw}
        event_loop.run_as_service(bench_latency(warmup_s, 2000, 0.05, **shape))
    conn.send(event_loop.run_as_service(bench_latency(secs, 2000, 0.05, **run_kw)))
    conn.close()


def latency_in_fresh_process(warmup_s: float, secs: float, run_kw: dict[str, Any]) -> LatencyRun:
    """One latency run (after an unreported warm-up) in a process of its own: runs one after another
    in one process grew slower (p99 13 -> 59 ms over four), which skewed an interleaved comparison."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_latency_process, args=(warmup_s, secs, run_kw, child))
    proc.start()
    child.close()
    out: LatencyRun | None = None
    with contextlib.suppress(EOFError):  # the child died before sending
        out = parent.recv()
    proc.join()
    if out is None:
        raise RuntimeError(f"latency run process died (exit code {proc.exitcode})")
    return out


def _analytics_process(redis_url: str, namespace: str, ready: Any, stop: Any) -> None:
    """Analytics' live state in a process of its own (the compose shape): bars from ``bars:1m`` on
    Redis, features published on ``features:1m`` after each burst; runs until ``stop`` is set."""

    async def run() -> None:
        settings = Settings(redis={"namespace": namespace})
        bus = RedisStreamsBus(redis_url, settings.redis)
        live = LiveState(Runtime(settings=settings, bus=bus))  # no storage to warm from, no local feed
        await live.start()
        ready.set()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.wait)
        await live.stop()
        await bus.close()

    event_loop.run_as_service(run())


def _yield_after_each_announcement(app: SignalsApp) -> None:
    """The announcement path before round 11: after each announcing call the loop yields (at most
    eight times) until the subscribers' streams took their message, then once more, so each stream
    writes before the bar close's next symbol is evaluated. (The old code yielded when a signal was
    announced; here when one is new: the same in this bench, which has no second replica.)"""
    emit = app._emit

    async def emit_then_yield(new: list[Any], updates: list[Any]) -> None:
        await emit(new, updates)
        if new:
            for _ in range(8):
                if not app.broker.deepest_queue():
                    break
                await asyncio.sleep(0)
            await asyncio.sleep(0)

    app._emit = emit_then_yield  # type: ignore[method-assign]


class Hops:
    """perf_counter stamps per (symbol, bar close ns) along the path, from instance wrappers."""

    def __init__(self) -> None:
        self.t: dict[tuple[str, int], dict[str, float]] = {}

    def stamp(self, key: tuple[str, int], hop: str) -> None:
        self.t.setdefault(key, {})[hop] = time.perf_counter()

    def install(self, app: SignalsApp) -> None:
        """Wrap the app's handler, the feature update, engine halves and broker (before ``app.start``)."""
        from aiots.services.features import state

        hops, eng, broker = self, app.engine, app.broker
        on_features, decide, select, publish = app._on_features, eng.decide, eng.select, broker.publish
        on_local = app._on_local_features
        feat_update = state.SymbolFeatures.update

        async def on_features_w(payload: bytes) -> None:
            ev = events_pb2.FeatureEvent.FromString(payload)
            hops.stamp((ev.symbol, ev.ts_event + MIN_NS), "bus")
            await on_features(payload)

        async def on_local_w(item: Any) -> None:
            bar = item[0].bar
            hops.stamp((bar.symbol, bar.close_ts_ns), "bus")
            await on_local(item)

        def feat_w(self_: Any, bar: Bar) -> Any:
            out = feat_update(self_, bar)
            hops.stamp((bar.symbol, bar.close_ts_ns), "features")
            return out

        def decide_w(snap: Any) -> Any:
            out = decide(snap)
            hops.stamp((snap.bar.symbol, snap.bar.close_ts_ns), "strategies")
            return out

        def select_w(bar: Bar, ideas: Any) -> Any:
            out = select(bar, ideas)
            hops.stamp((bar.symbol, bar.close_ts_ns), "selection")
            return out

        def publish_w(sig: Any, is_update: bool) -> int:
            n = int(publish(sig, is_update))
            if not is_update and n >= 0:
                hops.stamp((sig.symbol, sig.created_at.ToNanoseconds()), "announce")
            return n

        app._on_features = on_features_w  # type: ignore[method-assign]
        app._on_local_features = on_local_w  # type: ignore[method-assign]
        state.SymbolFeatures.update = feat_w  # type: ignore[method-assign,assignment]
        eng.decide = decide_w  # type: ignore[method-assign]
        eng.select = select_w  # type: ignore[method-assign]
        broker.publish = publish_w  # type: ignore[method-assign]

    def on_bars(self, handle: Any) -> Any:
        """The anchor's bar handler, stamped on arrival."""

        async def wrapped(payload: bytes) -> None:
            ev = events_pb2.BarEvent.FromString(payload)
            self.stamp((ev.bar.symbol, ev.ts_event + MIN_NS), "bus")
            await handle(payload)

        return wrapped


async def _before_on_bar(app: SignalsApp, payload: bytes) -> None:
    """The pre-issue-20 path, kept here as the anchor: the features computed in signals from the bars,
    selection in a worker thread, each signal stored before it is announced, and announced to this
    replica's subscribers through the bus."""
    from aiots.services.signals.app import SIGNAL_CHANNEL, SIGNAL_TOPIC

    ev = events_pb2.BarEvent.FromString(payload)
    if not ev.closed or ev.bar.interval not in ("", "1m"):
        return
    bar = bar_from_event(ev)
    async with app._lock:
        ideas, _updates = app.engine.evaluate(bar)
        new = await asyncio.to_thread(app.engine.select, bar, ideas) if ideas else []
        bus = app.rt.need_bus("signals")
        for sig in new:
            if not await app.store.insert(sig):
                continue
            sev = events_pb2.SignalEvent(
                symbol=sig.symbol, ts_event=sig.created_ns, signal=signal_to_proto(sig), is_update=False
            )
            await bus.publish(SIGNAL_TOPIC, sig.symbol, sev)
            await bus.broadcast(SIGNAL_CHANNEL, sev)


async def _local_on_bar(app: SignalsApp, payload: bytes) -> None:
    """The path before the features had one owner (issue 19): the signals service computed the
    features itself from ``bars:1m`` (one bus hop fewer), the rest as the live service does now."""
    ev = events_pb2.BarEvent.FromString(payload)
    if not ev.closed or ev.bar.interval not in ("", "1m"):
        return
    bar = bar_from_event(ev)
    async with app._lock:
        ideas, updates = app.engine.evaluate(bar)
        new = app.engine.select(bar, ideas) if ideas else []
        await app._emit(new, updates)


class LatencyRun(NamedTuple):
    """One latency run: (the bar close's ns, the signal's tick-to-subscriber latency ms) per signal
    received, in arrival order, and the time spent in each hop (ms)."""

    arrivals: list[tuple[int, float]]
    per_hop: dict[str, list[float]]

    @property
    def lat(self) -> list[float]:
        """Every signal's latency (ms), in arrival order."""
        return [ms for _, ms in self.arrivals]


def by_third(arrivals: list[tuple[int, float]]) -> list[tuple[float, float, float]]:
    """(signals per bar close, p50 ms, p99 ms) over each third of the run's bar closes (the
    closes that sent a signal, in time order): the bench's load grows as the run goes on."""
    closes = sorted({ts for ts, _ in arrivals})
    out = []
    for k in range(3):
        part = set(closes[k * len(closes) // 3 : (k + 1) * len(closes) // 3])
        xs = [ms for ts, ms in arrivals if ts in part]
        out.append((len(xs) / max(1, len(part)), pct(xs, 50), pct(xs, 99)))
    return out


async def bench_latency(
    seconds: float,
    trades_per_s: int,
    bar_wall_s: float,
    before: bool = False,
    local: bool = False,
    over_bus: bool = False,
    yield_each: bool = False,
    redis_url: str | None = None,
    analytics_process: bool = False,
) -> LatencyRun:
    """Tick-to-subscriber latencies (ms) and, per hop, the time spent in it (ms) for the signals.

    ``over_bus``: the path before the in-process features (analytics' events parsed from the bus,
    no ``gc.freeze`` after start-up, store writes right after each announcement). ``yield_each``:
    the path before round 11 (the loop yields after each announcement until the streams took it).
    ``redis_url``: Redis Streams and pub/sub as the bus (a scratch namespace, deleted at the end).
    ``analytics_process`` (with ``redis_url``): analytics' live state runs in a process of its own and
    the signals service takes the features from the bus, as in the compose deployment."""
    if analytics_process and redis_url is None:
        raise ValueError("analytics_process needs redis_url (processes share no in-process bus)")
    server = os.environ.get("AIOTS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    db = f"aiots_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    pool = await asyncpg.create_pool(f"{server}/{db}", min_size=2, max_size=4)
    try:
        async with pool.acquire() as con:
            await migrate(con, timescale="off")
        sig_cfg: dict[str, Any] = {"port": 0, "heartbeat_s": 30, "subscriber_queue": 100_000}
        if over_bus or before or local:
            sig_cfg.update(local_features=False, gc_freeze=False, persist_quiet_s=0.0)
            gc.unfreeze()  # an earlier run of this process froze its start-up objects
        elif analytics_process:
            sig_cfg.update(local_features=False)  # the features come over Redis from the other process
        signals_app._gc_frozen = False  # (and this run's start freezes them again when it may)
        ns = f"aiots_bench_{uuid.uuid4().hex[:8]}"
        settings = Settings(signals=sig_cfg, redis={"namespace": ns})
        bus: InProcessBus | RedisStreamsBus = (
            InProcessBus(settings.redis) if redis_url is None else RedisStreamsBus(redis_url, settings.redis)
        )
        rt = Runtime(settings=settings, db=pool, bus=bus)  # one process: analytics and signals share it
        app = SignalsApp(rt, port=0)
        app.engine._static = latency_config()
        app.engine._source = None
        hops = Hops()
        hops.install(app)
        if yield_each:
            _yield_after_each_announcement(app)
        live = None
        ctx = mp.get_context("spawn")
        analytics: Any = None
        analytics_stop = ctx.Event()
        in_signals = before or local  # the signals service computes the features itself from bars:1m
        if analytics_process:
            assert redis_url is not None
            analytics_ready = ctx.Event()
            analytics = ctx.Process(
                target=_analytics_process, args=(redis_url, ns, analytics_ready, analytics_stop), daemon=True
            )
            analytics.start()
            if not await asyncio.to_thread(analytics_ready.wait, 60):
                raise RuntimeError("the analytics process did not start in 60 s")
        elif not in_signals:  # the features' one owner, on the same bus (no storage to warm from)
            live_rt = Runtime(settings=settings, bus=bus)  # no storage to warm from
            live_rt.register(LocalFeed.of(rt))  # the process-wide feed: signals takes the features in-process
            live = LiveState(live_rt)
            await live.start()
        await app.start()
        if in_signals:
            group = "bench-bars"
            handle = hops.on_bars(functools.partial(_before_on_bar if before else _local_on_bar, app))
            app._spawn(app._consume(bus.consume(BAR_TOPIC, UNDERLYINGS, group=group, consumer=group), group, handle))
        chains = {s: chain_for(s, 100.0, LAT_T0) for s in UNDERLYINGS}
        closed_at: dict[tuple[str, int], float] = {}
        arrivals: list[tuple[int, float]] = []
        got: dict[tuple[str, int], float] = {}
        # The subscriber runs in its own process (as a client would): its receive stamps are
        # perf_counter (CLOCK_MONOTONIC, one clock for every process on the host).
        result = ctx.Queue()
        client = ctx.Process(target=_latency_client, args=(app.port, result), daemon=True)
        client.start()
        try:
            while not app.broker.subscribers:
                if not client.is_alive():
                    raise RuntimeError(f"benchmark client process died (exit code {client.exitcode})")
                await asyncio.sleep(0.01)
            rng = np.random.default_rng(5)
            per_bar = max(1, int(trades_per_s * bar_wall_s / len(UNDERLYINGS)))
            n_bars = int(seconds / bar_wall_s)
            state = {s: [100.0, 100.0, 100.0, 100.0, 0.0] for s in UNDERLYINGS}  # o h l c v
            t_start = time.perf_counter()
            for i in range(n_bars):
                ts = lat_bar_ts(i)
                for k, s in enumerate(UNDERLYINGS):
                    phase = (i + 3 * k) % 25  # symbols break out on different bars, as in a real market
                    st = state[s]
                    for j in range(per_bar):
                        if phase == 20 and j > per_bar // 2:
                            px = 101.2 + 0.01 * j  # breakout through the 20-bar high on heavy volume
                            size = 300.0
                        else:
                            px = 100.0 + 0.3 * np.sin(i / 3.0) + rng.normal(0, 0.02)
                            size = 100.0
                        if j == 0:
                            st[:] = [px, px, px, px, 0.0]
                        st[1], st[2], st[3] = max(st[1], px), min(st[2], px), px
                        st[4] += size
                    # the option quote stream's stand-in: the chain re-quoted within the bar
                    for q in chains[s]:
                        app.engine.chains.update(
                            dataclasses.replace(q, ts_ns=ts + MIN_NS - 1, bid_size=50, ask_size=50)
                        )
                # the first trade of the next minute closes this bar: stamp it now
                t_close = time.perf_counter()
                closing: list[tuple[str, events_pb2.BarEvent]] = []
                for s in UNDERLYINGS:
                    o, h, lo, c, v = state[s]
                    closed_at[(s, ts + MIN_NS)] = t_close
                    bar = common_pb2.Bar(symbol=s, interval="1m", open=o, high=h, low=lo, close=c, volume=v)
                    ev = events_pb2.BarEvent(bar=bar, ts_event=ts, closed=True)
                    if redis_url is None:
                        await bus.publish(BAR_TOPIC, s, ev)
                    else:
                        closing.append((s, ev))
                if closing:  # one round trip for the close's bars
                    await bus.publish_many(BAR_TOPIC, closing)
                delay = t_start + (i + 1) * bar_wall_s - time.perf_counter()
                await asyncio.sleep(max(0.0, delay))
            await asyncio.sleep(1.0)
            app.broker.publish(signals_pb2.Signal(id="~", symbol=END_SYMBOL), False)
            loop = asyncio.get_running_loop()
            for key, t_sub in await loop.run_in_executor(None, result.get, True, 60):
                if key in closed_at:
                    got[key] = t_sub
                    arrivals.append((key[1], (t_sub - closed_at[key]) * 1e3))
        finally:
            await loop_join(client)
            await app.stop()
            if live is not None:
                await live.stop()
            if analytics is not None:
                analytics_stop.set()
                await loop_join(analytics)
            if isinstance(bus, RedisStreamsBus):  # the scratch namespace goes
                keys = [k async for k in bus.redis.scan_iter(match=f"{ns}:*")]
                if keys:
                    await bus.redis.delete(*keys)
            await bus.close()
        order = HOPS_BEFORE if in_signals else HOPS_SPLIT if analytics_process else HOPS
        per_hop: dict[str, list[float]] = {h: [] for h in order}
        for key, t_sub in got.items():
            stamps = hops.t.get(key, {})
            prev = closed_at[key]
            if not all(hop in stamps for hop in order[:-1]):
                continue
            for hop in order[:-1]:
                per_hop[hop].append((stamps[hop] - prev) * 1e3)
                prev = stamps[hop]
            per_hop["subscriber"].append((t_sub - prev) * 1e3)
        return LatencyRun(arrivals, per_hop)
    finally:
        await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p)) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    ap.add_argument("--only", choices=["engine", "fanout", "latency"], help="run one part")
    ap.add_argument("--compare", action="store_true", help="latency: the pre-issue-20 path too, interleaved")
    ap.add_argument(
        "--compare-local", action="store_true", help="latency: features computed in signals (before issue 19) too"
    )
    ap.add_argument(
        "--compare-bus",
        action="store_true",
        help="latency: the features over the in-process bus, no gc.freeze, stores at once (before this round) too",
    )
    ap.add_argument("--pairs", type=int, default=2, help="latency: interleaved pairs with --compare*")
    ap.add_argument(
        "--compare-yield",
        action="store_true",
        help="latency: the streams written after each announcement (before round 11) too",
    )
    ap.add_argument(
        "--bus",
        choices=["in-process", "redis"],
        default="in-process",
        help="latency: the bus of the path (redis: Redis Streams and pub/sub at --redis)",
    )
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="latency: Redis for --bus redis")
    ap.add_argument(
        "--analytics-process",
        action="store_true",
        help="latency, with --bus redis: analytics' live state in a process of its own (the compose shape)",
    )
    ap.add_argument(
        "--warmup", type=float, default=2.0, help="latency: seconds of an unreported first run (first calls, imports)"
    )
    a = ap.parse_args()
    if a.analytics_process and a.bus != "redis":
        ap.error("--analytics-process needs --bus redis (processes share no in-process bus)")
    run = {a.only} if a.only else {"engine", "fanout", "latency"}
    print(
        f"machine: {os.cpu_count()}-core shared x86_64 VM, Python {sys.version.split()[0]}, "
        f"services' event loop: {Settings().event_loop}"
    )
    if "engine" in run:
        ns, fired, evals = bench_engine(500 if a.quick else 3000)
        print(
            f"\nengine: {ns / 1e3:.1f} us per closed bar per symbol (all 3 strategies; {fired} signals, {evals} evals)"
        )
    if "fanout" in run:
        print("\nfan-out (messages/s delivered, clients in another process)")
        print(f"{'subscribers':>11} | {'SignalService':>14} | {'plain grpc.aio':>14} | ratio")
        for n in (10, 100, 500):
            msgs = max(20, (2000 if not a.quick else 400) // max(1, n // 10))
            ours = event_loop.run_as_service(bench_fanout(n, msgs, plain=False))
            base = event_loop.run_as_service(bench_fanout(n, msgs, plain=True))
            print(f"{n:>11} | {ours:>14,.0f} | {base:>14,.0f} | {ours / base:.2f}", flush=True)
    if "latency" in run:
        secs = 10 if a.quick else 30
        print(
            f"\ntick-to-subscriber (2,000 trades/s, 9 symbols, a bar close every 50 ms, {secs} s per run, bus: {a.bus}"
            + (", analytics in a process of its own)" if a.analytics_process else ")")
        )
        print("before = the pre-issue-20 path (store, then announce through the bus; selection in a thread)")
        print("local = features computed in signals from bars:1m (before analytics became their one owner)")
        print("bus = features parsed from the in-process bus, no gc.freeze, each store write at once (before round 3)")
        print("yield = the loop yields after each announcement until the streams took it (before round 11)")
        labels = ["after"]
        for flag, other in (
            (a.compare, "before"),
            (a.compare_local, "local"),
            (a.compare_bus, "bus"),
            (a.compare_yield, "yield"),
        ):
            if flag:
                labels = [other, "after"] * a.pairs
        for label in labels:
            load0 = os.getloadavg()[0]
            run_kw: dict[str, Any] = {"before": label == "before", "local": label == "local",
                                      "over_bus": label == "bus", "yield_each": label == "yield",
                                      "redis_url": a.redis if a.bus == "redis" else None,
                                      "analytics_process": a.analytics_process}  # fmt: skip
            result = latency_in_fresh_process(a.warmup, secs, run_kw)
            lat, per_hop, arrivals = result.lat, result.per_hop, result.arrivals
            print(
                f"{label:<6} n={len(lat)} p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms, "
                f"max {max(lat, default=float('nan')):.2f} ms, load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
            )
            thirds = by_third(arrivals)
            print(
                "  by third of the run: signals per signalling close "
                + " / ".join(f"{n:.1f}" for n, _, _ in thirds)
                + ", p99 "
                + " / ".join(f"{p99:.2f}" for _, _, p99 in thirds)
                + " ms"
            )
            print(f"  {'hop (ms)':<12} | {'p50':>6} | {'p99':>6} | {'max':>6}")
            for h, xs in per_hop.items():
                print(f"  {h:<12} | {pct(xs, 50):>6.3f} | {pct(xs, 99):>6.3f} | {max(xs, default=float('nan')):>6.3f}")


if __name__ == "__main__":
    main()
