"""Cache and bus benchmark (not a test). Needs Redis at REDIS_URL (default redis://127.0.0.1:6379/0).

1. GetStockPrice over gRPC (cache service with the Redis backend, in a child process) with 1, 16
   and 64 concurrent callers, against the anchor measured in the same run: raw redis-py
   ``GET`` of the same key with the same concurrency (the ceiling for a Redis-backed read).
   The two alternate in six short slices each, so a load spike from other work on the machine
   hits both sides alike instead of skewing the ratio.
2. Bus throughput: events published (publish_many batches) + consumed + acked, in-process and
   through Redis Streams.
3. ``--only loop``: the same cache service on asyncio's event loop and on uvloop
   (``Settings.event_loop``), alternating, h2load as the client (C): QPS and the server's CPU per
   call, ratios within each round.

Besides wall-clock rates, both tables give CPU seconds per operation (this process, the server
child from /proc, redis-server from ``INFO cpu``): on a shared VM the wall-clock rates swing with
other people's load, the CPU costs do not. redis-server's CPU includes any other clients of the
same Redis during the run.

    .venv/bin/python bench/cache.py [--seconds 3] [--events 100000] [--only processes|loop]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


async def serve(port: int, ns: str) -> None:
    """The cache service (Redis backend) on ``port``; prints "ready" once it serves."""
    from aiots.services.cache.app import create_app
    from aiots.services.cache.prices import price_book_for
    from aiots.services.common.runtime import Runtime
    from aiots.services.common.settings import Settings

    rt = Runtime(settings=Settings(redis_url=REDIS_URL, redis={"namespace": ns}))
    app = await create_app(rt, port=port)
    await app.start()
    await price_book_for(rt).on_trade("AAPL", time.time_ns(), 200.0, 100)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def closed_loop(call: Callable[[], Awaitable[object]], conc: int, seconds: float, lat: list[float]) -> int:
    """``conc`` callers looping for ``seconds``; appends latencies (s) to ``lat``, returns calls made."""
    stop = time.perf_counter() + seconds
    n0 = len(lat)

    async def worker() -> None:
        while True:
            t = time.perf_counter()
            if t >= stop:
                return
            await call()
            lat.append(time.perf_counter() - t)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return len(lat) - n0


class CpuMeter:
    """CPU seconds used so far by this process, the cache server child and redis-server.

    Wall-clock rates on a shared 2-core VM swing with other people's load; CPU seconds per
    operation do not, so the tables also give rates per CPU-second (what an otherwise idle core
    would sustain), next to the wall-clock ones.
    """

    def __init__(self, redis_client: object, server_pid: int | None = None) -> None:
        self.redis = redis_client
        self.server_pid = server_pid

    def _server(self) -> float:
        return 0.0 if self.server_pid is None else _proc_cpu_s(self.server_pid)

    async def read(self) -> tuple[float, float, float]:
        """(this process, server child, redis-server) CPU seconds."""
        info = await self.redis.info("cpu")  # type: ignore[attr-defined]
        redis_cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return time.process_time(), self._server(), redis_cpu


async def interleaved(
    calls: dict[str, Callable[[], Awaitable[object]]], conc: int, seconds: float, rounds: int, meter: CpuMeter
) -> dict[str, tuple[float, float, float, list[float]]]:
    """QPS, p50 and p99 (ms), and CPU ms per call (this process, server, redis) per call kind.

    The kinds alternate in short slices so that machine load hits all alike.
    """
    lat: dict[str, list[float]] = {k: [] for k in calls}
    spent = dict.fromkeys(calls, 0.0)
    cpu = {k: [0.0, 0.0, 0.0] for k in calls}
    for _ in range(rounds):
        for k, call in calls.items():
            c0 = await meter.read()
            t0 = time.perf_counter()
            await closed_loop(call, conc, seconds / rounds, lat[k])
            spent[k] += time.perf_counter() - t0
            c1 = await meter.read()
            for i in range(3):
                cpu[k][i] += c1[i] - c0[i]
    out = {}
    for k, v in lat.items():
        v.sort()
        per_call = [1000 * c / len(v) for c in cpu[k]]
        out[k] = (len(v) / spent[k], 1000 * v[len(v) // 2], 1000 * v[int(len(v) * 0.99)], per_call)
    return out


async def _drop_keys(ns: str) -> None:
    """Delete this run's Redis keys (namespace ``ns``)."""
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(f"{ns}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def _grpc_body(path: Path) -> Path:
    """h2load's request body: one gRPC frame of GetStockPriceRequest(AAPL)."""
    import struct

    from aiots.v1 import cache_pb2

    msg = cache_pb2.GetStockPriceRequest(symbol="AAPL").SerializeToString()
    path.write_bytes(struct.pack(">BI", 0, len(msg)) + msg)
    return path


def _h2load(port: int, seconds: float, body: Path, log: Path) -> tuple[float, int, list[int]]:
    """(QPS, requests logged, sorted latencies in us) of one h2load run: 16 connections x 4 streams."""
    import subprocess

    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cmd = ["h2load", "-D", str(int(seconds)), "--warm-up-time", "1", "--log-file", str(log),
           "-c", "16", "-m", "4", "-d", str(body), "-H", "content-type: application/grpc",
           "-H", "te: trailers", f"http://127.0.0.1:{port}/aiots.v1.CacheService/GetStockPrice"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    qps = next(float(x.split(",")[1].split()[0]) for x in out.splitlines() if x.startswith("finished in"))
    us = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines())
    return qps, len(us), us


async def _start_server(ns: str, kind: str | None = None) -> tuple[asyncio.subprocess.Process, int]:
    """The ``--serve`` child on a spare port (never a fixed one: a running stack may hold the
    defaults), on loop ``kind`` (default: the settings'); returns once it says "ready"."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    args = [str(port), ns] if kind is None else [str(port), ns, kind]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", *args, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if line.strip() != b"ready":
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the cache server child did not start: {line!r}")
    return proc, port


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_loop(seconds: float, rounds: int = 3) -> list[str]:
    """The cache service (Redis backend, one process, ``--serve`` child) on asyncio's loop and on
    uvloop, alternating ``rounds`` times; h2load drives it. Server CPU per call counts the warm-up
    second's calls at the measured rate (h2load logs only the measured window)."""
    import shutil
    import tempfile

    if shutil.which("h2load") is None:
        return ["| (h2load not found: apt-get install nghttp2-client) |"]
    tmp = Path(tempfile.mkdtemp(prefix="aiots-loop-bench-"))
    body = _grpc_body(tmp / "req.bin")
    kinds = ("asyncio", "uvloop")
    runs: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in kinds}
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        for _ in range(rounds):
            for kind in kinds:
                proc, port = await _start_server(ns, kind)
                try:
                    c0 = _proc_cpu_s(proc.pid)
                    qps, n, us = await asyncio.to_thread(_h2load, port, seconds, body, tmp / "h2load.tsv")
                    cpu = _proc_cpu_s(proc.pid) - c0
                    calls = n * (seconds + 1) / seconds  # the warm-up second ran at about the same rate
                    runs[kind].append((qps, 1e6 * cpu / calls, us[len(us) // 2] / 1e3, us[int(len(us) * 0.99)] / 1e3))
                finally:
                    proc.terminate()
                    await proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        await _drop_keys(ns)
    rows = []
    for kind in kinds:
        q = [x[0] for x in runs[kind]]
        per_round = [a[0] / b[0] for a, b in zip(runs[kind], runs["asyncio"], strict=True)]
        cpu_ratio = [a[1] / b[1] for a, b in zip(runs[kind], runs["asyncio"], strict=True)]
        mean = [sum(x[i] for x in runs[kind]) / rounds for i in range(4)]
        rows.append(
            f"| {kind} | {mean[0]:,.0f} | {mean[2]:.2f} / {mean[3]:.2f} | {mean[1]:.0f} "
            f"| **{min(per_round):.2f}-{max(per_round):.2f}** | {min(cpu_ratio):.2f}-{max(cpu_ratio):.2f} "
            f"| {', '.join(f'{x:,.0f}' for x in q)} |"
        )
    return rows


async def bench_get(seconds: float) -> list[str]:
    import grpc
    import redis.asyncio as aioredis

    from aiots.v1 import cache_pb2, cache_pb2_grpc

    ns = f"bench-{uuid.uuid4().hex[:6]}"
    proc, port = await _start_server(ns)
    rows = []
    try:
        r = aioredis.Redis.from_url(REDIS_URL, max_connections=128)
        meter = CpuMeter(r, proc.pid)
        key = f"{ns}:v1:price:AAPL"
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        req = cache_pb2.GetStockPriceRequest(symbol="AAPL")
        await stub.GetStockPrice(req)
        for conc in (1, 16, 64):
            res = await interleaved(
                {"redis": lambda: r.get(key), "grpc": lambda: stub.GetStockPrice(req)}, conc, seconds, 6, meter
            )
            rq, rp50, rp99, rcpu = res["redis"]
            gq, gp50, gp99, gcpu = res["grpc"]
            rows.append(
                f"| {conc} | {gq:,.0f} | {gp50:.2f} / {gp99:.2f} | {rq:,.0f} | {rp50:.2f} / {rp99:.2f} "
                f"| **{gq / rq:.2f}** | {gcpu[0]:.3f} + {gcpu[1]:.3f} + {gcpu[2]:.3f} "
                f"| {rcpu[0]:.3f} + {rcpu[2]:.3f} | {gcpu[1]:.3f} / {rcpu[0]:.3f} |"
            )
        await channel.close()
        await r.delete(key)
        await r.aclose()
    finally:
        proc.terminate()
        await proc.wait()
    return rows


async def bench_processes(seconds: float, workers: int, rounds: int = 3) -> list[str]:
    """GetStockPrice QPS from the real cache service run as 1 process and as ``workers`` processes
    on one port (``cache.workers``: the supervisor's worker mode, SO_REUSEPORT), alternating, with
    h2load as the client (C, 16 connections x 4 streams: the client is not the ceiling, and the
    kernel spreads the connections over the processes). Ratios are within this run."""
    import shutil
    import tempfile

    import asyncpg

    from aiots.services.cache.prices import price_book_for
    from aiots.services.common.settings import Settings
    from aiots.services.stack.supervisor import Supervisor

    if shutil.which("h2load") is None:
        return ["| (h2load not found: apt-get install nghttp2-client) |"]
    server = os.environ.get("AIOTS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
    db = f"aiots_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{db}"')
    tmp = Path(tempfile.mkdtemp(prefix="aiots-cache-bench-"))
    body = _grpc_body(tmp / "req.bin")
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    results: dict[int, list[tuple[float, float, float]]] = {1: [], workers: []}
    try:
        for _ in range(rounds):
            for n in (1, workers):
                settings = Settings(
                    redis_url=REDIS_URL,
                    database_url=f"{server}/{db}",
                    redis={"namespace": ns},
                    cache={"port": 0, "workers": n},
                    data_dir=tmp,
                )
                sup = Supervisor(settings, services=["cache"], gateway=False, metrics=False)
                await sup.start()
                try:
                    await price_book_for(sup.rt).on_trade("AAPL", time.time_ns(), 200.0, 100)
                    port = sup.apps["cache"].port
                    qps, _, us = await asyncio.to_thread(_h2load, port, seconds, body, tmp / "h2load.tsv")
                    results[n].append((qps, us[len(us) // 2] / 1e3, us[int(len(us) * 0.99)] / 1e3))
                finally:
                    await sup.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
        await _drop_keys(ns)
    rows = []
    base = sum(q for q, _, _ in results[1]) / rounds
    for n, runs in results.items():
        qps = sum(q for q, _, _ in runs) / rounds
        p50 = sum(x for _, x, _ in runs) / rounds
        p99 = sum(x for _, _, x in runs) / rounds
        per_round = [r[0] / b[0] for r, b in zip(runs, results[1], strict=True)]
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        rows.append(f"| {n} | {qps:,.0f} | {p50:.2f} / {p99:.2f} | **{qps / base:.2f}** | {spread} |")
    return rows


async def bench_bus(bus: object, n: int, label: str) -> str:
    import redis.asyncio as aioredis

    from aiots.v1 import events_pb2

    symbols = ["AAPL", "MSFT", "NVDA", "SPY"]
    topic = f"bench-{uuid.uuid4().hex[:6]}"
    await bus.ensure_group(topic, symbols, group="g")  # type: ignore[attr-defined]
    ev = [events_pb2.TradeEvent(symbol=s, ts_event=1, price=1.0, size=1) for s in symbols]
    done = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for d in bus.consume(topic, symbols, group="g", consumer="c"):  # type: ignore[attr-defined]
            events_pb2.TradeEvent.FromString(d.payload)
            await bus.ack(d, group="g")  # type: ignore[attr-defined]
            count += 1
            if count >= n:
                done.set()
                return

    r = aioredis.Redis.from_url(REDIS_URL)
    meter = CpuMeter(r)
    c0 = await meter.read()
    t0 = time.perf_counter()
    task = asyncio.create_task(consume())
    batch = 1000
    for i in range(0, n, batch):
        await bus.publish_many(topic, [(symbols[j % 4], ev[j % 4]) for j in range(i, i + batch)])  # type: ignore[attr-defined]
        await asyncio.sleep(0)
    await asyncio.wait_for(done.wait(), 300)
    flush = getattr(bus, "flush", None)
    if flush is not None:
        await flush()
    el = time.perf_counter() - t0
    c1 = await meter.read()
    await task
    await r.aclose()
    redis = getattr(bus, "redis", None)
    if redis is not None:
        await redis.delete(*[f"{bus.namespace}:v1:{topic}:{s}" for s in symbols])  # type: ignore[attr-defined]
    own = c1[0] - c0[0]
    red = c1[2] - c0[2] if redis is not None else 0.0
    red_col = f"{red:.2f}" if redis is not None else "-"
    return f"| {label} | {n:,} | {el:.2f} | **{n / el:,.0f}** | {own:.2f} | {red_col} | {n / own:,.0f} |"


async def main(seconds: float, events: int, only: str | None = None, workers: int = 0) -> None:
    from aiots.services.bus.in_process import InProcessBus
    from aiots.services.bus.redis_streams import RedisStreamsBus
    from aiots.services.common import event_loop
    from aiots.services.common.settings import RedisSettings

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}, Redis {REDIS_URL}, "
        f"event loop {event_loop.loop_name()}\n"
    )
    if only == "loop":
        print("GetStockPrice via h2load (16 connections x 4 streams), the cache service on each event loop")
        print("| loop | QPS | p50 / p99 ms | server CPU us/call | QPS / asyncio's (per round) "
              "| CPU per call / asyncio's | QPS per round |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in await bench_loop(seconds):
            print(row, flush=True)
        return
    if only in (None, "processes"):
        n = workers or max(2, os.cpu_count() or 1)
        print(f"GetStockPrice via h2load (64 in flight), the cache service as 1 process vs {n} (cache.workers)")
        print("| processes | QPS | p50 / p99 ms | QPS / 1 process | per round |")
        print("|---:|---:|---:|---:|---:|")
        for row in await bench_processes(seconds, n):
            print(row, flush=True)
        print()
        if only == "processes":
            return
    print(
        "| callers | GetStockPrice gRPC QPS | p50 / p99 ms | raw redis-py GET QPS | p50 / p99 ms | ratio "
        "| gRPC CPU ms/call: client + server + redis | GET CPU ms/call: client + redis "
        "| server / GET client CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in await bench_get(seconds):
        print(row, flush=True)
    print(
        "\n| bus | events | seconds | events/s (publish+consume+ack) | bench CPU s | redis-server CPU s "
        "| events per bench CPU-second |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    cfg = RedisSettings(namespace=f"bench-{uuid.uuid4().hex[:6]}", read_batch=1000, stream_maxlen=1_000_000)
    inproc = InProcessBus(cfg)
    print(await bench_bus(inproc, max(events, 200_000), "in-process"), flush=True)
    await inproc.close()
    rbus = RedisStreamsBus(REDIS_URL, cfg)
    try:
        print(await bench_bus(rbus, events, "Redis Streams"), flush=True)
    finally:
        await rbus.close()
        await _drop_keys(cfg.namespace)  # the outbox's high-water key too


if __name__ == "__main__":
    from aiots.services.common import event_loop

    if len(sys.argv) > 1 and sys.argv[1] == "--serve":  # the server child: port, namespace[, loop]
        from aiots.services.common.settings import Settings

        kind = sys.argv[4] if len(sys.argv) > 4 else Settings().event_loop
        event_loop.run(serve(int(sys.argv[2]), sys.argv[3]), kind)  # type: ignore[arg-type]
        sys.exit(0)
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument(
        "--only", choices=["processes", "loop"], help="only the 1 vs N processes table, or the event-loop table"
    )
    ap.add_argument("--workers", type=int, default=0, help="processes for the N column (default: the core count)")
    a = ap.parse_args()
    event_loop.run_as_service(main(a.seconds, a.events, a.only, a.workers))
