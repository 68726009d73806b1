"""Container healthcheck: gRPC health of this container's service, or the gateway's /health.

``AIOTS_SERVICE`` names the service (a settings section with a port, or gateway); the port comes from
the same settings the service uses. Exit 0 when SERVING / HTTP 200, else 1 (one line on stderr).
"""

from __future__ import annotations

import os
import sys
import urllib.request

TIMEOUT_S = 3.0


def main() -> int:
    from aiots.services.common.settings import get_settings

    service = os.environ.get("AIOTS_SERVICE", "")
    settings = get_settings()
    if service == "gateway":
        url = f"http://127.0.0.1:{settings.gateway.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
                return 0 if r.status == 200 else 1
        except OSError as exc:
            print(f"gateway unhealthy: {exc}", file=sys.stderr)
            return 1
    # every settings section with a gRPC port is a service (cache, ingestion, ..., backtest, portfolio)
    services = sorted(n for n in type(settings).model_fields if hasattr(getattr(settings, n), "metrics_port"))
    if service not in services:
        print(f"AIOTS_SERVICE={service!r}: expected {'|'.join(services)}|gateway", file=sys.stderr)
        return 1
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = getattr(settings, service).port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            print(f"{service} unhealthy: {exc.code().name}", file=sys.stderr)
            return 1
    return 0 if resp.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
