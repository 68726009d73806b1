"""Scale-out under failure (issue 18, item 16): two replicas each of signals, analytics, ingestion
and portfolio (``aiots serve`` processes) behind a real Envoy configured by the gateway's own
generator (``gateway.upstream_endpoints``), on one private Redis and one PostgreSQL database; one
replica of each is killed with SIGKILL while a REST client reads the signal stream through Envoy.

What must hold, with the oracle of each:

- The REST NDJSON client that was on the killed signals replica reconnects through Envoy with
  ``since=<last id>`` and receives every stored signal exactly once. Oracle: the signals table.
- Unary REST calls to every service keep answering 200 from the moment of the kill (Envoy retries
  a call that met a dead replica on the survivor), and the dead replicas leave the rotation.
  Oracle: the HTTP status of each call; Envoy's own view of each host (admin ``/clusters``) and its
  retry counter.
- Work shared through a consumer group moves to the survivor: portfolio's follow group (each
  signal event handled by one replica) had entries pending on the killed replica (XINFO CONSUMERS)
  and ends with every entry read and none pending (XINFO GROUPS).

Analytics' live feature state is per symbol and must see every bar in order, so here each analytics
replica folds every bar in a group of its own (``analytics.live_consumer_group``); signals drops
the second copy of each bar's features. With the default shared group the two replicas would split
a symbol's bars and neither would compute the breakout (see docs/gateway.md, "Replicas").
Ingestion's collection jobs go through a consumer group of their own (services/ingestion/jobs.py);
here autostart is off and ingestion's reads are checked to survive the kill, and
``test_collection_failover.py`` kills the replica running a collection job and checks that the
survivor takes it over and stored data goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import RedisSettings, Settings
from aiots.services.portfolio.app import FOLLOW_GROUP
from aiots.services.portfolio.app import SIGNAL_TOPIC as SIGNAL_EVENTS
from aiots.services.signals.app import FEATURE_TOPIC, OPTION_TOPIC
from aiots.v1 import events_pb2
from tests.integration.bus.redis_fixtures import RedisProc
from tests.integration.gateway.ports import free_port, gateway_settings
from tests.integration.hardening.replicas import (
    SYMBOLS,
    Replica,
    assert_received_every_stored_signal_once,
    consumers_ready,
    group_state,
    groups_ready,
    pending_of,
    publish_breakout,
    stop_all,
)

pytestmark = pytest.mark.timeout(240)

NS = "scaleout"
#: the services run as two replicas each: the stream, the shared consumer group, the feature owner and
#: the feed. Cache and backtest are not run (their routes are unary like the others'); their clusters
#: point at reserved ports nothing listens on, never at a developer's stack.
SERVICES = ("signals", "analytics", "ingestion", "portfolio")
NOT_RUN = ("cache", "backtest")
#: the services whose readiness names their dependencies (``aiots.dep.*``)
REPORTS_DEPENDENCIES = ("signals", "analytics", "ingestion")
#: start-up of all replicas at once (seconds of CPU each; minutes on a machine shared with other work)
READY_LIMIT_S = 120.0
SUBSCRIBE = "/api/v1/signals/subscribe?symbols=AAPL&symbols=MSFT&strategies=momentum_breakout"
CALL = "OPTION_RIGHT_CALL"
#: unary calls, one per service, that answer 200 on an empty database
UNARY: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "/api/v1/signals?symbols=AAPL", None),
    ("GET", "/api/v1/data/bars/AAPL?limit=5", None),
    ("GET", "/api/v1/portfolio/accounts", None),
    (
        "POST",
        "/api/v1/analytics/options:price",
        {"contracts": [{"spot": 110, "strike": 100, "time_to_expiry": 0.5, "volatility": 0.2, "right": CALL}]},
    ),
)
#: pause between rounds of unary calls
UNARY_GAP_S = 0.05
EJECT_LIMIT_S = 10.0
SIGNAL_WAIT_S = 30.0
#: after the last expected signal, how long the resumed stream is watched for a repeat (2 heartbeats)
DUPLICATE_WATCH_S = 2.0


@dataclass
class Envoy:
    gateway: Gateway
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway.port}"

    async def clusters(self) -> dict[str, dict[str, str]]:
        """``cluster::host:port`` -> {stat: value} from the admin ``/clusters`` text."""
        out: dict[str, dict[str, str]] = {}
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.settings.gateway.admin_port}/clusters") as r,
        ):
            for line in (await r.text()).splitlines():
                parts = line.split("::")
                if len(parts) == 4:
                    out.setdefault(f"{parts[0]}::{parts[1]}", {})[parts[2]] = parts[3]
        return out

    async def stats(self, pattern: str) -> dict[str, int]:
        """Envoy's counters whose names match the regex ``pattern`` (admin ``/stats?filter=``)."""
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"http://127.0.0.1:{self.settings.gateway.admin_port}/stats?filter={pattern}") as r,
        ):
            return {
                k: int(v) for k, v in (ln.split(": ", 1) for ln in (await r.text()).splitlines()) if v.strip().isdigit()
            }


