"""Build the shared :class:`Runtime` and run services in one asyncio process, in order.

Used by ``aiots up`` (all four services + the Envoy gateway) and ``aiots serve NAME`` (one service).

Start order: runtime (PostgreSQL pool, cache backend, bus) -> cache -> ingestion -> analytics ->
signals -> gateway. Stop order is the reverse (the edge first so no new work arrives, then signals,
analytics, ingestion (which flushes its writers), cache, and finally the bus, cache backend and pool),
all within ``STOP_BUDGET_S`` seconds: each step gets what is left of the budget. Before the edge
stops, the services' open streams end with their last ``error`` line (resume with ``since``), so REST
clients get it through the gateway (:mod:`~aiots.services.common.streams`).

A service module that does not exist yet (``aiots.services.<name>.app`` missing) is skipped with one
note; so is the gateway when ``aiots.gateway.run`` is missing. Everything else that fails to start
stops what already started and raises :class:`SupervisorError` with one clear line.

The market feed for ingestion is ``rt.feed`` (:class:`~aiots.services.common.runtime.FeedSpec`),
resolved here from ``aiots up --feed/--replay/--speed``. A replay starts only once every service
and the gateway are up (the consumers subscribe to the bus from "now": a replay started with
ingestion lost what it published before the signals service subscribed). Bar and option-quote
files (CSV) are read at start-up with the backtest's readers (:mod:`aiots.services.stack.replay`;
a bad file stops the start with its file, row and column) and replayed lockstep; DBN files go to
ingestion's replay job.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import importlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

from aiots.core.conventions import calendar
from aiots.services.common import server, telemetry
from aiots.services.common.runtime import FeedKind, FeedSpec, Runtime, ServiceApp
from aiots.services.common.settings import Settings
from aiots.services.ingestion.normalize import SOURCE_REPLAY
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import ReplayRunner, Step, bus_settle
from aiots.services.stack import replay as file_replay
from aiots.services.stack.metrics_targets import target_groups, targets_path, write_targets
from aiots.services.stack.workers import MULTI_WORKER_SERVICES, WorkerError, WorkerPool

log = logging.getLogger(__name__)

SERVICE_ORDER: tuple[str, ...] = ("cache", "ingestion", "analytics", "signals", "portfolio", "backtest")
#: where each service's ``create_app`` lives (literal names: the architecture test reads them)
APP_MODULES: dict[str, str] = {
    "cache": "aiots.services.cache.app",
    "ingestion": "aiots.services.ingestion.app",
    "analytics": "aiots.services.analytics.app",
    "signals": "aiots.services.signals.app",
    "portfolio": "aiots.services.portfolio.app",
    "backtest": "aiots.services.backtest.app",
}
STOP_BUDGET_S = 10.0
MIN_STEP_S = 0.5
#: at most this long for open streams to send their last ``error`` line through the gateway before it stops
STREAM_END_S = 1.0
#: then this long for Envoy to relay those last lines to REST clients
STREAM_RELAY_S = 0.1


class SupervisorError(RuntimeError):
    """A component could not start; the message says which and why."""


@dataclass
class Feed:
    """Which market feed ingestion runs."""

    kind: str = "auto"  # auto | simulator | replay | live
    replay_files: list[Path] = field(default_factory=list)
    speed: float | None = None

    def resolve(self, settings: Settings) -> FeedSpec:
        kind = self.kind
        if kind == "auto":
            kind = "replay" if self.replay_files else ("simulator" if settings.simulated_feed else "live")
        if kind == "live" and settings.simulated_feed:
            raise SupervisorError("--feed live needs DATABENTO_API_KEY (or use the simulator: --feed simulator)")
        if kind == "replay" and not self.replay_files:
            raise SupervisorError("--feed replay needs --replay FILE.dbn")
        for f in self.replay_files:
            if not f.is_file():
                raise SupervisorError(f"replay file not found: {f}")
        if kind not in ("simulator", "replay", "live"):
            raise SupervisorError(f"unknown feed {kind!r}; choose auto, simulator, replay or live")
        if settings.ingestion.simulator_session is not None and kind != "simulator":
            raise SupervisorError(
                f"--session (ingestion.simulator_session) picks the simulator's session, not a {kind} feed"
            )
        if self.speed is not None and self.speed <= 0 and kind != "replay":
            raise SupervisorError("--speed 0 (as fast as the services take it) is for a replay feed only")
        speed = self.speed if self.speed is not None else settings.ingestion.simulator_speed
        return FeedSpec(kind=cast(FeedKind, kind), replay_files=tuple(self.replay_files), speed=float(speed))


def with_data_dir(settings: Settings, data_dir: Path) -> Settings:
    """``settings`` with every embedded path (PostgreSQL, spill, keys, gateway config) under
    ``data_dir``."""
    return settings.model_copy(
        update={
            "data_dir": data_dir,
            "database": settings.database.model_copy(update={"embedded_dir": data_dir / "pg"}),
            "ingestion": settings.ingestion.model_copy(update={"spill_dir": data_dir / "spill"}),
            "gateway": settings.gateway.model_copy(
                update={"dev_key_dir": data_dir / "keys", "config_path": data_dir / "gateway" / "envoy.yaml"}
            ),
        }
    )


def with_port_offset(settings: Settings, offset: int) -> Settings:
    """``settings`` with ``offset`` added to every listening port: the gateway's listener, admin and
    health ports and each service's gRPC and metrics ports (a second stack on the same host)."""
    gw = settings.gateway
    update: dict[str, Any] = {
        "gateway": gw.model_copy(
            update={
                "port": gw.port + offset,
                "admin_port": gw.admin_port + offset,
                "health_port": gw.health_port + offset,
            }
        )
    }
    for name in SERVICE_ORDER:
        cfg = getattr(settings, name)
        update[name] = cfg.model_copy(update={"port": cfg.port + offset, "metrics_port": cfg.metrics_port + offset})
    return settings.model_copy(update=update)


