"""Domain errors and their mapping to gRPC status codes with google.rpc details.

Domain code raises these; one server interceptor (:class:`ErrorInterceptor`) turns them into
gRPC statuses carrying ``google.rpc.BadRequest`` (field violations) and ``google.rpc.ErrorInfo``
details, which Envoy renders as JSON. Messages say what was wrong, the value, and what is allowed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

log = logging.getLogger(__name__)

ERROR_DOMAIN = "aiots.v1"


class DomainError(Exception):
    """Base of all domain errors. ``reason`` is a stable UPPER_SNAKE code for clients."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    default_reason = "ERROR"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})

    def details(self) -> list[Any]:
        """google.rpc detail messages to attach."""
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata)]


class NotFound(DomainError):
    grpc_code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class InvalidArgument(DomainError):
    """A request field is wrong. ``field`` is the proto field path, e.g. ``contracts[3].strike``."""

    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}", reason=reason, metadata={"field": field})
        self.field = field
        self.description = message

    def details(self) -> list[Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=self.field, description=self.description)
            ]
        )
        return [bad, *super().details()]


class FailedPrecondition(DomainError):
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Unavailable(DomainError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class ResourceExhausted(DomainError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class DeadlineExceeded(DomainError):
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class AlreadyExists(DomainError):
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


def status_details(code: grpc.StatusCode, message: str, details: list[Any]) -> bytes:
    """Serialised google.rpc.Status for the ``grpc-status-details-bin`` trailer."""
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    st = status_pb2.Status(code=code.value[0], message=message, details=packed)
    return bytes(st.SerializeToString())


def _to_status(exc: BaseException) -> tuple[grpc.StatusCode, str, bytes]:
    if isinstance(exc, DomainError):
        return exc.grpc_code, exc.message, status_details(exc.grpc_code, exc.message, exc.details())
    msg = "internal error (logged on the server with its trace id)"
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    return grpc.StatusCode.INTERNAL, msg, status_details(grpc.StatusCode.INTERNAL, msg, [info])


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, msg, details = _to_status(exc)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("unhandled error in RPC", exc_info=exc)
    await context.abort(code, msg, trailing_metadata=(("grpc-status-details-bin", details),))


Handler = Callable[..., Any]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def bad_utf8_field(descriptor: Descriptor, data: bytes, prefix: str = "") -> str | None:
    """Path (``a.b``) of the first string field of ``data`` (wire format of ``descriptor``) that
    is not valid UTF-8; ``None`` when there is none or the bytes are not walkable."""
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(data, pos)
                continue
            if wire in (1, 5):
                pos += 8 if wire == 1 else 4
                continue
            if wire != 2:
                return None
            size, pos = _varint(data, pos)
            chunk, pos = data[pos : pos + size], pos + size
            fd = descriptor.fields_by_number.get(number)
            if fd is None:
                continue
            if fd.type == FieldDescriptor.TYPE_STRING:
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError:
                    return prefix + fd.name
            elif fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type is not None:
                inner = bad_utf8_field(fd.message_type, chunk, f"{prefix}{fd.name}.")
                if inner is not None:
                    return inner
    except ValueError:
        return None
    return None


class Undecodable:
    """Stands in for a request whose bytes did not parse; the wrapped handler answers
    INVALID_ARGUMENT naming the field instead of the server's UNKNOWN/500."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument) -> None:
        self.error = error


def guarded_deserializer(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` returning :class:`Undecodable` instead of raising ``DecodeError``."""
    if deserializer is None:
        return None
    message_type = getattr(deserializer, "__self__", None)
    descriptor: Descriptor | None = getattr(message_type, "DESCRIPTOR", None)

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            field = bad_utf8_field(descriptor, data) if descriptor is not None else None
            if field is not None:
                return Undecodable(
                    InvalidArgument(field, "is not valid UTF-8 text; send printable UTF-8 (e.g. a ticker like AAPL)")
                )
            return Undecodable(InvalidArgument("request", f"malformed request message ({exc})"))

    return deserialize


def _wrap_unary(behavior: Handler) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if isinstance(request, Undecodable):
                raise request.error
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


def _wrap_stream(behavior: Handler) -> Handler:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            if isinstance(request, Undecodable):
                raise request.error
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    return wrapper


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain errors (and stray exceptions) to gRPC statuses with rich details.

    It also guards request decoding: bytes that do not parse (e.g. invalid UTF-8 in a string
    field, as Envoy transcodes a percent-encoded path) give INVALID_ARGUMENT naming the field.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=guarded_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),
                request_deserializer=guarded_deserializer(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler
