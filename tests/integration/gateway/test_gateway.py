"""The real Envoy, generated config, in front of four real grpc.aio servers (canned servicers).

Oracles: the proto3 JSON mapping as printed by protobuf's own json_format (independent of
Envoy), the grpc-status -> HTTP table measured in shared/notes/envoy-feasibility.md, RFC 7519
claims signed by PyJWT, and openapi-spec-validator.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from openapi_spec_validator import validate

from aiots.v1 import (
    analytics_pb2 as apb,
)
from aiots.v1 import (
    analytics_pb2_grpc as apb_grpc,
)
from aiots.v1 import (
    cache_pb2 as cpb,
)
from aiots.v1 import (
    cache_pb2_grpc as cpb_grpc,
)
from aiots.v1 import (
    common_pb2,
)
from aiots.v1 import (
    ingestion_pb2 as ipb,
)
from aiots.v1 import (
    signals_pb2 as spb,
)
from aiots.v1 import (
    signals_pb2_grpc as spb_grpc,
)
from tests.integration.gateway.stack import AS_OF, AUDIT, PACE_HEADER, PACER, Stack, to_json

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
STREAM_READ_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    st = Stack(tmp_path_factory.mktemp("gw")).start()
    try:
        yield st
    finally:
        st.stop()


def call(
    st: Stack,
    method: str,
    path: str,
    *,
    role: str | None = "admin",
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    assert st.settings is not None
    conn = http.client.HTTPConnection("127.0.0.1", st.settings.gateway.port, timeout=10)
    h = dict(headers or {})
    if role is not None:
        h.update(st.auth(role))
    data: bytes | None = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    conn.close()
    return out


# --- every REST binding -> the right RPC with the right fields --------------------------------

BINDINGS: list[tuple[str, str, Any, Any]] = [
    (
        "GET",
        "/api/v1/analytics/indicators/AAPL?period=20&indicators=sma,rsi,macd",
        None,
        apb.GetIndicatorsResponse(
            symbol="AAPL",
            interval="1d",
            bars=20,
            as_of=AS_OF,
            source="computed",
            results=[apb.IndicatorResult(name=n, params={"period": 20.0}) for n in ("sma", "rsi", "macd")],
        ),
    ),
    (
        "GET",
        "/api/v1/analytics/patterns/MSFT?days=30",
        None,
        apb.GetPatternsResponse(symbol="MSFT", trend=apb.Trend(direction="up", slope=30.0)),
    ),
    (
        "GET",
        "/api/v1/analytics/options/SPY",
        None,
        apb.GetOptionsAnalyticsResponse(symbol="SPY", zero_gamma_level=float("nan")),
    ),
    (
        "GET",
        "/api/v1/analytics/options/SPY/chain?expiry=2026-12-18",
        None,
        apb.GetOptionChainResponse(
            symbol="SPY", contracts=[apb.OptionQuote(contract=common_pb2.OptionContract(expiry="2026-12-18"))]
        ),
    ),
    (
        "POST",
        "/api/v1/analytics/options:price",
        {"contracts": [{"spot": 105, "strike": 100, "right": "OPTION_RIGHT_CALL"}]},
        apb.PriceOptionsResponse(results=[apb.PricingResult(price=5.0)]),
    ),
    (
        "POST",
        "/api/v1/analytics/options:iv",
        {"quotes": [{"spot": 100, "strike": 100, "price": 4.0}, {"spot": 1, "strike": 1, "price": 0.1}]},
        apb.ImpliedVolatilityResponse(results=[apb.ImpliedVolatilityResult(implied_volatility=0.2)] * 2),
    ),
    (
        "GET",
        "/api/v1/analytics/vol-surface/QQQ?moneyness=-0.1&moneyness=0.1",
        None,
        apb.GetVolSurfaceResponse(
            symbol="QQQ", grid=[apb.SurfacePoint(moneyness=-0.1, iv=0.2), apb.SurfacePoint(moneyness=0.1, iv=0.2)]
        ),
    ),
    (
        "GET",
        "/api/v1/cache/stock-prices/AAPL",
        None,
        cpb.GetStockPriceResponse(price=cpb.StockPrice(symbol="AAPL", last=190.5, bid=190.4, ask=190.6, as_of=AS_OF)),
    ),
    (
        "GET",
        "/api/v1/cache/stock-prices?symbols=AAPL,NOPE",
        None,
        cpb.GetStockPricesResponse(prices=[cpb.StockPrice(symbol="AAPL", last=1.0)], missing=["NOPE"]),
    ),
    (
        "GET",
        "/api/v1/cache/stats",
        None,
        cpb.GetStatsResponse(hits=12345678901, misses=1, hit_ratio=0.5, backend="memory"),
    ),
    ("DELETE", "/api/v1/cache/analytics/never-set", None, cpb.DeleteAnalyticsResponse(deleted=False)),
    (
        "POST",
        "/api/v1/data/collection/stop",
        {"symbols": ["AAPL"]},
        ipb.StopCollectionResponse(job_ids=["job-1"], records_flushed=42),
    ),
    (
        "GET",
        "/api/v1/data/collection/status",
        None,
        ipb.GetCollectionStatusResponse(running=True, streams=[ipb.StreamStatus(symbol="AAPL", schema="trades")]),
    ),
    (
        "GET",
        "/api/v1/data/bars/AAPL?interval=1m&limit=7&start=2026-01-02T14:30:00Z",
        None,
        ipb.GetBarsResponse(bars=[common_pb2.Bar(symbol="AAPL", close=7.0)]),
    ),
    ("GET", "/api/v1/data/trades/TSLA", None, ipb.GetTradesResponse(trades=[common_pb2.Trade(symbol="TSLA")])),
    (
        "GET",
        "/api/v1/data/instruments?underlying=NVDA&page.page_token=abc",
        None,
        ipb.ListInstrumentsResponse(
            instruments=[common_pb2.Instrument(symbol="NVDA")], page=common_pb2.PageResponse(next_page_token="abcx")
        ),
    ),
    (
        "GET",
        "/api/v1/data/options/META/definitions?expiry=2026-12-18",
        None,
        ipb.GetOptionChainDefinitionsResponse(
            contracts=[common_pb2.OptionContract(underlying="META", expiry="2026-12-18")]
        ),
    ),
    (
        "GET",
        "/api/v1/signals?symbols=AAPL&statuses=SIGNAL_STATUS_OPEN",
        None,
        spb.ListSignalsResponse(signals=[spb.Signal(id="sig-0", symbol="AAPL", status=spb.SIGNAL_STATUS_OPEN)]),
    ),
    (
        "GET",
        "/api/v1/signals/01HZX",
        None,
        spb.GetSignalResponse(signal=spb.Signal(id="01HZX", direction=spb.DIRECTION_BULLISH)),
    ),
    (
        "GET",
        "/api/v1/signal-stats?strategies=momentum_breakout",
        None,
        spb.GetSignalStatsResponse(rows=[spb.SignalStatsRow(strategy="momentum_breakout", total=7)]),
    ),
]


@pytest.mark.parametrize(("verb", "path", "body", "expected"), BINDINGS, ids=[b[1] for b in BINDINGS])
def test_rest_binding(stack: Stack, verb: str, path: str, body: Any, expected: Any) -> None:
    status, headers, raw = call(stack, verb, path, body=body)
    assert status == 200, raw
    assert headers["content-type"].startswith("application/json")
    assert not [h for h in headers if h.startswith("grpc-")], headers
    got = json.loads(raw)
    want = to_json(expected)
    if "zero_gamma_level" in want:  # NaN is printed as the string "NaN" by both
        assert got.pop("zero_gamma_level") == want.pop("zero_gamma_level") == "NaN"
    assert got == want


def test_set_then_get_analytics_roundtrip_with_struct(stack: Stack) -> None:
    value = {"sma": [1.5, 2.5], "meta": {"symbol": "AAPL", "ok": True, "n": None}}
    status, _, raw = call(stack, "POST", "/api/v1/cache/analytics", body={"key": "k1", "data": value, "ttl": 300})
    assert status == 200, raw
    assert json.loads(raw) == {"key": "k1", "expires_at": "2023-11-14T22:18:20Z"}
    status, _, raw = call(stack, "GET", "/api/v1/cache/analytics/k1", role="viewer")
    assert status == 200
    assert json.loads(raw) == {"key": "k1", "data": value, "ttl_remaining": 300}


# --- the original system's curl examples, verbatim plus a token -------------------------------


def curl(stack: Stack, *args: str) -> tuple[int, str]:
    tok = stack.token("admin")
    r = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {tok}", *args],
        capture_output=True,
        text=True,
        timeout=15,
    )
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def test_original_curl_examples(stack: Stack) -> None:
    u = stack.url
    code, body = curl(stack, f"{u}/api/v1/analytics/indicators/AAPL?period=20&indicators=sma,rsi,macd")
    assert code == 200 and [r["name"] for r in json.loads(body)["results"]] == ["sma", "rsi", "macd"]
    code, body = curl(
        stack,
        "-X",
        "POST",
        f"{u}/api/v1/data/collection/start",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"symbols": ["AAPL","GOOGL"], "schemas": ["trades","tbbo"]}',
    )
    assert code == 200
    assert json.loads(body) == {
        "job_id": "job-1",
        "started": True,
        "source": "DATA_SOURCE_SIMULATOR",
        "message": "AAPL,GOOGL x trades,tbbo",
    }
    code, body = curl(stack, f"{u}/api/v1/cache/stock-prices/AAPL")
    assert code == 200 and json.loads(body)["price"]["symbol"] == "AAPL"
    code, body = curl(
        stack,
        "-X",
        "POST",
        f"{u}/api/v1/cache/analytics",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"key": "AAPL_indicators", "data": {"rsi": 65.5}, "ttl": 300}',
    )
    assert code == 200 and json.loads(body)["key"] == "AAPL_indicators"


# --- streaming: NDJSON delivered as it happens ------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "path", "body", "role"),
    [
        ("GET", "/api/v1/signals/subscribe?symbols=AAPL,MSFT", None, "trader"),
        ("GET", "/api/v1/prices/watch?symbols=AAPL", None, "trader"),
        ("POST", "/api/v1/data/backfill", {"symbols": ["AAPL"], "schemas": ["trades"]}, "admin"),
    ],
)
async def test_stream_is_incremental_ndjson(stack: Stack, verb: str, path: str, body: Any, role: str) -> None:
    # The server sends message i+1 only after this test has read message i and released it
    # (PACER): a gateway that buffered the stream would leave the first read waiting.
    pace = f"pace-{verb}-{path}"
    headers = {**stack.auth(role, f"stream-{role}-{path}"), PACE_HEADER: pace}
    lines: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as s, s.request(verb, stack.url + path, json=body, headers=headers) as r:
        assert r.status == 200
        assert not [h for h in r.headers if h.lower().startswith("grpc-")]
        while True:
            raw = await asyncio.wait_for(r.content.readline(), STREAM_READ_TIMEOUT_S)
            if not raw:
                break
            if raw.strip():
                lines.append(json.loads(raw))
                PACER.release(pace)
    assert len(lines) == 3
    assert pace in PACER.paced and pace not in PACER.timeouts


def test_stream_error_after_first_message_is_a_trailer_over_http11(stack: Stack) -> None:
    tok = stack.token("trader", "trailer-test")
    r = subprocess.run(
        [
            "curl", "-s", "--raw", "-H", f"Authorization: Bearer {tok}", "-H", "TE: trailers",
            f"{stack.url}/api/v1/signals/subscribe?symbols=AAPL&strategies=fail",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )  # fmt: skip
    assert '"id":"sig-0"' in r.stdout
    assert "grpc-status: 8" in r.stdout  # chunked trailer after the last chunk
    assert "resume with since=sig-0" in r.stdout


# --- plain gRPC through the same port -------------------------------------------------------


async def test_grpc_passthrough_typed_stubs(stack: Stack) -> None:
    md = (("authorization", f"Bearer {stack.token('trader', 'grpc-user')}"),)
    async with grpc.aio.insecure_channel(stack.grpc_target) as ch:
        cache = cpb_grpc.CacheServiceStub(ch)
        r = await cache.GetStockPrice(cpb.GetStockPriceRequest(symbol="AAPL"), metadata=md)
        assert r.price.last == 190.5
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await cache.GetStockPrice(cpb.GetStockPriceRequest(symbol="NOPE"), metadata=md)
        assert ei.value.code() == grpc.StatusCode.NOT_FOUND
        analytics = apb_grpc.AnalyticsServiceStub(ch)
        pr = await analytics.PriceOptions(
            apb.PriceOptionsRequest(contracts=[apb.PricingInput(spot=110, strike=100)]), metadata=md
        )
        assert pr.results[0].price == 10.0
        sig = spb_grpc.SignalServiceStub(ch)
        got = [m.signal.id async for m in sig.SubscribeSignals(spb.SubscribeSignalsRequest(), metadata=md)]
        assert got == ["sig-0", "sig-1", "sig-2"]
        # no token -> UNAUTHENTICATED; viewer on a trader RPC -> PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await cache.GetStockPrice(cpb.GetStockPriceRequest(symbol="AAPL"))
        assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert not (ei.value.details() or "").startswith("{")  # REST's JSON error body stays off gRPC
        assert ".venv/bin/aiots token --role trader" in (ei.value.details() or "")
        viewer = (("authorization", f"Bearer {stack.token('viewer')}"),)
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await analytics.PriceOptions(apb.PriceOptionsRequest(), metadata=viewer)
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ei.value.details() == "requires role trader; your token has viewer (roles: viewer < trader < admin)"


# --- auth -------------------------------------------------------------------------------------


def test_401_without_bad_or_expired_token(stack: Stack) -> None:
    path = "/api/v1/cache/stock-prices/AAPL"
    status, headers, raw = call(stack, "GET", path, role=None)
    assert status == 401 and json.loads(raw) == {
        "code": 16,
        "message": "Jwt is missing. Send 'Authorization: Bearer <token>'; on a dev stack get one with: "
        ".venv/bin/aiots token --role trader",
        "details": [],
    }
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, _ = call(stack, "GET", path, role=None, headers={"Authorization": "Bearer not.a.jwt"})
    assert status == 401
    expired = stack.token("admin", ttl_s=60, now=time.time() - 3600)
    status, _, raw = call(stack, "GET", path, role=None, headers={"Authorization": f"Bearer {expired}"})
    assert status == 401 and json.loads(raw)["message"].startswith("Jwt is expired. ")
    # signed by another key with the same kid/issuer: signature check fails
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = jwt.decode(stack.token("admin"), options={"verify_signature": False})
    kid = jwt.get_unverified_header(stack.token("admin"))["kid"]
    forged = jwt.encode(good, other, algorithm="RS256", headers={"kid": kid})
    status, _, raw = call(stack, "GET", path, role=None, headers={"Authorization": f"Bearer {forged}"})
    assert status == 401, raw
    # another audience: Envoy answers 403 "Audiences in Jwt are not allowed"
    wrong_aud = stack.token("admin", extra_claims={"aud": "someone-else"})
    status, _, raw = call(stack, "GET", path, role=None, headers={"Authorization": f"Bearer {wrong_aud}"})
    assert status == 403 and b"Audiences" in raw


def _signed(st: Stack, claims: dict[str, Any]) -> str:
    """A token signed with the stack's dev key carrying exactly ``claims`` (PyJWT, not our issuer)."""
    import jwt

    from aiots.gateway.tokens import load_or_create_key

    assert st.settings is not None
    gw = st.settings.gateway
    sk = load_or_create_key(gw.dev_key_dir, gw.jwt_algorithm)
    base = {"iss": gw.jwt_issuer, "aud": gw.jwt_audience, "sub": "eve", "role": "admin", "iat": int(time.time())}
    merged = {k: v for k, v in {**base, **claims}.items() if v is not None}  # None: leave the claim out
    return jwt.encode(merged, sk.key, algorithm=sk.algorithm, headers={"kid": sk.kid})


