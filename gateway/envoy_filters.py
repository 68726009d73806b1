"""The Envoy HTTP filter chain of the listener (header mutation, CORS, JWT, RBAC, local rate limit,
buffer, enum-error Lua, gRPC-JSON transcoder, router), its local replies (JSON errors) and the
access log."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from aiots.gateway.envoy_common import (
    _T,
    ANONYMOUS_KEY,
    BAD_PATH_MESSAGE,
    BY_ADDRESS,
    JWT_CACHE_SIZE,
    JWT_METADATA_KEY,
    JWT_PROVIDER,
    JWT_REQUIREMENT,
    LOCAL_REPLY_CODES,
    LOCAL_REPLY_DEFAULT_CODE,
    LUA_FILTER,
    METADATA_NS,
    MIN_ROLE_KEY,
    REMOTE_ADDRESS_KEY,
    REST_MARKER,
    ROLE_ORDER,
    ROUTE_CLASS_KEY,
    SUBJECT_KEY,
    TOKEN_HINT,
    UNLIMITED_TOKENS,
    _bucket,
    _d,
    _metadata_action,
)
from aiots.gateway.model import GatewayModel, RouteClass, load_descriptor_set
from aiots.services.common.gateway_auth import SECRET_HEADER


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


#: Lua pattern of the transcoder's message for an unknown enum name (JSON-escaped in the body)
_ENUM_TYPE_PATTERN = "for type type%.googleapis%.com/([%w_%.]+)"

_ENUM_LUA = """
local allowed = {
%(table)s
}
-- The transcoder refuses an unknown enum name with 400 "<field>: invalid value \\"X\\" for type
-- type.googleapis.com/<Enum>" (made JSON by the local reply mapper): name the allowed values.
function envoy_on_response(h)
  if h:headers():get(":status") ~= "400" then return end
  local body = h:body(true)
  local text = body:getBytes(0, body:length())
  local names = nil
  local out = text:gsub("%(pattern)s", function(t)
    names = allowed[t]
    if names == nil then return nil end
    return "for enum " .. t .. "; allowed values: " .. names
  end)
  if names == nil then return end
  local field = out:match('"message":"([^"]-): invalid value ')
  if field ~= nil then
    out = out:gsub('"details":%%[%%]', '"details":[{"@type":"type.googleapis.com/google.rpc.BadRequest",'
      .. '"field_violations":[{"field":"' .. field .. '","description":"allowed values: ' .. names .. '"}]}]', 1)
  end
  body:setBytes(out)
end
"""


def enum_values() -> dict[str, list[str]]:
    """Full enum name -> the names a client may send (every value but a zero ``*_UNSPECIFIED``),
    for each enum of the API's descriptor set (the one Envoy's transcoder gets)."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, enums: Any, messages: Any) -> None:
        for e in enums:
            out[f"{prefix}.{e.name}"] = [
                v.name for v in e.value if not (v.number == 0 and v.name.endswith("_UNSPECIFIED"))
            ]
        for m in messages:
            walk(f"{prefix}.{m.name}", m.enum_type, m.nested_type)

    for fd in load_descriptor_set().file:
        if not fd.package.startswith("google."):
            walk(fd.package, fd.enum_type, fd.message_type)
    return out


def requests_with_enums() -> frozenset[str]:
    """Full names of the API's messages holding a field of an API enum (one of :func:`enum_values`)
    at any depth, through nested messages and map values: the only requests whose transcoding can
    fail on an unknown enum name, so the only REST routes that run the enum-error Lua (the others
    skip it: a Lua call per response is ~3% of Envoy's instructions per REST call)."""
    enums = enum_values().keys()
    fields: dict[str, list[Any]] = {}

    def walk(prefix: str, messages: Any) -> None:
        for m in messages:
            fields[f"{prefix}.{m.name}"] = list(m.field)
            walk(f"{prefix}.{m.name}", m.nested_type)

    for fd in load_descriptor_set().file:
        walk(fd.package, fd.message_type)
    out: set[str] = set()
    for root in fields:
        seen, todo = {root}, [root]
        while todo:
            for f in fields.get(todo.pop(), []):
                t = f.type_name.lstrip(".")
                if f.type == FieldDescriptorProto.TYPE_ENUM and t in enums:
                    out.add(root)
                    todo.clear()
                    break
                if f.type == FieldDescriptorProto.TYPE_MESSAGE and t not in seen:
                    seen.add(t)
                    todo.append(t)
    return frozenset(out)


def enum_error_lua() -> str:
    """The Lua of :func:`_enum_errors` (enum names are ``[A-Za-z0-9_.]``: safe in Lua and JSON)."""
    rows = [f'  ["{name}"] = "{", ".join(vals)}",' for name, vals in sorted(enum_values().items())]
    return _ENUM_LUA % {"table": "\n".join(rows), "pattern": _ENUM_TYPE_PATTERN}


def _enum_errors() -> dict[str, Any]:
    """A 400 for an unknown enum name names the field, the value and the allowed values.

    The transcoder's own message names the field and the value but only the enum's type URL, and
    no local-reply mapper can see a body, so a Lua filter (before the transcoder: its local reply
    passes back through here) rewrites the JSON body of a 400 that carries that message, from a
    table of every enum generated with the config."""
    return {
        "name": LUA_FILTER,
        "typed_config": {
            "@type": _T + "envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": enum_error_lua()},
        },
    }


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
                        # a token seen before (byte for byte) skips the parse and signature check;
                        # iss, aud, exp (with the skew) are checked on every request all the same
                        "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE},
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
        _enum_errors(),
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
