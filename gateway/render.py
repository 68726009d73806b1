"""Render a :class:`GatewayModel` to an Envoy v3 bootstrap (a dict, then YAML via pyyaml).

Layout of the one listener (``settings.gateway.port``)::

    header_mutation (drop client-sent x-aiots-subject/x-aiots-role/x-aiots-gateway-secret)
    -> cors -> jwt_authn (claims -> x-aiots-subject/x-aiots-role, payload -> metadata)
    -> rbac (per route: the roles allowed for that RPC, from the JWT metadata)
    -> local_ratelimit (a bucket per route class per verified subject; per client address without one)
    -> buffer (413 above max_request_bytes) -> grpc_json_transcoder -> router

Routes, per RPC: one per google.api.http binding (regex on the path + the verb) and one for
the plain gRPC path ``/aiots.v1.Service/Method`` (content-type application/grpc). Both carry the
same RBAC policy and rate-limit class, so the rules are identical over REST and gRPC. Then
``/health`` and ``/openapi.json`` (to the supervisor; no token, rate limited per client address), the
dashboard's ``/`` and ``/assets/*`` (static files from the supervisor, the same way) and a final
catch-all answering 404 JSON (after authentication, so unknown paths reveal nothing).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import yaml

from aiots.gateway.model import Bucket, GatewayModel, HttpBinding, Method, RouteClass
from aiots.services.common.gateway_auth import SECRET_HEADER

JWT_PROVIDER = "aiots"
JWT_REQUIREMENT = "jwt"
JWT_METADATA_KEY = "jwt_payload"
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


def _rest_mutations(*, strip_grpc: bool) -> dict[str, Any]:
    """Per-route header_mutation for non-gRPC routes: mark the request as REST (the local-reply
    mapper keys on it: the transcoder rewrites content-type to application/grpc before it can
    fail) and, on API routes, drop grpc-* response headers. header_mutation's encoder runs after
    the transcoder's, whereas route-level response_headers_to_remove would run before it."""
    mutations: dict[str, Any] = {
        "request_mutations": [
            {
                "append": {
                    "header": {"key": REST_MARKER, "value": "1"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            }
        ]
    }
    if strip_grpc:
        mutations["response_mutations"] = [{"remove": h} for h in GRPC_RESPONSE_HEADERS]
    return {
        "envoy.filters.http.header_mutation": {
            "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute",
            "mutations": mutations,
        }
    }


def _rbac_for(model: GatewayModel, method: Method) -> dict[str, Any]:
    roles = method.policy.min_role.and_above()
    principals = [
        {
            "sourced_metadata": {
                "metadata_matcher": {
                    "filter": "envoy.filters.http.jwt_authn",
                    "path": [{"key": JWT_METADATA_KEY}, {"key": model.auth.role_claim}],
                    "value": {"string_match": {"exact": role.value}},
                }
            }
        }
        for role in roles
    ]
    return {
        "@type": _T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute",
        "rbac": {
            "rules": {
                "action": "ALLOW",
                "policies": {
                    f"{method.key}:{'|'.join(r.value for r in roles)}": {
                        "permissions": [{"any": True}],
                        "principals": principals,
                    }
                },
            }
        },
    }


def _method_filters(model: GatewayModel, method: Method) -> dict[str, Any]:
    return {
        "envoy.filters.http.jwt_authn": {
            "@type": _T + "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
            "requirement_name": JWT_REQUIREMENT,
        },
        "envoy.filters.http.rbac": _rbac_for(model, method),
    }


def _route_metadata(method: Method) -> dict[str, Any]:
    """Route metadata read by the local_ratelimit filter's descriptor actions."""
    md = {ROUTE_CLASS_KEY: method.policy.route_class.value, MIN_ROLE_KEY: method.policy.min_role.value}
    return {"filter_metadata": {METADATA_NS: md}}


def _metadata_action(key: str, *, skip_if_absent: bool) -> dict[str, Any]:
    return {
        "metadata": {
            "descriptor_key": ROUTE_CLASS_KEY,
            "metadata_key": {"key": METADATA_NS, "path": [{"key": key}]},
            "source": "ROUTE_ENTRY",
            "skip_if_absent": skip_if_absent,
        }
    }


def _route_action(model: GatewayModel, method: Method) -> dict[str, Any]:
    gw = model.settings
    action: dict[str, Any] = {"cluster": model.upstream_of(method).cluster}
    if method.server_streaming:
        action["timeout"] = "0s"
        action["idle_timeout"] = _d(gw.stream_idle_timeout_s)
    else:
        action["timeout"] = _d(gw.unary_timeout_s)
    return action


def _sort_key(item: tuple[Method, HttpBinding]) -> tuple[int, int]:
    """Literal paths before templated ones (``/signals/subscribe`` before ``/signals/{id}``)."""
    _, b = item
    return (len(b.path_params), -len(b.template))


def routes(model: GatewayModel) -> list[dict[str, Any]]:
    """All routes, most specific first."""
    out: list[dict[str, Any]] = []
    static: list[tuple[str, dict[str, str]]] = [
        ("health", {"path": "/health"}),
        ("openapi.json", {"path": "/openapi.json"}),
        # the dashboard (index.html, hashed assets): no token, its API calls carry one
        ("web_index", {"path": "/"}),
        ("web_assets", {"prefix": "/assets/"}),
    ]
    for name, match in static:
        out.append(
            {
                "name": name,
                "match": match,
                "route": {"cluster": HEALTH_CLUSTER, "timeout": _d(model.settings.health_check_timeout_s * 3)},
                # no token here, so the bucket is per client address
                "metadata": {"filter_metadata": {METADATA_NS: {ROUTE_CLASS_KEY: RouteClass.UNAUTHENTICATED.value}}},
                "typed_per_filter_config": {
                    "envoy.filters.http.jwt_authn": {
                        "@type": _T + "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                        "disabled": True,
                    },
                    "envoy.filters.http.rbac": {"@type": _T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"},
                    "envoy.filters.http.grpc_json_transcoder": _disabled(),
                    **_rest_mutations(strip_grpc=False),
                },
            }
        )
    out.append(
        {
            # CORS preflight: answered by the cors filter, never forwarded.
            "name": "cors_preflight",
            "match": {"prefix": "/api/", "headers": [{"name": ":method", "string_match": {"exact": "OPTIONS"}}]},
            "route": {"cluster": HEALTH_CLUSTER},
            "typed_per_filter_config": {
                "envoy.filters.http.rbac": {"@type": _T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"},
                "envoy.filters.http.local_ratelimit": _disabled(),
                "envoy.filters.http.grpc_json_transcoder": _disabled(),
                **_rest_mutations(strip_grpc=False),
            },
        }
    )
    rest = sorted(((m, b) for m in model.methods for b in m.bindings), key=_sort_key)
    for m, b in rest:
        out.append(
            {
                "name": f"rest:{m.key}:{b.verb}:{b.template}",
                "match": {
                    "safe_regex": {"regex": b.path_regex},
                    "headers": [{"name": ":method", "string_match": {"exact": b.verb}}],
                },
                "route": _route_action(model, m),
                "metadata": _route_metadata(m),
                "request_headers_to_remove": [REST_MARKER],
                "typed_per_filter_config": {**_method_filters(model, m), **_rest_mutations(strip_grpc=True)},
            }
        )
    for m in model.methods:
        out.append(
            {
                "name": f"grpc:{m.key}",
                "match": {"path": m.grpc_path, "grpc": {}},
                "route": _route_action(model, m),
                "metadata": _route_metadata(m),
                "typed_per_filter_config": _method_filters(model, m),
            }
        )
    out.append(
        {
            "name": "not_found",
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                # plain text: the local-reply mapper wraps it into the JSON error body
                "body": {"inline_string": NOT_FOUND_MESSAGE},
            },
            "typed_per_filter_config": {
                "envoy.filters.http.jwt_authn": {
                    "@type": _T + "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
                    "requirement_name": JWT_REQUIREMENT,
                },
                "envoy.filters.http.rbac": {"@type": _T + "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"},
                "envoy.filters.http.local_ratelimit": _disabled(),
                **_rest_mutations(strip_grpc=False),
            },
        }
    )
    return out


def _status_is(op: str, status: int) -> dict[str, Any]:
    return {
        "status_code_filter": {
            "comparison": {
                "op": op,
                "value": {"default_value": status, "runtime_key": f"aiots.local_reply.{op}{status}"},
            }
        }
    }


def _error_body(code: int, message: str = "%LOCAL_REPLY_BODY%") -> dict[str, Any]:
    return {
        "json_format": {"code": code, "message": message, "details": []},
        "content_type": "application/json",
    }


def _present(header: str, present: bool = True) -> dict[str, Any]:
    return {"header_filter": {"header": {"name": header, "present_match": present}}}


def _grpc_body(message: str) -> dict[str, Any]:
    """gRPC local replies: Envoy puts the (rewritten) body text into grpc-message."""
    return {"text_format_source": {"inline_string": message}}


def _local_reply(model: GatewayModel) -> dict[str, Any]:
    """JSON bodies ``{"code", "message", "details"}`` for *every* 4xx/5xx Envoy answers itself to
    a non-gRPC client: 401 from jwt_authn, 403 RBAC, 429, 400 transcoding errors, 413, and the
    replies sent before any route is chosen (a path that fails normalisation: ``%00``, an encoded
    ``../``), so no error body is ever empty or plain text. gRPC clients are left alone: Envoy
    turns their local replies into grpc-status/grpc-message.

    A request is REST when its content-type is not ``application/grpc*``, or it carries the REST
    marker (set per route, before any filter can fail: the transcoder rewrites content-type to
    application/grpc) or ``x-envoy-original-path`` (set by the transcoder on every request it
    transcodes; it matters for errors in the request *body*, found after the router already
    stripped the marker)."""
    rest = {
        "or_filter": {
            "filters": [
                {"header_filter": {"header": {"name": REST_MARKER, "present_match": True}}},
                {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}},
                {
                    "header_filter": {
                        "header": {
                            "name": "content-type",
                            "string_match": {"prefix": "application/grpc"},
                            "invert_match": True,
                        }
                    }
                },
                {"header_filter": {"header": {"name": "content-type", "present_match": False}}},
            ]
        }
    }
    before_filters = [
        {"header_filter": {"header": {"name": REST_MARKER, "present_match": False}}},
        {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": False}}},
        {"header_filter": {"header": {"name": "content-type", "present_match": False}}},
    ]
    auth = model.auth
    grpc = {  # the complement of ``rest`` (AccessLogFilter has no "not")
        "and_filter": {
            "filters": [
                _present(REST_MARKER, False),
                _present("x-envoy-original-path", False),
                {"header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}},
            ]
        }
    }
    need = f"%METADATA(ROUTE:{METADATA_NS}:{MIN_ROLE_KEY})%"
    has_role = _present(auth.role_header)
    no_role = {"and_filter": {"filters": [_present(auth.role_header, False), _present(auth.subject_header)]}}
    denied = f"requires role {need}; your token has %REQ({auth.role_header})% ({ROLE_ORDER})"
    denied_no_role = f"requires role {need}; your token has no '{auth.role_claim}' claim ({ROLE_ORDER})"
    unauth = f"%LOCAL_REPLY_BODY%. {TOKEN_HINT}"
    mappers: list[dict[str, Any]] = [
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 401), rest]}},
            "body_format_override": _error_body(16, unauth),
        },
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 401), grpc]}},
            "body_format_override": _grpc_body(unauth),
        },
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 403), rest, has_role]}},
            "body_format_override": _error_body(7, denied),
        },
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 403), rest, no_role]}},
            "body_format_override": _error_body(7, denied_no_role),
        },
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 403), grpc, has_role]}},
            "body_format_override": _grpc_body(denied),
        },
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", 403), grpc, no_role]}},
            "body_format_override": _grpc_body(denied_no_role),
        },
        {
            # refused before any route or filter ran: the path failed normalisation (Envoy gives no text)
            "filter": {"and_filter": {"filters": [_status_is("EQ", 400), *before_filters]}},
            "body_format_override": _error_body(3, BAD_PATH_MESSAGE),
        },
    ]
    mappers += [
        {
            "filter": {"and_filter": {"filters": [_status_is("EQ", status), rest]}},
            "body_format_override": _error_body(code),
        }
        for status, code in LOCAL_REPLY_CODES.items()
    ]
    mappers.append(
        {
            "filter": {"and_filter": {"filters": [_status_is("GE", 400), rest]}},
            "body_format_override": _error_body(LOCAL_REPLY_DEFAULT_CODE),
        }
    )
    return {"mappers": mappers}


