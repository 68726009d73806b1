"""The analytics service's own metrics, scraped from its /metrics endpoint (Prometheus text, as an
operator's Prometheus reads it): bars consumed from the bus and their lag, cache reads by result.

Bars go through the ingestion path (storage writer + in-process bus); the counts asserted are the
hand-counted events of this test (deltas against a scrape taken before it).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiots.services.analytics.app import AnalyticsApp
from aiots.services.analytics.store import ResultCache
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common import telemetry
from aiots.services.common.errors import Unavailable
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.storage.writer import Writer
from aiots.v1 import analytics_pb2 as pb
from aiots.v1 import analytics_pb2_grpc as pbg

from .conftest import NS, bars_batch

pytestmark = pytest.mark.integration

SYMBOL = "METRQ"
N_BARS = 40
LABELS_BUS = {"topic": "bars:1m", "group": "analytics-*", "service": "analytics"}  # every replica's own group


@pytest.fixture
def metrics_port() -> Iterator[int]:
    telemetry.setup_telemetry(Settings(), service="aiots")  # once per process; later calls are no-ops
    token = telemetry.current_service.set("analytics")  # as `aiots serve analytics` / `aiots up` set it
    port = telemetry.start_metrics_server("analytics", 0, host="127.0.0.1")
    try:
        yield port
    finally:
        telemetry.stop_metrics_server(port)
        telemetry.current_service.reset(token)


async def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    text = await asyncio.to_thread(get)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


class _DownBackend(MemoryBackend):
    async def get(self, key: str) -> bytes | None:
        raise Unavailable("cache down (test)")


async def test_bus_and_cache_metrics_on_the_analytics_endpoint(
    metrics_port: int, seeded_pool: Any, writer: Writer
) -> None:
    before = await _scrape(metrics_port)
    settings = Settings(symbols=[SYMBOL], analytics={"live_intervals": ["1m"], "checkpoint_interval_s": 60})
    bus = InProcessBus(settings.redis)
    app = AnalyticsApp(Runtime(settings=settings, db=seeded_pool, cache=MemoryBackend(1 << 20), bus=bus), port=0)
    await app.start()  # restore: one checkpoint read, a miss
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        t0 = 1_700_000_000 * NS
        ts = [t0 + i * 60 * NS for i in range(N_BARS)]
        c = 100.0 + np.cumsum(np.sin(np.arange(N_BARS)))
        pipe = Pipeline(writer=writer, bus=bus, build_bars=False)
        started_ns = time.time_ns()
        await pipe.process(bars_batch("bars_1m", SYMBOL, ts, c, c + 1, c - 1, c, np.full(N_BARS, 1e3)))
        await writer.flush(30.0)
        for _ in range(500):
            if app.live.state[SYMBOL, "1m"].bars >= N_BARS:
                break
            await asyncio.sleep(0.01)
        assert app.live.state[SYMBOL, "1m"].bars == N_BARS
        stub = pbg.AnalyticsServiceStub(ch)
        req = pb.GetIndicatorsRequest(symbol=SYMBOL, interval="1m", indicators=["sma"], period=5, include_series=True)
        first = await stub.GetIndicators(req)  # result cache: miss, computed
        second = await stub.GetIndicators(req)  # same data version: hit
        assert (first.source, second.source) == ("computed", "cache")
        # a cache that is down: the read is an error, the answer still computed
        down = ResultCache(_DownBackend(1 << 10), 30)

        async def compute() -> bytes:
            return b"x"

        assert await down.get_or_compute(down.key("t", "q", 1), compute) == (b"x", False)
        after = await _scrape(metrics_port)
    finally:
        await ch.close()
        await app.stop()
        await bus.close()

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("aiots_bus_consumed_total", **LABELS_BUS) == N_BARS
    lag = _value(after, "aiots_bus_lag_seconds", **LABELS_BUS)
    # the last bar consumed was the newest: lag = now - its ts_event, between these bounds
    assert (started_ns - ts[-1]) / 1e9 <= lag <= (time.time_ns() - ts[-1]) / 1e9
    cache = {"op": "get", "service": "analytics"}
    assert delta("aiots_cache_requests_total", result="miss", **cache) == 2  # checkpoint + first request
    assert delta("aiots_cache_requests_total", result="hit", **cache) == 1
    assert delta("aiots_cache_requests_total", result="error", **cache) == 1
