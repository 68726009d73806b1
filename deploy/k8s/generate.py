"""Write the kustomize base (deploy/k8s/base) for AI-OTS.

The YAML is committed; run ``python deploy/k8s/generate.py`` after changing something here. Ports and
settings names follow services/common/settings.py (tests/unit/ops/test_deploy.py checks them and
validates every rendered object against the Kubernetes JSON schemas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parent / "base"
IMAGE = "aiots"
PART_OF = "aiots"
# name -> (grpc port, metrics port, replicas, cpu request, memory request)
SERVICES: dict[str, tuple[int, int, int, str, str]] = {
    "cache": (8001, 9101, 2, "100m", "256Mi"),
    "ingestion": (8002, 9102, 1, "500m", "1Gi"),
    "analytics": (8003, 9103, 2, "500m", "512Mi"),
    "signals": (8004, 9104, 2, "250m", "512Mi"),
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
    return [
        {"configMapRef": {"name": "aiots-config"}},
        {"secretRef": {"name": "aiots-secrets"}},
    ]


def service_deployment(name: str) -> dict[str, Any]:
    port, mport, replicas, cpu, mem = SERVICES[name]
    c: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "args": ["serve", name],
        "ports": [
            {"name": "grpc", "containerPort": port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": mport, "protocol": "TCP"},
        ],
        "env": [{"name": "AIOTS_SERVICE", "value": name}, {"name": f"AIOTS_{name.upper()}__HOST", "value": "0.0.0.0"}],
        "envFrom": env_from(),
        "readinessProbe": {"grpc": {"port": port}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"grpc": {"port": port}, "periodSeconds": 10, "failureThreshold": 3},
        "startupProbe": {"grpc": {"port": port}, "periodSeconds": 5, "failureThreshold": 30},
        "resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"memory": mem}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if name == "ingestion":
        c["volumeMounts"].append({"name": "spill", "mountPath": "/var/lib/aiots/spill"})
        c["env"].append({"name": "AIOTS_INGESTION__SPILL_DIR", "value": "/var/lib/aiots/spill"})
        volumes.append({"name": "spill", "emptyDir": {"sizeLimit": "10Gi"}})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
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
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
                    "containers": [c],
                    "volumes": volumes,
                },
            },
        },
    }


def gateway_deployment() -> dict[str, Any]:
    upstreams = "{" + ", ".join(f'"{n}": "{n}"' for n in SERVICES) + "}"
    c = {
        "name": "gateway",
        "image": IMAGE,
        "args": ["gateway"],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "AIOTS_SERVICE", "value": "gateway"},
            {"name": "AIOTS_GATEWAY__HOST", "value": "0.0.0.0"},
            {"name": "AIOTS_GATEWAY__UPSTREAM_HOSTS", "value": upstreams},
            {"name": "AIOTS_GATEWAY__JWKS_FILE", "value": "/etc/aiots/jwks/jwks.json"},
            {"name": "AIOTS_GATEWAY__CONFIG_PATH", "value": "/tmp/gateway/envoy.yaml"},
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
        "metadata": {"name": "gateway", "labels": labels("gateway")},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels("gateway")},
            "template": {
                "metadata": {"labels": labels("gateway")},
                "spec": {
                    "terminationGracePeriodSeconds": 15,
                    "securityContext": {"runAsNonRoot": True, "fsGroup": 10001},
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


def config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aiots-config", "labels": {"app.kubernetes.io/part-of": PART_OF}},
        "data": {
            "AIOTS_DATABASE__TIMESCALE": "on",
            "AIOTS_TELEMETRY__JSON_LOGS": "true",
            "AIOTS_TELEMETRY__LOG_LEVEL": "INFO",
            "AIOTS_GATEWAY__PROFILE": "prod",
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
    for fname, docs in files.items():
        (BASE / fname).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": PART_OF}}],
        "resources": sorted(files),
        "images": [{"name": IMAGE, "newName": "aiots", "newTag": "0.1.0"}],
    }
    (BASE / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))


if __name__ == "__main__":
    main()