def _cors(model: GatewayModel) -> dict[str, Any]:
    return {
        "@type": _T + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": o} for o in model.settings.cors_origins],
        "allow_methods": "GET, POST, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-request-id, x-grpc-web, grpc-timeout",
        "expose_headers": "x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, retry-after",
        "max_age": "600",
    }


def _http_filters(model: GatewayModel) -> list[dict[str, Any]]:
    auth = model.auth
    # Per caller, per route class: the verified subject (jwt claim -> header; client copies are
    # stripped first), or the client address where there is no subject (no token, or no ``sub``).
    # An entry without a value is a wildcard: one bucket per distinct value, LRU-capped.
    descriptors: list[dict[str, Any]] = []
    for rc in RouteClass:
        bucket = _bucket(model.buckets[rc])
        descriptors.append(
            {"entries": [{"key": ROUTE_CLASS_KEY, "value": rc.value}, {"key": SUBJECT_KEY}], "token_bucket": bucket}
        )
        descriptors.append(
            {
                "entries": [
                    {"key": ROUTE_CLASS_KEY, "value": rc.value},
                    {"key": ANONYMOUS_KEY, "value": BY_ADDRESS},
                    {"key": REMOTE_ADDRESS_KEY},
                ],
                "token_bucket": bucket,
            }
        )
    retry_after = max(1, round(max(b.fill_interval_s for b in model.buckets.values())))
    return [
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": _T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {
                    "request_mutations": [
                        {"remove": auth.subject_header},
                        {"remove": auth.role_header},
                        {"remove": SECRET_HEADER},
                    ]
                },
            },
        },
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": _T + "envoy.extensions.filters.http.cors.v3.Cors"},
        },
        {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": _T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    JWT_PROVIDER: {
                        "issuer": auth.issuer,
                        "audiences": [auth.audience],
                        "local_jwks": {"filename": str(auth.jwks_file.resolve())},
                        "forward": False,
                        # only the Authorization header (Envoy's default also reads ?access_token=,
                        # which lands tokens in access logs and browser history)
                        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                        "from_params": [],
                        "require_expiration": True,
                        "max_lifetime": _d(auth.max_lifetime_s),
                        "clock_skew_seconds": auth.clock_skew_s,
                        "payload_in_metadata": JWT_METADATA_KEY,
                        "claim_to_headers": [
                            {"header_name": auth.subject_header, "claim_name": "sub"},
                            {"header_name": auth.role_header, "claim_name": auth.role_claim},
                        ],
                    }
                },
                "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}}],
                "requirement_map": {JWT_REQUIREMENT: {"provider_name": JWT_PROVIDER}},
                "bypass_cors_preflight": True,
            },
        },
        {
            "name": "envoy.filters.http.rbac",
            "typed_config": {
                # Deny by default: every API route carries its own policy (RBACPerRoute).
                "@type": _T + "envoy.extensions.filters.http.rbac.v3.RBAC",
                "rules": {"action": "ALLOW", "policies": {}},
            },
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": _T + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "route_class",
                "token_bucket": {
                    "max_tokens": UNLIMITED_TOKENS,
                    "tokens_per_fill": UNLIMITED_TOKENS,
                    "fill_interval": "1s",
                },
                "filter_enabled": {
                    "runtime_key": "local_rate_limit_enabled",
                    "default_value": {"numerator": 100, "denominator": "HUNDRED"},
                },
                "filter_enforced": {
                    "runtime_key": "local_rate_limit_enforced",
                    "default_value": {"numerator": 100, "denominator": "HUNDRED"},
                },
                "descriptors": descriptors,
                "rate_limits": [
                    {
                        "actions": [
                            _metadata_action(ROUTE_CLASS_KEY, skip_if_absent=False),
                            {"request_headers": {"header_name": auth.subject_header, "descriptor_key": SUBJECT_KEY}},
                        ]
                    },
                    {
                        "actions": [
                            _metadata_action(ROUTE_CLASS_KEY, skip_if_absent=False),
                            {
                                "header_value_match": {
                                    "descriptor_key": ANONYMOUS_KEY,
                                    "descriptor_value": BY_ADDRESS,
                                    "expect_match": False,  # generated when there is no subject header
                                    "headers": [{"name": auth.subject_header, "present_match": True}],
                                }
                            },
                            {"remote_address": {}},
                        ]
                    },
                ],
                "max_dynamic_descriptors": model.max_subjects,
                "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                "rate_limited_as_resource_exhausted": True,
                "response_headers_to_add": [
                    {
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                        "header": {"key": "retry-after", "value": str(retry_after)},
                    }
                ],
            },
        },
        {
            "name": "envoy.filters.http.buffer",
            "typed_config": {
                "@type": _T + "envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": model.settings.max_request_bytes,
            },
        },
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": _T + "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                "proto_descriptor": str(model.descriptor_file.resolve()),
                "services": sorted({m.service for m in model.methods}),
                "match_incoming_request_route": True,
                "convert_grpc_status": True,
                "url_unescape_spec": "ALL_CHARACTERS",
                "print_options": {
                    "add_whitespace": False,
                    "always_print_primitive_fields": True,
                    "always_print_enums_as_ints": False,
                    "preserve_proto_field_names": True,
                    "stream_newline_delimited": True,
                },
                "request_validation_options": {
                    "reject_binding_body_field_collisions": True,
                    "reject_unknown_query_parameters": True,
                },
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": _T + "envoy.extensions.filters.http.router.v3.Router"},
        },
    ]


