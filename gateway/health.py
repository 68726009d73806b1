"""The small HTTP endpoint behind the gateway's ``/health`` and ``/openapi.json``.

Envoy checks every upstream with active gRPC health checks (``grpc.health.v1``, the service's
full name: its *readiness*) but cannot aggregate cluster health into a response body. The
supervisor therefore runs this endpoint on 127.0.0.1 (``gateway.health_port``); Envoy routes
``/health`` here (no token; rate limited per client address) and the endpoint

- reads Envoy's admin ``/clusters?format=json``: an upstream is SERVING when at least one of its
  hosts has no failure flag (not failed/pending active health check, not EDS-unhealthy);
- asks each upstream's ``grpc.health.v1.Health`` for its dependencies, one service name per
  dependency (the contract of :mod:`aiots.services.common.health`): ``aiots.dep.postgres``,
  ``aiots.dep.redis``, ``aiots.dep.feed``. NOT_FOUND means the service does not use it.

200 when every upstream is SERVING, else 503 with ``message`` naming each upstream that is not
and the dependencies it reports down (``cache: redis down``). A dependency that is down while its
service still serves (the feed is informational; the bus rides out a Redis outage) is listed
under ``degraded`` and keeps 200.

The same endpoint serves the dashboard's static files (``web/dist``, built by ``make run``): Envoy
routes ``/`` and ``/assets/*`` here without a token. ``index.html`` is ``no-cache``; the files under
``assets/`` carry a content hash in their names (Vite), so they are ``immutable`` for a year.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.services.common.health import DEP_PREFIX, FEED, POSTGRES, REDIS

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
DEP_CHECK_TIMEOUT_S = 1.0
#: dependencies asked for, in report order
DEPENDENCIES = (POSTGRES, REDIS, FEED)
#: Cache-Control of index.html (revalidated on every load: it names the current hashed assets)
INDEX_CACHE = "no-cache"
#: Cache-Control of hashed assets (their name changes when their content does)
ASSET_CACHE = "public, max-age=31536000, immutable"
#: answer for ``/`` when the page was never built
NOT_BUILT_MESSAGE = (
    "the dashboard is not built: run 'make run' (needs Node.js 20+), or 'cd web && npm ci && npm run build'"
)
_STATUS = {
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
}


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


def summarize(upstreams: dict[str, str], dependencies: dict[str, dict[str, str]]) -> tuple[int, dict[str, Any]]:
    """HTTP status and body of ``/health`` from each upstream's status and its dependencies'
    (``{upstream: {dep: SERVING|NOT_SERVING|UNKNOWN}}``, only the dependencies it uses)."""
    bad = [name for name, st in upstreams.items() if st != "SERVING"]
    reasons: list[str] = []
    degraded: list[str] = []
    for name in upstreams:
        down = [d for d, st in dependencies.get(name, {}).items() if st != "SERVING"]
        if name in bad:
            reasons.append(f"{name}: {', '.join(down)} down" if down else f"{name}: not serving")
        elif down:
            degraded.extend(f"{name}: {d}" for d in down)
    body: dict[str, Any] = {
        "status": "NOT_SERVING" if bad else "SERVING",
        "upstreams": upstreams,
        "not_serving": bad,
        "dependencies": dependencies,
        "degraded": degraded,
    }
    if reasons:
        body["message"] = "not ready: " + "; ".join(reasons)
    return (503 if bad else 200), body


class HealthEndpoint:
    """aiohttp app: ``GET /health`` (aggregated upstream health), ``GET /openapi.json``."""

    def __init__(
        self,
        *,
        admin_port: int,
        upstreams: list[str],
        openapi: dict[str, Any],
        port: int,
        targets: dict[str, str] | None = None,
        web_dir: Path | None = None,
    ) -> None:
        self.admin_url = f"http://127.0.0.1:{admin_port}/clusters?format=json"
        self.upstreams = upstreams
        self.targets = targets or {}  # upstream -> host:port, for the dependency checks
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.openapi_body = json.dumps(openapi).encode()
        self.port = port
        self.web_dir = web_dir
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def _dep_status(self, upstream: str, dep: str) -> str | None:
        """SERVING / NOT_SERVING / UNKNOWN (unreachable), None when the service does not use it."""
        ch = self._channels.get(upstream)
        if ch is None:
            ch = self._channels[upstream] = grpc.aio.insecure_channel(self.targets[upstream])
        try:
            r = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=DEP_PREFIX + dep), timeout=DEP_CHECK_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            return None if exc.code() == grpc.StatusCode.NOT_FOUND else "UNKNOWN"
        return _STATUS.get(r.status, "UNKNOWN")

    async def dependencies(self) -> dict[str, dict[str, str]]:
        """``{upstream: {dependency: status}}`` for the dependencies each upstream reports."""
        pairs = [(u, d) for u in self.upstreams if u in self.targets for d in DEPENDENCIES]
        results = await asyncio.gather(*(self._dep_status(u, d) for u, d in pairs))
        out: dict[str, dict[str, str]] = {u: {} for u in self.upstreams if u in self.targets}
        for (u, d), st in zip(pairs, results, strict=True):
            if st is not None:
                out[u][d] = st
        return out

    async def _health(self, request: web.Request) -> web.Response:
        assert self._session is not None
        deps_task = asyncio.ensure_future(self.dependencies())
        try:
            async with self._session.get(self.admin_url) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError) as exc:
            deps_task.cancel()
            body = {
                "status": "NOT_SERVING",
                "upstreams": {},
                "not_serving": self.upstreams,
                "message": f"gateway admin unreachable: {exc}",
            }
            return web.json_response(body, status=503)
        code, body = summarize(upstream_status(data, self.upstreams), await deps_task)
        return web.json_response(body, status=code)

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_body, content_type="application/json")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        index = self.web_dir / "index.html" if self.web_dir is not None else None
        if index is None or not index.is_file():
            body = {"code": 14, "message": NOT_BUILT_MESSAGE, "details": []}
            return web.json_response(body, status=503, headers={"Cache-Control": INDEX_CACHE})
        return web.FileResponse(index, headers={"Cache-Control": INDEX_CACHE, "Content-Type": "text/html"})

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        root = (self.web_dir / "assets").resolve() if self.web_dir is not None else None
        path = (root / name).resolve() if root is not None else None
        # one flat folder of hashed files: anything else (.., subfolders, missing) is 404
        if root is None or path is None or path.parent != root or not path.is_file():
            body = {"code": 5, "message": f"no asset {name!r} (the page was rebuilt? reload it)", "details": []}
            return web.json_response(body, status=404)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Cache-Control": ASSET_CACHE, "Content-Type": ctype})

    async def start(self) -> None:
        """Bind 127.0.0.1:port."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ADMIN_TIMEOUT_S))
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_get("/", self._index)
        app.router.add_get("/assets/{name:.*}", self._asset)
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
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
