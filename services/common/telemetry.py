"""OpenTelemetry tracing and metrics for every AI-OTS process.

Call :func:`setup_telemetry` once per process (``aiots up`` / ``aiots serve`` do). It installs

- a ``TracerProvider`` (W3C ``traceparent`` propagation; OTLP export when
  ``settings.telemetry.otlp_endpoint`` is set; extra exporters for tests via :func:`add_span_exporter`),
- a ``MeterProvider`` with the Prometheus reader (and OTLP when configured),
- the server interceptors every :func:`aiots.services.common.server.start_server` adds
  (:class:`TelemetryServerInterceptor` + :class:`aiots.services.common.audit.AuditInterceptor`),
- spans for asyncpg and redis.asyncio calls (:func:`instrument_asyncpg`, :func:`instrument_redis`).

Outgoing gRPC calls get spans and propagate the trace when the channel comes from :func:`open_channel`
(or carries :func:`client_interceptors`).

**Service label.** Every AI-OTS metric carries ``service`` (cache|ingestion|analytics|signals|gateway),
taken from the context variable :data:`current_service`. ``aiots serve NAME`` sets it for the process;
``aiots up`` runs the four services in one process and sets it per service (the supervisor while it
creates and starts a service, the server interceptor per RPC), and each service's metrics port shows
only its own series (:func:`start_metrics_server`).

**Metric names** (Prometheus names; the instruments live on :data:`metrics`):

==========================================  =========  ===================================================
name                                        type       labels (besides ``service``)
==========================================  =========  ===================================================
aiots_rpc_duration_seconds                  histogram  method, code            server side, per RPC
aiots_rpc_client_duration_seconds           histogram  method, code            client side, per RPC
aiots_rpc_in_flight                         gauge      method                  RPCs being served
aiots_db_query_duration_seconds             histogram  operation               asyncpg calls
aiots_db_errors_total                       counter    operation               failed asyncpg calls
aiots_db_write_failures_total               counter    table                   failed writes (COPY/batches)
aiots_db_rows_written_total                 counter    table                   rows written
aiots_redis_command_duration_seconds        histogram  command                 redis calls
aiots_ingest_records_total                  counter    source, kind            records normalised
aiots_ingest_lag_seconds                    gauge      source                  wall clock - ts_event of latest
aiots_ingest_spill_bytes                    gauge      -                       bytes spilled while PG is away
aiots_queue_depth                           gauge      queue                   items waiting in a bounded queue
aiots_queue_capacity                        gauge      queue                   the queue's bound
aiots_bus_published_total                   counter    topic                   events published
aiots_bus_consumed_total                    counter    topic, group            events handled and acked
aiots_bus_lag_seconds                       gauge      topic, group            now - ts_event at consumption
aiots_bus_pending                           gauge      topic, group            delivered, not yet acked
aiots_bus_outbox_events_total               counter    event                   bus outbox: spilled (Redis away),
                                                                               replayed, deduplicated
aiots_bus_outbox_pending                    gauge      -                       events waiting in the bus outbox
aiots_cache_requests_total                  counter    op, result              result: hit|miss|error
aiots_signals_total                         counter    strategy, status        signals created (status=OPEN)
                                                                               and status changes
aiots_signals_open                          gauge      strategy                signals currently open
aiots_signal_return_ratio                   histogram  strategy, status        exit proceeds / cost of closed
                                                                               signals after fees (0.95 = -5 %)
aiots_subscribers                           gauge      stream                  open streaming subscribers
aiots_subscriber_drops_total                counter    stream, reason          subscribers ended by overflow
aiots_audit_events_total                    counter    action, outcome         admin actions (see audit.py)
==========================================  =========  ===================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import propagate, trace
from opentelemetry.metrics import Counter, Histogram, UpDownCounter, _Gauge
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aiots.services.common.settings import Settings

log = logging.getLogger(__name__)

SERVICES: tuple[str, ...] = ("cache", "ingestion", "analytics", "signals", "gateway")
ALL = SERVICES
SCOPE = "aiots"

#: The service a piece of work belongs to (label ``service`` on every metric, attribute on spans).
current_service: ContextVar[str] = ContextVar("aiots_service", default="aiots")

# Latency buckets in seconds: 0.5 ms .. 10 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Exit proceeds / premium paid, after fees: 1.0 is breakeven, 0.95 a 5 % loss (histograms take no
# negative values, so losses are recorded as ratios below 1 instead of negative percentages).
RETURN_RATIO_BUCKETS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98, 1.0, 1.02, 1.05, 1.1, 1.2, 1.5, 2.0)
# gRPC codes that mean the server failed (span status ERROR); the rest are the caller's problem.
SERVER_ERROR_CODES = frozenset(
    {"UNKNOWN", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "DEADLINE_EXCEEDED", "UNIMPLEMENTED"}
)
MAX_STATEMENT_CHARS = 2000

_SERVICE_BY_GRPC_NAME = {
    "aiots.v1.CacheService": "cache",
    "aiots.v1.IngestionService": "ingestion",
    "aiots.v1.AnalyticsService": "analytics",
    "aiots.v1.SignalService": "signals",
}


def _with_service(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    attrs = dict(attributes or {})
    attrs.setdefault("service", current_service.get())
    return attrs


@dataclass(frozen=True)
class MetricSpec:
    """One documented instrument: Prometheus name, kind, labels (besides service), owners."""

    name: str
    kind: str  # counter | histogram | gauge | updown
    description: str
    unit: str = "1"
    labels: tuple[str, ...] = ()
    owners: tuple[str, ...] = ALL
    buckets: tuple[float, ...] | None = None
    prime: Mapping[str, str] = field(default_factory=dict)


CATALOG: tuple[MetricSpec, ...] = (
    MetricSpec("aiots_rpc_duration_seconds", "histogram", "Server-side RPC latency", "s",
               ("method", "code"), buckets=LATENCY_BUCKETS_S),
    MetricSpec("aiots_rpc_client_duration_seconds", "histogram", "Client-side RPC latency", "s",
               ("method", "code"), buckets=LATENCY_BUCKETS_S),
    MetricSpec("aiots_rpc_in_flight", "updown", "RPCs being served", "1", ("method",)),
    MetricSpec("aiots_db_query_duration_seconds", "histogram", "asyncpg call latency", "s",
               ("operation",), buckets=LATENCY_BUCKETS_S),
    MetricSpec("aiots_db_errors_total", "counter", "Failed database calls", "1", ("operation",),
               prime={"operation": "execute"}),
    MetricSpec("aiots_db_write_failures_total", "counter", "Failed database writes (batches)", "1",
               ("table",), prime={"table": "all"}),
    MetricSpec("aiots_db_rows_written_total", "counter", "Rows written to the database", "1",
               ("table",), prime={"table": "all"}),
    MetricSpec("aiots_redis_command_duration_seconds", "histogram", "Redis command latency", "s",
               ("command",), buckets=LATENCY_BUCKETS_S),
    MetricSpec("aiots_ingest_records_total", "counter", "Market records normalised", "1",
               ("source", "kind"), owners=("ingestion",), prime={"source": "none", "kind": "none"}),
    MetricSpec("aiots_ingest_lag_seconds", "gauge", "Wall clock minus ts_event of the latest record", "s",
               ("source",), owners=("ingestion",)),
    MetricSpec("aiots_ingest_spill_bytes", "gauge", "Bytes spilled to disk while the database is away",
               "By", (), owners=("ingestion",), prime={}),
    MetricSpec("aiots_queue_depth", "gauge", "Items waiting in a bounded queue", "1", ("queue",)),
    MetricSpec("aiots_queue_capacity", "gauge", "Bound of a queue", "1", ("queue",)),
    MetricSpec("aiots_bus_published_total", "counter", "Events published on the bus", "1", ("topic",),
               prime={"topic": "none"}),
    MetricSpec("aiots_bus_consumed_total", "counter", "Events consumed and acknowledged", "1",
               ("topic", "group"), prime={"topic": "none", "group": "none"}),
    MetricSpec("aiots_bus_lag_seconds", "gauge", "Now minus ts_event when an event is consumed", "s",
               ("topic", "group")),
    MetricSpec("aiots_bus_pending", "gauge", "Delivered but unacknowledged events (backlog)", "1",
               ("topic", "group"), prime={"topic": "none", "group": "none"}),
    MetricSpec("aiots_bus_outbox_events_total", "counter",
               "Bus events kept on disk while Redis was away (spilled), sent later (replayed), or found "
               "already applied on replay (deduplicated)", "1", ("event",), prime={"event": "spilled"}),
    MetricSpec("aiots_bus_outbox_pending", "gauge", "Bus events waiting in the outbox for Redis", "1", (),
               prime={}),
    MetricSpec("aiots_cache_requests_total", "counter", "Cache lookups by result (hit|miss|error)", "1",
               ("op", "result"), owners=("cache", "analytics", "signals"),
               prime={"op": "get", "result": "hit"}),
    MetricSpec("aiots_signals_total", "counter", "Signals created (OPEN) and status changes", "1",
               ("strategy", "status"), owners=("signals",), prime={"strategy": "none", "status": "OPEN"}),
    MetricSpec("aiots_signals_open", "gauge", "Signals currently open", "1", ("strategy",),
               owners=("signals",)),
    MetricSpec("aiots_signal_return_ratio", "histogram",
               "Exit proceeds / premium paid of closed signals, after fees (losses below 1)", "1",
               ("strategy", "status"), owners=("signals",), buckets=RETURN_RATIO_BUCKETS),
    MetricSpec("aiots_subscribers", "updown", "Open streaming subscribers", "1", ("stream",),
               owners=("cache", "signals"), prime={"stream": "none"}),
    MetricSpec("aiots_subscriber_drops_total", "counter", "Subscribers ended by queue overflow", "1",
               ("stream", "reason"), owners=("cache", "signals"),
               prime={"stream": "none", "reason": "overflow"}),
    MetricSpec("aiots_audit_events_total", "counter", "Audited admin actions", "1", ("action", "outcome"),
               prime={"action": "none", "outcome": "ok"}),
)  # fmt: skip

METRIC_NAMES: frozenset[str] = frozenset(s.name for s in CATALOG)


class _Instrument:
    """Wraps an OTel instrument so every measurement carries ``service``."""

    def __init__(self, spec: MetricSpec, inst: Any) -> None:
        self.spec = spec
        self._inst = inst

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        self._inst.add(amount, _with_service(attributes))

    def record(self, value: float, attributes: Mapping[str, Any] | None = None) -> None:
        self._inst.record(value, _with_service(attributes))

    def set(self, value: float, attributes: Mapping[str, Any] | None = None) -> None:
        self._inst.set(value, _with_service(attributes))


class Metrics:
    """The named instruments. Import :data:`metrics` and call ``.add`` / ``.record`` / ``.set``."""

    def __init__(self) -> None:
        meter = otel_metrics.get_meter(SCOPE)
        self.by_name: dict[str, _Instrument] = {}
        for spec in CATALOG:
            inst: Counter | Histogram | UpDownCounter | _Gauge
            if spec.kind == "counter":
                inst = meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
            elif spec.kind == "histogram":
                inst = meter.create_histogram(
                    spec.name,
                    unit=spec.unit,
                    description=spec.description,
                    explicit_bucket_boundaries_advisory=spec.buckets,
                )
            elif spec.kind == "updown":
                inst = meter.create_up_down_counter(spec.name, unit=spec.unit, description=spec.description)
            else:
                inst = meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)
            self.by_name[spec.name] = _Instrument(spec, inst)
        i = self.by_name
        self.rpc_duration = i["aiots_rpc_duration_seconds"]
        self.rpc_client_duration = i["aiots_rpc_client_duration_seconds"]
        self.rpc_in_flight = i["aiots_rpc_in_flight"]
        self.db_query_duration = i["aiots_db_query_duration_seconds"]
        self.db_errors = i["aiots_db_errors_total"]
        self.db_write_failures = i["aiots_db_write_failures_total"]
        self.db_rows_written = i["aiots_db_rows_written_total"]
        self.redis_command_duration = i["aiots_redis_command_duration_seconds"]
        self.ingest_records = i["aiots_ingest_records_total"]
        self.ingest_lag = i["aiots_ingest_lag_seconds"]
        self.ingest_spill_bytes = i["aiots_ingest_spill_bytes"]
        self.queue_depth = i["aiots_queue_depth"]
        self.queue_capacity = i["aiots_queue_capacity"]
        self.bus_published = i["aiots_bus_published_total"]
        self.bus_consumed = i["aiots_bus_consumed_total"]
        self.bus_lag = i["aiots_bus_lag_seconds"]
        self.bus_pending = i["aiots_bus_pending"]
        self.cache_requests = i["aiots_cache_requests_total"]
        self.signals = i["aiots_signals_total"]
        self.signals_open = i["aiots_signals_open"]
        self.signal_return = i["aiots_signal_return_ratio"]
        self.subscribers = i["aiots_subscribers"]
        self.subscriber_drops = i["aiots_subscriber_drops_total"]
        self.audit_events = i["aiots_audit_events_total"]

    def prime(self, service: str) -> None:
        """Create the zero series of ``service``'s counters so dashboards/alerts see them at once."""
        token = current_service.set(service)
        try:
            for spec in CATALOG:
                if service not in spec.owners:
                    continue
                inst = self.by_name[spec.name]
                if spec.kind in ("counter", "updown") and (spec.prime or not spec.labels):
                    inst.add(0, spec.prime)
                elif spec.kind == "gauge" and not spec.labels:
                    inst.set(0)
        finally:
            current_service.reset(token)


