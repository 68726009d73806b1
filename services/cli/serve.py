"""``aiots serve SERVICE``: run one service in this process (for docker-compose / Kubernetes).

Several processes only see the same events and data when they share Redis (REDIS_URL: bus + cache)
and PostgreSQL (DATABASE_URL). Without them each process would get its own in-process bus and its own
embedded database, so this command refuses unless ``--standalone`` says that is intended.

``--workers N`` (or ``<service>.workers``) runs the service as N processes on one port (this one and
N-1 children of ``aiots serve --reuse-port``; see :mod:`aiots.services.stack.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import click

from aiots.services.common import event_loop
from aiots.services.common.settings import Settings, get_settings
from aiots.services.stack.supervisor import SERVICE_ORDER
from aiots.services.stack.workers import write_ready

PARENT_POLL_S = 1.0
SERVICES = SERVICE_ORDER  # every service the composition root knows


@click.command(name="serve")
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--port", type=int, default=None, help="gRPC port (default: <service>.port).")
@click.option("--metrics-port", type=int, default=None, help="Prometheus port (default: <service>.metrics_port).")
@click.option("--host", default=None, help="Bind address (default: <service>.host; 0.0.0.0 in containers).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes serving the port (SO_REUSEPORT; default: <service>.workers). Needs REDIS_URL and DATABASE_URL.",
)
@click.option("--reuse-port", is_flag=True, hidden=True, help="This process is one worker of several (internal).")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), hidden=True, help="Touched when up.")
@click.option(
    "--standalone",
    is_flag=True,
    help="Allow running without REDIS_URL/DATABASE_URL (in-process bus, embedded database: this process only).",
)
def cli(
    service: str,
    port: int | None,
    metrics_port: int | None,
    host: str | None,
    workers: int | None,
    reuse_port: bool,
    ready_file: Path | None,
    standalone: bool,
) -> None:
    """Run one service until SIGTERM/SIGINT (graceful: health NOT_SERVING, drain, flush, stop)."""
    from aiots.services.stack.supervisor import SupervisorError

    settings = get_settings()
    missing = [n for n, v in (("REDIS_URL", settings.redis_url), ("DATABASE_URL", settings.database_url)) if v is None]
    if missing and not standalone:
        raise click.ClickException(
            f"{' and '.join(missing)} not set: separate service processes share events and data only through "
            "Redis and PostgreSQL. Set them, use 'aiots up' for everything in one process, or pass --standalone."
        )
    updates: dict[str, object] = {}
    if port is not None:
        updates["port"] = port
    if metrics_port is not None:
        updates["metrics_port"] = metrics_port
    if host is not None:
        updates["host"] = host
    if workers is not None:
        updates["workers"] = workers
    if updates:
        cfg = getattr(settings, service).model_copy(update=updates)
        settings = settings.model_copy(update={service: cfg})
    try:
        main = _serve(settings, service, reuse_port=reuse_port, ready_file=ready_file)
        sys.exit(event_loop.run(main, settings.event_loop))
    except SupervisorError as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(settings: Settings, service: str, *, reuse_port: bool = False, ready_file: Path | None = None) -> int:
    from aiots.services.common import telemetry
    from aiots.services.common.logging import setup_logging
    from aiots.services.stack.supervisor import Supervisor, exit_now

    setup_logging(settings)
    telemetry.setup_telemetry(settings, service=service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    sup = Supervisor(settings, services=[service], gateway=False, reuse_port=reuse_port)
    await sup.start()
    if service not in sup.apps:
        await sup.stop()
        raise click.ClickException(f"service {service!r} is not available in this build: {'; '.join(sup.notes)}")
    for note in sup.notes:
        logging.getLogger(__name__).warning(note)
    if ready_file is not None:  # the parent learns this worker's metrics port from it
        await asyncio.to_thread(write_ready, ready_file, sup.metrics_ports.get(service))
    orphan_watch = asyncio.ensure_future(_stop_with_parent(stop)) if reuse_port else None
    await stop.wait()
    if orphan_watch is not None:
        orphan_watch.cancel()
    overran = await sup.stop()
    await asyncio.to_thread(telemetry.shutdown_telemetry)  # flushing exporters blocks (OTLP: seconds)
    if sup.stuck:
        exit_now(1)
    return 1 if overran else 0


async def _stop_with_parent(stop: asyncio.Event) -> None:
    """A worker of a multi-process service stops when the process that started it is gone."""
    parent = os.getppid()
    while True:
        await asyncio.sleep(PARENT_POLL_S)
        if os.getppid() != parent:
            stop.set()
            return
