"""Write the kustomize base (deploy/k8s/base) for AI-OTS.

The YAML is committed; run ``python deploy/k8s/generate.py`` after changing something here. Ports and
settings names follow services/common/settings.py (tests/unit/deploy/test_deploy.py checks them and
validates every rendered object against the Kubernetes JSON schemas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parent / "base"
IMAGE = "aiots"
PART_OF = "aiots"
NAMESPACE = "aiots"
# name -> (grpc port, metrics port, replicas, cpu request, memory request)
SERVICES: dict[str, tuple[int, int, int, str, str]] = {
    "cache": (8001, 9101, 2, "100m", "256Mi"),
    "ingestion": (8002, 9102, 1, "500m", "1Gi"),
    "analytics": (8003, 9103, 2, "500m", "512Mi"),
    "signals": (8004, 9104, 2, "250m", "512Mi"),
    "backtest": (8005, 9105, 1, "500m", "1Gi"),
    "portfolio": (8006, 9106, 2, "250m", "512Mi"),
}
# Secrets (keys of the Secret aiots-secrets) each service reads, mounted as files and named by the
# settings' *_FILE variables (never environment values). Only ingestion talks to Databento.
SECRETS: dict[str, tuple[str, ...]] = {
    name: ("DATABASE_URL", "REDIS_URL", "DATABENTO_API_KEY") if name == "ingestion" else ("DATABASE_URL", "REDIS_URL")
    for name in SERVICES
}
SECRETS_DIR = "/etc/aiots/secrets"
# The services the gateway routes to (GatewaySettings.UPSTREAMS).
GATEWAY_UPSTREAMS = ("cache", "ingestion", "analytics", "signals", "portfolio", "backtest")
# Pods labelled so may scrape the metrics ports (NetworkPolicy).
PROMETHEUS_LABELS = {"app.kubernetes.io/name": "prometheus"}
# Checks of checkov (`make test` runs it on the rendered overlay) this deployment does not follow, and why.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are pinned by tag through kustomize's images (the release process may pin a digest there)",
    "CKV_K8S_11": "no CPU limit on purpose: CFS throttling adds latency to gRPC calls; CPU requests size the pods",
}

GATEWAY_PORT = 8000
GATEWAY_HEALTH_PATH = "/health"


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def env_from() -> list[dict[str, Any]]:
    return [{"configMapRef": {"name": "aiots-config"}}]


def pod_security() -> dict[str, Any]:
    return {"runAsNonRoot": True, "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}


def checkov_annotations() -> dict[str, str]:
    """checkov.io/skipN annotations: every skipped check with its reason."""
    return {f"checkov.io/skip{i}": f"{cid}={why}" for i, (cid, why) in enumerate(CHECKOV_SKIPS.items(), 1)}


def service_deployment(name: str) -> dict[str, Any]:
    port, mport, replicas, cpu, mem = SERVICES[name]
    c: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "imagePullPolicy": "Always",
        "args": ["serve", name],
        "ports": [
            {"name": "grpc", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": mport, "protocol": "TCP"},
        ],
        "env": [
            {"name": "AIOTS_SERVICE", "value": name},
            {"name": f"AIOTS_{name.upper()}__HOST", "value": "0.0.0.0"},
            *({"name": f"{s}_FILE", "value": f"{SECRETS_DIR}/{s}"} for s in SECRETS[name]),
        ],
        "envFrom": env_from(),
        "readinessProbe": {"grpc": {"port": port}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"grpc": {"port": port}, "periodSeconds": 10, "failureThreshold": 3},
        "startupProbe": {"grpc": {"port": port}, "periodSeconds": 5, "failureThreshold": 30},
        "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"memory": mem}},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {}},
        {
            "name": "secrets",
            "secret": {
                "secretName": "aiots-secrets",
                "defaultMode": 0o440,
                "items": [{"key": s, "path": s} for s in SECRETS[name]],
            },
        },
    ]
    if name == "ingestion":
        c["volumeMounts"].append({"name": "spill", "mountPath": "/var/lib/aiots/spill"})
        c["env"].append({"name": "AIOTS_INGESTION__SPILL_DIR", "value": "/var/lib/aiots/spill"})
        volumes.append({"name": "spill", "emptyDir": {"sizeLimit": "10Gi"}})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name), "annotations": checkov_annotations()},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(mport),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [c],
                    "volumes": volumes,
                },
            },
        },
    }


def gateway_deployment() -> dict[str, Any]:
    upstreams = "{" + ", ".join(f'"{n}": "{n}"' for n in GATEWAY_UPSTREAMS) + "}"
    c = {
        "name": "gateway",
        "image": IMAGE,
        "imagePullPolicy": "Always",
        "args": ["gateway"],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "AIOTS_SERVICE", "value": "gateway"},
            {"name": "AIOTS_GATEWAY__HOST", "value": "0.0.0.0"},
            {"name": "AIOTS_GATEWAY__PORT", "value": str(GATEWAY_PORT)},
            {"name": "AIOTS_GATEWAY__UPSTREAM_HOSTS", "value": upstreams},
            {"name": "AIOTS_GATEWAY__JWKS_FILE", "value": "/etc/aiots/jwks/jwks.json"},
            {"name": "AIOTS_GATEWAY__CONFIG_PATH", "value": "/tmp/gateway/envoy.yaml"},
            {"name": "AIOTS_GATEWAY__ACCESS_LOG_PATH", "value": "/dev/stdout"},
        ],
        "envFrom": [{"configMapRef": {"name": "aiots-config"}}],
        "readinessProbe": {
            "httpGet": {"path": GATEWAY_HEALTH_PATH, "port": GATEWAY_PORT},
            "periodSeconds": 5,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": GATEWAY_HEALTH_PATH, "port": GATEWAY_PORT},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "jwks", "mountPath": "/etc/aiots/jwks", "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gateway", "labels": labels("gateway"), "annotations": checkov_annotations()},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels("gateway")},
            "template": {
                "metadata": {"labels": labels("gateway")},
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [c],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "jwks", "secret": {"secretName": "aiots-jwks"}},
                    ],
                },
            },
        },
    }


def service(
    name: str, ports: list[tuple[str, int]], *, kind: str = "ClusterIP", headless: bool = False
) -> dict[str, Any]:
    """A Service. ``headless``: DNS returns every ready pod's IP, so Envoy (STRICT_DNS cluster via
    gateway.upstream_hosts) balances each request over the pods; through a ClusterIP one long-lived
    HTTP/2 connection would pin all of a gateway's traffic to one pod."""
    spec: dict[str, Any] = {
        "type": kind,
        "selector": labels(name),
        "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in ports],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels(name)}, "spec": spec}


def external(name: str, host: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}},
        "spec": {"type": "ExternalName", "externalName": host, "ports": [{"name": "tcp", "port": port}]},
    }