#: The process-wide instruments (bound to the real providers once :func:`setup_telemetry` ran).
metrics = Metrics()


def tracer() -> trace.Tracer:
    """The AI-OTS tracer (spans carry ``aiots.service``)."""
    return trace.get_tracer(SCOPE)


@contextlib.contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[trace.Span]:
    """A manual span in the current trace, tagged with the current service."""
    with tracer().start_as_current_span(name, kind=kind) as sp:
        sp.set_attribute("aiots.service", current_service.get())
        for k, v in attributes.items():
            if v is not None:
                sp.set_attribute(k, v)
        yield sp


def current_trace_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) as hex of the current span, or None outside a recording span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


# ----------------------------------------------------------------------------- setup


@dataclass
class _State:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    service: str
    metrics_servers: dict[int, Any] = field(default_factory=dict)


_state: _State | None = None
_lock = threading.Lock()


def setup_telemetry(
    settings: Settings,
    *,
    service: str,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> None:
    """Install providers, interceptors and DB/Redis spans once per process (later calls only add
    the given exporters). ``service``: the process's service name, or ``"aiots"`` for ``aiots up``."""
    global _state
    with _lock:
        if _state is not None:
            for exp in span_exporters:
                add_span_exporter(exp)
            return
        current_service.set(service)
        cfg = settings.telemetry
        resource = Resource.create(
            {
                "service.name": service if service.startswith("aiots") else f"aiots-{service}",
                "service.namespace": cfg.service_namespace,
            }
        )
        tp = TracerProvider(resource=resource)
        for exp in span_exporters:
            tp.add_span_processor(SimpleSpanProcessor(exp))
        readers: list[MetricReader] = list(metric_readers)
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
        if cfg.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=cfg.otlp_endpoint)))
            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=cfg.otlp_endpoint)))
        mp = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tp)
        otel_metrics.set_meter_provider(mp)
        _state = _State(tp, mp, service)

        from aiots.services.common import server
        from aiots.services.common.audit import AuditInterceptor

        server.set_default_interceptors(
            lambda names: [TelemetryServerInterceptor(service_of(names)), AuditInterceptor()]
        )
        instrument_asyncpg()
        instrument_redis()
        log.debug("telemetry ready", extra={"otlp": bool(cfg.otlp_endpoint)})


def add_span_exporter(exporter: SpanExporter) -> None:
    """Export every finished span to ``exporter`` too (synchronously; tests use the in-memory one)."""
    if _state is None:
        raise RuntimeError("setup_telemetry() has not run")
    _state.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))


def shutdown_telemetry() -> None:
    """Flush exporters and stop the metrics endpoints (end of process)."""
    if _state is None:
        return
    for port in list(_state.metrics_servers):
        stop_metrics_server(port)
    _state.tracer_provider.force_flush()
    _state.tracer_provider.shutdown()
    _state.meter_provider.shutdown()


def service_of(grpc_names: Iterable[str]) -> str:
    """The service label for a server exposing these gRPC services (else the current service)."""
    for n in grpc_names:
        if n in _SERVICE_BY_GRPC_NAME:
            return _SERVICE_BY_GRPC_NAME[n]
    return current_service.get()


# ----------------------------------------------------------------------------- /metrics per service


class ServiceView(Collector):
    """The process registry seen by one service: AI-OTS series labelled with another service are left
    out (several services share a process in ``aiots up``); process/runtime metrics are kept."""

    def __init__(self, service: str, registry: Any = REGISTRY) -> None:
        self.service = service
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        for fam in self.registry.collect():
            if not fam.name.startswith(SCOPE + "_"):
                yield fam
                continue
            samples = [s for s in fam.samples if s.labels.get("service", self.service) == self.service]
            if samples:
                out = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                out.samples = [
                    s._replace(labels={k: v for k, v in s.labels.items() if not k.startswith("otel_scope")})
                    for s in samples
                ]
                yield out


