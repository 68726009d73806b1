"""gRPC telemetry: the server interceptor (a SERVER span per RPC with the caller's ``traceparent``,
latency by method and code, in-flight gauge, the service context) and the client interceptors
(a CLIENT span per call, ``traceparent`` injected; :func:`open_channel`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from aiots.services.common.instruments import SERVER_ERROR_CODES, current_service, metrics, tracer


def _code_name(code: Any) -> str:
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return "OK" if code is None else str(code)


class TelemetryServerInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span per RPC (parent from the caller's ``traceparent``, e.g. set by Envoy or
    :func:`client_interceptors`), latency by method and code, in-flight gauge, service context."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = str(details.method)
        carrier = {str(k): str(v) for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        kw = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, method, carrier), **kw)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._stream(handler.unary_stream, method, carrier), **kw)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(handler.stream_unary, method, carrier), **kw)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(self._stream(handler.stream_stream, method, carrier), **kw)
        return handler

    @contextlib.contextmanager
    def _rpc(
        self, method: str, carrier: Mapping[str, str], context: Any, *, current: bool = True
    ) -> Iterator[trace.Span]:
        """Span, latency, in-flight and outcome of one RPC. ``current``: make the span and the service
        current for the block (unary calls). Streams pass False and make them current around each step
        themselves: a context set before a ``yield`` cannot be reset after it (the generator may be
        closed from another context)."""
        start = time.perf_counter()
        outcome = "OK"
        attrs = {"method": method, "service": self.service}
        metrics.rpc_in_flight.add(1, attrs)
        sp = tracer().start_span(method, context=propagate.extract(carrier), kind=SpanKind.SERVER)
        sp.set_attribute("rpc.system", "grpc")
        sp.set_attribute("rpc.method", method)
        sp.set_attribute("aiots.service", self.service)
        subject = carrier.get("x-aiots-subject")
        if subject:
            sp.set_attribute("enduser.id", subject)
        service_token = current_service.set(self.service) if current else None
        ctx_token = otel_context.attach(trace.set_span_in_context(sp)) if current else None
        try:
            yield sp
        except grpc.aio.AbortError:
            outcome = _code_name(context.code())
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "CANCELLED"
            raise
        except Exception as exc:
            outcome = "INTERNAL"
            sp.record_exception(exc)
            raise
        finally:
            if outcome == "OK" and context.code() is not None:
                outcome = _code_name(context.code())
            sp.set_attribute("rpc.grpc.status_code", outcome)
            if outcome in SERVER_ERROR_CODES:
                sp.set_status(Status(StatusCode.ERROR, outcome))
            sp.end()
            metrics.rpc_in_flight.add(-1, attrs)
            metrics.rpc_duration.record(time.perf_counter() - start, {**attrs, "code": outcome})
            if ctx_token is not None:
                otel_context.detach(ctx_token)
            if service_token is not None:
                current_service.reset(service_token)

    def _unary(self, behavior: Callable[..., Any], method: str, carrier: Mapping[str, str]) -> Any:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._rpc(method, carrier, context):
                return await behavior(request, context)

        return wrapper

    def _stream(self, behavior: Callable[..., Any], method: str, carrier: Mapping[str, str]) -> Any:
        service = self.service

        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            with self._rpc(method, carrier, context, current=False) as sp:
                ctx = trace.set_span_in_context(sp)
                agen = behavior(request, context).__aiter__()
                try:
                    while True:
                        # span + service current while the servicer runs, never across our yield
                        service_token = current_service.set(service)
                        ctx_token = otel_context.attach(ctx)
                        try:
                            item = await agen.__anext__()
                        except StopAsyncIteration:
                            return
                        finally:
                            otel_context.detach(ctx_token)
                            current_service.reset(service_token)
                        yield item
                finally:
                    aclose = getattr(agen, "aclose", None)
                    if aclose is not None:
                        await aclose()

        return wrapper


# ----------------------------------------------------------------------------- gRPC client side

_pending: set[asyncio.Future[None]] = set()


class _ClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """A CLIENT span per call; injects ``traceparent`` into the call's metadata."""

    def _details(self, details: grpc.aio.ClientCallDetails, sp: trace.Span) -> grpc.aio.ClientCallDetails:
        md = grpc.aio.Metadata(*(details.metadata or ()))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(sp))
        for k, v in carrier.items():
            md[k] = v
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, md, details.credentials, details.wait_for_ready
        )

    async def _call(self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, req: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else str(details.method)
        sp = tracer().start_span(method, kind=SpanKind.CLIENT)
        sp.set_attribute("rpc.system", "grpc")
        sp.set_attribute("rpc.method", method)
        sp.set_attribute("aiots.service", current_service.get())
        service = current_service.get()
        start = time.perf_counter()
        try:
            call = await continuation(self._details(details, sp), req)
        except BaseException:
            sp.end()
            raise
        fut = asyncio.ensure_future(_finish_client(call, sp, method, service, start))
        _pending.add(fut)
        fut.add_done_callback(_pending.discard)
        return call

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)

    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await self._call(continuation, client_call_details, request)

    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)

    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await self._call(continuation, client_call_details, request_iterator)


async def _finish_client(call: Any, sp: trace.Span, method: str, service: str, start: float) -> None:
    code = "UNKNOWN"
    try:
        code = _code_name(await call.code())
    except asyncio.CancelledError:
        code = "CANCELLED"
    except Exception:
        code = "UNKNOWN"
    finally:
        sp.set_attribute("rpc.grpc.status_code", code)
        if code != "OK":
            sp.set_status(Status(StatusCode.ERROR, code))
        sp.end()
        metrics.rpc_client_duration.record(
            time.perf_counter() - start, {"method": method, "code": code, "service": service}
        )


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for ``grpc.aio.insecure_channel(..., interceptors=...)``."""
    return [_ClientInterceptor()]


def open_channel(target: str, *, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """An insecure grpc.aio channel to ``target`` with tracing and trace propagation."""
    return grpc.aio.insecure_channel(target, options=list(options), interceptors=client_interceptors())