def with_base_id(settings: Settings, base_id: int) -> Settings:
    """``settings`` with Envoy's ``--base-id`` set (several Envoys on one host need distinct ones)."""
    return settings.model_copy(update={"gateway": settings.gateway.model_copy(update={"base_id": base_id})})


def default_workers(settings: Settings) -> int:
    """Worker processes per service for ``aiots up``: the core count when events and data are
    shared (REDIS_URL and DATABASE_URL), else 1 (the in-process bus/cache live in one process)."""
    if settings.redis_url is None or settings.database_url is None:
        return 1
    return max(1, os.cpu_count() or 1)


def with_workers(settings: Settings, workers: int | None) -> Settings:
    """``settings`` with ``workers`` processes for every service that can run several (see
    :data:`MULTI_WORKER_SERVICES`). ``None``: :func:`default_workers` for the services whose
    ``workers`` was not set in the configuration."""
    n = default_workers(settings) if workers is None else workers
    update: dict[str, Any] = {}
    for name in MULTI_WORKER_SERVICES:
        cfg = getattr(settings, name)
        if workers is None and "workers" in cfg.model_fields_set:
            continue
        update[name] = cfg.model_copy(update={"workers": n})
    return settings.model_copy(update=update)


def with_session(settings: Settings, session: dt.date) -> Settings:
    """``settings`` with the simulator replaying NYSE session ``session`` (validated: a date the
    exchange is closed raises :class:`~aiots.core.conventions.NotASession`, naming the nearest)."""
    calendar().session(session)
    ing = settings.ingestion.model_copy(update={"simulator_session": session})
    return settings.model_copy(update={"ingestion": ing})


def with_speed(settings: Settings, speed: float) -> Settings:
    """``settings`` with the simulator/replay speed set."""
    return settings.model_copy(update={"ingestion": settings.ingestion.model_copy(update={"simulator_speed": speed})})


@dataclass
class _Started:
    name: str
    stop: Callable[[], Awaitable[Any]]


