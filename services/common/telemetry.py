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

**Modules.** The catalogue and the instruments: :mod:`~aiots.services.common.instruments`; gRPC
interceptors: :mod:`~aiots.services.common.rpc_telemetry`; asyncpg/redis/bus wrappers:
:mod:`~aiots.services.common.instrumentation`. This module installs the providers and serves the
Prometheus endpoints, and re-exports the names above (the import path every service uses).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from aiots.services.common.instrumentation import instrument_asyncpg, instrument_bus, instrument_redis
from aiots.services.common.instruments import (
    ALL,
    CATALOG,
    LATENCY_BUCKETS_S,
    MAX_STATEMENT_CHARS,
    METRIC_NAMES,
    RETURN_RATIO_BUCKETS,
    SCOPE,
    SERVER_ERROR_CODES,
    SERVICES,
    Metrics,
    MetricSpec,
    attr_name,
    current_service,
    current_trace_ids,
    metrics,
    span,
    tracer,
)
from aiots.services.common.rpc_telemetry import (
    TelemetryServerInterceptor,
    client_interceptors,
    open_channel,
)
from aiots.services.common.settings import Settings

__all__ = [
    "ALL",
    "CATALOG",
    "LATENCY_BUCKETS_S",
    "MAX_STATEMENT_CHARS",
    "METRIC_NAMES",
    "RETURN_RATIO_BUCKETS",
    "SCOPE",
    "SERVER_ERROR_CODES",
    "SERVICES",
    "MetricSpec",
    "Metrics",
    "ServiceView",
    "TelemetryServerInterceptor",
    "add_span_exporter",
    "attr_name",
    "client_interceptors",
    "current_service",
    "current_trace_ids",
    "instrument_asyncpg",
    "instrument_bus",
    "instrument_redis",
    "metrics",
    "open_channel",
    "service_of",
    "setup_telemetry",
    "shutdown_telemetry",
    "span",
    "start_metrics_server",
    "stop_metrics_server",
    "tracer",
]

log = logging.getLogger(__name__)

_SERVICE_BY_GRPC_NAME = {
    "aiots.v1.CacheService": "cache",
    "aiots.v1.IngestionService": "ingestion",
    "aiots.v1.AnalyticsService": "analytics",
    "aiots.v1.SignalService": "signals",
}


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