def test_403_for_a_token_without_a_role_claim_says_so(stack: Stack) -> None:
    tok = _signed(stack, {"role": None, "exp": int(time.time()) + 600})
    status, _, raw = call(stack, "GET", "/api/v1/signals", role=None, headers={"Authorization": f"Bearer {tok}"})
    assert status == 403
    assert (
        json.loads(raw)["message"]
        == "requires role viewer; your token has no 'role' claim (roles: viewer < trader < admin)"
    )


def test_token_rules_exp_required_lifetime_capped_skew_5s_header_only(stack: Stack) -> None:
    path = "/api/v1/cache/stats"
    now = int(time.time())

    def status_with(tok: str) -> tuple[int, str]:
        st, _, raw = call(stack, "GET", path, role=None, headers={"Authorization": f"Bearer {tok}"})
        return st, json.loads(raw).get("message", "") if st != 200 else ""

    assert status_with(_signed(stack, {"exp": now + 600}))[0] == 200  # the oracle: a good token passes
    st, msg = status_with(_signed(stack, {}))  # no exp, even for an admin
    assert st == 401, msg  # Envoy says "Jwt verification fails"
    assert status_with(_signed(stack, {"exp": now - 30}))[0] == 401  # expired 30 s ago (skew is 5 s)
    assert status_with(_signed(stack, {"exp": now + 25 * 3600}))[0] == 401  # beyond the 24 h cap
    # a token in the query string is not read at all
    good = stack.token("admin")
    st, _, raw = call(stack, "GET", f"{path}?access_token={good}", role=None)
    assert st == 401 and json.loads(raw)["message"].startswith("Jwt is missing"), raw