def _env(dsn: str, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AIOTS_REDIS__NAMESPACE": NS,
        "AIOTS_SYMBOLS": json.dumps(list(SYMBOLS)),
        "AIOTS_DATABASE__MIGRATE_ON_START": "false",
        "AIOTS_SIGNALS__HEARTBEAT_S": "1",
        "AIOTS_ANALYTICS__LIVE_INTERVALS": '["1m"]',
        "AIOTS_INGESTION__AUTOSTART": "false",
        # the survivor reclaims what a dead consumer left pending after 1 s
        "AIOTS_REDIS__CLAIM_IDLE_MS": "1000",
        "AIOTS_REDIS__CLAIM_INTERVAL_S": "0.3",
        "AIOTS_REDIS__READ_BLOCK_MS": "5000",
    }
    env.pop("DATABENTO_API_KEY", None)
    return env


def _per_replica(service: str, name: str) -> dict[str, str]:
    """Analytics: a live-state group per replica (every replica folds every bar of a symbol)."""
    return {"AIOTS_ANALYTICS__LIVE_CONSUMER_GROUP": f"analytics-live-{name}"} if service == "analytics" else {}


def _signal_events(round_: int) -> list[tuple[str, events_pb2.SignalEvent]]:
    """One synthetic signal event per symbol for the follow group (no follow rule acts on them)."""
    out = []
    for sym in SYMBOLS:
        ev = events_pb2.SignalEvent(symbol=sym, ts_event=time.time_ns())
        ev.signal.id = f"synthetic-{round_}-{sym}"
        ev.signal.symbol = sym
        ev.signal.strategy = "synthetic"
        out.append((sym, ev))
    return out


@pytest.fixture
async def scaled(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path
) -> AsyncIterator[tuple[dict[str, list[Replica]], Envoy, str]]:
    dsn = make_database(True)
    env = _env(dsn, redis_proc.url)
    reps: dict[str, list[Replica]] = {}
    gateway: Gateway | None = None
    try:
        for svc in SERVICES:
            reps[svc] = [Replica(n, env, tmp_path, svc, _per_replica(svc, n)) for n in ("a", "b")]
        await asyncio.gather(*(r.ready(READY_LIMIT_S) for rs in reps.values() for r in rs))
        # what the generator is given: every replica of each service
        gw = gateway_settings(tmp_path, upstream_endpoints={svc: [r.target for r in rs] for svc, rs in reps.items()})
        # the services not run here point at reserved ports nobody listens on (never a developer's stack)
        unrouted = {s: {"port": free_port()} for s in NOT_RUN}
        settings = Settings(gateway=gw, **unrouted)
        gateway = Gateway(settings, config_dir=tmp_path / "envoy")
        await gateway.start()
        envoy = Envoy(gateway, settings)
        await _all_healthy(envoy, [r.target for rs in reps.values() for r in rs])
        yield reps, envoy, dsn
    finally:
        if gateway is not None:
            await gateway.stop()
        stop_all([r for rs in reps.values() for r in rs])


