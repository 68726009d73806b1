"""The hostile requests of issue 18 through the real gateway (Envoy) to the real services.

Items 1-3, 5 and 6 end to end: each request gets a 4xx with a JSON body naming the field (never
5xx, never an empty body), and the malformed stop bodies leave collection running (oracle: the
collection status read back over REST).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiots.gateway.run import Gateway
from aiots.gateway.tokens import issue_token
from aiots.services.common.settings import Settings
from tests.integration.gateway.ports import gateway_settings
from tests.integration.hardening.conftest import Stack

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def gateway(stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    gw = gateway_settings(tmp_path)
    ports = {name: {"port": app.port} for name, app in stack.apps.items()}
    settings = Settings(gateway=gw, **ports)
    g = Gateway(settings, config_dir=tmp_path / "envoy")
    await g.start()
    token = issue_token(settings.gateway, role="admin", subject="hostile-test", ttl_s=600)
    try:
        yield f"http://127.0.0.1:{settings.gateway.port}", token
    finally:
        await g.stop()


async def _call(s: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> tuple[int, str]:
    async with s.request(method, url, json=body) as r:
        return r.status, await r.text()


HOSTILE: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/v1/analytics/indicators/%FF%FE", None, "symbol"),
    ("GET", "/api/v1/analytics/patterns/%FF%FE", None, "symbol"),
    ("GET", "/api/v1/cache/stock-prices/%FF%FE", None, "symbol"),
    ("GET", "/api/v1/data/bars/%FF%FE", None, "symbol"),
    ("GET", "/api/v1/data/options/%20/definitions", None, "symbol"),
    ("GET", "/api/v1/analytics/indicators/%20", None, "symbol"),
    ("GET", "/api/v1/data/bars/%20", None, "symbol"),
    ("GET", "/api/v1/data/bars/AAPL?start=9999-12-31T00:00:00Z", None, "start"),
    ("GET", "/api/v1/data/bars/AAPL?start=0001-01-01T00:00:00Z", None, "start"),
    ("GET", "/api/v1/analytics/indicators/AAPL?start=9999-12-31T00:00:00Z", None, "start"),
    ("GET", "/api/v1/data/trades/AAPL?end=0001-01-01T00:00:00Z", None, "end"),
    ("POST", "/api/v1/data/collection/stop", {"bogus": 1}, ""),
    ("POST", "/api/v1/data/collection/stop", {"symbols": [None]}, ""),
    ("POST", "/api/v1/data/collection/stop", {}, "symbols"),
    ("POST", "/api/v1/analytics/options:price", {"contracts": [{"spot": 100, "strike": 100}]}, "contracts[0].right"),
    ("POST", "/api/v1/analytics/options:price", {"contracts": [{"spot": 100, "strike": 100, "right": "CALL"}]}, ""),
]  # fmt: skip


async def test_hostile_requests_get_4xx_json_naming_the_field(stack: Stack, gateway: tuple[str, str]) -> None:
    url, token = gateway
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        code, _ = await _call(
            s, "POST", url + "/api/v1/data/collection/start", {"symbols": ["AAPL"], "schemas": ["trades"]}
        )
        assert code == 200
        failures = []
        for method, path, body, field in HOSTILE:
            code, text = await _call(s, method, url + path, body)
            ok = 400 <= code < 500 and text.strip().startswith("{") and (not field or field in text)
            if not ok:
                failures.append((method, path, body, code, text[:300]))
        code, text = await _call(s, "GET", url + "/api/v1/data/collection/status")
        assert code == 200 and '"running":true' in text.replace(" ", ""), text[:300]
    assert failures == []
