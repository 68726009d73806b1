"""`aiots gateway` as a process: starts Envoy as a child, forwards SIGTERM, exits with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.gateway.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _env(tmp_path: Path, admin: int) -> dict[str, str]:
    return {
        **os.environ,
        "AIOTS_GATEWAY__HOST": "127.0.0.1",
        "AIOTS_GATEWAY__ADMIN_PORT": str(admin),
        "AIOTS_GATEWAY__HEALTH_PORT": str(free_port()),
        "AIOTS_GATEWAY__CONFIG_PATH": str(tmp_path / "envoy.yaml"),
        "AIOTS_GATEWAY__DEV_KEY_DIR": str(tmp_path / "keys"),
        "AIOTS_GATEWAY__ACCESS_LOG_PATH": str(tmp_path / "access.log"),
        # upstreams on reserved ports where nothing listens (not 8001-8004: a developer's
        # `make run` stack may be serving there, and then /health would say 200)
        **{f"AIOTS_{svc}__PORT": str(free_port()) for svc in ("CACHE", "INGESTION", "ANALYTICS", "SIGNALS")},
    }


def _cmd(port: int, base_id: int) -> list[str]:
    return [sys.executable, "-m", "aiots.services.cli.main", "gateway", "--base-id", str(base_id), "--port", str(port)]


@contextlib.contextmanager
def _gateway(tmp_path: Path, port: int, admin: int, base_id: int) -> Iterator[subprocess.Popen[bytes]]:
    """``aiots gateway`` as a child process, killed at the end if a test left it running."""
    proc = subprocess.Popen(
        _cmd(port, base_id), env=_env(tmp_path, admin), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stops_with_sigterm(proc: subprocess.Popen[bytes], admin: int) -> None:
    """SIGTERM: exit 0, and Envoy (the child) is gone with it: the admin port no longer answers."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1)


def test_aiots_gateway_runs_envoy_and_forwards_sigterm(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    with _gateway(tmp_path, port, admin, 31337) as proc:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code  # no upstreams running: 503 from the gateway itself
            except OSError:
                time.sleep(0.1)
        assert status == 503
        assert (tmp_path / "envoy.yaml").read_text().startswith("# Generated")
        _stops_with_sigterm(proc, admin)


def test_sigterm_while_starting_is_an_orderly_stop(tmp_path: Path) -> None:
    """SIGTERM in the start window (the config is written, Envoy not yet ready): exit 0, no Envoy left."""
    port, admin = free_port(), free_port()
    with _gateway(tmp_path, port, admin, 31338) as proc:
        config = tmp_path / "envoy.yaml"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not config.exists() and proc.poll() is None:
            time.sleep(0.01)
        assert config.exists()
        _stops_with_sigterm(proc, admin)
