"""``aiots up``: the whole system on one machine, in one process (what ``make run`` calls).

With no DATABASE_URL it starts an embedded PostgreSQL (data under ``--data-dir``, default ``.aiots``,
kept between runs); with no REDIS_URL the in-process cache and bus; with no DATABENTO_API_KEY the
market simulator (or ``--replay FILE.dbn``). It prints the URLs, a dev token and lines to try, then a
live line per signal. Ctrl-C stops everything in order within 10 s (a second Ctrl-C aborts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from aiots.core.conventions import DEFAULT_RATE, NotASession
from aiots.services.common import event_loop
from aiots.services.common.settings import Settings, get_settings

#: the banner's dev token: the least role its examples need, short-lived, in a 0600 file (never printed)
DEV_TOKEN_ROLE = "trader"
DEV_TOKEN_TTL_S = 3600.0
DEV_TOKEN_FILE = "token"


@click.command(name="up")
@click.option(
    "--replay",
    "replay",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replay these files as the market feed (repeatable): DBN, or the backtest's 1-minute bar and option "
    "quote-bar CSVs (merged in time, lockstep: each minute's quotes, then its bars, reach every service first).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0),
    help="Feed speed: 1 real time, 60 = 1 min/s; 0 (replay only): as fast as the services take it.",
)
@click.option(
    "--session",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Simulator: replay this NYSE session (YYYY-MM-DD) from its 09:30 ET open, then the following ones "
    "(ingestion.simulator_session). Default: live in a session, else the last session.",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Where embedded data lives [.aiots]."
)
@click.option(
    "--feed",
    type=click.Choice(["auto", "simulator", "replay", "live"]),
    default="auto",
    show_default=True,
    help="auto: live with DATABENTO_API_KEY, replay with --replay, else the simulator.",
)
@click.option(
    "--port-offset",
    type=click.IntRange(min=0, max=50_000),
    default=0,
    help="Add N to every port (gateway, admin, health, services, metrics) and, unless --base-id is given, to "
    "Envoy's base id: a second stack beside a running one.",
)
@click.option("--base-id", type=click.IntRange(min=0), default=None, help="Envoy --base-id (distinct per Envoy).")
@click.option("--no-gateway", is_flag=True, help="Do not start Envoy (services stay reachable directly).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Processes per service (cache, analytics, signals, portfolio) on one port each. Default: the core count "
    "with REDIS_URL and DATABASE_URL, else 1 (the in-process bus/cache live in one process).",
)
@click.option("--quiet", is_flag=True, help="No live signal lines.")
@click.option("--duration", type=float, default=None, hidden=True, help="Stop after N seconds (smoke tests).")
def cli(
    replay: tuple[Path, ...],
    speed: float | None,
    session: datetime | None,
    data_dir: Path | None,
    feed: str,
    port_offset: int,
    base_id: int | None,
    no_gateway: bool,
    workers: int | None,
    quiet: bool,
    duration: float | None,
) -> None:
    """Start all four services, the Envoy gateway and a market feed (Ctrl-C stops them)."""
    from aiots.services.stack.supervisor import (
        Feed,
        SupervisorError,
        with_base_id,
        with_data_dir,
        with_port_offset,
        with_session,
        with_speed,
        with_workers,
    )

    settings = get_settings()
    if data_dir is not None:
        settings = with_data_dir(settings, data_dir)
    if speed:
        settings = with_speed(settings, speed)
    if session is not None:
        try:
            settings = with_session(settings, session.date())
        except NotASession as exc:
            raise click.BadParameter(str(exc), param_hint="--session") from exc
    if port_offset:
        settings = with_port_offset(settings, port_offset)
        if base_id is None:  # a second stack's Envoy must not share the first one's base id
            base_id = settings.gateway.base_id + port_offset
    if base_id is not None:
        settings = with_base_id(settings, base_id)
    settings = with_workers(settings, workers)
    f = Feed(kind=feed, replay_files=list(replay), speed=speed)
    try:
        rc = event_loop.run(
            _up(settings, f, gateway=not no_gateway, quiet=quiet, duration=duration), settings.event_loop
        )
    except SupervisorError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(rc)


async def _up(settings: Settings, feed: Any, *, gateway: bool, quiet: bool, duration: float | None) -> int:
    from aiots.services.common import telemetry
    from aiots.services.common.logging import setup_logging
    from aiots.services.stack.supervisor import Supervisor, exit_now

    console = Console(highlight=False, soft_wrap=True)
    setup_logging(settings, json_logs=settings.telemetry.json_logs and not sys.stderr.isatty())
    telemetry.setup_telemetry(settings, service="aiots")
    stop = asyncio.Event()
    _install_signals(stop)
    console.print("[bold]AI-OTS[/] starting ...")
    t0 = time.monotonic()
    sup = Supervisor(settings, gateway=gateway, feed=feed, metrics_targets=True)
    await sup.start()
    # Loading the RSA dev key and signing take ~150 ms: not on the loop the services run on.
    token_file = await asyncio.to_thread(_dev_token, settings) if sup.gateway is not None else None
    _banner(console, sup, time.monotonic() - t0, token_file)
    follower: asyncio.Task[None] | None = None
    if not quiet and "signals" in sup.apps:
        follower = asyncio.create_task(_follow_signals(console, sup.apps["signals"].port, stop))
    watchers = [asyncio.create_task(_replay_finished(console, r)) for r in getattr(sup, "replays", ())]
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, stop.set)
    await stop.wait()
    console.print("stopping ...")
    t1 = time.monotonic()
    for w in watchers:
        w.cancel()
    if follower is not None:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower
    overran = await sup.stop()
    await asyncio.to_thread(telemetry.shutdown_telemetry)  # flushing exporters blocks (OTLP: seconds)
    took = time.monotonic() - t1
    if overran:
        console.print(f"[yellow]stopped in {took:.1f} s; timed out: {', '.join(overran)}[/]")
        if sup.stuck:
            exit_now(1)
        return 1
    console.print(f"stopped in {took:.1f} s")
    return 0


async def _replay_finished(console: Console, runner: Any) -> None:
    """One line when a replay feed has ended (every record handed to the services)."""
    await runner.done.wait()
    res = runner.result
    if res is None:
        console.print("replay failed (see the log)")
    else:
        console.print(f"replay finished: {res.records} records in {res.seconds:.1f} s")


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def first(sig: int) -> None:
        stop.set()
        # a second Ctrl-C interrupts at once
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, first, sig)


def _exe(name: str) -> str:
    """This venv's ``name`` command as the user can type it (``.venv/bin/aiots`` from the repo)."""
    path = Path(sys.executable).parent / name
    with contextlib.suppress(ValueError):
        rel = path.absolute().relative_to(Path.cwd())
        return str(rel) if rel.parts[0].startswith(".") else f"./{rel}"
    return str(path)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    with contextlib.suppress(ValueError):
        return str(path.absolute().relative_to(Path.cwd()))
    return str(path)


