"""Build and run a grpc.aio server the same way for every service.

Every server gets: the error interceptor (domain errors -> rich gRPC statuses, undecodable
requests -> INVALID_ARGUMENT naming the field), any extra interceptors (telemetry, audit),
``grpc.health.v1.Health`` with liveness (``""``), readiness per service and a status per
dependency once :meth:`GrpcServer.watch` is called (:mod:`aiots.services.common.health`), server
reflection, a graceful stop with a grace period (:meth:`GrpcServer.stop`), and bounded message sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiots.services.common.errors import ErrorInterceptor
from aiots.services.common.gateway_auth import gateway_interceptors
from aiots.services.common.health import Dependency, Readiness
from aiots.services.common.settings import ServiceSettings, get_settings

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 << 20
SHUTDOWN_GRACE_S = 5.0

InterceptorFactory = Callable[[Sequence[str]], Sequence[grpc.aio.ServerInterceptor]]
_default_interceptors: InterceptorFactory | None = None


def set_default_interceptors(factory: InterceptorFactory | None) -> None:
    """Interceptors every server gets before its own (telemetry and audit install theirs here).

    ``factory`` receives the full names of the server's gRPC services.
    """
    global _default_interceptors
    _default_interceptors = factory


@dataclass
class ServiceRegistration:
    """One gRPC service to expose: its full name and the generated ``add_..._to_server``."""

    full_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


@dataclass
class GrpcServer:
    """A started server with its health servicer, for tests and the supervisor."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    services: list[str] = field(default_factory=list)
    readiness: Readiness | None = None

    async def set_serving(self, serving: bool) -> None:
        """All names (liveness ``""`` and each service's readiness) at once; ``False`` also stops
        the dependency probes (a stopping server never turns ready again)."""
        if not serving and self.readiness is not None:
            await self.readiness.stop()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in [*self.services, ""]:
            await self.health.set(name, status)

    async def watch(self, deps: Sequence[Dependency], cfg: ServiceSettings) -> Readiness:
        """Report readiness from ``deps`` (see :mod:`aiots.services.common.health`): the services'
        names follow the required dependencies, ``aiots.dep.<name>`` each dependency."""
        if self.readiness is not None:
            await self.readiness.stop()
        self.readiness = Readiness(
            self.health, self.services, deps, interval_s=cfg.readiness_interval_s, timeout_s=cfg.readiness_timeout_s
        )
        await self.readiness.start()
        return self.readiness

    async def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_server(
    registrations: Sequence[ServiceRegistration],
    *,
    host: str,
    port: int,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Start a server on host:port (port 0 picks a free one; the bound port is returned)."""
    names = [r.full_name for r in registrations]
    defaults = list(_default_interceptors(names)) if _default_interceptors is not None else []
    server = grpc.aio.server(
        interceptors=[*defaults, *gateway_interceptors(get_settings().gateway), *interceptors, ErrorInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for reg in registrations:
        reg.add_to_server(reg.servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind gRPC server to {host}:{port} (port in use?)")
    await server.start()
    gs = GrpcServer(server=server, health=health_servicer, port=bound, services=names)
    await gs.set_serving(True)
    log.info("gRPC server listening", extra={"port": bound, "services": names})
    return gs
