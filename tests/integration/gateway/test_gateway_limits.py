"""Rate limits on the real Envoy: one shared bucket per route class, per-subject stream opens."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from aiots.v1 import analytics_pb2 as apb
from aiots.v1 import analytics_pb2_grpc as apb_grpc
from tests.integration.gateway.stack import Stack
from tests.integration.gateway.test_gateway import call

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLOW_FILL_S = 60.0  # no refill during the test


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    slow = {"tokens_per_fill": 1, "fill_interval_s": SLOW_FILL_S}
    limits = {
        "pricing_batch": {"max_tokens": 4, **slow},
        "streams": {"max_tokens": 50, **slow},
        "stream_opens_per_subject": {"max_tokens": 2, **slow},
    }
    st = Stack(tmp_path_factory.mktemp("gwlim"), gateway={"rate_limits": limits}).start()
    try:
        yield st
    finally:
        st.stop()


def test_route_class_bucket_is_shared_and_429_has_headers(stack: Stack) -> None:
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
    assert status == 429  # same class, same bucket
    # other classes are unaffected
    assert call(stack, "GET", "/api/v1/cache/stats", role="viewer")[0] == 200
    # /health is never rate limited
    assert all(call(stack, "GET", "/health", role=None)[0] == 200 for _ in range(10))


async def test_429_over_grpc_is_resource_exhausted(stack: Stack) -> None:
    md = (("authorization", f"Bearer {stack.token('trader')}"),)
    async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
        stub = apb_grpc.AnalyticsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            for _ in range(6):  # the bucket (4) is already drained or drains here
                await stub.PriceOptions(apb.PriceOptionsRequest(contracts=[apb.PricingInput(spot=1)]), metadata=md)
        assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_stream_opens_are_limited_per_subject(stack: Stack) -> None:
    path = "/api/v1/signals/subscribe?symbols=AAPL"
    alice = [call(stack, "GET", path, role=None, headers=stack.auth("trader", "alice"))[0] for _ in range(3)]
    assert alice == [200, 200, 429]
    bob = call(stack, "GET", path, role=None, headers=stack.auth("trader", "bob"))[0]
    assert bob == 200
