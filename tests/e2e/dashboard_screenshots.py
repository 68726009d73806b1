"""Screenshots of every dashboard page into docs/screenshots/ (PNG), from a live simulator stack on
spare ports (the same stack as tests/e2e/test_dashboard.py): a backtest is run and a paper order
placed first so that those pages have something to show.

    .venv/bin/python -m tests.e2e.dashboard_screenshots [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.e2e.browser import DESKTOP, PHONE, Console, browser_context
from tests.e2e.dashboard_stack import REPO, DashboardStack, ensure_web_built

BACKTEST = {"bars": ["ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"], "seed": "5", "to_date": "2024-03-08"}
SIGNAL_WAIT_S = 240.0
LOAD_MS = 60_000


def run_backtest(st: DashboardStack) -> None:
    """POST /api/v1/backtests and read the NDJSON stream to its end (the run is stored)."""
    req = urllib.request.Request(f"{st.url}/api/v1/backtests", data=json.dumps(BACKTEST).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {st.token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if b'"result"' in line:
                return


def buy(st: DashboardStack) -> None:
    _, acct = st.api("POST", "/api/v1/portfolio/accounts", body={"name": "demo", "cash": 100000})
    _, chain = st.api("GET", "/api/v1/analytics/options/AAPL/chain")
    calls = [
        c
        for c in chain["contracts"]
        if c["contract"]["right"] == "OPTION_RIGHT_CALL"
        and isinstance(c["bid"], int | float)
        and c["bid"] > 0.5
        and isinstance(c["greeks"]["delta"], int | float)
        and math.isfinite(c["greeks"]["delta"])
    ]
    for i, target in enumerate((0.4, 0.6)):
        occ = min(calls, key=lambda c: abs(c["greeks"]["delta"] - target))["contract"]["occ_symbol"]
        body = {"client_order_id": f"shot-{i}", "contract": occ, "side": "BUY", "quantity": 2}
        st.api("POST", f"/api/v1/portfolio/accounts/{acct['account']['id']}/orders", body=body)


def shoot(st: DashboardStack, out: Path) -> list[str]:
    errors: list[str] = []
    with browser_context(DESKTOP) as ctx:
        p = ctx.new_page()
        console = Console()
        console.attach(p)
        p.goto(st.dashboard_url)
        p.wait_for_selector("tr.signal", timeout=int(SIGNAL_WAIT_S * 1000))
        shots = [
            ("signals", "#/signals", "tr.signal", DESKTOP),
            ("symbol", "#/symbol/AAPL/1d", "[data-testid=candles] canvas", DESKTOP),
            ("symbol-1m", "#/symbol/AAPL/1m", "[data-testid=candles] canvas", DESKTOP),
            ("chain", "#/chain/AAPL", "[data-testid=smile] .main-svg", DESKTOP),
            ("portfolio", "#/portfolio", "[data-testid=positions-table]", DESKTOP),
            ("backtests", "#/backtests", "[data-testid=equity] .main-svg", DESKTOP),
            ("signals-phone", "#/signals", "tr.signal", PHONE),
            ("chain-phone", "#/chain/AAPL", "[data-testid=smile] .main-svg", PHONE),
        ]
        for name, hash_, ready, viewport in shots:
            p.set_viewport_size(viewport)
            p.evaluate("h => { location.hash = h }", hash_)
            p.wait_for_selector(ready, timeout=LOAD_MS)
            p.wait_for_timeout(2500)
            if name == "signals":
                p.click("tr.signal")  # one signal's reasons, levels and history
                p.wait_for_timeout(300)
            p.screenshot(path=str(out / f"{name}.png"), full_page=viewport is PHONE)
            errors += [f"{name}: {e}" for e in console.errors]
            console.errors.clear()
            print(f"wrote {out / f'{name}.png'}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = ap.parse_args()
    err = ensure_web_built()
    if err:
        print(err, file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="aiots-shots-"))
    st = DashboardStack(tmp)
    try:
        st.start()
        t0 = time.monotonic()
        run_backtest(st)
        print(f"backtest stored in {time.monotonic() - t0:.0f} s")
        buy(st)
        errors = shoot(st, args.out)
    finally:
        st.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for e in errors:
        print("console error:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
