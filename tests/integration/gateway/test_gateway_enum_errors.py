"""Issue 18 item 6 through a real Envoy: a request with an unknown enum name gets a 400 whose JSON
body names the field, the bad value and the allowed values (for any enum field, in a body or a
query parameter); a valid request still reaches the service.

Oracle for the allowed values: the generated Python enums (protobuf's reading of the protos)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from aiots.v1 import common_pb2, signals_pb2
from tests.integration.gateway.stack import Stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("enum-errors")).start()
    try:
        yield s
    finally:
        s.stop()


def _allowed(enum: Any) -> list[str]:
    return [v.name for v in enum.DESCRIPTOR.values if not v.name.endswith("_UNSPECIFIED")]


def test_unknown_enum_name_in_a_body_lists_the_allowed_values(stack: Stack) -> None:
    body = {"contracts": [{"spot": 100, "strike": 100, "right": "CALL"}]}
    r = requests.post(stack.url + "/api/v1/analytics/options:price", json=body, headers=stack.auth("trader"))
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()
    allowed = _allowed(common_pb2.OptionRight)
    assert allowed == ["OPTION_RIGHT_CALL", "OPTION_RIGHT_PUT"]
    assert err["code"] == 3
    msg = err["message"]
    assert "contracts[0].right" in msg and '"CALL"' in msg
    assert msg.endswith("allowed values: " + ", ".join(allowed)), msg
    (violation,) = err["details"][0]["field_violations"]
    assert err["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert violation["field"] == "contracts[0].right"
    assert all(a in violation["description"] for a in allowed)
    assert int(r.headers["content-length"]) == len(r.content)


def test_unknown_enum_name_in_a_query_parameter_lists_the_allowed_values(stack: Stack) -> None:
    r = requests.get(stack.url + "/api/v1/signals?statuses=OPEN", headers=stack.auth("viewer"))
    assert r.status_code == 400
    err = r.json()
    assert err["message"].startswith('statuses: invalid value "OPEN"'), err
    for name in _allowed(signals_pb2.SignalStatus):
        assert name in err["message"]
    assert err["details"][0]["field_violations"][0]["field"] == "statuses"


def test_valid_enum_names_still_reach_the_service(stack: Stack) -> None:
    body = {"contracts": [{"spot": 100, "strike": 100, "right": "OPTION_RIGHT_PUT"}]}
    r = requests.post(stack.url + "/api/v1/analytics/options:price", json=body, headers=stack.auth("trader"))
    assert r.status_code == 200, r.text
    assert "results" in r.json()
    r = requests.get(stack.url + "/api/v1/signals?statuses=SIGNAL_STATUS_OPEN", headers=stack.auth("viewer"))
    assert r.status_code == 200, r.text


def test_other_400s_are_left_alone(stack: Stack) -> None:
    """A 400 that is not an enum error keeps the transcoder's message (the Lua rewrites nothing)."""
    r = requests.get(stack.url + "/api/v1/signals?bogus=1", headers=stack.auth("viewer"))
    assert r.status_code == 400
    assert "allowed values" not in r.text and r.json()["code"] == 3
