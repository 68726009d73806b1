"""An `aiots up` stack for the dashboard's browser tests and screenshots: every port spare (the
portfolio and backtest services too, so a `make run` stack on 8000-8006 is never touched), the
simulator replaying one chosen session from its open, a permissive strategy file
(``permissive_strategies.yaml``) so that a live signal comes within a test's wait, and the
repository's data as the backtest service's data root.

The session is chosen (``aiots up --session``) so that no test depends on the wall clock: left to
the wall clock the simulator is live in pre- and post-market on weekdays, and on a weekend replays
from the time of day, so a run near 16:00 New York time reached the close mid-module. Outside
regular hours option quotes stop, the book refuses orders (tests/e2e/test_dashboard.py's buy failed)
and the chain goes stale. From the open at 60x the regular session lasts 390 s of wall time."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.stack import UpProcess, free_ports

REPO = Path(__file__).resolve().parents[2]
WEB_DIST = REPO / "web" / "dist"
STRATEGIES = Path(__file__).with_name("permissive_strategies.yaml")
SHARED_DATA = REPO.parent / "shared" / "data"
EXTRA_SERVICES = ("portfolio", "backtest")
#: a past NYSE session (a Friday, with a same-day expiry in the chain), replayed from its 09:30 open
SESSION = "2026-12-04"


class DashboardStack(UpProcess):
    """UpProcess with the portfolio and backtest ports spare too, and the permissive strategies."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        p = free_ports(2 * len(EXTRA_SERVICES))
        for i, svc in enumerate(EXTRA_SERVICES):
            self.ports[svc] = p[2 * i]
            self.ports[f"{svc}_metrics"] = p[2 * i + 1]

    def env(self) -> dict[str, str]:
        env = super().env()
        for svc in EXTRA_SERVICES:
            env[f"AIOTS_{svc.upper()}__PORT"] = str(self.ports[svc])
            env[f"AIOTS_{svc.upper()}__METRICS_PORT"] = str(self.ports[f"{svc}_metrics"])
        env["AIOTS_SIGNALS__STRATEGIES_FILE"] = str(STRATEGIES)
        env["AIOTS_INGESTION__SIMULATOR_SESSION"] = SESSION
        if SHARED_DATA.is_dir():
            env["AIOTS_BACKTEST__DATA_ROOTS"] = json.dumps([str(SHARED_DATA)])
        return env

    @property
    def dashboard_url(self) -> str:
        """The one-click URL the banner printed (``dashboard  http://...#token=...``)."""
        for line in self.out:
            if line.strip().startswith("dashboard "):
                return line.split(None, 1)[1].strip().replace("localhost", "127.0.0.1", 1)
        raise AssertionError(f"no dashboard line in the banner:\n{self.banner}")

    def api(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        """One REST call through the gateway; (status, parsed JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def ensure_web_built() -> str | None:
    """Build web/dist with the project's make target when it is missing; an error text or None."""
    if (WEB_DIST / "index.html").is_file():
        return None
    if shutil.which("make") is None:
        return "web/dist is missing and make is not available: run 'make web'"
    r = subprocess.run(["make", "--no-print-directory", "web"], cwd=REPO, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not (WEB_DIST / "index.html").is_file():
        return f"'make web' failed (Node.js 20+ is a prerequisite):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return None
