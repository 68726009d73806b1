"""Render a :class:`GatewayModel` to an Envoy v3 bootstrap (a dict, then YAML via pyyaml).

Layout of the one listener (``settings.gateway.port``)::

    header_mutation (drop client-sent x-aiots-subject/x-aiots-role/x-aiots-gateway-secret)
    -> cors -> jwt_authn (claims -> x-aiots-subject/x-aiots-role, payload -> metadata)
    -> rbac (per route: the roles allowed for that RPC, from the JWT metadata)
    -> local_ratelimit (a bucket per route class per verified subject; per client address without one)
    -> buffer (413 above max_request_bytes) -> lua (a bad enum name's 400 lists the allowed values)
    -> grpc_json_transcoder -> router

Routes, per RPC: one per google.api.http binding (regex on the path + the verb) and one for
the plain gRPC path ``/aiots.v1.Service/Method`` (content-type application/grpc). Both carry the
same RBAC policy and rate-limit class, so the rules are identical over REST and gRPC. Then
``/health`` and ``/openapi.json`` (to the supervisor; no token, rate limited per client address), the
dashboard's ``/`` and ``/assets/*`` (static files from the supervisor, the same way) and a final
catch-all answering 404 JSON (after authentication, so unknown paths reveal nothing).

Clusters: one per service with one endpoint per replica (``gateway.upstream_endpoints``; else the
service's one host and port), round robin over the healthy ones. A replica leaves the rotation when
its gRPC health check fails (``unhealthy_threshold`` times, every ``health_check_interval_s``) or,
sooner, when live traffic to it fails at the transport level ``outlier_consecutive_failures`` times
in a row (outlier detection). The call that met the failure is retried on another replica where that
is safe (:func:`~aiots.gateway.envoy_common.retry_policy`). A stream cut by a replica's death is not
retried (part of it was delivered): the client resumes it with ``since``.

The routes are built in :mod:`~aiots.gateway.envoy_routes`, the filter chain, local replies and access
log in :mod:`~aiots.gateway.envoy_filters`, the shared names in :mod:`~aiots.gateway.envoy_common`;
this module assembles the bootstrap (clusters, listener) and re-exports them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import yaml

from aiots.gateway.envoy_common import *  # noqa: F403  re-exported: the shared names
from aiots.gateway.envoy_common import (
    _T,
    DRAIN_TIME_S,
    HCM,
    HEALTH_CLUSTER,
    _d,
)
from aiots.gateway.envoy_filters import _access_log, _cors, _http_filters, _local_reply
from aiots.gateway.envoy_routes import routes
from aiots.gateway.model import Endpoint, GatewayModel
from aiots.services.common.gateway_auth import SECRET_HEADER
from aiots.services.common.settings import GatewaySettings


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _h2_options(gw: GatewaySettings) -> dict[str, Any]:
    """Upstream HTTP/2 options: ``max_concurrent_streams`` caps the streams per connection
    (Envoy's connection pool opens another connection past it)."""
    return {"max_concurrent_streams": gw.upstream_max_streams} if gw.upstream_max_streams else {}


def _outlier_detection(model: GatewayModel) -> dict[str, Any]:
    """Passive ejection of a replica that fails at the transport level (connect failure, reset,
    timeout: a dead or hung process) ``outlier_consecutive_failures`` times in a row, for
    ``outlier_ejection_s`` (longer on repeats; a passing active health check ends it sooner). A
    service's own error statuses (a 5xx-mapped gRPC code) never eject it: they say nothing about
    the replica, and the other replica would answer the same."""
    gw = model.settings
    return {
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": gw.outlier_consecutive_failures,
        "enforcing_consecutive_local_origin_failure": 100,
        "enforcing_consecutive_5xx": 0,
        "enforcing_consecutive_gateway_failure": 0,
        "enforcing_success_rate": 0,
        "enforcing_local_origin_success_rate": 0,
        "interval": _d(gw.health_check_interval_s),
        "base_ejection_time": _d(gw.outlier_ejection_s),
        # every replica may go: with healthy_panic_threshold 0 a cluster with none left answers 503
        # at once rather than sending traffic to a host known to be down
        "max_ejection_percent": 100,
    }


def _cluster(model: GatewayModel, name: str, endpoints: Sequence[Endpoint], grpc_service: str | None) -> dict[str, Any]:
    gw = model.settings
    c: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if all(_is_ip(e.host) for e in endpoints) else "STRICT_DNS",
        "connect_timeout": _d(gw.connect_timeout_s),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": e.host, "port_value": e.port}}}}
                        for e in endpoints
                    ]
                }
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
                "explicit_http_config": {"http2_protocol_options": _h2_options(gw)},
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
        c["outlier_detection"] = _outlier_detection(model)
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
    clusters = [_cluster(model, u.cluster, u.endpoints, u.service) for u in model.upstreams]
    clusters.append(_cluster(model, HEALTH_CLUSTER, [Endpoint("127.0.0.1", model.health_upstream_port)], None))
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
