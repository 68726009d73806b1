"""Gateway overhead: unary CacheService.GetStockPrice direct to grpc.aio vs through Envoy (gRPC
pass-through and REST/JSON transcoding, with JWT + RBAC + rate limiting on), same run.

Load generator: h2load (apt-get install nghttp2-client), 32 requests in flight for every path
(gRPC: 4 connections x 8 streams; REST: 32 HTTP/1.1 connections), fixed duration after a
warm-up; the three paths alternate over ``--rounds`` and the table gives medians (ratios taken within each
round). Percentiles are computed from h2load's per-request log. The upstream is a canned
servicer in ``--servers`` processes sharing the port (SO_REUSEPORT); Envoy runs with
``--concurrency`` workers. Usage: ``python bench/gateway.py [--duration 5] [--servers 1]``.

On a shared machine the QPS ratios move with the other load; the CPU columns do much less: CPU
time (user + system, from /proc) that Envoy and the servicer processes spent per request in each
run, which is what the gateway costs whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.common import event_loop
from aiots.services.common.settings import Settings
from aiots.v1 import cache_pb2 as cpb
from aiots.v1 import cache_pb2_grpc as cpb_grpc

IN_FLIGHT = 32
WARM_UP_S = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: utime's index in /proc/<pid>/stat after the ")" closing the command name (stime follows it)
UTIME_FIELD = 11
HUGE = {"max_tokens": 10_000_000, "tokens_per_fill": 10_000_000, "fill_interval_s": 1.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cache(cpb_grpc.CacheServiceServicer):
    async def GetStockPrice(self, request, context):  # type: ignore[no-untyped-def]
        return cpb.GetStockPriceResponse(price=cpb.StockPrice(symbol=request.symbol, last=190.5, bid=190.4, ask=190.6))


def serve(port: int) -> None:
    async def main() -> None:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
        cpb_grpc.add_CacheServiceServicer_to_server(Cache(), server)  # type: ignore[abstract]  # canned: one method
        hs = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        for name in ("", "aiots.v1.CacheService"):
            await hs.set(name, health_pb2.HealthCheckResponse.SERVING)
        await server.wait_for_termination()

    event_loop.run_as_service(main())


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (/proc/<pid>/stat, all threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[UTIME_FIELD]) + int(fields[UTIME_FIELD + 1])
    return total / CLOCK_TICKS


def h2load(
    url: str, args: list[str], duration: float, log: Path, watch: dict[str, list[int]]
) -> tuple[float, float, float, int, dict[str, float]]:
    """(QPS, p50 ms, p99 ms, non-2xx, CPU us per request of each group in ``watch``) from one
    h2load run. The CPU covers the warm-up second too, so it is divided by every logged request."""
    log.unlink(missing_ok=True)  # h2load appends to an existing log
    cmd = ["h2load", "-D", str(int(duration)), "--warm-up-time", str(WARM_UP_S), "--log-file", str(log), *args, url]
    before = {k: cpu_s(v) for k, v in watch.items()}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    spent = {k: cpu_s(v) - before[k] for k, v in watch.items()}
    durations, bad = [], 0
    for line in log.read_text().splitlines():
        _, status, us = line.split("\t")[:3]
        durations.append(int(us) / 1000.0)
        bad += not status.startswith("2")
    qs = statistics.quantiles(durations, n=100)
    # "finished in 5.00s, 1693.20 req/s, ..." (measurement window only, warm-up excluded)
    qps = next(float(x.split(",")[1].split()[0]) for x in out.splitlines() if x.startswith("finished in"))
    # h2load logs the measurement window only; the warm-up's requests ran at about the same rate
    served = len(durations) + qps * WARM_UP_S
    return qps, qs[49], qs[98], bad, {k: v / served * 1e6 for k, v in spent.items()}


def _split(cpu: dict[str, float], servers: int) -> str:
    """How the servicer CPU divides over the server processes (SO_REUSEPORT spreads connections,
    not requests: one upstream HTTP/2 connection from Envoy lands on one process)."""
    if servers < 2 or cpu["servicer"] <= 0:
        return ""
    return ", split " + "/".join(f"{cpu[f'server {i}'] / cpu['servicer']:.2f}" for i in range(servers))


def grpc_body(path: Path) -> Path:
    msg = cpb.GetStockPriceRequest(symbol="AAPL").SerializeToString()
    path.write_bytes(struct.pack(">BI", 0, len(msg)) + msg)
    return path


async def check_through_envoy(target: str, token: str) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        r = await cpb_grpc.CacheServiceStub(ch).GetStockPrice(
            cpb.GetStockPriceRequest(symbol="AAPL"), metadata=(("authorization", f"Bearer {token}"),)
        )
        assert r.price.last == 190.5


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--servers", type=int, default=1, help="upstream server processes")
    ap.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    ap.add_argument(
        "--upstream-max-streams",
        type=int,
        default=None,
        help="gateway.upstream_max_streams (streams per upstream HTTP/2 connection; 0: no cap); default: the setting's",
    )
    ap.add_argument("--rounds", type=int, default=3, help="the paths alternate this many times")
    ap.add_argument("--rest-h2", action="store_true", help="also REST over h2c, 4 connections x 8 streams")
    a = ap.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install nghttp2-client")
    tmp = Path(tempfile.mkdtemp(prefix="aiots-gw-bench-"))
    up = free_port()
    procs = [mp.get_context("spawn").Process(target=serve, args=(up,), daemon=True) for _ in range(a.servers)]
    for p in procs:
        p.start()
    await asyncio.sleep(1.5)
    settings = Settings(
        cache={"port": up},
        gateway={
            "host": "127.0.0.1",
            "port": free_port(),
            "admin_port": free_port(),
            "health_port": free_port(),
            "base_id": 9000 + os.getpid() % 1000,
            "concurrency": a.concurrency,
            **({} if a.upstream_max_streams is None else {"upstream_max_streams": a.upstream_max_streams}),
            "dev_key_dir": str(tmp / "keys"),
            "access_log_path": "/dev/null",
            "log_level": "error",
            "rate_limits": {k: HUGE for k in ("analytics_reads", "reads", "pricing_batch", "writes", "streams")},
        },
    )
    gw = Gateway(settings, config_dir=tmp / "envoy")
    await gw.start()
    try:
        token = issue_token(settings.gateway, role="viewer", subject="bench", ttl_s=3600)
        port = settings.gateway.port
        await asyncio.sleep(1.0)
        await check_through_envoy(f"127.0.0.1:{port}", token)
        body = grpc_body(tmp / "req.bin")
        g = [
            "-c",
            "4",
            "-m",
            str(IN_FLIGHT // 4),
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
        ]
        auth = ["-H", f"authorization: Bearer {token}"]
        runs = [
            ("direct grpc.aio (h2c)", f"http://127.0.0.1:{up}/aiots.v1.CacheService/GetStockPrice", g),
            ("Envoy gRPC pass-through", f"http://127.0.0.1:{port}/aiots.v1.CacheService/GetStockPrice", g + auth),
            (
                "Envoy REST/JSON (HTTP/1.1)",
                f"http://127.0.0.1:{port}/api/v1/cache/stock-prices/AAPL",
                ["--h1", "-c", str(IN_FLIGHT), *auth],
            ),
        ]
        if a.rest_h2:  # the same REST call with the gRPC paths' client shape (4 connections x 8 streams)
            runs.append(
                (
                    "Envoy REST/JSON (h2c)",
                    f"http://127.0.0.1:{port}/api/v1/cache/stock-prices/AAPL",
                    ["-c", "4", "-m", str(IN_FLIGHT // 4), *auth],
                )
            )
        assert gw.proc is not None
        pids = [p.pid for p in procs if p.pid is not None]
        watch = {"envoy": [gw.proc.pid], "servicer": pids, **{f"server {i}": [pid] for i, pid in enumerate(pids)}}
        # the paths alternate over --rounds, so a load spike from other work hits all of them
        per_round: list[list[tuple[str, float, float, float, int, dict[str, float]]]] = []
        for r in range(a.rounds):
            res = [(name, *h2load(url, args, a.duration, tmp / "log.tsv", watch)) for name, url, args in runs]
            per_round.append(res)
            d = res[0]
            print(f"  round {r + 1} (load {os.getloadavg()[0]:.1f}): "
                  + ", ".join(f"{n.split(' (')[0]} {q:.0f} QPS ({q / d[1]:.2f}), p99 {p99:.1f} ms ({p99 / d[3]:.2f}), "
                              f"envoy {c['envoy']:.0f} us/req" + _split(c, len(pids))
                              for n, q, _, p99, _, c in res), flush=True)  # fmt: skip
        print(
            f"GetStockPrice, {IN_FLIGHT} in flight, {a.rounds} x {a.duration:.0f} s, servers={a.servers}, "
            f"envoy --concurrency {a.concurrency}, {os.cpu_count()} CPUs; medians over the rounds, ratios per round; "
            "CPU: us of CPU time per request"
        )
        print(
            f"{'path':30} {'QPS':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'QPS/direct':>10} {'p99/direct':>10}"
            f" {'envoy CPU':>9} {'server CPU':>10}"
        )
        for i, (name, _, _) in enumerate(runs):
            rows = [rd[i] for rd in per_round]
            qps = statistics.median(x[1] for x in rows)
            p50 = statistics.median(x[2] for x in rows)
            p99 = statistics.median(x[3] for x in rows)
            bad = sum(x[4] for x in rows)
            q_ratio = statistics.median(rd[i][1] / rd[0][1] for rd in per_round)
            p_ratio = statistics.median(rd[i][3] / rd[0][3] for rd in per_round)
            e_cpu = statistics.median(x[5]["envoy"] for x in rows)
            s_cpu = statistics.median(x[5]["servicer"] for x in rows)
            print(
                f"{name:30} {qps:8.0f} {p50:8.2f} {p99:8.2f} {bad:8d} {q_ratio:10.2f} {p_ratio:10.2f}"
                f" {e_cpu:9.0f} {s_cpu:10.0f}"
            )
    finally:
        await gw.stop()
        for p in procs:
            p.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
