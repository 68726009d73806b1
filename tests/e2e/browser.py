"""Debian's chromium driven by Playwright (the ``playwright`` wheel from PyPI; its own browser
download, ``playwright install``, is never used). A fresh profile per browser, no background
networking: the page talks to the stack under test only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    """The Debian chromium binary, or None when it is not installed."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    return found


@dataclass
class Console:
    """Console errors and uncaught page errors seen by one page; ``failures`` (HTTP >= 400 and
    requests that never completed, aborted ones included) are kept to explain a failed wait."""

    errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("response", lambda r: self.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.on("requestfailed", lambda r: self.failures.append(f"failed {r.url}: {r.failure}"))

    def explain(self, page: Any) -> str:
        """What the page showed and saw: error boxes, console errors, failed requests."""
        boxes = page.locator(".error, #notice:not([hidden])").all_inner_texts()
        return f"error boxes {boxes}; console {self.errors}; failed requests {self.failures[-20:]}"


@contextmanager
def browser_context(viewport: dict[str, int] = DESKTOP) -> Iterator[Any]:
    """A Playwright browser context on Debian's chromium with a fresh user-data-dir."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError("chromium is not installed (make sysdeps installs Debian's 'chromium')")
    profile = tempfile.mkdtemp(prefix="aiots-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=exe, args=CHROMIUM_ARGS, headless=True, viewport=viewport
            )
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
