"""The Envoy routes: per RPC one route per google.api.http binding and one for the plain gRPC path,
each with its RBAC policy and rate-limit class; then /health, /openapi.json, the dashboard, 404."""

from __future__ import annotations

from typing import Any

from aiots.gateway.envoy_common import (
    _T,
    GRPC_RESPONSE_HEADERS,
    HEALTH_CLUSTER,
    JWT_METADATA_KEY,
    JWT_REQUIREMENT,
    LUA_FILTER,
    METADATA_NS,
    MIN_ROLE_KEY,
    NOT_FOUND_MESSAGE,
    REST_MARKER,
    ROUTE_CLASS_KEY,
    _d,
    _disabled,
    retry_policy,
)
from aiots.gateway.envoy_filters import requests_with_enums
from aiots.gateway.model import GatewayModel, HttpBinding, Method, RouteClass


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


def _route_action(model: GatewayModel, method: Method) -> dict[str, Any]:
    gw = model.settings
    action: dict[str, Any] = {"cluster": model.upstream_of(method).cluster}
    if method.server_streaming:
        action["timeout"] = "0s"
        action["idle_timeout"] = _d(gw.stream_idle_timeout_s)
    else:
        action["timeout"] = _d(gw.unary_timeout_s)
    return action | retry_policy(model, method)


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
                    LUA_FILTER: _disabled(),
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
                LUA_FILTER: _disabled(),
                **_rest_mutations(strip_grpc=False),
            },
        }
    )
    # the enum-error Lua runs where a request can name an unknown enum value: REST routes whose
    # request message holds an API enum. Nowhere else can the transcoder give that 400.
    with_enums = requests_with_enums()
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
                "typed_per_filter_config": {
                    **_method_filters(model, m),
                    **_rest_mutations(strip_grpc=True),
                    **({} if m.input_type in with_enums else {LUA_FILTER: _disabled()}),
                },
            }
        )
    for m in model.methods:
        out.append(
            {
                "name": f"grpc:{m.key}",
                "match": {"path": m.grpc_path, "grpc": {}},
                "route": _route_action(model, m),
                "metadata": _route_metadata(m),
                "typed_per_filter_config": {**_method_filters(model, m), LUA_FILTER: _disabled()},
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
                LUA_FILTER: _disabled(),
                **_rest_mutations(strip_grpc=False),
            },
        }
    )
    return out
