"""Redis test fixtures (import them into a conftest: ``from tests.integration.bus.redis_fixtures import *``).

- ``redis_url`` (session): the shared Redis (``AIOTS_TEST_REDIS_URL``, default
  redis://127.0.0.1:6379/0); skips with the reason when it is not reachable.
- ``redis_ns`` (function): a namespace unique to the test (``aiotst-<session>-<n>``); every key
  of the session is deleted at its end by SCAN on the session prefix (never FLUSHDB).
- ``redis_proc`` (function): a private ``redis-server`` on a spare port with AOF
  ``appendfsync always`` in ``tmp_path``, which the test may ``kill()`` and ``start()`` again.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

REDIS_URL = os.environ.get("AIOTS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
_SESSION = f"aiotst-{uuid.uuid4().hex[:8]}"
_counter = itertools.count()

__all__ = ["RedisProc", "redis_ns", "redis_proc", "redis_url"]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
    except (redis.RedisError, OSError) as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); start redis-server or set AIOTS_TEST_REDIS_URL")
    yield REDIS_URL
    with contextlib.suppress(redis.RedisError, OSError):
        keys = list(client.scan_iter(match=f"{_SESSION}*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    client.close()


@pytest.fixture
def redis_ns() -> str:
    return f"{_SESSION}-{next(_counter)}"


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProc:
    """A private redis-server (AOF always-fsync: acknowledged writes survive kill -9)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.dir = data_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.dir),
                "--protected-mode", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except (redis.BusyLoadingError, redis.ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def redis_proc(tmp_path: Path) -> Iterator[RedisProc]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip(f"redis-server binary not found at {REDIS_SERVER}")
    rp = RedisProc(tmp_path, spare_port())
    rp.start()
    try:
        yield rp
    finally:
        rp.kill()
