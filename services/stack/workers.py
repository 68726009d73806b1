"""Extra worker processes for one service: ``aiots serve NAME --reuse-port`` on the same port.

grpc-python spends most of a call's CPU in the Python layer, so one process serves one core. A
service with ``<service>.workers = N`` runs as the supervisor's own in-process server plus N-1 child
processes of ``aiots serve``; every one binds the same host:port with SO_REUSEPORT and the kernel
spreads new connections over them. That is the shape of compose/Kubernetes replicas on one host,
and it needs the same shared state: events on Redis, data in PostgreSQL (the in-process bus and
cache, and the embedded database, exist inside one process only).

A worker that exits unexpectedly is started again after ``RESPAWN_DELAY_S``; the others keep the
port open meanwhile. Each worker logs to ``<data_dir>/workers/<service>-<i>.log``, and stops by
itself when its parent is gone (``aiots serve --reuse-port`` watches its parent process), so no
orphan keeps serving the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiots.services.common.settings import ServiceSettings, Settings

log = logging.getLogger(__name__)

#: services whose replicas share work through Redis and PostgreSQL (ingestion owns the one market
#: feed; a backtest job lives in the process that runs it)
MULTI_WORKER_SERVICES: tuple[str, ...] = ("cache", "analytics", "signals", "portfolio")
READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.05
MONITOR_POLL_S = 0.5
RESPAWN_DELAY_S = 1.0


class WorkerError(RuntimeError):
    """A worker process could not start; the message says why (with its log's tail)."""


def worker_env(settings: Settings, name: str, cfg: ServiceSettings) -> dict[str, str]:
    """This process's environment plus the settings a worker must share with it: the Redis and
    PostgreSQL URLs, the bus namespace, the symbols and the service's own section."""
    own = f"AIOTS_{name.upper()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith((own + "__", "AIOTS_REDIS__"))}
    if settings.redis_url is not None:
        env["REDIS_URL"] = settings.redis_url.get_secret_value()
    if settings.database_url is not None:
        env["DATABASE_URL"] = settings.database_url.get_secret_value()
    env["AIOTS_REDIS"] = settings.redis.model_dump_json()
    env["AIOTS_SYMBOLS"] = json.dumps(list(settings.symbols))
    env[own] = cfg.model_copy(update={"workers": 1}).model_dump_json()
    return env


def write_ready(path: Path, metrics_port: int | None) -> None:
    """A worker's word to its pool that it serves: ``{"pid", "metrics_port"}`` as JSON, renamed into
    place (the pool never reads half of it; :meth:`WorkerPool._wait_ready` reads it). Blocking."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "metrics_port": metrics_port}))
    os.replace(tmp, path)


def aiots_command() -> str:
    """The ``aiots`` console script of this interpreter's environment (the stack is below the CLI
    layer, so it runs the command rather than importing it)."""
    path = Path(sys.executable).parent / "aiots"
    if not path.exists():
        raise WorkerError(f"cannot start worker processes: no 'aiots' command beside {sys.executable}")
    return str(path)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    ready_file: Path
    started: float = field(default_factory=time.monotonic)
    metrics_port: int | None = None  # from the ready file (the worker binds a free one)


class WorkerPool:
    """``count`` child processes serving ``name`` on ``host:port`` beside the in-process server."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        host: str,
        port: int,
        count: int,
        log_dir: Path,
        on_metrics_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name, self.host, self.port, self.count = name, host, port, count
        #: awaited when a worker started again serves its metrics on another port
        self.on_metrics_change = on_metrics_change
        self.log_dir = log_dir
        self.env = worker_env(settings, name, getattr(settings, name))
        self.workers: list[_Worker] = []
        self.respawns = 0
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix=f"aiots-{name}-workers-")

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc.poll() is None]

    @property
    def metrics_ports(self) -> list[int | None]:
        """Each worker's metrics port, in worker order (None: not serving now)."""
        return [w.metrics_port if w.proc.poll() is None else None for w in self.workers]

    def _spawn(self, index: int) -> _Worker:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        ready = Path(self._tmp.name) / f"{index}-{time.monotonic_ns()}.ready"
        logf = open(self.log_dir / f"{self.name}-{index}.log", "ab")  # noqa: SIM115 (closed in stop)
        cmd = [aiots_command(), "serve", self.name, "--host", self.host,
               "--port", str(self.port), "--metrics-port", "0", "--reuse-port", "--ready-file", str(ready)]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        return _Worker(index, proc, logf, ready)

    async def _wait_ready(self, w: _Worker) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not w.ready_file.exists():
            if w.proc.poll() is not None or time.monotonic() > deadline:
                tail = _tail(self.log_dir / f"{self.name}-{w.index}.log")
                why = f"exited with {w.proc.returncode}" if w.proc.returncode is not None else "not ready in time"
                raise WorkerError(f"{self.name} worker {w.index} {why}: {tail}")
            await asyncio.sleep(READY_POLL_S)
        try:
            port = json.loads(w.ready_file.read_text()).get("metrics_port")
        except (OSError, ValueError, AttributeError):
            port = None
        w.metrics_port = port if isinstance(port, int) else None

    async def start(self) -> None:
        """Start every worker and wait until each serves the port; on failure stop them all."""
        try:
            for i in range(1, self.count + 1):
                self.workers.append(self._spawn(i))
            for w in self.workers:
                await self._wait_ready(w)
        except BaseException:
            await self.stop()
            raise
        self._monitor = asyncio.ensure_future(self._watch())
        log.info("workers started", extra={"component": self.name, "port": self.port, "pids": self.pids})

    async def _watch(self) -> None:
        """Start a worker again when it exits unexpectedly (the others keep the port open)."""
        while not self._stopping:
            await asyncio.sleep(MONITOR_POLL_S)
            for j, w in enumerate(self.workers):
                if self._stopping or w.proc.poll() is None:
                    continue
                log.warning(
                    "worker exited; starting it again",
                    extra={"component": self.name, "worker": w.index, "rc": w.proc.returncode},
                )
                w.log.close()
                await asyncio.sleep(RESPAWN_DELAY_S)
                if not self._stopping:
                    self.workers[j] = again = self._spawn(w.index)
                    self.respawns += 1
                    await self._announce_metrics(again)

    async def _announce_metrics(self, w: _Worker) -> None:
        """Once a worker started again is up, tell the owner its metrics port."""
        try:
            await self._wait_ready(w)
        except WorkerError as exc:
            log.warning("worker started again is not ready (%s)", exc, extra={"component": self.name})
            return
        if self.on_metrics_change is not None:
            try:
                await self.on_metrics_change()
            except Exception:
                log.exception("metrics targets not updated", extra={"component": self.name})

    async def stop(self, budget_s: float = 5.0) -> None:
        """SIGTERM every worker (graceful: drain, flush), SIGKILL what is left after ``budget_s``."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + budget_s
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(w.proc.wait, max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.proc.poll() is None:
                log.warning("worker did not stop in time: killed", extra={"component": self.name, "worker": w.index})
                w.proc.kill()
                w.proc.wait()
            w.log.close()
        self._tmp.cleanup()


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip() or "(no output)"
    except OSError:
        return "(no log)"
