"""The three deployments agree: docker-compose.yml, deploy/k8s (the rendered production overlay) and
deploy/aws (the Terraform module's locals). Same services, ports, health checks, environment
variable names, secrets and gateway upstreams; ports and names agree with the Settings model.

Each deployment is read into one normal form, per container: the ports it exposes, what its health
check probes, the names of its plain settings and the names of its secrets (whether they arrive as
environment values, as *_FILE files or from Secrets Manager). The differences that are on purpose
are listed in INTENDED with their reason, and a test fails when one of them is no longer needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiots.services.common.settings import GatewaySettings, Settings

from .test_aws_terraform import MODULE, load_dir, locals_of, unquote
from .test_deploy import render, setting_exists

ROOT = Path(__file__).resolve().parents[3]
HEALTHCHECK = ["CMD", "python", "/app/healthcheck.py"]  # deploy/healthcheck.py, in the image
SECRETS = {"DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY"}
JWKS = "JWKS"  # the identity provider's public keys the gateway verifies tokens with
# Services being added this round whose settings section may not be in the tree yet: their ports
# (issue texts); once Settings has the section, Settings is the oracle instead.
PLANNED_PORTS = {"backtest": (8005, 9105), "portfolio": (8006, 9106)}
# (deployment, container) -> (env names only there, env names missing there, secrets missing there, why)
INTENDED: dict[tuple[str, str], tuple[set[str], set[str], set[str], str]] = {
    ("compose", "gateway"): (
        {"AIOTS_GATEWAY__DEV_KEY_DIR"},
        {"AIOTS_GATEWAY__JWKS_FILE"},
        {JWKS},
        "compose is the local stack: profile dev, the gateway mints its own key (no identity provider)",
    ),
}


@dataclass(frozen=True)
class Container:
    ports: frozenset[int]
    health: tuple[Any, ...]  # ("grpc", port) or ("http", port, path)
    env: frozenset[str]
    secrets: frozenset[str]


Deployment = dict[str, Container]


def service_sections() -> dict[str, tuple[int, int]]:
    """Settings sections that are services -> (gRPC port, metrics port)."""
    s = Settings()
    out = {}
    for name in type(s).model_fields:
        sec = getattr(s, name)
        if hasattr(sec, "port") and hasattr(sec, "metrics_port"):
            out[name] = (sec.port, sec.metrics_port)
    return out


def expected_ports(service: str) -> tuple[int, int]:
    return service_sections().get(service) or PLANNED_PORTS[service]


def probed(service: str, env: dict[str, Any]) -> tuple[Any, ...]:
    """What deploy/healthcheck.py probes in a container with environment ``env``."""
    if service == "gateway":
        return ("http", int(env.get("AIOTS_GATEWAY__PORT") or Settings().gateway.port), "/health")
    port = env.get(f"AIOTS_{service.upper()}__PORT") or expected_ports(service)[0]
    return ("grpc", int(port))


def split_env(names: set[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(plain setting names, secret names); FOO_FILE of a secret FOO counts as the secret FOO."""
    secrets = {n for n in names if n in SECRETS} | {n[: -len("_FILE")] for n in names if n[: -len("_FILE")] in SECRETS}
    plain = {n for n in names if n not in SECRETS and n[: -len("_FILE")] not in SECRETS}
    return frozenset(plain), frozenset(secrets)


# ----------------------------------------------------------------------------- the three readers


def from_compose(doc: dict[str, Any]) -> Deployment:
    out: Deployment = {}
    for name, svc in doc["services"].items():
        if svc.get("build", {}).get("dockerfile") != "deploy/Dockerfile":
            continue  # TimescaleDB, Redis, Prometheus, Grafana
        env = dict(svc.get("environment", {}))
        assert svc["healthcheck"]["test"] == HEALTHCHECK, name
        ports = {int(p) for p in svc.get("expose", [])} | {int(p.split(":")[-1]) for p in svc.get("ports", [])}
        plain, secrets = split_env(set(env))
        out[env["AIOTS_SERVICE"]] = Container(frozenset(ports), probed(env["AIOTS_SERVICE"], env), plain, secrets)
    return out