#: jwt_authn's default clock skew in the stack (gateway.jwt_clock_skew_s), and a margin past it
SKEW_S, MARGIN_S = 5, 1


def test_a_cached_token_still_expires_and_a_changed_one_is_verified_again(stack: Stack) -> None:
    """jwt_authn keeps verified tokens (``jwt_cache_config``): a hit must still be refused once the
    token expires, and a token differing in one byte of its signature is no hit."""
    path = "/api/v1/cache/stats"

    def status_with(tok: str) -> tuple[int, str]:
        st, _, raw = call(stack, "GET", path, role=None, headers={"Authorization": f"Bearer {tok}"})
        return st, json.loads(raw).get("message", "") if st != 200 else ""

    exp = int(time.time()) - 3  # accepted for ~2 s more, within the skew
    tok = _signed(stack, {"exp": exp})
    assert status_with(tok)[0] == 200
    assert status_with(tok)[0] == 200  # now a cache hit
    head, payload, sig = tok.split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    st, msg = status_with(f"{head}.{payload}.{flipped}")
    assert st == 401 and msg.startswith("Jwt verification fails"), msg
    time.sleep(max(0.0, exp + SKEW_S + MARGIN_S - time.time()))
    st, msg = status_with(tok)
    assert st == 401 and msg.startswith("Jwt is expired"), msg


