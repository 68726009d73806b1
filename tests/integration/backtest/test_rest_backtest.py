"""REST backtests through a real Envoy: ``POST /api/v1/backtests`` streams NDJSON progress lines and
then the stored result; ``GET /api/v1/backtests/{id}`` returns that run; ``GET /api/v1/backtests``
lists it; roles and bad input are answered by the gateway and the service with 4xx, never 5xx.

The stack is the composition root's own (:class:`Supervisor`: the real BacktestService on a real
PostgreSQL, the Envoy gateway, spare ports). Oracles: the backtest library called directly on the
same inputs (what the stored report must say), and protobuf's JSON mapping of the request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aiots.gateway.tokens import issue_token
from aiots.services.backtest.api import BacktestInputs, run_backtest
from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import Supervisor, with_data_dir
from tests.e2e.stack import free_ports

pytestmark = pytest.mark.integration

NVDA = "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"
TO_DATE = "2024-03-06"
SEED = 5
READ_TIMEOUT_S = 120.0
UNHEALTHY_GRACE_S = 15.0


@pytest.fixture
async def stack(make_database: Callable[..., str], shared_data: Path, tmp_path: Path) -> AsyncIterator[Supervisor]:
    p = free_ports(4)
    base = with_data_dir(Settings(database_url=make_database(True)), tmp_path / "data")  # type: ignore[call-arg]
    settings = base.model_copy(
        update={
            "backtest": base.backtest.model_copy(update={"port": p[0], "data_roots": [shared_data]}),
            "gateway": base.gateway.model_copy(
                update={
                    "port": p[1],
                    "admin_port": p[2],
                    "health_port": p[3],
                    "base_id": random.randint(10_000, 1_000_000),
                    "access_log_path": str(tmp_path / "access.log"),
                    "health_check_interval_s": 0.3,
                    "log_level": "error",
                }
            ),
        }
    )
    sup = Supervisor(settings, services=["backtest"], gateway=True, metrics=False)
    await sup.start()
    try:
        yield sup
    finally:
        await sup.stop()


def _url(sup: Supervisor, path: str) -> str:
    return f"http://127.0.0.1:{sup.settings.gateway.port}{path}"


def _auth(sup: Supervisor, role: str) -> dict[str, str]:
    tok = issue_token(sup.settings.gateway, role=role, subject=f"rest-{role}", ttl_s=600)
    return {"Authorization": f"Bearer {tok}"}


async def _ready(sup: Supervisor, s: aiohttp.ClientSession) -> None:
    """Until Envoy's health check has found the backtest upstream (a GET of an unknown run is 404)."""
    for _ in range(100):
        async with s.get(_url(sup, "/api/v1/backtests?limit=1"), headers=_auth(sup, "viewer")) as r:
            if r.status == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway never routed to the backtest service")


async def _get(sup: Supervisor, s: aiohttp.ClientSession, path: str) -> Any:
    """GET as a viewer; a 503 is retried for a while: on this loaded 2-core VM the run's CPU-bound
    thread can delay the service's health answers enough for Envoy to mark it unhealthy until its
    next check passes (a request then gets 503 from Envoy, never from the service)."""
    deadline = asyncio.get_running_loop().time() + UNHEALTHY_GRACE_S
    while True:
        async with s.get(_url(sup, path), headers=_auth(sup, "viewer")) as r:
            if r.status != 503 or asyncio.get_running_loop().time() > deadline:
                assert r.status == 200, await r.text()
                return await r.json()
        await asyncio.sleep(0.2)


async def test_post_streams_ndjson_progress_then_the_stored_run(stack: Supervisor, shared_data: Path) -> None:
    body = {"bars": [NVDA], "seed": SEED, "to_date": TO_DATE}
    lines: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as s:
        await _ready(stack, s)
        async with s.post(_url(stack, "/api/v1/backtests"), json=body, headers=_auth(stack, "trader")) as r:
            assert r.status == 200, await r.text()
            assert not [h for h in r.headers if h.lower().startswith("grpc-")]
            while True:
                raw = await asyncio.wait_for(r.content.readline(), READ_TIMEOUT_S)
                if not raw:
                    break
                if raw.strip():
                    lines.append(json.loads(raw))  # one JSON object per line (NDJSON)
        kinds = [next(iter(line)) for line in lines]
        assert kinds[-1] == "result" and kinds.count("result") == 1
        progress = [line["progress"] for line in lines[:-1]]
        assert kinds[:-1] == ["progress"] * len(progress) and len(progress) >= 3
        stages = [p["stage"] for p in progress]
        assert stages[0] == "loading" and "strategies" in stages and "null model" in stages
        for p in progress:  # int64 travels as a JSON string (proto3 JSON mapping)
            if "total" in p:
                assert 0 <= int(p.get("done", "0")) <= int(p["total"])
        run = lines[-1]["result"]
        assert len(run["id"]) == 26
        assert run["request"]["bars"] == [NVDA] and run["request"]["to_date"] == TO_DATE
        report = run["report"]

        direct = run_backtest(
            BacktestInputs(bars=(str(shared_data / NVDA),), seed=SEED, date_to=dt.date.fromisoformat(TO_DATE))
        )
        direct = json.loads(json.dumps(direct))  # the report as JSON (Struct numbers are doubles)
        assert report["summary"] == direct["summary"] and report["null_model"] == direct["null_model"]
        assert len(report["trades"]) == len(direct["trades"]) == int(run["trades"])

        stored = (await _get(stack, s, f"/api/v1/backtests/{run['id']}"))["run"]
        assert stored["id"] == run["id"] and stored["report"] == report and stored["request"] == run["request"]

        listed = (await _get(stack, s, "/api/v1/backtests?limit=5"))["runs"]
        assert [x["id"] for x in listed][:1] == [run["id"]] and "report" not in listed[0]


async def test_roles_and_bad_input_are_4xx(stack: Supervisor) -> None:
    async with aiohttp.ClientSession() as s:
        await _ready(stack, s)
        post = _url(stack, "/api/v1/backtests")
        async with s.post(post, json={"bars": [NVDA]}) as r:
            assert r.status == 401
        async with s.post(post, json={"bars": [NVDA]}, headers=_auth(stack, "viewer")) as r:
            assert r.status == 403  # a run costs CPU: trader
        for body, field in (
            ({"bars": ["/etc/passwd"]}, "bars[0]"),
            ({"bars": [NVDA], "from_date": "2024-13-01"}, "from_date"),
        ):
            async with s.post(post, json=body, headers=_auth(stack, "trader")) as r:
                text = await r.text()
                assert r.status == 400, text
                assert field in text
        async with s.get(
            _url(stack, "/api/v1/backtests/01ARZ3NDEKTSV4RRFFQ69G5FAV"), headers=_auth(stack, "viewer")
        ) as r:
            assert r.status == 404