async def _all_healthy(envoy: Envoy, targets: list[str], limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        hosts = await envoy.clusters()
        flags = {k.split("::", 1)[1]: v.get("health_flags") for k, v in hosts.items()}
        if all(flags.get(t) == "healthy" for t in targets):
            return
        assert time.monotonic() < deadline, flags
        await asyncio.sleep(0.1)


async def _serving_replica(envoy: Envoy, replicas: list[Replica]) -> Replica:
    """The signals replica Envoy sent the open stream to (the host with an active request)."""
    for _ in range(100):
        hosts = await envoy.clusters()
        active = [r for r in replicas if hosts.get(f"signals::{r.target}", {}).get("rq_active") == "1"]
        if len(active) == 1:
            return active[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no single signals host holds the stream: {await envoy.clusters()}")


async def _next_signal(resp: aiohttp.ClientResponse, limit_s: float = SIGNAL_WAIT_S) -> dict[str, Any]:
    """The next ``signal`` object of an NDJSON stream (heartbeats skipped)."""

    async def read() -> dict[str, Any]:
        while True:
            line = await resp.content.readline()
            assert line, "the stream ended"
            obj = json.loads(line)
            assert "error" not in obj, obj
            if "signal" in obj:
                sig: dict[str, Any] = obj["signal"]
                return sig

    return await asyncio.wait_for(read(), limit_s)


async def _more_signals(resp: aiohttp.ClientResponse, watch_s: float) -> list[str]:
    """Ids of the signals a stream delivers within ``watch_s`` (heartbeats skipped)."""
    ids: list[str] = []

    async def read() -> None:
        while line := await resp.content.readline():
            obj = json.loads(line)
            if "signal" in obj:
                ids.append(obj["signal"]["id"])

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), watch_s)
    return ids


async def _rest_until_end(resp: aiohttp.ClientResponse, limit_s: float = 10.0) -> list[dict[str, Any]]:
    """Everything the stream still delivers until it ends (by an error object, EOF or a cut)."""
    out: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            line = await resp.content.readline()
            if not line:
                return
            out.append(json.loads(line))

    with contextlib.suppress(aiohttp.ClientPayloadError):  # a cut chunked body: the replica died
        await asyncio.wait_for(read(), limit_s)
    return out


async def _unary_calls(session: aiohttp.ClientSession, url: str, until: asyncio.Event) -> list[tuple[str, int]]:
    """Each UNARY call in turn until ``until`` is set: (path, HTTP status) of every call."""
    out: list[tuple[str, int]] = []
    while not until.is_set():
        for verb, path, body in UNARY:
            async with session.request(verb, url + path, json=body) as r:
                await r.read()
                out.append((path, r.status))
        await asyncio.sleep(UNARY_GAP_S)
    return out


async def _ejected(envoy: Envoy, killed: list[Replica], limit_s: float = EJECT_LIMIT_S) -> dict[str, str]:
    """Wait until Envoy no longer counts any killed replica as healthy; their health flags."""
    deadline = time.monotonic() + limit_s
    while True:
        hosts = await envoy.clusters()
        flags = {r.target: hosts[f"{r.service}::{r.target}"].get("health_flags", "") for r in killed}
        if all(f != "healthy" for f in flags.values()):
            return flags
        assert time.monotonic() < deadline, flags
        await asyncio.sleep(0.1)


async def _health_reads_survivors(session: aiohttp.ClientSession, url: str, limit_s: float = 10.0) -> None:
    """``GET /health``: every replicated service serving, and its PostgreSQL and Redis reported
    SERVING (the feed is informational: no collection runs here; portfolio reports none). The
    services not run here make it 503, naming them alone. The first replica of most services is
    dead: the supervisor's checks must have moved to the second."""
    deadline = time.monotonic() + limit_s
    while True:
        async with session.get(f"{url}/health") as r:
            body = await r.json()
        reported = body.get("dependencies", {})
        deps = {svc: {d: st for d, st in reported.get(svc, {}).items() if d != "feed"} for svc in REPORTS_DEPENDENCIES}
        serving = all(ds and all(st == "SERVING" for st in ds.values()) for ds in deps.values())
        if sorted(body.get("not_serving", [])) == sorted(NOT_RUN) and serving:
            return
        assert time.monotonic() < deadline, json.dumps(body)
        await asyncio.sleep(0.2)


