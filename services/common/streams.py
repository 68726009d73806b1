"""Stream trailers: a server stream that ends abnormally says so in a last message.

Every server-streaming response of the API has a ``google.rpc.Status error`` field. When a stream
that has already sent messages ends abnormally, its last message sets ``error`` and the RPC then
ends with the same gRPC status (with the usual rich details, :mod:`~aiots.services.common.errors`):

* a domain error raised by the stream (e.g. the signal fan-out's RESOURCE_EXHAUSTED for a client
  too slow for its bounded queue) or an internal failure (INTERNAL);
* the server stopping: :meth:`StreamTrailers.drain` (called when the server stops serving,
  :meth:`~aiots.services.common.server.GrpcServer.set_serving`) ends every open stream with
  UNAVAILABLE at once, within the shutdown grace period rather than being cut at its end.

The message tells the client how to go on: ``resume with since=<last id>`` where the RPC can
resume (the servicer records the point with :func:`resume_from`), else ``reconnect``. Over REST
(Envoy's transcoder, NDJSON) the last line is then ``{"error": {"code": ..., "message": ...}}``, so a
stream cut short is told apart from one that finished. A stream that sent nothing yet gets the
status alone (REST then answers with the matching HTTP error instead of a 200 stream).

One interceptor does this for every stream (installed innermost by
:func:`~aiots.services.common.server.start_server`); servicers only call :func:`resume_from`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from aiots.services.common.errors import ERROR_DOMAIN, DomainError, Unavailable

#: the field of every stream response that carries the trailer
TRAILER_FIELD = "error"
STATUS_TYPE = "google.rpc.Status"
SHUTDOWN_REASON = "SHUTTING_DOWN"
SHUTDOWN_MESSAGE = "the server is shutting down"
INTERNAL_MESSAGE = "internal error (logged on the server with its trace id)"


@dataclass(eq=False)
class _Stream:
    """One open stream: its task, where it can resume, and whether it is being drained."""

    task: asyncio.Task[Any] | None
    draining: bool
    param: str = ""
    value: str = ""
    #: True while the task waits inside the servicer's generator (a drain may cancel it there)
    inside: bool = False

    def hint(self) -> str:
        return f"resume with {self.param}={self.value}" if self.value else "reconnect"


_current: ContextVar[_Stream | None] = ContextVar("aiots_stream", default=None)


def resume_from(param: str, value: str) -> None:
    """Record where the current stream can resume: the request field ``param`` set to ``value``
    (e.g. ``since`` = the last signal id sent). Outside a served stream (a direct call) a no-op."""
    st = _current.get()
    if st is not None:
        st.param, st.value = param, value


@functools.cache
def trailer_class(method: str) -> type[Message] | None:
    """The response class of ``/pkg.Service/Method`` when it has a ``google.rpc.Status error``."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        desc = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    except KeyError:
        return None
    field = desc.output_type.fields_by_name.get(TRAILER_FIELD)
    if field is None or field.message_type is None or field.message_type.full_name != STATUS_TYPE:
        return None
    return message_factory.GetMessageClass(desc.output_type)


def trailer(cls: type[Message], code: grpc.StatusCode, message: str, reason: str, resume: dict[str, str]) -> Message:
    """The last message of a stream: ``error`` with the code, the message and an ErrorInfo
    (``reason``; its metadata holds the resume point, e.g. ``{"since": "01J..."}``)."""
    st = status_pb2.Status(code=code.value[0], message=message)
    st.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=resume))
    return cls(**{TRAILER_FIELD: st})


def describe(exc: BaseException, st: _Stream) -> tuple[grpc.StatusCode, str, str]:
    """(code, message with the resume hint, reason) of ``exc`` ending the stream ``st``."""
    if isinstance(exc, DomainError):
        code, message, reason = exc.grpc_code, exc.message, exc.reason
    else:
        code, message, reason = grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, "INTERNAL"
    if (f"{st.param}=" if st.value else "reconnect") not in message:  # not said yet
        message = f"{message}; {st.hint()}"
    return code, message, reason


class _Drained(Exception):
    """The stream was asked to end because the server stops."""


class StreamTrailers(grpc.aio.ServerInterceptor):
    """Adds the trailer to every server stream whose response has ``error``, and ends the open
    streams on :meth:`drain`. Installed after :class:`~aiots.services.common.errors.ErrorInterceptor`
    (closer to the servicer): it sees the servicer's exceptions, sends the trailer, and re-raises
    them for the error interceptor to turn into the gRPC status."""

    def __init__(self) -> None:
        self._streams: set[_Stream] = set()
        self._draining = False
        self._idle = asyncio.Event()  # set while no stream is open
        self._idle.set()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def drain(self) -> None:
        """End every open stream with UNAVAILABLE (and streams opened from now on, until
        :meth:`reopen`). A stream waiting inside its servicer is cancelled there; one busy writing
        ends before its next message."""
        self._draining = True
        for st in list(self._streams):
            st.draining = True
            if st.inside and st.task is not None:
                st.task.cancel()

    def reopen(self) -> None:
        self._draining = False

    async def ended(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` until every open stream has written its trailer (after
        :meth:`drain`); True when none is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        return not self._streams

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_stream is None:
            return handler
        cls = trailer_class(handler_call_details.method)
        if cls is None:
            return handler
        return grpc.unary_stream_rpc_method_handler(
            self._wrap(handler.unary_stream, cls),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]], cls: type[Message]
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            st = _Stream(asyncio.current_task(), self._draining)
            _current.set(st)  # this RPC's own task and context: nothing to reset
            self._streams.add(st)
            self._idle.clear()
            stream = behavior(request, context)
            last: Any = None
            try:  # the stream counts as open until its trailer is written
                try:
                    while True:
                        if st.draining:
                            raise _Drained
                        st.inside = True
                        try:
                            item = await anext(stream)
                        except StopAsyncIteration:
                            return
                        except asyncio.CancelledError:
                            if not st.draining:
                                raise  # the client went away: nobody to tell
                            if st.task is not None:
                                st.task.uncancel()
                            raise _Drained from None
                        finally:
                            st.inside = False
                        last = item
                        yield item
                except _Drained:
                    aclose = getattr(stream, "aclose", None)  # an async generator: run its finally blocks now
                    if aclose is not None:
                        await aclose()
                    ended: BaseException = Unavailable(
                        f"{SHUTDOWN_MESSAGE}; {st.hint()}",
                        reason=SHUTDOWN_REASON,
                        metadata={st.param: st.value} if st.value else None,
                    )
                except grpc.aio.AbortError:
                    raise  # the servicer set the status itself
                except Exception as exc:
                    ended = exc
                if last is not None:
                    code, message, reason = describe(ended, st)
                    msg = trailer(cls, code, message, reason, {st.param: st.value} if st.value else {})
                    # a pre-encoded stream (:func:`~aiots.services.common.server.pre_encoded_stream`) yields bytes
                    yield msg.SerializeToString() if isinstance(last, bytes) else msg
                raise ended
            finally:
                self._streams.discard(st)
                if not self._streams:
                    self._idle.set()

        return wrapper
