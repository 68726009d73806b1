"""``aiots settings``: the settings in effect as JSON with secrets hidden, or the reference table."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aiots.services.cli.settings import cli
from aiots.services.common.settings import get_settings


def test_json_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cret-pw@db.example:5432/x")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(cli, [])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 0, r.output
    assert "s3cret-pw" not in r.output
    assert json.loads(r.output)["analytics"]["live_intervals"] == ["1m"]


def test_markdown_lists_the_settings() -> None:
    r = CliRunner().invoke(cli, ["--markdown"])
    assert r.exit_code == 0 and r.output.startswith("# Configuration")
    assert "`AIOTS_ANALYTICS__LIVE_INTERVALS`" in r.output
