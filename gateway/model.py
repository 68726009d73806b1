"""Typed model of the gateway: upstreams, API methods with their HTTP bindings, who may call
what, which rate-limit class each call falls in, and the edge settings.

The model is built from two sources only: the descriptor set written by the build (services,
methods, ``google.api.http`` rules) and :class:`GatewaySettings`. :mod:`aiots.gateway.render`
turns it into Envoy YAML and :mod:`aiots.gateway.openapi` into OpenAPI 3, so the two can never
disagree about paths.

Roles are cumulative: ``viewer`` < ``trader`` < ``admin``. Every method has a policy; a method
added to the protos without one is refused at build time (:func:`load_methods` raises).
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from aiots.services.common.settings import GatewaySettings, Settings, TokenBucketSettings

PACKAGE = "aiots.v1"
#: the access log's file name beside the generated config when gateway.access_log_path is unset
ACCESS_LOG_NAME = "access.log"


class Role(StrEnum):
    """JWT role claim values, least to most privileged."""

    VIEWER = "viewer"
    TRADER = "trader"
    ADMIN = "admin"

    def and_above(self) -> tuple[Role, ...]:
        """This role and every role that includes it."""
        order = list(Role)
        return tuple(order[order.index(self) :])


class RouteClass(StrEnum):
    """Rate-limit classes; each has a token bucket per JWT subject (GatewaySettings.rate_limits)."""

    ANALYTICS_READS = "analytics_reads"
    READS = "reads"
    PRICING_BATCH = "pricing_batch"
    WRITES = "writes"
    STREAMS = "streams"
    #: /health and /openapi.json (no token): a bucket per client address
    UNAUTHENTICATED = "unauthenticated"


@dataclass(frozen=True)
class MethodPolicy:
    """Minimum role and rate-limit class of one RPC."""

    min_role: Role
    route_class: RouteClass


_V, _T, _A = Role.VIEWER, Role.TRADER, Role.ADMIN
_AR, _R, _PB, _W, _S = (
    RouteClass.ANALYTICS_READS,
    RouteClass.READS,
    RouteClass.PRICING_BATCH,
    RouteClass.WRITES,
    RouteClass.STREAMS,
)


def _ip_family(host: str) -> int | None:
    """4 or 6 for an IP literal, None for a DNS name."""
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return None


#: route classes whose calls may be retried on another replica after a reset: they change nothing
#: (reads, pricing), so running one twice is harmless. Writes and streams are retried only when the
#: request never reached a service (see :func:`aiots.gateway.envoy_common.retry_policy`).
IDEMPOTENT_CLASSES = frozenset({RouteClass.READS, RouteClass.ANALYTICS_READS, RouteClass.PRICING_BATCH})


#: ``Service/Method`` (without the package) -> policy. The role table of the README.
POLICIES: dict[str, MethodPolicy] = {
    "AnalyticsService/GetIndicators": MethodPolicy(_V, _AR),
    "AnalyticsService/GetPatterns": MethodPolicy(_V, _AR),
    "AnalyticsService/GetOptionsAnalytics": MethodPolicy(_V, _AR),
    "AnalyticsService/GetOptionChain": MethodPolicy(_V, _AR),
    "AnalyticsService/GetVolSurface": MethodPolicy(_V, _AR),
    "AnalyticsService/PriceOptions": MethodPolicy(_T, _PB),
    "AnalyticsService/ImpliedVolatility": MethodPolicy(_T, _PB),
    "CacheService/GetStockPrice": MethodPolicy(_V, _R),
    "CacheService/GetStockPrices": MethodPolicy(_V, _R),
    "CacheService/GetAnalytics": MethodPolicy(_V, _R),
    "CacheService/GetStats": MethodPolicy(_V, _R),
    "CacheService/SetAnalytics": MethodPolicy(_A, _W),
    "CacheService/DeleteAnalytics": MethodPolicy(_A, _W),
    "CacheService/WatchPrices": MethodPolicy(_T, _S),
    "IngestionService/GetCollectionStatus": MethodPolicy(_V, _R),
    "IngestionService/GetBars": MethodPolicy(_V, _R),
    "IngestionService/GetTrades": MethodPolicy(_V, _R),
    "IngestionService/ListInstruments": MethodPolicy(_V, _R),
    "IngestionService/GetOptionChainDefinitions": MethodPolicy(_V, _R),
    "IngestionService/StartCollection": MethodPolicy(_A, _W),
    "IngestionService/StopCollection": MethodPolicy(_A, _W),
    "IngestionService/Backfill": MethodPolicy(_A, _S),
    "SignalService/ListSignals": MethodPolicy(_V, _R),
    "SignalService/GetSignal": MethodPolicy(_V, _R),
    "SignalService/GetSignalStats": MethodPolicy(_V, _R),
    "SignalService/SubscribeSignals": MethodPolicy(_T, _S),
    # paper trading (issue 16): trader to trade, viewer to read; accounts are scoped to the subject
    "PortfolioService/CreateAccount": MethodPolicy(_T, _W),
    "PortfolioService/ListAccounts": MethodPolicy(_V, _R),
    "PortfolioService/GetAccount": MethodPolicy(_V, _R),
    "PortfolioService/PlaceOrder": MethodPolicy(_T, _W),
    "PortfolioService/ListOrders": MethodPolicy(_V, _R),
    "PortfolioService/SetLimits": MethodPolicy(_T, _W),
    "PortfolioService/SetFollowRule": MethodPolicy(_T, _W),
    "PortfolioService/WatchAccount": MethodPolicy(_T, _S),
    # backtests (issue 14): a run streams progress and costs CPU (trader), stored runs are reads
    "BacktestService/RunBacktest": MethodPolicy(_T, _S),
    "BacktestService/GetBacktest": MethodPolicy(_V, _R),
    "BacktestService/ListBacktests": MethodPolicy(_V, _R),
}

#: service short name -> settings section holding its port
SERVICE_SECTIONS: dict[str, str] = {
    "CacheService": "cache",
    "IngestionService": "ingestion",
    "AnalyticsService": "analytics",
    "SignalService": "signals",
    "PortfolioService": "portfolio",
    "BacktestService": "backtest",
}


@dataclass(frozen=True)
class HttpBinding:
    """One google.api.http rule: verb, path template (``{var}`` / ``{var=**}``) and body."""

    verb: str
    template: str
    body: str = ""

    @property
    def path_params(self) -> tuple[str, ...]:
        """Field paths bound in the template, in order."""
        return tuple(m.group(1) for m in _VAR.finditer(self.template))

    @property
    def path_regex(self) -> str:
        """RE2 regex matching the whole path (the query string is not part of it)."""
        out: list[str] = []
        pos = 0
        for m in _VAR.finditer(self.template):
            out.append(re.escape(self.template[pos : m.start()]))
            out.append(".+" if (m.group(2) or "").endswith("**") else "[^/]+")
            pos = m.end()
        out.append(re.escape(self.template[pos:]))
        return "".join(out)

    @property
    def openapi_path(self) -> str:
        """The template with ``{var=...}`` reduced to ``{var}``."""
        return _VAR.sub(lambda m: "{" + m.group(1) + "}", self.template)


_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class Method:
    """One RPC with its HTTP bindings and policy."""

    service: str  # full name, e.g. aiots.v1.CacheService
    name: str
    input_type: str  # full message name without the leading dot
    output_type: str
    server_streaming: bool
    client_streaming: bool
    bindings: tuple[HttpBinding, ...]
    policy: MethodPolicy
    comment: str = ""

    @property
    def short_service(self) -> str:
        return self.service.rsplit(".", 1)[-1]

    @property
    def grpc_path(self) -> str:
        """``/aiots.v1.Service/Method``."""
        return f"/{self.service}/{self.name}"

    @property
    def key(self) -> str:
        """``Service/Method`` (the POLICIES key)."""
        return f"{self.short_service}/{self.name}"

    @property
    def idempotent(self) -> bool:
        """A unary call that changes nothing: safe to run again on another replica after a reset."""
        unary = not self.server_streaming and not self.client_streaming
        return unary and self.policy.route_class in IDEMPOTENT_CLASSES


@dataclass(frozen=True)
class Endpoint:
    """One replica of a service."""

    host: str
    port: int


@dataclass(frozen=True)
class Upstream:
    """One Envoy cluster: a gRPC service on one or more replicas (host:port each), HTTP/2, active
    gRPC health checks and outlier detection per replica."""

    cluster: str
    service: str  # full gRPC service name (also the health-check service name)
    endpoints: tuple[Endpoint, ...]

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError(f"upstream {self.cluster}: no endpoint")

    @property
    def host(self) -> str:
        """The first replica's host (the gateway supervisor's dependency checks ask it)."""
        return self.endpoints[0].host

    @property
    def port(self) -> int:
        return self.endpoints[0].port

    @property
    def grpc_target(self) -> str:
        """A gRPC channel target reaching any live replica (the supervisor's dependency checks):
        ``ipv4:a:p,b:q`` (``ipv6:[a]:p,...``) when every replica is an IP literal of one family
        (pick_first moves on from a dead one), else the first replica's ``host:port``."""
        first = self.endpoints[0]
        families = {_ip_family(e.host) for e in self.endpoints}
        if len(self.endpoints) == 1 or len(families) != 1 or None in families:
            return f"[{first.host}]:{first.port}" if _ip_family(first.host) == 6 else f"{first.host}:{first.port}"
        (family,) = families
        fmt = "[{}]:{}" if family == 6 else "{}:{}"
        return f"ipv{family}:" + ",".join(fmt.format(e.host, e.port) for e in self.endpoints)


@dataclass(frozen=True)
class Bucket:
    """A token bucket (see TokenBucketSettings)."""

    max_tokens: int
    tokens_per_fill: int
    fill_interval_s: float

    @classmethod
    def of(cls, s: TokenBucketSettings) -> Bucket:
        return cls(s.max_tokens, s.tokens_per_fill, s.fill_interval_s)


@dataclass(frozen=True)
class JwtAuth:
    """jwt_authn provider: issuer, audience, JWKS file, the claim holding the role."""

    issuer: str
    audience: str
    jwks_file: Path
    role_claim: str
    max_lifetime_s: int = 86_400
    clock_skew_s: int = 5
    subject_header: str = "x-aiots-subject"
    role_header: str = "x-aiots-role"


@dataclass(frozen=True)
class GatewayModel:
    """Everything :mod:`render` needs, already validated."""

    settings: GatewaySettings
    descriptor_file: Path
    upstreams: tuple[Upstream, ...]
    methods: tuple[Method, ...]
    auth: JwtAuth
    buckets: dict[RouteClass, Bucket]
    max_subjects: int
    health_upstream_port: int
    tls: tuple[Path, Path] | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: where Envoy writes its JSON access log (``gateway.access_log_path``, else beside the config)
    access_log_path: str = "/dev/stdout"

    def upstream_of(self, method: Method) -> Upstream:
        for u in self.upstreams:
            if u.service == method.service:
                return u
        raise KeyError(method.service)


def descriptor_bytes() -> bytes:
    """The descriptor set written by the build (imports + google.rpc types included)."""
    return (importlib.resources.files("aiots.v1") / "aiots.pb").read_bytes()


def load_descriptor_set(data: bytes | None = None) -> descriptor_pb2.FileDescriptorSet:
    """Parse the descriptor set; google.api.http options are decoded (annotations registered)."""
    assert annotations_pb2.http is not None  # registers the extension before parsing
    return descriptor_pb2.FileDescriptorSet.FromString(descriptor_bytes() if data is None else data)


def _bindings(rule: http_pb2.HttpRule) -> list[HttpBinding]:
    out: list[HttpBinding] = []
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        out.append(HttpBinding(rule.custom.kind.upper(), rule.custom.path, rule.body))
    elif kind is not None:
        out.append(HttpBinding(kind.upper(), getattr(rule, kind), rule.body))
    for extra in rule.additional_bindings:
        out.extend(_bindings(extra))
    return out


def _comments(fd: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {tuple(loc.path): loc.leading_comments.strip() for loc in fd.source_code_info.location}


def load_methods(
    fds: descriptor_pb2.FileDescriptorSet | None = None,
    policies: dict[str, MethodPolicy] | None = None,
) -> tuple[Method, ...]:
    """Every RPC of the aiots.v1 services with its bindings and policy.

    Raises ValueError when a method has no policy (a new RPC must be placed in the role table).
    """
    fds = fds or load_descriptor_set()
    policies = POLICIES if policies is None else policies
    methods: list[Method] = []
    missing: list[str] = []
    for fd in fds.file:
        if fd.package != PACKAGE:
            continue
        comments = _comments(fd)
        for si, svc in enumerate(fd.service):
            for mi, m in enumerate(svc.method):
                key = f"{svc.name}/{m.name}"
                pol = policies.get(key)
                if pol is None:
                    missing.append(key)
                    continue
                rule = m.options.Extensions[annotations_pb2.http]
                methods.append(
                    Method(
                        service=f"{PACKAGE}.{svc.name}",
                        name=m.name,
                        input_type=m.input_type.lstrip("."),
                        output_type=m.output_type.lstrip("."),
                        server_streaming=m.server_streaming,
                        client_streaming=m.client_streaming,
                        bindings=tuple(_bindings(rule)),
                        policy=pol,
                        comment=comments.get((6, si, 2, mi), ""),
                    )
                )
    if missing:
        raise ValueError(f"no gateway policy (role, rate class) for: {', '.join(sorted(missing))}")
    return tuple(methods)


def build_model(
    settings: Settings,
    *,
    descriptor_file: Path,
    jwks_file: Path,
    methods: tuple[Method, ...] | None = None,
) -> GatewayModel:
    """Validate settings against each other and assemble the model."""
    gw = settings.gateway
    if gw.stream_idle_timeout_s <= settings.signals.heartbeat_s:
        raise ValueError(
            f"gateway.stream_idle_timeout_s ({gw.stream_idle_timeout_s}) must exceed "
            f"signals.heartbeat_s ({settings.signals.heartbeat_s}) or idle streams are cut"
        )
    methods = load_methods() if methods is None else methods
    upstreams = []
    for short, section in SERVICE_SECTIONS.items():
        cfg = getattr(settings, section, None)
        if cfg is None:  # a service whose settings section is not in this build yet is not routed
            continue
        endpoints = tuple(Endpoint(h, p) for h, p in gw.endpoints_of(section, cfg.port))
        upstreams.append(Upstream(cluster=section, service=f"{PACKAGE}.{short}", endpoints=endpoints))
    routed = {u.service for u in upstreams}
    methods = tuple(m for m in methods if m.service in routed)
    rl = gw.rate_limits
    buckets = {rc: Bucket.of(getattr(rl, rc.value)) for rc in RouteClass}
    tls = (gw.tls_cert_file, gw.tls_key_file) if gw.tls_cert_file and gw.tls_key_file else None
    access_log = gw.access_log_path or str(Path(gw.config_path).parent / ACCESS_LOG_NAME)
    return GatewayModel(
        settings=gw,
        descriptor_file=descriptor_file,
        upstreams=tuple(upstreams),
        methods=methods,
        auth=JwtAuth(
            issuer=gw.jwt_issuer,
            audience=gw.jwt_audience,
            jwks_file=jwks_file,
            role_claim=gw.jwt_role_claim,
            max_lifetime_s=gw.jwt_max_lifetime_s,
            clock_skew_s=gw.jwt_clock_skew_s,
        ),
        buckets=buckets,
        max_subjects=rl.max_subjects,
        health_upstream_port=gw.health_port,
        tls=tls,
        access_log_path=access_log,
    )
