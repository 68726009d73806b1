"""`aiots up --port-offset/--base-id` and `aiots token --data-dir`: what a second stack beside a
running one needs (no servers; the oracle is the default Settings plus the offset, and PyJWT)."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
from click.testing import CliRunner

from aiots.services.cli.token import cli as token_cli
from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import SERVICE_ORDER, with_base_id, with_data_dir, with_port_offset


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
