"""The process's named instruments: the metric catalogue (:data:`CATALOG`, the one list of every
AI-OTS metric, its type, labels and owners), the instruments generated from it (:data:`metrics`,
one attribute per entry, named by :func:`attr_name`), the service label, and the tracer.

Every AI-OTS metric carries ``service`` (cache|ingestion|analytics|signals|gateway), taken from the
context variable :data:`current_service`. The providers behind the instruments are installed by
:func:`aiots.services.common.telemetry.setup_telemetry`. The catalogue as a table:
``python -m aiots.services.common.instruments``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.metrics import Counter, Histogram, UpDownCounter, _Gauge
from opentelemetry.trace import SpanKind

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
    MetricSpec("aiots_signal_candidates_total", "counter",
               "Strategy ideas by outcome: signal, or the gate that refused them", "1", ("strategy", "outcome"),
               owners=("signals",), prime={"strategy": "none", "outcome": "signal"}),
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
UNIT_SUFFIXES = ("_seconds", "_total", "_ratio")


def attr_name(metric: str) -> str:
    """The attribute of :data:`metrics` for a catalogue name: the ``aiots_`` prefix and a unit
    suffix dropped (``aiots_bus_lag_seconds`` -> ``bus_lag``, ``aiots_signals_total`` -> ``signals``)."""
    n = metric.removeprefix(SCOPE + "_")
    for suffix in UNIT_SUFFIXES:
        if n.endswith(suffix):
            return n[: -len(suffix)]
    return n


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
        self._by_attr = {attr_name(name): inst for name, inst in self.by_name.items()}

    def __getattr__(self, name: str) -> _Instrument:
        """The instrument of the catalogue entry whose :func:`attr_name` is ``name``."""
        try:
            return self.__dict__["_by_attr"][name]  # type: ignore[no-any-return]
        except KeyError:
            known = ", ".join(sorted(self.__dict__.get("_by_attr", {})))
            raise AttributeError(f"no metric {name!r} in the catalogue; known: {known}") from None

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


def catalogue_table() -> str:
    """The catalogue as text: name, type, labels (besides ``service``), description."""
    rows = [(s.name, s.kind, ", ".join(s.labels) or "-", s.description) for s in CATALOG]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d}" for a, b, c, d in rows)


if __name__ == "__main__":
    print(catalogue_table())
