"""Services accept calls from the gateway, not from whoever reaches their port.

The gateway authenticates users (JWT) and then calls the services over plain gRPC. Where a
service port is reachable from other hosts (compose networks, Kubernetes pods), anything there
could call it directly and skip the token. With ``gateway.upstream_secret`` set (env
``AIOTS_GATEWAY__UPSTREAM_SECRET``, the same value for the gateway and every service):

- Envoy adds ``x-aiots-gateway-secret: <secret>`` to every request it forwards (and drops any
  copy a client sent; see ``aiots.gateway.render``);
- every gRPC server checks it with :class:`GatewayAuthInterceptor`: a call without the right
  value gets UNAUTHENTICATED, before the servicer runs.

Exempt: ``grpc.health.v1.Health`` (Envoy's active health checks, container probes) and server
reflection. Calls from a loopback peer (the CLI on the same host or in the same container) are
trusted while ``gateway.upstream_secret_trust_loopback`` is true (the default). Unset secret: no
check (one machine, services on 127.0.0.1).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from aiots.services.common.settings import GatewaySettings

log = logging.getLogger(__name__)

SECRET_HEADER = "x-aiots-gateway-secret"
EXEMPT_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
DENIED = (
    "this service accepts calls through the gateway only (header x-aiots-gateway-secret missing or wrong); "
    "call the gateway on port 8000 with a token instead"
)


def is_loopback_peer(peer: str) -> bool:
    """``ipv4:127.0.0.1:5000`` / ``ipv6:[::1]:5000`` / ``unix:...`` -> True when local."""
    kind, _, rest = peer.partition(":")
    if kind == "unix":
        return True
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
        host = host.split("%", 1)[0]  # zone id
    else:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class GatewayAuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for calls that lack the gateway's shared secret (see the module docstring)."""

    def __init__(self, secret: str, *, trust_loopback: bool = True) -> None:
        if not secret:
            raise ValueError("gateway.upstream_secret must not be empty")
        self._secret = secret.encode()
        self._trust_loopback = trust_loopback

    def allowed(self, metadata: Any, peer: str) -> bool:
        """True when ``metadata`` carries the secret, or the peer is local and trusted."""
        if self._trust_loopback and is_loopback_peer(peer):
            return True
        for key, value in metadata or ():
            if key == SECRET_HEADER:
                got = value if isinstance(value, bytes) else str(value).encode()
                return hmac.compare_digest(got, self._secret)
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(EXEMPT_PREFIXES):
            return handler
        return self._guard(handler, method)

    async def _check(self, context: grpc.aio.ServicerContext, method: str) -> None:
        if not self.allowed(context.invocation_metadata(), context.peer()):
            log.warning("call without the gateway secret refused", extra={"method": method, "peer": context.peer()})
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED)

    def _guard(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        check = self._check
        ser, de = handler.response_serializer, handler.request_deserializer
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context, method)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(uu, request_deserializer=de, response_serializer=ser)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                await check(context, method)
                async for item in inner_us(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(us, request_deserializer=de, response_serializer=ser)
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def su(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                await check(context, method)
                return await inner_su(requests, context)

            return grpc.stream_unary_rpc_method_handler(su, request_deserializer=de, response_serializer=ser)
        inner_ss = handler.stream_stream

        async def ss(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await check(context, method)
            async for item in inner_ss(requests, context):
                yield item

        return grpc.stream_stream_rpc_method_handler(ss, request_deserializer=de, response_serializer=ser)


def gateway_interceptors(gw: GatewaySettings) -> list[grpc.aio.ServerInterceptor]:
    """``[GatewayAuthInterceptor]`` when ``gw.upstream_secret`` is set, else ``[]``."""
    if gw.upstream_secret is None:
        return []
    return [
        GatewayAuthInterceptor(gw.upstream_secret.get_secret_value(), trust_loopback=gw.upstream_secret_trust_loopback)
    ]
