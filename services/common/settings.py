"""One typed settings object for every AI-OTS service.

Sources, highest priority first: keyword arguments, environment variables (prefix ``AIOTS_``,
nested sections with ``__``, e.g. ``AIOTS_CACHE__PORT=9001``), a YAML file named by
``AIOTS_CONFIG_FILE``, then the defaults below. The defaults serve the embedded mode
(``make run`` on a fresh machine). Three well-known variables are read without the prefix:
``DATABASE_URL``, ``REDIS_URL`` and ``DATABENTO_API_KEY``. Secrets are ``SecretStr`` and are
never logged; ``*_FILE`` variants (e.g. ``DATABENTO_API_KEY_FILE``) read them from files.

Size: the one typed settings object, every section beside the others (docs/configuration.md is
generated from it in this order); split per section, the reference would be scattered.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from aiots.core.conventions import DEFAULT_RATE, NS_PER_S, calendar
from aiots.core.execution import ExecutionModel

UNDERLYINGS: tuple[str, ...] = ("AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ")


class DatabaseSettings(BaseModel):
    """PostgreSQL/TimescaleDB. Without DATABASE_URL an embedded PostgreSQL (pgserver) is used."""

    pool_min: int = Field(1, ge=1, description="asyncpg pool minimum connections")
    pool_max: int = Field(10, ge=1, description="asyncpg pool maximum connections")
    command_timeout_s: float = Field(30.0, gt=0, description="per-statement timeout, seconds")
    embedded_dir: Path = Field(Path(".aiots/pg"), description="embedded PostgreSQL data dir")
    partition_days_ahead: int = Field(7, ge=1, description="daily partitions created ahead (plain PG)")
    timescale: Literal["auto", "on", "off"] = Field(
        "auto", description="use TimescaleDB when the extension can be created (auto), require it, or not"
    )
    migrate_on_start: bool = Field(True, description="apply pending migrations when a pool is created")


class RedisSettings(BaseModel):
    """Redis (cache + bus). Without REDIS_URL the in-process cache and bus are used.

    The bus knobs (stream_*, claim_*, read_*) also drive the in-process bus so both transports
    behave alike.
    """

    namespace: str = Field("aiots", description="first component of every key: <ns>:v1:<kind>:...")
    max_connections: int = Field(64, ge=1, description="connection pool size")
    socket_timeout_s: float = Field(2.0, gt=0, description="socket timeout, seconds")
    reconnect_initial_backoff_s: float = Field(0.05, gt=0, description="first reconnect backoff")
    reconnect_max_backoff_s: float = Field(5.0, gt=0, description="cap of the reconnect backoff")
    stream_maxlen: int = Field(100_000, ge=1, description="approximate MAXLEN of each bus stream")
    read_batch: int = Field(512, ge=1, description="messages per XREADGROUP/XAUTOCLAIM call")
    read_block_ms: int = Field(500, ge=1, description="XREADGROUP BLOCK; keep below socket_timeout_s")
    claim_idle_ms: int = Field(30_000, ge=1, description="pending entries idle this long are reclaimed")
    claim_interval_s: float = Field(5.0, gt=0, description="how often a consumer runs XAUTOCLAIM")
    listen_queue_size: int = Field(10_000, ge=1, description="in-process broadcast queue per listener")
    outbox_dir: Path = Field(Path(".aiots/outbox"), description="bus events kept on disk while Redis is away")
    outbox_dedupe_ttl_s: int = Field(
        7 * 86_400, ge=60, description="how long Redis remembers a publisher's last batch (replay dedupe)"
    )


class DatabentoSettings(BaseModel):
    """Databento datasets and gateways (gateways override only for tests/private deployments)."""

    equities_dataset: str = "EQUS.MINI"
    options_dataset: str = "OPRA.PILLAR"
    historical_gateway: str | None = Field(None, description="e.g. 127.0.0.1:18443 (HTTPS)")
    live_gateway: str | None = Field(None, description="host for Live (plain TCP)")
    live_port: int | None = None
    heartbeat_interval_s: int = Field(30, ge=5)
    max_cost_usd: float = Field(5.0, ge=0, description="backfill cost accepted without confirmation")
    options_quote_schema: Literal["cbbo-1s", "cbbo-1m", "tcbbo", "cmbp-1", "mbp-1", "tbbo"] = Field(
        "cbbo-1s", description="OPRA quote schema for include_options (parent symbology <SYM>.OPT)"
    )
    options_schemas: list[str] = Field(
        default_factory=lambda: ["definition", "statistics"],
        description="OPRA schemas subscribed besides the quote schema",
    )


class MarketSettings(BaseModel):
    """Market inputs every pricing path uses (analytics, signals, backtest, portfolio)."""

    risk_free_rate: float = Field(DEFAULT_RATE, description="continuously compounded, annual")
    dividend_yields: dict[str, float] = Field(
        default_factory=dict,
        description="continuous dividend yield per underlying, e.g. {'AAPL': 0.005}; missing symbols use 0",
    )

    def dividend_yield(self, symbol: str) -> float:
        """The configured continuous yield of ``symbol`` (0 when not configured)."""
        return float(self.dividend_yields.get(symbol.upper(), 0.0))


class ExecutionSettings(BaseModel):
    """The shared execution model (``aiots.core.execution``): what an option order fills at."""

    fee_per_contract: float = Field(0.65, ge=0, description="dollars per contract per fill")
    max_quote_age_s: float = Field(60.0, gt=0, description="quotes older than this never fill")
    regular_hours_only: bool = Field(True, description="refuse fills outside 09:30-16:00 ET sessions")

    def model(self) -> ExecutionModel:
        """The :class:`~aiots.core.execution.ExecutionModel` these settings describe."""
        return ExecutionModel(
            fee_per_contract=self.fee_per_contract,
            max_quote_age_ns=int(self.max_quote_age_s * NS_PER_S),
            regular_hours_only=self.regular_hours_only,
        )


class ServiceSettings(BaseModel):
    """Common per-service knobs."""

    host: str = "127.0.0.1"
    port: int
    metrics_port: int
    max_workers: int = Field(4, ge=1, description="threads for CPU-heavy core calls")
    workers: int = Field(
        1,
        ge=1,
        description="processes serving this service's port (SO_REUSEPORT); >1 needs REDIS_URL and DATABASE_URL",
    )
    readiness_interval_s: float = Field(1.0, gt=0, description="dependency probe period (gRPC health readiness)")
    readiness_timeout_s: float = Field(1.0, gt=0, description="a dependency slower than this to answer is down")


class IngestionSettings(ServiceSettings):
    port: int = 8002
    metrics_port: int = 9102
    queue_size: int = Field(100_000, ge=1000, description="bounded decode->write queue (records)")
    batch_size: int = Field(50_000, ge=1, description="rows per COPY batch")
    flush_interval_s: float = Field(0.25, gt=0, description="max time a record waits before COPY")
    spill_dir: Path = Field(Path(".aiots/spill"), description="DBN/zstd segments while PG is away")
    simulator_seed: int = 7
    simulator_session: dt.date | None = Field(
        None,
        description="replay this NYSE session (YYYY-MM-DD) from its regular open, then the following ones without "
        "waiting; unset: live in a session, else the last session (aiots up --session)",
    )
    simulator_speed: float = Field(1.0, gt=0, description="simulated seconds per wall second")
    history_sessions: int = Field(30, ge=1, description="1-minute sessions written on first start")
    autostart: bool = Field(True, description="start the default source (simulator/live) for all symbols")
    live_max_batch: int = Field(
        256,
        ge=1,
        description="live records normalised and published together at most (a batch also ends when the feed is idle)",
    )
    live_backoff_s: float = Field(1.0, gt=0, description="first live reconnect backoff, seconds")
    live_max_backoff_s: float = Field(30.0, gt=0, description="cap of the live reconnect backoff, seconds")
    feed_stale_s: float = Field(120.0, gt=0, description="aiots.dep.feed is down after this long without events")
    job_heartbeat_s: float = Field(
        2.0, gt=0, description="replicas (Redis bus): how often a job's owner renews its claim and heartbeat"
    )
    job_claim_idle_s: float = Field(
        10.0, gt=0, description="replicas (Redis bus): a job unclaimed this long is taken over by a survivor"
    )

    @field_validator("simulator_session")
    @classmethod
    def _a_session(cls, v: dt.date | None) -> dt.date | None:
        if v is not None:
            calendar().session(v)  # NotASession (a ValueError) names the nearest sessions
        return v

    @model_validator(mode="after")
    def _claim_outlives_heartbeats(self) -> IngestionSettings:
        if self.job_claim_idle_s < 2 * self.job_heartbeat_s:
            raise ValueError("ingestion.job_claim_idle_s must be at least twice job_heartbeat_s")
        return self


class CacheSettings(ServiceSettings):
    """Cache service: analytics values (TTL-bounded), price snapshots, WatchPrices streams."""

    port: int = 8001
    metrics_port: int = 9101
    default_ttl_s: int = Field(300, ge=1)
    max_ttl_s: int = Field(86_400, ge=1)
    max_key_bytes: int = Field(256, ge=1)
    max_value_bytes: int = Field(1 << 20, ge=1)
    max_symbols: int = Field(1000, ge=1, description="tickers per GetStockPrices/WatchPrices request")
    memory_budget_bytes: int = Field(256 << 20, ge=1 << 20, description="in-process backend budget")
    ttl_jitter: float = Field(0.1, ge=0, le=0.5, description="fraction of TTL added at random")
    watch_queue_size: int = Field(1024, ge=1, description="per WatchPrices subscriber")
    watch_heartbeat_s: float = Field(15.0, gt=0, description="WatchPrices heartbeat when idle")
    price_channel: str = Field("prices", description="bus broadcast channel of price changes")
    price_ttl_s: int = Field(0, ge=0, description="TTL of price snapshots; 0: never expire")


class AnalyticsSettings(ServiceSettings):
    port: int = 8003
    metrics_port: int = 9103
    result_ttl_s: int = Field(30, ge=1, description="cache-aside TTL of computed results")
    default_lookback: int = Field(500, ge=1)
    max_lookback: int = Field(100_000, ge=1)
    checkpoint_interval_s: float = Field(5.0, gt=0)
    live_answer_entries: int = Field(
        256, ge=1, description="encoded live GetIndicators answers kept per request until the next bar"
    )
    unusual_volume_oi: float = 2.0
    max_period: int = Field(1000, ge=1, description="largest indicator period accepted")
    default_pattern_days: int = Field(30, ge=1)
    min_pattern_days: int = Field(5, ge=1)
    max_pattern_days: int = Field(3650, ge=1)
    max_batch: int = Field(100_000, ge=1, description="contracts per PriceOptions/ImpliedVolatility call")
    chunk_rows: int = Field(2000, ge=1, description="rows per core call between cancellation checks")
    max_tree_nodes: int = Field(
        2_000_000_000, ge=1, description="per-request cost limit: binomial-tree contracts x steps^2 (about 8 s of CPU)"
    )
    chunk_tree_nodes: int = Field(
        50_000_000, ge=1, description="binomial contracts x steps^2 per core call between cancellation checks"
    )
    iv_tree_evaluations: int = Field(
        6, ge=1, description="cost of one American IV solve in priced contracts (measured 5.7 on the binomial tree)"
    )
    max_surface_points: int = Field(250_000, ge=1, description="per-request limit of vol-surface grid points")
    american_method: str = Field("bjerksund_stensland_2002", description="chain IVs/Greeks pricer")
    binomial_steps: int = Field(501, ge=3, le=20_000)
    max_unusual: int = Field(50, ge=1, description="unusual-activity rows returned")
    iv_history_days: int = Field(252, ge=1)
    live_intervals: list[str] = Field(
        default_factory=lambda: ["1m"],
        description="live-state intervals (those with a bar topic: 1m; 1d is from storage)",
    )
    live_warmup_bars: int = Field(500, ge=1, description="stored bars replayed to warm live state")
    publish_queue: int = Field(
        1024, ge=1, description="feature snapshots queued for the bus while the live state follows a burst of bars"
    )
    live_consumer_group: str = Field(
        "analytics-{replica}",
        description="consumer group of the live state on bars:1m; {replica} becomes this process's name (host-pid): "
        "every replica folds every bar of a symbol (features need them all, in order) and drops its group on stop; "
        "a fixed name shares one group, splitting each symbol's bars between replicas (one replica only)",
    )
    live_indicators: list[str] = Field(
        default_factory=lambda: ["sma", "ema", "rsi", "macd", "bbands", "atr", "adx", "stoch", "obv"],
        description="indicators kept live (default parameters) per symbol and interval",
    )
    bars_cache_entries: int = Field(8, ge=1, description="bar windows kept in memory per data version")
    chain_cache_entries: int = Field(16, ge=1, description="chain snapshots kept with solved IVs/Greeks")
    thread_rows: int = Field(1000, ge=1, description="rows from which proto conversion runs in a worker thread")
    max_last_age_s: float = Field(
        900.0, ge=0, description="a last trade prices a contract without a two-sided quote only when younger than this"
    )
    spot_sync_tolerance_s: float = Field(
        60.0, ge=0, description="spot and option-quote times further apart than this are flagged out of sync"
    )


class SignalsSettings(ServiceSettings):
    port: int = 8004
    metrics_port: int = 9104
    heartbeat_s: float = Field(15.0, gt=0)
    subscriber_queue: int = Field(1000, ge=1)
    strategies_file: Path | None = Field(None, description="YAML strategy config (reloadable)")
    max_streams_per_subject: int = Field(
        5, ge=1, description="open SubscribeSignals streams per authenticated subject (x-aiots-subject)"
    )
    announce_ring: int = Field(
        1024, ge=16, description="recent new signals kept in memory for since= replays (announced before stored)"
    )
    local_features: bool = Field(
        True, description="take the features from analytics' live state in-process when it runs in this process"
    )
    persist_quiet_s: float = Field(
        0.005, ge=0, description="store writes wait for this pause in announcements (off a bar close's burst)"
    )
    bus_announce_queue: int = Field(
        1024,
        ge=1,
        description="new signals queued for the bus (other replicas, the signals topic) while a burst is announced",
    )
    gc_freeze: bool = Field(
        True, description="after start-up, exempt the objects alive then from the cyclic GC (gc.freeze)"
    )


class PortfolioSettings(ServiceSettings):
    """Paper accounts (issue 16): fills use ``execution``, pricing ``market``."""

    port: int = 8006
    metrics_port: int = 9106
    local_subject: str = Field("local", description="owner of calls made without x-aiots-subject (direct gRPC)")
    max_accounts_per_subject: int = Field(100, ge=1)
    max_streams_per_subject: int = Field(5, ge=1, description="open WatchAccount streams per subject")
    mark_interval_s: float = Field(2.0, gt=0, description="marks on a watch stream every this many seconds")
    poll_interval_s: float = Field(0.25, gt=0, description="how often a watch stream looks for new stored events")
    beta_days: int = Field(252, ge=2, description="daily bars used for the beta to SPY")
    beta_min_days: int = Field(20, ge=1, description="fewer paired daily returns: beta 1")
    american_method: Literal["bjerksund_stensland_2002", "bjerksund_stensland_1993", "baw", "binomial"] = Field(
        "bjerksund_stensland_2002", description="IV and Greeks of American contracts"
    )
    clock: Literal["auto", "wall", "market"] = Field(
        "auto", description="order time: wall clock, or the newest quote's time (auto: market unless the feed is live)"
    )


class BacktestServiceSettings(ServiceSettings):
    """BacktestService (issue 14): runs read files only from ``data_roots``."""

    port: int = 8005
    metrics_port: int = 9105
    data_roots: list[Path] = Field(
        default_factory=lambda: [Path("../shared/data"), Path(".aiots/data")],
        description="folders RunBacktest may read input files from (relative paths resolve against them)",
    )
    max_concurrent_runs: int = Field(1, ge=1, description="runs at once per process (each uses one CPU)")
    local_subject: str = Field("local", description="owner of runs made without x-aiots-subject (direct gRPC)")


class TokenBucketSettings(BaseModel):
    """An Envoy local_ratelimit token bucket: ``max_tokens`` burst, refilled by ``tokens_per_fill``
    every ``fill_interval_s`` seconds (sustained rate = tokens_per_fill / fill_interval_s per second)."""

    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(ge=1)
    fill_interval_s: float = Field(1.0, ge=0.05)


class GatewayRateLimits(BaseModel):
    """Envoy local_ratelimit buckets, one per route class **per verified JWT subject** (a token
    without ``sub``: per client address), so one caller flooding never drains another's budget.
    ``streams`` counts stream opens (their own budget, apart from the unary classes; concurrency
    per subject is enforced by the services). ``unauthenticated`` covers ``/health`` and
    ``/openapi.json``, per client address. Buckets are per Envoy worker (``--concurrency``)."""

    analytics_reads: TokenBucketSettings = Field(
        default_factory=lambda: TokenBucketSettings(max_tokens=200, tokens_per_fill=100)
    )
    reads: TokenBucketSettings = Field(default_factory=lambda: TokenBucketSettings(max_tokens=400, tokens_per_fill=200))
    pricing_batch: TokenBucketSettings = Field(
        default_factory=lambda: TokenBucketSettings(max_tokens=20, tokens_per_fill=10)
    )
    writes: TokenBucketSettings = Field(default_factory=lambda: TokenBucketSettings(max_tokens=20, tokens_per_fill=10))
    streams: TokenBucketSettings = Field(
        default_factory=lambda: TokenBucketSettings(max_tokens=10, tokens_per_fill=1, fill_interval_s=2.0),
        description="stream opens per subject: burst, then one every fill_interval_s",
    )
    unauthenticated: TokenBucketSettings = Field(
        default_factory=lambda: TokenBucketSettings(max_tokens=60, tokens_per_fill=30),
        description="/health and /openapi.json, per client address",
    )
    max_subjects: int = Field(10_000, ge=1, description="per-subject/per-address buckets kept (LRU)")


MAX_PORT = 65_535


def split_host_port(text: str, what: str = "endpoint") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError naming ``what`` otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # a bare IPv6 address is ambiguous: ask for brackets
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise ValueError(f"{what}: {text!r} is not host:port ([addr]:port for IPv6, port 1..{MAX_PORT})")
    return host, int(port)


class GatewaySettings(BaseModel):
    """Envoy in front of every service (see gateway/). Ports: listener 8000, admin 9901 on
    127.0.0.1 only, the supervisor's /health + /openapi.json endpoint on 127.0.0.1:health_port."""

    #: the services behind the gateway (the keys upstream_hosts accepts)
    UPSTREAMS: ClassVar[tuple[str, ...]] = ("cache", "ingestion", "analytics", "signals", "portfolio", "backtest")

    host: str = Field("127.0.0.1", description="listener address; 0.0.0.0 (compose, Kubernetes) must be asked for")
    port: int = 8000
    admin_port: int = 9901
    health_port: int = Field(9900, description="supervisor HTTP endpoint (127.0.0.1) behind /health")
    upstream_host: str = Field("127.0.0.1", description="host of every service not named in upstream_hosts")
    upstream_hosts: dict[str, str] = Field(
        default_factory=dict,
        description='per-service host (IP or DNS name), e.g. {"cache": "cache", ...}; unset: upstream_host',
    )
    upstream_endpoints: dict[str, list[str]] = Field(
        default_factory=dict,
        description='per-service replicas as "host:port" ("[v6]:port" for IPv6), e.g. {"signals": '
        '["127.0.0.1:8004", "127.0.0.1:8014"]}: Envoy balances over them, health-checks each and ejects a '
        "dead one; a service not named here: one endpoint, upstream_hosts/upstream_host and its port setting",
    )
    upstream_retries: int = Field(
        1,
        ge=0,
        le=5,
        description="retries of a call on another replica: reads (and pricing) after a connect failure or reset; "
        "writes and stream opens only when the request never reached the service",
    )
    outlier_consecutive_failures: int = Field(
        2, ge=1, description="consecutive connect failures/resets/timeouts of a replica that eject it"
    )
    outlier_ejection_s: float = Field(
        10.0, gt=0, description="ejection time (grows with repeats); a passing health check brings it back sooner"
    )
    base_id: int = Field(0, ge=0, description="Envoy --base-id (distinct per Envoy on one host)")
    concurrency: int = Field(1, ge=1, description="Envoy worker threads (--concurrency)")
    upstream_max_streams: int = Field(
        8,
        ge=0,
        description="concurrent streams per HTTP/2 connection to a service replica; past it Envoy "
        "opens another connection, which the kernel may hand to another SO_REUSEPORT worker "
        "(--workers): without a cap one connection per Envoy worker puts every call on one process; "
        "0: no cap",
    )
    log_level: str = Field("warning", description="Envoy --log-level")
    config_path: Path = Field(Path(".aiots/gateway/envoy.yaml"), description="generated Envoy config")
    access_log_path: str | None = Field(
        None,
        description="JSON access log, one object per line; unset: access.log beside config_path "
        "(not the terminal); containers: /dev/stdout",
    )
    access_log_flush_ms: int = Field(1000, ge=10, description="Envoy --file-flush-interval-msec")
    profile: Literal["dev", "prod"] = Field("dev", description="HS256 is refused outside dev")
    jwt_issuer: str = "aiots-dev"
    jwt_audience: str = "aiots"
    jwt_algorithm: Literal["RS256", "ES256", "HS256"] = "RS256"
    jwt_role_claim: str = Field("role", description="claim holding viewer|trader|admin")
    jwt_max_lifetime_s: int = Field(
        86_400, ge=60, description="tokens must carry exp, at most this far ahead (Envoy max_lifetime); dev tokens too"
    )
    jwt_clock_skew_s: int = Field(5, ge=0, le=5, description="leeway on exp/nbf, seconds (at most 5)")
    jwks_file: Path | None = Field(None, description="JWKS for jwt_authn; dev key generated if unset")
    upstream_secret: SecretStr | None = Field(
        None,
        description="shared secret the gateway sends to the services (x-aiots-gateway-secret) and they require; "
        "set it (same value everywhere) where service ports are reachable from other hosts",
    )
    upstream_secret_trust_loopback: bool = Field(
        True, description="with upstream_secret set, calls from a loopback peer (the local CLI) need no secret"
    )
    dev_key_dir: Path = Path(".aiots/keys")
    web_dir: Path | None = Field(
        None,
        description="the dashboard's built files (index.html, assets/) served at /; unset: web/dist of the "
        "source checkout (make run builds it); the image sets /opt/aiots/web",
    )
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_request_bytes: int = Field(1 << 20, ge=1024, description="413 above this request body size")
    connect_timeout_s: float = Field(1.0, gt=0)
    dns_refresh_rate_s: float = Field(5.0, ge=0.001, description="re-resolution of upstream DNS names")
    unary_timeout_s: float = Field(30.0, gt=0, description="route timeout of unary calls")
    stream_idle_timeout_s: float = Field(
        60.0, gt=0, description="idle timeout of streaming routes (must exceed the signals heartbeat)"
    )
    health_check_interval_s: float = Field(2.0, gt=0, description="active gRPC health check interval")
    health_check_timeout_s: float = Field(1.0, gt=0)
    unhealthy_threshold: int = Field(2, ge=1)
    healthy_threshold: int = Field(1, ge=1)
    rate_limits: GatewayRateLimits = Field(default_factory=GatewayRateLimits)

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.jwt_algorithm == "HS256" and self.profile != "dev":
            raise ValueError("jwt_algorithm HS256 is only allowed with profile 'dev'")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        unknown = sorted(set(self.upstream_hosts) - set(self.UPSTREAMS))
        if unknown:
            raise ValueError(f"upstream_hosts: unknown service {unknown[0]!r}; choose from {', '.join(self.UPSTREAMS)}")
        empty = sorted(k for k, v in self.upstream_hosts.items() if not v.strip())
        if empty:
            raise ValueError(f"upstream_hosts: empty host for {empty[0]!r}")
        unknown = sorted(set(self.upstream_endpoints) - set(self.UPSTREAMS))
        if unknown:
            raise ValueError(
                f"upstream_endpoints: unknown service {unknown[0]!r}; choose from {', '.join(self.UPSTREAMS)}"
            )
        for service, endpoints in self.upstream_endpoints.items():
            if not endpoints:
                raise ValueError(f"upstream_endpoints: no endpoint for {service!r} (leave it out for the default)")
            for ep in endpoints:
                split_host_port(ep, f"upstream_endpoints[{service!r}]")
        return self

    def endpoints_of(self, service: str, port: int) -> list[tuple[str, int]]:
        """Every replica of ``service`` as (host, port): upstream_endpoints, else one at host_of() and ``port``."""
        eps = self.upstream_endpoints.get(service)
        if not eps:
            return [(self.host_of(service), port)]
        return [split_host_port(ep, service) for ep in eps]

    def host_of(self, service: str) -> str:
        """Where ``service`` (cache|ingestion|analytics|signals) listens, as the gateway reaches it."""
        return self.upstream_hosts.get(service, self.upstream_host)