def hpa(name: str, lo: int, hi: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": lo,
            "maxReplicas": hi,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def pdb(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name)}},
    }


def network_policy(name: str, ports: list[tuple[int, dict[str, Any] | None]]) -> dict[str, Any]:
    """Ingress allowed to ``name``'s pods: each (port, from-selector) pair; None: from anywhere."""
    rules: list[dict[str, Any]] = []
    for port, peer in ports:
        rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": port}]}
        if peer is not None:
            rule["from"] = [peer]
        rules.append(rule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"podSelector": {"matchLabels": labels(name)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def network_policies() -> list[dict[str, Any]]:
    """Only the gateway reaches a service's gRPC port; only Prometheus (any namespace) its metrics
    port; the gateway takes traffic from anywhere (its LoadBalancer Service)."""
    from_gateway = {"podSelector": {"matchLabels": labels("gateway")}}
    from_prometheus = {"namespaceSelector": {}, "podSelector": {"matchLabels": PROMETHEUS_LABELS}}
    out = [network_policy("gateway", [(GATEWAY_PORT, None)])]
    for name, (port, mport, *_rest) in SERVICES.items():
        out.append(network_policy(name, [(port, from_gateway), (mport, from_prometheus)]))
    return out


def config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aiots-config", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "data": {
            "AIOTS_DATABASE__TIMESCALE": "on",
            "AIOTS_TELEMETRY__JSON_LOGS": "true",
            "AIOTS_TELEMETRY__LOG_LEVEL": "INFO",
            "AIOTS_TELEMETRY__OTLP_ENDPOINT": "",
            "AIOTS_GATEWAY__PROFILE": "prod",
            "AIOTS_GATEWAY__CONCURRENCY": "1",
            "AIOTS_GATEWAY__JWT_ISSUER": "https://login.example.com/",
            "AIOTS_GATEWAY__JWT_AUDIENCE": "aiots",
        },
    }


def main() -> None:
    BASE.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict[str, Any]]] = {
        "config.yaml": [config()],
        "external.yaml": [
            external("timescaledb", "timescaledb.database.svc.cluster.local", 5432),
            external("redis", "redis.cache.svc.cluster.local", 6379),
        ],
        "gateway.yaml": [
            gateway_deployment(),
            service("gateway", [("http", GATEWAY_PORT)], kind="LoadBalancer"),
            pdb("gateway"),
        ],
    }
    for name, (port, mport, *_rest) in SERVICES.items():
        files[f"{name}.yaml"] = [
            service_deployment(name),
            service(name, [("grpc", port), ("metrics", mport)], headless=True),
            pdb(name),
        ]
    files["hpa.yaml"] = [hpa("analytics", 2, 10), hpa("signals", 2, 10)]
    files["networkpolicy.yaml"] = network_policies()
    for fname, docs in files.items():
        (BASE / fname).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "labels": [{"pairs": {"app.kubernetes.io/part-of": PART_OF}}],
        "resources": sorted(files),
        "images": [{"name": IMAGE, "newName": "aiots", "newTag": "0.1.0"}],
    }
    (BASE / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))


if __name__ == "__main__":
    main()
