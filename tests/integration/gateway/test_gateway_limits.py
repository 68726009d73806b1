"""Rate limits on the real Envoy: a bucket per route class per verified JWT subject (per client
address without a token), stream opens apart from unary calls."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from aiots.v1 import analytics_pb2 as apb
from aiots.v1 import analytics_pb2_grpc as apb_grpc
from tests.integration.gateway.stack import Stack
from tests.integration.gateway.test_gateway import call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLOW_FILL_S = 60.0  # no refill during the test
READS_BURST = 10
FLOOD = 50


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    slow = {"tokens_per_fill": 1, "fill_interval_s": SLOW_FILL_S}
    limits = {
        "reads": {"max_tokens": READS_BURST, **slow},
        "pricing_batch": {"max_tokens": 4, **slow},
        "streams": {"max_tokens": 2, **slow},
        "unauthenticated": {"max_tokens": 5, **slow},
    }
    st = Stack(tmp_path_factory.mktemp("gwlim"), gateway={"rate_limits": limits}).start()
    try:
        yield st
    finally:
        st.stop()


def test_one_subject_flooding_leaves_another_at_least_90_percent(stack: Stack) -> None:
    path = "/api/v1/cache/stats"
    flood = [call(stack, "GET", path, role=None, headers=stack.auth("viewer", "flooder"))[0] for _ in range(FLOOD)]
    assert flood.count(200) == READS_BURST and flood.count(429) == FLOOD - READS_BURST
    other = [call(stack, "GET", path, role=None, headers=stack.auth("viewer", "bystander"))[0] for _ in range(10)]
    assert other.count(200) >= 9, other  # the bar: >= 90 %; a per-subject bucket gives 100 %
    assert other == [200] * 10


def test_route_class_bucket_per_subject_and_429_has_headers(stack: Stack) -> None:
    price = ("POST", "/api/v1/analytics/options:price", {"contracts": [{"spot": 1}]})
    iv = ("POST", "/api/v1/analytics/options:iv", {"quotes": [{"price": 1}]})
    codes = [call(stack, v, p, role="trader", body=b)[0] for v, p, b in (price, iv, price, iv)]
    assert codes == [200, 200, 200, 200]
    status, headers, raw = call(stack, *price[:2], role="trader", body=price[2])
    assert status == 429
    assert headers["x-ratelimit-limit"] == "4" and headers["x-ratelimit-remaining"] == "0"
    assert int(headers["retry-after"]) >= 1
    assert raw.startswith(b'{"code":8')
    status, _, _ = call(stack, *iv[:2], role="trader", body=iv[2])
    assert status == 429  # same class, same subject: same bucket
    # another subject has its own bucket; other classes are unaffected
    bob = stack.auth("trader", "bob")
    assert call(stack, *price[:2], role=None, headers=bob, body=price[2])[0] == 200
    assert call(stack, "GET", "/api/v1/cache/stats", role="viewer")[0] == 200


async def test_429_over_grpc_is_resource_exhausted(stack: Stack) -> None:
    md = (("authorization", f"Bearer {stack.token('trader')}"),)
    async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
        stub = apb_grpc.AnalyticsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            for _ in range(6):  # the bucket (4) is already drained or drains here
                await stub.PriceOptions(apb.PriceOptionsRequest(contracts=[apb.PricingInput(spot=1)]), metadata=md)
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_stream_opens_have_their_own_budget_per_subject(stack: Stack) -> None:
    path = "/api/v1/signals/subscribe?symbols=AAPL"
    carol = stack.auth("trader", "carol")
    assert call(stack, "GET", "/api/v1/cache/stats", role=None, headers=carol)[0] == 200
    opens = [call(stack, "GET", path, role=None, headers=carol)[0] for _ in range(3)]
    assert opens == [200, 200, 429]
    # unary reads are another budget: still fine for carol; another subject opens streams
    assert call(stack, "GET", "/api/v1/cache/stats", role=None, headers=carol)[0] == 200
    assert call(stack, "GET", path, role=None, headers=stack.auth("trader", "dave"))[0] == 200


def _health_from(stack: Stack, source: str) -> tuple[int, bytes]:
    assert stack.settings is not None
    conn = http.client.HTTPConnection("127.0.0.1", stack.settings.gateway.port, timeout=10, source_address=(source, 0))
    conn.request("GET", "/health")
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def test_unauthenticated_routes_are_limited_per_client_address(stack: Stack) -> None:
    # wait for the upstreams' first health checks on the supervisor's endpoint itself (behind Envoy)
    assert stack.settings is not None
    url = f"http://127.0.0.1:{stack.settings.gateway.health_port}/health"
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=2):
                break
        except urllib.error.HTTPError:
            time.sleep(0.1)
    codes = [_health_from(stack, "127.0.0.3")[0] for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3
    status, raw = _health_from(stack, "127.0.0.3")
    assert status == 429 and json.loads(raw)["code"] == 8
    assert _health_from(stack, "127.0.0.4")[0] == 200  # another address has its own bucket


def test_a_token_without_sub_is_limited_per_client_address(stack: Stack) -> None:
    import time as _time

    import jwt

    from aiots.gateway.tokens import load_or_create_key

    assert stack.settings is not None
    gw = stack.settings.gateway
    sk = load_or_create_key(gw.dev_key_dir, gw.jwt_algorithm)
    now = int(_time.time())
    claims = {"iss": gw.jwt_issuer, "aud": gw.jwt_audience, "role": "viewer", "iat": now, "exp": now + 600}
    tok = jwt.encode(claims, sk.key, algorithm=sk.algorithm, headers={"kid": sk.kid})

    def stats_from(source: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10, source_address=(source, 0))
        conn.request("GET", "/api/v1/cache/stats", headers={"Authorization": f"Bearer {tok}"})
        status = conn.getresponse().status
        conn.close()
        return status

    codes = [stats_from("127.0.0.5") for _ in range(READS_BURST + 3)]
    assert codes == [200] * READS_BURST + [429] * 3  # no subject: not unlimited, a bucket per address
    assert stats_from("127.0.0.6") == 200
