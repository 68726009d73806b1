"""OpenAPI 3.1 from the descriptor set and the google.api.http rules.

Follows the proto3 JSON mapping exactly as the gateway prints it (``preserve_proto_field_names``:
snake_case names; ``always_print_primitive_fields``): int64 as strings, doubles as numbers or the
strings "NaN"/"Infinity"/"-Infinity", enums by name, Timestamp as RFC 3339, Struct/Value as free
JSON. GET parameters not bound in the path are query parameters (nested messages as dotted
names, e.g. ``page.page_size``; repeated fields repeat the parameter). Streaming RPCs answer
newline-delimited JSON: one object of the response schema per line.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from aiots.gateway.model import Method, load_descriptor_set, load_methods

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
MAX_QUERY_DEPTH = 3
_NON_FINITE = ["NaN", "Infinity", "-Infinity"]
_REF = "#/components/schemas/"

_FD = FieldDescriptor
_INT32 = {_FD.TYPE_INT32, _FD.TYPE_SINT32, _FD.TYPE_SFIXED32, _FD.TYPE_UINT32, _FD.TYPE_FIXED32}
_INT64 = {_FD.TYPE_INT64, _FD.TYPE_SINT64, _FD.TYPE_SFIXED64, _FD.TYPE_UINT64, _FD.TYPE_FIXED64}

_WKT: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.Value": {"description": "any JSON value"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": ["number", "string", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "string", "null"]},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}


def _msg(f: FieldDescriptor) -> Descriptor:
    d = f.message_type
    assert d is not None, f.full_name
    return d


def _enum(f: FieldDescriptor) -> EnumDescriptor:
    e = f.enum_type
    assert e is not None, f.full_name
    return e


def _comments(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comments by full name of message, field, enum and enum value."""
    out: dict[str, str] = {}
    for fd in fds.file:
        by_path = {tuple(loc.path): loc.leading_comments.strip() for loc in fd.source_code_info.location}
        prefix = f"{fd.package}." if fd.package else ""

        def walk_enum(
            e: descriptor_pb2.EnumDescriptorProto,
            path: tuple[int, ...],
            scope: str,
            by_path: dict[tuple[int, ...], str] = by_path,
        ) -> None:
            full = scope + e.name
            out[full] = by_path.get(path, "")
            for vi, v in enumerate(e.value):
                out[f"{full}.{v.name}"] = by_path.get((*path, 2, vi), "")

        def walk(
            m: descriptor_pb2.DescriptorProto,
            path: tuple[int, ...],
            scope: str,
            by_path: dict[tuple[int, ...], str] = by_path,
        ) -> None:
            full = scope + m.name
            out[full] = by_path.get(path, "")
            for fi, f in enumerate(m.field):
                out[f"{full}.{f.name}"] = by_path.get((*path, 2, fi), "")
            for ni, n in enumerate(m.nested_type):
                walk(n, (*path, 3, ni), full + ".")
            for ei, e in enumerate(m.enum_type):
                walk_enum(e, (*path, 4, ei), full + ".")

        for mi, m in enumerate(fd.message_type):
            walk(m, (4, mi), prefix)
        for ei, e in enumerate(fd.enum_type):
            walk_enum(e, (5, ei), prefix)
    return out


