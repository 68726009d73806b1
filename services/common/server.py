"""Build and run a grpc.aio server the same way for every service.

Every server gets: the error interceptor (domain errors -> rich gRPC statuses, undecodable
requests -> INVALID_ARGUMENT naming the field), any extra interceptors (telemetry, audit),
``grpc.health.v1.Health`` with liveness (``""``), readiness per service and a status per
dependency once :meth:`GrpcServer.watch` is called (:mod:`aiots.services.common.health`), server
reflection, a graceful stop with a grace period (:meth:`GrpcServer.stop`; open streams end at once with
a last ``error`` message, :mod:`~aiots.services.common.streams`), and bounded message sizes.

A servicer that subclasses its generated base class is registered with
:meth:`ServiceRegistration.of`: the handlers come from the service's descriptor, and an RPC decorated
with :func:`pre_encoded` / :func:`pre_encoded_stream` returns its response already serialised (the
server sends those bytes as they are; nothing is parsed and serialised again).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiots.services.common.errors import ErrorInterceptor
from aiots.services.common.gateway_auth import gateway_interceptors
from aiots.services.common.health import Dependency, Readiness
from aiots.services.common.settings import ServiceSettings, get_settings
from aiots.services.common.streams import StreamTrailers

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 << 20
SHUTDOWN_GRACE_S = 5.0

InterceptorFactory = Callable[[Sequence[str]], Sequence[grpc.aio.ServerInterceptor]]
_default_interceptors: InterceptorFactory | None = None
#: True while the supervisor starts a service that runs as several worker processes on one port
#: (SO_REUSEPORT: the kernel spreads connections over them); otherwise a taken port is an error.
reuse_port: contextvars.ContextVar[bool] = contextvars.ContextVar("reuse_port", default=False)


def set_default_interceptors(factory: InterceptorFactory | None) -> None:
    """Interceptors every server gets before its own (telemetry and audit install theirs here).

    ``factory`` receives the full names of the server's gRPC services.
    """
    global _default_interceptors
    _default_interceptors = factory


P = ParamSpec("P")
R = TypeVar("R", bound=Message)
_ENCODED = "__aiots_pre_encoded__"


def _identity(b: bytes) -> bytes:
    return b


def pre_encoded(response: type[R]) -> Callable[[Callable[P, Awaitable[bytes]]], Callable[P, Awaitable[R]]]:
    """Declare a unary RPC whose implementation returns the serialised ``response`` message.

    The server registers the implementation with an identity serializer (the bytes go out as
    they are). Called from Python (tests, in-process callers), the method returns the parsed
    ``response``, so its type is the generated base class's. Usage::

        @pre_encoded(cache_pb2.GetStockPriceResponse)
        async def GetStockPrice(self, request, context) -> bytes: ...
    """

    def wrap(fn: Callable[P, Awaitable[bytes]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def parsed(*args: P.args, **kwargs: P.kwargs) -> R:
            return response.FromString(await fn(*args, **kwargs))

        setattr(parsed, _ENCODED, fn)
        return parsed

    return wrap


def pre_encoded_stream(
    response: type[R],
) -> Callable[[Callable[P, AsyncIterator[bytes]]], Callable[P, AsyncIterator[R]]]:
    """:func:`pre_encoded` for a server-streaming RPC: the implementation yields serialised messages."""

    def wrap(fn: Callable[P, AsyncIterator[bytes]]) -> Callable[P, AsyncIterator[R]]:
        @functools.wraps(fn)
        async def parsed(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
            async for raw in fn(*args, **kwargs):
                yield response.FromString(raw)

        setattr(parsed, _ENCODED, fn)
        return parsed

    return wrap


def service_descriptor(servicer: object) -> ServiceDescriptor:
    """The descriptor of the service whose generated ``<Name>Servicer`` base ``servicer`` subclasses."""
    for cls in type(servicer).__mro__:
        mod = cls.__module__
        if mod.endswith("_pb2_grpc") and cls.__name__.endswith("Servicer"):
            pb2 = sys.modules[mod.removesuffix("_grpc")]  # the generated grpc module imports it
            desc: ServiceDescriptor = pb2.DESCRIPTOR.services_by_name[cls.__name__.removesuffix("Servicer")]
            return desc
    raise TypeError(f"{type(servicer).__name__} does not subclass a generated *_pb2_grpc.*Servicer")


def method_handlers(servicer: object, service: ServiceDescriptor) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per RPC of ``service``, read from its descriptor; :func:`pre_encoded` RPCs send
    their bytes through an identity serializer."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for m in service.methods:
        impl = getattr(servicer, m.name)
        raw = getattr(impl, _ENCODED, None)
        behaviour = impl if raw is None else types.MethodType(raw, servicer)
        request = message_factory.GetMessageClass(m.input_type).FromString
        serialize = _identity if raw is not None else message_factory.GetMessageClass(m.output_type).SerializeToString
        make = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(m.client_streaming, m.server_streaming)]
        handlers[m.name] = make(behaviour, request_deserializer=request, response_serializer=serialize)
    return handlers


@dataclass
class ServiceRegistration:
    """One gRPC service to expose: its full name, how to add it to a server, and the servicer.

    Prefer :meth:`of`; the explicit form remains for servicers registered by hand."""

    full_name: str
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any

    @classmethod
    def of(cls, servicer: object) -> ServiceRegistration:
        """Register ``servicer`` (a subclass of a generated ``*Servicer``) from its service descriptor."""
        service = service_descriptor(servicer)

        def add(impl: object, server: grpc.aio.Server) -> None:
            handlers = method_handlers(impl, service)
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
            server.add_registered_method_handlers(service.full_name, handlers)

        return cls(service.full_name, add, servicer)


@dataclass
class GrpcServer:
    """A started server with its health servicer, for tests and the supervisor."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    services: list[str] = field(default_factory=list)
    readiness: Readiness | None = None
    #: the stream-trailer interceptor: ends open streams with a last ``error`` message on stop
    trailers: StreamTrailers | None = None

    async def set_serving(self, serving: bool) -> None:
        """All names (liveness ``""`` and each service's readiness) at once; ``False`` also stops
        the dependency probes (a stopping server never turns ready again) and ends every open
        server stream with UNAVAILABLE after a last ``error`` message (:mod:`.streams`)."""
        if self.trailers is not None and serving:
            self.trailers.reopen()
        elif self.trailers is not None:
            self.trailers.drain()
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
    trailers = StreamTrailers()  # innermost: sees the servicers' own exceptions
    defaults = list(_default_interceptors(names)) if _default_interceptors is not None else []
    server = grpc.aio.server(
        interceptors=[
            *defaults,
            *gateway_interceptors(get_settings().gateway),
            *interceptors,
            ErrorInterceptor(),
            trailers,
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", int(reuse_port.get())),
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
    gs = GrpcServer(server=server, health=health_servicer, port=bound, services=names, trailers=trailers)
    await gs.set_serving(True)
    log.info("gRPC server listening", extra={"port": bound, "services": names})
    return gs
