"""`aiots up` as a real subprocess on spare ports: embedded PostgreSQL (pgserver) under a temporary
``--data-dir``, the in-process cache and bus, the simulator feed, the Envoy gateway.

Nothing of a developer's environment leaks in (DATABASE_URL, REDIS_URL, DATABENTO_API_KEY and every
``AIOTS_*`` variable are removed) and nothing collides with a developer's running stack: every port
is a free one picked here and Envoy gets its own ``--base-id``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiots.services.stack.supervisor import SERVICE_ORDER

AIOTS = Path(sys.executable).parent / "aiots"
SERVICES: tuple[str, ...] = SERVICE_ORDER  # every service `aiots up` starts, each on a spare port
START_TIMEOUT_S = 90.0
HEALTH_TIMEOUT_S = 30.0
HEARTBEAT_S = 1.0
SPEED = 60.0
HISTORY_SESSIONS = 30


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free right now on 127.0.0.1."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class UpProcess:
    """One ``aiots up`` child; stdout/stderr are collected by reader threads."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data_dir = tmp / "data"
        n = len(SERVICES)
        p = free_ports(3 + 2 * n)
        self.ports = {
            "gateway": p[0],
            "admin": p[1],
            "health": p[2],
            **{svc: p[3 + i] for i, svc in enumerate(SERVICES)},
            **{f"{svc}_metrics": p[3 + n + i] for i, svc in enumerate(SERVICES)},
        }
        self.base_id = random.randint(10_000, 1_000_000)
        self.proc: subprocess.Popen[str] | None = None
        self.out: list[str] = []
        self.err: list[str] = []
        self.banner_done = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ start

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIOTS_") and k not in ("DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY")
        }
        port = self.ports
        env.update(
            {
                "AIOTS_GATEWAY__PORT": str(port["gateway"]),
                "AIOTS_GATEWAY__ADMIN_PORT": str(port["admin"]),
                "AIOTS_GATEWAY__HEALTH_PORT": str(port["health"]),
                "AIOTS_GATEWAY__HEALTH_CHECK_INTERVAL_S": "0.5",
                "AIOTS_GATEWAY__ACCESS_LOG_PATH": str(self.tmp / "access.log"),
                "AIOTS_SIGNALS__HEARTBEAT_S": str(HEARTBEAT_S),
                "AIOTS_INGESTION__HISTORY_SESSIONS": str(HISTORY_SESSIONS),
                "AIOTS_TELEMETRY__LOG_LEVEL": os.environ.get("AIOTS_E2E_LOG_LEVEL", "INFO"),
            }
        )
        for svc in SERVICES:
            env[f"AIOTS_{svc.upper()}__PORT"] = str(port[svc])
            env[f"AIOTS_{svc.upper()}__METRICS_PORT"] = str(port[f"{svc}_metrics"])
        return env

    def start(self) -> UpProcess:
        cmd = [
            str(AIOTS),
            "up",
            "--feed",
            "simulator",
            "--speed",
            str(SPEED),
            "--data-dir",
            str(self.data_dir),
            "--base-id",
            str(self.base_id),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=self.tmp, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.banner_done.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"aiots up did not come up (rc={self.proc.returncode}):\n{self.logs()}")
        if not self.missing:  # /health is 503 while a service is absent from the build
            self.wait_healthy()
        return self

    @property
    def missing(self) -> list[str]:
        """Services `aiots up` skipped (not in this build yet)."""
        return [svc for svc in SERVICES if not self.started(svc)]

    def _read_out(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.out.append(line)
            if line.startswith("Live signals"):
                self.banner_done.set()

    def _read_err(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_healthy(self) -> dict[str, Any]:
        """Poll the gateway's /health until 200 (every upstream SERVING)."""
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        last: Any = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    return dict(json.loads(r.read()))
            except urllib.error.HTTPError as exc:
                last = exc.read()[:500]
            except OSError as exc:
                last = exc
            time.sleep(0.2)
        raise RuntimeError(f"/health not 200 after {HEALTH_TIMEOUT_S}s: {last!r}\n{self.logs()}")

    # ------------------------------------------------------------------ what it printed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['gateway']}"

    @property
    def banner(self) -> str:
        return "".join(self.out)

    @property
    def token(self) -> str:
        """The dev token (role trader) behind the banner's ``export TOKEN=$(cat FILE)``; the banner
        never prints the token itself."""
        m = re.search(r"export TOKEN=\$\(cat (\S+)\)", self.banner)
        assert m, self.banner
        path = Path(m.group(1))
        return (path if path.is_absolute() else self.tmp / path).read_text().strip()  # aiots up ran in tmp

    def started(self, service: str) -> bool:
        return f"127.0.0.1:{self.ports[service]}" in self.banner

    def issue_token(self, role: str, ttl: str = "10m") -> str:
        """``aiots token --role ROLE --data-dir <this stack's data>`` (the CLI, as a user runs it)."""
        r = subprocess.run(
            [str(AIOTS), "token", "--role", role, "--ttl", ttl, "--data-dir", str(self.data_dir)],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return r.stdout.strip()

    def logs(self) -> str:
        return self.banner + "\n--- stderr (tail) ---\n" + "".join(self.err)[-4000:]

    # ------------------------------------------------------------------ stop

    def interrupt(self, timeout: float = 30.0) -> tuple[int, float]:
        """Ctrl-C: SIGINT, wait; returns (exit code, seconds until the process ended)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout)
        took = time.monotonic() - t0
        for t in self._threads:
            t.join(timeout=5)
        return rc, took

    def postmaster_pid(self) -> int | None:
        pidfile = self.data_dir / "pg" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().splitlines()[0])
        return None

    def _is_our_postgres(self, pid: int) -> bool:
        """A live postgres whose data dir is this stack's (a stale pid file may name another process)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return any(b"postgres" in c for c in cmdline[:1]) and str(self.data_dir / "pg").encode() in cmdline

    def stop(self, *, kill: bool = False) -> None:
        """Make sure the child and the embedded PostgreSQL it started are gone."""
        if self.proc is not None and self.proc.poll() is None:
            if not kill:
                self.proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=20)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        pid = self.postmaster_pid()
        if pid is not None and self._is_our_postgres(pid):
            # the child died without stopping the server it started: immediate shutdown
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGQUIT)
        for t in self._threads:
            t.join(timeout=5)
        (self.tmp / "stdout.log").write_text(self.banner)
        (self.tmp / "stderr.log").write_text("".join(self.err))
