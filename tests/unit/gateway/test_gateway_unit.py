"""Gateway model, tokens, OpenAPI and rendering (no servers; `envoy --mode validate` only)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from pydantic import ValidationError

from aiots.gateway import health, model, openapi, render, run, tokens
from aiots.services.common.settings import GatewaySettings, Settings


def test_every_rpc_has_a_policy_and_a_binding() -> None:
    methods = model.load_methods()
    services = {m.service for m in methods}
    # a service's proto may land before or after its gateway entries (other issues add services)
    assert services <= {f"aiots.v1.{s}" for s in model.SERVICE_SECTIONS}
    assert {m.key for m in methods} == {k for k in model.POLICIES if f"aiots.v1.{k.split('/')[0]}" in services}
    assert all(m.bindings for m in methods)
    streaming = {m.key for m in methods if m.server_streaming}
    assert {"SignalService/SubscribeSignals", "CacheService/WatchPrices", "IngestionService/Backfill"} <= streaming
    assert all(model.POLICIES[k].route_class is model.RouteClass.STREAMS for k in streaming)


def test_missing_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="no gateway policy"):
        model.load_methods(policies={})


def test_roles_are_cumulative() -> None:
    assert model.Role.VIEWER.and_above() == (model.Role.VIEWER, model.Role.TRADER, model.Role.ADMIN)
    assert model.Role.ADMIN.and_above() == (model.Role.ADMIN,)


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        ("/api/v1/signals/{id}", "/api/v1/signals/01HZ", True),
        ("/api/v1/signals/{id}", "/api/v1/signals/a/b", False),
        ("/api/v1/analytics/options:price", "/api/v1/analytics/options:price", True),
        ("/api/v1/analytics/options:price", "/api/v1/analytics/optionsXprice", False),
        ("/api/v1/cache/stock-prices/{symbol}", "/api/v1/cache/stock-prices/AAPL", True),
        ("/api/v1/files/{name=**}", "/api/v1/files/a/b/c", True),
    ],
)
def test_path_regex(template: str, path: str, matches: bool) -> None:
    assert bool(re.fullmatch(model.HttpBinding("GET", template).path_regex, path)) is matches


def test_literal_routes_come_before_templated_ones() -> None:
    m = model.build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    names = [r["name"] for r in render.routes(m)]
    assert names.index("rest:SignalService/SubscribeSignals:GET:/api/v1/signals/subscribe") < names.index(
        "rest:SignalService/GetSignal:GET:/api/v1/signals/{id}"
    )
    assert names[-1] == "not_found"


def test_stream_idle_timeout_must_exceed_heartbeat() -> None:
    s = Settings(gateway={"stream_idle_timeout_s": 10}, signals={"heartbeat_s": 15})
    with pytest.raises(ValueError, match="heartbeat"):
        model.build_model(s, descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))


def test_hs256_only_in_dev_profile() -> None:
    with pytest.raises(ValidationError, match="HS256"):
        GatewaySettings(jwt_algorithm="HS256", profile="prod")
    with pytest.raises(ValidationError, match="together"):
        GatewaySettings(tls_cert_file=Path("c.pem"))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS256"])
def test_tokens_verify_with_pyjwt_against_the_jwks(tmp_path: Path, alg: str) -> None:
    gw = GatewaySettings(dev_key_dir=tmp_path, jwt_algorithm=alg)
    jwks = json.loads(tokens.ensure_jwks(gw).read_text())
    tok = tokens.issue_token(gw, role="trader", subject="u1", ttl_s=3600)
    key = jwt.PyJWK(jwks["keys"][0])
    assert jwt.get_unverified_header(tok)["kid"] == jwks["keys"][0]["kid"]
    claims = jwt.decode(tok, key.key, algorithms=[alg], audience="aiots", issuer="aiots-dev")
    assert claims["role"] == "trader" and claims["sub"] == "u1"
    assert claims["exp"] - claims["iat"] == 3600
    # the key is stable across calls and private files are 0600
    assert tokens.load_or_create_key(tmp_path, alg).kid == jwks["keys"][0]["kid"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.glob("jwt-*"))


def test_dev_tokens_never_outlive_the_gateways_max_lifetime(tmp_path: Path) -> None:
    gw = GatewaySettings(dev_key_dir=tmp_path, jwt_max_lifetime_s=3600)
    tok = tokens.issue_token(gw, role="viewer", subject="u", ttl_s=3600, now=1_000_000)
    claims = jwt.decode(tok, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    with pytest.raises(ValueError, match="jwt_max_lifetime_s"):
        tokens.issue_token(gw, role="viewer", subject="u", ttl_s=3601)
    assert GatewaySettings().jwt_max_lifetime_s == 24 * 3600 and GatewaySettings().jwt_clock_skew_s == 5
    with pytest.raises(ValidationError):
        GatewaySettings(jwt_clock_skew_s=60)


def test_aiots_token_refuses_a_ttl_beyond_the_max_lifetime(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aiots.services.cli.token import cli

    env = {"AIOTS_GATEWAY__DEV_KEY_DIR": str(tmp_path)}
    r = CliRunner().invoke(cli, ["--role", "trader", "--ttl", "7d"], env=env)
    assert r.exit_code == 2 and "jwt_max_lifetime_s" in r.output
    r = CliRunner().invoke(cli, ["--role", "trader", "--ttl", "24h"], env=env)
    assert r.exit_code == 0, r.output
    claims = jwt.decode(r.output.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 24 * 3600 and claims["role"] == "trader"


def test_jwt_provider_requires_exp_caps_lifetime_and_reads_only_the_header() -> None:
    s = Settings(gateway={"jwt_max_lifetime_s": 7200})
    m = model.build_model(s, descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    jwt_filter = next(f for f in render._http_filters(m) if f["name"] == "envoy.filters.http.jwt_authn")
    provider = jwt_filter["typed_config"]["providers"][render.JWT_PROVIDER]
    assert provider["require_expiration"] is True
    assert provider["max_lifetime"] == "7200.000s" and provider["clock_skew_seconds"] == 5
    assert provider["from_headers"] == [{"name": "authorization", "value_prefix": "Bearer "}]
    assert provider["from_params"] == []


def test_expired_token_is_rejected_by_an_independent_verifier(tmp_path: Path) -> None:
    gw = GatewaySettings(dev_key_dir=tmp_path)
    jwks = json.loads(tokens.ensure_jwks(gw).read_text())
    tok = tokens.issue_token(gw, role="viewer", subject="u", ttl_s=60, now=1_000_000)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(tok, jwt.PyJWK(jwks["keys"][0]).key, algorithms=["RS256"], audience="aiots")


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_parse_ttl(text: str, seconds: float) -> None:
    assert tokens.parse_ttl(text) == seconds


@given(st.text(max_size=12))
def test_parse_ttl_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert tokens.parse_ttl(text) > 0


def test_openapi_is_valid_and_covers_every_binding() -> None:
    doc = openapi.build()
    validate(doc)
    for m in model.load_methods():
        for b in m.bindings:
            op = doc["paths"][b.openapi_path][b.verb.lower()]
            assert op["x-grpc-method"] == m.grpc_path
            assert op["x-aiots-min-role"] == m.policy.min_role.value
    ind = doc["paths"]["/api/v1/analytics/indicators/{symbol}"]["get"]
    params = {p["name"]: p for p in ind["parameters"]}
    assert params["symbol"]["in"] == "path" and params["period"]["schema"]["type"] == "integer"
    assert params["indicators"]["schema"]["type"] == "array" and params["start"]["schema"]["format"] == "date-time"
    schemas = doc["components"]["schemas"]
    assert schemas["aiots.v1.GetStatsResponse"]["properties"]["hits"]["type"] == "string"  # int64
    assert schemas["aiots.v1.SetAnalyticsRequest"]["properties"]["data"].get("type") is None  # any JSON
    assert "requestBody" in doc["paths"]["/api/v1/data/collection/start"]["post"]
    assert doc["paths"]["/health"]["get"]["security"] == []


def test_upstream_status_from_admin_json() -> None:
    def host(**flags: object) -> dict[str, object]:
        return {"health_status": {"eds_health_status": "HEALTHY", **flags}}

    data = {
        "cluster_statuses": [
            {"name": "cache", "host_statuses": [host()]},
            {"name": "analytics", "host_statuses": [host(failed_active_health_check=True)]},
            {"name": "signals", "host_statuses": [host(pending_active_hc=True), host()]},
        ]
    }
    got = health.upstream_status(data, ["cache", "analytics", "signals", "ingestion"])
    assert got == {"cache": "SERVING", "analytics": "NOT_SERVING", "signals": "SERVING", "ingestion": "UNKNOWN"}


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    c, k = tmp / "cert.pem", tmp / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return c, k


@pytest.mark.parametrize("variant", ["default", "tls", "es256"])
def test_generated_config_passes_envoy_validate(tmp_path: Path, variant: str) -> None:
    gw: dict[str, object] = {"dev_key_dir": str(tmp_path / "keys"), "base_id": 4242}
    if variant == "tls":
        c, k = _self_signed(tmp_path)
        gw.update(tls_cert_file=str(c), tls_key_file=str(k))
    if variant == "es256":
        gw["jwt_algorithm"] = "ES256"
    m, cfg = run.prepare(Settings(gateway=gw), tmp_path / "envoy")
    text = cfg.read_text()
    assert text.startswith("# Generated")
    assert ("DownstreamTlsContext" in text) is (variant == "tls")
    r = subprocess.run(
        [run.envoy_binary(), "--mode", "validate", "-c", str(cfg), "--base-id", "4242"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    boot = render.bootstrap(m)
    assert boot["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    ports = {
        n: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
            "port_value"
        ]
        for n, c in clusters.items()
        if n != render.HEALTH_CLUSTER
    }
    assert ports == {
        "cache": 8001,
        "ingestion": 8002,
        "analytics": 8003,
        "signals": 8004,
        "portfolio": 8006,
        "backtest": 8005,
    }
    assert all("grpc_health_check" in c["health_checks"][0] for n, c in clusters.items() if n != render.HEALTH_CLUSTER)


def test_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("static_resources: {listeners: [{name: x, nope: 1}]}\n")
    import asyncio

    with pytest.raises(run.GatewayError, match="rejected"):
        asyncio.run(run.validate(bad, 4243))


def _endpoints(boot: dict[str, object]) -> dict[str, tuple[str, str]]:
    """cluster -> (type, address) of the four service clusters."""
    out = {}
    for c in boot["static_resources"]["clusters"]:  # type: ignore[index]
        if c["name"] == render.HEALTH_CLUSTER:
            continue
        sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        out[c["name"]] = (c["type"], sa["address"])
    return out


def test_upstream_hosts_from_the_deploy_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    # the exact value docker-compose.yml and deploy/k8s set
    monkeypatch.setenv(
        "AIOTS_GATEWAY__UPSTREAM_HOSTS",
        '{"cache": "cache", "ingestion": "ingestion", "analytics": "analytics", "signals": "signals"}',
    )
    s = Settings()
    assert s.gateway.upstream_hosts == {n: n for n in ("cache", "ingestion", "analytics", "signals")}
    m = model.build_model(s, descriptor_file=Path("x.pb"), jwks_file=Path("j.json"))
    eps = _endpoints(render.bootstrap(m))
    # DNS names need a DNS cluster (STATIC only takes IP literals)
    assert eps == {
        **{n: ("STRICT_DNS", n) for n in ("cache", "ingestion", "analytics", "signals")},
        "portfolio": ("STATIC", "127.0.0.1"),  # not named by that deploy yet: the default host
        "backtest": ("STATIC", "127.0.0.1"),
    }


def test_upstream_hosts_default_and_partial_override() -> None:
    eps = _endpoints(render.bootstrap(model.build_model(Settings(), descriptor_file=Path("x.pb"), jwks_file=Path("j"))))
    assert eps == {
        n: ("STATIC", "127.0.0.1") for n in ("cache", "ingestion", "analytics", "signals", "portfolio", "backtest")
    }
    s = Settings(gateway={"upstream_host": "10.0.0.5", "upstream_hosts": {"signals": "::1"}})
    eps = _endpoints(render.bootstrap(model.build_model(s, descriptor_file=Path("x.pb"), jwks_file=Path("j"))))
    assert eps["signals"] == ("STATIC", "::1") and eps["cache"] == ("STATIC", "10.0.0.5")


def test_upstream_hosts_rejects_unknown_services_and_empty_hosts() -> None:
    with pytest.raises(ValidationError, match="unknown service 'gateway'"):
        GatewaySettings(upstream_hosts={"gateway": "x"})
    with pytest.raises(ValidationError, match="empty host"):
        GatewaySettings(upstream_hosts={"cache": " "})


def test_dns_upstreams_pass_envoy_validate(tmp_path: Path) -> None:
    gw = {"dev_key_dir": str(tmp_path / "keys"), "upstream_hosts": {"cache": "cache", "signals": "localhost"}}
    _, cfg = run.prepare(Settings(gateway=gw), tmp_path / "envoy")
    r = subprocess.run(
        [run.envoy_binary(), "--mode", "validate", "-c", str(cfg), "--base-id", "4244"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_health_summary_names_down_dependencies_and_degraded_ones() -> None:
    ups = {"cache": "NOT_SERVING", "ingestion": "SERVING", "analytics": "NOT_SERVING"}
    deps = {"cache": {"postgres": "SERVING", "redis": "NOT_SERVING"}, "ingestion": {"feed": "NOT_SERVING"}}
    code, body = health.summarize(ups, deps)
    assert code == 503
    assert body["not_serving"] == ["cache", "analytics"]
    assert body["message"] == "not ready: cache: redis down; analytics: not serving"
    assert body["degraded"] == ["ingestion: feed"]
    code, body = health.summarize({"cache": "SERVING"}, {"cache": {"redis": "SERVING"}})
    assert code == 200 and "message" not in body and body["degraded"] == []


def test_access_log_goes_to_a_file_beside_the_config_not_the_terminal(tmp_path: Path) -> None:
    s = Settings(gateway={"config_path": str(tmp_path / "gw" / "envoy.yaml"), "dev_key_dir": str(tmp_path / "k")})
    m, _ = run.prepare(s)
    assert m.access_log_path == str(tmp_path / "gw" / "access.log")
    logger = render._access_log(m)[0]["typed_config"]
    assert logger["path"] == str(tmp_path / "gw" / "access.log")
    assert logger["log_format"]["json_format"]["method"] == "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%"
    explicit = Settings(gateway={"access_log_path": "/dev/stdout"})
    assert model.build_model(explicit, descriptor_file=Path("x"), jwks_file=Path("j")).access_log_path == "/dev/stdout"