def _access_log(model: GatewayModel) -> list[dict[str, Any]]:
    fmt = {
        "ts": "%START_TIME%",
        "request_id": "%REQ(X-REQUEST-ID)%",
        # the client's method and path: the transcoder turns every REST call into POST /pkg.Service/Method
        "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "protocol": "%PROTOCOL%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS_NUMBER%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "route": "%ROUTE_NAME%",
        "upstream": "%UPSTREAM_CLUSTER%",
        "subject": "%REQ(X-AIOTS-SUBJECT)%",
        "role": "%REQ(X-AIOTS-ROLE)%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
        "duration_ms": "%DURATION%",
        "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS%",
    }
    return [
        {
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": _T + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": model.access_log_path,
                "log_format": {"json_format": fmt},
            },
        }
    ]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster(model: GatewayModel, name: str, host: str, port: int, grpc_service: str | None) -> dict[str, Any]:
    gw = model.settings
    c: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": _d(gw.connect_timeout_s),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }
    if c["type"] == "STRICT_DNS":
        # a DNS name (compose service, Kubernetes Service): every address it resolves to is an endpoint
        # (a headless Service spreads over pods), re-resolved every dns_refresh_rate_s
        c["dns_lookup_family"] = "V4_PREFERRED"
        c["dns_refresh_rate"] = _d(gw.dns_refresh_rate_s)
        c["respect_dns_ttl"] = True
    if grpc_service is not None:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
        c["common_lb_config"] = {"healthy_panic_threshold": {"value": 0}}
        c["health_checks"] = [
            {
                "timeout": _d(gw.health_check_timeout_s),
                "interval": _d(gw.health_check_interval_s),
                "no_traffic_interval": _d(gw.health_check_interval_s),
                "unhealthy_threshold": gw.unhealthy_threshold,
                "healthy_threshold": gw.healthy_threshold,
                "grpc_health_check": {"service_name": grpc_service},
            }
        ]
    return c