def _banner(console: Console, sup: Any, took: float, token_file: Path | None) -> None:
    s: Settings = sup.settings
    feed = sup.rt.feed
    db = "DATABASE_URL" if s.database_url else f"embedded PostgreSQL ({s.database.embedded_dir})"
    bus = "Redis (REDIS_URL)" if s.redis_url else "in-process cache + bus"
    src = feed.kind + (f" x{feed.speed:g}" if feed.kind != "live" and feed.speed > 0 else "")
    if feed.kind == "replay" and feed.speed <= 0:
        src += " (as fast as the services take it)"
    if feed.kind == "replay":
        src += " of " + ", ".join(f.name for f in feed.replay_files)
    console.print(f"[bold green]AI-OTS is up[/] in {took:.1f} s  ·  {db}  ·  {bus}  ·  feed: {src}")
    if feed.kind == "simulator":
        from aiots.services.ingestion.sources.simulator import describe_market

        console.print(f"  market     {describe_market(time.time_ns(), s.ingestion.simulator_session)}")
    gw = s.gateway
    host = "localhost"
    if sup.gateway is not None:
        console.print(
            f"  gateway    http://{host}:{gw.port}  (REST/JSON + gRPC, JWT)   admin http://127.0.0.1:{gw.admin_port}"
        )
        if token_file is not None:  # one click: the page takes the dev token from the fragment (never sent)
            url = f"http://{host}:{gw.port}/#token={token_file.read_text().strip()}"
            console.print(f"  dashboard  {url}", soft_wrap=True, highlight=False, markup=False)
    for name, app in sup.apps.items():
        cfg = getattr(s, name)
        mp = sup.metrics_ports.get(name)
        metrics = f"   metrics http://{cfg.host}:{mp}/metrics" if mp else ""
        pool = getattr(sup, "pools", {}).get(name)
        others = [p for p in pool.metrics_ports if p is not None] if pool is not None else []
        if mp and others:
            metrics += " (workers' own: " + " ".join(f":{p}" for p in others) + ")"
        n = getattr(sup, "workers", {}).get(name, 1)
        procs = f"  x{n} processes" if n > 1 else ""
        console.print(f"  {name:<10} grpc {cfg.host}:{app.port}{procs}{metrics}")
    targets = getattr(sup, "targets_file", None)
    if targets is not None and getattr(sup, "pools", {}):
        console.print(f"  prometheus every metrics endpoint, workers' included: {_shown(targets)} (file_sd)")
    if not (s.redis_url and s.database_url):
        console.print("  one process per service (in-process bus/cache; --workers needs REDIS_URL and DATABASE_URL)")
    for note in sup.notes:
        console.print(f"  [yellow]note:[/] {note}")
    console.print()
    aiots, buf = _exe("aiots"), _exe("buf")
    if token_file is not None:
        console.print(
            f"Try (a dev token, role {DEV_TOKEN_ROLE}, valid {DEV_TOKEN_TTL_S / 3600:g} h, in a file only you can "
            f"read; others: {aiots} token --role admin):"
        )
        console.print(f"  export TOKEN=$(cat {_shown(token_file)})")
        base = f"http://{host}:{gw.port}"
        console.print(
            f'  curl -H "Authorization: Bearer $TOKEN" \'{base}/api/v1/analytics/indicators/AAPL'
            "?indicators=sma,rsi,macd&period=20&interval=1m'"
        )
        console.print(f"  curl -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/cache/stock-prices/AAPL'")
        console.print(f"  curl -N -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/signals/subscribe'")
        console.print(f"  curl {base}/health    # no token; access log: {_shown(Path(_access_log(s)))}")
    ports = ", ".join(str(app.port) for app in sup.apps.values())
    if ports:
        console.print(f"  # ports {ports} speak gRPC only (curl there fails); buf curl from the venv:")
    if "analytics" in sup.apps:
        a = sup.apps["analytics"].port
        body = '{"symbol":"AAPL","interval":"1m"}'
        grpc = f"{buf} curl --protocol grpc --http2-prior-knowledge"
        console.print(f"  {grpc} -d '{body}' http://127.0.0.1:{a}/aiots.v1.AnalyticsService/GetIndicators")
        console.print(f"  {grpc} http://127.0.0.1:{a}/grpc.health.v1.Health/Check")
        console.print(f"  {aiots} chain AAPL")
        console.print(f"  {aiots} greeks 190 200 0.25 {DEFAULT_RATE} 0.3 --call --american")
    if "signals" in sup.apps:
        console.print(f"  {aiots} signals follow    # or watch the lines below")
    console.print("Live signals (Ctrl-C to stop):")