@pytest.mark.parametrize(
    ("role", "verb", "path", "body", "allowed"),
    [
        ("viewer", "GET", "/api/v1/signals", None, True),
        ("viewer", "GET", "/api/v1/signals/subscribe", None, False),
        ("viewer", "POST", "/api/v1/analytics/options:price", {"contracts": [{"spot": 1}]}, False),
        ("trader", "POST", "/api/v1/analytics/options:price", {"contracts": [{"spot": 1}]}, True),
        ("trader", "POST", "/api/v1/data/collection/start", {}, False),
        ("trader", "POST", "/api/v1/cache/analytics", {"key": "x", "data": 1}, False),
        ("trader", "DELETE", "/api/v1/cache/analytics/x", None, False),
        ("admin", "POST", "/api/v1/data/collection/start", {}, True),
        ("nobody", "GET", "/api/v1/signals", None, False),
    ],
)
def test_roles(stack: Stack, role: str, verb: str, path: str, body: Any, allowed: bool) -> None:
    status, _, raw = call(stack, verb, path, role=role, body=body)
    if allowed:
        assert status == 200, raw
    else:
        assert status == 403, raw
        need = "trader" if "options:" in path or "subscribe" in path else ("admin" if role == "trader" else "viewer")
        message = f"requires role {need}; your token has {role} (roles: viewer < trader < admin)"
        assert json.loads(raw) == {"code": 7, "message": message, "details": []}