class TelemetrySettings(BaseModel):
    log_level: str = "INFO"
    json_logs: bool = True
    otlp_endpoint: str | None = Field(None, description="OTLP gRPC endpoint; unset: no export")
    service_namespace: str = "aiots"


class Settings(BaseSettings):
    """Everything configurable. Use :func:`get_settings` for the process-wide instance."""

    model_config = SettingsConfigDict(
        env_prefix="AIOTS_",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
    )

    database_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "AIOTS_DATABASE_URL", "database_url"),
        description="PostgreSQL/TimescaleDB; unset: the embedded PostgreSQL (pgserver) under data_dir",
    )
    redis_url: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "AIOTS_REDIS_URL", "redis_url"),
        description="Redis for the cache and the bus; unset: in-process cache and bus (one process)",
    )
    databento_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("DATABENTO_API_KEY", "AIOTS_DATABENTO_API_KEY", "databento_api_key"),
        description="Databento key for Live and Historical; unset: the market simulator",
    )
    symbols: list[str] = Field(default_factory=lambda: list(UNDERLYINGS), description="underlyings served")
    data_dir: Path = Field(Path(".aiots"), description="where embedded data lives")
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="event loop of service processes (aiots up/serve): uvloop, or asyncio's own"
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    databento: DatabentoSettings = Field(default_factory=DatabentoSettings)
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    signals: SignalsSettings = Field(default_factory=SignalsSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    backtest: BacktestServiceSettings = Field(default_factory=BacktestServiceSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    market: MarketSettings = Field(default_factory=MarketSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """Read DATABASE_URL_FILE / REDIS_URL_FILE / DATABENTO_API_KEY_FILE when set."""
        if isinstance(data, dict):
            for field, env in (
                ("database_url", "DATABASE_URL_FILE"),
                ("redis_url", "REDIS_URL_FILE"),
                ("databento_api_key", "DATABENTO_API_KEY_FILE"),
            ):
                path = os.environ.get(env)
                if path and not data.get(field):
                    data[field] = Path(path).read_text().strip()
        return data

    @field_validator("database_url", "redis_url", "databento_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        """An empty or blank value (compose's ``${DATABENTO_API_KEY:-}``) means unset, not an empty secret."""
        raw = v.get_secret_value() if isinstance(v, SecretStr) else v
        return None if isinstance(raw, str) and not raw.strip() else v

    @field_validator("symbols")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [s.strip().upper() for s in v if s.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = os.environ.get("AIOTS_CONFIG_FILE")
        if cfg:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=cfg))
        return tuple(sources)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_bus(self) -> bool:
        return self.redis_url is None

    @property
    def simulated_feed(self) -> bool:
        return self.databento_api_key is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
