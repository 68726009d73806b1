"""The dashboard's static files through the real Envoy (issue 17): ``/`` and ``/assets/*`` are
served by the supervisor's endpoint without a token, ``index.html`` revalidated, hashed assets
immutable; everything else still needs a token.

Oracles: the bytes of the files the test wrote (a stand-in for ``web/dist``) and RFC 9111's
Cache-Control directives.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiots.gateway import run as gateway_run
from tests.integration.gateway.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

INDEX = b"<!doctype html><title>AI-OTS</title><script type=module src=/assets/index-Ab12Cd34.js></script>"
ASSET = b"console.log('dashboard');\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dist = tmp_path_factory.mktemp("dist")
    (dist / "assets").mkdir()
    (dist / "index.html").write_bytes(INDEX)
    (dist / "assets" / "index-Ab12Cd34.js").write_bytes(ASSET)
    (dist.parent / "secret.txt").write_text("not served")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gateway_run, "WEB_DIST", dist)
        st = Stack(tmp_path_factory.mktemp("gw")).start()
    try:
        yield st
    finally:
        st.stop()


def get(st: Stack, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    assert st.settings is not None
    conn = http.client.HTTPConnection("127.0.0.1", st.settings.gateway.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    conn.close()
    return out


def test_index_without_token_not_cached(stack: Stack) -> None:
    status, headers, body = get(stack, "/")
    assert status == 200
    assert body == INDEX
    assert headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-cache"


def test_hashed_asset_immutable(stack: Stack) -> None:
    status, headers, body = get(stack, "/assets/index-Ab12Cd34.js")
    assert status == 200
    assert body == ASSET
    assert headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    cache = {d.strip() for d in headers["cache-control"].split(",")}
    assert {"immutable", "public", "max-age=31536000"} == cache


@pytest.mark.parametrize(
    "path", ["/assets/missing-0000.js", "/assets/..%2Fsecret.txt", "/assets/%2E%2E%2Fsecret.txt", "/assets/"]
)
def test_missing_or_escaping_asset_is_404_json(stack: Stack, path: str) -> None:
    status, headers, body = get(stack, path)
    assert status in (400, 404), (path, status, body)
    assert b"not served" not in body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["message"]


def test_other_paths_still_need_a_token(stack: Stack) -> None:
    status, _, body = get(stack, "/index.html")
    assert status == 401
    assert "Authorization: Bearer" in json.loads(body)["message"]
    status, _, _ = get(stack, "/api/v1/cache/stats")
    assert status == 401


def test_index_says_how_to_build_when_missing(stack: Stack, tmp_path: Path) -> None:
    assert stack.gateway is not None and stack.gateway.health is not None
    health = stack.gateway.health
    before = health.web_dir
    health.web_dir = tmp_path / "nothing"
    try:
        status, _, body = get(stack, "/")
    finally:
        health.web_dir = before
    assert status == 503
    assert "make run" in json.loads(body)["message"]
