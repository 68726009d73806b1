"""A service as N worker processes on one port (issue 20 item 2): the supervisor's own server plus
N-1 ``aiots serve --reuse-port`` children, SO_REUSEPORT. Oracle: the kernel's socket table
(psutil): which processes listen on the port and which hold the server side of each connection."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import Supervisor, with_workers
from tests.integration.bus.redis_fixtures import redis_ns, redis_url  # noqa: F401 (fixtures)
from tests.integration.gateway.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
SERVICE = "aiots.v1.CacheService"


def _server_pids(port: int, status: str) -> list[int]:
    """pids owning TCP sockets on local ``port`` in ``status`` (one entry per socket)."""
    return [c.pid for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port and c.status == status]


async def _check_on_fresh_connections(port: int, n: int) -> list[grpc.aio.Channel]:
    """``n`` channels, each its own TCP connection, each answering a health check; left open."""
    chans = []
    for _ in range(n):
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        r = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
        chans.append(ch)
    return chans


async def test_three_processes_answer_on_one_port_and_survive_a_killed_worker(
    redis_url: str,  # noqa: F811
    redis_ns: str,  # noqa: F811
    make_database: Callable[..., str],
    tmp_path: Path,
) -> None:
    settings = Settings(
        redis_url=redis_url,
        database_url=make_database(True),
        redis={"namespace": redis_ns},
        cache={"port": free_port(), "workers": 3},
        data_dir=tmp_path,
    )
    sup = Supervisor(settings, services=["cache"], gateway=False, metrics=False)
    await sup.start()
    try:
        pool = sup.pools["cache"]
        port = sup.apps["cache"].port
        assert sup.workers["cache"] == 3 and len(pool.pids) == 2
        assert sorted(_server_pids(port, psutil.CONN_LISTEN)) == sorted([os.getpid(), *pool.pids])
        chans = await _check_on_fresh_connections(port, 24)
        answered = set(_server_pids(port, psutil.CONN_ESTABLISHED))
        assert len(answered) >= 2 and answered <= {os.getpid(), *pool.pids}  # more than one process served
        for ch in chans:
            await ch.close()

        victim = pool.pids[0]
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(psutil.Process(victim).wait, 10)
        chans = await _check_on_fresh_connections(port, 12)  # the port still answers, every time
        for ch in chans:
            await ch.close()
        for _ in range(600):  # the pool starts the worker again
            if pool.respawns == 1 and len(pool.pids) == 2 and victim not in pool.pids:
                break
            await asyncio.sleep(0.1)
        assert pool.respawns == 1 and len(pool.pids) == 2
    finally:
        children = [psutil.Process(p) for p in sup.pools["cache"].pids] if "cache" in sup.pools else []
        assert await sup.stop() == []
    for c in children:
        assert not c.is_running() or c.status() == psutil.STATUS_ZOMBIE


def _scrape(target: str) -> str:
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=10) as r:
        return str(r.read().decode())


def _cache_targets(path: Path) -> dict[str, str]:
    """aiots_process -> "host:port" for the cache in a file_sd targets file."""
    groups = json.loads(path.read_text())
    return {g["labels"]["aiots_process"]: g["targets"][0] for g in groups if g["labels"]["aiots_service"] == "cache"}


async def test_every_workers_metrics_endpoint_is_a_prometheus_target_even_after_a_restart(
    redis_url: str,  # noqa: F811
    redis_ns: str,  # noqa: F811
    make_database: Callable[..., str],
    tmp_path: Path,
) -> None:
    """The supervisor's own endpoint and each worker's (a free port each) go in a file_sd file; a
    worker started again on another port replaces its old target. Oracle: each endpoint's own
    /metrics text (the cache's series) and the worker processes' sockets."""
    settings = Settings(
        redis_url=redis_url,
        database_url=make_database(True),
        redis={"namespace": redis_ns},
        cache={"port": free_port(), "metrics_port": free_port(), "workers": 3, "host": "127.0.0.1"},
        data_dir=tmp_path,
    )
    sup = Supervisor(settings, services=["cache"], gateway=False)
    await sup.start()
    try:
        assert sup.targets_file == tmp_path / "prometheus" / "targets.json"
        targets = _cache_targets(sup.targets_file)
        assert sorted(targets) == ["0", "1", "2"]
        assert targets["0"] == f"127.0.0.1:{settings.cache.metrics_port}"
        pool = sup.pools["cache"]
        for i, pid in enumerate(pool.pids, start=1):  # worker i's target is a port that process listens on
            port = int(targets[str(i)].rsplit(":", 1)[1])
            assert pid in _server_pids(port, psutil.CONN_LISTEN)
        for i in ("1", "2"):  # the workers run `aiots serve` (telemetry set up): the cache's own series
            assert 'service="cache"' in await asyncio.to_thread(_scrape, targets[i])
        assert "# TYPE" in await asyncio.to_thread(_scrape, targets["0"])  # this test's process serves too

        victim, old = pool.pids[0], targets["1"]
        os.kill(victim, signal.SIGKILL)
        for _ in range(600):  # started again, on another free port, and the file says so
            now = _cache_targets(sup.targets_file)
            if pool.respawns == 1 and now.get("1") not in (None, old):
                break
            await asyncio.sleep(0.1)
        assert pool.respawns == 1 and now["1"] != old and now["2"] == targets["2"]
        assert 'service="cache"' in await asyncio.to_thread(_scrape, now["1"])
    finally:
        assert await sup.stop() == []


async def test_targets_only_when_asked_or_several_processes_and_never_fatal(tmp_path: Path) -> None:
    """One process per service writes no targets file unless asked (`aiots up` asks); a data_dir
    that can't be written (a container's read-only root) leaves the service running, unlisted."""
    cache = {"port": 0, "metrics_port": free_port(), "host": "127.0.0.1"}
    sup = Supervisor(Settings(data_dir=tmp_path / "a", cache=cache), services=["cache"], gateway=False)
    await sup.start()
    try:
        assert sup.targets_file is None and not (tmp_path / "a" / "prometheus").exists()
    finally:
        await sup.stop()
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")  # the targets' folder can't be made below a file
    cache["metrics_port"] = free_port()
    sup = Supervisor(Settings(data_dir=blocked, cache=cache), services=["cache"], gateway=False, metrics_targets=True)
    await sup.start()
    try:
        assert "cache" in sup.apps and sup.targets_file is None
    finally:
        await sup.stop()
    cache["metrics_port"] = free_port()
    sup = Supervisor(
        Settings(data_dir=tmp_path / "b", cache=cache), services=["cache"], gateway=False, metrics_targets=True
    )
    await sup.start()
    try:
        assert sup.targets_file is not None and list(_cache_targets(sup.targets_file)) == ["0"]
    finally:
        await sup.stop()


async def test_one_process_without_redis_and_postgres_and_says_why(tmp_path: Path) -> None:
    settings = with_workers(Settings(data_dir=tmp_path, cache={"port": 0}), 4)
    assert settings.cache.workers == 4 and settings.ingestion.workers == 1  # ingestion owns the feed
    sup = Supervisor(settings, services=["cache"], gateway=False, metrics=False)
    await sup.start()
    try:
        assert sup.workers == {"cache": 1} and not sup.pools
        assert any("workers=4 needs REDIS_URL and DATABASE_URL" in n for n in sup.notes)
    finally:
        await sup.stop()


def test_default_workers_is_the_core_count_only_with_shared_state() -> None:
    shared = Settings(redis_url="redis://127.0.0.1:1/0", database_url="postgresql://x@127.0.0.1:1/x")
    assert with_workers(shared, None).analytics.workers == (os.cpu_count() or 1)
    assert with_workers(Settings(), None).analytics.workers == 1
    pinned = shared.model_copy(update={"signals": shared.signals.model_copy(update={"workers": 1})})
    pinned.signals.model_fields_set.add("workers")
    assert with_workers(pinned, None).signals.workers == 1  # a configured value wins over the default
