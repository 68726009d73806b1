"""``aiots portfolio`` against a running PortfolioService (the scripted tape): JSON output for
scripts, exit code 1 with the server's reason on a refusal, tables for people."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from .conftest import AAPL_C, Stack

AIOTS = str(Path(sys.executable).with_name("aiots"))


async def run(s: Stack, *args: str) -> tuple[int, str, str]:
    p = await asyncio.create_subprocess_exec(
        AIOTS, "portfolio", *args, "--target", f"127.0.0.1:{s.server.port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "220"},
    )  # fmt: skip
    out, err = await p.communicate()
    assert p.returncode is not None
    return p.returncode, out.decode(), err.decode()


async def test_cli_flow(stack: Stack) -> None:
    s = stack
    s.tape.set(AAPL_C, 5.00, 5.20, spot=228.0)
    rc, out, err = await run(s, "create", "cli", "--cash", "5000", "--json")
    assert rc == 0, err
    acct = json.loads(out)["id"]

    rc, out, err = await run(s, "buy", acct, AAPL_C, "2", "--client-order-id", "k1", "--json")
    assert rc == 0, err
    o = json.loads(out)
    assert (o["side"], o["quantity"], o["fill_price"], o["fees"]) == ("BUY", "2", 5.2, 1.3)
    rc, out, _ = await run(s, "buy", acct, AAPL_C, "2", "--client-order-id", "k1", "--json")
    assert json.loads(out)["replayed"] is True

    rc, out, _ = await run(s, "show", acct, "--json")
    (a,) = json.loads(out)
    assert a["positions"][0]["quantity"] == "2" and a["cash"] == 5000 - 1041.3

    rc, out, _ = await run(s, "show", acct)  # tables for people
    assert rc == 0 and "positions" in out and AAPL_C in out

    rc, _, err = await run(s, "limits", acct, "--max-premium-per-trade", "100")
    assert rc == 0, err
    rc, _, err = await run(s, "buy", acct, AAPL_C, "1")
    assert rc == 1 and "FAILED_PRECONDITION: risk limit max_premium_per_trade" in err

    rc, out, err = await run(s, "sell", acct, AAPL_C, "2", "--json")
    assert rc == 0, err
    assert json.loads(out)["realized_pnl"] == pytest.approx((5.00 - 5.20) * 200 - 2 * 1.30)

    rc, out, err = await run(s, "follow", acct, "--strategy", "momentum_breakout", "--contracts", "2", "--json")
    assert rc == 0, err
    assert json.loads(out)["follow"]["enabled"] is True

    rc, _, err = await run(s, "buy", acct, "AAPL123", "1")
    assert rc == 1 and "INVALID_ARGUMENT: contract:" in err
