"""`aiots up --port-offset/--base-id` and `aiots token --data-dir`: what a second stack beside a
running one needs (no servers; the oracle is the default Settings plus the offset, and PyJWT);
`aiots up --session`: a day without an NYSE session is refused before anything starts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import exchange_calendars as xcals
import jwt
import pandas as pd
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from aiots.services.cli.token import cli as token_cli
from aiots.services.cli.up import cli as up_cli
from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import (
    SERVICE_ORDER,
    Feed,
    SupervisorError,
    with_base_id,
    with_data_dir,
    with_port_offset,
    with_session,
)

XNYS = xcals.get_calendar("XNYS", start="2026-01-01", end="2027-12-31")


def _ports(s: Settings) -> list[int]:
    gw = s.gateway
    out = [gw.port, gw.admin_port, gw.health_port]
    for name in SERVICE_ORDER:
        cfg = getattr(s, name)
        out += [cfg.port, cfg.metrics_port]
    return out


def test_port_offset_moves_every_listening_port() -> None:
    base = Settings()
    moved = with_port_offset(base, 100)
    assert _ports(moved) == [p + 100 for p in _ports(base)]
    assert len(set(_ports(moved)) & set(_ports(base))) == 0  # no port shared with a default stack
    assert moved.gateway.upstream_hosts == base.gateway.upstream_hosts
    assert with_base_id(moved, 42).gateway.base_id == 42 and moved.gateway.base_id == base.gateway.base_id


def test_token_data_dir_uses_that_stacks_key(tmp_path: Path) -> None:
    data = tmp_path / "stack"
    r = CliRunner().invoke(token_cli, ["--role", "trader", "--ttl", "5m", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    tok = r.output.strip()
    # the key the gateway of `aiots up --data-dir <data>` would publish
    gw = with_data_dir(Settings(), data).gateway
    jwks = json.loads(next((gw.dev_key_dir).glob("*.json")).read_text())
    claims = jwt.decode(tok, jwt.PyJWK(jwks["keys"][0]).key, algorithms=["RS256"], audience=gw.jwt_audience)
    assert claims["role"] == "trader" and claims["exp"] - claims["iat"] == 300


@pytest.mark.parametrize("day", [dt.date(2026, 12, 5), dt.date(2026, 12, 25)], ids=["saturday", "christmas"])
def test_up_session_refuses_a_day_without_a_session_before_starting_anything(day: dt.date, tmp_path: Path) -> None:
    """The nearest sessions named are exchange-calendars' (the oracle), nothing is started."""
    assert not XNYS.is_session(pd.Timestamp(day))
    prev = XNYS.date_to_session(pd.Timestamp(day), "previous").date()
    nxt = XNYS.date_to_session(pd.Timestamp(day), "next").date()
    r = CliRunner().invoke(up_cli, ["--session", day.isoformat(), "--data-dir", str(tmp_path / "d"), "--no-gateway"])
    assert r.exit_code == 2, r.output
    assert "--session" in r.output and f"previous {prev.isoformat()}, next {nxt.isoformat()}" in r.output, r.output
    assert not (tmp_path / "d").exists()


def test_up_session_refuses_a_date_that_is_not_iso(tmp_path: Path) -> None:
    r = CliRunner().invoke(up_cli, ["--session", "12/01/2026", "--data-dir", str(tmp_path / "d"), "--no-gateway"])
    assert r.exit_code == 2 and "--session" in r.output and "%Y-%m-%d" in r.output, r.output
    assert not (tmp_path / "d").exists()


def test_with_session_sets_the_simulator_session_for_the_simulator_feed_only() -> None:
    s = with_session(Settings(), dt.date(2026, 12, 1))
    assert s.ingestion.simulator_session == dt.date(2026, 12, 1)
    assert Feed(kind="simulator").resolve(s).kind == "simulator"
    with pytest.raises(SupervisorError, match="--session"):
        Feed(kind="live").resolve(s.model_copy(update={"databento_api_key": SecretStr("k")}))
