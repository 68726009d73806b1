"""Audit log of admin actions.

The gateway authenticates the caller (JWT) and forwards who it is in two metadata headers:
``x-aiots-subject`` (the token's ``sub``) and ``x-aiots-role`` (viewer|trader|admin). Every call of an
admin RPC (:data:`ADMIN_METHODS`) is written as one JSON record to the ``aiots.audit`` logger, with the
subject, role, method, outcome (gRPC code), trace id and peer; domain code may add its own records with
:func:`audit_event`. Requests are never logged (they may carry secrets); only the method and outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

SUBJECT_HEADER = "x-aiots-subject"
ROLE_HEADER = "x-aiots-role"
ANONYMOUS = "anonymous"

#: RPCs that change the system's state (admin actions).
ADMIN_METHODS: frozenset[str] = frozenset(
    {
        "/aiots.v1.IngestionService/StartCollection",
        "/aiots.v1.IngestionService/StopCollection",
        "/aiots.v1.IngestionService/Backfill",
        "/aiots.v1.CacheService/SetAnalytics",
        "/aiots.v1.CacheService/DeleteAnalytics",
    }
)

audit_log = logging.getLogger("aiots.audit")


def caller_of(metadata: Iterable[tuple[str, Any]] | None) -> tuple[str, str]:
    """(subject, role) from gRPC invocation metadata; ``anonymous``/empty when absent."""
    subject, role = ANONYMOUS, ""
    for k, v in metadata or ():
        if k == SUBJECT_HEADER and isinstance(v, str) and v:
            subject = v
        elif k == ROLE_HEADER and isinstance(v, str):
            role = v
    return subject, role


def audit_event(
    action: str,
    *,
    subject: str,
    role: str,
    outcome: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Write one audit record (and count it in ``aiots_audit_events_total``)."""
    from aiots.services.common.telemetry import current_trace_ids, metrics

    ids = current_trace_ids()
    record: dict[str, Any] = {
        "audit": True,
        "action": action,
        "subject": subject,
        "role": role,
        "outcome": outcome,
        "at_ns": time.time_ns(),
    }
    if ids:
        record["trace_id"], record["span_id"] = ids
    if details:
        record["details"] = dict(details)
    audit_log.info("audit %s by %s: %s", action, subject, outcome, extra={"audit": record})
    metrics.audit_events.add(1, {"action": action, "outcome": outcome})


class AuditInterceptor(grpc.aio.ServerInterceptor):
    """Audits calls of ``methods`` (default :data:`ADMIN_METHODS`) with the caller from metadata."""

    def __init__(self, methods: Iterable[str] = ADMIN_METHODS) -> None:
        self.methods = frozenset(methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = str(details.method)
        if handler is None or method not in self.methods:
            return handler
        subject, role = caller_of(details.invocation_metadata)
        kw = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }

        def outcome(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
            code = context.code()
            if isinstance(code, grpc.StatusCode):
                return str(code.name)
            return "OK" if exc is None else "INTERNAL"

        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                exc: BaseException | None = None
                try:
                    return await behavior(request, context)
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    audit_event(method, subject=subject, role=role, outcome=outcome(context, exc))

            return grpc.unary_unary_rpc_method_handler(unary, **kw)
        if handler.unary_stream is not None:
            sbehavior = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                exc: BaseException | None = None
                try:
                    async for item in sbehavior(request, context):
                        yield item
                except BaseException as e:
                    exc = e
                    raise
                finally:
                    audit_event(method, subject=subject, role=role, outcome=outcome(context, exc))

            return grpc.unary_stream_rpc_method_handler(stream, **kw)
        return handler