def from_k8s(docs: list[dict[str, Any]]) -> Deployment:
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "aiots-config")
    out: Deployment = {}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for ref in c.get("envFrom", []):
            assert ref == {"configMapRef": {"name": "aiots-config"}}, ref
            env.update(config["data"])
        probe = c["readinessProbe"]
        assert {k: v for k, v in c["livenessProbe"].items() if k in ("grpc", "httpGet")} == {
            k: v for k, v in probe.items() if k in ("grpc", "httpGet")
        }
        health = ("grpc", probe["grpc"]["port"]) if "grpc" in probe else (
            "http", probe["httpGet"]["port"], probe["httpGet"]["path"])  # fmt: skip
        plain, secrets = split_env(set(env))
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        for v in pod.get("volumes", []):
            jwks_file = env.get("AIOTS_GATEWAY__JWKS_FILE") or ""
            if "secret" in v and v["name"] in mounts and jwks_file.startswith(mounts[v["name"]] + "/"):
                secrets |= {JWKS}
        ports = frozenset(p["containerPort"] for p in c["ports"])
        out[d["metadata"]["name"]] = Container(ports, health, plain, secrets)
    return out


def from_terraform(loc: dict[str, Any]) -> Deployment:
    def names(block: dict[str, Any]) -> set[str]:
        return set(block)

    def strs(v: Any) -> set[str]:
        return {unquote(x) for x in v}

    assert [unquote(x) for x in loc["healthcheck_command"]] == HEALTHCHECK
    common = names(loc["common_environment"])
    out: Deployment = {}
    for name, s in loc["services"].items():
        env = {k: unquote(v) for k, v in loc["service_environment"][name].items()}
        plain, secrets = split_env(common | set(env) | strs(loc["service_secrets"][name]))
        out[name] = Container(frozenset({s["port"], s["metrics_port"]}), probed(name, env), plain, secrets)
    gw_env = names(loc["gateway_environment"])
    gw_secrets = {JWKS if s == "AIOTS_JWKS_JSON" else s for s in strs(loc["gateway_secrets"])}
    plain, secrets = split_env(common | gw_env)
    out["gateway"] = Container(
        frozenset({loc["gateway"]["port"]}),
        ("http", loc["gateway"]["port"], unquote(loc["gateway"]["health_path"])),
        plain,
        secrets | gw_secrets,
    )
    return out


@pytest.fixture(scope="module")
def compose_doc() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict[str, Any]]:
    return render(ROOT / "deploy/k8s/overlays/production")


@pytest.fixture(scope="module")
def tf_locals() -> dict[str, Any]:
    return locals_of(load_dir(MODULE))


@pytest.fixture(scope="module")
def deployments(
    compose_doc: dict[str, Any], k8s_docs: list[dict[str, Any]], tf_locals: dict[str, Any]
) -> dict[str, Deployment]:
    return {"compose": from_compose(compose_doc), "k8s": from_k8s(k8s_docs), "terraform": from_terraform(tf_locals)}


# ----------------------------------------------------------------------------- comparison


def drift(deps: dict[str, Deployment], intended: dict[Any, Any] = INTENDED) -> list[str]:
    """Every difference between the deployments (after the intended ones), one line each."""
    problems: list[str] = []
    names = {k: set(v) for k, v in deps.items()}
    union = set().union(*names.values())
    for dep, have in names.items():
        for missing in sorted(union - have):
            problems.append(f"{dep}: no container for {missing}")
    for svc in sorted(set.intersection(*names.values())):
        views = {}
        for dep, d in deps.items():
            c = d[svc]
            only, missing_env, missing_secrets, _why = intended.get((dep, svc), (set(), set(), set(), ""))
            views[dep] = (c.ports, c.health, (c.env - only) | missing_env, c.secrets | missing_secrets)
        for i, what in enumerate(("ports", "health check", "environment variable names", "secrets")):
            values: dict[str, Any] = {dep: v[i] for dep, v in views.items()}
            if len({repr(sorted(v)) if isinstance(v, frozenset) else repr(v) for v in values.values()}) == 1:
                continue
            sets = {dep: v for dep, v in values.items() if isinstance(v, frozenset)}
            if len(sets) == len(values):  # show only what is not everywhere
                everywhere = frozenset.intersection(*sets.values())
                values = {dep: f"+{sorted(v - everywhere)}" for dep, v in sets.items()}
            problems.append(f"{svc}: {what} differ: {values}")
    return problems


def test_deployments_agree(deployments: dict[str, Deployment]) -> None:
    problems = drift(deployments)
    assert not problems, "\n".join(problems)