async def test_kill_one_replica_of_each_service_behind_envoy(
    scaled: tuple[dict[str, list[Replica]], Envoy, str], redis_proc: RedisProc, tmp_path: Path
) -> None:
    reps, envoy, dsn = scaled
    # each signals replica has its group on every stream it reads
    await groups_ready(redis_proc.url, NS, topics=(FEATURE_TOPIC, OPTION_TOPIC))
    await consumers_ready(redis_proc.url, NS, FOLLOW_GROUP, topic=SIGNAL_EVENTS)  # both portfolio replicas
    bus = RedisStreamsBus(redis_proc.url, RedisSettings(namespace=NS, outbox_dir=tmp_path / "outbox-test"))
    token = issue_token(envoy.settings.gateway, role="trader", subject="scale-out", ttl_s=600)
    received: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        try:
            # 1. a REST client reads the signal stream through Envoy
            stream = await session.get(envoy.url + SUBSCRIBE)
            assert stream.status == 200, await stream.text()
            assert await asyncio.wait_for(stream.content.readline(), 10)  # open: a heartbeat
            victim = await _serving_replica(envoy, reps["signals"])
            await publish_breakout(bus, "AAPL")
            received.append((await _next_signal(stream))["id"])

            # 2. portfolio A is handed follow work it never acknowledges: frozen in its blocking read
            #    (Redis hands entries to blocked readers first come first served; B re-blocks behind A)
            portfolio_a = reps["portfolio"][0]
            await asyncio.sleep(0.3)
            portfolio_a.proc.send_signal(signal.SIGSTOP)
            for i in range(3):
                await bus.publish_many(SIGNAL_EVENTS, _signal_events(i))
                await asyncio.sleep(0.2)

            # 3. kill -9 one replica of each service (the stream's signals replica mid-stream) while
            #    unary calls to every service run
            retries_before = sum((await envoy.stats("upstream_rq_retry$")).values())
            stop_calls = asyncio.Event()
            caller = asyncio.create_task(_unary_calls(session, envoy.url, stop_calls))
            await asyncio.sleep(UNARY_GAP_S * 4)
            killed = [victim, portfolio_a, reps["analytics"][0], reps["ingestion"][0]]
            for r in killed:
                r.kill()
            consumer = f"{socket.gethostname()}-{portfolio_a.proc.pid}-"
            stranded = await pending_of(redis_proc.url, NS, FOLLOW_GROUP, consumer, topic=SIGNAL_EVENTS)
            assert stranded > 0, "portfolio A was handed nothing (the takeover would go untested)"
            await publish_breakout(bus, "MSFT")  # a signal created while the client is away
            tail = await _rest_until_end(stream)
            stream.close()
            received += [m["signal"]["id"] for m in tail if "signal" in m]

            # 4. the dead replicas leave the rotation; no unary call failed meanwhile (a call that met
            #    one was retried on the survivor); afterwards no call meets a dead replica at all
            flags = await _ejected(envoy, killed)
            stop_calls.set()
            calls = await caller
            failed = [c for c in calls if c[1] != 200]
            assert not failed, f"{len(failed)}/{len(calls)} calls failed around the kill: {failed[:10]}"
            retried = sum((await envoy.stats("upstream_rq_retry$")).values()) - retries_before
            # each killed replica was in the rotation until its first failed call or health check:
            # round robin sent calls of the four services to it, and Envoy retried those
            assert retried > 0, "no call met a dead replica (the retry would go untested)"
            after = sum((await envoy.stats("upstream_rq_retry$")).values())
            stop_calls = asyncio.Event()
            caller = asyncio.create_task(_unary_calls(session, envoy.url, stop_calls))
            await asyncio.sleep(1.0)
            stop_calls.set()
            calls = await caller
            assert calls and all(c[1] == 200 for c in calls), calls
            assert sum((await envoy.stats("upstream_rq_retry$")).values()) == after, "calls still met a dead replica"
            print(f"after the kill: {len(failed)} failed calls, {retried} retried on a survivor; flags {flags}")

            # the gateway's /health still reads every service's dependencies (from a live replica)
            await _health_reads_survivors(session, envoy.url)

            # 5. the client resumes through Envoy with since=<last id>: the survivor replays the gap
            since = received[-1]
            async with session.get(f"{envoy.url}{SUBSCRIBE}&since={since}") as resumed:
                assert resumed.status == 200, await resumed.text()
                while len(received) < len(SYMBOLS):
                    received.append((await _next_signal(resumed))["id"])
                received += await _more_signals(resumed, DUPLICATE_WATCH_S)  # and nothing twice

            # 6. the portfolio survivor took over the killed replica's follow work
            deadline = time.monotonic() + 30
            while True:
                state = await group_state(redis_proc.url, NS, FOLLOW_GROUP, topic=SIGNAL_EVENTS)
                done = all(
                    s.get("pending") == 0 and s.get("lag") == 0 and s.get("entries-read") == s["length"] for s in state
                )
                if done or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert done, state
        finally:
            await bus.close()
    await assert_received_every_stored_signal_once(dsn, received)
