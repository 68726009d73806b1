"""schemathesis against the live gateway (real Envoy, canned upstreams from stack.py) with a valid
admin token: requests generated from the served /openapi.json, a few per operation, must never get a
5xx. Oracle: the OpenAPI document itself (schemathesis generates valid and edge-case inputs from it)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.gateway.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EXAMPLES_PER_OPERATION = 3
REQUEST_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # roomy buckets: 429 is not what this test is about (test_gateway_limits covers it)
    big = {"max_tokens": 10_000, "tokens_per_fill": 10_000}
    limits = {k: big for k in ("analytics_reads", "reads", "pricing_batch", "writes", "streams", "unauthenticated")}
    st = Stack(tmp_path_factory.mktemp("gwfuzz"), gateway={"rate_limits": limits}).start()
    try:
        yield st
    finally:
        st.stop()


def _check(case: Any, stack: Stack, token: dict[str, str], seen: list[int]) -> None:
    resp = case.call(base_url=stack.url, headers=token, timeout=REQUEST_TIMEOUT_S)
    seen.append(resp.status_code)
    assert resp.status_code < 500, f"{case.method} {case.formatted_path} -> {resp.status_code}: {resp.text[:500]}"
    if resp.status_code >= 400:  # every error, Envoy's or a service's, has the JSON error shape
        err = json.loads(resp.text)
        assert {"code", "message"} <= set(err), resp.text[:500]


def test_no_5xx_for_generated_requests(stack: Stack) -> None:
    # schemathesis' pytest plugin does not load with this pytest; drive its strategies with hypothesis
    with urllib.request.urlopen(f"{stack.url}/openapi.json", timeout=10) as r:
        schema = schemathesis.openapi.from_dict(json.loads(r.read()))
    token = stack.auth("admin", "fuzzer")
    ops = [res.ok() for res in schema.get_all_operations()]
    assert len(ops) >= 25
    seen: list[int] = []
    for op in ops:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            _check(case, stack, token, seen)

        run()
    assert len(seen) >= len(ops) and 200 in seen, sorted(set(seen))
    print(f"schemathesis: {len(seen)} requests over {len(ops)} operations, statuses {sorted(set(seen))}")
