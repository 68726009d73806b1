"""Service replicas as separate ``aiots serve`` processes (issue 18, item 16).

A :class:`Replica` runs one service on a reserved port with its own metrics port and outbox
directory; the caller passes the shared environment (DATABASE_URL, REDIS_URL, namespace). It is
killed with SIGKILL (a crash: no drain, no acks, no flush) or stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.core.conventions import NS_PER_S
from aiots.gateway.model import PACKAGE, SERVICE_SECTIONS
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.signals.app import BAR_TOPIC, OPTION_TOPIC
from aiots.v1 import events_pb2
from tests.integration.gateway.ports import free_port
from tests.integration.signals.test_engine_e2e import BREAKOUT_MINUTE, MIN, T0, chain_events, scripted_bars
from tests.integration.wait import until

#: settings section -> the gRPC service name its readiness is reported under
SERVICE_NAMES = {section: f"{PACKAGE}.{short}" for short, section in SERVICE_SECTIONS.items()}
STOP_WAIT_S = 15.0
KILL_WAIT_S = 10.0
STORE_SETTLE_S = 10.0  # announced signals reach the table within this


class Replica:
    """One ``aiots serve SERVICE`` process."""

    def __init__(
        self, name: str, env: dict[str, str], tmp: Path, service: str = "signals", extra: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.service = service
        self.port = free_port()
        self.log = tmp / f"{service}-{name}.log"
        env = {**env, "AIOTS_REDIS__OUTBOX_DIR": str(tmp / f"outbox-{service}-{name}"), **(extra or {})}
        if service == "ingestion":
            env["AIOTS_INGESTION__SPILL_DIR"] = str(tmp / f"spill-{name}")
        cmd = [sys.executable, "-m", "aiots.services.cli.main", "serve", service, "--port", str(self.port),
               "--metrics-port", str(free_port())]  # fmt: skip
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def ready(self, limit_s: float = 60.0) -> None:
        """Wait until the service reports SERVING (its readiness)."""
        deadline = time.monotonic() + limit_s
        async with grpc.aio.insecure_channel(self.target) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    r = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAMES[self.service]), timeout=1)
                    if r.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                assert time.monotonic() < deadline, self.log.read_text()[-3000:]
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(KILL_WAIT_S)

    def stop(self) -> None:
        stop_all([self])


def stop_all(replicas: list[Replica]) -> None:
    """SIGTERM every replica still running, then wait for each (SIGKILL after STOP_WAIT_S): the
    graceful stops (drain, flush) run side by side."""
    running = [r for r in replicas if r.proc.poll() is None]
    for r in running:
        r.proc.send_signal(signal.SIGTERM)
        r.proc.send_signal(signal.SIGCONT)  # one a test froze (SIGSTOP) handles it too
    for r in running:
        try:
            r.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            r.kill()


# --- scripted events (the signals engine's end-to-end script, re-labelled per symbol) ----------

SYMBOLS = ("AAPL", "MSFT")
#: the option chain is quoted 10 s before the breakout bar closes
QUOTE_TS = T0 + (BREAKOUT_MINUTE + 1) * MIN - 10 * NS_PER_S
#: the chain is on the bus before the breakout bar
CHAIN_LEAD_S = 0.5


def relabel(symbol: str, events: list[Any]) -> list[Any]:
    """The scripted AAPL events re-labelled for ``symbol`` (same prices: the same signal fires)."""
    out = []
    for ev in events:
        raw = ev.SerializeToString().replace(b"AAPL", symbol.encode()[:4].ljust(4, b" "))
        out.append(type(ev).FromString(raw))
    return out


async def publish_breakout(bus: RedisStreamsBus, symbol: str) -> None:
    """An option chain then the bars of a momentum breakout: one ``momentum_breakout`` signal."""
    await bus.publish_many(OPTION_TOPIC, [(symbol, ev) for ev in relabel(symbol, chain_events(200.0, QUOTE_TS))])
    await asyncio.sleep(CHAIN_LEAD_S)
    await bus.publish_many(BAR_TOPIC, [(symbol, ev) for ev in relabel(symbol, scripted_bars())])


def bar_events(symbol: str, start: int, n: int) -> list[tuple[str, events_pb2.BarEvent]]:
    """``n`` one-minute bars of ``symbol`` from minute ``start`` (flat: no signal)."""
    out = []
    for i in range(start, start + n):
        ev = relabel(symbol, scripted_bars()[:1])[0]
        ev.ts_event = T0 + i * MIN
        ev.bar.ts.FromNanoseconds(ev.ts_event)
        out.append((symbol, ev))
    return out


async def groups_ready(
    url: str, ns: str, minimum: int = 2, topics: tuple[str, ...] = (BAR_TOPIC, OPTION_TOPIC)
) -> None:
    """At least ``minimum`` consumer groups exist on every stream of ``topics`` (else '$' would skip events)."""
    r = aioredis.from_url(url)
    counts: list[int] = []
    try:
        for _ in range(300):
            counts = []
            for topic in topics:
                for sym in SYMBOLS:
                    try:
                        counts.append(len(await r.xinfo_groups(f"{ns}:v1:{topic}:{sym}")))
                    except Exception:
                        counts.append(0)
            if min(counts) >= minimum:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"consumer groups not ready: {counts}")
    finally:
        await r.aclose()


async def consumers_ready(url: str, ns: str, group: str, minimum: int = 2, topic: str = BAR_TOPIC) -> None:
    """At least ``minimum`` consumers read ``group`` on every stream of ``topic``."""
    r = aioredis.from_url(url, decode_responses=True)
    consumers = [0]
    try:
        for _ in range(300):
            try:
                consumers = [len(await r.xinfo_consumers(f"{ns}:v1:{topic}:{s}", group)) for s in SYMBOLS]
            except Exception:
                consumers = [0]
            if min(consumers) >= minimum:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"consumers of {group!r} not ready: {consumers}")
    finally:
        await r.aclose()


async def group_state(url: str, ns: str, group: str, topic: str = BAR_TOPIC) -> list[dict[str, Any]]:
    """XINFO GROUPS of ``group`` on each stream of ``topic``, with the stream's length."""
    r = aioredis.from_url(url, decode_responses=True)
    try:
        out = []
        for sym in SYMBOLS:
            stream = f"{ns}:v1:{topic}:{sym}"
            g = next((x for x in await r.xinfo_groups(stream) if x["name"] == group), None)
            out.append({"stream": stream, "length": await r.xlen(stream), **(g or {})})
        return out
    finally:
        await r.aclose()