class _Builder:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.pool = DescriptorPool()
        for f in fds.file:
            self.pool.Add(f)
        self.comments = _comments(fds)
        self.schemas: dict[str, dict[str, Any]] = {}

    def _describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        text = self.comments.get(full_name, "")
        if text:
            schema = {**schema, "description": text}
        return schema

    def enum(self, e: EnumDescriptor) -> dict[str, Any]:
        if e.full_name not in self.schemas:
            self.schemas[e.full_name] = self._describe(
                {"type": "string", "enum": [v.name for v in e.values]}, e.full_name
            )
        return {"$ref": _REF + e.full_name}

    def scalar(self, f: FieldDescriptor) -> dict[str, Any]:
        t = f.type
        if t in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
            return {"anyOf": [{"type": "number"}, {"type": "string", "enum": _NON_FINITE}]}
        if t in _INT32:
            return {"type": "integer", "format": "int32"}
        if t in _INT64:
            return {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
        if t == _FD.TYPE_BOOL:
            return {"type": "boolean"}
        if t == _FD.TYPE_STRING:
            return {"type": "string"}
        if t == _FD.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if t == _FD.TYPE_ENUM:
            return self.enum(_enum(f))
        return self.message(_msg(f))

    def field(self, f: FieldDescriptor) -> dict[str, Any]:
        if f.type == _FD.TYPE_MESSAGE and _msg(f).GetOptions().map_entry:
            value = self.field(_msg(f).fields_by_name["value"])
            return {"type": "object", "additionalProperties": value}
        one = self.scalar(f)
        if f.is_repeated:
            return {"type": "array", "items": one}
        return one

    def message(self, d: Descriptor) -> dict[str, Any]:
        if d.full_name in _WKT:
            return dict(_WKT[d.full_name])
        if d.full_name not in self.schemas:
            self.schemas[d.full_name] = {}  # placeholder: breaks recursion
            props = {f.name: self._describe(self.field(f), f"{d.full_name}.{f.name}") for f in d.fields}
            schema: dict[str, Any] = {"type": "object", "properties": props}
            self.schemas[d.full_name] = self._describe(schema, d.full_name)
        return {"$ref": _REF + d.full_name}

    def query_params(self, d: Descriptor, bound: set[str], prefix: str = "", depth: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in d.fields:
            name = prefix + f.name
            if name in bound:
                continue
            is_map = f.type == _FD.TYPE_MESSAGE and _msg(f).GetOptions().map_entry
            if f.type == _FD.TYPE_MESSAGE and _msg(f).full_name not in _WKT:
                if is_map or f.is_repeated or depth >= MAX_QUERY_DEPTH:
                    continue  # not expressible as query parameters
                out.extend(self.query_params(_msg(f), bound, name + ".", depth + 1))
                continue
            schema = self.field(f)
            p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
            desc = self.comments.get(f"{d.full_name}.{f.name}", "")
            if desc:
                p["description"] = desc
            if f.is_repeated:
                p["style"] = "form"
                p["explode"] = True
            out.append(p)
        return out


def _operation(b: _Builder, m: Method, verb: str, template_params: tuple[str, ...], body: str) -> dict[str, Any]:
    req = b.pool.FindMessageTypeByName(m.input_type)
    resp = b.pool.FindMessageTypeByName(m.output_type)
    params: list[dict[str, Any]] = []
    for name in template_params:
        f = req
        field_desc = None
        for part in name.split("."):
            field_desc = f.fields_by_name[part]
            if field_desc.type == _FD.TYPE_MESSAGE:
                f = _msg(field_desc)
        assert field_desc is not None
        p = {"name": name, "in": "path", "required": True, "schema": b.field(field_desc)}
        desc = b.comments.get(field_desc.full_name, "")
        if desc:
            p["description"] = desc
        params.append(p)
    op: dict[str, Any] = {
        "operationId": f"{m.short_service}_{m.name}",
        "tags": [m.short_service],
        "summary": m.comment.split("\n", 1)[0] if m.comment else m.name,
        "description": m.comment,
        "x-aiots-min-role": m.policy.min_role.value,
        "x-aiots-rate-class": m.policy.route_class.value,
        "x-grpc-method": m.grpc_path,
    }
    if body == "*":
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": b.message(req)}},
        }
    elif body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": b.field(req.fields_by_name[body])}},
        }
        params.extend(b.query_params(req, {*template_params, body}))
    else:
        params.extend(b.query_params(req, set(template_params)))
    if params:
        op["parameters"] = params
    ok_desc = (
        "Server stream: newline-delimited JSON, one object of this schema per line, sent as they happen."
        if m.server_streaming
        else "OK"
    )
    op["responses"] = {
        "200": {"description": ok_desc, "content": {"application/json": {"schema": b.message(resp)}}},
        "default": {
            "description": "Error (gRPC status mapped to HTTP; google.rpc.Status as JSON)",
            "content": {"application/json": {"schema": {"$ref": _REF + "google.rpc.Status"}}},
        },
    }
    return op


def build(
    methods: tuple[Method, ...] | None = None, fds: descriptor_pb2.FileDescriptorSet | None = None
) -> dict[str, Any]:
    """The OpenAPI document as plain data."""
    fds = fds or load_descriptor_set()
    methods = load_methods(fds) if methods is None else methods
    b = _Builder(fds)
    b.message(b.pool.FindMessageTypeByName("google.rpc.Status"))
    paths: dict[str, dict[str, Any]] = {}
    for m in methods:
        for binding in m.bindings:
            item = paths.setdefault(binding.openapi_path, {})
            item[binding.verb.lower()] = _operation(b, m, binding.verb, binding.path_params, binding.body)
    plain_ok = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    paths["/health"] = {
        "get": {
            "operationId": "Gateway_Health",
            "tags": ["Gateway"],
            "summary": "Health of every upstream (200 when all are SERVING, else 503 naming the others)",
            "security": [],
            "responses": {
                "200": plain_ok,
                "503": {"description": "Some upstreams not serving", "content": plain_ok["content"]},
            },
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "Gateway_OpenAPI",
            "tags": ["Gateway"],
            "summary": "This document",
            "security": [],
            "responses": {"200": plain_ok},
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "AI-OTS API",
            "version": API_VERSION,
            "description": (
                "REST/JSON over the aiots.v1 gRPC services, transcoded by Envoy. JSON field names are "
                "the proto field names (snake_case); int64 values are strings; enums are names; times "
                "are RFC 3339 UTC. Send `Authorization: Bearer <JWT>`; roles: viewer < trader < admin."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": s} for s in sorted({m.short_service for m in methods})] + [{"name": "Gateway"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": dict(sorted(b.schemas.items())),
        },
    }
