"""The small HTTP endpoint behind the gateway's ``/health`` and ``/openapi.json``.

Envoy checks every upstream with active gRPC health checks (``grpc.health.v1``) but cannot
aggregate cluster health into a response body. The supervisor therefore runs this endpoint on
127.0.0.1 (``gateway.health_port``); Envoy routes ``/health`` here (no token, no rate limit) and
the endpoint reads Envoy's admin ``/clusters?format=json``: an upstream is SERVING when at least
one of its hosts has no failure flag (not failed/pending active health check, not EDS-unhealthy).
200 with every upstream SERVING, else 503 naming those that are not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

#: host health_status flags that make a host unusable (admin /clusters?format=json)
FAILURE_FLAGS = (
    "failed_active_health_check",
    "failed_outlier_check",
    "failed_eds_health",
    "pending_active_hc",
    "pending_dynamic_removal",
    "excluded_via_immediate_hc_fail",
    "active_hc_timeout",
)
ADMIN_TIMEOUT_S = 2.0


def upstream_status(clusters_json: dict[str, Any], upstreams: Iterable[str]) -> dict[str, str]:
    """``{cluster: "SERVING" | "NOT_SERVING" | "UNKNOWN"}`` from Envoy's admin /clusters JSON."""
    wanted = list(upstreams)
    out = dict.fromkeys(wanted, "UNKNOWN")
    for c in clusters_json.get("cluster_statuses", []):
        name = c.get("name")
        if name not in out:
            continue
        healthy = False
        for h in c.get("host_statuses", []):
            hs = h.get("health_status", {})
            eds = hs.get("eds_health_status", "HEALTHY")
            if eds in ("HEALTHY", "UNKNOWN") and not any(hs.get(f) for f in FAILURE_FLAGS):
                healthy = True
        out[name] = "SERVING" if healthy else "NOT_SERVING"
    return out


class HealthEndpoint:
    """aiohttp app: ``GET /health`` (aggregated upstream health), ``GET /openapi.json``."""

    def __init__(self, *, admin_port: int, upstreams: list[str], openapi: dict[str, Any], port: int) -> None:
        self.admin_url = f"http://127.0.0.1:{admin_port}/clusters?format=json"
        self.upstreams = upstreams
        self.openapi_body = json.dumps(openapi).encode()
        self.port = port
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _health(self, request: web.Request) -> web.Response:
        assert self._session is not None
        try:
            async with self._session.get(self.admin_url) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError) as exc:
            body = {"status": "NOT_SERVING", "upstreams": {}, "not_serving": self.upstreams, "error": str(exc)}
            return web.json_response(body, status=503)
        status = upstream_status(data, self.upstreams)
        bad = [name for name, st in status.items() if st != "SERVING"]
        body = {"status": "NOT_SERVING" if bad else "SERVING", "upstreams": status, "not_serving": bad}
        return web.json_response(body, status=503 if bad else 200)

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_body, content_type="application/json")

    async def start(self) -> None:
        """Bind 127.0.0.1:port."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S))
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/openapi.json", self._openapi)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