async def pending_of(url: str, ns: str, group: str, consumer: str, topic: str = BAR_TOPIC) -> int:
    """Entries of ``group`` on ``topic`` pending on consumers named ``consumer...`` (XINFO CONSUMERS)."""
    r = aioredis.from_url(url, decode_responses=True)
    try:
        n = 0
        for sym in SYMBOLS:
            for c in await r.xinfo_consumers(f"{ns}:v1:{topic}:{sym}", group):
                if c["name"].startswith(consumer):
                    n += int(c["pending"])
        return n
    finally:
        await r.aclose()


async def assert_received_every_stored_signal_once(dsn: str, received: list[str]) -> None:
    """The oracle of the resume tests: the ids a client received are exactly the signals table's
    (every stored signal once, nothing else), and both symbols produced signals.

    A signal is announced before it is stored (the store write waits for a pause in announcements),
    so the table is read once it holds as many signals as the client received, or after
    ``STORE_SETTLE_S``: a missing or an extra row still fails."""
    conn = await asyncpg.connect(dsn)
    try:

        async def caught_up() -> bool:
            return int(await conn.fetchval("SELECT count(*) FROM signals")) >= len(set(received))

        with contextlib.suppress(AssertionError):
            await until(caught_up, STORE_SETTLE_S)
        stored = [r["id"] for r in await conn.fetch("SELECT id FROM signals ORDER BY id")]
        symbols = {r["symbol"] for r in await conn.fetch("SELECT symbol FROM signals")}
    finally:
        await conn.close()
    assert symbols == set(SYMBOLS)
    assert sorted(received) == stored, (received, stored)
