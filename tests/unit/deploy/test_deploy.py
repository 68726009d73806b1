"""Consistency of deploy/ and docker-compose.yml with the settings and the metric catalogue.

Oracles: promtool (Debian's prometheus package) for rules/config, the Kubernetes JSON schemas
(kubernetes-validate, offline) for every rendered object, kubectl's kustomize when installed (else a
small strategic-merge renderer here), and the Settings model for ports and variable names.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from aiots.services.common.settings import Settings
from aiots.services.common.telemetry import METRIC_NAMES
from aiots.services.stack.metrics_targets import target_groups, targets_path, write_targets

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SERVICES = ("cache", "ingestion", "analytics", "signals")
# Non-AI-OTS series dashboards/alerts may use: Prometheus' own `up` and prometheus_client's process metrics.
FOREIGN_METRICS = {"up", "process_cpu_seconds_total"}
K8S_VERSION = "1.31"
PROM_FN = {
    "sum", "rate", "increase", "max", "min", "avg", "by", "histogram_quantile", "le", "count", "without",
    "label_values", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
}  # fmt: skip


def _exprs_in_rules() -> list[str]:
    doc = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def _exprs_in_dashboards() -> list[str]:
    out = []
    for f in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        d = json.loads(f.read_text())
        out += [t["expr"] for p in d["panels"] for t in p["targets"]]
        out += [v["query"] for v in d.get("templating", {}).get("list", []) if "query" in v]
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, strings, functions and durations removed)."""
    e = re.sub(r"label_values\(([^,)]+)(?:,[^)]*)?\)", r"\1", expr)
    e = re.sub(r'"[^"]*"', "", e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", e)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e)) - PROM_FN
    return {n for n in names if not re.fullmatch(r"\d.*", n)}


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name[: -len(suffix)] in METRIC_NAMES:
            return name[: -len(suffix)]
    return name


def test_every_metric_in_alerts_and_dashboards_is_defined() -> None:
    exprs = _exprs_in_rules() + _exprs_in_dashboards()
    assert len(exprs) > 30
    used = {base_metric(n) for e in exprs for n in metric_names(e)}
    unknown = used - METRIC_NAMES - FOREIGN_METRICS
    assert not unknown, f"metrics used in deploy/ but not defined in telemetry.CATALOG: {sorted(unknown)}"
    # the alerts the issue asks for
    alerts = {r["alert"] for g in yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
              for r in g["rules"]}  # fmt: skip
    for a in ("AiotsServiceDown", "AiotsIngestLagHigh", "AiotsHighErrorRate", "AiotsDbWriteFailures",
              "AiotsBusBacklog", "AiotsSubscriberDrops"):  # fmt: skip
        assert a in alerts


def test_metric_name_extraction_on_known_expressions() -> None:
    assert metric_names('sum by (service) (rate(aiots_rpc_duration_seconds_count{code=~"A|B"}[5m])) > 0.05') == {
        "aiots_rpc_duration_seconds_count"
    }
    assert metric_names("aiots_queue_depth / aiots_queue_capacity") == {"aiots_queue_depth", "aiots_queue_capacity"}


def _promtool() -> str:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; `make sysdeps` installs it)")
    return exe


