"""`aiots up` end to end as a subprocess: starts, serves /metrics per service, stops within 10 s on
SIGINT, and never prints a secret. Fake secrets go in through the real variable names; PostgreSQL is
the local server (trust auth ignores the fake password), the feed is the simulator.

Oracles: the Prometheus text parser, grpc.health.v1, and plain substring search of every byte the
process wrote.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from aiots.services.common.telemetry import CATALOG

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
AIOTS = Path(sys.executable).parent / "aiots"
FAKE_KEY = "db-FAKEop5TestKey0123456789abcdef"
FAKE_PW = "Fake-DB-Passw0rd-9f8e7d"
START_TIMEOUT_S = 120.0
STOP_LIMIT_S = 12.0  # 10 s budget + interpreter exit


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_up_serves_metrics_stops_in_time_and_never_logs_secrets(
    tmp_path: Path, make_database: Callable[..., str]
) -> None:
    dsn = make_database(True)  # postgresql://postgres@127.0.0.1:5432/<db>
    dsn_with_pw = dsn.replace("postgresql://postgres@", f"postgresql://postgres:{FAKE_PW}@")
    ports = _free_ports(15)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOTS_") and k not in ("REDIS_URL",)}
    env.update(
        {
            "DATABASE_URL": dsn_with_pw,
            "DATABENTO_API_KEY": FAKE_KEY,
            "AIOTS_CACHE__PORT": str(ports[0]),
            "AIOTS_INGESTION__PORT": str(ports[1]),
            "AIOTS_ANALYTICS__PORT": str(ports[2]),
            "AIOTS_SIGNALS__PORT": str(ports[3]),
            "AIOTS_CACHE__METRICS_PORT": str(ports[4]),
            "AIOTS_INGESTION__METRICS_PORT": str(ports[5]),
            "AIOTS_ANALYTICS__METRICS_PORT": str(ports[6]),
            "AIOTS_SIGNALS__METRICS_PORT": str(ports[7]),
            "AIOTS_GATEWAY__PORT": str(ports[8]),
            "AIOTS_GATEWAY__ADMIN_PORT": str(ports[9]),
            "AIOTS_GATEWAY__HEALTH_PORT": str(ports[10]),
            "AIOTS_GATEWAY__BASE_ID": str(4000 + os.getpid() % 1000),
            "AIOTS_PORTFOLIO__PORT": str(ports[11]),  # off the defaults: a `make run` stack may hold them
            "AIOTS_PORTFOLIO__METRICS_PORT": str(ports[12]),
            "AIOTS_BACKTEST__PORT": str(ports[13]),
            "AIOTS_BACKTEST__METRICS_PORT": str(ports[14]),
            "AIOTS_TELEMETRY__LOG_LEVEL": "DEBUG",
        }
    )
    proc = subprocess.Popen(
        [str(AIOTS), "up", "--feed", "simulator", "--speed", "60", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out_lines: list[str] = []
    err_chunks: list[str] = []
    up = threading.Event()

    def read_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out_lines.append(line)
            if line.startswith("Live signals"):
                up.set()

    def read_err() -> None:
        assert proc.stderr is not None
        err_chunks.append(proc.stderr.read())

    threads = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not up.wait(0.2) and proc.poll() is None and time.monotonic() < deadline:
            pass
        if proc.poll() is not None:
            for t in threads:
                t.join(timeout=5)
            pytest.fail("aiots up exited early:\n" + "".join(out_lines) + "".join(err_chunks)[-4000:])
        assert up.is_set(), "aiots up did not come up in time:\n" + "".join(out_lines)
        banner = "".join(out_lines)
        started = [
            svc for svc, port in zip(("cache", "ingestion", "analytics", "signals"), ports[:4], strict=True)
            if f":{port}" in banner
        ]  # fmt: skip
        assert started, banner
        metrics_port = {
            "cache": ports[4], "ingestion": ports[5], "analytics": ports[6], "signals": ports[7]
        }  # fmt: skip
        seen: set[str] = set()
        for svc in started:
            grpc_port = ports[("cache", "ingestion", "analytics", "signals").index(svc)]
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert resp.status == health_pb2.HealthCheckResponse.SERVING
            fams = {f.name: f for f in text_string_to_metric_families(_scrape(metrics_port[svc]))}
            rpc = fams["aiots_rpc_duration_seconds"]
            assert any(s.labels.get("method") == "/grpc.health.v1.Health/Check" for s in rpc.samples)
            for f in fams.values():
                for s in f.samples:
                    if f.name.startswith("aiots_"):
                        assert s.labels["service"] == svc, (svc, f.name, s.labels)
            seen |= {s.name for f in fams.values() for s in f.samples}
        # every counter the alerts and dashboards use is exposed (from the first second) by a service
        rules = (ROOT / "deploy/prometheus/alerts.yml").read_text()
        dashboards = " ".join(p.read_text() for p in (ROOT / "deploy/grafana/dashboards").glob("*.json"))
        for spec in CATALOG:
            used = spec.name in rules or spec.name in dashboards
            owned = any(svc in spec.owners for svc in started)
            if used and owned and spec.kind in ("counter", "updown") and spec.prime:
                assert spec.name in seen, spec.name
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=5)
    out, err = "".join(out_lines), "".join(err_chunks)
    assert rc == 0, out + err[-3000:]
    assert took < STOP_LIMIT_S, f"shutdown took {took:.1f} s"
    assert "stopped in" in out
    everything = out + err
    for secret in (FAKE_KEY, FAKE_PW):
        assert secret not in everything, f"secret leaked into the output of aiots up: {secret}"
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file() and path.suffix in {".log", ".yaml", ".json", ".txt"}:
            text = path.read_text(errors="replace")
            assert FAKE_KEY not in text and FAKE_PW not in text, path
    # logs are JSON lines (stderr is not a terminal here)
    json_lines = [ln for ln in err.splitlines() if ln.startswith("{")]
    assert json_lines and all("level" in json.loads(ln) for ln in json_lines)
    assert yaml is not None