def test_drift_is_detected(deployments: dict[str, Deployment]) -> None:
    """The comparison itself: a variable, a secret, a port or a service removed anywhere shows."""
    import dataclasses

    k8s = dict(deployments["k8s"])
    k8s["signals"] = dataclasses.replace(k8s["signals"], env=k8s["signals"].env - {"AIOTS_TELEMETRY__LOG_LEVEL"})
    k8s["cache"] = dataclasses.replace(k8s["cache"], ports=k8s["cache"].ports | {1234})
    tf = dict(deployments["terraform"])
    tf["ingestion"] = dataclasses.replace(tf["ingestion"], secrets=tf["ingestion"].secrets - {"DATABENTO_API_KEY"})
    del tf["analytics"]
    problems = drift({**deployments, "k8s": k8s, "terraform": tf})
    assert [p.split(":")[0] for p in problems] == ["terraform", "cache", "ingestion", "signals"], problems
    assert "environment variable names differ" in problems[-1] and "secrets differ" in problems[2]


def test_intended_differences_are_still_needed(deployments: dict[str, Deployment]) -> None:
    for (dep, svc), (only, missing_env, missing_secrets, why) in INTENDED.items():
        c = deployments[dep][svc]
        assert why and only <= c.env and not (missing_env & c.env) and not (missing_secrets & c.secrets), (dep, svc)


def test_every_service_is_deployed_on_its_settings_ports(deployments: dict[str, Deployment]) -> None:
    sections = service_sections()
    for dep, d in deployments.items():
        assert set(sections) <= set(d) - {"gateway"}, f"{dep}: {sorted(set(sections) - set(d))} not deployed"
        assert set(d) - {"gateway"} <= set(sections) | set(PLANNED_PORTS), dep
        for svc, c in d.items():
            if svc == "gateway":
                assert c.ports == {Settings().gateway.port} and c.health == ("http", Settings().gateway.port, "/health")
            else:
                port, metrics = expected_ports(svc)
                assert c.ports == {port, metrics} and c.health == ("grpc", port), (dep, svc)


def test_variable_names_are_settings(deployments: dict[str, Deployment]) -> None:
    sections = set(service_sections())
    for dep, d in deployments.items():
        for svc, c in d.items():
            for name in c.env - {"AIOTS_SERVICE"}:
                planned = name.removeprefix("AIOTS_").split("__")[0].lower()
                if planned in PLANNED_PORTS and planned not in sections:
                    continue  # its settings section is still being added
                assert setting_exists(name), f"{dep} {svc}: {name} is read by no setting"


def test_secrets_least_privilege(deployments: dict[str, Deployment]) -> None:
    for dep, d in deployments.items():
        for svc, c in d.items():
            if svc == "gateway":
                assert c.secrets <= {JWKS}, (dep, c.secrets)  # the gateway never sees a data store
            else:
                assert c.secrets == {"DATABASE_URL", "REDIS_URL"} | (
                    {"DATABENTO_API_KEY"} if svc == "ingestion" else set()
                )


def _upstreams(env_json: str) -> set[str]:
    return set(json.loads(env_json))


def test_gateway_routes_to_the_same_upstreams(
    compose_doc: dict[str, Any], k8s_docs: list[dict[str, Any]], tf_locals: dict[str, Any]
) -> None:
    compose = _upstreams(compose_doc["services"]["gateway"]["environment"]["AIOTS_GATEWAY__UPSTREAM_HOSTS"])
    gw = next(d for d in k8s_docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway")
    env = {e["name"]: e.get("value") for e in gw["spec"]["template"]["spec"]["containers"][0]["env"]}
    k8s = _upstreams(env["AIOTS_GATEWAY__UPSTREAM_HOSTS"])
    tf = {unquote(x) for x in tf_locals["gateway_upstreams"]}
    want = set(GatewaySettings.UPSTREAMS)
    assert compose == k8s == tf == want, (
        f"gateway upstreams: compose {sorted(compose)}, k8s {sorted(k8s)}, terraform {sorted(tf)}, "
        f"GatewaySettings.UPSTREAMS {sorted(want)}: update AIOTS_GATEWAY__UPSTREAM_HOSTS and depends_on in "
        "docker-compose.yml, GATEWAY_UPSTREAMS in deploy/k8s/generate.py (then run it) and gateway_upstreams "
        "in deploy/aws/modules/aiots/locals.tf"
    )
    # the gateway's compose start waits for exactly the services it routes to
    assert set(compose_doc["services"]["gateway"]["depends_on"]) == set(GatewaySettings.UPSTREAMS)


def test_k8s_base_is_what_generate_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """deploy/k8s/base is generated: a hand edit (or a generate.py change not rerun) shows here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_generate", ROOT / "deploy/k8s/generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "BASE", tmp_path)
    gen.main()
    committed = ROOT / "deploy/k8s/base"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in committed.iterdir())
    for p in tmp_path.iterdir():
        assert p.read_text() == (committed / p.name).read_text(), f"{p.name}: run python deploy/k8s/generate.py"