def _tls(model: GatewayModel) -> dict[str, Any] | None:
    if model.tls is None:
        return None
    cert, key = model.tls
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": _T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(cert.resolve())},
                        "private_key": {"filename": str(key.resolve())},
                    }
                ],
            },
        },
    }


def _upstream_identity(model: GatewayModel) -> dict[str, Any]:
    """With ``gateway.upstream_secret`` set, every forwarded request carries it (the services'
    GatewayAuthInterceptor requires it); the client-sent copy is dropped by the first filter."""
    secret = model.settings.upstream_secret
    if secret is None:
        return {}
    header = {"key": SECRET_HEADER, "value": secret.get_secret_value()}
    return {"request_headers_to_add": [{"header": header, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}


def bootstrap(model: GatewayModel) -> dict[str, Any]:
    """The Envoy bootstrap as plain data."""
    gw = model.settings
    hcm: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": "ingress",
        "codec_type": "AUTO",
        "generate_request_id": True,
        "preserve_external_request_id": True,
        "always_set_request_id_in_response": True,
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        # a cache key may hold "/": clients send it as %2F, which stays inside one path segment for
        # routing (every route is a whole-path regex with its own RBAC policy, so nothing can be
        # smuggled past a rule) and the transcoder decodes it into the field (url_unescape_spec)
        "path_with_escaped_slashes_action": "KEEP_UNCHANGED",
        "http_protocol_options": {"enable_trailers": True},
        "stream_idle_timeout": _d(gw.stream_idle_timeout_s),
        "drain_timeout": _d(DRAIN_TIME_S),
        "access_log": _access_log(model),
        "local_reply_config": _local_reply(model),
        "route_config": {
            "name": "aiots",
            "virtual_hosts": [
                {
                    "name": "aiots",
                    "domains": ["*"],
                    "routes": routes(model),
                    "typed_per_filter_config": {"envoy.filters.http.cors": _cors(model)},
                    **_upstream_identity(model),
                }
            ],
        },
        "http_filters": _http_filters(model),
    }
    chain: dict[str, Any] = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]
    }
    tls = _tls(model)
    if tls is not None:
        chain["transport_socket"] = tls
    clusters = [_cluster(model, u.cluster, u.host, u.port, u.service) for u in model.upstreams]
    clusters.append(_cluster(model, HEALTH_CLUSTER, "127.0.0.1", model.health_upstream_port, None))
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": gw.admin_port}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": gw.host, "port_value": gw.port}},
                    "filter_chains": [chain],
                }
            ],
            "clusters": clusters,
        },
    }


def to_yaml(model: GatewayModel, *, redact: bool = True) -> str:
    """The Envoy config as YAML text; ``redact`` replaces the upstream secret (for printing; the
    file Envoy reads is written with ``redact=False`` and mode 0600)."""
    header = "# Generated by aiots.gateway.render from the descriptor set and settings. Do not edit.\n"
    text = yaml.safe_dump(bootstrap(model), sort_keys=False, default_flow_style=False, width=120)
    secret = model.settings.upstream_secret
    if redact and secret is not None:
        text = text.replace(secret.get_secret_value(), "**********")
    return header + text