def test_promtool_check_rules() -> None:
    out = subprocess.run(
        [_promtool(), "check", "rules", str(DEPLOY / "prometheus/alerts.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_config_scrapes_every_metrics_port(tmp_path: Path) -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    s = Settings()
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in cfg["scrape_configs"]}
    for svc in SERVICES:
        assert targets[f"aiots-{svc}"] == f"{svc}:{getattr(s, svc).metrics_port}"
    shutil.copy(DEPLOY / "prometheus/alerts.yml", tmp_path / "alerts.yml")
    cfg["rule_files"] = [str(tmp_path / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [_promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_local_prometheus_config_scrapes_the_targets_a_stack_writes(tmp_path: Path) -> None:
    """deploy/prometheus/local.yml reads the file a stack with the default data_dir writes, and
    promtool accepts that file's content (it checks every file_sd file it finds)."""
    cfg = yaml.safe_load((DEPLOY / "prometheus/local.yml").read_text())
    (job,) = cfg["scrape_configs"]
    (files,) = job["file_sd_configs"][0]["files"]
    assert (DEPLOY / "prometheus" / files).resolve() == (ROOT / targets_path(Settings().data_dir)).resolve()
    written = targets_path(tmp_path)
    groups = target_groups({"cache": "0.0.0.0", "signals": "::1"}, {"cache": [9101, 40001], "signals": [9104]})
    write_targets(written, groups)
    job["file_sd_configs"][0]["files"] = [str(written)]
    cfg["rule_files"] = [str(DEPLOY / "prometheus/alerts.yml")]
    (tmp_path / "local.yml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([_promtool(), "check", "config", str(tmp_path / "local.yml")], capture_output=True, text=True)
    assert out.returncode == 0 and "WARNING" not in out.stdout + out.stderr, out.stdout + out.stderr


def test_dashboards_are_provisionable() -> None:
    uids = set()
    for f in sorted((DEPLOY / "grafana/dashboards").glob("*.json")):
        d = json.loads(f.read_text())
        assert d["uid"] not in uids
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)) and d["panels"]
        for p in d["panels"]:
            assert p["datasource"]["uid"] == "prometheus" and p["targets"]
    assert uids == {"aiots-system", "aiots-pipeline", "aiots-signals", "aiots-business"}
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["uid"] == "prometheus"


# ----------------------------------------------------------------------------- settings names


def setting_exists(env: str) -> bool:
    """Whether an environment variable name maps onto a Settings field (AIOTS_A__B, or an alias)."""
    if env in {"DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY", "AIOTS_CONFIG_FILE"} | {
        f"{s}_FILE" for s in ("DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY")
    }:
        return True
    if not env.startswith("AIOTS_"):
        return False
    model: Any = Settings
    for part in env.removeprefix("AIOTS_").lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        ann = fields[part].annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return True


def _check_env(names: set[str]) -> None:
    unknown = {n for n in names if (n.startswith("AIOTS_") or n.isupper()) and not setting_exists(n)}
    unknown -= {"AIOTS_SERVICE"}  # AIOTS_SERVICE: the container's role, read by healthcheck.py
    assert not unknown, f"variables that no setting reads: {sorted(unknown)}"


def _gateway_hosts(env: dict[str, str]) -> dict[str, str]:
    """Where the gateway sends each service, as GatewaySettings reads ``env`` (the real parser)."""
    gw = Settings.model_validate({}).gateway
    raw = env.get("AIOTS_GATEWAY__UPSTREAM_HOSTS")
    if raw is not None:
        gw = gw.model_validate({**gw.model_dump(), "upstream_hosts": json.loads(raw)})
    return {n: gw.host_of(n) for n in SERVICES}


def test_setting_exists_oracle() -> None:
    assert setting_exists("AIOTS_CACHE__PORT") and setting_exists("AIOTS_TELEMETRY__OTLP_ENDPOINT")
    assert setting_exists("AIOTS_GATEWAY__UPSTREAM_HOSTS")
    assert not setting_exists("AIOTS_CACHE__PROT") and not setting_exists("AIOTS_NOPE")


# ----------------------------------------------------------------------------- docker-compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_images_pinned_and_healthchecked(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    for name, svc in svcs.items():
        image = svc.get("image", "")
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*", image), f"{name}: image {image!r} not pinned"
        assert not image.endswith(":latest")
        assert "healthcheck" in svc, f"{name}: no healthcheck"
    assert svcs["timescaledb"]["image"].startswith("timescale/timescaledb:")
    for name in (*SERVICES, "gateway"):
        assert svcs[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        for dep in svcs[name]["depends_on"].values():
            assert dep["condition"] == "service_healthy"
    for name in SERVICES:
        assert svcs[name]["command"] == ["serve", name]
    assert svcs["gateway"]["command"] == ["gateway"]


def test_compose_ports_and_env_match_settings(compose: dict[str, Any]) -> None:
    s = Settings()
    svcs = compose["services"]
    for name in SERVICES:
        cfg = getattr(s, name)
        assert sorted(svcs[name]["expose"]) == sorted([str(cfg.port), str(cfg.metrics_port)])
        env = svcs[name]["environment"]
        assert env["AIOTS_SERVICE"] == name
        assert {"DATABASE_URL", "REDIS_URL"} <= set(env)
        assert ("DATABENTO_API_KEY" in env) == (name == "ingestion")  # only ingestion talks to Databento
        assert env["DATABASE_URL"].startswith("postgresql://") and "@timescaledb:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        _check_env(set(env))
    assert svcs["gateway"]["ports"] == [f"{s.gateway.port}:{s.gateway.port}"]
    _check_env(set(svcs["gateway"]["environment"]))
    # the gateway reaches each service under its compose service name
    hosts = _gateway_hosts(svcs["gateway"]["environment"])
    assert hosts == {n: n for n in SERVICES} and set(hosts.values()) <= set(svcs)
    vols = svcs["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in vols
    prov = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/aiots.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dockerfile_multistage_nonroot_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) >= 2
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base.group(1))
    # the dashboard is built in its own stage (vite needs Node ^20.19 or >= 22.12) and served from
    # the directory the runtime's gateway.web_dir names
    node = re.search(r"^ARG NODE_IMAGE=(\S+)", text, re.M)
    assert node and re.fullmatch(r"node:(20\.(19|[2-9]\d)|2[2-9])\.\d+(\.\d+)?-\w+-slim", node.group(1))
    assert re.search(r"^RUN npm ci\b", text, re.M) and re.search(r"^RUN npm run build$", text, re.M)
    web_dir = re.search(r"AIOTS_GATEWAY__WEB_DIR=(\S+)", text)
    assert web_dir and re.search(rf"^COPY --from=web /web/dist {re.escape(web_dir.group(1))}$", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", text, re.M)
    assert (DEPLOY / "healthcheck.py").is_file()


# ----------------------------------------------------------------------------- Kubernetes


def _load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does for our patches: maps deep-merge, lists of named maps merge
    by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(x, dict) and "name" in x for x in base + patch)
    ):
        out_l = [copy.deepcopy(x) for x in base]
        for p in patch:
            idx = next((i for i, x in enumerate(out_l) if x["name"] == p["name"]), None)
            if idx is None:
                out_l.append(copy.deepcopy(p))
            else:
                out_l[idx] = _merge(out_l[idx], p)
        return out_l
    return copy.deepcopy(patch)


def render(directory: Path) -> list[dict[str, Any]]:
    """A minimal kustomize: resources, namespace, images, labels, patches (what deploy/k8s uses)."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for r in k.get("resources", []):
        p = directory / r
        docs += render(p) if p.is_dir() else _load_docs(p)
    for patch in k.get("patches", []):
        for pd in _load_docs(directory / patch["path"]):
            for i, d in enumerate(docs):
                if d["kind"] == pd["kind"] and d["metadata"]["name"] == pd["metadata"]["name"]:
                    docs[i] = _merge(d, pd)
    for img in k.get("images", []):
        for d in docs:
            for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
                if c["image"].split(":")[0] == img["name"]:
                    c["image"] = f"{img.get('newName', img['name'])}:{img['newTag']}"
    for lab in k.get("labels", []):
        for d in docs:
            d["metadata"].setdefault("labels", {}).update(lab["pairs"])
    if "namespace" in k:
        for d in docs:
            if d["kind"] != "Namespace":
                d["metadata"]["namespace"] = k["namespace"]
    return docs


@pytest.mark.parametrize("where", ["base", "overlays/production"])
def test_k8s_renders_and_validates_against_schemas(where: str) -> None:
    docs = render(DEPLOY / "k8s" / where)
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s" / where)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        theirs = [d for d in yaml.safe_load_all(out.stdout) if d]
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(map(key, theirs)) == sorted(map(key, docs))
        docs = theirs  # kustomize's own output is what gets validated when it is available
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    s = Settings()
    for name in SERVICES:
        dep = by[("Deployment", name)]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        port = getattr(s, name).port
        assert c["readinessProbe"]["grpc"]["port"] == port and c["livenessProbe"]["grpc"]["port"] == port
        assert c["args"] == ["serve", name]
        assert c["securityContext"]["runAsNonRoot"] is True
        assert {"configMapRef": {"name": "aiots-config"}} in c["envFrom"]
        # secrets are files of the Secret aiots-secrets, named by the settings' *_FILE variables
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert vols["secrets"]["secret"]["secretName"] == "aiots-secrets"
        env = {e["name"]: e.get("value") for e in c["env"]}
        for item in vols["secrets"]["secret"]["items"]:
            assert env[f"{item['key']}_FILE"].endswith("/" + item["path"])
        _check_env({e["name"] for e in c["env"]})
        svc = by[("Service", name)]
        assert {p["port"] for p in svc["spec"]["ports"]} == {port, getattr(s, name).metrics_port}
        assert ("PodDisruptionBudget", name) in by
    for name in ("analytics", "signals"):
        assert by[("HorizontalPodAutoscaler", name)]["spec"]["scaleTargetRef"]["name"] == name
    for ext in ("timescaledb", "redis"):
        assert by[("Service", ext)]["spec"]["type"] == "ExternalName"
    gw = by[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert gw["readinessProbe"]["httpGet"]["port"] == s.gateway.port
    # the gateway reaches each service through its headless Service (every ready pod is an endpoint)
    hosts = _gateway_hosts({e["name"]: e["value"] for e in gw["env"] if "value" in e})
    assert hosts == {n: n for n in SERVICES}
    for name in SERVICES:
        assert by[("Service", name)]["spec"]["clusterIP"] == "None"
    _check_env(set(by[("ConfigMap", "aiots-config")]["data"]))
    if where != "base":
        assert all(d["metadata"].get("namespace") == "aiots" for d in docs if d["kind"] != "Namespace")
        assert by[("HorizontalPodAutoscaler", "analytics")]["spec"]["maxReplicas"] == 20
        assert by[("Deployment", "cache")]["spec"]["replicas"] == 3
        assert gw["image"].startswith("registry.example.com/aiots/aiots:")