def test_services_receive_verified_subject_and_role_not_client_copies(stack: Stack) -> None:
    spoof = {"x-aiots-subject": "mallory", "x-aiots-role": "admin"}
    status, _, _ = call(
        stack, "GET", "/api/v1/signals?symbols=AUD", role=None, headers={**spoof, **stack.auth("viewer", "carol")}
    )
    assert status == 200
    assert ("ListSignals", "carol", "viewer") in AUDIT.calls
    assert not [c for c in AUDIT.calls if c[1] == "mallory"]


# --- edge hygiene -------------------------------------------------------------------------


def test_400_for_malformed_json_wrong_types_unknown_query(stack: Stack) -> None:
    path = "/api/v1/analytics/options:price"
    # body errors (the transcoder's local reply after the headers went on): the same JSON error shape
    status, headers, raw = call(stack, "POST", path, body=b'{"contracts": [{')
    err = json.loads(raw)
    assert status == 400 and headers["content-type"] == "application/json"
    assert err["code"] == 3 and "Unexpected end of string" in err["message"] and err["details"] == []
    status, headers, raw = call(stack, "POST", path, body={"contracts": [{"spot": "abc"}]})
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(raw) == {
        "code": 3,
        "message": 'contracts[0].spot: invalid value "abc" for type TYPE_DOUBLE',
        "details": [],
    }
    status, _, raw = call(stack, "POST", "/api/v1/cache/analytics", body=b"not json at all")
    assert status == 400 and json.loads(raw)["code"] == 3
    # path/query errors are local replies and get the JSON error body
    status, _, raw = call(stack, "GET", "/api/v1/analytics/indicators/AAPL?period=twenty")
    assert status == 400 and "TYPE_INT32" in json.loads(raw)["message"]
    status, _, raw = call(stack, "GET", "/api/v1/cache/stock-prices/AAPL?foo=1")
    assert status == 400 and "Could not find field" in json.loads(raw)["message"]
    # domain validation in the service: INVALID_ARGUMENT with google.rpc.BadRequest details
    status, _, raw = call(stack, "POST", path, body={"contracts": []})
    err = json.loads(raw)
    assert status == 400 and err["code"] == 3
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert err["details"][0]["field_violations"][0]["field"] == "contracts"