def _access_log(s: Settings) -> str:
    return s.gateway.access_log_path or str(Path(s.gateway.config_path).parent / "access.log")


def _dev_token(s: Settings) -> Path | None:
    """Issue the banner's token into ``<data_dir>/token`` (mode 0600); its path, or None without
    a dev key (tokens then come from the configured identity provider)."""
    if s.gateway.jwks_file is not None:
        return None
    try:
        from aiots.gateway import tokens
    except ModuleNotFoundError:
        return None
    tok = tokens.issue_token(s.gateway, role=DEV_TOKEN_ROLE, subject="dev@localhost", ttl_s=DEV_TOKEN_TTL_S)
    path = Path(s.data_dir) / DEV_TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a fresh file: O_CREAT's mode applies only to new files
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    return path


async def _follow_signals(console: Console, port: int, stop: asyncio.Event) -> None:
    """Print one line per new signal / status change until ``stop``; resumes after drops."""
    from aiots.services.cli.signals import follow_stream
    from aiots.services.common.telemetry import open_channel
    from aiots.v1 import signals_pb2, signals_pb2_grpc

    async with open_channel(f"127.0.0.1:{port}") as ch:
        stub = signals_pb2_grpc.SignalServiceStub(ch)
        req = signals_pb2.SubscribeSignalsRequest(include_updates=True)
        async for msg in follow_stream(stub, req):
            if stop.is_set():
                return
            kind = msg.WhichOneof("event")
            if kind in ("signal", "update"):
                sig = msg.signal if kind == "signal" else msg.update
                console.print(signal_line(sig, is_update=kind == "update"))


def signal_line(sig: Any, *, is_update: bool) -> str:
    """One human line for a Signal message."""
    from aiots.v1 import signals_pb2

    at = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
    status = signals_pb2.SignalStatus.Name(sig.status).removeprefix("SIGNAL_STATUS_")
    direction = signals_pb2.Direction.Name(sig.direction).removeprefix("DIRECTION_").lower()
    c = sig.contract
    head = f"{at} {'UPDATE' if is_update else 'NEW   '} {status:<10} {sig.symbol:<5} {direction:<7} {sig.strategy}"
    body = (
        f" {c.occ_symbol} entry ${sig.entry_price:.2f} target ${sig.target_price:.2f} stop ${sig.stop_price:.2f}"
        f" conf {sig.confidence:.2f}"
    )
    if is_update and sig.HasField("outcome"):
        body += f" pnl {sig.outcome.pnl_pct:+.1f}%"
    return head + body + f"  [{sig.id}]"