class Supervisor:
    """Starts the runtime, services and gateway in order; stops them in reverse."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICE_ORDER,
        gateway: bool = True,
        metrics: bool = True,
        feed: Feed | None = None,
        reuse_port: bool = False,
        metrics_targets: bool | None = None,
    ) -> None:
        unknown = [s for s in services if s not in SERVICE_ORDER]
        if unknown:
            raise SupervisorError(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICE_ORDER)}")
        self.settings = settings
        self.services = [s for s in SERVICE_ORDER if s in services]
        self.gateway_wanted = gateway
        self.metrics = metrics
        #: write the Prometheus file_sd targets (None: when a service runs as several processes)
        self.metrics_targets = metrics_targets
        #: the Prometheus file_sd targets written at start (None: not written)
        self.targets_file: Path | None = None
        self.feed = feed or Feed()
        #: this process is itself one worker of a multi-process service (``aiots serve --reuse-port``)
        self.reuse_port = reuse_port
        #: processes serving each started service's port (this one included)
        self.workers: dict[str, int] = {}
        self.pools: dict[str, WorkerPool] = {}
        self.rt = Runtime(settings=settings)
        self.apps: dict[str, ServiceApp] = {}
        self.notes: list[str] = []
        self.metrics_ports: dict[str, int] = {}
        self.gateway: Any = None
        self._started: list[_Started] = []
        #: stop() calls that overran and ignored cancellation (the process must not wait for them)
        self.stuck: list[asyncio.Future[Any]] = []
        #: the replay feed's runners (started last by :meth:`start`); each has ``done`` and ``result``
        self.replays: list[ReplayRunner] = []
        self._steps: list[Step] | None = None
        self._replay_autostart = False

    # ------------------------------------------------------------------ start

    async def start(self) -> Runtime:
        """Start everything; on failure stop what started and raise SupervisorError."""
        try:
            await self._start_runtime()
            for name in self.services:
                await self._start_service(name)
            if self.gateway_wanted:
                await self._start_gateway()
            await self._start_replay()
            await self._write_metrics_targets()
        except BaseException:
            await self.stop()
            raise
        return self.rt

    async def _start_runtime(self) -> None:
        s = self.settings
        self.rt.feed = self.feed.resolve(s)
        if self.rt.feed.kind == "replay" and s.ingestion.autostart:
            # ingestion must not start the replay itself: :meth:`_start_replay` does, once all is up
            self._replay_autostart = True
            self.rt.settings = s.model_copy(update={"ingestion": s.ingestion.model_copy(update={"autostart": False})})
            files = [f for f in self.rt.feed.replay_files if not file_replay.is_dbn(f)]
            if files:
                try:
                    self._steps = await asyncio.to_thread(file_replay.read_steps, files)
                except ValueError as exc:  # DataFileError names the file, row and column
                    raise SupervisorError(f"replay: {exc}") from exc
        try:
            pool_mod = importlib.import_module("aiots.services.storage.pool")
        except ModuleNotFoundError:
            self.notes.append("storage: not available in this build (no database)")
        else:
            where = "DATABASE_URL" if s.database_url else f"embedded PostgreSQL in {s.database.embedded_dir}"
            try:
                self.rt.database_dsn = await pool_mod.resolve_dsn(s)
                self.rt.db = await pool_mod.create_pool(s, dsn=self.rt.database_dsn)
            except Exception as exc:
                raise SupervisorError(f"cannot open the database ({where}): {exc}") from exc
            self._started.append(_Started("database", self.rt.db.close))
        try:
            cache_mod = importlib.import_module("aiots.services.cache.backends")
            self.rt.cache = cache_mod.create_cache_backend(s)
        except ModuleNotFoundError:
            self.notes.append("cache backend: not available in this build")
        else:
            self._started.append(_Started("cache backend", _closer(self.rt.cache)))
        try:
            bus_mod = importlib.import_module("aiots.services.bus.factory")
            self.rt.bus = bus_mod.create_bus(s)
            telemetry.instrument_bus(self.rt.bus)
        except ModuleNotFoundError:
            self.notes.append("bus: not available in this build")
        else:
            start_bus = getattr(self.rt.bus, "start", None)
            if start_bus is not None:
                await start_bus()
            self._started.append(_Started("bus", _closer(self.rt.bus)))

    async def _start_service(self, name: str) -> None:
        try:
            mod = importlib.import_module(APP_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name and (exc.name == APP_MODULES[name] or exc.name == APP_MODULES[name].rsplit(".", 1)[0]):
                self.notes.append(f"{name}: service not available in this build yet (skipped)")
                return
            raise
        workers = self._workers(name)
        token = telemetry.current_service.set(name)
        reuse = server.reuse_port.set(workers > 1 or self.reuse_port)
        try:
            app: ServiceApp = await mod.create_app(self.rt)
            # Registered before start(): a start that fails half-way (port taken after its tasks were
            # spawned) is stopped with the rest instead of leaving its tasks running.
            self._started.append(_Started(name, app.stop))
            try:
                await app.start()
            except OSError as exc:
                raise SupervisorError(f"{name}: cannot start ({exc})") from exc
            self.apps[name] = app
            if self.metrics:
                cfg = getattr(self.settings, name)
                try:
                    port = telemetry.start_metrics_server(name, cfg.metrics_port, host=cfg.host)
                except OSError as exc:
                    raise SupervisorError(f"{name}: metrics port {cfg.metrics_port} unavailable ({exc})") from exc
                self.metrics_ports[name] = port
                self._started.append(_Started(f"{name} metrics", _async(telemetry.stop_metrics_server, port)))
        finally:
            server.reuse_port.reset(reuse)
            telemetry.current_service.reset(token)
        if workers > 1:
            cfg = getattr(self.settings, name)
            pool = WorkerPool(
                self.settings, name, host=cfg.host, port=app.port, count=workers - 1,
                log_dir=Path(self.settings.data_dir) / "workers", on_metrics_change=self._write_metrics_targets,
            )  # fmt: skip
            self._started.append(_Started(f"{name} workers", pool.stop))
            try:
                await pool.start()
            except WorkerError as exc:
                raise SupervisorError(str(exc)) from exc
            self.pools[name] = pool
        self.workers[name] = workers
        log.info("service started", extra={"component": name, "port": app.port, "workers": workers})

    async def _write_metrics_targets(self) -> None:
        """Every metrics endpoint of this stack, workers' included, as a Prometheus file_sd file
        (:mod:`~aiots.services.stack.metrics_targets`); not by a worker, nor without metrics."""
        wanted = bool(self.pools) if self.metrics_targets is None else self.metrics_targets
        if not self.metrics or self.reuse_port or not wanted:
            return
        ports = {
            n: [p, *(self.pools[n].metrics_ports if n in self.pools else [])] for n, p in self.metrics_ports.items()
        }
        hosts = {n: getattr(self.settings, n).host for n in ports}
        path = targets_path(self.settings.data_dir)
        try:
            await asyncio.to_thread(write_targets, path, target_groups(hosts, ports))
        except OSError as exc:  # a read-only data_dir (a container's root file system) must not stop a service
            log.warning("metrics targets not written to %s (%s); scrape the metrics ports directly", path, exc)
            return
        self.targets_file = path

    def _workers(self, name: str) -> int:
        """Processes for ``name``: its ``workers`` setting where that can work, else 1 (with a note)."""
        n: int = getattr(self.settings, name).workers
        if n <= 1 or self.reuse_port:
            return 1
        if name not in MULTI_WORKER_SERVICES:
            self.notes.append(f"{name}: one process (workers={n} ignored: it owns state no replica shares)")
            return 1
        if self.settings.redis_url is None or self.settings.database_url is None:
            self.notes.append(
                f"{name}: one process (workers={n} needs REDIS_URL and DATABASE_URL: the in-process bus and "
                "cache and the embedded database live inside one process)"
            )
            return 1
        return n

    async def _start_gateway(self) -> None:
        try:
            run_mod = importlib.import_module("aiots.gateway.run")
        except ModuleNotFoundError:
            self.notes.append("gateway: not available in this build (services are reachable directly)")
            return
        token = telemetry.current_service.set("gateway")
        try:
            gw = run_mod.Gateway(self.settings)
            try:
                await gw.start()
            except Exception as exc:
                raise SupervisorError(f"gateway: {exc}") from exc
            self.gateway = gw
            self._started.append(_Started("gateway", gw.stop))
        finally:
            telemetry.current_service.reset(token)

    async def _start_replay(self) -> None:
        """Start the replay feed: DBN files as ingestion's replay job, bar/quote files here."""
        app = self.apps.get("ingestion")
        if not self._replay_autostart or app is None:
            return
        manager: Any = getattr(app, "manager", None)
        if manager is None:
            return
        feed = self.rt.feed
        dbn = [f for f in feed.replay_files if file_replay.is_dbn(f)]
        if dbn:
            job = await manager.start_replay(dbn, feed.speed)
            self.replays.append(manager.jobs[job].runner)
        if self._steps is not None:
            files = [f for f in feed.replay_files if not file_replay.is_dbn(f)]
            pipe = Pipeline(
                writer=manager.writer, bus=manager.bus, prices=manager.prices, source=SOURCE_REPLAY, build_bars=False
            )
            runner = ReplayRunner(pipe, files, speed=feed.speed, steps=self._steps, settle=bus_settle(self.rt.bus))
            self._steps = None
            task = asyncio.create_task(_run_logged(runner), name="replay-files")
            self.replays.append(runner)
            self._started.append(_Started("replay", _cancel(task)))

    # ------------------------------------------------------------------ stop

    async def _end_streams(self) -> None:
        """End the services' open streams, each with its last ``error`` line, while the gateway still
        carries them to REST clients (stopping Envoy first would cut them without a word)."""
        servers = [getattr(app, "server", None) for app in self.apps.values()]
        trailers = [gs.trailers for gs in servers if gs is not None and gs.trailers is not None]
        for t in trailers:
            t.drain()
        if any(t.open_streams for t in trailers):
            await asyncio.gather(*(t.ended(STREAM_END_S) for t in trailers))
            await asyncio.sleep(STREAM_RELAY_S)

    async def stop(self, budget_s: float = STOP_BUDGET_S) -> list[str]:
        """Stop in reverse start order within ``budget_s``; returns components that overran."""
        deadline = time.monotonic() + budget_s
        overran: list[str] = []
        if self.gateway is not None:
            await self._end_streams()
        while self._started:
            comp = self._started.pop()
            left = max(MIN_STEP_S, deadline - time.monotonic())
            # not wait_for: a stop() that swallows its cancellation would make wait_for wait forever
            task = asyncio.ensure_future(comp.stop())
            done, _ = await asyncio.wait({task}, timeout=left)
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=MIN_STEP_S)
                overran.append(comp.name)
                log.warning("stop timed out", extra={"component": comp.name, "budget_s": round(left, 2)})
                if not task.done():
                    self.stuck.append(task)
            elif not task.cancelled() and task.exception() is not None:
                log.error("error while stopping", extra={"component": comp.name}, exc_info=task.exception())
            else:
                log.debug("stopped", extra={"component": comp.name})
        return overran


def exit_now(rc: int) -> NoReturn:
    """End the process with ``rc`` without waiting for stuck tasks (asyncio.run would wait for every
    task to finish after cancelling it, forever for one that ignores cancellation). atexit handlers
    still run first: the embedded PostgreSQL is stopped and logs are flushed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    atexit._run_exitfuncs()
    os._exit(rc)


async def _run_logged(runner: ReplayRunner) -> None:
    try:
        await runner.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("replay failed")


def _cancel(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    return stop


def _closer(obj: Any) -> Callable[[], Awaitable[Any]]:
    async def close() -> None:
        fn = getattr(obj, "close", None) or getattr(obj, "aclose", None)
        if fn is not None:
            res = fn()
            if asyncio.iscoroutine(res):
                await res

    return close


def _async(fn: Callable[..., Any], *args: Any) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await asyncio.to_thread(fn, *args)

    return run
