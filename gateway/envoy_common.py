"""Names and small builders shared by the Envoy config renderers (:mod:`aiots.gateway.render`)."""

from __future__ import annotations

from typing import Any

from aiots.gateway.model import Bucket, GatewayModel, Method

JWT_PROVIDER = "aiots"
JWT_REQUIREMENT = "jwt"
JWT_METADATA_KEY = "jwt_payload"
#: the enum-error Lua filter's name (in the chain, and per route where it is disabled)
LUA_FILTER = "envoy.filters.http.lua"
#: verified tokens kept per Envoy worker (jwt_authn ``jwt_cache_config``, LRU): a hit skips the JSON
#: parse and the RS256 signature check (~45% of Envoy's instructions per REST call), never the
#: issuer, audience and expiry checks. Envoy caches tokens up to 4 KiB; ours are under 1 KiB.
JWT_CACHE_SIZE = 1000
HEALTH_CLUSTER = "gateway_health"
#: descriptor keys of the per-caller buckets
SUBJECT_KEY = "subject"
ANONYMOUS_KEY = "anonymous"
BY_ADDRESS = "by_address"
REMOTE_ADDRESS_KEY = "remote_address"
ROUTE_CLASS_KEY = "route_class"
#: route metadata key holding the least role an RPC needs (named in 403 bodies)
MIN_ROLE_KEY = "min_role"
METADATA_NS = "aiots.gateway"
#: request header set on non-gRPC routes (stripped before the upstream sees it)
REST_MARKER = "x-aiots-rest"
#: the default bucket of the local_ratelimit filter; only the descriptor buckets are meant to bite
UNLIMITED_TOKENS = 1_000_000_000
DRAIN_TIME_S = 5
#: retry conditions (Envoy ``retry_on``). Transport failures where the request never reached a
#: service: a retry on another replica is always safe (writes and stream opens included).
RETRY_ON_UNDELIVERED = "connect-failure,refused-stream,reset-before-request"
#: idempotent calls (reads, pricing) are retried after any reset too, e.g. a replica killed mid-call
RETRY_ON_IDEMPOTENT = "connect-failure,refused-stream,reset"
#: a retry goes to a replica not tried yet: how often host selection may re-pick to find one
RETRY_HOST_SELECTION_ATTEMPTS = 5
#: grpc-* headers removed from REST responses (the status is in the HTTP code and JSON body)
GRPC_RESPONSE_HEADERS = (
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
)
#: local replies (Envoy-generated) to REST clients get a google.rpc.Status-like JSON body; the
#: google.rpc.Code of each HTTP status (HTTP -> gRPC as in grpc's doc/http-grpc-status-mapping)
LOCAL_REPLY_CODES = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    405: 12,
    408: 4,
    409: 10,
    411: 3,
    413: 8,
    414: 3,
    415: 3,
    429: 8,
    431: 8,
    500: 13,
    501: 12,
    502: 14,
    503: 14,
    504: 4,
}
#: google.rpc.Code for any other 4xx/5xx local reply (UNKNOWN), so no error body is ever empty
LOCAL_REPLY_DEFAULT_CODE = 2
#: how a client without a (valid) token gets one; part of every 401
TOKEN_HINT = "Send 'Authorization: Bearer <token>'; on a dev stack get one with: .venv/bin/aiots token --role trader"
ROLE_ORDER = "roles: viewer < trader < admin"
NOT_FOUND_MESSAGE = "no such API path (GET /openapi.json lists them)"
BAD_PATH_MESSAGE = (
    "invalid request path (%RESPONSE_CODE_DETAILS%): NUL (%%00) and malformed percent-encodings are refused; "
    "send a '/' inside a path value as %%2F"
)

_T = "type.googleapis.com/"
HCM = _T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
FILTER_CONFIG = _T + "envoy.config.route.v3.FilterConfig"


def _d(seconds: float) -> str:
    """Protobuf Duration text."""
    return f"{seconds:.3f}s"


def _bucket(b: Bucket) -> dict[str, Any]:
    return {"max_tokens": b.max_tokens, "tokens_per_fill": b.tokens_per_fill, "fill_interval": _d(b.fill_interval_s)}


def _disabled() -> dict[str, Any]:
    return {"@type": FILTER_CONFIG, "disabled": True}


def _metadata_action(key: str, *, skip_if_absent: bool) -> dict[str, Any]:
    return {
        "metadata": {
            "descriptor_key": ROUTE_CLASS_KEY,
            "metadata_key": {"key": METADATA_NS, "path": [{"key": key}]},
            "source": "ROUTE_ENTRY",
            "skip_if_absent": skip_if_absent,
        }
    }


def retry_policy(model: GatewayModel, method: Method) -> dict[str, Any]:
    """The route's ``retry_policy``: up to ``gateway.upstream_retries`` retries, each on a replica not
    tried yet (``previous_hosts``). Idempotent unary calls are retried after a reset as well; writes
    and streams only when the request never reached a service (nothing ran, nothing was sent back)."""
    n = model.settings.upstream_retries
    if n == 0:
        return {}
    return {
        "retry_policy": {
            "retry_on": RETRY_ON_IDEMPOTENT if method.idempotent else RETRY_ON_UNDELIVERED,
            "num_retries": n,
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": {
                        "@type": _T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                    },
                }
            ],
            "host_selection_retry_max_attempts": RETRY_HOST_SELECTION_ATTEMPTS,
        }
    }