def start_metrics_server(service: str, port: int, host: str = "0.0.0.0") -> int:
    """Serve ``service``'s Prometheus text on http://host:port/metrics (a daemon thread; the event
    loop is never blocked). Returns the bound port (port 0 picks a free one)."""
    from prometheus_client import start_http_server

    metrics.prime(service)
    httpd, _thread = start_http_server(port, addr=host, registry=ServiceView(service))
    bound = int(httpd.server_address[1])
    if _state is not None:
        _state.metrics_servers[bound] = httpd
    log.info("metrics endpoint", extra={"service": service, "port": bound})
    return bound


def stop_metrics_server(port: int) -> None:
    """Stop the endpoint started on ``port``."""
    if _state is None:
        return
    httpd = _state.metrics_servers.pop(port, None)
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()


# ----------------------------------------------------------------------------- gRPC server side


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


# ----------------------------------------------------------------------------- DB and Redis spans

_ASYNCPG_METHODS = (
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "copy_records_to_table",
    "copy_to_table",
    "copy_from_query",
    "copy_from_table",
)
_WRITE_METHODS = frozenset({"executemany", "copy_records_to_table", "copy_to_table"})
_instrumented: set[str] = set()


def _db_wrap(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        stmt = args[0] if args and isinstance(args[0], str) else None
        table = stmt if name.startswith("copy_") and stmt else kwargs.get("table_name")
        start = time.perf_counter()
        with tracer().start_as_current_span(f"postgresql.{name}", kind=SpanKind.CLIENT, record_exception=True) as sp:
            sp.set_attribute("db.system", "postgresql")
            sp.set_attribute("db.operation", name)
            sp.set_attribute("aiots.service", current_service.get())
            if stmt and not name.startswith("copy_"):
                sp.set_attribute("db.statement", stmt[:MAX_STATEMENT_CHARS])
            if table:
                sp.set_attribute("db.sql.table", str(table))
            try:
                return await fn(self, *args, **kwargs)
            except Exception:
                metrics.db_errors.add(1, {"operation": name})
                if name in _WRITE_METHODS:
                    metrics.db_write_failures.add(1, {"table": str(table or "unknown")})
                raise
            finally:
                metrics.db_query_duration.record(time.perf_counter() - start, {"operation": name})

    return wrapper


def instrument_asyncpg() -> None:
    """Spans + latency for asyncpg ``Connection`` calls (pool calls go through them). Idempotent."""
    if "asyncpg" in _instrumented:
        return
    try:
        from asyncpg.connection import Connection
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return
    for name in _ASYNCPG_METHODS:
        fn = getattr(Connection, name, None)
        if fn is not None:
            setattr(Connection, name, _db_wrap(name, fn))
    _instrumented.add("asyncpg")


def instrument_bus(bus: Any) -> None:
    """Count what is published on ``bus`` (``aiots_bus_published_total`` by topic, labelled with the
    publishing service: the context of the RPC or of the task the service spawned). Wraps the instance's
    ``publish``/``publish_many`` once; neither calls the other in either transport."""
    if getattr(bus, "_aiots_instrumented", False):
        return
    publish = bus.publish
    publish_many = bus.publish_many

    async def counted_publish(topic: str, key: str, event: Any) -> Any:
        out = await publish(topic, key, event)
        metrics.bus_published.add(1, {"topic": topic})
        return out

    async def counted_publish_many(topic: str, items: Sequence[Any]) -> None:
        await publish_many(topic, items)
        metrics.bus_published.add(len(items), {"topic": topic})

    bus.publish = counted_publish
    bus.publish_many = counted_publish_many
    bus._aiots_instrumented = True


def instrument_redis() -> None:
    """Spans + latency for redis.asyncio commands and pipelines. Idempotent."""
    if "redis" in _instrumented:
        return
    try:
        from redis.asyncio.client import Pipeline, Redis
    except ImportError:  # pragma: no cover - redis is a dependency
        return
    orig_cmd: Callable[..., Awaitable[Any]] = Redis.execute_command
    orig_pipe = Pipeline.execute

    @functools.wraps(orig_cmd)
    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        command = str(args[0]).upper() if args else "?"
        start = time.perf_counter()
        with tracer().start_as_current_span(f"redis.{command}", kind=SpanKind.CLIENT) as sp:
            sp.set_attribute("db.system", "redis")
            sp.set_attribute("db.operation", command)
            sp.set_attribute("aiots.service", current_service.get())
            try:
                return await orig_cmd(self, *args, **options)
            finally:
                metrics.redis_command_duration.record(time.perf_counter() - start, {"command": command})

    @functools.wraps(orig_pipe)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        with tracer().start_as_current_span("redis.PIPELINE", kind=SpanKind.CLIENT) as sp:
            sp.set_attribute("db.system", "redis")
            sp.set_attribute("db.operation", "PIPELINE")
            sp.set_attribute("aiots.service", current_service.get())
            try:
                return await orig_pipe(self, *args, **kwargs)
            finally:
                metrics.redis_command_duration.record(time.perf_counter() - start, {"command": "PIPELINE"})

    Redis.execute_command = execute_command  # type: ignore[method-assign]
    Pipeline.execute = execute  # type: ignore[method-assign]
    _instrumented.add("redis")
