"""The listener's filter chain in the documented order (gateway/render.py's docstring: identity
headers dropped first, router last), and the client-sent identity headers it drops."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

from aiots.gateway import render
from aiots.gateway.envoy_filters import _http_filters
from aiots.gateway.model import build_model
from aiots.services.common.gateway_auth import SECRET_HEADER
from aiots.services.common.settings import Settings

ORDER = [
    "header_mutation",
    "cors",
    "jwt_authn",
    "rbac",
    "local_ratelimit",
    "buffer",
    "lua",
    "grpc_json_transcoder",
    "router",
]


def test_filter_chain_order_matches_the_documented_layout() -> None:
    model = build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    names = [f["name"].removeprefix("envoy.filters.http.") for f in _http_filters(model)]
    assert names == ORDER
    doc = render.__doc__ or ""
    assert [n for n in ORDER if n != "router" and n in doc] == ORDER[:-1]  # the docstring names each one
    assert all(doc.index(a) < doc.index(b) for a, b in pairwise(ORDER[:-1]))


def test_client_sent_identity_headers_are_dropped() -> None:
    model = build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    first = json.dumps(_http_filters(model)[0])
    for header in ("x-aiots-subject", "x-aiots-role", SECRET_HEADER):
        assert header in first, header


def test_enum_table_lists_every_sendable_name_of_each_enum() -> None:
    """Oracle: the generated Python enums (protobuf's own reading of the protos)."""
    from aiots.gateway.envoy_filters import enum_error_lua, enum_values
    from aiots.v1 import common_pb2, signals_pb2

    table = enum_values()
    assert table["aiots.v1.OptionRight"] == ["OPTION_RIGHT_CALL", "OPTION_RIGHT_PUT"]
    statuses = [v.name for v in signals_pb2.SignalStatus.DESCRIPTOR.values if v.number != 0]
    assert table["aiots.v1.SignalStatus"] == statuses
    for name in common_pb2.DESCRIPTOR.enum_types_by_name:
        assert f"aiots.v1.{name}" in table
    assert not any(k.startswith("google.") for k in table)
    lua = enum_error_lua()
    assert '["aiots.v1.OptionRight"] = "OPTION_RIGHT_CALL, OPTION_RIGHT_PUT",' in lua


def test_verified_tokens_are_cached_with_every_other_check_kept() -> None:
    """The provider caches verified tokens (Envoy re-checks iss, aud and exp on a hit; the
    integration test checks expiry and a changed signature against a real Envoy) and keeps the
    token rules of docs/gateway.md."""
    from aiots.gateway.envoy_common import JWT_CACHE_SIZE, JWT_PROVIDER

    model = build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    jwt = next(f for f in _http_filters(model) if f["name"] == "envoy.filters.http.jwt_authn")
    provider = jwt["typed_config"]["providers"][JWT_PROVIDER]
    assert provider["jwt_cache_config"] == {"jwt_cache_size": JWT_CACHE_SIZE}
    assert provider["require_expiration"] is True and provider["audiences"] == [model.auth.audience]
    assert provider["from_params"] == [] and provider["clock_skew_seconds"] == model.auth.clock_skew_s