#: hostile paths from issue 18 (items 1 and 4): NUL, encoded dot-segments and slashes, invalid
#: UTF-8 (a lone continuation, an overlong '/', a truncated sequence), stray '%'
HOSTILE_PATHS = [
    "/api/v1/analytics/indicators/%FF%FE",
    "/api/v1/cache/analytics/..%2F..%2Fetc%2Fpasswd",
    "/api/v1/cache/analytics/a%00b",
    "/api/v1/cache/stock-prices/%00",
    "/api/v1/data/bars/..%2f?interval=1m",
    "/api/v1/signals/%C0%AF",
    "/api/v1/data/options/%E2%82/definitions",
    "/api/v1/cache/analytics/%",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/api/v1/analytics/patterns/%2e%2e%2f%2e%2e%2f",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_get_a_json_error_never_5xx_or_empty(stack: Stack, path: str) -> None:
    # (the canned upstreams echo any symbol; the real services refuse "../" and the like with 400)
    status, headers, raw = call(stack, "GET", path, role="admin")
    assert status < 500, (status, raw)
    assert headers["content-type"] == "application/json", headers
    body = json.loads(raw)
    if status >= 400:
        assert isinstance(body["code"], int) and body["code"] > 0
        assert body["message"].strip(), raw


def test_cache_keys_with_slashes_are_readable_and_deletable_with_2f(stack: Stack) -> None:
    key = "reports/AAPL/2026-01-02"
    status, _, raw = call(stack, "POST", "/api/v1/cache/analytics", body={"key": key, "data": {"x": 1}, "ttl": 60})
    assert status == 200, raw
    enc = key.replace("/", "%2F")
    status, _, raw = call(stack, "GET", f"/api/v1/cache/analytics/{enc}", role="viewer")
    assert status == 200, raw
    assert json.loads(raw)["key"] == key and json.loads(raw)["data"] == {"x": 1}
    status, _, raw = call(stack, "DELETE", "/api/v1/cache/analytics/" + key.replace("/", "%2f"))  # %2f too
    assert status == 200 and json.loads(raw) == {"deleted": True}, raw
    # the unencoded form is another path (no such route), answered in JSON
    status, _, raw = call(stack, "GET", f"/api/v1/cache/analytics/{key}", role="viewer")
    assert status == 404 and json.loads(raw)["code"] == 5


def test_grpc_status_maps_to_http(stack: Stack) -> None:
    status, headers, raw = call(stack, "GET", "/api/v1/cache/stock-prices/NOPE", role="viewer")
    assert status == 404
    err = json.loads(raw)
    assert err["code"] == 5 and "NOPE" in err["message"]
    assert err["details"][0]["reason"] == "NOT_FOUND"
    assert not [h for h in headers if h.startswith("grpc-")]


def test_404_unknown_paths(stack: Stack) -> None:
    for verb, path in [("GET", "/api/v1/orders"), ("GET", "/nope"), ("PUT", "/api/v1/cache/stock-prices/AAPL")]:
        status, _, raw = call(stack, verb, path)
        assert status == 404, (verb, path)
        assert json.loads(raw)["code"] == 5


def test_413_request_too_large(stack: Stack) -> None:
    assert stack.settings is not None
    big = {"key": "big", "data": "x" * (stack.settings.gateway.max_request_bytes + 10)}
    status, _, _ = call(stack, "POST", "/api/v1/cache/analytics", body=big)
    assert status == 413


def test_cors_preflight_and_simple(stack: Stack) -> None:
    origin = "http://localhost:3000"
    status, headers, _ = call(
        stack,
        "OPTIONS",
        "/api/v1/cache/stock-prices/AAPL",
        role=None,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == origin
    assert "authorization" in headers["access-control-allow-headers"]
    status, headers, _ = call(stack, "GET", "/api/v1/cache/stats", headers={"Origin": origin})
    assert status == 200 and headers["access-control-allow-origin"] == origin
    status, headers, _ = call(stack, "GET", "/api/v1/cache/stats", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_json_access_log_with_request_id(stack: Stack) -> None:
    status, headers, _ = call(
        stack, "GET", "/api/v1/cache/stats", role="viewer", headers={"x-request-id": "req-test-123"}
    )
    assert status == 200 and headers["x-request-id"] == "req-test-123"
    status, headers, _ = call(stack, "GET", "/api/v1/cache/stats", role="viewer")
    assert len(headers["x-request-id"]) == 36  # generated UUID, echoed to the client
    assert stack.settings is not None
    log_path = Path(stack.settings.gateway.access_log_path)
    deadline = time.monotonic() + 5
    entry = None
    while entry is None and time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            rec = json.loads(line)
            if rec["request_id"] == "req-test-123":
                entry = rec
        time.sleep(0.1)
    assert entry is not None
    assert entry["status"] == 200 and entry["upstream"] == "cache" and entry["role"] == "viewer"
    assert entry["route"] == "rest:CacheService/GetStats:GET:/api/v1/cache/stats"
    # the client's method and path, not the transcoded POST /aiots.v1.CacheService/GetStats
    assert entry["method"] == "GET" and entry["path"] == "/api/v1/cache/stats"


def test_openapi_served_without_token_and_valid(stack: Stack) -> None:
    status, _, raw = call(stack, "GET", "/openapi.json", role=None)
    assert status == 200
    doc = json.loads(raw)
    validate(doc)
    assert "/api/v1/analytics/indicators/{symbol}" in doc["paths"]


def test_health_reports_each_upstream_and_503_names_the_down_one(stack: Stack) -> None:
    status, _, raw = call(stack, "GET", "/health", role=None)
    assert status == 200, raw
    body = json.loads(raw)
    assert body["upstreams"] == dict.fromkeys(stack.servers, "SERVING")
    stack.run(stack.servers["analytics"].set_serving(False))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, _, raw = call(stack, "GET", "/health", role=None)
            if status == 503:
                break
            time.sleep(0.1)
        assert status == 503
        body = json.loads(raw)
        assert body["not_serving"] == ["analytics"] and body["upstreams"]["cache"] == "SERVING"
        # and the cluster really is out of rotation: 503 from Envoy for analytics calls
        st, _, _ = call(stack, "GET", "/api/v1/analytics/options/SPY", role="viewer")
        assert st == 503
    finally:
        stack.run(stack.servers["analytics"].set_serving(True))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, _, _ = call(stack, "GET", "/health", role=None)
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200


def _health_until(stack: Stack, want: int) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        status, _, raw = call(stack, "GET", "/health", role=None)
        if status == want or time.monotonic() > deadline:
            return status, json.loads(raw)
        time.sleep(0.1)


def test_health_names_the_dependency_that_is_down(stack: Stack) -> None:
    """Issue 18 item 13: the services report each dependency as ``aiots.dep.<name>`` and turn
    their own name NOT_SERVING while a required one is down (services/common/health.py); here
    the canned cache server says so by hand, as the real one does when Redis dies."""
    from grpc_health.v1 import health_pb2

    ok, down = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    cache, ingestion = stack.servers["cache"], stack.servers["ingestion"]
    stack.run(cache.health.set("aiots.dep.postgres", ok))
    stack.run(cache.health.set("aiots.dep.redis", ok))
    stack.run(ingestion.health.set("aiots.dep.feed", down))  # informational: degraded, still 200
    status, body = _health_until(stack, 200)
    assert status == 200, body
    assert body["dependencies"]["cache"] == {"postgres": "SERVING", "redis": "SERVING"}
    assert body["dependencies"]["analytics"] == {}  # uses none of them (NOT_FOUND)
    assert body["degraded"] == ["ingestion: feed"]
    stack.run(cache.health.set("aiots.dep.redis", down))
    stack.run(cache.health.set("aiots.v1.CacheService", down))
    try:
        status, body = _health_until(stack, 503)
        assert status == 503, body
        assert body["not_serving"] == ["cache"]
        assert body["dependencies"]["cache"] == {"postgres": "SERVING", "redis": "NOT_SERVING"}
        assert body["message"] == "not ready: cache: redis down"
    finally:
        stack.run(cache.health.set("aiots.dep.redis", ok))
        stack.run(cache.health.set("aiots.v1.CacheService", ok))
        stack.run(ingestion.health.set("aiots.dep.feed", ok))
    status, body = _health_until(stack, 200)
    assert status == 200 and body["degraded"] == [], body
